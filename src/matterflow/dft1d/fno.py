"""A Fourier neural operator (neuraloperator library) from density to potential.

:class:`DensityToPotentialFNO` learns ``n(x) -> v_Hxc(x)`` (or ``v_KS``) on
the grid of a dataset. It follows scikit-learn: ``__init__`` stores
hyper-parameters, :meth:`fit` trains and returns ``self``, learned state ends
in ``_``, :meth:`predict` before :meth:`fit` raises ``NotFittedError``.

Inputs are two channels, the density and ``log10(n + 1e-8)`` (so the
exponential tails, where the potential is set, are visible), each standardised
over the training set; the network adds the grid position itself
(``positional_embedding="grid"``). The output is standardised per grid point.
The loss is the relative L2 error of the potential, the figure reported.

:func:`evaluate_fno` reports, on any subset of a dataset, the relative L2 error
of the potential, and the relative L1 error of the density that the
predicted potential gives when the KS equation is solved with it.

Units: bohr, Ha, electrons/bohr.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from matterflow.core.errors import InputError, NotFittedError

__all__ = ["DensityToPotentialFNO", "FNOEvaluation", "FNOReport", "evaluate_fno", "holdout_split",
           "relative_l2", "train_and_evaluate"]

#: model files: torch.save of tensors, the state dict and JSON text (read with weights_only=True)
FNO_FORMAT = "matterflow.dft1d.DensityToPotentialFNO/2"


def relative_l2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-sample ``||pred - true||_2 / ||true||_2`` along the last axis."""
    return np.linalg.norm(pred - true, axis=-1) / np.maximum(np.linalg.norm(true, axis=-1), 1e-300)


def _features(density: np.ndarray) -> np.ndarray:
    n = np.clip(np.asarray(density, dtype=np.float64), 0.0, None)
    return np.stack([n, np.log10(n + 1e-8)], axis=1)  # (batch, 2, n_points)


