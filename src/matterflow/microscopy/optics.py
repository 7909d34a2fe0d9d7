"""Electron optics: wavelength, interaction constant, aberration phase, CTF and envelopes.

Conventions (as abTEM and Kirkland): the wave in the back focal plane is
multiplied by ``exp(-i chi(k))`` with

    chi(k) = 2π/λ [ ½ C10 θ² + ½ C12 θ² cos 2(φ − φ12) + ¼ C30 θ⁴ ],  θ = λ|k|

``defocus = −C10`` (positive defocus = underfocus), ``Cs = C30``; all lengths in Å,
energy in eV, angles in rad (apertures and divergence in mrad).
Partial coherence by the quasi-coherent envelopes: temporal
``exp(−½ (π λ Δ k²)²)`` (Δ: focal spread, standard deviation in Å) and spatial
``exp(−(α/2)² |∇_θ χ|²)`` (α: 1/e semi-angle of the illumination divergence).
"""

from __future__ import annotations

import math

import torch

__all__ = ["wavelength", "interaction_constant", "spatial_frequencies", "aberration_phase",
           "ctf", "scherzer_defocus"]

_M0C2_EV = 510998.95  # electron rest energy, eV
_HC_EV_A = 12398.4198  # h c in eV·Å


def wavelength(energy_ev: float) -> float:
    """Relativistic electron wavelength in Å for a kinetic energy in eV."""
    e = float(energy_ev)
    return _HC_EV_A / math.sqrt(e * (2 * _M0C2_EV + e))


def interaction_constant(energy_ev: float) -> float:
    """σ in rad/(V·Å): transmission exp(iσ V_z) of a projected potential V_z in V·Å."""
    lam = wavelength(energy_ev)
    e = float(energy_ev)
    return 2 * math.pi / (lam * e) * (_M0C2_EV + e) / (2 * _M0C2_EV + e)


def spatial_frequencies(shape: tuple[int, int], sampling: tuple[float, float], *,
                        dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kx[:, None], ky[None, :])`` in 1/Å in FFT order for a grid ``shape`` at ``sampling`` Å."""
    kx = torch.fft.fftfreq(shape[0], d=sampling[0], dtype=dtype)[:, None]
    ky = torch.fft.fftfreq(shape[1], d=sampling[1], dtype=dtype)[None, :]
    return kx, ky


def aberration_phase(kx, ky, energy_ev: float, *, defocus=0.0, cs=0.0, astigmatism=0.0,
                     astigmatism_angle=0.0):
    """χ(k) in rad; ``defocus`` (= −C10), ``cs`` (= C30), ``astigmatism`` (C12) in Å."""
    lam = wavelength(energy_ev)
    k2 = kx ** 2 + ky ** 2
    t2 = lam ** 2 * k2
    phi = torch.atan2(ky, kx)
    c10 = -torch.as_tensor(defocus, dtype=kx.dtype)
    return (2 * math.pi / lam) * (0.5 * c10 * t2 + 0.5 * astigmatism * t2
                                  * torch.cos(2 * (phi - astigmatism_angle))
                                  + 0.25 * torch.as_tensor(cs, dtype=kx.dtype) * t2 ** 2)


def ctf(kx, ky, energy_ev: float, *, defocus=0.0, cs=0.0, astigmatism=0.0, astigmatism_angle=0.0,
        focal_spread=0.0, divergence_mrad=0.0, aperture_mrad: float | None = None):
    """Complex transfer function ``exp(-iχ) E_t E_s A`` (shape of ``kx * ky``)."""
    lam = wavelength(energy_ev)
    chi = aberration_phase(kx, ky, energy_ev, defocus=defocus, cs=cs, astigmatism=astigmatism,
                           astigmatism_angle=astigmatism_angle)
    k2 = kx ** 2 + ky ** 2
    env = torch.exp(-0.5 * (math.pi * lam * torch.as_tensor(focal_spread, dtype=kx.dtype) * k2) ** 2)
    if divergence_mrad:
        # |∇_θ χ| for the round aberrations: 2π/λ (C10 θ + C30 θ³)
        theta = lam * torch.sqrt(k2)
        grad = (2 * math.pi / lam) * (-torch.as_tensor(defocus, dtype=kx.dtype) * theta
                                      + torch.as_tensor(cs, dtype=kx.dtype) * theta ** 3)
        env = env * torch.exp(-(divergence_mrad * 1e-3 / 2) ** 2 * grad ** 2)
    out = torch.polar(env, -chi)
    if aperture_mrad is not None:
        out = out * (lam * torch.sqrt(k2) <= aperture_mrad * 1e-3)
    return out


def scherzer_defocus(cs: float, energy_ev: float) -> float:
    """Scherzer defocus √(4/3 Cs λ) in Å (underfocus positive) for Cs in Å."""
    return math.sqrt(4.0 / 3.0 * cs * wavelength(energy_ev))
