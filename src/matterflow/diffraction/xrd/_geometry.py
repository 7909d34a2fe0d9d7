"""Geometry helpers: energies, calibrants, detectors and PONI files, with clear errors."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["HC_KEV_A", "wavelength_m", "get_calibrant", "make_detector", "load_geometry",
           "poni_text", "known_calibrants"]

HC_KEV_A = 12.398419843320026  # h c in keV·Å (CODATA 2018)


def wavelength_m(energy_kev: float | None) -> float:
    """Wavelength in metres of X-rays of ``energy_kev`` keV."""
    if energy_kev is None or not np.isfinite(energy_kev) or energy_kev <= 0:
        raise InputError(f"energy: a positive X-ray energy in keV is needed; got {energy_kev!r}")
    return HC_KEV_A / float(energy_kev) * 1e-10


def known_calibrants() -> list[str]:
    from pyFAI.calibrant import CALIBRANT_FACTORY

    return sorted(CALIBRANT_FACTORY.keys(), key=str.lower)


def get_calibrant(name: str, energy_kev: float | None = None) -> Any:
    """A pyFAI calibrant by name (``LaB6``, ``CeO2``, ``Si``...), wavelength set if given."""
    from pyFAI.calibrant import CALIBRANT_FACTORY

    if name not in CALIBRANT_FACTORY:
        lower = {k.lower(): k for k in CALIBRANT_FACTORY.keys()}
        if name.lower() in lower:
            name = lower[name.lower()]
        else:
            raise InputError(f"calibrant: unknown calibrant {name!r}; known: "
                             f"{', '.join(known_calibrants())}")
    cal = CALIBRANT_FACTORY(name)
    if energy_kev is not None:
        cal.wavelength = wavelength_m(energy_kev)
    return cal


def make_detector(name: str | None = None, pixel_size_um: float | None = None,
                  shape: tuple[int, int] | None = None) -> Any:
    """A pyFAI detector by name (``Pilatus1M``, ``Eiger2_4M``...) or from a pixel size in µm."""
    import pyFAI.detectors

    if name:
        try:
            return pyFAI.detectors.detector_factory(name)
        except (RuntimeError, KeyError, ValueError):
            known = sorted(pyFAI.detectors.ALL_DETECTORS)
            raise InputError(f"detector: unknown detector {name!r}; known: "
                             f"{', '.join(known[:60])} ...") from None
    if pixel_size_um is None or pixel_size_um <= 0:
        raise InputError("detector: give a detector name or a positive pixel size in µm; got "
                         f"{pixel_size_um!r}")
    px = pixel_size_um * 1e-6
    return pyFAI.detectors.Detector(pixel1=px, pixel2=px, max_shape=shape)


def load_geometry(poni: str | Path, *, where: str = "geometry") -> Any:
    """An ``AzimuthalIntegrator`` from a PONI file path or PONI text.

    Raises InputError if the file is missing, does not parse, or has no wavelength.
    """
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    text = str(poni)
    is_text = "\n" in text or "Distance" in text
    source = "PONI text" if is_text else text
    if not is_text:
        p = Path(text)
        if not p.exists():
            raise InputError(f"{where}: PONI file {text!r} not found")
        text = p.read_text(errors="replace")
    keys = {line.split(":", 1)[0].strip().lower() for line in text.splitlines() if ":" in line}
    missing = [k for k in ("distance", "poni1", "poni2") if k not in keys]
    if missing:
        raise InputError(f"{where}: {source} does not parse as a PONI file: missing "
                         f"{', '.join(missing)} (expected 'Distance: 0.2', 'Poni1: ...', ...)")
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".poni", delete=False) as fh:
            fh.write(text)
        ai = AzimuthalIntegrator()
        ai.load(fh.name)
    except Exception as exc:
        raise InputError(f"{where}: {source} does not parse as a PONI file ({exc})") from None
    finally:
        Path(fh.name).unlink(missing_ok=True)
    if not ai.wavelength:
        raise InputError(f"{where}: {source} has no Wavelength; add 'Wavelength: 1e-10' (metres) "
                         "or calibrate with --energy")
    return ai


def poni_text(ai: Any) -> str:
    """The PONI file text of a geometry (pyFAI's own writer)."""
    from pyFAI.io.ponifile import PoniFile

    buf = io.StringIO()
    PoniFile(ai).write(buf)
    return buf.getvalue()
