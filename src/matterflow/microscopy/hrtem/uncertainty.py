"""Intervals for the recovered optics of ``hrtem.match``: the GP posterior's and a Laplace
estimate at the optimum.

- **GP interval** (the search's uncertainty about where the minimum is): a GP (Matérn-5/2
  ARD, BoTorch ``SingleTaskGP``) on ``log(1 − NCC)`` of every evaluation; the region where
  the posterior's lower bound ``μ − kσ`` reaches below the smallest posterior mean, profiled
  along each parameter on a grid over the box (the connected run of grid values through the
  optimum).
- **Laplace interval** (the statistical uncertainty the image's noise leaves): the target
  is the lattice average, so its noise is Gaussian, white in its ``K`` Fourier coefficients;
  with both images standardised, ``‖t − s‖² = 2N(1 − NCC)`` and Parseval give the negative
  log-likelihood ``K (1 − NCC) / σₙ²`` (σₙ the noise std of the standardised target). Its
  Hessian at the optimum (autograd through the CTF in float64, thickness fixed, shift and
  contrast profiled) inverted is the covariance; intervals are ±1.96 std. The noise: the
  image's white-noise variance from the median of its power spectrum (the crystal's power
  sits in a few Bragg peaks; for exponentially distributed |F|² the median is ln 2 times the
  mean), carried to the target by passing a unit white-noise image of the same shape through
  the same lattice average. The thickness interval holds the repeats whose
  ``ΔNLL ≤ 1.92`` at the best optics (optics not re-fitted per thickness: an inner bound).
  Where the misfit at the optimum exceeds the noise (χ²_red = 2(1 − NCC)/σₙ² > 1: model error,
  registration and interpolation), the intervals are widened by √χ²_red (the Birge ratio);
  ``laplace_std`` stays the noise-only std (it scales as dose^−½).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Intervals", "gp_intervals", "laplace_intervals", "white_noise_variance"]

Z95 = 1.959964
CHI2_1_95_HALF = 1.920729  # half the 95 % quantile of chi² with one degree of freedom


@dataclass(frozen=True)
class Intervals:
    gp: np.ndarray  # (2, 2) [[lo, hi] defocus Å, [lo, hi] Cs µm]
    laplace: np.ndarray  # (3, 2) defocus Å, Cs µm, thickness repeats
    laplace_std: np.ndarray  # (2,) defocus Å, Cs µm
    noise: float  # σₙ of the standardised target
    dof: int  # K


def white_noise_variance(image: np.ndarray) -> float:
    """Variance per pixel of the white noise in ``image``: ``median |F|² / (Σw² ln 2)`` of its
    Hann-windowed spectrum (the window keeps the Bragg peaks' leakage out of the median)."""
    img = np.asarray(image, dtype=np.float64)
    w = np.outer(np.hanning(img.shape[0]), np.hanning(img.shape[1]))
    p = np.abs(np.fft.fft2((img - img.mean()) * w)) ** 2
    return float(np.median(p) / ((w ** 2).sum() * np.log(2)))


def gp_intervals(x: np.ndarray, loss: np.ndarray, bounds: np.ndarray, best: np.ndarray, *,
                 k: float = 2.0, n_grid: int = 121, grid_dims: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(intervals (d, 2), μ, σ)``: the intervals of the region ``μ − kσ ≤ min μ`` of a GP on
    ``log loss``, and its posterior mean and std of log loss on the grid ``(n_grid,) * d``
    spanning the box (``np.linspace(lo, hi, n_grid)`` along each axis). ``grid_dims``: the
    grid (and the intervals) over the first ``grid_dims`` parameters only, the GP's other
    inputs held at ``best`` (a slice; default all, d = ``bounds.shape[1]``)."""
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    d = bounds.shape[1]
    b = torch.tensor(bounds, dtype=torch.float64)
    xt = torch.tensor(np.asarray(x, dtype=float), dtype=torch.float64)
    yt = torch.log(torch.tensor(np.asarray(loss, dtype=float), dtype=torch.float64))[:, None]
    gp = SingleTaskGP(xt, yt, input_transform=Normalize(d, bounds=b),
                      outcome_transform=Standardize(m=1))
    try:
        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    except Exception:  # noqa: BLE001  (a failed hyper-parameter fit keeps the prior's)
        pass
    d_all = d
    d = d_all if grid_dims is None else grid_dims
    axes = [np.linspace(bounds[0, i], bounds[1, i], n_grid) for i in range(d)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    if d < d_all:
        rest = np.broadcast_to(np.asarray(best, dtype=float)[d:d_all], (len(grid), d_all - d))
        grid = np.column_stack([grid, rest])
    gp.eval()
    with torch.no_grad():
        # one point per batch: the marginals only (a joint posterior of the grid would build
        # its full covariance, 45× slower at 121²)
        post = gp.posterior(torch.tensor(grid, dtype=torch.float64)[:, None, :])
        mu = post.mean.reshape(-1).numpy()
        sd = post.variance.clamp_min(0).sqrt().reshape(-1).numpy()
    inside = (mu - k * sd <= mu.min()).reshape((n_grid,) * d)
    out = np.empty((d, 2))
    for i in range(d):
        prof = inside.any(axis=tuple(j for j in range(d) if j != i))
        c = int(np.argmin(np.abs(axes[i] - best[i])))
        if not prof[c]:
            prof[c] = True
        lo = c
        while lo > 0 and prof[lo - 1]:
            lo -= 1
        hi = c
        while hi < n_grid - 1 and prof[hi + 1]:
            hi += 1
        out[i] = axes[i][lo], axes[i][hi]
    return out, mu.reshape((n_grid,) * d), sd.reshape((n_grid,) * d)


def laplace_intervals(waves: torch.Tensor, pixel: tuple[float, float], target: np.ndarray,
                      noise_std_target: float, best: np.ndarray, thickness: int, *,
                      energy_ev: float, focal_spread: float, dof: int,
                      fit_focal_spread: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``(intervals (3, 2), std (2,), σₙ, χ²_red)``: Laplace intervals of defocus (Å), Cs (µm)
    and thickness (repeats) at ``best`` = (defocus Å, Cs µm), from the std scaled by
    ``max(1, χ²_red)^½`` (the Birge ratio: χ²_red = 2 (1 − NCC)/σₙ² at the optimum, 1 when the
    misfit is the noise alone); ``std``: the noise-only std; see the module doc.
    ``fit_focal_spread``: the focal spread ``focal_spread`` is a third fitted parameter of the
    Hessian (the defocus and Cs intervals are then marginal over it); intervals ``(4, 2)``
    (the fourth row the focal spread, Å) and std ``(3,)``."""
    from matterflow.microscopy.hrtem.model import images, shift_ncc

    tgt = np.asarray(target, dtype=np.float64)
    sigma_n = float(noise_std_target / tgt.std())
    w = waves.to(torch.complex128)
    tt = torch.tensor(tgt)

    def loss(p):
        img = images(w[thickness - 1], pixel, energy_ev=energy_ev, defocus=p[0], cs=p[1] * 1e4,
                     focal_spread=p[2] if fit_focal_spread else focal_spread)
        return 1 - shift_ncc(img, tt)

    npar = 3 if fit_focal_spread else 2
    best = np.r_[np.asarray(best, dtype=float)[:2], [focal_spread]][:npar]
    p0 = torch.tensor(best, dtype=torch.float64)
    h = torch.autograd.functional.hessian(loss, p0).numpy()
    with torch.no_grad():
        n = shift_ncc(images(w, pixel, energy_ev=energy_ev, defocus=float(best[0]),
                             cs=float(best[1]) * 1e4, focal_spread=focal_spread), tt).numpy()
    l_t = 1 - n
    chi2 = float(2 * l_t[thickness - 1] / sigma_n ** 2)
    birge = max(1.0, chi2)
    fisher = dof / sigma_n ** 2 * 0.5 * (h + h.T)
    evals, evecs = np.linalg.eigh(fisher)
    with np.errstate(divide="ignore"):
        inv = np.where(evals > 0, 1 / np.where(evals > 0, evals, 1), np.inf)
    cov_diag = (evecs ** 2 * inv).sum(1)
    std = np.sqrt(cov_diag)
    out = np.empty((npar + 1, 2))
    out[:2, 0] = best[:2] - Z95 * std[:2] * np.sqrt(birge)
    out[:2, 1] = best[:2] + Z95 * std[:2] * np.sqrt(birge)
    if fit_focal_spread:
        out[3] = best[2] + np.array([-1, 1]) * Z95 * std[2] * np.sqrt(birge)
    dnll = dof * (l_t - l_t[thickness - 1]) / (sigma_n ** 2 * birge)
    ok = np.flatnonzero(dnll <= CHI2_1_95_HALF) + 1
    out[2] = min(ok.min(), thickness), max(ok.max(), thickness)
    return out, std, sigma_n, chi2


def target_noise(image: np.ndarray, pixel: float, cell_xy: tuple[float, float],
                 grid: tuple[int, int], rotation_deg: float, scale: float) -> tuple[float, int]:
    """``(noise std per pixel of the lattice-averaged target, K Fourier coefficients)``."""
    from matterflow.microscopy.hrtem.model import lattice_average

    sigma_pix = np.sqrt(white_noise_variance(image))
    unit = np.random.default_rng(0).standard_normal(np.shape(image))
    avg = lattice_average(unit, pixel, cell_xy, grid, rotation_deg=rotation_deg, scale=scale)
    f = np.abs(np.fft.fft2(avg))
    dof = int((f > 1e-9 * f.max()).sum())
    # the per-pixel variance of the average of unit noise, from its coefficients' mean power
    # (one realisation, averaged over the K coefficients)
    kappa = float(np.sqrt((f ** 2).sum() / avg.size ** 2))
    return float(sigma_pix * kappa), dof
