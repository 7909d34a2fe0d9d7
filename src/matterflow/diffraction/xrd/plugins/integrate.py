"""Plugins of the ``integrate`` stage (pyFAI): 1D and 2D integration, sectors, chi profiles."""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from matterflow.core.errors import InputError
from matterflow.core.registry import Params
from matterflow.diffraction.xrd.plugins._base import Frame, Plugin, RadialUnit, radial_units

__all__ = ["IntegrateParams", "Integrate1D", "SectorParams", "Sector", "Integrate2DParams",
           "Integrate2D", "ChiProfileParams", "ChiProfile", "integration_options",
           "integrate_kwargs", "integrate_pattern", "uses_fast_kernel", "PYFAI_LOCK",
           "chain_npt", "chain_unit"]


class IntegrateParams(Params):
    npt: int = Field(1000, ge=2, le=100_000, description="number of radial bins")
    unit: RadialUnit = Field("2th_deg", description="radial unit (pyFAI name)")
    radial_range: tuple[float, float] | None = Field(None, description="radial range, in `unit`")
    azimuth_range: tuple[float, float] | None = Field(
        None, description="azimuthal sector (chi), pyFAI convention",
        json_schema_extra={"units": "deg"})
    polarization_factor: float | None = Field(
        None, ge=-1, le=1, description="polarisation factor (0.99 horizontal synchrotron); None: off")
    solid_angle: bool = Field(True, description="correct for the pixels' solid angle")
    error_model: Literal["poisson", "azimuthal"] | None = Field(
        "poisson", description="uncertainty model for sigma (None: no sigma)")
    method: tuple[str, str, str] = Field(
        ("bbox", "csr", "cython"), description="pyFAI method (split, algorithm, implementation)")
    engine: Literal["auto", "pyfai"] = Field(
        "auto", description="auto: pyFAI's integration matrix applied by matterflow's fused "
        "kernel where it applies (sparse cython methods, error model none or poisson; same "
        "result to ~1e-7, 3-4x faster), else pyFAI; pyfai: always pyFAI's integrate1d")

    @model_validator(mode="after")
    def _check(self) -> IntegrateParams:
        split, algo, impl = self.method
        if split not in ("no", "bbox", "pseudo", "full"):
            raise ValueError(f"method split {split!r} not one of no, bbox, pseudo, full")
        if algo not in ("histogram", "csr", "csc", "lut"):
            raise ValueError(f"method algorithm {algo!r} not one of histogram, csr, csc, lut")
        if impl not in ("python", "cython", "opencl"):
            raise ValueError(f"method implementation {impl!r} not one of python, cython, opencl")
        for name in ("radial_range", "azimuth_range"):
            r = getattr(self, name)
            if r is not None and not r[0] < r[1]:
                raise ValueError(f"{name} must be (low, high) with low < high; got {r}")
        return self


_DUMMY = -1.0e9  # value given to per-frame masked pixels (pyFAI "dummy"), never a count


def integration_options(p: IntegrateParams, frame: Frame) -> dict[str, Any]:
    """The keyword arguments of pyFAI's integrate1d/2d that are the same for every frame."""
    return dict(unit=p.unit, radial_range=p.radial_range, azimuth_range=p.azimuth_range,
                polarization_factor=p.polarization_factor, correctSolidAngle=p.solid_angle,
                error_model=p.error_model, method=p.method, dark=frame.dark, flat=frame.flat)


def integrate_kwargs(p: IntegrateParams, frame: Frame) -> tuple[np.ndarray, dict[str, Any]]:
    """The image and keyword arguments of pyFAI's integrate1d/2d for these parameters.

    Static masks (file, gaps, ROI) live in the integrator's detector mask, set
    once by the ``mask`` plugin, so pyFAI leaves those pixels out of its
    sparse matrix and does not re-check a mask array on every frame. Pixels
    masked in this frame only (thresholds, non-finite values) are flagged
    with pyFAI's ``dummy`` value: the same pixels are ignored either way.
    """
    dyn = frame.mask
    img = frame.image
    extra: dict[str, Any] = {}
    if dyn.any():
        img = img.astype(np.float32)  # a copy: the frame itself is left as it is
        img[dyn] = _DUMMY
        extra = {"dummy": _DUMMY, "delta_dummy": 0.5}
    return img, {**integration_options(p, frame), **extra}


