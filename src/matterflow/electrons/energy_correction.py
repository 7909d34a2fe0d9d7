"""Energy correction of an LDOS model: a local, extensive ridge model of its band/total energy residual.

Why: a network trained on the LDOS mean-squared error reproduces the LDOS of
each grid point well (density within 1 %) but not the *cell-to-cell* variation
of the band energy of small thermal cells: the band energy passes through the
Fermi level, a global quantity, and an error of a few meV in it is several
meV/atom of band energy. In 8-atom Al at 298 K the network's band energy
regresses to the mean (errors up to ±20 meV/atom even on its training cells),
while a linear model of cell integrals of the same descriptors predicts the
residual to ~5 meV/atom. This module holds that linear model; :mod:`matterflow.electrons.correct`
fits it to a trained model's predictions.

Model (for band and total energy separately), a sum of per-grid-point terms::

    ΔE(cell) = Σ_r ΔV [a · x(r) + b · x(r)²] + c · V

with ``x(r)`` the model's descriptors at grid point ``r``, ``ΔV`` the voxel
volume and ``V`` the cell volume (Å³). Being a sum over grid points it is
extensive: a supercell of ``n`` copies gets ``n`` times the correction. The
coefficients are fitted by ridge regression to the residuals DFT − model of
training snapshots (features standardised over the snapshots, constant not
penalised), with the ridge strength chosen by leave-one-out error (closed form,
``e_i = r_i / (1 − H_ii)``). Δ-learning of this kind is standard for ML
energies; here it only corrects energies, not the LDOS, density or Fermi level.

Domain of applicability. A linear model is only as good as its training cells
cover the cell it is applied to. The correction keeps the statistics of its
training cells' features per volume (intensive, so cells of any size compare)
and gives each new cell its leverage ``h = z̃ᵀ (Z̃ᵀZ̃ + λP)⁻¹ z̃`` (``z̃`` the
standardised features plus 1): the ridge's own measure of how far the cell is
from the training cells, in every direction of feature space, including those
in which the training cells hardly vary. ``h`` above the largest leverage of a
training cell means the correction extrapolates; :func:`predict_observables`
warns then. (Measured: a 240-cell fit, λ = 1e-4, gave 16-atom cells h = 7–24
against at most 0.78 on its 8-atom training cells, and band-energy errors up to
52 meV/atom; its two worst 8-atom test cells had the highest leverage, 2.3 and 2.5.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["EnergyCorrection", "cell_features", "feature_domain", "fit_ridge_loo"]

LAMBDAS = tuple(10.0 ** k for k in range(-4, 4))


def cell_features(desc: np.ndarray, voxel_volume: float) -> np.ndarray:
    """Cell integrals ``ΔV Σ_r [x(r), x(r)²]`` of descriptors ``desc`` (n_points, n_features) → (2 n_features,)."""
    x = np.asarray(desc, dtype=np.float64).reshape(-1, np.shape(desc)[-1])
    return voxel_volume * np.concatenate([x.sum(0), (x * x).sum(0)])


def _ridge_inverse(z: np.ndarray, lam: float) -> np.ndarray:
    """``(AᵀA + λP)⁺`` of the standardised design ``A = [z, 1]`` (constant not penalised)."""
    a = np.c_[z, np.ones(len(z))]
    return np.linalg.pinv(a.T @ a + lam * np.diag(np.r_[np.ones(z.shape[1]), 0.0]))


def fit_ridge_loo(features: np.ndarray, volumes: np.ndarray, target: np.ndarray,
                  lambdas: tuple[float, ...] = LAMBDAS) -> tuple[np.ndarray, float, float, float]:
    """Ridge fit ``target ≈ features @ w + c · volumes`` with the ridge strength chosen by leave-one-out.

    Parameters
    ----------
    features : (n_cells, n_f)
        Cell features (:func:`cell_features`).
    volumes : (n_cells,)
        Cell volumes, Å³.
    target : (n_cells,)
        Residual energies, eV per cell.

    Returns
    -------
    w : (n_f,) coefficients on the raw features; c : float, eV/Å³;
    lambda : the chosen ridge strength; loo_rmse : leave-one-out rms error (eV per cell).
    """
    p = np.asarray(features, dtype=np.float64)
    v = np.asarray(volumes, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    n = len(y)
    if p.ndim != 2 or p.shape[0] != n or v.shape != (n,):
        raise InputError(f"features: (n_cells, n_features) with n_cells = {n} = len(volumes) needed; "
                         f"got {p.shape}, volumes {v.shape}")
    if n < 3:
        raise InputError(f"snapshots: at least 3 are needed to fit and cross-validate the correction; got {n}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y)) and np.all(v > 0)):
        raise InputError("features/target: NaN or infinite values, or a cell volume <= 0")
    mu, sd = p.mean(0), p.std(0)
    sd[sd <= 1e-12 * np.maximum(np.abs(mu), 1e-300)] = np.inf     # constant feature: dropped (weight 0)
    z = (p - mu) / sd
    a = np.c_[z, np.ones(n)]
    best = None
    for lam in lambdas:
        inv = _ridge_inverse(z, lam)
        w = inv @ a.T @ y
        h = np.einsum("ij,jk,ik->i", a, inv, a)
        loo = (a @ w - y) / np.clip(1.0 - h, 1e-12, None)
        rmse = float(np.sqrt(np.mean(loo ** 2)))
        if best is None or rmse < best[3]:
            best = (w, lam, inv, rmse)
    w, lam, _, rmse = best
    coef = w[:-1] / sd
    const = float(w[-1] - mu @ coef)           # eV per cell, at the training volumes
    return coef, const / float(v.mean()), float(lam), rmse


@dataclass(frozen=True)
class EnergyCorrection:
    """Fitted correction; ``apply`` gives the band and total energy corrections (eV) of a cell.

    Attributes
    ----------
    band_coef, total_coef : tuple of float (2 n_features,)
        Coefficients on :func:`cell_features` (eV per Å³ per feature unit).
    band_per_volume_ev, total_per_volume_ev : float
        Constant terms per cell volume, eV/Å³.
    band_lambda, total_lambda : float
        Ridge strengths chosen by leave-one-out.
    band_loo_mev_per_atom, total_loo_mev_per_atom : float
        Leave-one-out rms error of the fit, meV/atom.
    n_snapshots : int
        Training cells of the fit.
    band_uncorrected_rms_mev_per_atom, total_uncorrected_rms_mev_per_atom : float
        Rms residual of the uncorrected model on the same cells, meV/atom: the correction
        is worth having only where its leave-one-out error is clearly below this (None for
        corrections saved before it was recorded).
    domain : dict or None
        Applicability domain (see the module docstring): ``mean`` and ``scale`` of the
        training cells' features per Å³, ``inverse`` (the ridge's ``(Z̃ᵀZ̃ + λP)⁻¹`` at the
        smaller of the two λ, the more cautious), ``max_training_leverage``. None for
        corrections saved before it existed (no check then).
    """

    band_coef: tuple[float, ...]
    total_coef: tuple[float, ...]
    band_per_volume_ev: float
    total_per_volume_ev: float
    band_lambda: float
    total_lambda: float
    band_loo_mev_per_atom: float
    total_loo_mev_per_atom: float
    n_snapshots: int
    domain: dict[str, Any] | None = None
    band_uncorrected_rms_mev_per_atom: float | None = None
    total_uncorrected_rms_mev_per_atom: float | None = None

    def summary(self) -> str:
        """One line: cells, leave-one-out and uncorrected rms (meV/atom), ridge strengths."""
        raw = ""
        if self.band_uncorrected_rms_mev_per_atom is not None:
            raw = (f" (uncorrected {self.band_uncorrected_rms_mev_per_atom:.2f}, "
                   f"{self.total_uncorrected_rms_mev_per_atom:.2f})")
        return (f"energy correction fitted on {self.n_snapshots} snapshots: leave-one-out rms band "
                f"{self.band_loo_mev_per_atom:.2f}, total {self.total_loo_mev_per_atom:.2f} meV/atom{raw} "
                f"(ridge λ {self.band_lambda:g}, {self.total_lambda:g})")

    def caveats(self) -> list[str]:
        """Reasons not to trust this fit, in words (empty when there are none)."""
        out = []
        n_f = int(np.isfinite(np.asarray(self.domain["scale"], dtype=float)).sum()) if self.domain else len(self.band_coef)
        if self.n_snapshots <= n_f + 1:
            out.append(f"fitted on {self.n_snapshots} cells with {n_f} varying features: it can interpolate its "
                       f"training cells, so every new cell lies outside its domain; use more cells than features")
        for name, loo, raw in (("band", self.band_loo_mev_per_atom, self.band_uncorrected_rms_mev_per_atom),
                               ("total", self.total_loo_mev_per_atom, self.total_uncorrected_rms_mev_per_atom)):
            if raw is not None and loo >= 0.9 * raw:
                out.append(f"{name} energy: leave-one-out rms {loo:.2f} meV/atom is not clearly below the "
                           f"uncorrected {raw:.2f}; the correction is unlikely to help")
        return out

    def leverage(self, features: np.ndarray, volume: float) -> float | None:
        """Leverage of a cell (``features`` from :func:`cell_features`, ``volume`` Å³) in the fit's
        feature space; compare with ``domain["max_training_leverage"]``. None without a domain."""
        if not self.domain:
            return None
        f = np.asarray(features, dtype=np.float64) / float(volume)
        scale = np.asarray(self.domain["scale"], dtype=np.float64)
        z = np.where(np.isfinite(scale), (f - np.asarray(self.domain["mean"])) / scale, 0.0)
        zt = np.r_[z, 1.0]
        return float(zt @ np.asarray(self.domain["inverse"], dtype=np.float64) @ zt)

    def extrapolates(self, features: np.ndarray, volume: float) -> bool:
        """True when the cell's leverage exceeds that of every training cell."""
        h = self.leverage(features, volume)
        return h is not None and h > float(self.domain["max_training_leverage"]) * (1 + 1e-9)

    def apply(self, features: np.ndarray, volume: float) -> tuple[float, float]:
        """(band, total) correction in eV of a cell with ``features`` (:func:`cell_features`) and ``volume`` Å³."""
        f = np.asarray(features, dtype=np.float64)
        if f.shape != (len(self.band_coef),):
            raise InputError(f"features: {len(self.band_coef)} cell features expected by the energy correction "
                             f"(2 × the descriptors it was fitted with); got {f.shape}")
        return (float(f @ np.asarray(self.band_coef) + self.band_per_volume_ev * volume),
                float(f @ np.asarray(self.total_coef) + self.total_per_volume_ev * volume))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["band_coef"] = [float(c) for c in self.band_coef]
        d["total_coef"] = [float(c) for c in self.total_coef]
        if self.domain:
            dom = self.domain
            d["domain"] = {"mean": [float(v) for v in dom["mean"]],
                           "scale": [float(v) if np.isfinite(v) else None for v in dom["scale"]],
                           "inverse": np.asarray(dom["inverse"], dtype=float).tolist(),
                           "max_training_leverage": float(dom["max_training_leverage"])}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnergyCorrection:
        dom = d.get("domain")
        if dom:     # JSON has no infinity: constant features were stored as None
            dom = {**dom, "scale": [np.inf if v is None else v for v in dom["scale"]]}
        return cls(**{**d, "band_coef": tuple(d["band_coef"]), "total_coef": tuple(d["total_coef"]),
                      "domain": dom})


def feature_domain(features: np.ndarray, volumes: np.ndarray, lam: float) -> dict[str, Any]:
    """Applicability domain of a fit on cells with ``features`` (n_cells, n_f) and ``volumes`` (n_cells,) Å³.

    Returns the ``domain`` of :class:`EnergyCorrection`: mean and scale of the features
    per volume (constant ones get scale inf and drop out), the ridge inverse at ``lam``
    and the largest leverage among the training cells.
    """
    q = np.asarray(features, dtype=np.float64) / np.asarray(volumes, dtype=np.float64)[:, None]
    mu, sd = q.mean(0), q.std(0)
    sd[sd <= 1e-12 * np.maximum(np.abs(mu), 1e-300)] = np.inf
    z = (q - mu) / sd
    inv = _ridge_inverse(z, lam)
    a = np.c_[z, np.ones(len(z))]
    return {"mean": mu, "scale": sd, "inverse": inv,
            "max_training_leverage": float(np.einsum("ij,jk,ik->i", a, inv, a).max())}
