"""XRD tasks: simulate, calibrate, list frames, process frames (mapped on Dask), reduce.

A processing workflow (what ``matterflow xrd process`` builds, and what a
``matterflow run`` workflow can spell out)::

    steps:
      - {id: frames, task: xrd.frames, inputs: {source: scan.h5}}
      - id: process
        task: xrd.process
        inputs: {frame: frames.index, source: scan.h5, geometry: geometry.poni}
        params: {plugins: [{plugin: integrate1d, npt: 1000, unit: 2th_deg}, ...]}
        batch_size: 16
      - id: reduce
        task: xrd.reduce
        inputs: {radial: process.radial, intensity: process.intensity,
                 sigma: process.sigma, status: process.status}

``xrd.process`` maps over frames: the executor sends batches of frame indices
to the workers, each worker reads its frames lazily from the source and
reuses one prepared pipeline (one pyFAI integrator), and every finished batch
is stored at once, so a killed run resumes with the frames not yet done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task
from matterflow.diffraction.xrd.figures import calibrate_figures, process_figures, reduce_figures
from matterflow.diffraction.xrd.pipeline import FrameResult

__all__ = ["TASKS", "simulate_heating", "calibrate", "frames", "process", "reduce"]


# --------------------------------------------------------------------------- simulate

class SimulateParams(Params):
    n_frames: int = Field(24, ge=1, le=10_000, description="frames of the heating run")
    rows: int = Field(512, ge=32, le=8192, description="detector rows")
    cols: int = Field(512, ge=32, le=8192, description="detector columns")
    pixel_size_um: float = Field(150.0, gt=0, description="pixel size", json_schema_extra={"units": "µm"})
    distance_mm: float = Field(120.0, gt=0, description="sample-detector distance",
                               json_schema_extra={"units": "mm"})
    centre_px: tuple[float, float] = Field((262.4, 247.8), description="PONI (x=column, y=row)",
                                           json_schema_extra={"units": "pixel"})
    rot1_deg: float = Field(1.5, ge=-30, le=30, description="detector tilt rot1",
                            json_schema_extra={"units": "deg"})
    rot2_deg: float = Field(-1.0, ge=-30, le=30, description="detector tilt rot2",
                            json_schema_extra={"units": "deg"})
    energy_kev: float = Field(25.0, gt=1, le=200, description="X-ray energy",
                              json_schema_extra={"units": "keV"})
    calibrant: str = Field("LaB6", description="pyFAI calibrant of the calibration image")
    a0_angstrom: float = Field(4.05, gt=1, description="phase A lattice parameter at 300 K",
                               json_schema_extra={"units": "Å"})
    b_angstrom: float = Field(5.64, gt=1, description="phase B lattice parameter",
                              json_schema_extra={"units": "Å"})
    alpha_per_k: float = Field(1.5e-5, ge=0, description="linear thermal expansion of phase A",
                               json_schema_extra={"units": "1/K"})
    seed: int = Field(0, ge=0, description="random seed of the Poisson noise")


@dataclass(frozen=True)
class SimulatedRun:
    frames: np.ndarray = quantity("counts", "(n_frames, rows, cols) heating-run frames")
    calibrant_image: np.ndarray = quantity("counts", "(rows, cols) calibrant image, same geometry")
    temperature_k: np.ndarray = quantity("K", "(n_frames,)")
    fraction_b: np.ndarray = quantity("dimensionless", "(n_frames,) phase-B fraction")
    tth_a_deg: np.ndarray = quantity("deg", "(n_frames, n_peaks_a) exact 2θ of phase A")
    tth_b_deg: np.ndarray = quantity("deg", "(n_peaks_b,) exact 2θ of phase B")
    a_angstrom: np.ndarray = quantity("Å", "(n_frames,) exact lattice parameter of phase A")
    true_poni: str = quantity("", "PONI text of the true geometry")


@task("xrd.simulate_heating", params=SimulateParams)
def simulate_heating(*, params: SimulateParams) -> SimulatedRun:
    """Synthetic in-situ heating run (fcc phase A expands, phase B grows) plus a calibrant image."""
    from matterflow.diffraction.xrd._geometry import poni_text
    from matterflow.diffraction.xrd.synthetic import calibrant_image, heating_series, make_geometry

    ai = make_geometry(distance_mm=params.distance_mm, centre_px=params.centre_px,
                       rot1_deg=params.rot1_deg, rot2_deg=params.rot2_deg,
                       pixel_size_um=params.pixel_size_um, shape=(params.rows, params.cols),
                       energy_kev=params.energy_kev)
    run = heating_series(ai, params.n_frames, a0_angstrom=params.a0_angstrom,
                         alpha_per_k=params.alpha_per_k, b_angstrom=params.b_angstrom,
                         seed=params.seed)
    cal = calibrant_image(ai, params.calibrant, seed=params.seed + 1)
    return SimulatedRun(frames=run.frames, calibrant_image=cal, temperature_k=run.temperature_k,
                        fraction_b=run.fraction_b, tth_a_deg=run.tth_a_deg,
                        tth_b_deg=run.tth_b_deg, a_angstrom=run.a_angstrom,
                        true_poni=poni_text(ai))


# --------------------------------------------------------------------------- calibrate

class CalibrateParams(Params):
    calibrant: str = Field(..., description="pyFAI calibrant name (LaB6, CeO2, Si, ...)")
    energy_kev: float = Field(..., gt=0, le=500, description="X-ray energy",
                              json_schema_extra={"units": "keV"})
    detector: str | None = Field(None, description="pyFAI detector name (or give pixel_size_um)")
    pixel_size_um: float | None = Field(None, gt=0, description="square pixel size",
                                        json_schema_extra={"units": "µm"})
    guess_distance_mm: float | None = Field(None, gt=0, description="rough distance (optional)",
                                            json_schema_extra={"units": "mm"})
    dataset: str | None = Field(None, description="HDF5 dataset of the image file")
    frame: int = Field(0, ge=0, description="frame of a multi-frame file")

    @field_validator("calibrant")
    @classmethod
    def _known(cls, v: str) -> str:
        from matterflow.diffraction.xrd._geometry import get_calibrant

        try:
            get_calibrant(v)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return v


@dataclass(frozen=True)
class CalibrationResult:
    poni: str = quantity("", "PONI file text of the refined geometry")
    distance_mm: float = quantity("mm", "sample-detector (PONI) distance")
    centre_px: np.ndarray = quantity("pixel", "(2,) beam centre x=column, y=row")
    rot_deg: np.ndarray = quantity("deg", "(3,) rot1, rot2, rot3")
    rms_tth_deg: float = quantity("deg", "rms 2θ residual of the control points")
    control_points: np.ndarray = quantity("pixel", "(n, 3) row, column, ring index")
    image: np.ndarray = quantity("counts", "(rows/b, cols/b) binned image for the figure")
    image_binning: int = quantity("dimensionless", "binning b of `image`")
    ring_tth_map: np.ndarray = quantity("deg", "(rows/b, cols/b) 2θ of the refined geometry")
    ring_tth_deg: np.ndarray = quantity("deg", "(n_rings,) calibrant 2θ")


def load_calibration_image(image: Any, dataset: str | None = None, frame: int = 0) -> np.ndarray:
    if isinstance(image, (str, Path)):
        from matterflow.diffraction.xrd._io import FrameError, open_frames

        src = open_frames(image, dataset=dataset)
        try:
            if frame >= len(src):
                raise InputError(f"{image}: frame {frame} requested; the file has {len(src)}")
            return src[frame]
        except FrameError as exc:  # a damaged calibrant image: nothing to calibrate
            raise InputError(str(exc)) from None
        finally:
            src.close()
    return np.asarray(image, dtype=np.float32)


@task("xrd.calibrate", params=CalibrateParams, figures=calibrate_figures, version="1")
def calibrate(image: Any, *, params: CalibrateParams) -> CalibrationResult:
    """Find the rings of a calibrant image and refine the geometry with pyFAI."""
    from matterflow.diffraction.xrd.calibrate import auto_calibrate

    if params.detector is None and params.pixel_size_um is None:
        raise InputError("xrd.calibrate: give detector (a pyFAI name) or pixel_size_um")
    img = load_calibration_image(image, params.dataset, params.frame)
    c = auto_calibrate(img, calibrant=params.calibrant, energy_kev=params.energy_kev,
                       detector=params.detector, pixel_size_um=params.pixel_size_um,
                       guess_distance_mm=params.guess_distance_mm)
    b = max(1, int(np.ceil(max(img.shape) / 1024)))
    r, cc = (img.shape[0] // b) * b, (img.shape[1] // b) * b
    small = img[:r, :cc].reshape(r // b, b, cc // b, b).mean(axis=(1, 3))
    tth_map = np.degrees(c.ai.center_array(img.shape, unit="2th_rad", scale=False))
    tth_map = tth_map[:r, :cc].reshape(r // b, b, cc // b, b).mean(axis=(1, 3))
    from matterflow.diffraction.xrd._geometry import get_calibrant

    cal = get_calibrant(params.calibrant, params.energy_kev)
    rings = np.degrees([t for t in cal.get_2th() if t is not None])
    rings = rings[rings < np.nanmax(tth_map)]
    return CalibrationResult(poni=c.poni, distance_mm=c.distance_mm,
                             centre_px=np.array(c.centre_px), rot_deg=np.array(c.rot_deg),
                             rms_tth_deg=c.rms_tth_deg, control_points=c.control_points,
                             image=small.astype(np.float32), image_binning=b,
                             ring_tth_map=tth_map.astype(np.float32), ring_tth_deg=rings)


# --------------------------------------------------------------------------- frames

class SourceParams(Params):
    dataset: str | None = Field(None, description="HDF5 dataset (default /entry/data/data or "
                                "Eiger data_NNNNNN)")
    first: int = Field(0, ge=0, description="first frame")
    last: int | None = Field(None, ge=1, description="stop before this frame (None: to the end)")
    stride: int = Field(1, ge=1, description="take every stride-th frame")
    pattern: str | None = Field(None, description="glob of files when the source is a folder")

    def source_options(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "first": self.first, "last": self.last,
                "stride": self.stride, "pattern": self.pattern}


@dataclass(frozen=True)
class FrameList:
    index: np.ndarray = quantity("dimensionless", "(n,) frame indices of the selection")
    shape: np.ndarray = quantity("pixel", "(2,) rows, columns of a frame")
    files: list = quantity("", "the files of the series")


@task("xrd.frames", params=SourceParams)
def frames(source: Path, *, params: SourceParams) -> FrameList:
    """Open a frame source lazily (HDF5/Eiger/TIFF/CBF/EDF/series) and list its frames."""
    from matterflow.diffraction.xrd._io import open_frames

    src = open_frames(source, **params.source_options())
    out = FrameList(index=np.arange(len(src)), shape=np.array(src.shape),
                    files=[str(p) for p in src.files])
    src.close()
    return out


# --------------------------------------------------------------------------- process

class ProcessParams(SourceParams):
    plugins: list[dict[str, Any]] = Field(..., min_length=1,
                                          description="the plugin chain (see `matterflow xrd plugins`)")
    base_dir: str | None = Field(None, description="folder that relative file names in plugins "
                                 "are relative to (default: current folder)")
    omp_threads: int | None = Field(None, ge=1, le=256, description="OpenMP threads of pyFAI in "
                                    "each worker (Dask workers start with 1); None: leave as is")

    @field_validator("plugins")
    @classmethod
    def _chain(cls, v: list[dict[str, Any]], info: Any) -> list[dict[str, Any]]:
        from matterflow.diffraction.xrd.plugins import chain_spec, validate_chain

        try:
            return chain_spec(validate_chain(v))
        except InputError as exc:
            raise ValueError(str(exc)) from None


@task("xrd.process", params=ProcessParams, map_over="frame", figures=process_figures, version="4")
def process(frame: Any, geometry: Any, source: Path | None = None, *,
            params: ProcessParams) -> FrameResult:
    """One frame through the plugin chain (dark/flat, mask, pyFAI integration, fits)."""
    if params.omp_threads:
        _set_omp_threads(params.omp_threads)
    pipe = process_pipeline(geometry, source, params)
    arr = np.asarray(frame)
    if arr.ndim == 0:
        return pipe.run(index=int(arr))
    return pipe.run(image=arr)


def process_pipeline(geometry: Any, source: Path | None, params: ProcessParams) -> Any:
    """The cached :class:`~matterflow.diffraction.xrd.pipeline.Pipeline` that
    ``xrd.process`` uses in this process for these inputs and parameters."""
    from matterflow.diffraction.xrd.pipeline import get_pipeline

    base = Path(params.base_dir) if params.base_dir else None
    geo = geometry if not isinstance(geometry, Path) else str(geometry)
    return get_pipeline(geo, params.plugins, source=source,
                        source_options=params.source_options() if source is not None else None,
                        base_dir=base)


_OMP_LIMITS: dict[int, Any] = {}


def _set_omp_threads(n: int) -> None:
    """Let pyFAI's OpenMP loops use ``n`` threads in this process (needs threadpoolctl)."""
    if n in _OMP_LIMITS:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        _OMP_LIMITS[n] = None
        return
    _OMP_LIMITS.clear()
    _OMP_LIMITS[n] = threadpool_limits(limits=n, user_api="openmp")