class DensityToPotentialFNO:
    """FNO mapping densities (n_samples, n_points) to potentials (n_samples, n_points).

    Parameters
    ----------
    n_modes : Fourier modes kept per spectral layer
    hidden_channels : width of the operator layers
    n_layers : number of Fourier layers
    epochs : training epochs (Adam, one-cycle learning-rate schedule)
    batch_size : samples per step
    learning_rate : peak Adam learning rate
    weight_decay : Adam weight decay
    seed : torch seed of initialisation and batch order
    threads : torch CPU threads (default 1: several threads slow down on a loaded machine;
        None leaves torch's setting)
    density_weight : λ of the physics loss. The loss is
        ``rel. L2(v) + λ · ∫|n[v_pred] - n| dx / N``, where ``n[v_pred]`` is the KS density
        of the predicted potential from a differentiable batched diagonalisation
        (:mod:`matterflow.dft1d.ks_torch`). 0 trains on the potential only; λ > 0 needs
        ``v_ext`` and ``x`` in :meth:`fit` (for ``target="v_hxc"``).
    physics_loss : the density term: "density_l1" (``∫|n[v_pred] - n| dx / N``, the figure
        reported; its gradient scales with 1/gap) or "wu_yang" (``sqrt((W[v_KS] -
        W[v_pred]) / N)``, Ha^½, with ``W[v] = Σ f_i ε_i[v] - ∫ v n dx`` the Wu–Yang
        functional: ≥ 0, zero only at the KS potential up to a constant, gradient
        ``(n[v] - n) dx`` bounded whatever the gap; see :mod:`matterflow.dft1d.ks_torch`)
    density_warmup : fraction of the epochs trained on the potential loss alone before the
        density term is switched on (a warm start)
    grad_clip : max global gradient norm per step (None: no clipping); the density term's
        gradient scales with 1/gap and spikes for near-degenerate double wells
    target : "v_hxc" (the KS potential is prediction + v_ext) or "v_ks" (the prediction)
    n_electrons, spin : the KS occupations of the physics loss (as
        :func:`matterflow.dft1d.exact.occupations_for`)
    exact_hx : learn ``potential - (1 - 1/N) v_H[n]`` and add that term back, exactly,
        from the input density (needs ``x`` in :meth:`fit`; only for ``target="v_hxc"``).
        ``(1 - 1/N) v_H`` is the Fermi–Amaldi Hartree-exchange potential, exact for a
        singlet pair (``v_x = -v_H/2``) and the reference of the inversion's gauge, so the
        network learns the correlation part only (softened Coulomb, ``softening`` bohr)
    softening : a of the interaction ``1/sqrt((x - x')² + a²)`` for ``exact_hx``, bohr
    warm_start : if True and the model is already fitted (or loaded), :meth:`fit` continues
        from its weights and normalisation (scikit-learn's ``warm_start``), e.g. to fine-tune
        a potential-only model with the density loss
    symmetrise : build the mirror equivariance ``v[n(-x)](x) = v[n](-x)`` in: the prediction is
        ``½ (f(n) + R f(R n))`` with ``R`` the grid reversal (x -> -x on a grid symmetric
        about 0) and the output mean made mirror-symmetric, in training and prediction
        (twice the network evaluations)
    residual_weight : γ of the density-residual weighting (needs ``density_weight > 0``):
        while the density term is on, each sample's loss is weighted by
        ``1 + γ r_i / mean(r)`` (normalised to mean 1), ``r_i = ∫|n[v_pred] - n| dx / N`` of
        the batch's current prediction (no gradient through the weight), so the samples whose
        predicted potential misplaces charge count more; 0: off
    gap_floor : Ha, for ``physics_loss="density_l1"``: the backward pass of the exact KS
        density clips every level spacing ``|ε_i - ε_j|`` at this floor (sign kept), bounding
        the ~1/gap gradient of near-degenerate samples (the forward density and the loss stay
        exact; :class:`matterflow.dft1d.ks_torch.KSDensity`); 0: the exact gradient
    deterministic : train with ``torch.use_deterministic_algorithms(True)`` (restored after);
        with the seeded initialisation and batch order, the same data, settings and seed give
        the same weights on the same machine (to float32 rounding; ``threads`` must be the same)
    """

    def __init__(self, n_modes: int = 16, hidden_channels: int = 48, n_layers: int = 4,
                 epochs: int = 150, batch_size: int = 32, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-5, seed: int = 0, threads: int | None = 1,
                 density_weight: float = 0.0,
                 physics_loss: Literal["density_l1", "wu_yang"] = "density_l1",
                 density_warmup: float = 0.3,
                 grad_clip: float | None = 1.0, target: Literal["v_hxc", "v_ks"] = "v_hxc",
                 n_electrons: int = 2, spin: Literal["unpolarised", "polarised"] = "unpolarised",
                 exact_hx: bool = False, softening: float = 1.0, warm_start: bool = False,
                 symmetrise: bool = False, residual_weight: float = 0.0,
                 deterministic: bool = True, gap_floor: float = 0.0):
        self.n_modes = n_modes
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.seed = seed
        self.threads = threads
        self.density_weight = density_weight
        self.physics_loss = physics_loss
        self.density_warmup = density_warmup
        self.grad_clip = grad_clip
        self.target = target
        self.n_electrons = n_electrons
        self.spin = spin
        self.exact_hx = exact_hx
        self.softening = softening
        self.warm_start = warm_start
        self.symmetrise = symmetrise
        self.residual_weight = residual_weight
        self.deterministic = deterministic
        self.gap_floor = gap_floor

    def _apply(self, net: Any, xin: Any) -> Any:
        """``net(xin)``, or its mirror-symmetrised form (one batched call) if ``symmetrise``."""
        if not self.symmetrise:
            return net(xin)
        import torch

        out = net(torch.cat([xin, xin.flip(-1)]))
        b = xin.shape[0]
        return 0.5 * (out[:b] + out[b:].flip(-1))

    # -- helpers
    def _build(self, n_points: int) -> Any:
        from neuralop.models import FNO

        return FNO(n_modes=(min(self.n_modes, n_points // 2),), in_channels=2, out_channels=1,
                   hidden_channels=self.hidden_channels, n_layers=self.n_layers)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("DensityToPotentialFNO: call fit() (or load()) before predict()")

    def _check_xy(self, density: np.ndarray, potential: np.ndarray | None = None) -> np.ndarray:
        d = np.asarray(density, dtype=float)
        if d.ndim != 2 or d.shape[0] < 1:
            raise InputError(f"density: expected (n_samples, n_points); got shape {d.shape}")
        if not np.all(np.isfinite(d)):
            raise InputError("density: contains NaN or infinite values")
        if potential is not None and np.shape(potential) != d.shape:
            raise InputError(f"potential: shape {np.shape(potential)} differs from density "
                             f"{d.shape}")
        if hasattr(self, "n_points_") and d.shape[1] != self.n_points_:
            raise InputError(f"density: the model was trained on {self.n_points_} grid points; "
                             f"got {d.shape[1]}")
        return d

    def _inputs(self, density: np.ndarray) -> Any:
        import torch

        f = (_features(density) - self.in_mean_[None, :, None]) / self.in_std_[None, :, None]
        return torch.as_tensor(f, dtype=torch.float32)

    # -- API
    def fit(self, density: np.ndarray, potential: np.ndarray, *,
            v_ext: np.ndarray | None = None, x: np.ndarray | None = None,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            progress: Any = None) -> DensityToPotentialFNO:
        """Train on densities and potentials (n_samples, n_points); returns ``self``.

        ``v_ext`` (n_samples, n_points, Ha) and ``x`` (n_points, bohr) are needed when
        ``density_weight > 0`` (``v_ext`` only for ``target="v_hxc"``).
        ``validation`` (density, potential) is scored every epoch into
        ``val_history_``; ``progress(epoch, epochs, train_loss)`` is called per epoch.
        ``loss_history_`` holds the potential term, ``density_loss_history_`` the mean
        density term (nan while it is off).
        """
        import contextlib

        import torch

        d = self._check_xy(density, potential)
        v_full = np.asarray(potential, dtype=float)
        self._check_hyper()
        if self.exact_hx:
            if self.target != "v_hxc":
                raise InputError("exact_hx: only for target 'v_hxc' (v_ext is not an input)")
            if x is None or np.shape(x) != (d.shape[1],):
                raise InputError(f"x: the grid ({d.shape[1]} points, bohr) is needed for "
                                 f"exact_hx; got {None if x is None else np.shape(x)}")
            self.x_ = np.asarray(x, dtype=float)
        v = v_full - self._hx(d)
        lam = float(self.density_weight)
        ks = vext_t = dens_t = hx_t = w_true = None
        if lam > 0:
            from matterflow.dft1d.exact import occupations_for
            from matterflow.dft1d.ks_torch import KSDensity

            if x is None or np.shape(x) != (d.shape[1],):
                raise InputError(f"x: the grid ({d.shape[1]} points, bohr) is needed for the "
                                 f"density loss (density_weight={lam}); got "
                                 f"{None if x is None else np.shape(x)}")
            if self.target == "v_hxc":
                if v_ext is None or np.shape(v_ext) != d.shape:
                    raise InputError(f"v_ext: shape {d.shape} is needed for the density loss "
                                     f"with target v_hxc; got "
                                     f"{None if v_ext is None else np.shape(v_ext)}")
                vext_t = torch.as_tensor(np.asarray(v_ext, float), dtype=torch.float64)
            else:
                vext_t = torch.zeros(d.shape, dtype=torch.float64)
            ks = KSDensity(x, occupations_for(self.n_electrons, self.spin),
                           gap_floor=float(self.gap_floor))
            dens_t = torch.as_tensor(d, dtype=torch.float64)
            hx_t = torch.as_tensor(self._hx(d) + np.zeros(d.shape), dtype=torch.float64)
            if self.physics_loss == "wu_yang":  # W at the exact potential: the maximum
                v_true = torch.as_tensor(v_full, dtype=torch.float64) + vext_t
                w_true = torch.cat([ks.wu_yang(v_true[i:i + 256], dens_t[i:i + 256])
                                    for i in range(0, len(d), 256)])
        if self.threads:
            torch.set_num_threads(int(self.threads))
        with _deterministic() if self.deterministic else contextlib.nullcontext():
            return self._train(d, v, lam, ks, (vext_t, dens_t, hx_t, w_true),
                               progress=progress, validation=validation)

    def _train(self, d: np.ndarray, v: np.ndarray, lam: float, ks: Any, tensors: tuple, *,
               progress: Any, validation: tuple[np.ndarray, np.ndarray] | None
               ) -> DensityToPotentialFNO:
        """The training loop of :meth:`fit` (``tensors``: v_ext, density, Hx, W at the truth)."""
        import torch

        vext_t, dens_t, hx_t, w_true = tensors
        torch.manual_seed(self.seed)
        self._fast_cache = None  # weights change: rebuild the fast inference copy
        warm = bool(self.warm_start) and hasattr(self, "model_")
        if not warm:
            self.n_points_ = d.shape[1]
            f = _features(d)
            self.in_mean_ = f.mean(axis=(0, 2))
            self.in_std_ = f.std(axis=(0, 2)) + 1e-12
            self.out_mean_ = v.mean(axis=0)
            self.out_std_ = float(v.std()) + 1e-12
        if self.symmetrise:  # an equivariant output needs a mirror-symmetric mean
            self.out_mean_ = 0.5 * (self.out_mean_ + self.out_mean_[::-1])
        xin = self._inputs(d)
        y = torch.as_tensor((v - self.out_mean_) / self.out_std_, dtype=torch.float32)[:, None]
        mean_t = torch.as_tensor(self.out_mean_ / self.out_std_, dtype=torch.float32)
        mean64 = torch.as_tensor(self.out_mean_, dtype=torch.float64)
        model = self.model_ if warm else self._build(self.n_points_)
        opt = torch.optim.Adam(model.parameters(), lr=self.learning_rate,
                               weight_decay=self.weight_decay)
        steps = self.epochs * int(np.ceil(len(d) / self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.learning_rate,
                                                    total_steps=max(steps, 1), pct_start=0.1)
        gen = torch.Generator().manual_seed(self.seed)
        self.loss_history_, self.val_history_, self.density_loss_history_ = [], [], []
        first_density_epoch = int(round(self.density_warmup * self.epochs)) if lam > 0 \
            else self.epochs
        t0 = time.perf_counter()
        for epoch in range(self.epochs):
            model.train()
            perm = torch.randperm(len(d), generator=gen)
            total, total_d = 0.0, 0.0
            use_density = epoch >= first_density_epoch
            for i in range(0, len(d), self.batch_size):
                idx = perm[i:i + self.batch_size]
                pred = self._apply(model, xin[idx])
                true = y[idx] + mean_t
                # relative L2 of the potential (in units of its global std), per sample
                per = (torch.linalg.vector_norm(pred - y[idx], dim=-1)
                       / torch.linalg.vector_norm(true, dim=-1))[:, 0]
                total += float(per.detach().sum())
                if use_density:
                    from matterflow.dft1d.ks_torch import density_l1_loss

                    v_ks = (pred[:, 0].double() * self.out_std_ + mean64 + vext_t[idx]
                            + hx_t[idx])
                    resid = None
                    if self.physics_loss == "wu_yang":
                        gap = (w_true[idx] - ks.wu_yang(v_ks, dens_t[idx])) / self.n_electrons
                        dl = torch.sqrt(gap.clamp(min=0.0) + 1e-12)
                    else:
                        resid = density_l1_loss(ks(v_ks), dens_t[idx])
                        dl = resid
                    total_d += float(dl.detach().sum())
                    per = per + lam * dl.float()
                    if self.residual_weight > 0:
                        with torch.no_grad():
                            r = resid if resid is not None else density_l1_loss(
                                ks(v_ks.detach()), dens_t[idx])
                            w = 1.0 + self.residual_weight * r / (r.mean() + 1e-12)
                        per = per * (w / w.mean()).float()
                loss = per.mean()
                opt.zero_grad()
                loss.backward()
                if self.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(self.grad_clip))
                opt.step()
                sched.step()
            self.loss_history_.append(total / len(d))
            self.density_loss_history_.append(total_d / len(d) if use_density else float("nan"))
            self.model_ = model
            if validation is not None:
                pv = self.predict(validation[0], fast=False)
                self.val_history_.append(float(relative_l2(pv, validation[1]).mean()))
            if progress is not None:
                progress(epoch + 1, self.epochs, self.loss_history_[-1])
        self.model_ = model.eval()
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_parameters_ = int(sum(p.numel() for p in model.parameters()))
        return self

    def _hx(self, density: np.ndarray) -> np.ndarray | float:
        """``(1 - 1/N) v_H[n]`` (Ha) per sample if ``exact_hx``, else 0."""
        if not self.exact_hx:
            return 0.0
        from matterflow.dft1d.grid import softened_coulomb

        x = self.x_
        w = softened_coulomb(x[:, None] - x[None, :], self.softening) * (x[1] - x[0])
        return (1.0 - 1.0 / self.n_electrons) * (np.asarray(density, float) @ w.T)

    def _check_hyper(self) -> None:
        if not (isinstance(self.density_weight, int | float) and self.density_weight >= 0):
            raise InputError(f"density_weight: must be >= 0; got {self.density_weight!r}")
        if self.physics_loss not in ("density_l1", "wu_yang"):
            raise InputError(f"physics_loss: accepted 'density_l1', 'wu_yang'; got "
                             f"{self.physics_loss!r}")
        if not 0 <= self.density_warmup < 1:
            raise InputError(f"density_warmup: a fraction in [0, 1); got {self.density_warmup!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InputError(f"grad_clip: must be > 0 or None; got {self.grad_clip!r}")
        if self.target not in ("v_hxc", "v_ks"):
            raise InputError(f"target: accepted 'v_hxc', 'v_ks'; got {self.target!r}")
        if not (isinstance(self.residual_weight, int | float) and self.residual_weight >= 0):
            raise InputError(f"residual_weight: must be >= 0; got {self.residual_weight!r}")
        if not (isinstance(self.gap_floor, int | float) and self.gap_floor >= 0):
            raise InputError(f"gap_floor: a level spacing >= 0 Ha; got {self.gap_floor!r}")
        if self.residual_weight > 0 and not self.density_weight > 0:
            raise InputError("residual_weight: the density-residual weighting needs the density "
                             f"term (density_weight > 0); got density_weight={self.density_weight!r}")

    def predict(self, density: np.ndarray, batch_size: int = 1024, *,
                fast: bool = True) -> np.ndarray:
        """Potentials (n_samples, n_points), Ha, predicted from densities (electrons/bohr).

        Runs under ``torch.inference_mode`` in float32, ``batch_size`` samples at a time.
        ``fast`` uses the dense-product re-implementation of the trained network
        (:mod:`matterflow.dft1d.fno_fast`, same output to float32 rounding); False runs
        the neuraloperator module itself.
        """
        import torch

        self._check_fitted()
        d = self._check_xy(density)
        net = self._fast_net() if fast else self.model_.eval()
        out = np.empty(d.shape, dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(d), batch_size):
                out[i:i + batch_size] = self._apply(net, self._inputs(d[i:i + batch_size])
                                                    )[:, 0].numpy()
        return out.astype(float) * self.out_std_ + self.out_mean_ + self._hx(d)

    def _fast_net(self) -> Any:
        from matterflow.dft1d.fno_fast import fast_fno_from

        cached = getattr(self, "_fast_cache", None)
        if cached is None or cached[0] is not self.model_:
            self.model_.eval()
            self._fast_cache = (self.model_, fast_fno_from(self.model_, self.n_points_))
        return self._fast_cache[1]

    def save(self, path: str | Path) -> Path:
        """Write hyper-parameters, normalisation and weights to a ``.pt`` file."""
        import torch

        from matterflow.core.store import atomic_write_bytes

        self._check_fitted()
        hyper = {k: getattr(self, k) for k in ("n_modes", "hidden_channels", "n_layers", "epochs",
                                              "batch_size", "learning_rate", "weight_decay",
                                              "seed", "threads", "density_weight", "physics_loss",
                                              "density_warmup", "grad_clip", "target",
                                              "n_electrons", "spin", "exact_hx", "softening",
                                              "warm_start", "symmetrise", "residual_weight",
                                              "deterministic", "gap_floor")}
        meta = {"hyper": hyper, "n_points": int(self.n_points_),
                "out_std": float(self.out_std_),
                "loss_history": [float(v) for v in self.loss_history_]}
        arrays = {k: torch.as_tensor(np.asarray(getattr(self, k + "_"), dtype=float))
                  for k in ("in_mean", "in_std", "out_mean")}
        if getattr(self, "x_", None) is not None:
            arrays["x"] = torch.as_tensor(np.asarray(self.x_, dtype=float))
        buf = io.BytesIO()
        # tensors only: neuralop adds its constructor arguments (functions, classes) as
        # "_metadata", which are rebuilt from the hyper-parameters instead
        state = {k: v for k, v in self.model_.state_dict().items() if isinstance(v, torch.Tensor)}
        torch.save({"format": FNO_FORMAT, "meta": json.dumps(meta), **arrays,
                    "state": state}, buf)
        return atomic_write_bytes(path, buf.getvalue())  # no half-written model file

    @classmethod
    def load(cls, path: str | Path, *, trust_pickle: bool = False) -> DensityToPotentialFNO:
        """Read a model written by :meth:`save`.

        Nothing is unpickled (``torch.load(weights_only=True)``); a file of an older
        matterflow (numpy arrays pickled) loads only with ``trust_pickle``.
        """
        from matterflow.core.safeload import load_torch, not_readable

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such model file")
        what = ("a saved DensityToPotentialFNO model (fno.pt of `matterflow dft1d train-fno`)")
        blob = load_torch(path.read_bytes(), source=str(path), what=what,
                          trust_pickle=trust_pickle)
        if not isinstance(blob, dict):
            raise InputError(f"{path}: not {what}")
        fmt = blob.get("format")
        try:
            if fmt == FNO_FORMAT:
                meta = json.loads(blob["meta"])
                arrays = {k: blob[k].numpy() for k in ("in_mean", "in_std", "out_mean")}
                x = blob["x"].numpy() if "x" in blob else None
            elif fmt is None and trust_pickle and "hyper" in blob:  # the format before tags
                meta = {k: blob.get(k) for k in ("hyper", "n_points", "out_std",
                                                  "loss_history")}
                arrays = {k: np.asarray(blob[k]) for k in ("in_mean", "in_std", "out_mean")}
                x = blob.get("x")
            else:
                raise InputError(f"{path}: not {what} (format tag {fmt!r}; accepted "
                                 f"{FNO_FORMAT!r})")
            self = cls(**meta["hyper"])
            self.n_points_ = int(meta["n_points"])
            self.in_mean_, self.in_std_ = arrays["in_mean"], arrays["in_std"]
            self.out_mean_, self.out_std_ = arrays["out_mean"], meta["out_std"]
            if x is not None:
                self.x_ = np.asarray(x, dtype=float)
            self.loss_history_ = list(meta.get("loss_history") or [])
            self.model_ = self._build(self.n_points_)
            self.model_.load_state_dict(blob["state"])
        except InputError:
            raise
        except Exception as exc:  # a missing key, a wrong shape: a damaged or foreign file
            raise not_readable(str(path), what, exc) from None
        self.model_.eval()
        return self


def _deterministic() -> Any:
    """Context: ``torch.use_deterministic_algorithms(True)``, the previous setting restored."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def ctx() -> Any:
        prev = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev)

    return ctx()


@dataclass(frozen=True)
class FNOEvaluation:
    """Errors of predicted potentials on a set of samples.

    ``potential_rel_l2`` (n,): ||v_pred - v||₂/||v||₂; ``density_rel_l1`` (n,):
    ∫|n[v_pred] - n| dx / ∫ n dx, with n[v] the KS density of the potential;
    ``predicted_density`` (n, n_points).
    """

    predicted: np.ndarray
    predicted_density: np.ndarray
    potential_rel_l2: np.ndarray
    density_rel_l1: np.ndarray
    seconds_per_sample: float


def evaluate_fno(model: DensityToPotentialFNO, x: np.ndarray, density: np.ndarray,
                 v_ext: np.ndarray, true_potential: np.ndarray, *,
                 target: Literal["v_hxc", "v_ks"] = "v_hxc", n_electrons: int = 2,
                 spin: Literal["unpolarised", "polarised"] = "unpolarised",
                 stencil: int = 5) -> FNOEvaluation:
    """Score ``model`` on samples: potential error, and density of the predicted potential."""
    from matterflow.dft1d.exact import occupations_for, solve_noninteracting

    t0 = time.perf_counter()
    pred = model.predict(density)
    per = (time.perf_counter() - t0) / max(1, len(pred))
    v_ks = pred + v_ext if target == "v_hxc" else pred
    occ = occupations_for(n_electrons, spin)
    dens = np.stack([solve_noninteracting(v, x, occ, stencil=stencil, n_states=len(occ)).density
                     for v in v_ks])
    rel_l1 = np.abs(dens - density).sum(axis=1) / np.asarray(density).sum(axis=1)
    return FNOEvaluation(predicted=pred, predicted_density=dens,
                         potential_rel_l2=relative_l2(pred, true_potential),
                         density_rel_l1=rel_l1, seconds_per_sample=per)


@dataclass(frozen=True)
class FNOReport:
    """Training and evaluation of one FNO on a dataset (see :func:`train_and_evaluate`).

    Errors are per sample of the ``test`` split (in distribution) and the ``ood``
    split (held-out family, empty if none); timings are seconds per sample,
    both measured in the same run.
    """

    test_rel_l2: np.ndarray
    test_density_rel_l1: np.ndarray
    ood_rel_l2: np.ndarray
    ood_density_rel_l1: np.ndarray
    ood_family: str
    test_index: np.ndarray
    ood_index: np.ndarray
    test: FNOEvaluation
    ood: FNOEvaluation | None
    fno_seconds_per_sample: float
    inversion_seconds_per_sample: float
    wu_yang_seconds_per_sample: float
    n_timed_inversions: int
    fit_seconds: float


def train_and_evaluate(x: np.ndarray, v_ext: np.ndarray, density: np.ndarray,
                       potential: np.ndarray, split: list[str], family: list[str], *,
                       target: Literal["v_hxc", "v_ks"] = "v_hxc", n_timing: int = 20,
                       progress: Any = None, init: DensityToPotentialFNO | None = None,
                       spin: Literal["singlet", "triplet"] = "singlet",
                       **model_kwargs: Any) -> tuple[DensityToPotentialFNO, FNOReport]:
    """Fit on ``train`` (scored on ``val``), evaluate on ``test`` and ``ood``, time both solvers.

    ``spin`` is the spin state of the dataset's two electrons (its ``attrs["spin"]``); it
    sets the KS occupations of the physics loss, of the density check and of the timed
    inversions: a singlet fills one orbital with two electrons, a triplet two orbitals
    with one each.

    ``init`` (a fitted or loaded model) is trained further (warm start) with the
    training settings in ``model_kwargs``; its architecture and normalisation are kept.

    The numerical inversion is timed on ``n_timing`` test densities
    (:func:`matterflow.dft1d.inversion.invert_density`, default tolerance), both the
    default path (exact one-orbital start for singlet pairs) and the general Wu–Yang
    path (``guess="reference"``);
    the FNO on 4096 test densities (repeated) in batches of 1024.
    """
    from matterflow.dft1d.inversion import invert_density

    if spin not in ("singlet", "triplet"):
        raise InputError(f"spin: accepted singlet, triplet; got {spin!r}")
    occupation = "polarised" if spin == "triplet" else "unpolarised"
    model_kwargs = {**model_kwargs, "n_electrons": 2, "spin": occupation}
    split = np.asarray(list(split))
    family = list(family)
    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    te, od = np.flatnonzero(split == "test"), np.flatnonzero(split == "ood")
    if len(tr) == 0 or len(te) == 0:
        raise InputError(f"split: need 'train' and 'test' samples; got {len(tr)} train, "
                         f"{len(te)} test")
    if init is not None:
        init._check_fitted()
        if init.n_points_ != density.shape[1]:
            raise InputError(f"init: the model was trained on {init.n_points_} grid points; "
                             f"the dataset has {density.shape[1]}")
        arch = {"n_modes", "hidden_channels", "n_layers"}
        model = init
        for k, val in model_kwargs.items():
            if k not in arch:
                setattr(model, k, val)
        model.target, model.warm_start = target, True
    else:
        model = DensityToPotentialFNO(target=target, **model_kwargs)
    val = (density[va], potential[va]) if len(va) else None
    model.fit(density[tr], potential[tr], v_ext=v_ext[tr], x=x, validation=val,
              progress=progress)
    occ = {"n_electrons": 2, "spin": occupation}
    ev_te = evaluate_fno(model, x, density[te], v_ext[te], potential[te], target=target, **occ)
    ev_od = evaluate_fno(model, x, density[od], v_ext[od], potential[od], target=target, **occ) \
        if len(od) else None
    # timings in one run: batched FNO on all test densities vs numerical inversion
    import time as _t

    batch = np.tile(density[te], (int(np.ceil(4096 / len(te))), 1))[:4096]
    model.predict(batch[:64])  # warm-up
    t0 = _t.perf_counter()
    model.predict(batch, batch_size=1024)
    fno_per = (_t.perf_counter() - t0) / len(batch)
    k = min(n_timing, len(te))
    t0 = _t.perf_counter()
    for i in te[:k]:
        invert_density(density[i], v_ext[i], x, **occ, on_failure="warn")
    inv_per = (_t.perf_counter() - t0) / max(1, k)
    t0 = _t.perf_counter()  # the general path (reference start), as for triplets or N > 2
    for i in te[:k]:
        invert_density(density[i], v_ext[i], x, **occ, guess="reference",
                       on_failure="warn")
    wy_per = (_t.perf_counter() - t0) / max(1, k)
    oodf = sorted({family[i] for i in od})
    empty = np.zeros(0)
    return model, FNOReport(
        test_rel_l2=ev_te.potential_rel_l2, test_density_rel_l1=ev_te.density_rel_l1,
        ood_rel_l2=ev_od.potential_rel_l2 if ev_od else empty,
        ood_density_rel_l1=ev_od.density_rel_l1 if ev_od else empty,
        ood_family=",".join(oodf), test_index=te, ood_index=od, test=ev_te, ood=ev_od,
        fno_seconds_per_sample=fno_per, inversion_seconds_per_sample=inv_per,
        wu_yang_seconds_per_sample=wy_per, n_timed_inversions=k, fit_seconds=model.fit_seconds_)


def holdout_split(split: list[str], family: list[str], holdout: str) -> list[str]:
    """Splits with every sample of family ``holdout`` moved to ``ood``."""
    if holdout not in set(family):
        raise InputError(f"holdout_family: {holdout!r} is not in the dataset; its families: "
                         f"{', '.join(sorted(set(family)))}")
    return ["ood" if f == holdout else s for s, f in zip(split, family, strict=True)]
