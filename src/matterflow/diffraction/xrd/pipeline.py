"""One frame through a plugin chain, with one prepared pipeline per worker process.

:class:`Pipeline` holds the geometry (one pyFAI ``AzimuthalIntegrator``,
whose integration engine -- CSR matrix etc. -- is built on the first frame and
reused for all later ones), the plugins after their ``setup`` (dark, flat and
mask files loaded once), and the lazily opened frame source. Pipelines are
cached per process by a hash of (geometry, chain, source), so a Dask worker
builds its integrator once and reuses it for every batch it runs; the threads
of one process share it (built once, under a lock).

A frame that cannot be read or processed gives a result with ``status`` 1,
the reason, and NaN arrays of the declared shapes; the other frames go on.
A frame whose data look wrong -- every pixel zero or the same value, or an
integrated pattern that is flat -- is processed but flagged ``status`` 2
(suspect) with the reason, and its peaks are not fitted; a frame on which a
plugin could not measure something (a peak fit that failed) gets ``status`` 3
and the plugin's reason. :data:`STATUS` lists the codes; ``xrd.reduce`` also
flags frames far below the series' median intensity and leaves suspect frames
out of its mean unless asked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import ComputeError, InputError, MatterflowError
from matterflow.core.registry import quantity
from matterflow.diffraction.xrd._geometry import load_geometry
from matterflow.diffraction.xrd._io import FrameSource
from matterflow.diffraction.xrd.plugins import (
    Frame,
    Integrate1D,
    Plugin,
    radial_units,
    validate_chain,
)

__all__ = ["Pipeline", "get_pipeline", "result_class", "FrameResult", "STATUS", "STATUS_OK",
           "STATUS_FAILED", "STATUS_SUSPECT", "STATUS_FIT_FAILED", "PATTERN_OK", "suspect_image",
           "suspect_pattern"]

STATUS_OK, STATUS_FAILED, STATUS_SUSPECT, STATUS_FIT_FAILED = 0, 1, 2, 3
STATUS = {STATUS_OK: "processed", STATUS_FAILED: "failed (not processed; see reason)",
          STATUS_SUSPECT: "suspect data (blank, constant or far below the series; see reason)",
          STATUS_FIT_FAILED: "processed, but a fit failed (see reason)"}
"""Per-frame status codes of ``xrd.process`` and what they mean."""
PATTERN_OK = (STATUS_OK, STATUS_FIT_FAILED)
"""Statuses whose integrated pattern is good (the others are failed or suspect)."""


def suspect_image(image: np.ndarray) -> str:
    """Why a frame's pixels look wrong ('' if they do not): all zero, constant, none finite.

    Looks at every 7th pixel of every 7th row first, so a normal frame costs ~2 %
    of one pass over it.
    """
    sample = image[::7, ::7]
    with np.errstate(invalid="ignore"):
        if sample.size and float(np.ptp(sample)) > 0:  # NaN (float frames) falls through
            return ""
    vals = image[np.isfinite(image)] if image.dtype.kind == "f" else image
    if vals.size == 0:
        return "no pixel of the frame is finite"
    lo, hi = vals.min(), vals.max()
    if lo != hi:
        return ""
    if lo == 0:
        return "every pixel of the frame is 0 (blank or dropped-out frame)"
    return f"every pixel of the frame is {float(lo):g} (constant frame)"


def suspect_pattern(intensity: np.ndarray | None) -> str:
    """Why an integrated pattern looks wrong ('' if it does not): no finite bin, or flat."""
    if intensity is None:
        return ""
    vals = np.asarray(intensity)[np.isfinite(intensity)]
    if vals.size == 0:
        return "no bin of the integrated pattern is finite"
    if float(np.ptp(vals)) == 0:
        return (f"the integrated pattern is flat (every bin {float(vals[0]):g}): blank frame "
                "behind the mask")
    return ""

_CACHE: OrderedDict[str, Pipeline] = OrderedDict()
_CACHE_LOCK = threading.Lock()


class Pipeline:
    """A prepared chain: geometry + plugins (+ frame source); see the module docstring."""

    def __init__(self, geometry: str | Path, plugins: list[dict[str, Any]], *,
                 source: str | Path | None = None, source_options: dict[str, Any] | None = None,
                 shape: tuple[int, int] | None = None, base_dir: Path | None = None):
        self._lock = threading.Lock()
        self.ai = load_geometry(geometry)
        self.chain: list[Plugin] = validate_chain(plugins, base_dir=base_dir)
        self.source = FrameSource(source, **(source_options or {})) if source is not None else None
        if self.source is not None:
            shape = self.source.shape
        self.shape: tuple[int, int] | None = None
        if shape is not None:
            self.prepare(tuple(shape))  # type: ignore[arg-type]
        i1 = next(p for p in self.chain if isinstance(p, Integrate1D))
        self.npt = int(i1.params.npt)  # type: ignore[attr-defined]
        self.unit = str(i1.params.unit)  # type: ignore[attr-defined]
        self.declared = {p.id: p.outputs(self.chain) for p in self.chain}
        self.declared = {k: v for k, v in self.declared.items() if v}
        self.cls = result_class(self.npt, self.unit, self.declared)

    def prepare(self, shape: tuple[int, int]) -> None:
        if self.shape == shape:
            return
        with self._lock:
            if self.shape == shape:  # another thread did it meanwhile
                return
            det = self.ai.detector
            if det.max_shape is not None and tuple(det.max_shape) != shape:
                frames = f" of {self.source.path}" if self.source is not None else ""
                raise InputError(f"geometry: the detector in the PONI has shape "
                                 f"{tuple(det.max_shape)}; the frames{frames} have {shape} "
                                 "(a damaged frame file reads as a wrong shape too)")
            for p in self.chain:
                p.setup(shape, self.ai, self.chain)
            self.shape = shape

    def run(self, image: np.ndarray | None = None, index: int = -1) -> Any:
        """Process one frame (an image, or frame ``index`` of the source); a result dataclass."""
        reason = ""
        t0 = time.perf_counter()
        try:
            if image is None:
                if self.source is None:
                    raise InputError("a frame index was given but no source file")
                image = self.source[index]
            image = np.asarray(image)
            if image.dtype.kind not in "iuf":
                image = image.astype(np.float32)
            if image.ndim != 2:
                raise InputError(f"frame: expected a 2D image (rows, cols); got shape {image.shape}")
            if self.shape is not None and image.shape != self.shape:
                raise ComputeError(f"frame {index}: shape {image.shape} differs from the "
                                   f"series' {self.shape}")
            self.prepare(image.shape)  # type: ignore[arg-type]
            fr = Frame(image=image, ai=self.ai)
            fr.suspect = suspect_image(image)
            pattern_checked = False
            for p in self.chain:
                if not pattern_checked and p.stage in ("pattern", "analysis"):
                    fr.suspect = fr.suspect or suspect_pattern(fr.intensity)
                    pattern_checked = True
                out = p.process(fr)
                if out:
                    fr.outputs[p.id] = {k: np.asarray(v) for k, v in out.items()}
            if not pattern_checked:
                fr.suspect = fr.suspect or suspect_pattern(fr.intensity)
            if fr.suspect:
                return self._result(index, STATUS_SUSPECT, "; ".join([f"suspect: {fr.suspect}",
                                                                      *fr.problems]), fr, t0)
            if fr.problems:
                return self._result(index, STATUS_FIT_FAILED, "; ".join(fr.problems), fr, t0)
            return self._result(index, STATUS_OK, "", fr, t0)
        except InputError:
            raise
        except (MatterflowError, Exception) as exc:  # recorded, the run goes on
            reason = f"{type(exc).__name__}: {exc}"
        return self._result(index, STATUS_FAILED, reason, None, t0)

    def _result(self, index: int, status: int, reason: str, fr: Frame | None,
                t0: float) -> Any:
        npt = self.npt
        nan = np.full(npt, np.nan)
        extras = {}
        plugins = {p.id: p for p in self.chain}
        for pid, decl in self.declared.items():
            got = fr.outputs.get(pid, {}) if fr is not None else {}
            vals = {}
            for name, (shape, _u) in decl.items():
                v = got.get(name)
                if v is None:
                    v = np.full(shape, plugins[pid].missing_value(name))
                elif v.shape != tuple(shape):
                    raise MatterflowError(f"plugin {pid}: output {name!r} has shape {v.shape}, "
                                          f"declared {tuple(shape)}")
                vals[name] = v
            extras[pid] = self.cls.extras[pid](**vals)
        if fr is not None and fr.radial is not None:
            radial, inten, sig = fr.radial, fr.intensity, fr.sigma
        else:
            radial, inten, sig = nan, nan, nan
        src_frame = -1
        if self.source is not None and 0 <= index < len(self.source):
            src_frame = int(self.source.indices[index])
        return self.cls(frame_index=int(index), source_frame=src_frame, status=int(status),
                        reason=reason,
                        seconds=time.perf_counter() - t0,
                        radial=radial, intensity=inten, sigma=sig, **extras)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FrameResult:
    """What ``xrd.process`` returns per frame (the chain adds its plugins' outputs).

    A chain's own result class derives from this one: ``radial`` gets the units
    of the chain's radial unit, and each plugin that declares outputs gets a
    sub-result named by its id (``fit_peaks``, ``integrate2d``, ``sector``,
    ``background`` for the built-ins; the ones not in the chain stay empty).
    """

    frame_index: int = quantity("dimensionless", "index of the frame in the selection")
    source_frame: int = quantity("dimensionless", "frame number in the source before range and "
                                 "stride (-1 for frames given as arrays)")
    status: int = quantity("dimensionless", "0 processed, 1 failed, 2 suspect data, 3 a fit "
                           "failed (see reason and STATUS)")
    reason: str = quantity("", "why the frame failed or is suspect ('' if neither)")
    seconds: float = quantity("s", "time spent on the frame (read + chain) in the worker")
    radial: np.ndarray = quantity("radial unit", "(npt,) bin centres")
    intensity: np.ndarray = quantity("counts", "(npt,) azimuthal average")
    sigma: np.ndarray = quantity("counts", "(npt,) standard error of intensity")
    sector: Any = quantity("", "outputs of the sector plugin", default_factory=dict)
    integrate2d: Any = quantity("", "outputs of the integrate2d plugin", default_factory=dict)
    background: Any = quantity("", "outputs of the background plugin", default_factory=dict)
    fit_peaks: Any = quantity("", "outputs of the fit_peaks plugin", default_factory=dict)


_CLASSES: dict[str, Any] = {}


def result_class(npt: int, unit: str, declared: dict[str, dict[str, tuple]]) -> Any:
    """A frozen dataclass for one chain's per-frame result (fields with units)."""
    key = json.dumps([npt, unit, {k: {n: [list(s), u] for n, (s, u) in v.items()}
                                  for k, v in declared.items()}], sort_keys=True)
    if key in _CLASSES:
        return _CLASSES[key]
    ru = radial_units(unit)
    fields: list[Any] = [
        ("radial", np.ndarray, quantity(ru, f"({npt},) bin centres, pyFAI unit {unit}")),
    ]
    extras = {}
    for pid, decl in declared.items():
        sub = dataclasses.make_dataclass(
            f"Out_{pid}", [(n, np.ndarray, quantity(u, f"{tuple(s)}")) for n, (s, u) in decl.items()],
            frozen=True)
        extras[pid] = sub
        fields.append((pid, sub, quantity("", f"outputs of plugin {pid}")))
    cls = dataclasses.make_dataclass("ChainFrameResult", fields, bases=(FrameResult,),
                                     frozen=True, kw_only=True)
    cls.extras = extras
    _CLASSES[key] = cls
    return cls


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Keep big per-frame buffers in the heap (glibc): fewer page faults per frame.

    Dask workers start with ``MALLOC_TRIM_THRESHOLD_`` set, which turns off
    glibc's adaptive mmap threshold, so every frame-sized array is mmapped and
    zero-filled anew. Raising the mmap threshold (to its 32 MiB maximum) and the
    trim threshold lets those buffers be reused; measured ~10 % faster per
    2048² frame. Memory is still bounded by the largest frame's working set.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("MATTERFLOW_XRD_NO_MALLOPT"):
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def get_pipeline(geometry: str | Path, plugins: list[dict[str, Any]], *,
                 source: str | Path | None = None, source_options: dict[str, Any] | None = None,
                 base_dir: Path | None = None) -> Pipeline:
    """The cached pipeline of this process for these settings (built on first use)."""
    geo = str(geometry)
    if "\n" not in geo and Path(geo).exists():
        geo_id = hashlib.sha256(Path(geo).read_bytes()).hexdigest()
    else:
        geo_id = hashlib.sha256(geo.encode()).hexdigest()
    key = hashlib.sha256(json.dumps([geo_id, plugins, str(source), source_options or {},
                                     str(base_dir)], sort_keys=True, default=str).encode()
                         ).hexdigest()
    with _CACHE_LOCK:  # threads of one worker wait for the first one's pipeline
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        _tune_malloc()
        pipe = Pipeline(geometry, plugins, source=source, source_options=source_options,
                        base_dir=base_dir)
        _CACHE[key] = pipe
        while len(_CACHE) > 4:
            _, old = _CACHE.popitem(last=False)
            if old.source is not None:
                old.source.close()
        return pipe
