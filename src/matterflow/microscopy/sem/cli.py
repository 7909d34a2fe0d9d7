"""``matterflow sem``: simulate, train, upscale, plan, series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from matterflow.clitools import console, handle_errors
from matterflow.core.errors import InputError

app = typer.Typer(help="Fast SEM: ×4 super-resolution of quick scans, planned rescans.",
                  no_args_is_help=True)


def _run(text: str, out: Path, workers: int | None):
    from matterflow.core.execute import run_workflow
    from matterflow.core.workflow import parse_workflow

    out.mkdir(parents=True, exist_ok=True)
    (out / "workflow.yaml").write_text(text)
    wf = parse_workflow(text, source=str(out / "workflow.yaml"), base_dir=out)
    return run_workflow(wf, out, workers=workers, processes=False)


@app.command("simulate")
@handle_errors
def simulate_cmd(
    out: Annotated[Path, typer.Option(help="Output folder (results.h5).")] = Path("sem-sim"),
    family: Annotated[str, typer.Option(help="grains, lamellar or dual_phase.")] = "dual_phase",
    n_images: Annotated[int, typer.Option("--n-images", help="Images.")] = 4,
    size: Annotated[int, typer.Option(help="Full-resolution side (px).")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Generate synthetic fast/full SEM scan pairs with planted rare events."""
    params = {"family": family, "n_images": n_images, "size_px": size, "seed": seed}
    s = _run(f"name: sem-simulate\nsteps:\n  - id: simulate\n    task: sem.simulate\n"
             f"    params: {json.dumps(params)}\n", out, 1)
    console.print(f"results: {s.results}")


@app.command("train")
@handle_errors
def train_cmd(
    data: Annotated[Path, typer.Argument(help="results.h5 of `matterflow sem simulate`.")],
    save: Annotated[Path, typer.Option(help="Checkpoint to write.")] = Path("sem_model.pt"),
    kind: Annotated[str, typer.Option(help="fast or ref.")] = "fast",
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 600,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to resume from.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train a ×4 model from scratch (checkpoints every 100 steps; --resume continues)."""
    from matterflow.core.store import read_results
    from matterflow.microscopy.sem.models import (
        TrainConfig,
        load_checkpoint,
        save_checkpoint,
        train,
    )

    if not data.exists():
        raise InputError(f"{data}: results file not found")
    d = read_results(data)["simulate"]
    model, opt, start, hist = None, None, 0, None
    if resume is not None:
        model, meta, opt, hist = load_checkpoint(resume)
        start = meta["step"]
    cfg = TrainConfig(kind=kind, steps=steps, seed=seed)

    def ckpt(m, o, step, h):
        save_checkpoint(save, m, optimizer=o.state_dict(), step=step, history=h)

    m, info = train(list(d["fast"]), list(d["clean"]), list(d["labels"]),
                    refs=list(d["reference"]), cfg=cfg, model=model, optimizer_state=opt,
                    start_step=start, history=hist, checkpoint=ckpt, checkpoint_every=100)
    save_checkpoint(save, m, optimizer=info["optimizer"], step=info["steps_done"],
                    history=info["loss_history"])
    h = info["loss_history"]
    console.print(f"model: {save}; steps {info['steps_done']}; loss {h[0]:.4f} -> {h[-1]:.4f}; "
                  f"{info['train_time_s']:.1f} s")


@app.command("upscale")
@handle_errors
def upscale_cmd(
    image: Annotated[Path, typer.Argument(help="Fast scan: .tif/.tiff/.png/.npy.")],
    model: Annotated[Path, typer.Option(help="Checkpoint of `sem train`.")],
    out: Annotated[Path, typer.Option(help="Output .npy of the SR image.")] = Path("sr.npy"),
    reference: Annotated[Path | None, typer.Option(help="Full-resolution reference image.")] = None,
    pixel_size: Annotated[float | None, typer.Option("--pixel-size", help="Pixel size (nm).")] = None,
) -> None:
    """Super-resolve one image ×4, tile by tile (bounded memory)."""
    from matterflow.core.store import atomic_write_bytes
    from matterflow.microscopy.sem.io import read_image
    from matterflow.microscopy.sem.models import load_checkpoint, predict_tiled

    m, _, _, _ = load_checkpoint(model)
    img, size = read_image(image, pixel_size_nm=pixel_size, need_pixel_size=reference is not None)
    ref = None
    if reference is not None:
        ref, rsize = read_image(reference, need_pixel_size=True)
        if abs(rsize - size / m.scale) > 1e-3 * size:
            raise InputError(f"{reference}: reference pixel size {rsize:g} nm must be the image's "
                             f"{size:g} nm / {m.scale} = {size / m.scale:g} nm")
    sr, _ = predict_tiled(m, img, ref)
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, sr)
    atomic_write_bytes(out, buf.getvalue())
    console.print(f"{image} {img.shape} -> {out} {sr.shape}")


@app.command("plan")
@handle_errors
def plan_cmd(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("sem-plan"),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 400,
    area: Annotated[float, typer.Option(help="Largest rescanned area fraction.")] = 0.05,
) -> None:
    """Simulate, train, upscale and plan rescans in one workflow (the demo's chain)."""
    text = (Path(__file__).with_name("sem.yaml").read_text()
            .replace("steps: 400", f"steps: {steps}").replace("area_fraction: 0.05",
                                                              f"area_fraction: {area}"))
    s = _run(text, out, 1)
    from matterflow.core.store import read_results

    p = read_results(s.results)["plan"]
    console.print(f"recall {float(p['recall']):.2f}, area {np.mean(p['area_fraction']):.3f}, "
                  f"speed-up {np.mean(p['speedup']):.1f}x; results: {s.results}")


@app.command("series")
@handle_errors
def series_cmd(
    files: Annotated[list[Path], typer.Argument(help="Frames of an in-situ series (.tif/.png/.npy).")],
    model: Annotated[Path, typer.Option(help="Checkpoint of `sem train`.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("sem-series"),
) -> None:
    """Super-resolve every frame of a series with its event probability (mapped on the executor)."""
    from matterflow.microscopy.sem.io import read_image

    if not files:
        raise InputError("sem series: no frames given (the series is empty)")
    frames = [read_image(f)[0] for f in files]
    if len({f.shape for f in frames}) != 1:
        raise InputError(f"{files[0]}: frames of a series must have one shape")
    from matterflow.core.execute import dask_client, map_items
    from matterflow.core.store import atomic_h5, base_provenance, write_outputs, write_provenance
    from matterflow.microscopy.sem.tasks import upscale

    data = np.frombuffer(model.read_bytes(), np.uint8) if model.exists() else None
    if data is None:
        raise InputError(f"{model}: model file not found")
    with dask_client(workers=1, processes=False) as client:
        values, units = map_items(client, upscale, frames, params=upscale.make_params({"tta": 2}),
                                  inputs={"model": data})
    out.mkdir(parents=True, exist_ok=True)
    with atomic_h5(out / "results.h5") as f:
        write_provenance(f, {**base_provenance(), "frames": [str(x) for x in files]})
        write_outputs(f.create_group("series"), values, units)
    console.print(f"{len(frames)} frames; results: {out / 'results.h5'}")
