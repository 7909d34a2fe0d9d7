"""GIXD geometry: the polar (|q|, χ) grid the detector works on, and pyFAI's fibre geometry.

Conventions (those of pyFAI's :class:`~pyFAI.integrator.fiber.FiberIntegrator`):

- ``q_xy`` (in-plane, pyFAI ``qip``) and ``q_z`` (out-of-plane, ``qoop``) in 1/nm;
- ``|q| = sqrt(q_xy² + q_z²)``;
- ``χ = atan2(q_xy, q_z)`` in degrees: 0 along the specular rod (q_z axis), 90 in the
  sample plane (pyFAI ``chigi``).

A polar image has rows = χ bins and columns = |q| bins, pixel centres
``q_min + (i + 1/2) Δq`` and ``χ_min + (j + 1/2) Δχ``, exactly the bins of
``FiberIntegrator.integrate2d_polar(npt_ip=n_q, npt_oop=n_chi, ip_range=q_range,
oop_range=chi_range)``.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["PolarGrid", "PolarConverter", "make_poni", "k_inv_nm", "get_converter"]


def k_inv_nm(wavelength_m: float) -> float:
    """Wave number 2π/λ in 1/nm."""
    return 2 * np.pi / (wavelength_m * 1e9)


@dataclass(frozen=True)
class PolarGrid:
    """The (|q|, χ) grid of a polar image: ``n_chi`` rows by ``n_q`` columns."""

    n_q: int = 128
    n_chi: int = 128
    q_min: float = 3.0
    q_max: float = 25.0
    chi_min: float = 0.0
    chi_max: float = 90.0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_chi, self.n_q)

    @property
    def dq(self) -> float:
        return (self.q_max - self.q_min) / self.n_q

    @property
    def dchi(self) -> float:
        return (self.chi_max - self.chi_min) / self.n_chi

    @property
    def q_axis(self) -> np.ndarray:
        return self.q_min + (np.arange(self.n_q) + 0.5) * self.dq

    @property
    def chi_axis(self) -> np.ndarray:
        return self.chi_min + (np.arange(self.n_chi) + 0.5) * self.dchi

    def to_px(self, q: np.ndarray, chi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous pixel coordinates (x = column along q, y = row along χ; edges at 0)."""
        return ((np.asarray(q) - self.q_min) / self.dq, (np.asarray(chi) - self.chi_min) / self.dchi)

    def from_px(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(|q| in 1/nm, χ in deg) of continuous pixel coordinates."""
        return self.q_min + np.asarray(x) * self.dq, self.chi_min + np.asarray(y) * self.dchi

    def as_dict(self) -> dict[str, float]:
        return {"n_q": self.n_q, "n_chi": self.n_chi, "q_min": self.q_min, "q_max": self.q_max,
                "chi_min": self.chi_min, "chi_max": self.chi_max}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolarGrid:
        return cls(int(d["n_q"]), int(d["n_chi"]), float(d["q_min"]), float(d["q_max"]),
                   float(d["chi_min"]), float(d["chi_max"]))


def make_poni(*, shape: tuple[int, int] = (512, 512), pixel_um: float = 172.0,
              distance_m: float = 0.2, beam_px: tuple[float, float] = (20.0, 40.0),
              energy_kev: float = 10.0) -> str:
    """PONI text of a flat detector with the direct beam near its lower-left corner.

    ``beam_px`` is (row, column) of the direct beam; rows grow with q_z in pyFAI's
    fibre geometry, so most of the detector sees the upper half-space.
    """
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    from matterflow.diffraction.xrd._geometry import poni_text, wavelength_m

    px = pixel_um * 1e-6
    det = Detector(pixel1=px, pixel2=px, max_shape=shape)
    ai = AzimuthalIntegrator(dist=distance_m, poni1=(beam_px[0] + 0.5) * px,
                             poni2=(beam_px[1] + 0.5) * px, detector=det,
                             wavelength=wavelength_m(energy_kev))
    return poni_text(ai)


class PolarConverter:
    """Detector image -> polar (|q|, χ) image through pyFAI's FiberIntegrator.

    Parameters
    ----------
    poni : str or Path
        PONI file or text (the detector's shape must be known: ``Detector_config``
        with ``max_shape``).
    incidence_deg : float
        Grazing incidence angle in degrees.
    grid : PolarGrid
        The polar grid.
    where : str
        Name of the geometry in error messages.
    """

    def __init__(self, poni: str | Path, incidence_deg: float, grid: PolarGrid,
                 *, where: str = "geometry", tilt_deg: float = 0.0, sample_orientation: int = 1):
        from pyFAI.integrator.fiber import FiberIntegrator

        from matterflow.diffraction.xrd._geometry import load_geometry

        if incidence_deg is None or not np.isfinite(incidence_deg):
            raise InputError(f"{where}: incidence_deg (grazing incidence angle in degrees) is "
                             f"needed; got {incidence_deg!r}")
        if not 0 < float(incidence_deg) < 10:
            raise InputError(f"{where}: incidence_deg must be in (0, 10) degrees; got "
                             f"{incidence_deg!r}")
        ai = load_geometry(poni, where=where)
        self.fi = FiberIntegrator()
        self.fi.set_config(ai.get_config())
        self.shape = tuple(ai.detector.max_shape) if ai.detector.max_shape is not None else None
        if self.shape is None:
            raise InputError(f"{where}: the PONI's detector has no shape (add max_shape to "
                             "Detector_config)")
        self.where = where
        self.incidence_deg = float(incidence_deg)
        self.tilt_deg = float(tilt_deg)
        self.sample_orientation = int(sample_orientation)
        self.grid = grid
        self.k = k_inv_nm(ai.wavelength)
        self._lock = threading.Lock()

    def check_shape(self, image_shape: tuple[int, ...], what: str = "image") -> None:
        if tuple(image_shape) != self.shape:
            raise InputError(f"{what}: shape {tuple(image_shape)} does not match the detector of "
                             f"{self.where} ({self.shape[0]} x {self.shape[1]} pixels)")

    def _kw(self) -> dict[str, Any]:
        g = self.grid
        return dict(npt_ip=g.n_q, npt_oop=g.n_chi, ip_range=(g.q_min, g.q_max),
                    oop_range=(g.chi_min, g.chi_max), incident_angle=self.incidence_deg,
                    tilt_angle=self.tilt_deg, sample_orientation=self.sample_orientation,
                    angle_unit="deg", polar_degrees=True, radial_unit="nm^-1",
                    method=("no", "csr", "cython"), correctSolidAngle=False)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The polar image (n_chi, n_q) of a detector image; bins no pixel reaches are 0."""
        self.check_shape(np.shape(image))
        with self._lock:
            r = self.fi.integrate2d_polar(data=np.asarray(image, np.float32), mask=mask,
                                          dummy=-1.0, delta_dummy=0.5, **self._kw())
        out = np.asarray(r.intensity, np.float32)
        out[out < 0] = 0.0
        return out

    @functools.cached_property
    def pixel_q_chi(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per detector pixel: |q| (1/nm), χ (deg), and q_z (1/nm)."""
        import pyFAI.units as u

        self.fi.reset()
        qip, qoop = (self.fi.array_from_unit(shape=self.shape, unit=self._unit(u, name))
                     for name in ("qip_nm^-1", "qoop_nm^-1"))
        q = np.hypot(qip, qoop)
        chi = np.degrees(np.arctan2(np.abs(qip), qoop))
        return q.astype(np.float32), chi.astype(np.float32), qoop.astype(np.float32)

    def _unit(self, u: Any, name: str) -> Any:
        import copy

        unit = copy.deepcopy(u.to_unit(name))
        unit.incident_angle = np.radians(self.incidence_deg)
        unit.tilt_angle = np.radians(self.tilt_deg)
        unit.sample_orientation = self.sample_orientation
        return unit

    @functools.cached_property
    def coverage(self) -> np.ndarray:
        """(n_chi, n_q) bool: polar bins that detector pixels reach."""
        return self(np.ones(self.shape, np.float32)) > 0


_CONVERTERS: dict[str, PolarConverter] = {}
_CONV_LOCK = threading.Lock()


def get_converter(poni: str | Path, incidence_deg: float, grid: PolarGrid,
                  where: str = "geometry") -> PolarConverter:
    """A cached :class:`PolarConverter` (one per process and settings)."""
    text = str(poni)
    if "\n" not in text and Path(text).exists():
        text = Path(text).read_text()
    key = hashlib.sha256(repr((text, float(incidence_deg) if incidence_deg is not None else None,
                               grid.as_dict())).encode()).hexdigest()
    with _CONV_LOCK:
        if key not in _CONVERTERS:
            _CONVERTERS[key] = PolarConverter(text if "\n" in text else poni, incidence_deg,
                                              grid, where=where)
        return _CONVERTERS[key]