# --------------------------------------------------------------------------- reduce

class ReduceParams(Params):
    operation: Literal["mean", "sum"] = Field("mean", description="how frames are combined")
    first: int = Field(0, ge=0, description="first frame combined")
    last: int | None = Field(None, ge=1, description="stop before this frame (None: all)")
    centers: list[float] | None = Field(None, description="peaks to fit on the combined pattern "
                                        "(radial unit)")
    window: float = Field(0.3, gt=0, description="half-width of the fit windows (radial unit)")
    shape: Literal["gaussian", "lorentzian", "pseudo_voigt"] = "pseudo_voigt"
    unit: str = Field("2th_deg", description="radial unit of the patterns (for labels)")
    suspect_below: float = Field(0.1, ge=0, lt=1, description="a frame whose mean intensity is "
                                 "below this fraction of the series' median is flagged suspect "
                                 "(0: off)")
    include_suspect: bool = Field(False, description="combine suspect frames too (blank, "
                                  "constant, or far below the series' median intensity)")


@dataclass(frozen=True)
class Reduced:
    radial: np.ndarray = quantity("radial unit", "(npt,)")
    intensity: np.ndarray = quantity("counts", "(npt,) mean or sum over good frames")
    sigma: np.ndarray = quantity("counts", "(npt,) propagated standard error")
    n_frames: int = quantity("dimensionless", "frames combined (failed and suspect ones left out)")
    n_failed: int = quantity("dimensionless", "frames that failed")
    n_suspect: int = quantity("dimensionless", "frames flagged suspect (left out of the mean "
                              "unless include_suspect)")
    frame_status: np.ndarray = quantity("dimensionless", "(n_frames_in,) 0 good, 1 failed, 2 "
                                        "suspect, 3 a fit failed (pattern good)")
    frame_reason: list = quantity("", "(n_frames_in,) why a frame failed or is suspect")
    used: np.ndarray = quantity("dimensionless", "(n_frames_in,) 1 where the frame was combined")
    fit_center: np.ndarray = quantity("radial unit", "(n_peaks,)")
    fit_center_err: np.ndarray = quantity("radial unit", "(n_peaks,)")
    fit_fwhm: np.ndarray = quantity("radial unit", "(n_peaks,)")
    fit_area: np.ndarray = quantity("counts*radial unit", "(n_peaks,)")
    fit_status: np.ndarray = quantity("dimensionless", "(n_peaks,) 0 fitted, else a code of "
                                      "xrd.fitting.FIT_STATUS (values NaN)")
    fit_reason: list = quantity("", "(n_peaks,) why a peak was not fitted ('' if it was)")
    fit_model: np.ndarray = quantity("counts", "(npt,) fitted curve, NaN outside the windows")


