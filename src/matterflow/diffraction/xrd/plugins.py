"""Processing plugins: typed parameters with units, validated before a frame is read.

A processing chain is a list of plugins, each a mapping with a ``plugin``
name and that plugin's parameters::

    plugins:
      - {plugin: dark_flat, dark: dark.edf}
      - {plugin: mask, file: mask.npy, high: 1.0e6, detector_gaps: true}
      - {plugin: integrate1d, npt: 1000, unit: 2th_deg, error_model: poisson}
      - {plugin: background, method: snip, iterations: 30}
      - {plugin: fit_peaks, centers: [12.3, 14.2], window: 0.4, shape: pseudo_voigt}

Stages run in this order and a chain is rejected if they are not:
``image`` (corrections and masks on the 2D frame) → ``integrate`` (pyFAI;
exactly one ``integrate1d``, any number of ``integrate2d``/``sector``) →
``pattern`` (1D: background subtraction, user filters) → ``analysis``
(peak fitting, user measures).

Writing a plugin
----------------
Subclass :class:`Plugin`, give it ``name``, ``stage``, a ``Params`` model
(units in ``json_schema_extra={"units": ...}``), ``outputs()`` (the per-frame
arrays it adds, with shapes and units, known from the parameters alone) and
``process(frame)``; then declare it in your package::

    [project.entry-points."matterflow.xrd_plugins"]
    peak_ratio = "mypkg.xrd:PeakRatio"

A complete example is :class:`matterflow.diffraction.xrd.example_plugin.PeakRatio`.
"""

from __future__ import annotations

import functools
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, validation_message

__all__ = ["Plugin", "Frame", "get_plugin", "list_plugins", "validate_chain", "STAGES",
           "ENTRY_POINT_GROUP", "radial_units"]

ENTRY_POINT_GROUP = "matterflow.xrd_plugins"
STAGES = ("image", "integrate", "pattern", "analysis")
RadialUnit = Literal["q_nm^-1", "q_A^-1", "2th_deg", "2th_rad", "r_mm", "d*2_A^-2"]
_UNIT_LABEL = {"q_nm^-1": "1/nm", "q_A^-1": "1/Å", "2th_deg": "deg", "2th_rad": "rad",
               "r_mm": "mm", "d*2_A^-2": "1/Å^2"}


def radial_units(unit: str) -> str:
    """Units (for the results file) of a pyFAI radial unit name."""
    return _UNIT_LABEL.get(unit, unit)


class Frame:
    """What flows through a chain for one frame.

    image : (rows, cols) counts (the file's numeric dtype);
    low, high : value thresholds of this frame (counts; pixels outside are ignored);
    mask : (rows, cols) bool, True = ignored in this frame: non-finite values,
    values outside [low, high] and whatever plugins add (static masks -- file,
    gaps, ROI -- are in ``ai.detector.mask``); built on first use, so a chain
    whose only per-frame masks are thresholds never builds it;
    dark, flat : optional (rows, cols) handed to pyFAI; radial, intensity,
    sigma : (npt,) after ``integrate1d``; outputs: per-plugin extra arrays.
    """

    def __init__(self, image: np.ndarray, ai: Any = None, *, dark: np.ndarray | None = None,
                 flat: np.ndarray | None = None, low: float = -np.inf, high: float = np.inf):
        self._image, self.ai, self.dark, self.flat = image, ai, dark, flat
        self.low, self.high = float(low), float(high)
        self._mask: np.ndarray | None = None
        self.radial: np.ndarray | None = None
        self.intensity: np.ndarray | None = None
        self.sigma: np.ndarray | None = None
        self.unit = ""
        self.outputs: dict[str, dict[str, np.ndarray]] = {}

    @property
    def image(self) -> np.ndarray:
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        if self._mask is None and (self.low > -np.inf or self.high < np.inf):
            _ = self.mask  # thresholds apply to the values they were set on
        self._image = value

    @property
    def mask(self) -> np.ndarray:
        if self._mask is None:
            img = self.image
            m = ~np.isfinite(img) if img.dtype.kind == "f" else np.zeros(img.shape, bool)
            if self.low > -np.inf:
                m |= img < self.low
            if self.high < np.inf:
                m |= img > self.high
            self._mask = m
        return self._mask

    @mask.setter
    def mask(self, value: np.ndarray) -> None:
        self._mask = np.asarray(value, dtype=bool)

    @property
    def mask_is_thresholds_only(self) -> bool:
        """True while no plugin has read or set ``mask`` (it is then non-finite + thresholds)."""
        return self._mask is None

    def restrict(self, low: float | None = None, high: float | None = None) -> None:
        """Ignore pixels below ``low`` / above ``high`` (counts) in this frame."""
        if low is not None:
            self.low = max(self.low, float(low))
            if self._mask is not None:
                self._mask |= self.image < low
        if high is not None:
            self.high = min(self.high, float(high))
            if self._mask is not None:
                self._mask |= self.image > high