# pyFAI's integrators keep per-engine buffers: the threads of a process take turns
# on them (the fused kernel needs no lock)
PYFAI_LOCK = threading.RLock()


def uses_fast_kernel(p: IntegrateParams) -> bool:
    """True if frames are integrated by the fused kernel (no GIL, no lock), not pyFAI."""
    from matterflow.diffraction.xrd.fast_integrator import supports

    return p.engine == "auto" and supports(p.method, p.error_model)


def integrate_pattern(plugin: Plugin, p: IntegrateParams, frame: Frame) -> Any:
    """A 1D pattern of ``frame`` (``.radial``, ``.intensity``, ``.sigma``) for ``p``.

    With ``engine: auto`` and options the fused kernel reproduces, the
    plugin keeps one :class:`~matterflow.diffraction.xrd.fast_integrator.FastIntegrator1d`
    (built on its first frame from pyFAI's matrix, rebuilt if the geometry,
    shape, static mask, dark or flat change, once for all threads of a
    process); otherwise pyFAI's ``integrate1d``.
    """
    from matterflow.diffraction.xrd.fast_integrator import FastIntegrator1d

    fast = None
    if uses_fast_kernel(p):
        det_mask = frame.ai.detector.mask
        key = (id(frame.ai), frame.image.shape, id(det_mask), id(frame.dark), id(frame.flat))
        if getattr(plugin, "_fast_key", None) != key:
            with PYFAI_LOCK:
                if getattr(plugin, "_fast_key", None) != key:
                    kw = integration_options(p, frame)
                    try:
                        fast = FastIntegrator1d(frame.ai, frame.image.shape, p.npt, kw)
                    except ValueError:  # a matrix the kernel cannot take: pyFAI does it
                        fast = None
                    plugin._fast = fast  # type: ignore[attr-defined]
                    plugin._fast_key = key  # type: ignore[attr-defined]
        fast = plugin._fast  # type: ignore[attr-defined]
    if fast is None:
        img, kw = integrate_kwargs(p, frame)
        with PYFAI_LOCK:
            return frame.ai.integrate1d(img, p.npt, **kw)
    if frame.mask_is_thresholds_only:  # thresholds and non-finite values: applied in the kernel
        return fast.integrate(frame.image, low=frame.low, high=frame.high)
    return fast.integrate(frame.image, frame.mask)


class Integrate1D(Plugin):
    """Azimuthal integration to a 1D pattern with pyFAI (the chain's main pattern)."""

    name = "integrate1d"
    stage = "integrate"
    Params = IntegrateParams

    def runs_in_threads(self) -> bool:
        return uses_fast_kernel(self.params)  # type: ignore[arg-type]

    def process(self, frame):
        p: IntegrateParams = self.params  # type: ignore[assignment]
        res = integrate_pattern(self, p, frame)
        frame.radial = np.asarray(res.radial)
        frame.intensity = np.asarray(res.intensity, dtype=np.float64)
        frame.sigma = (np.asarray(res.sigma, dtype=np.float64) if res.sigma is not None
                       else np.full(p.npt, np.nan))
        frame.unit = p.unit
        return None


class SectorParams(IntegrateParams):
    azimuth_range: tuple[float, float] = Field(  # type: ignore[assignment]
        ..., description="azimuthal sector (chi), pyFAI convention",
        json_schema_extra={"units": "deg"})


class Sector(Plugin):
    """A 1D pattern of an azimuthal sector, stored beside the main pattern."""

    name = "sector"
    stage = "integrate"
    Params = SectorParams

    def runs_in_threads(self) -> bool:
        return uses_fast_kernel(self.params)  # type: ignore[arg-type]

    def outputs(self, chain):
        p = self.params
        return {"radial": ((p.npt,), radial_units(p.unit)), "intensity": ((p.npt,), "counts"),
                "sigma": ((p.npt,), "counts")}

    def process(self, frame):
        p: SectorParams = self.params  # type: ignore[assignment]
        res = integrate_pattern(self, p, frame)
        sig = res.sigma if res.sigma is not None else np.full(p.npt, np.nan)
        return {"radial": res.radial, "intensity": res.intensity, "sigma": sig}