def flag_dim_frames(intensity: np.ndarray, status: np.ndarray, reason: list[str],
                    below: float) -> tuple[np.ndarray, list[str]]:
    """Flag frames whose mean intensity is under ``below`` x the median of the good ones
    (status 2 and a reason); returns new (status, reason)."""
    status, reason = np.array(status, dtype=np.int64), list(reason)
    good = np.isin(status, (0, 3))
    if below <= 0 or good.sum() < 3:
        return status, reason
    with np.errstate(invalid="ignore"):
        level = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan
                          for row in intensity])
    med = float(np.nanmedian(level[good]))
    if not np.isfinite(med) or med <= 0:
        return status, reason
    for i in np.flatnonzero(good & (level < below * med)):
        status[i] = 2
        why = (f"suspect: mean intensity {level[i]:.4g} counts is {level[i] / med:.1%} of the "
               f"series' median {med:.4g} (below suspect_below={below:g})")
        reason[i] = "; ".join([why] + ([reason[i]] if reason[i] else []))
    return status, reason


@task("xrd.reduce", params=ReduceParams, figures=reduce_figures, version="3")
def reduce(radial: np.ndarray, intensity: np.ndarray, sigma: np.ndarray | None = None,
           status: np.ndarray | None = None, reason: list | None = None, *,
           params: ReduceParams) -> Reduced:
    """Mean or sum of the 1D patterns of good frames, with peaks fitted on it.

    Failed frames are left out; so are suspect ones (flagged by ``xrd.process``:
    blank or constant, or here: mean intensity below ``suspect_below`` x the
    series' median) unless ``include_suspect``. Each frame's status and reason
    are in the result, and each peak's fit status and reason.
    """
    from matterflow.diffraction.xrd.fitting import fit_peaks

    inten = np.atleast_2d(np.asarray(intensity, float))
    rad = np.atleast_2d(np.asarray(radial, float))
    n = inten.shape[0]
    st = np.zeros(n, np.int64) if status is None else np.asarray(status, np.int64).reshape(n)
    why = [""] * n if reason is None else [str(r) for r in np.ravel(np.asarray(reason, object))]
    if len(why) != n:
        raise InputError(f"xrd.reduce: reason has {len(why)} entries for {n} frames")
    st, why = flag_dim_frames(inten, st, why, params.suspect_below)
    failed = st == 1
    suspect = st == 2
    ok = (st == 0) | (st == 3) | (suspect & params.include_suspect)
    sel = np.zeros(n, bool)
    sel[params.first:params.last] = True
    use = ok & sel
    if not use.any():
        first_bad = next((f"frame {i}: {why[i]}" for i in range(n) if st[i] in (1, 2) and why[i]),
                         "")
        raise InputError(f"xrd.reduce: no good frame in frames {params.first}..{params.last} "
                         f"({int(failed.sum())} of {n} failed, {int(suspect.sum())} suspect; "
                         "include_suspect: true combines the suspect ones)"
                         + (f"; first: {first_bad}" if first_bad else ""))
    r = rad[np.argmax(use)]
    y = inten[use].sum(axis=0) if params.operation == "sum" else inten[use].mean(axis=0)
    if sigma is not None:
        s2 = np.nansum(np.atleast_2d(np.asarray(sigma, float))[use] ** 2, axis=0)
        s = np.sqrt(s2) if params.operation == "sum" else np.sqrt(s2) / use.sum()
    else:
        s = np.full_like(y, np.nan)
    k = len(params.centers or [])
    nan = np.full(k, np.nan)
    fc = fce = fw = fa = nan
    fst, fwhy = np.zeros(k, np.int32), [""] * k
    model = np.full_like(y, np.nan)
    if k:
        lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
        bad = [f"centers[{j}] = {c:g}" for j, c in enumerate(params.centers or [])
               if not lo <= c <= hi]
        if bad:
            raise InputError(f"xrd.reduce: {', '.join(bad)} lies outside the radial range "
                             f"{lo:.6g}..{hi:.6g} ({params.unit}) of the patterns")
        fit = fit_peaks(r, y, s if np.isfinite(s).all() else None, params.centers, params.window,
                        shape=params.shape)
        fc, fce, fw, fa, model = fit.center, fit.center_err, fit.fwhm, fit.area, fit.model
        fst, fwhy = np.asarray(fit.status, np.int32), list(fit.reason)
    return Reduced(radial=r, intensity=y, sigma=s, n_frames=int(use.sum()),
                   n_failed=int(failed.sum()), n_suspect=int(suspect.sum()),
                   frame_status=st, frame_reason=why, used=use.astype(np.int8),
                   fit_center=fc, fit_center_err=fce, fit_fwhm=fw, fit_area=fa,
                   fit_status=fst, fit_reason=fwhy, fit_model=model)


TASKS = [simulate_heating, calibrate, frames, process, reduce]