class Plugin:
    """Base class of processing plugins (see the module docstring)."""

    name: ClassVar[str] = ""
    stage: ClassVar[str] = "image"
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params, *, pid: str | None = None, base_dir: Path | None = None):
        self.params = params
        self.id = pid or self.name
        self.base_dir = base_dir or Path.cwd()

    # -- called once per worker, before frames
    def setup(self, shape: tuple[int, int], ai: Any, chain: list[Plugin]) -> None:
        """Load files, check shapes against the frame ``shape``; raise InputError."""

    def outputs(self, chain: list[Plugin]) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per-frame arrays this plugin adds: ``{name: (shape, units)}``."""
        return {}

    def process(self, frame: Frame) -> dict[str, np.ndarray] | None:
        """Work on ``frame`` in place; return the arrays declared in :meth:`outputs`."""
        raise NotImplementedError

    def runs_in_threads(self) -> bool:
        """True if frames may go through this plugin on threads of one process.

        That is, the plugin is thread-safe and its heavy work releases the GIL
        (NumPy, compiled kernels). ``xrd process`` runs on threads (no worker
        start-up, one integration matrix) when every plugin of the chain says so,
        and on worker processes otherwise. Third-party plugins default to False.
        """
        return False

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else (self.base_dir / p)


# --------------------------------------------------------------------------- image stage

class DarkFlatParams(Params):
    dark: str | None = Field(None, description="dark image file (a stack is averaged)")
    flat: str | None = Field(None, description="flat-field image file (relative response)")
    dataset: str | None = Field(None, description="HDF5 dataset of the dark/flat files")


class DarkFlat(Plugin):
    """Dark-current subtraction and flat-field division (done by pyFAI in the integration)."""

    name = "dark_flat"
    stage = "image"
    Params = DarkFlatParams

    def runs_in_threads(self) -> bool:
        return True

    def setup(self, shape, ai, chain):
        from matterflow.diffraction.xrd._io import read_image

        p: DarkFlatParams = self.params  # type: ignore[assignment]
        self.dark = self.flat = None
        for what in ("dark", "flat"):
            fp = self.path(getattr(p, what))
            if fp is None:
                continue
            img = read_image(fp, dataset=p.dataset, what=f"dark_flat.{what}")
            if img.shape != shape:
                raise InputError(f"dark_flat.{what}: {fp} has shape {img.shape}; the frames have "
                                 f"{shape}")
            setattr(self, what, img)

    def process(self, frame):
        frame.dark, frame.flat = self.dark, self.flat
        return None


class MaskParams(Params):
    file: str | None = Field(None, description="mask file; non-zero = masked (.npy, .edf, .tif, .h5)")
    dataset: str | None = Field(None, description="HDF5 dataset of the mask file")
    low: float | None = Field(None, description="mask pixels below this value",
                              json_schema_extra={"units": "counts"})
    high: float | None = Field(None, description="mask pixels above this value (hot pixels)",
                               json_schema_extra={"units": "counts"})
    detector_gaps: bool = Field(True, description="mask the detector's gaps (pyFAI detector mask)")
    roi: tuple[int, int, int, int] | None = Field(
        None, description="keep only rows r0:r1, columns c0:c1 (r0, r1, c0, c1)",
        json_schema_extra={"units": "pixel"})


class Mask(Plugin):
    """Static mask from a file, detector gaps, a rectangular ROI, and per-frame thresholds."""

    name = "mask"
    stage = "image"
    Params = MaskParams

    def runs_in_threads(self) -> bool:
        return True

    def setup(self, shape, ai, chain):
        from matterflow.diffraction.xrd._io import read_image

        p: MaskParams = self.params  # type: ignore[assignment]
        m = np.zeros(shape, bool)
        fp = self.path(p.file)
        if fp is not None:
            mk = read_image(fp, dataset=p.dataset, what="mask.file")
            if mk.shape != shape:
                raise InputError(f"mask.file: {fp} has shape {mk.shape}; the frames have {shape}")
            m |= mk != 0
        if p.detector_gaps and ai is not None and ai.detector.mask is not None:
            dm = np.asarray(ai.detector.mask, bool)
            if dm.shape == shape:
                m |= dm
        if p.roi is not None:
            r0, r1, c0, c1 = p.roi
            if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
                raise InputError(f"mask.roi: {p.roi} is not inside the frame of shape {shape}")
            keep = np.zeros(shape, bool)
            keep[r0:r1, c0:c1] = True
            m |= ~keep
        self.static = m
        if ai is not None:  # pyFAI leaves these pixels out of its engine (built once)
            ai.detector.mask = m.astype(np.int8)

    def process(self, frame):
        # the static part is in the integrator's detector mask; frame.mask gets the
        # pixels masked in this frame only (thresholds)
        p: MaskParams = self.params  # type: ignore[assignment]
        frame.restrict(p.low, p.high)
        return None


class SubtractImageParams(Params):
    file: str = Field(..., description="background image file (empty cell, air scatter); a "
                      "stack is averaged")
    dataset: str | None = Field(None, description="HDF5 dataset of the file")
    scale: float = Field(1.0, description="factor applied to the background image "
                         "(e.g. exposure or monitor ratio)", json_schema_extra={"units": "dimensionless"})


class SubtractImage(Plugin):
    """Subtract a scaled background image from each frame (before integration)."""

    name = "subtract_image"
    stage = "image"
    Params = SubtractImageParams

    def runs_in_threads(self) -> bool:
        return True

    def setup(self, shape, ai, chain):
        from matterflow.diffraction.xrd._io import read_image

        p: SubtractImageParams = self.params  # type: ignore[assignment]
        fp = self.path(p.file)
        img = read_image(fp, dataset=p.dataset, what="subtract_image.file")
        if img.shape != shape:
            raise InputError(f"subtract_image.file: {fp} has shape {img.shape}; the frames have "
                             f"{shape}")
        self.bg = (p.scale * img).astype(np.float32)

    def process(self, frame):
        frame.image = np.asarray(frame.image, dtype=np.float32) - self.bg
        return None


# --------------------------------------------------------------------------- integration

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


# --------------------------------------------------------------------------- pattern stage

class BackgroundParams(Params):
    method: Literal["snip", "polynomial", "constant"] = Field(
        "snip", description="snip: clipping filter; polynomial: iterative fit below the peaks; "
        "constant: subtract `value`")
    iterations: int = Field(40, ge=1, le=10_000, description="SNIP half-width in bins / "
                            "polynomial iterations")
    order: int = Field(3, ge=0, le=12, description="polynomial order")
    value: float = Field(0.0, description="constant background", json_schema_extra={"units": "counts"})


def snip(y: np.ndarray, iterations: int) -> np.ndarray:
    """SNIP background (Ryan et al. 1988) with the LLS transform, on a 1D array."""
    yy = np.where(np.isfinite(y), y, np.nanmin(y) if np.isfinite(y).any() else 0.0)
    v = np.log(np.log(np.sqrt(np.clip(yy, 0, None) + 1) + 1) + 1)
    n = v.size
    for k in range(1, iterations + 1):
        if 2 * k >= n:
            break
        mid = 0.5 * (v[:-2 * k] + v[2 * k:])
        v[k:n - k] = np.minimum(v[k:n - k], mid)
    return (np.exp(np.exp(v) - 1) - 1) ** 2 - 1


class Background(Plugin):
    """Subtract a background from the 1D pattern (SNIP, iterative polynomial, constant)."""

    name = "background"
    stage = "pattern"
    Params = BackgroundParams

    def runs_in_threads(self) -> bool:
        return True

    def outputs(self, chain):
        return {"background": ((_npt(chain),), "counts")}

    def process(self, frame):
        p: BackgroundParams = self.params  # type: ignore[assignment]
        y = frame.intensity
        if p.method == "constant":
            bg = np.full_like(y, p.value)
        elif p.method == "snip":
            bg = snip(y, p.iterations)
        else:
            x = frame.radial
            ok = np.isfinite(y)
            xs = (x - x.mean()) / (np.ptp(x) or 1.0)
            yy = y.copy()
            for _ in range(p.iterations):
                coef = np.polyfit(xs[ok], yy[ok], p.order)
                bg = np.polyval(coef, xs)
                yy = np.minimum(yy, bg)
            bg = np.polyval(coef, xs)
        frame.intensity = y - bg
        return {"background": bg}


def _npt(chain: list[Plugin]) -> int:
    for pl in chain:
        if isinstance(pl, Integrate1D):
            return pl.params.npt  # type: ignore[attr-defined]
    raise InputError("the chain needs an integrate1d plugin")


# --------------------------------------------------------------------------- analysis stage

class FitPeaksParams(Params):
    centers: list[float] = Field(..., min_length=1, description="approximate peak positions, "
                                 "in the radial unit of integrate1d")
    window: float = Field(..., gt=0, description="half-width of each peak's fit window, radial "
                          "unit; peaks whose windows overlap are fitted together")
    shape: Literal["gaussian", "lorentzian", "pseudo_voigt"] = Field("pseudo_voigt")
    background_order: int = Field(1, ge=0, le=4, description="polynomial background order")
    fwhm_guess: float | None = Field(None, gt=0, description="starting FWHM, radial unit")


class FitPeaks(Plugin):
    """Fit peaks of the 1D pattern: position, FWHM, height, area with uncertainties."""

    name = "fit_peaks"
    stage = "analysis"
    Params = FitPeaksParams

    def runs_in_threads(self) -> bool:
        return True

    def outputs(self, chain):
        n = len(self.params.centers)  # type: ignore[attr-defined]
        u = radial_units(_unit(chain))
        a = "counts*" + u
        return {"center": ((n,), u), "center_err": ((n,), u), "fwhm": ((n,), u),
                "fwhm_err": ((n,), u), "height": ((n,), "counts"), "height_err": ((n,), "counts"),
                "area": ((n,), a), "area_err": ((n,), a), "eta": ((n,), "dimensionless"),
                "chi2_red": ((n,), "dimensionless")}

    def process(self, frame):
        from matterflow.diffraction.xrd.fitting import fit_peaks

        p: FitPeaksParams = self.params  # type: ignore[assignment]
        sig = frame.sigma if frame.sigma is not None and np.isfinite(frame.sigma).any() else None
        fit = fit_peaks(frame.radial, frame.intensity, sig, p.centers, p.window, shape=p.shape,
                        background_order=p.background_order, fwhm_guess=p.fwhm_guess)
        return {k: getattr(fit, k) for k in ("center", "center_err", "fwhm", "fwhm_err", "height",
                                             "height_err", "area", "area_err", "eta", "chi2_red")}


def _unit(chain: list[Plugin]) -> str:
    for pl in chain:
        if isinstance(pl, Integrate1D):
            return pl.params.unit  # type: ignore[attr-defined]
    return ""


# --------------------------------------------------------------------------- registry

BUILTIN: dict[str, type[Plugin]] = {c.name: c for c in (DarkFlat, Mask, SubtractImage, Integrate1D,
                                                         Sector, Integrate2D, ChiProfile,
                                                         Background, FitPeaks)}


@functools.lru_cache(maxsize=1)
def _entry_point_plugins() -> dict[str, type[Plugin]]:
    found: dict[str, type[Plugin]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break the rest
            import warnings

            from matterflow.core.errors import MatterflowWarning

            warnings.warn(f"xrd plugin {ep.name} ({ep.value}) cannot be loaded: {exc}",
                          MatterflowWarning, stacklevel=2)
            continue
        if isinstance(cls, type) and issubclass(cls, Plugin):
            found[cls.name or ep.name] = cls
    return found


_RUNTIME: dict[str, type[Plugin]] = {}


def register_plugin(cls: type[Plugin]) -> type[Plugin]:
    """Register a plugin class at run time (tests, notebooks); entry points are the normal way."""
    if not cls.name or cls.stage not in STAGES:
        raise InputError(f"plugin {cls.__name__}: needs a name and a stage in {STAGES}")
    _RUNTIME[cls.name] = cls
    return cls


def list_plugins() -> dict[str, type[Plugin]]:
    """All plugins: built-in, from entry points, and registered at run time."""
    return {**BUILTIN, **_entry_point_plugins(), **_RUNTIME}


def get_plugin(name: str) -> type[Plugin]:
    known = list_plugins()
    if name not in known:
        raise InputError(f"unknown plugin {name!r}; known: {', '.join(known)}")
    return known[name]


def validate_chain(specs: list[dict[str, Any]], *, base_dir: Path | None = None
                   ) -> list[Plugin]:
    """Plugins of a chain from their specs, every parameter and the stage order checked.

    Raises InputError naming ``plugins[i] (name).field``.
    """
    if not isinstance(specs, list) or not specs:
        raise InputError("plugins: a non-empty list of {plugin: NAME, ...} mappings is needed")
    chain: list[Plugin] = []
    errors: list[str] = []
    ids: set[str] = set()
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "plugin" not in spec:
            errors.append(f"plugins[{i}]: needs a 'plugin' name; got {spec!r}")
            continue
        spec = dict(spec)
        name = spec.pop("plugin")
        pid = spec.pop("id", None)
        try:
            cls = get_plugin(str(name))
        except InputError as exc:
            errors.append(f"plugins[{i}]: {exc}")
            continue
        try:
            params = cls.Params(**spec)
        except ValidationError as exc:
            errors.append(validation_message(exc, prefix=f"plugins[{i}] ({name})", model=cls.Params))
            continue
        pid = str(pid or name)
        k = 2
        while pid in ids:
            pid = f"{name}_{k}"
            k += 1
        ids.add(pid)
        chain.append(cls(params, pid=pid, base_dir=base_dir))
    if errors:
        raise InputError("\n".join(errors))
    order = [STAGES.index(p.stage) for p in chain]
    for i in range(1, len(order)):
        if order[i] < order[i - 1]:
            raise InputError(f"plugins[{i}] ({chain[i].name}): a {chain[i].stage!r} plugin cannot "
                             f"come after a {chain[i - 1].stage!r} one; order: "
                             f"{' -> '.join(STAGES)}")
    n1 = sum(isinstance(p, Integrate1D) for p in chain)
    if n1 != 1:
        raise InputError(f"plugins: exactly one integrate1d plugin is needed; got {n1}")
    for p in chain:
        if p.stage == "pattern" or p.stage == "analysis":
            p.outputs(chain)  # shapes known from the parameters alone
    return chain


def chain_spec(chain: list[Plugin]) -> list[dict[str, Any]]:
    """The normalised specs (defaults filled in) of a validated chain."""
    return [{"plugin": p.name, "id": p.id, **p.params.model_dump(mode="json")} for p in chain]
