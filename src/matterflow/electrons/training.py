"""Training loop of LDOS networks: early stopping, LR schedule, checkpoints, resume, DDP.

:func:`train_network` trains any ``torch.nn.Module`` built by a picklable
factory on already scaled float32 arrays:

- mini-batch Adam on the mean squared error; the order of the samples in epoch
  ``e`` is a permutation drawn from ``seed + e``, so a resumed run repeats the
  uninterrupted one exactly;
- ``ReduceLROnPlateau`` on the validation loss (``lr_factor``, ``lr_patience``);
- early stopping after ``patience`` epochs without a relative improvement of
  ``min_delta``; the best weights are returned;
- a checkpoint (weights, optimizer, scheduler, best weights, history) written
  atomically after every epoch to ``checkpoint_dir/checkpoint.pt``; calling
  again with the same directory resumes after the last finished epoch (a
  killed run loses at most one epoch);
- ``nproc > 1``: torch ``DistributedDataParallel`` over ``nproc`` processes
  (``torch.multiprocessing`` spawn, gloo backend, CPU). Each rank trains on
  its share of every epoch's permutation with ``batch_size // nproc`` samples
  per step (gradients are averaged, so the effective batch is unchanged); the
  validation loss is all-reduced so every rank takes the same decisions; rank 0
  writes the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from matterflow.core.errors import ComputeError, InputError, MatterflowWarning
from matterflow.core.registry import Params

__all__ = ["TrainParams", "TrainResult", "train_network", "build_feedforward", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "silu", "gelu")
CHECKPOINT_NAME = "checkpoint.pt"
#: checkpoints: torch.save of state dicts and plain values, read with weights_only=True
CHECKPOINT_FORMAT = "matterflow.electrons.train-checkpoint/2"


class TrainParams(Params):
    """Hyper-parameters of the optimisation (not of the architecture)."""

    learning_rate: float = Field(1e-3, gt=0, le=1.0, description="initial Adam learning rate")
    batch_size: int = Field(256, ge=1, le=1_000_000, description="grid points per optimisation step")
    max_epochs: int = Field(200, ge=1, le=100_000, description="upper limit of epochs")
    patience: int = Field(20, ge=1, description="early stopping: epochs without improvement")
    min_delta: float = Field(1e-4, ge=0, description="relative improvement that counts")
    lr_patience: int = Field(5, ge=1, description="LR schedule: epochs without improvement before the LR drops")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="LR schedule: factor of each drop")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty of Adam")
    nproc: int = Field(1, ge=1, le=256, description="processes of DistributedDataParallel (gloo, CPU)")
    threads: int = Field(1, ge=1, le=256, description="torch threads per process")
    seed: int = Field(0, ge=0, description="seed of initial weights and of the sample order")


@dataclass
class TrainResult:
    """Outcome of :func:`train_network`."""

    state_dict: dict[str, Any]
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = float("inf")
    epochs_run: int = 0
    resumed_from_epoch: int | None = None
    stopped_early: bool = False
    seconds: float = 0.0


# --------------------------------------------------------------------------- networks

def _activation(name: str) -> Any:
    import torch.nn as nn

    table = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
             "silu": nn.SiLU, "gelu": nn.GELU}
    if name not in table:
        raise InputError(f"activation: one of {', '.join(table)} is accepted; got {name!r}")
    return table[name]()


def build_feedforward(n_in: int, n_out: int, hidden: tuple[int, ...] | list[int],
                      activation: str = "leaky_relu") -> Any:
    """Fully connected network ``n_in -> hidden... -> n_out`` (linear output layer).

    Parameters
    ----------
    n_in, n_out : int
        Descriptor components per grid point; energies of the LDOS.
    hidden : sequence of int
        Widths of the hidden layers (may be empty: a linear model).
    activation : str
        One of :data:`ACTIVATIONS`, after every hidden layer.
    """
    import torch.nn as nn

    widths = [int(n_in), *[int(h) for h in hidden], int(n_out)]
    if min(widths) < 1:
        raise InputError(f"hidden layers: widths must be >= 1; got {list(hidden)}")
    layers: list[Any] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- checkpoints

def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _run_key(factory_args: dict, params: TrainParams, shapes: list[tuple]) -> str:
    """Identity of a run: a checkpoint is only resumed by the same run."""
    p = params.model_dump(exclude={"max_epochs", "threads", "patience"})
    text = json.dumps({"net": factory_args, "params": p, "shapes": shapes}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _result_dict(res: TrainResult) -> dict[str, Any]:
    """``res`` as plain values and tensors (what ``torch.load(weights_only=True)`` reads)."""
    return {f.name: getattr(res, f.name) for f in fields(TrainResult)}


def _read_checkpoint(path: Path, trust_pickle: bool) -> dict[str, Any]:
    from matterflow.core.safeload import load_torch

    what = "a matterflow training checkpoint"
    try:
        ck = load_torch(path.read_bytes(), source=str(path), what=what,
                        trust_pickle=trust_pickle)
    except InputError as exc:
        raise InputError(f"{exc}; or delete {path} to train from the start") from None
    if not isinstance(ck, dict) or not (ck.get("format") == CHECKPOINT_FORMAT
                                        or (trust_pickle and "result" in ck)):
        raise InputError(f"{path}: not {what} (format tag missing); delete it to train "
                         "from the start")
    if isinstance(ck.get("result"), dict):
        try:
            ck["result"] = TrainResult(**ck["result"])
        except TypeError as exc:
            raise InputError(f"{path}: not {what} ({exc}); delete it to train from the start"
                             ) from None
    return ck


def _clone_state(module: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------- loop

def _train_loop(rank: int, world: int, factory: Callable[..., Any], factory_args: dict,
                data: tuple[np.ndarray, ...], params: TrainParams, checkpoint_dir: Path | None,
                on_epoch: Callable[[int, float], None] | None, trust_pickle: bool = False
                ) -> TrainResult:
    import torch

    torch.set_num_threads(params.threads)
    x_tr, y_tr, x_va, y_va = data
    key = _run_key(factory_args, params, [a.shape for a in data])
    torch.manual_seed(params.seed)
    net = factory(**factory_args)
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net)
    opt = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=params.lr_factor,
                                                       patience=params.lr_patience, eps=0.0)
    res = TrainResult(state_dict=_clone_state(net))
    start_epoch, bad_epochs = 0, 0
    ckpt_path = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        ck = _read_checkpoint(ckpt_path, trust_pickle)
        if ck.get("key") == key:
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            res = ck["result"]
            start_epoch, bad_epochs = ck["epoch"] + 1, ck["bad_epochs"]
            res.resumed_from_epoch = ck["epoch"]
            if ck.get("finished"):
                return res
    t0 = time.perf_counter() - res.seconds
    n_tr = x_tr.shape[0] - x_tr.shape[0] % world
    per_rank_batch = max(1, params.batch_size // world)
    xt_va, yt_va = torch.from_numpy(np.ascontiguousarray(x_va)), torch.from_numpy(np.ascontiguousarray(y_va))
    for epoch in range(start_epoch, params.max_epochs):
        model.train()
        perm = np.random.default_rng(params.seed + 7919 * epoch).permutation(x_tr.shape[0])[:n_tr]
        mine = perm[rank::world]
        total, count = 0.0, 0
        for b in range(0, len(mine), per_rank_batch):
            idx = np.sort(mine[b:b + per_rank_batch])
            xb, yb = torch.from_numpy(x_tr[idx]), torch.from_numpy(y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        model.eval()
        with torch.no_grad():
            va_part = xt_va[rank::world], yt_va[rank::world]
            sums = torch.tensor([float(((net(va_part[0]) - va_part[1]) ** 2).sum()),
                                 float(va_part[1].numel()), total, float(count)], dtype=torch.float64)
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(sums)
        val_loss = float(sums[0] / sums[1])
        train_loss = float(sums[2] / max(float(sums[3]), 1.0))
        if not np.isfinite(val_loss) or not np.isfinite(train_loss):
            raise ComputeError(f"training diverged at epoch {epoch}: loss is {train_loss} (train), "
                               f"{val_loss} (validation); lower learning_rate "
                               f"(now {params.learning_rate})")
        res.train_loss.append(train_loss)
        res.val_loss.append(val_loss)
        res.learning_rate.append(float(opt.param_groups[0]["lr"]))
        res.epochs_run = epoch + 1
        if val_loss < res.best_val_loss * (1.0 - params.min_delta):
            res.best_val_loss, res.best_epoch, bad_epochs = val_loss, epoch, 0
            res.state_dict = _clone_state(net)
        else:
            bad_epochs += 1
        sched.step(val_loss)
        finished = bad_epochs >= params.patience or epoch + 1 >= params.max_epochs
        res.stopped_early = bad_epochs >= params.patience
        res.seconds = time.perf_counter() - t0
        if ckpt_path is not None and rank == 0:
            _atomic_torch_save({"format": CHECKPOINT_FORMAT, "key": key, "epoch": epoch, "bad_epochs": bad_epochs,
                                "model": net.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "result": _result_dict(res),
                                "finished": finished}, ckpt_path)
        if on_epoch is not None:
            on_epoch(epoch, val_loss)
        if finished:
            break
    return res


def _ddp_worker(rank: int, world: int, rendezvous: str, data_dir: str, factory: Callable[..., Any],
                factory_args: dict, params: TrainParams, checkpoint_dir: str | None,
                trust_pickle: bool = False) -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        data = tuple(np.load(os.path.join(data_dir, f"{n}.npy"), mmap_mode="r")
                     for n in ("x_tr", "y_tr", "x_va", "y_va"))
        res = _train_loop(rank, world, factory, factory_args, data, params,
                          Path(checkpoint_dir) if checkpoint_dir else None, None, trust_pickle)
        if rank == 0:
            torch.save(_result_dict(res), os.path.join(data_dir, "result.pt.part"))
            os.replace(os.path.join(data_dir, "result.pt.part"), os.path.join(data_dir, "result.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _check_arrays(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
                  ) -> tuple[np.ndarray, ...]:
    out = []
    for name, a in (("x_train", x_train), ("y_train", y_train), ("x_val", x_val), ("y_val", y_val)):
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] == 0:
            raise InputError(f"{name}: a non-empty 2-D array (n_points, n_columns) is needed; got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name}: contains NaN or infinite values")
        out.append(a)
    if out[0].shape[0] != out[1].shape[0] or out[2].shape[0] != out[3].shape[0]:
        raise InputError(f"descriptors and LDOS must have the same number of grid points: "
                         f"train {out[0].shape[0]} vs {out[1].shape[0]}, "
                         f"validation {out[2].shape[0]} vs {out[3].shape[0]}")
    if out[0].shape[1] != out[2].shape[1] or out[1].shape[1] != out[3].shape[1]:
        raise InputError("training and validation arrays must have the same number of columns")
    return tuple(out)


def train_network(factory: Callable[..., Any], factory_args: dict, x_train: np.ndarray,
                  y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, params: TrainParams, *,
                  checkpoint_dir: str | os.PathLike | None = None,
                  on_epoch: Callable[[int, float], None] | None = None,
                  trust_pickle: bool = False) -> TrainResult:
    """Train ``factory(**factory_args)`` on scaled arrays; resumable, optionally with DDP.

    Parameters
    ----------
    factory : callable
        Module-level (picklable) function returning a ``torch.nn.Module``.
    factory_args : dict
        Its keyword arguments (JSON-like: part of the checkpoint identity).
    x_train, y_train : ndarray, shape (n_train, n_in), (n_train, n_out)
        Scaled descriptors and LDOS of the training grid points.
    x_val, y_val : ndarray, shape (n_val, n_in), (n_val, n_out)
        Validation grid points (early stopping, LR schedule).
    params : TrainParams
    checkpoint_dir : path, optional
        Folder of ``checkpoint.pt``; an existing checkpoint of the same run
        (same network, data shapes and parameters) is resumed.
    on_epoch : callable, optional
        ``on_epoch(epoch, val_loss)`` after every epoch (single process only);
        an exception it raises (e.g. ``optuna.TrialPruned``) stops training.
    trust_pickle : bool
        Also resume from a checkpoint of an older matterflow (pickled Python objects,
        which can run code); without it such a checkpoint is an :class:`InputError`.

    Returns
    -------
    TrainResult
        Best weights (``state_dict``), loss history, best epoch.
    """
    data = _check_arrays(x_train, y_train, x_val, y_val)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if params.nproc == 1:
        return _train_loop(0, 1, factory, factory_args, data, params, ckpt, on_epoch, trust_pickle)
    if on_epoch is not None:
        raise InputError("on_epoch callbacks need nproc=1 (they run in the training process)")
    if data[0].shape[0] < params.nproc:
        raise InputError(f"nproc: {params.nproc} processes need at least as many training points; "
                         f"got {data[0].shape[0]}")
    import torch
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="mf-ddp-") as tmp:
        for name, a in zip(("x_tr", "y_tr", "x_va", "y_va"), data, strict=True):
            np.save(os.path.join(tmp, f"{name}.npy"), a)
        try:
            mp.spawn(_ddp_worker, args=(params.nproc, os.path.join(tmp, "rendezvous"), tmp, factory,
                                        factory_args, params, str(ckpt) if ckpt else None,
                                        trust_pickle),
                     nprocs=params.nproc, join=True)
        except mp.ProcessRaisedException as exc:
            raise ComputeError(f"distributed training failed in a worker process: "
                               f"{str(exc).strip().splitlines()[-1]}") from None
        except mp.ProcessExitedException as exc:
            # rank 0 writes result.pt only after every epoch's all-reduce, i.e. after all
            # ranks finished training; a rank dying later (gloo teardown) loses nothing
            if not os.path.exists(os.path.join(tmp, "result.pt")):
                raise ComputeError(f"distributed training failed: {exc}") from None
            warnings.warn(f"a DDP worker exited abnormally after training had finished ({exc}); "
                          "the trained weights are complete", MatterflowWarning, stacklevel=2)
        return TrainResult(**torch.load(os.path.join(tmp, "result.pt"), weights_only=True))


ActivationName = Literal["relu", "leaky_relu", "tanh", "sigmoid", "silu", "gelu"]