class Integrate2DParams(IntegrateParams):
    npt: int = Field(500, ge=2, le=20_000, description="radial bins of the cake")
    npt_azim: int = Field(360, ge=1, le=3600, description="azimuthal bins of the cake")
    error_model: Literal["poisson", "azimuthal"] | None = Field(None, description="uncertainty model")


class Integrate2D(Plugin):
    """Regrouping into a cake (azimuth × radial) with pyFAI (NXazint2d in the output)."""

    name = "integrate2d"
    stage = "integrate"
    Params = Integrate2DParams

    def outputs(self, chain):
        p = self.params
        return {"intensity": ((p.npt_azim, p.npt), "counts"),
                "radial": ((p.npt,), radial_units(p.unit)),
                "azimuthal": ((p.npt_azim,), "deg")}

    def process(self, frame):
        p: Integrate2DParams = self.params  # type: ignore[assignment]
        img, kw = integrate_kwargs(p, frame)
        with PYFAI_LOCK:
            res = frame.ai.integrate2d(img, p.npt, p.npt_azim, **kw)
        return {"intensity": res.intensity, "radial": res.radial, "azimuthal": res.azimuthal}


class ChiProfileParams(Params):
    npt: int = Field(360, ge=2, le=36_000, description="azimuthal bins")
    radial_range: tuple[float, float] = Field(..., description="radial range averaged over, "
                                              "in radial_unit")
    radial_unit: RadialUnit = Field("2th_deg", description="unit of radial_range")
    npt_rad: int = Field(100, ge=1, le=10_000, description="radial bins inside the range")
    polarization_factor: float | None = Field(None, ge=-1, le=1, description="polarisation factor")
    solid_angle: bool = Field(True, description="correct for the pixels' solid angle")

    @model_validator(mode="after")
    def _check(self) -> ChiProfileParams:
        if not self.radial_range[0] < self.radial_range[1]:
            raise ValueError(f"radial_range must be (low, high) with low < high; got "
                             f"{self.radial_range}")
        return self


class ChiProfile(Plugin):
    """Azimuthal (χ) profile of a radial range, e.g. one ring (texture, strain): pyFAI integrate_radial."""

    name = "chi_profile"
    stage = "integrate"
    Params = ChiProfileParams

    def outputs(self, chain):
        n = self.params.npt  # type: ignore[attr-defined]
        return {"chi": ((n,), "deg"), "intensity": ((n,), "counts")}

    def process(self, frame):
        p: ChiProfileParams = self.params  # type: ignore[assignment]
        img = frame.image
        extra: dict[str, Any] = {}
        if frame.mask.any():
            img = np.asarray(img, dtype=np.float32).copy()
            img[frame.mask] = _DUMMY
            extra = {"dummy": _DUMMY, "delta_dummy": 0.5}
        with PYFAI_LOCK:
            res = frame.ai.integrate_radial(img, p.npt, p.npt_rad, radial_range=p.radial_range,
                                            radial_unit=p.radial_unit, unit="chi_deg",
                                            polarization_factor=p.polarization_factor,
                                            correctSolidAngle=p.solid_angle, dark=frame.dark,
                                            flat=frame.flat, **extra)
        return {"chi": res.radial, "intensity": res.intensity}


def chain_npt(chain: list[Plugin]) -> int:
    for pl in chain:
        if isinstance(pl, Integrate1D):
            return pl.params.npt  # type: ignore[attr-defined]
    raise InputError("the chain needs an integrate1d plugin")


def chain_unit(chain: list[Plugin]) -> str:
    for pl in chain:
        if isinstance(pl, Integrate1D):
            return pl.params.unit  # type: ignore[attr-defined]
    return ""
