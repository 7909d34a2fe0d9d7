"""Convergent STEM probe (aperture + aberrations) and scan positions.

The probe is the inverse Fourier transform of the objective aperture times the
aberration phase of :func:`matterflow.microscopy.optics.ctf`
(``exp(-iχ)``, defocus = −C10, Cs = C30, two-fold astigmatism C12, all in Å),
normalised to ``Σ|ψ|² = 1`` and centred in its window (``shape // 2``), so a
window cropped from an object at integer pixel ``(i, j)`` is lit at
``(i, j) + shape // 2``. Sub-pixel positions are applied as Fourier phase ramps
(:func:`fourier_shift`, differentiable w.r.t. the shifts).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from matterflow.core.errors import InputError
from matterflow.microscopy.optics import ctf, spatial_frequencies

__all__ = ["probe_wave", "fourier_shift", "raster_positions"]


def _cdtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex64 if dtype == torch.float32 else torch.complex128


def probe_wave(shape: tuple[int, int], sampling: tuple[float, float], energy_ev: float, *,
               semiangle_mrad: float, defocus: float = 0.0, cs: float = 0.0,
               astigmatism: float = 0.0, astigmatism_angle: float = 0.0,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Probe ``(nx, ny)`` complex, ``Σ|ψ|² = 1``, centred at pixel ``shape // 2``.

    ``sampling`` in Å per pixel, ``energy_ev`` in eV, ``semiangle_mrad`` the sharp
    aperture's semi-angle (mrad), aberrations in Å (``astigmatism_angle`` in rad).
    """
    if semiangle_mrad <= 0:
        raise InputError(f"probe semiangle_mrad must be > 0; got {semiangle_mrad}")
    kx, ky = spatial_frequencies(shape, sampling, dtype=dtype)
    t = ctf(kx, ky, energy_ev, defocus=defocus, cs=cs, astigmatism=astigmatism,
            astigmatism_angle=astigmatism_angle, aperture_mrad=semiangle_mrad)
    if not (t.abs() > 0).any():
        raise InputError(f"probe aperture {semiangle_mrad} mrad holds no pixel of the "
                         f"{shape} grid at {sampling} Å; use a finer detector sampling")
    cx, cy = (shape[0] // 2) * sampling[0], (shape[1] // 2) * sampling[1]
    ramp = torch.polar(torch.ones_like(kx * ky), -2 * math.pi * (kx * cx + ky * cy))
    psi = torch.fft.ifft2(t * ramp)
    return (psi / torch.sqrt((psi.abs() ** 2).sum())).to(_cdtype(dtype))


def fourier_shift(wave: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Shift ``wave`` (..., nx, ny) by ``shifts_px`` (..., 2) pixels (periodic, sub-pixel)."""
    nx, ny = wave.shape[-2:]
    rdt = wave.real.dtype
    fx = torch.fft.fftfreq(nx, dtype=rdt)
    fy = torch.fft.fftfreq(ny, dtype=rdt)
    s = shifts_px.to(rdt)
    ph = -2 * math.pi * (s[..., 0, None, None] * fx[:, None] + s[..., 1, None, None] * fy[None, :])
    return torch.fft.ifft2(torch.fft.fft2(wave) * torch.polar(torch.ones_like(ph), ph))


def raster_positions(n_rows: int, n_cols: int, step_a: float, *, origin_a=(0.0, 0.0),
                     jitter_a: float = 0.0, seed: int = 0) -> np.ndarray:
    """Raster scan, row-major, shape ``(n_rows * n_cols, 2)`` in Å (x along rows).

    ``jitter_a``: standard deviation (Å) of Gaussian position errors (seeded).
    """
    if n_rows < 1 or n_cols < 1 or step_a <= 0:
        raise InputError(f"raster scan needs n_rows, n_cols >= 1 and step_a > 0; got "
                         f"{n_rows}, {n_cols}, {step_a}")
    i, j = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    pos = np.stack([i.ravel(), j.ravel()], 1) * float(step_a) + np.asarray(origin_a, float)
    if jitter_a:
        pos = pos + np.random.default_rng(seed).normal(0.0, jitter_a, pos.shape)
    return pos
