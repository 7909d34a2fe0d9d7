"""``matterflow gixd``: simulate, train, detect, evaluate, track (HDF5 and COCO JSON in and out).

``detect`` maps the detector over frames on the core executor (provenance, resume,
``--workers/--scheduler/--cluster``); option bounds come from the tasks' ``Params``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import (
    Cluster,
    Force,
    Processes,
    Quiet,
    RunOptions,
    Scheduler,
    Workers,
    console,
    handle_errors,
    param_option,
    write_result_file,
)
from matterflow.core.errors import InputError
from matterflow.diffraction.gixd.tasks import (
    DetectParams,
    SimulateParams,
    TrackParams,
    TrainParams,
)

app = typer.Typer(help="GIXD simulation and Bragg-feature detection with a Faster R-CNN.",
                  no_args_is_help=True)


def _read(path: Path, *names: str) -> list:
    import h5py

    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        missing = [n for n in names if n not in f]
        if missing:
            raise InputError(f"{path}: missing dataset(s) {', '.join(missing)}; found "
                             f"{', '.join(f)}")
        return [f[n][()] for n in names]


@app.command()
@handle_errors
def simulate(
    out: Annotated[Path, typer.Argument(help="HDF5 file to write (polar images, boxes, labels).")],
    n: Annotated[int, param_option(SimulateParams, "n_images", "--n")] = 32,
    mode: Annotated[str, typer.Option(help="random, unseen (a structure never trained on) or "
                                      "series (in-situ).")] = "random",
    size: Annotated[int, param_option(SimulateParams, "n_q", "--size",
                                      help="Polar bins along |q| and χ")] = 128,
    n_q: Annotated[int | None, typer.Option("--n-q", help="Polar bins along |q| when they differ "
                                            "from χ's (--size); e.g. 256 with --size 128")] = None,
    detector_px: Annotated[int, param_option(SimulateParams, "detector_px")] = 512,
    keep_detector: Annotated[bool, typer.Option(help="Also write the detector images "
                                                "(dataset `detector`) and the PONI.")] = False,
    coco: Annotated[Path | None, typer.Option(help="Also write the labels as COCO JSON.")] = None,
    seed: Annotated[int, param_option(SimulateParams, "seed")] = 0,
) -> None:
    """Simulate labelled GIXD frames."""
    from matterflow.diffraction.gixd._coco import to_coco, write_coco
    from matterflow.diffraction.gixd.tasks import simulate as task

    params = {"n_images": n, "mode": mode, "n_q": size if n_q is None else n_q, "n_chi": size,
              "seed": seed,
              "detector_px": detector_px, "keep_detector": keep_detector}
    res = task(params=params)
    write_result_file(out, res, parameters=params)
    console.print(f"{n} frames, {int(res.n_boxes.sum())} labelled features: {out}")
    if keep_detector:
        poni = out.with_suffix(".poni")
        poni.write_text(res.poni)
        console.print(f"detector geometry: {poni}")
    if coco is not None:
        write_coco(coco, to_coco(res.boxes, res.labels, res.n_boxes, res.polar.shape[1:],
                                 extra={"q_inv_nm": res.q_inv_nm, "chi_deg": res.chi_deg}))
        console.print(f"labels: {coco}")


@app.command()
@handle_errors
def train(
    data: Annotated[Path, typer.Argument(help="HDF5 file of `gixd simulate` (dataset `polar`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")] = Path("gixd-model.pt"),
    labels: Annotated[Path | None, typer.Option(help="COCO JSON labels (default: the boxes "
                                                "of DATA).")] = None,
    steps: Annotated[int, param_option(TrainParams, "steps")] = 200,
    batch_size: Annotated[int, param_option(TrainParams, "batch_size")] = 4,
    lr: Annotated[float, param_option(TrainParams, "lr")] = 1e-3,
    width: Annotated[int, param_option(TrainParams, "width")] = 32,
    arch: Annotated[int, param_option(TrainParams, "arch")] = 2,
    max_minutes: Annotated[float | None, param_option(TrainParams, "max_minutes")] = None,
    resume: Annotated[Path | None, typer.Option(help="Training checkpoint, saved every 50 steps "
                                                "and resumed if it exists.")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation file of `gixd simulate`: the "
                                             "best-F1 score threshold on it is stored in the "
                                             "model.")] = None,
    seed: Annotated[int, param_option(TrainParams, "seed")] = 0,
) -> None:
    """Train the Faster R-CNN from scratch (resumes --resume FILE if it exists)."""
    from matterflow.core.store import atomic_write_bytes
    from matterflow.diffraction.gixd.tasks import train as task

    if labels is None:
        images, boxes, lab, nb = _read(data, "polar", "boxes", "labels", "n_boxes")
    else:
        from matterflow.diffraction.gixd._coco import read_coco

        (images,) = _read(data, "polar")
        boxes, lab, nb, shape = read_coco(labels)
        if len(nb) != len(images) or tuple(shape) != tuple(images.shape[1:]):
            raise InputError(f"{labels}: {len(nb)} images of {shape[1]} x {shape[0]}; {data} "
                             f"holds {len(images)} of {images.shape[2]} x {images.shape[1]}")
    val_inputs = ()
    if val is not None:
        val_inputs = tuple(_read(val, "polar", "boxes", "labels", "n_boxes"))
    res = task(images, boxes, lab, nb, *val_inputs, params={
        "steps": steps, "batch_size": batch_size, "lr": lr, "width": width, "arch": arch,
        "max_minutes": max_minutes, "seed": seed,
        "checkpoint_path": str(resume) if resume else None})
    atomic_write_bytes(out, res.checkpoint.tobytes())
    console.print(f"{res.steps_done} steps in {res.seconds:.0f} s, last loss "
                  f"{res.losses[-1]:.3f}: {out}")
    if val is not None:
        console.print(f"score threshold {res.score_threshold:.3f} (best F1 on {val})")


def _default_dataset(data: Path, dataset: str | None, geometry: Path | None) -> str | None:
    """`polar` for a file of `gixd simulate` (unless detector frames are asked for)."""
    if dataset is not None or data.suffix.lower() not in (".h5", ".hdf5", ".nxs") or not data.is_file():
        return dataset
    import h5py

    try:
        with h5py.File(data, "r") as f:
            if geometry is None and "polar" in f:
                return "polar"
            if geometry is not None and "detector" in f:
                return "detector"
    except OSError:
        return dataset
    return dataset


@app.command()
@handle_errors
def detect(
    data: Annotated[Path, typer.Argument(help="Frames: HDF5/NeXus, Eiger, TIFF, CBF or EDF file "
                                         "or folder (polar images, or detector images with "
                                         "--geometry).")],
    model: Annotated[Path | None, typer.Option(help="Model file (omit with --method classical).")] = None,
    method: Annotated[str, typer.Option(help="model or classical.")] = "model",
    dataset: Annotated[str | None, typer.Option(help="HDF5 dataset of the frames (default: "
                                                "`polar` of a `gixd simulate` file, else the "
                                                "XRD readers' default).")] = None,
    geometry: Annotated[Path | None, typer.Option(help="PONI file: the frames are detector "
                                                  "images, converted to (|q|, χ).")] = None,
    incidence_deg: Annotated[float | None, param_option(DetectParams, "incidence_deg")] = None,
    score_threshold: Annotated[float | None, param_option(DetectParams, "score_threshold")] = None,
    peaks: Annotated[Path, typer.Option("--peaks", "-p", help="Peak table to write (HDF5).")] = Path("peaks.h5"),
    coco: Annotated[Path | None, typer.Option(help="Also write the detections as COCO JSON.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Frames per executor task.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (results.h5 with "
                                      "provenance; a killed run resumes).")] = Path("gixd-detect"),
    workers: Workers = None,
    processes: Processes = None,
    scheduler: Scheduler = None,
    cluster: Cluster = None,
    force: Force = False,
    quiet: Quiet = False,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Detect in frames as they are appended (an SWMR HDF5 file or a folder "
        "filling with files) until Ctrl-C/SIGTERM or --idle-timeout; batches in OUT/follow.")] = False,
    idle_timeout: Annotated[float | None, typer.Option(
        "--idle-timeout", min=0, help="With --follow: stop after this many seconds without a "
        "new frame (default: wait until stopped).")] = None,
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Folder for figures: detections over the first frames (polar, and "
        "detector images with --geometry).")] = None,
) -> None:
    """Detect features in every frame; writes a peak table (q, χ, q_xy, q_z, box, score)."""
    import numpy as np

    if not data.exists() and not follow and not any(c in str(data) for c in "*?["):
        raise InputError(f"{data}: frames file not found")
    if geometry is not None and not geometry.is_file():
        raise InputError(f"--geometry {geometry}: PONI file not found")
    if method == "model" and model is None:
        raise InputError("--model: a model file is needed (or --method classical)")
    dataset = _default_dataset(data, dataset, geometry)
    params = {"method": method, "score_threshold": score_threshold,
              "incidence_deg": incidence_deg, "dataset": dataset}
    if any(c in str(data) for c in "*?["):  # a glob: the folder and a pattern
        params["pattern"] = data.name
        data = data.parent
    if follow:
        values, shape, run = _detect_follow(data, model, geometry, params, out, batch_size,
                                            idle_timeout, force, quiet)
    else:
        values, shape, run = _detect_run(data, model, geometry, params, out, batch_size,
                                         workers, processes, scheduler, cluster, force, quiet)
    write_result_file(peaks, values, inputs={"frames": data if data.is_file() else None,
                                            "model": model, "geometry": geometry},
                      parameters=params, run=run)
    values = values[0]
    n_frames = len(values["n"])
    failed = np.flatnonzero(np.asarray(values["status"]) != 0)
    console.print(f"{int(np.sum(values['n']))} detections in {n_frames - len(failed)} of "
                  f"{n_frames} frames: {peaks}")
    for i in failed[:20]:
        console.print(f"  frame {i} failed: {values['reason'][i]}", markup=False)
    if coco is not None:
        from matterflow.diffraction.gixd._coco import to_coco, write_coco

        n_chi, n_q = shape if geometry is None else _model_shape(model, params)
        write_coco(coco, to_coco(values["boxes"], values["labels"], values["n"], (n_chi, n_q),
                                 scores=values["scores"],
                                 extra={k: values[k] for k in ("q_inv_nm", "chi_deg",
                                                               "q_xy_inv_nm", "q_z_inv_nm")}))
        console.print(f"COCO detections: {coco}")
    if figures is not None:
        from matterflow.clitools import save_figures
        from matterflow.diffraction.gixd.figures import detection_figures

        figs = detection_figures(data, values, dataset=dataset, geometry=geometry,
                                 params=DetectParams(**params),
                                 polar_shape=_model_shape(model, params))
        for p in save_figures(figs, figures):
            console.print(str(p))


def _detect_follow(data: Path, model: Path | None, geometry: Path | None, params: dict,
                   out: Path, batch_size: int | None, idle_timeout: float | None, force: bool,
                   quiet: bool) -> tuple:
    from matterflow.clitools import err_console, state
    from matterflow.diffraction.gixd._follow import follow_detect

    quiet = quiet or state.quiet
    say = (lambda m: None) if quiet else (lambda m: err_console.print(m, markup=False))
    values, units, fs, shape = follow_detect(data, out, model=model, geometry=geometry, params=params,
                                      batch_size=batch_size or 8, idle_timeout=idle_timeout,
                                      force=force, report=say)
    console.print(f"follow stopped ({fs.stopped_by}): {fs.n_new} frames this run, "
                  f"{fs.n_frames} in all, {fs.rate:.1f} frames/s")
    if not fs.n_frames:
        raise InputError(f"{data}: no frame arrived ({fs.waiting_for}); nothing written")
    return (values, units), shape, str(out / "follow")


def _detect_run(data: Path, model: Path | None, geometry: Path | None, params: dict, out: Path,
                batch_size: int | None, workers: int | None, processes: bool | None,
                scheduler: str | None, cluster: Path | None, force: bool, quiet: bool) -> tuple:
    import h5py
    import numpy as np

    from matterflow.diffraction.gixd.tasks import check_detect_inputs
    from matterflow.diffraction.xrd._io import open_frames

    dataset = params["dataset"]
    src = open_frames(data, dataset=dataset, pattern=params.get("pattern"))
    shape = tuple(src.shape)
    src.close()
    if params["method"] == "classical" and geometry is None:
        params.update(n_chi=int(shape[0]), n_q=int(shape[1]))
    check_detect_inputs(model, shape, geometry=geometry, params=DetectParams(**params),
                        where=str(data))
    inputs = {"frame": "frames.index", "source": data}
    if model is not None and params["method"] == "model":
        inputs["model"] = model
    if geometry is not None:
        inputs["geometry"] = geometry
    steps = [{"id": "frames", "task": "xrd.frames", "inputs": {"source": data},
              "params": {"dataset": dataset, "pattern": params.get("pattern")}},
             {"id": "detect", "task": "gixd.detect", "inputs": inputs, "params": params,
              "batch_size": batch_size}]
    opts = RunOptions(out, workers, processes, scheduler, cluster, force, quiet)
    summary = opts.run_steps(steps, name="gixd-detect", default_processes=False)
    with h5py.File(summary.results, "r") as f:
        g = f["detect"]
        values = {k: g[k][()] for k in g if isinstance(g[k], h5py.Dataset)}
        units = {k: g[k].attrs.get("units", "") for k in values}
    values["reason"] = [r.decode() if isinstance(r, bytes) else str(r)
                        for r in np.atleast_1d(values["reason"])]
    return (values, units), shape, str(summary.results)


def _model_shape(model: Path | None, params: dict) -> tuple[int, int]:
    from matterflow.diffraction.gixd.tasks import _model

    if params["method"] == "model":
        return tuple(_model(model)[1]["shape"])  # type: ignore[return-value]
    p = DetectParams(**params)
    return p.n_chi, p.n_q


@app.command()
@handle_errors
def evaluate(
    peaks: Annotated[Path, typer.Argument(help="Peak table of `gixd detect`.")],
    truth: Annotated[Path, typer.Argument(help="HDF5 file of `gixd simulate`, or COCO JSON "
                                          "labels.")],
    figures: Annotated[Path | None, typer.Option(
        "--figures", help="Folder for the precision-recall curves and AP50 against |q|.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the evaluation "
                                             "(HDF5: AP, curves, AP50 against |q|).")] = None,
) -> None:
    """COCO AP / AP50 of a peak table against the labels (and their figures)."""
    from matterflow.diffraction.gixd.tasks import evaluate as task

    db, ds, dl, dn = _read(peaks, "boxes", "scores", "labels", "n")
    q_axis = None
    if truth.suffix.lower() == ".json":
        from matterflow.diffraction.gixd._coco import read_coco

        gb, gl, gn, shape = read_coco(truth)
    else:
        gb, gl, gn = _read(truth, "boxes", "labels", "n_boxes")
        import h5py

        with h5py.File(truth, "r") as f:
            q_axis = f["q_axis"][()] if "q_axis" in f else None
            shape = f["polar"].shape[1:] if "polar" in f else None
    if q_axis is None and shape is not None:
        q_axis = _q_axis_of_peaks(peaks, int(shape[1]))
    r = task(db, ds, dl, dn, gb, gl, gn, q_axis=q_axis)
    console.print(f"AP {r.ap:.3f}  AP50 {r.ap50:.3f}  AP75 {r.ap75:.3f}  ({r.n_gt} boxes, "
                  f"{r.n_det} detections)")
    if out is not None:
        write_result_file(out, r, inputs={"peaks": peaks, "truth": truth})
        console.print(f"evaluation: {out}")
    if figures is not None:
        from matterflow.clitools import save_figures
        from matterflow.diffraction.gixd.figures import evaluation_figures

        vals = {k: getattr(r, k) for k in r.__dataclass_fields__}
        for p in save_figures(evaluation_figures(vals, None), figures):
            console.print(str(p))


def _q_axis_of_peaks(peaks: Path, n_q: int) -> object:
    """The |q| of each polar column from a peak table (box centre column against its |q|: a
    straight line), or None if the table has fewer than two detections."""
    import numpy as np

    b, q, n = _read(peaks, "boxes", "q_inv_nm", "n")
    xs = np.concatenate([(b[i, :k, 0] + b[i, :k, 2]) / 2 for i, k in enumerate(n.astype(int))])
    qs = np.concatenate([q[i, :k] for i, k in enumerate(n.astype(int))])
    ok = np.isfinite(xs) & np.isfinite(qs)
    if ok.sum() < 2 or np.ptp(xs[ok]) == 0:
        return None
    slope, icpt = np.polyfit(xs[ok], qs[ok], 1)
    return icpt + slope * (np.arange(n_q) + 0.5)


@app.command()
@handle_errors
def track(
    peaks: Annotated[Path, typer.Argument(help="Peak table of `gixd detect` on a series.")],
    min_score: Annotated[float, param_option(TrackParams, "min_score")] = 0.3,
    max_dq: Annotated[float, param_option(TrackParams, "max_dq")] = 0.5,
    max_dchi: Annotated[float, param_option(TrackParams, "max_dchi")] = 5.0,
    max_gap: Annotated[int, param_option(TrackParams, "max_gap")] = 2,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Tracks file (HDF5) and "
                                             "its figure beside it.")] = None,
) -> None:
    """Link detections across frames (Hungarian matching in |q|, χ)."""
    from matterflow.diffraction.gixd.tasks import track as task

    q, chi, s, n, wq, wc, lab = _read(peaks, "q_inv_nm", "chi_deg", "scores", "n",
                                      "width_q_inv_nm", "width_chi_deg", "labels")
    params = {"min_score": min_score, "max_dq": max_dq, "max_dchi": max_dchi, "max_gap": max_gap}
    r = task(q, chi, s, n, wq, wc, lab, params=params)
    console.print(f"{r.n_tracks} tracks; longest {int(r.length.max()) if r.n_tracks else 0} frames")
    if out is not None:
        from matterflow.clitools import save_figures
        from matterflow.diffraction.gixd.tasks import track_figures

        write_result_file(out, r, inputs={"peaks": peaks}, parameters=params)
        vals = {k: getattr(r, k) for k in r.__dataclass_fields__}
        paths = save_figures(track_figures({**vals, "q_inv_nm": q, "chi_deg": chi}, None),
                             stem=out.with_suffix(""))
        console.print(f"tracks: {out}; figure: {', '.join(map(str, paths))}")
