"""Further losses for HRTEM matching (issue 18's global and local features), differentiable in
torch, on periodic images of the cell grid (``sim`` (..., nx, ny), ``target`` (nx, ny)):

- :func:`power_spectrum_loss` (global): ``1 −`` the correlation of the radially averaged
  power spectra (log power in rings of spatial frequency); invariant to shift, rotation of
  the pattern within a ring, offset and gain — it sees where the CTF puts power (Thon rings,
  the reflections' magnitudes), not the phases;
- :func:`ssim_loss` (local): ``1 − SSIM`` (Wang et al. 2004, Gaussian window σ = 1.5 px,
  C1 = (0.01 L)², C2 = (0.03 L)² with L the target's range), after the affine contrast and the
  circular shift that maximise the NCC (both standardised), so it is shift- and
  contrast-invariant like the NCC loss.

In the search as options: ``MatchParams.search_loss`` (Sobol + BO stage) and ``refine_loss``
(valley + gradient stage); the default is ``ncc`` for both.
"""

from __future__ import annotations

import math

import torch

from matterflow.microscopy.hrtem.model import shift_ncc

__all__ = ["power_spectrum_loss", "ssim_loss", "radial_power", "ncc_loss"]


def radial_power(img: torch.Tensor, n_bins: int | None = None) -> torch.Tensor:
    """``(..., n_bins)`` mean power of ``img`` (..., nx, ny) in rings of |k| (DC left out)."""
    nx, ny = img.shape[-2:]
    kx = torch.fft.fftfreq(nx, dtype=img.dtype)[:, None] * nx
    ky = torch.fft.fftfreq(ny, dtype=img.dtype)[None, :] * ny
    r = torch.sqrt(kx ** 2 + ky ** 2)
    nb = n_bins or min(nx, ny) // 2
    idx = torch.clamp(torch.round(r).long(), max=nb)
    p = torch.fft.fft2(img - img.mean((-2, -1), keepdim=True)).abs() ** 2
    flat = p.reshape(*p.shape[:-2], -1)
    sums = torch.zeros((*p.shape[:-2], nb + 1), dtype=p.dtype).index_add_(
        -1, idx.reshape(-1), flat)
    counts = torch.bincount(idx.reshape(-1), minlength=nb + 1).to(p.dtype)
    return (sums / counts.clamp_min(1))[..., 1:nb + 1]


def power_spectrum_loss(sim: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − corr(log P_sim, log P_target)`` over the rings where the target has power."""
    ps, pt = radial_power(sim), radial_power(target)
    keep = pt > pt.max() * 1e-8
    a = torch.log(ps[..., keep] + pt.max() * 1e-8)
    b = torch.log(pt[keep] + pt.max() * 1e-8)
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean()
    return 1 - (a * b).sum(-1) / torch.sqrt((a ** 2).sum(-1) * (b ** 2).sum())


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    nx, ny = x.shape[-2:]
    kx = torch.fft.fftfreq(nx, dtype=x.dtype)[:, None]
    ky = torch.fft.fftfreq(ny, dtype=x.dtype)[None, :]
    g = torch.exp(-2 * math.pi ** 2 * sigma ** 2 * (kx ** 2 + ky ** 2))
    return torch.fft.ifft2(torch.fft.fft2(x) * g).real


def _aligned(sim: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sim`` standardised and circularly shifted (whole pixels) to its best NCC with target."""
    s = (sim - sim.mean((-2, -1), keepdim=True)) / sim.std(dim=(-2, -1), keepdim=True)
    cc = torch.fft.ifft2(torch.fft.fft2(target) * torch.conj(torch.fft.fft2(s.detach()))).real
    flat = cc.reshape(*cc.shape[:-2], -1).argmax(-1)
    ny = cc.shape[-1]
    out = []
    for k, i in enumerate(flat.reshape(-1).tolist()):
        out.append(torch.roll(s.reshape(-1, *s.shape[-2:])[k], (i // ny, i % ny), (0, 1)))
    return torch.stack(out).reshape(s.shape)


def ssim_loss(sim: torch.Tensor, target: torch.Tensor, *, sigma: float = 1.5) -> torch.Tensor:
    """``1 − mean SSIM`` of the shift-aligned, standardised ``sim`` against the standardised
    target (periodic Gaussian window ``sigma`` px)."""
    t = (target - target.mean()) / target.std()
    s = _aligned(sim, t)
    lrange = float(t.max() - t.min())
    c1, c2 = (0.01 * lrange) ** 2, (0.03 * lrange) ** 2
    mu_s, mu_t = _gauss_blur(s, sigma), _gauss_blur(t, sigma)
    var_s = _gauss_blur(s * s, sigma) - mu_s ** 2
    var_t = _gauss_blur(t * t, sigma) - mu_t ** 2
    cov = _gauss_blur(s * t, sigma) - mu_s * mu_t
    ssim = ((2 * mu_s * mu_t + c1) * (2 * cov + c2)) / ((mu_s ** 2 + mu_t ** 2 + c1)
                                                         * (var_s + var_t + c2))
    return 1 - ssim.mean((-2, -1))


def ncc_loss(sim: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − max_shift NCC`` (the search's loss), for comparison."""
    return 1 - shift_ncc(sim, target)
