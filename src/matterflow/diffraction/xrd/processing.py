"""``matterflow xrd process WORKFLOW.yaml``: a plugin-chain file run on the core executor.

The file::

    name: heating-run
    input: {path: scan_master.h5, dataset: null, first: 0, last: null, stride: 1}
    geometry: geometry.poni
    batch_size: 16                  # frames per Dask task (optional)
    plugins:                        # see `matterflow xrd plugins`
      - {plugin: mask, high: 1.0e6}
      - {plugin: integrate1d, npt: 1000, unit: 2th_deg}
      - {plugin: fit_peaks, centers: [12.2, 14.1], window: 0.4}
    reduce: {operation: mean, centers: [12.2, 14.1], window: 0.4}   # optional
    export: {nexus: true, xy: false, csv: true}

Everything is checked before a frame is processed: the YAML fields, every
plugin's parameters, the geometry file, the frame source (files, dataset,
range), and each plugin's files against the frame shape (dark, flat, mask).
The file becomes a core workflow ``xrd.frames -> xrd.process -> xrd.reduce``
and runs on Dask with the core's batch-level resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matterflow.core.errors import InputError
from matterflow.core.registry import validation_message

__all__ = ["load_process_file", "read_process_spec", "run_process", "ProcessOutcome"]

BATCH_BYTES = 64 << 20  # largest results of one batch of frames (with the default batch size)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="frames: a file, a glob pattern, or a folder (with pattern)")
    dataset: str | None = None
    first: int = Field(0, ge=0)
    last: int | None = Field(None, ge=1)
    stride: int = Field(1, ge=1)
    pattern: str | None = None


class _Reduce(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operation: Literal["mean", "sum"] = "mean"
    centers: list[float] | None = None
    window: float = Field(0.3, gt=0)
    shape: Literal["gaussian", "lorentzian", "pseudo_voigt"] = "pseudo_voigt"


class _Export(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nexus: bool = True
    xy: bool = False
    csv: bool = True


class ProcessFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "xrd-process"
    description: str = ""
    input: _In
    geometry: str = Field(description="PONI file")
    batch_size: int | None = Field(None, ge=1)
    omp_threads: int | None = Field(None, ge=1, le=256)
    plugins: list[dict[str, Any]] = Field(min_length=1)
    reduce: _Reduce | None = None
    export: _Export = Field(default_factory=_Export)


@dataclass
class ProcessOutcome:
    results: Path
    nexus: Path | None = None
    files: list[Path] = field(default_factory=list)
    n_frames: int = 0
    n_failed: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    n_suspect: int = 0
    suspect: list[tuple[int, str]] = field(default_factory=list)
    n_fit_failed: int = 0
    fit_failed: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0


def read_process_spec(path: str | Path) -> tuple[ProcessFile, Path]:
    """The validated fields of a process file and its folder (nothing opened yet)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: process file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a mapping with input, geometry and plugins is needed")
    try:
        spec = ProcessFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(exc, prefix=str(path), model=ProcessFile)) from None
    return spec, path.resolve().parent


