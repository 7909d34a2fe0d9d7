"""Synthetic diffraction data with a known answer: calibrant images and in-situ series.

Everything is generated from a geometry and a lattice, so tests and the demo
compare results with exact values:

- :func:`calibrant_image` -- a calibrant (LaB6, CeO2, ...) on a tilted
  detector, through pyFAI's ``Calibrant.fake_calibration_image``, plus
  Poisson noise.
- :func:`fcc_peaks` -- 2θ positions (degrees) of an fcc lattice's reflections.
- :func:`ring_image` -- Debye-Scherrer rings at given 2θ with pseudo-Voigt
  profiles, evaluated on the detector's exact 2θ map (fast: a fine 1D profile
  interpolated on the pixels).
- :func:`heating_series` -- frames of a heating run: phase A expands
  linearly with temperature, phase B grows with a sigmoid fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np

from matterflow.diffraction.xrd._geometry import get_calibrant, make_detector, wavelength_m

__all__ = ["make_geometry", "calibrant_image", "fcc_peaks", "ring_image", "heating_series",
           "HeatingSeries"]


def make_geometry(*, distance_mm: float = 200.0, centre_px: tuple[float, float] = (520.0, 500.0),
                  rot1_deg: float = 0.0, rot2_deg: float = 0.0, pixel_size_um: float = 100.0,
                  shape: tuple[int, int] = (1024, 1024), energy_kev: float = 20.0,
                  detector: str | None = None) -> Any:
    """A pyFAI ``AzimuthalIntegrator``; ``centre_px`` = (x=column, y=row) of the PONI."""
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    det = make_detector(detector, pixel_size_um, shape)
    ai = AzimuthalIntegrator(dist=distance_mm * 1e-3, poni1=centre_px[1] * det.pixel1,
                             poni2=centre_px[0] * det.pixel2, rot1=np.deg2rad(rot1_deg),
                             rot2=np.deg2rad(rot2_deg), detector=det,
                             wavelength=wavelength_m(energy_kev))
    return ai


def calibrant_image(ai: Any, calibrant: str = "LaB6", *, max_counts: float = 2000.0,
                    background: float = 20.0, fwhm_deg: float = 0.04, noise: bool = True,
                    seed: int = 0) -> np.ndarray:
    """A calibrant image (rows, cols) in counts for geometry ``ai``, with Poisson noise."""
    cal = get_calibrant(calibrant)
    cal.wavelength = ai.wavelength
    shape = ai.detector.max_shape
    img = cal.fake_calibration_image(ai, shape=shape, Imax=max_counts, Imin=0.0,
                                     resolution=fwhm_deg)
    img = np.asarray(img, dtype=np.float64) + background
    if noise:
        img = np.random.default_rng(seed).poisson(img).astype(np.float64)
    return img.astype(np.float32)


def fcc_peaks(a_angstrom: float, energy_kev: float, tth_max_deg: float = 40.0,
              max_index: int = 6) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """2θ (degrees, ascending) and one (h, k, l) per distinct fcc reflection below ``tth_max``."""
    lam = wavelength_m(energy_kev) * 1e10
    seen: dict[int, tuple[int, int, int]] = {}
    for h, k, m in product(range(max_index + 1), repeat=3):
        if (h, k, m) == (0, 0, 0) or not (h >= k >= m):
            continue
        if len({h % 2, k % 2, m % 2}) != 1:  # fcc: all even or all odd
            continue
        seen.setdefault(h * h + k * k + m * m, (h, k, m))
    tth, hkls = [], []
    for s in sorted(seen):
        x = lam * np.sqrt(s) / (2 * a_angstrom)
        if x >= 1:
            break
        t = 2 * np.degrees(np.arcsin(x))
        if t > tth_max_deg:
            break
        tth.append(t)
        hkls.append(seen[s])
    return np.array(tth), hkls


def pseudo_voigt(x: np.ndarray, center: float, fwhm: float, eta: float) -> np.ndarray:
    """Unit-height pseudo-Voigt: ``eta`` Lorentzian + ``1 - eta`` Gaussian of equal FWHM."""
    hw = fwhm / 2
    g = np.exp(-np.log(2) * ((x - center) / hw) ** 2)
    lo = 1 / (1 + ((x - center) / hw) ** 2)
    return eta * lo + (1 - eta) * g


def ring_image(tth_deg_map: np.ndarray, tth_deg: np.ndarray, heights: np.ndarray, *,
               fwhm_deg: float = 0.05, eta: float = 0.3, background: float = 10.0) -> np.ndarray:
    """Rings at ``tth_deg`` with ``heights`` (counts) on a 2θ map (degrees) of the pixels."""
    lo, hi = float(np.nanmin(tth_deg_map)), float(np.nanmax(tth_deg_map))
    grid = np.linspace(lo, hi, max(2000, int((hi - lo) / (fwhm_deg / 40)) + 1))
    prof = np.full_like(grid, background)
    for t, h in zip(tth_deg, heights, strict=True):
        prof += h * pseudo_voigt(grid, t, fwhm_deg, eta)
    return np.interp(tth_deg_map, grid, prof).astype(np.float32)


@dataclass(frozen=True)
class HeatingSeries:
    frames: np.ndarray            # (n, rows, cols) counts
    temperature_k: np.ndarray     # (n,)
    fraction_b: np.ndarray        # (n,) phase-B fraction
    tth_a_deg: np.ndarray         # (n, n_peaks_a) exact 2θ of phase A
    tth_b_deg: np.ndarray         # (n_peaks_b,) exact 2θ of phase B
    a_angstrom: np.ndarray        # (n,) lattice parameter of phase A


def heating_series(ai: Any, n_frames: int = 24, *, a0_angstrom: float = 4.05,
                   alpha_per_k: float = 2.5e-5, t0_k: float = 300.0, t1_k: float = 900.0,
                   b_angstrom: float = 5.64, tth_max_deg: float | None = None,
                   height: float = 400.0, fwhm_deg: float = 0.12, background: float = 10.0,
                   seed: int = 0, dtype: Any = np.float32) -> HeatingSeries:
    """A heating run on geometry ``ai``: fcc phase A expands, fcc phase B grows in.

    Phase A: a(T) = a0 (1 + alpha (T - t0)); phase B appears with a sigmoid
    fraction centred at mid-run. Poisson noise with ``seed``.
    """
    rng = np.random.default_rng(seed)
    tth_map = np.degrees(ai.center_array(ai.detector.max_shape, unit="2th_rad", scale=False))
    tmax = float(tth_map.max()) if tth_max_deg is None else tth_max_deg
    energy = wavelength_m(1.0) / ai.wavelength  # keV, since lambda ∝ 1/E
    temps = np.linspace(t0_k, t1_k, n_frames)
    a = a0_angstrom * (1 + alpha_per_k * (temps - t0_k))
    frac = 1 / (1 + np.exp(-(np.arange(n_frames) - n_frames / 2) / max(1.0, n_frames / 10)))
    tth_b, _ = fcc_peaks(b_angstrom, energy, tmax)
    n_a = len(fcc_peaks(a[-1], energy, tmax)[0])
    frames = np.empty((n_frames,) + tuple(tth_map.shape), dtype=dtype)
    tth_a = np.empty((n_frames, n_a))
    for i in range(n_frames):
        ta, _ = fcc_peaks(a[i], energy, tmax + 1.0)
        ta = ta[:n_a]
        tth_a[i] = ta
        peaks = np.concatenate([ta, tth_b])
        heights = np.concatenate([np.full(len(ta), height * (1 - 0.5 * frac[i])),
                                  np.full(len(tth_b), height * 0.6 * frac[i])])
        img = ring_image(tth_map, peaks, heights, fwhm_deg=fwhm_deg, background=background)
        frames[i] = rng.poisson(img)
    return HeatingSeries(frames, temps, frac, tth_a, tth_b, a)
