"""``matterflow gixd``: simulate, train, detect, track, evaluate (HDF5 files in and out)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import console, handle_errors
from matterflow.core.errors import InputError

app = typer.Typer(help="GIXD simulation and Bragg-feature detection with a Faster R-CNN.",
                  no_args_is_help=True)


def _write(path: Path, result: object) -> None:
    from matterflow.core.registry import result_to_dict
    from matterflow.core.store import atomic_h5, write_outputs

    values, units = result_to_dict(result)
    with atomic_h5(path) as f:
        write_outputs(f, values, units)


def _read(path: Path, *names: str) -> list:
    import h5py

    if not path.exists():
        raise InputError(f"{path}: file not found")
    with h5py.File(path, "r") as f:
        missing = [n for n in names if n not in f]
        if missing:
            raise InputError(f"{path}: missing dataset(s) {', '.join(missing)}; found "
                             f"{', '.join(f)}")
        return [f[n][()] for n in names]


@app.command()
@handle_errors
def simulate(
    out: Annotated[Path, typer.Argument(help="HDF5 file to write (polar images, boxes, labels).")],
    n: Annotated[int, typer.Option("--n", help="Frames.")] = 32,
    mode: Annotated[str, typer.Option(help="random, unseen or series.")] = "random",
    size: Annotated[int, typer.Option(help="Polar bins along |q| and χ.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Simulate labelled GIXD frames."""
    from matterflow.diffraction.gixd.tasks import simulate as task

    res = task(params={"n_images": n, "mode": mode, "n_q": size, "n_chi": size, "seed": seed})
    _write(out, res)
    console.print(f"{n} frames, {int(res.n_boxes.sum())} labelled features: {out}")


@app.command()
@handle_errors
def train(
    data: Annotated[Path, typer.Argument(help="HDF5 file of `gixd simulate`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")] = Path("gixd-model.pt"),
    steps: Annotated[int, typer.Option(help="Optimiser steps in total.")] = 200,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 4,
    width: Annotated[int, typer.Option(help="Channels of the first layers.")] = 32,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this wall time.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Training checkpoint saved and resumed.")] = None,
) -> None:
    """Train the Faster R-CNN from scratch (resumes --resume FILE if it exists)."""
    from matterflow.core.store import atomic_write_bytes
    from matterflow.diffraction.gixd.tasks import train as task

    images, boxes, labels, nb = _read(data, "polar", "boxes", "labels", "n_boxes")
    res = task(images, boxes, labels, nb, params={
        "steps": steps, "batch_size": batch_size, "width": width, "max_minutes": max_minutes,
        "checkpoint_path": str(resume) if resume else None})
    atomic_write_bytes(out, res.checkpoint.tobytes())
    console.print(f"{res.steps_done} steps in {res.seconds:.0f} s, last loss "
                  f"{res.losses[-1]:.3f}: {out}")


@app.command()
@handle_errors
def detect(
    data: Annotated[Path, typer.Argument(help="HDF5 file with polar images (`gixd simulate`).")],
    model: Annotated[Path | None, typer.Option(help="Model file (omit with --method classical).")] = None,
    method: Annotated[str, typer.Option(help="model or classical.")] = "model",
    out: Annotated[Path, typer.Option("--out", "-o", help="Peak table (HDF5).")] = Path("peaks.h5"),
) -> None:
    """Detect features in every frame; writes a peak table (q, χ, q_xy, q_z, box, score)."""
    import numpy as np

    from matterflow.core.registry import stack_results
    from matterflow.core.store import atomic_h5, write_outputs
    from matterflow.diffraction.gixd.tasks import detect as task

    (images,) = _read(data, "polar")
    params = {"method": method, "n_q": int(images.shape[2]), "n_chi": int(images.shape[1])}
    res = [task(img, str(model) if model else None, params=params) for img in images]
    values, units = stack_results(res)
    with atomic_h5(out) as f:
        write_outputs(f, values, units)
    console.print(f"{int(np.sum(values['n']))} detections in {len(images)} frames: {out}")


@app.command()
@handle_errors
def evaluate(
    peaks: Annotated[Path, typer.Argument(help="Peak table of `gixd detect`.")],
    truth: Annotated[Path, typer.Argument(help="HDF5 file of `gixd simulate` (the labels).")],
) -> None:
    """COCO AP / AP50 of a peak table against the labels."""
    from matterflow.diffraction.gixd.tasks import evaluate as task

    db, ds, dl, dn = _read(peaks, "boxes", "scores", "labels", "n")
    gb, gl, gn = _read(truth, "boxes", "labels", "n_boxes")
    r = task(db, ds, dl, dn, gb, gl, gn)
    console.print(f"AP {r.ap:.3f}  AP50 {r.ap50:.3f}  AP75 {r.ap75:.3f}  ({r.n_gt} boxes, "
                  f"{r.n_det} detections)")


@app.command()
@handle_errors
def track(
    peaks: Annotated[Path, typer.Argument(help="Peak table of `gixd detect` on a series.")],
    min_score: Annotated[float, typer.Option(help="Detections below are not tracked.")] = 0.3,
) -> None:
    """Link detections across frames (Hungarian matching in |q|, χ)."""
    from matterflow.diffraction.gixd.tasks import track as task

    q, chi, s, n = _read(peaks, "q_inv_nm", "chi_deg", "scores", "n")
    r = task(q, chi, s, n, params={"min_score": min_score})
    console.print(f"{r.n_tracks} tracks; longest {int(r.length.max()) if r.n_tracks else 0} frames")
