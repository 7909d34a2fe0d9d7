"""Multislice: Fresnel propagator, band-limited transmission, thickness series in one pass.

A plane wave of unit amplitude (or any wave) is transmitted through each slice,
``ψ ← IFFT[P · FFT(t_s ψ)]`` with ``t_s = exp(iσ V_s)`` band-limited to 2/3 of the
Nyquist frequency and ``P = A · exp(−iπλ dz k²)`` (times a tilt phase
``exp(−2πi dz (kx tan θx + ky tan θy))``), the order abTEM uses ("transmit, then
propagate"). Differentiable in torch; complex64 by default, complex128 with float64.
"""

from __future__ import annotations

import math

import torch

from matterflow.microscopy.optics import interaction_constant, spatial_frequencies, wavelength

__all__ = ["antialias_aperture", "fresnel_propagator", "multislice", "plane_wave", "probe"]


def antialias_aperture(shape, sampling, *, dtype=torch.float32) -> torch.Tensor:
    """1 inside 2/3 of the Nyquist frequency (k < 1/(3 dx)), 0 outside."""
    kx, ky = spatial_frequencies(shape, sampling, dtype=dtype)
    cutoff = (2.0 / 3.0) / max(sampling) / 2
    return ((kx ** 2 + ky ** 2) < cutoff ** 2).to(dtype)


def fresnel_propagator(shape, sampling, dz: float, energy_ev: float, *, tilt_mrad=(0.0, 0.0),
                       dtype=torch.float32) -> torch.Tensor:
    """Band-limited Fresnel propagator over ``dz`` Å (complex, FFT order)."""
    lam = wavelength(energy_ev)
    kx, ky = spatial_frequencies(shape, sampling, dtype=dtype)
    phase = -math.pi * lam * dz * (kx ** 2 + ky ** 2)
    tx = torch.as_tensor(tilt_mrad[0], dtype=dtype) * 1e-3
    ty = torch.as_tensor(tilt_mrad[1], dtype=dtype) * 1e-3
    phase = phase - 2 * math.pi * dz * (kx * torch.tan(tx) + ky * torch.tan(ty))
    return torch.polar(antialias_aperture(shape, sampling, dtype=dtype), phase)


def plane_wave(shape, *, dtype=torch.float32) -> torch.Tensor:
    """Unit-amplitude plane wave (|ψ|² = 1 per pixel)."""
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    return torch.ones(shape, dtype=cdt)


def probe(shape, sampling, energy_ev: float, *, semiangle_mrad: float, defocus=0.0, cs=0.0,
          position=(0.0, 0.0), dtype=torch.float32) -> torch.Tensor:
    """Convergent probe normalised to Σ|ψ|² = 1, centred at ``position`` Å."""
    from matterflow.microscopy.optics import ctf

    kx, ky = spatial_frequencies(shape, sampling, dtype=dtype)
    t = ctf(kx, ky, energy_ev, defocus=defocus, cs=cs, aperture_mrad=semiangle_mrad)
    shift = torch.polar(torch.ones_like(kx * ky), -2 * math.pi * (kx * position[0] + ky * position[1]))
    psi = torch.fft.ifft2(t * shift)
    return psi / torch.sqrt((psi.abs() ** 2).sum())


def multislice(wave: torch.Tensor, potentials: torch.Tensor, sampling, dz: float, energy_ev: float,
               *, tilt_mrad=(0.0, 0.0), save_every: int | None = None) -> torch.Tensor:
    """Exit waves after every ``save_every`` slices (default: only the last), shape ``(m, nx, ny)``.

    ``potentials`` (n_slices, nx, ny) in V·Å; repeat it along axis 0 for a thicker crystal.
    """
    shape = tuple(wave.shape[-2:])
    rdt = potentials.dtype
    sigma = interaction_constant(energy_ev)
    aa = antialias_aperture(shape, sampling, dtype=rdt)
    prop = fresnel_propagator(shape, sampling, dz, energy_ev, tilt_mrad=tilt_mrad, dtype=rdt)
    trans = torch.fft.ifft2(torch.fft.fft2(torch.polar(torch.ones_like(potentials),
                                                       sigma * potentials)) * aa)
    n = potentials.shape[0]
    every = save_every or n
    out = []
    psi = wave
    for i in range(n):
        psi = torch.fft.ifft2(torch.fft.fft2(psi * trans[i]) * prop)
        if (i + 1) % every == 0:
            out.append(psi)
    return torch.stack(out)
