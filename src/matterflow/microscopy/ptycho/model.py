"""Forward model of 4D-STEM ptychography: probe windows, multislice, far field, tilts.

Conventions
-----------
- Object arrays are ``(n_slices, nx, ny)`` on a grid of ``sampling`` Å per pixel,
  periodic (a window that leaves the grid wraps; keep vacuum at the edges of a
  finite object). Axis 0 of a volume (``(nz, nx, ny)``) is the beam direction.
- A probe position ``r`` (Å) lights the object at ``r``: the window's corner is
  ``r / sampling − window // 2`` (integer part cropped, fraction applied to the
  probe by a Fourier shift, so positions are differentiable).
- Each slice: ``ψ ← IFFT[P · FFT(t_s ψ)]`` with ``t_s = exp(iφ_s − μ_s)``, the same
  order and band-limited propagator as :mod:`matterflow.microscopy.multislice`.
- Patterns are ``|FFT_ortho(ψ)|²``, ``fftshift``-ed (zero frequency at ``W // 2``),
  so Σ pattern = Σ|ψ|² (= 1 for the normalised probe in a transparent object).
"""

from __future__ import annotations

import numpy as np
import torch

from matterflow.microscopy.multislice import antialias_aperture, fresnel_propagator
from matterflow.microscopy.optics import interaction_constant
from matterflow.microscopy.probe import fourier_shift

__all__ = ["crop_windows", "exit_waves", "far_field", "patterns", "transmission",
           "rotate_volume", "volume_slices", "poisson_counts", "propagator", "dose_to_electrons"]


def propagator(window: int, sampling: float, dz: float, energy_ev: float, *,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Band-limited Fresnel propagator over ``dz`` Å on the probe window."""
    return fresnel_propagator((window, window), (sampling, sampling), dz, energy_ev, dtype=dtype)


def transmission(potential_va: torch.Tensor, energy_ev: float, sampling: float) -> torch.Tensor:
    """``exp(iσV)`` band-limited to 2/3 Nyquist for slices ``(n, nx, ny)`` in V·Å."""
    sigma = interaction_constant(energy_ev)
    aa = antialias_aperture(tuple(potential_va.shape[-2:]), (sampling, sampling),
                            dtype=potential_va.dtype)
    t = torch.polar(torch.ones_like(potential_va), sigma * potential_va)
    return torch.fft.ifft2(torch.fft.fft2(t) * aa)


def crop_windows(obj: torch.Tensor, corner_px: torch.Tensor, window: int) -> torch.Tensor:
    """Windows ``(n_slices, B, W, W)`` of ``obj`` ``(n_slices, nx, ny)`` at integer corners ``(B, 2)``."""
    nx, ny = obj.shape[-2:]
    r = torch.arange(window, device=obj.device)
    ix = (corner_px[:, 0, None] + r) % nx
    iy = (corner_px[:, 1, None] + r) % ny
    return obj[:, ix[:, :, None], iy[:, None, :]]


def _split(positions_a: torch.Tensor, sampling: float, window: int):
    p = positions_a / sampling - window // 2
    corner = torch.floor(p.detach()).long()
    return corner, p - corner


def exit_waves(probe: torch.Tensor, trans: torch.Tensor, positions_a: torch.Tensor,
               sampling: float, prop: torch.Tensor | None) -> torch.Tensor:
    """Exit waves ``(B, W, W)`` of ``probe`` ``(W, W)`` (or ``(B, W, W)``) at ``positions_a``
    ``(B, 2)`` Å through the transmission slices ``trans`` ``(S, nx, ny)``; ``prop`` the
    inter-slice propagator (None: single slice, projection approximation)."""
    window = probe.shape[-1]
    corner, frac = _split(positions_a, sampling, window)
    psi = fourier_shift(probe, frac)
    win = crop_windows(trans, corner, window)
    for s in range(win.shape[0]):
        psi = psi * win[s]
        if prop is not None:
            psi = torch.fft.ifft2(torch.fft.fft2(psi) * prop)
    return psi


def far_field(psi: torch.Tensor) -> torch.Tensor:
    """``fftshift(|FFT_ortho ψ|²)`` over the last two axes."""
    f = torch.fft.fft2(psi, norm="ortho")
    return torch.fft.fftshift(f.real ** 2 + f.imag ** 2, dim=(-2, -1))


def patterns(probe: torch.Tensor, trans: torch.Tensor, positions_a: torch.Tensor, sampling: float,
             prop: torch.Tensor | None, *, batch: int = 256) -> torch.Tensor:
    """Diffraction intensities ``(n_positions, W, W)`` (no gradient), in batches."""
    out = []
    with torch.no_grad():
        for i in range(0, len(positions_a), batch):
            out.append(far_field(exit_waves(probe, trans, positions_a[i:i + batch], sampling, prop)))
    return torch.cat(out)


def rotate_volume(vol: torch.Tensor, angle_rad: float | torch.Tensor) -> torch.Tensor:
    """Rotate ``vol`` ``(nz, nx, ny)`` by ``angle_rad`` about the y axis (tilt axis), in
    physical coordinates about the volume centre; trilinear, zero outside, differentiable
    (w.r.t. the volume and the angle). Identity at angle 0 (samples the voxel centres)."""
    nz, nx, ny = vol.shape
    a = torch.as_tensor(angle_rad, dtype=vol.dtype)
    c, s = torch.cos(a), torch.sin(a)
    # normalised coords (W=y, H=x, D=z) -> physical: multiply by n/2
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rot = torch.stack([torch.stack([one, zero, zero]),
                       torch.stack([zero, c, -s * nz / nx]),
                       torch.stack([zero, s * nx / nz, c])])
    theta = torch.cat([rot, torch.zeros(3, 1, dtype=vol.dtype)], 1)[None]
    grid = torch.nn.functional.affine_grid(theta, [1, 1, nz, nx, ny], align_corners=False)
    return torch.nn.functional.grid_sample(vol[None, None], grid, mode="bilinear",
                                           padding_mode="zeros", align_corners=False)[0, 0]


def volume_slices(vol: torch.Tensor, n_slices: int) -> torch.Tensor:
    """Sum groups of ``nz / n_slices`` planes along the beam: ``(n_slices, nx, ny)``."""
    nz = vol.shape[0]
    if nz % n_slices:
        raise ValueError(f"n_slices {n_slices} must divide the volume depth {nz}")
    return vol.reshape(n_slices, nz // n_slices, *vol.shape[1:]).sum(1)


def poisson_counts(intensity: torch.Tensor | np.ndarray, electrons_per_pattern: float,
                   seed: int = 0) -> np.ndarray:
    """Poisson counts at ``electrons_per_pattern`` (intensities normalised to Σ = 1 per probe)."""
    lam = np.clip(np.asarray(intensity, dtype=np.float64), 0, None) * float(electrons_per_pattern)
    return np.random.default_rng(seed).poisson(lam).astype(np.float32)


def dose_to_electrons(dose_e_per_a2: float, step_a: float) -> float:
    """Electrons per pattern for an areal dose (e/Å²) at a scan step (Å)."""
    return float(dose_e_per_a2) * float(step_a) ** 2