def load_process_file(path: str | Path) -> tuple[ProcessFile, Any, Path]:
    """Validate a process file; returns (spec, core Workflow, base folder).

    Opens the source and prepares the pipeline once (geometry, plugin files,
    shapes) so every error shows before any frame is processed.
    """
    from matterflow.core.workflow import Workflow
    from matterflow.diffraction.xrd.pipeline import Pipeline
    from matterflow.diffraction.xrd.plugins import chain_spec, validate_chain

    path = Path(path)
    spec, base = read_process_spec(path)
    text = path.read_text()
    src_path = spec.input.path
    src = src_path if Path(src_path).is_absolute() else str(base / src_path)
    geo = Path(spec.geometry) if Path(spec.geometry).is_absolute() else base / spec.geometry
    try:
        chain = validate_chain(spec.plugins, base_dir=base)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    opts = spec.input.model_dump(exclude={"path"})
    try:
        pipe = Pipeline(str(geo), chain_spec(chain), source=src, source_options=opts, base_dir=base)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    n = len(pipe.source)  # type: ignore[arg-type]
    unit = pipe.unit
    from matterflow.diffraction.xrd._io import FrameError

    try:  # the first frame is read now: a damaged file is an input error, not n failed frames
        pipe.source[0]  # type: ignore[index]
    except FrameError as exc:
        pipe.source.close()  # type: ignore[union-attr]
        raise InputError(f"{path}: {exc}") from None
    if spec.reduce is not None and spec.reduce.centers:
        from matterflow.diffraction.xrd.plugins.integrate import chain_radial_range

        lo, hi = chain_radial_range(pipe.chain, pipe.ai, pipe.shape)  # type: ignore[arg-type]
        bad = [f"centers[{j}] = {c:g}" for j, c in enumerate(spec.reduce.centers)
               if not lo <= c <= hi]
        if bad:
            pipe.source.close()  # type: ignore[union-attr]
            raise InputError(f"{path}: reduce.{', '.join(bad)} lies outside the radial range "
                             f"{lo:.6g}..{hi:.6g} ({unit}) that integrate1d covers on these "
                             "frames; the peak cannot be fitted there")
    frame_bytes = 8 * (3 * pipe.npt + sum(int(np.prod(shape)) for out in pipe.declared.values()
                                          for shape, _units in out.values()))
    pipe.source.close()  # type: ignore[union-attr]

    # the source input of the core workflow: a file, or the folder of a series
    is_series = spec.input.pattern is not None or any(c in src_path for c in "*?[")
    if is_series and spec.input.pattern is None:
        folder, pattern = str(Path(src).parent), Path(src).name
    else:
        folder, pattern = src, spec.input.pattern
    params = {"dataset": spec.input.dataset, "first": spec.input.first, "last": spec.input.last,
              "stride": spec.input.stride, "pattern": pattern}
    steps: list[dict[str, Any]] = [
        {"id": "frames", "task": "xrd.frames", "inputs": {"source": folder}, "params": params},
        {"id": "process", "task": "xrd.process",
         "inputs": {"frame": "frames.index", "source": folder, "geometry": str(geo)},
         "params": {**params, "plugins": chain_spec(chain), "base_dir": str(base),
                    "omp_threads": spec.omp_threads}},
    ]
    if spec.batch_size:
        steps[1]["batch_size"] = spec.batch_size
    elif frame_bytes * math.ceil(n / 8) > BATCH_BYTES:
        # big per-frame results (2D cakes): batches of at most BATCH_BYTES, so memory stays
        # flat as frames grow (a batch is held by a worker and by the executor at once)
        steps[1]["batch_size"] = max(1, BATCH_BYTES // frame_bytes)
    red = spec.reduce or _Reduce()
    steps.append({"id": "reduce", "task": "xrd.reduce",
                  "inputs": {"radial": "process.radial", "intensity": "process.intensity",
                             "sigma": "process.sigma", "status": "process.status",
                             "reason": "process.reason"},
                  "params": {**red.model_dump(), "unit": unit}})
    wf = Workflow.from_steps(steps, name=spec.name, description=spec.description, base_dir=base)
    full_text = text + "\n# ---- generated core workflow ----\n" + wf.text
    wf = wf.with_text(full_text, source=path, description=spec.description or f"{n} frames")
    return spec, wf, base


def _prepare_in_background(wf: Any) -> None:
    """Threads of this process will run the frames: prepare their shared pipeline now.

    A background thread builds the cached pipeline that ``xrd.process`` will use
    and runs frame 0 through it (building or loading the integration matrix)
    while the Dask cluster starts; the worker threads then find it ready, or wait
    for it under the pipeline's locks. A failure here is left for the run to report.
    """
    import contextlib
    import threading

    from matterflow.diffraction.xrd.tasks import process_pipeline

    step = next(s for s in wf.steps if s.id == "process")

    def prepare() -> None:
        with contextlib.suppress(Exception):
            pipe = process_pipeline(step.inputs["geometry"].path, step.inputs["source"].path,
                                    step.params)
            pipe.run(index=0)

    threading.Thread(target=prepare, name="xrd-prepare").start()  # not a daemon: never cut mid-write


def run_process(path: str | Path, out: str | Path, *, workers: int | None = None,
                scheduler: str | None = None, force: bool = False, progress: Any = None,
                report: bool = True, processes: bool | None = None,
                cluster: Any = None) -> ProcessOutcome:
    """Validate and run a process file; results.h5, azint.nxs, fits.csv (+ xy) in ``out``.

    ``processes``: local cluster of worker processes (True) or threads of this
    process (False). Default: threads if every plugin of the chain runs well on
    threads (:meth:`~matterflow.diffraction.xrd.plugins.Plugin.runs_in_threads`:
    the fused integration kernel and NumPy release the GIL), so there is no worker
    start-up and one integration matrix and one open file serve all threads;
    processes otherwise (e.g. with integrate2d, which pyFAI runs one at a time).
    ``cluster``: a job-queue cluster file (see :mod:`matterflow.core.cluster`).
    """
    import h5py
    import numpy as np

    from matterflow.core.execute import run_workflow
    from matterflow.diffraction.xrd.export import export_fit_csv, export_nexus, export_xy
    from matterflow.diffraction.xrd.plugins import validate_chain

    spec, wf, base = load_process_file(path)
    if processes is None:
        chain = validate_chain(spec.plugins, base_dir=base)
        processes = not all(p.runs_in_threads() for p in chain)
    if not processes and scheduler is None and cluster is None:
        _prepare_in_background(wf)
    out = Path(out)
    summary = run_workflow(wf, out, scheduler=scheduler, workers=workers, force=force,
                           progress=progress, processes=processes, cluster=cluster)
    res = ProcessOutcome(results=summary.results, seconds=summary.seconds)
    with h5py.File(summary.results, "r") as f:
        st = f["process/status"][()]
        reasons = f["process/reason"].asstr()[()]
        idx = f["process/frame_index"][()]
        red = f["reduce"] if "reduce" in f else None
        if red is not None and "frame_status" in red:  # also the frames far below the median
            st_all = red["frame_status"][()]
            reasons_all = red["frame_reason"].asstr()[()]
        else:
            st_all, reasons_all = st, reasons
    res.n_frames = int(st.size)
    bad = np.nonzero(st == 1)[0]
    res.n_failed = int(bad.size)
    res.failed = [(int(idx[k]), str(reasons[k])) for k in bad]
    sus = np.nonzero(st_all == 2)[0]
    res.n_suspect = int(sus.size)
    res.suspect = [(int(idx[k]), str(reasons_all[k])) for k in sus]
    fit_bad = np.nonzero(st == 3)[0]
    res.n_fit_failed = int(fit_bad.size)
    res.fit_failed = [(int(idx[k]), str(reasons[k])) for k in fit_bad]
    geo = Path(spec.geometry) if Path(spec.geometry).is_absolute() else base / spec.geometry
    if spec.export.nexus:
        res.nexus = export_nexus(summary.results, out / "azint.nxs",
                                 geometry_text=geo.read_text())
        res.files.append(res.nexus)
    if spec.export.csv:
        p = export_fit_csv(summary.results, out / "fits.csv")
        if p:
            res.files.append(p)
    if spec.export.xy:
        res.files.extend(export_xy(summary.results, out / "xy"))
    if report:
        from matterflow.core.report import write_report

        res.files.append(write_report(summary.results))
    return res
