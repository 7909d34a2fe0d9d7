"""What the two parametric PINNs share: the causal loss, the Adam → L-BFGS fit, the model file.

:class:`ParametricPINN` is the skeleton of :class:`~matterflow.dft1d.pinn.TDSEPINN`
and :class:`~matterflow.dft1d.pinn_tdks.TDKSPINN`. A subclass states its settings
(``_PARAM_NAMES``), its file format tag (``FORMAT``) and three steps of its physics:

``_init_model()``
    validate the settings, compute the initial state(s) and build a fresh ``model_``;
``_sample(rng, n)``
    draw collocation points ``(batch, per)``: a tuple of tensors whose points come
    sorted in ``n_time_bins`` equal time strata of ``per`` points each;
``_squared_residual(batch)``
    the ``(n,)`` squared residual at those points.

Training (:meth:`ParametricPINN.fit`): Adam on fresh points every step, its rate
decaying ×0.1 over the run, with *causal weights* (Wang, Sankaran & Perdikaris
2022: stratum k weighs ``exp(−ε Σ_{j<k} L_j)``), then L-BFGS on a fixed point set
(4× the Adam batch). Models are written with ``torch.save`` of tensors and JSON
text and read back with ``weights_only=True``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from matterflow.core.errors import ComputeError, InputError, NotFittedError

__all__ = ["ParametricPINN", "break_even_queries"]


class ParametricPINN:
    """Base of the parametric PINNs (scikit-learn habits: settings in ``__init__``, ``fit``
    returns ``self``, learned state ends in ``_``)."""

    FORMAT: ClassVar[str]                 # the format tag of the model file
    _PARAM_NAMES: ClassVar[tuple[str, ...]]
    _BATCH_PARAM: ClassVar[str]           # the setting that sizes an Adam batch
    _WHAT: ClassVar[str]                  # what a model file is, for error messages

    model_: Any                           # the torch network, once built
    fit_time_s_: float
    fit_cpu_time_s_: float
    loss_history_: np.ndarray
    n_time_bins: int
    causal_eps: float
    adam_steps: int
    lbfgs_steps: int
    learning_rate: float
    seed: int
    n_threads: int

    # ------------------------------------------------------------------ subclass hooks
    def _init_model(self) -> None:
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, n: int) -> tuple[tuple[Any, ...], int]:
        raise NotImplementedError

    def _squared_residual(self, batch: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    @staticmethod
    def _legacy_file(blob: dict) -> tuple[dict, float, np.ndarray] | None:
        """``(params, fit_time_s, loss_history)`` of an older file format, if one is known."""
        return None

    # ------------------------------------------------------------------ settings
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (NumPy scalars as Python numbers, sequences as lists)."""
        out: dict[str, Any] = {}
        for k in self._PARAM_NAMES:
            v = getattr(self, k)
            out[k] = (float(v) if isinstance(v, np.floating) else int(v) if isinstance(v, np.integer)
                      else [int(s) for s in v] if isinstance(v, (tuple, list)) else v)
        return out

    # ------------------------------------------------------------------ the loss
    def _loss(self, batch: tuple[Any, ...], per: int):
        """Causally weighted mean squared residual over the time strata; also the plain mean."""
        import torch

        sq = self._squared_residual(tuple(b.detach().clone() for b in batch))
        sq = sq.reshape(int(self.n_time_bins), per).mean(dim=1)
        if self.causal_eps > 0:
            with torch.no_grad():
                w = torch.exp(-self.causal_eps * torch.cumsum(
                    torch.cat([sq.new_zeros(1), sq[:-1]]), dim=0))
            return (w * sq).mean(), sq.mean()
        return sq.mean(), sq.mean()

    def _residual_on(self, n: int, seed: int) -> float:
        """Mean squared residual (no causal weights) on a fresh batch ``_sample(rng(seed), n)``."""
        self._check_fitted()
        batch, per = self._sample(np.random.default_rng(seed), n)
        return float(self._loss(batch, per)[1].detach())

    # ------------------------------------------------------------------ training
    def fit(self, progress: Callable[[int, int, float], None] | None = None) -> Self:
        """Train; ``progress(step, total_steps, residual)`` is called along the way. Returns self.

        Raises :class:`ComputeError` when the residual becomes NaN/inf.
        """
        import torch

        old_threads = torch.get_num_threads()
        if self.n_threads:
            torch.set_num_threads(int(self.n_threads))
        try:
            torch.manual_seed(int(self.seed))
            rng = np.random.default_rng(int(self.seed))
            self._init_model()
            history: list[float] = []
            total = int(self.adam_steps) + int(self.lbfgs_steps)
            n_batch = int(getattr(self, self._BATCH_PARAM))
            start, cpu_start = time.perf_counter(), time.process_time()
            if self.adam_steps:
                opt = torch.optim.Adam(self.model_.parameters(), lr=float(self.learning_rate))
                sched = torch.optim.lr_scheduler.ExponentialLR(
                    opt, gamma=0.1 ** (1.0 / max(1, int(self.adam_steps))))
                for step in range(int(self.adam_steps)):
                    batch, per = self._sample(rng, n_batch)
                    loss, plain = self._loss(batch, per)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    history.append(float(plain.detach()))
                    if not np.isfinite(history[-1]):
                        break
                    if progress is not None:
                        progress(step + 1, total, history[-1])
            if self.lbfgs_steps and (not history or np.isfinite(history[-1])):
                batch, per = self._sample(rng, 4 * n_batch)
                opt = torch.optim.LBFGS(self.model_.parameters(), lr=1.0, max_iter=20,
                                        history_size=50, line_search_fn="strong_wolfe")
                done = 0
                while done < self.lbfgs_steps:
                    def closure():
                        opt.zero_grad()
                        loss, _ = self._loss(batch, per)
                        loss.backward()
                        return loss
                    opt.step(closure)
                    done += 20
                    history.append(float(self._loss(batch, per)[1].detach()))
                    if progress is not None:
                        progress(int(self.adam_steps) + min(done, int(self.lbfgs_steps)), total,
                                 history[-1])
            self.fit_time_s_ = time.perf_counter() - start
            self.fit_cpu_time_s_ = time.process_time() - cpu_start
            self.loss_history_ = np.asarray(history, dtype=float)
        finally:
            torch.set_num_threads(old_threads)
        if not np.all(np.isfinite(self.loss_history_)):
            raise ComputeError(f"{type(self).__name__} training diverged: the residual became "
                               "NaN/inf; lower learning_rate")
        self.model_.eval()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not trained yet: call fit() or load()")

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """``torch.save`` of ``{"format", "meta" (JSON: params, fit times), "state",
        "loss_history"}`` — tensors and text only, read back with ``weights_only=True``."""
        import torch

        self._check_fitted()
        meta = {"params": self.get_params(), "fit_time_s": float(self.fit_time_s_),
                "fit_cpu_time_s": float(getattr(self, "fit_cpu_time_s_", float("nan")))}
        buf = io.BytesIO()
        torch.save({"format": self.FORMAT, "meta": json.dumps(meta),
                    "state": self.model_.state_dict(),
                    "loss_history": torch.as_tensor(np.asarray(self.loss_history_, dtype=float))},
                   buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "model", trust_pickle: bool = False) -> Self:
        """Rebuild a model written by :meth:`to_bytes` (``where`` names it in errors).

        Nothing is unpickled unless ``trust_pickle`` is given for an older format that
        needs it (see the subclass).
        """
        from matterflow.core.safeload import load_torch, not_readable

        blob = load_torch(bytes(data), source=where, what=cls._WHAT, trust_pickle=trust_pickle)
        fmt = blob.get("format") if isinstance(blob, dict) else None
        try:
            if fmt == cls.FORMAT:
                meta = json.loads(blob["meta"])
                params, fit_time = meta["params"], meta["fit_time_s"]
                fit_cpu = meta.get("fit_cpu_time_s", float("nan"))
                history = blob["loss_history"].numpy()
            else:
                legacy = cls._legacy_file(blob) if trust_pickle else None
                if legacy is None:
                    raise InputError(f"{where}: not {cls._WHAT} (format tag {fmt!r}; accepted "
                                     f"{cls.FORMAT!r})")
                params, fit_time, history = legacy
                fit_cpu = float("nan")
            model = cls(**params)
            model._init_model()
            model.model_.load_state_dict(blob["state"])
        except InputError:
            raise
        except Exception as exc:  # a missing key, a wrong shape: a damaged or foreign file
            raise not_readable(where, cls._WHAT, exc) from None
        model.model_.eval()
        model.loss_history_ = np.asarray(history, dtype=float)
        model.fit_time_s_ = float(fit_time)
        model.fit_cpu_time_s_ = float(fit_cpu)
        return model

    def save(self, path: str | Path) -> Path:
        """Write the trained model to ``path`` (appears only when complete); returns the path."""
        from matterflow.core.store import atomic_write_bytes

        return atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path, *, trust_pickle: bool = False) -> Self:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: model file not found")
        return cls.from_bytes(path.read_bytes(), where=str(path), trust_pickle=trust_pickle)


def break_even_queries(train_time_s: float, inference_time_s: float,
                       reference_time_s: float) -> float:
    """New queries after which training + PINN queries cost less than reference runs.

    ``n* = ceil(train / (reference − inference))``; ``inf`` when a PINN query is not
    cheaper than a reference run (it never breaks even).
    """
    gain = reference_time_s - inference_time_s
    return float("inf") if gain <= 0 else float(np.ceil(train_time_s / gain))
