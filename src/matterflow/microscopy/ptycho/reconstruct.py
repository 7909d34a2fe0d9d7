"""Gradient-based ptychography: amplitude loss, Adam, mini-batches, step control, checkpoints.

The object is ``t_s = exp(iφ_s − μ_s)`` per slice (phase φ in rad, absorption μ ≥ 0
dimensionless), the probe a free complex array started from the nominal probe
(:func:`matterflow.microscopy.probe.probe_wave`) scaled to the mean counts.
Each iteration visits every position once, in shuffled mini-batches of
``batch_size`` (memory ∝ batch size, not scan size), one Adam step per batch, on
the amplitude loss ``Σ (√I_model − √I_measured)²`` per pattern.

Step control: the loss of an iteration is summed over its batches before their
steps, so it measures the state the previous iteration made. When it is not
finite, or exceeds the best so far (or the starting loss) by ``diverge_factor``,
the previous iteration is undone (parameters and optimiser state restored) and
redone with all learning rates halved; each retry is reported as
``(iteration, new step scale)``.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from matterflow.core.errors import ComputeError, InputError
from matterflow.microscopy.probe import probe_wave
from matterflow.microscopy.ptycho import analytic
from matterflow.microscopy.ptycho.model import exit_waves, far_field, propagator

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Reconstruction", "reconstruct", "ncc", "check_dataset"]


@dataclass
class Reconstruction:
    phase: np.ndarray            # (S, nx, ny) rad
    absorption: np.ndarray       # (S, nx, ny)
    probe: np.ndarray            # (W, W) complex, sqrt(counts)
    losses: np.ndarray           # (iterations,)
    retries: list = field(default_factory=list)   # [(iteration, new lr scale)]
    seconds: float = 0.0
    seconds_per_iteration: float = 0.0
    resumed_from: int = 0


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Normalised cross-correlation (Pearson) of two arrays (optionally inside ``mask``)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum() + 1e-300))


def check_dataset(patterns: np.ndarray, positions_a: np.ndarray, *, source: str = "patterns",
                  scan_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Validate 4D-STEM data before any iteration; returns ``(n, W, W)`` float32.

    ``patterns`` ``(n, W, W)`` or ``(rows, cols, W, W)``; ``positions_a`` ``(n, 2)``.
    Errors name ``source`` and the offending axis or value.
    """
    d = np.asarray(patterns)
    if d.ndim == 4:
        if scan_shape is not None and tuple(d.shape[:2]) != tuple(scan_shape):
            raise InputError(f"{source}: scan axes {d.shape[:2]} do not match the scan "
                             f"{tuple(scan_shape)} (axes 0, 1)")
        d = d.reshape(-1, *d.shape[2:])
    if d.ndim != 3:
        raise InputError(f"{source}: 4D-STEM data must be (n, W, W) or (rows, cols, W, W); "
                         f"got shape {np.asarray(patterns).shape}")
    if d.shape[1] != d.shape[2]:
        raise InputError(f"{source}: detector axes must be square; got {d.shape[1:]} "
                         "(axes -2, -1)")
    pos = np.asarray(positions_a, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise InputError(f"{source}: positions must be (n, 2) Å; got shape {pos.shape}")
    if len(pos) != len(d):
        raise InputError(f"{source}: {len(d)} patterns but {len(pos)} scan positions "
                         "(axis 0 of the data against the scan)")
    # in chunks of patterns, so the checks' boolean temporaries stay small
    chunks = [d[i:i + 256] for i in range(0, len(d), 256)]
    if not all(np.isfinite(c).all() for c in chunks):
        raise InputError(f"{source}: {int((~np.isfinite(d)).sum())} NaN or infinite counts")
    if any((c < 0).any() for c in chunks):
        raise InputError(f"{source}: {int((d < 0).sum())} negative counts (min {d.min():.3g}); "
                         "subtract the background to >= 0 first")
    if not np.isfinite(pos).all():
        raise InputError(f"{source}: scan positions hold NaN")
    return d.astype(np.float32, copy=False)


def _save_checkpoint(path: Path, state: dict) -> None:
    from matterflow.core.store import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def reconstruct(patterns: np.ndarray, positions_a: np.ndarray, *, sampling_a: float,
                energy_ev: float, semiangle_mrad: float, defocus: float = 0.0, cs: float = 0.0,
                n_slices: int = 1, slice_thickness_a: float = 2.0, iterations: int = 20,
                batch_size: int = 64, lr_object: float = 0.01, lr_probe: float = 0.02,
                retrieve_probe: bool = True, probe_start: int = 2,
                object_shape: tuple[int, int] | None = None, seed: int = 0,
                checkpoint: Path | None = None, checkpoint_every: int = 5,
                diverge_factor: float = 1.5, max_retries: int = 8,
                dtype: torch.dtype = torch.float32,
                progress: Callable[[int, int], None] | None = None,
                loss: str = "amplitude", engine: str = "analytic") -> Reconstruction:
    """Reconstruct object slices (and the probe) from ``patterns`` ``(n, W, W)`` (centred).

    ``positions_a`` ``(n, 2)`` Å, ``sampling_a`` object pixel (Å) = λ / (W · detector
    angle per pixel). A ``checkpoint`` file that exists is resumed from.
    ``loss``: ``amplitude`` (``Σ (√I_model − √I)²``) or ``poisson`` (the Poisson deviance
    ``Σ (I_model − I − I ln(I_model / I))``). ``engine``: ``analytic`` (hand-derived
    gradients of :mod:`matterflow.microscopy.ptycho.analytic`, the fast default) or
    ``autograd`` (torch autograd through :mod:`matterflow.microscopy.ptycho.model`, the
    reference); both feed the probe's Adam moments from the start, its step is 0 before
    ``probe_start``.
    """
    if loss not in ("amplitude", "poisson"):
        raise InputError(f"ptychography loss must be 'amplitude' or 'poisson'; got {loss!r}")
    if engine not in ("analytic", "autograd"):
        raise InputError(f"ptychography engine must be 'analytic' or 'autograd'; got {engine!r}")
    d = check_dataset(patterns, positions_a)
    n, w, _ = d.shape
    pos = torch.tensor(np.asarray(positions_a, float), dtype=dtype)
    if object_shape is None:
        ext = np.ceil(np.asarray(positions_a).max(0) / sampling_a).astype(int) + w
        object_shape = (int(ext[0]), int(ext[1]))
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    # one copy of the data (in FFT order for the analytic engine), √counts in place
    meas = torch.from_numpy(np.fft.ifftshift(d, axes=(-2, -1)) if engine == "analytic"
                            else np.array(d)).to(dtype)
    if loss == "amplitude":
        meas = torch.sqrt_(meas)
    if engine == "analytic":
        corners, fracs = analytic.split_positions(positions_a, sampling_a, w)
    scale = math.sqrt(float(d.sum((1, 2)).mean()))
    p0 = probe_wave((w, w), (sampling_a, sampling_a), energy_ev, semiangle_mrad=semiangle_mrad,
                    defocus=defocus, cs=cs, dtype=dtype) * scale
    phase = torch.zeros(n_slices, *object_shape, dtype=dtype, requires_grad=True)
    absorb = torch.zeros(n_slices, *object_shape, dtype=dtype, requires_grad=True)
    pr = p0.real.clone().requires_grad_(True)
    pi = p0.imag.clone().requires_grad_(True)
    pmax = float(p0.abs().max())
    # lr_object is the step of the projected phase: shared among the slices
    opt = torch.optim.Adam([{"params": [phase, absorb], "lr": lr_object / n_slices},
                            {"params": [pr, pi], "lr": lr_probe * pmax}])
    base_lrs = [g["lr"] for g in opt.param_groups]
    prop = (propagator(w, sampling_a, slice_thickness_a, energy_ev, dtype=dtype)
            if n_slices > 1 else None)
    losses: list[float] = []
    retries: list = []
    lr_scale = 1.0
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        st = torch.load(checkpoint, weights_only=True)
        if tuple(st["phase"].shape) != tuple(phase.shape) or tuple(st["probe_re"].shape) != (w, w):
            raise InputError(f"{checkpoint}: checkpoint shapes {tuple(st['phase'].shape)} do not "
                             f"match this reconstruction {tuple(phase.shape)}; remove it")
        with torch.no_grad():
            phase.copy_(st["phase"])
            absorb.copy_(st["absorption"])
            pr.copy_(st["probe_re"])
            pi.copy_(st["probe_im"])
        opt.load_state_dict(st["optimizer"])
        losses = [float(x) for x in st["losses"]]
        lr_scale = float(st["lr_scale"])
        retries = [tuple(r) for r in st["retries"].tolist()] if len(st["retries"]) else []
        start = len(losses)
    resumed_from = start
    gen = torch.Generator().manual_seed(seed)
    prev_snap = None
    if start:  # the batch order and the undo point of an uninterrupted run
        gen.set_state(st["generator"])
        if "prev_phase" in st:
            prev_snap = ([st[f"prev_{k}"] for k in ("phase", "absorption", "probe_re", "probe_im")],
                         st["prev_optimizer"])
    it = start
    def batch_of(idx):
        ix = idx.numpy()
        return analytic.Batch(corners[ix], fracs[ix], object_shape, w, dtype)

    # the loss of the starting object guards the first iteration too
    with torch.no_grad():
        trans = torch.polar(torch.exp(-absorb), phase).to(cdt)
        probe = torch.complex(pr, pi)
        first = 0.0
        for i in range(0, n, batch_size):
            sl = torch.arange(i, min(i + batch_size, n))
            if engine == "analytic":
                first += analytic.loss_only(probe, trans, batch_of(sl), meas[sl], prop, loss)
            else:
                model = far_field(exit_waves(probe, trans, pos[sl], sampling_a, prop))
                first += float(_autograd_loss(model, meas[sl], loss))
        first /= n
    t0 = time.perf_counter()
    while it < iterations:
        snap = ([t.detach().clone() for t in (phase, absorb, pr, pi)],
                _clone_state(opt.state_dict()))
        order = torch.randperm(n, generator=gen)
        total = 0.0
        bad = False
        for g, b in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = b * lr_scale
        probe_on = bool(retrieve_probe and it >= probe_start)
        opt.param_groups[1]["lr"] *= float(probe_on)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            if engine == "analytic":
                with torch.no_grad():
                    trans = torch.polar(torch.exp(-absorb), phase).to(cdt)
                    val, g_obj, g_pr = analytic.loss_and_gradients(
                        torch.complex(pr, pi), trans, batch_of(idx), meas[idx], prop,
                        loss=loss, probe_grad=retrieve_probe)
                    if not math.isfinite(val):
                        bad = True
                        break
                    phase.grad, absorb.grad = analytic.transmission_grads(trans, g_obj)
                    if g_pr is not None:
                        pr.grad, pi.grad = g_pr.real.contiguous(), g_pr.imag.contiguous()
            else:
                trans = torch.polar(torch.exp(-absorb), phase).to(cdt)
                probe = torch.complex(pr, pi)
                model = far_field(exit_waves(probe, trans, pos[idx], sampling_a, prop))
                lval = _autograd_loss(model, meas[idx], loss)
                if not torch.isfinite(lval):
                    bad = True
                    break
                lval.backward()
                val = float(lval.detach())
            opt.step()
            with torch.no_grad():
                absorb.clamp_(min=0)
            total += val
        total /= n
        best = min(losses) if losses else first
        if bad or not math.isfinite(total) or total > diverge_factor * best:
            # the loss of iteration k measures the state the steps of iteration k-1 made:
            # go back to the start of k-1 and redo it with smaller steps
            back = snap
            if prev_snap is not None and losses:
                back = prev_snap
                losses.pop()
                it -= 1
                prev_snap = None
            with torch.no_grad():
                for t, s in zip((phase, absorb, pr, pi), back[0], strict=True):
                    t.copy_(s)
            opt.load_state_dict(back[1])
            lr_scale *= 0.5
            retries.append((it, lr_scale))
            if len(retries) > max_retries:
                raise ComputeError(f"ptychography diverged at iteration {it}: loss {total:.4g} "
                                   f"after {max_retries} retries with smaller steps")
            continue
        losses.append(total)
        prev_snap = snap
        it += 1
        if progress is not None:
            progress(it, total)
        if checkpoint is not None and (it % checkpoint_every == 0 or it == iterations):
            state = {
                "phase": phase.detach(), "absorption": absorb.detach(), "probe_re": pr.detach(),
                "probe_im": pi.detach(), "optimizer": opt.state_dict(),
                "losses": torch.tensor(losses, dtype=torch.float64), "lr_scale": lr_scale,
                "retries": torch.tensor(retries, dtype=torch.float64).reshape(-1, 2),
                "generator": gen.get_state()}
            if prev_snap is not None:
                for k, t in zip(("phase", "absorption", "probe_re", "probe_im"), prev_snap[0],
                                strict=True):
                    state[f"prev_{k}"] = t
                state["prev_optimizer"] = prev_snap[1]
            _save_checkpoint(Path(checkpoint), state)
    sec = time.perf_counter() - t0
    done = max(it - start, 1)
    return Reconstruction(phase.detach().numpy().astype(np.float32),
                          absorb.detach().numpy().astype(np.float32),
                          torch.complex(pr, pi).detach().numpy(), np.array(losses),
                          retries, sec, sec / done, resumed_from)


def _autograd_loss(model: torch.Tensor, meas: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss of modelled intensities against ``meas`` (√counts or counts), same as analytic."""
    if loss == "amplitude":
        return ((torch.sqrt(model + analytic.EPS) - meas) ** 2).sum()
    return (model - meas - meas * torch.log(model + analytic.EPS)
            + torch.xlogy(meas, meas)).sum()


def _clone_state(state: dict) -> dict:
    import copy

    return copy.deepcopy(state)
