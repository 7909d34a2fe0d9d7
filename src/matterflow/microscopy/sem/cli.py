"""``matterflow sem``: simulate, train, upscale, plan, series.

Every command that maps work over images or tiles (simulate, upscale, plan, series) builds
its workflow in code and runs it on the core executor (``RunOptions.run_steps``), so it
writes ``OUT/results.h5`` with provenance, resumes after a kill and takes the shared run
options. ``train`` is one long call with its own checkpoints and ``--resume``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from matterflow.clitools import (
    Cluster,
    Force,
    Out,
    Processes,
    Quiet,
    RunOptions,
    Scheduler,
    Workers,
    console,
    handle_errors,
    param_option,
    save_figure,
    save_figures,
)
from matterflow.core.errors import InputError
from matterflow.microscopy.sem.tasks import (
    LoadParams,
    PlanParams,
    SimulateParams,
    TrainParams,
    UpscaleParams,
)

app = typer.Typer(help="Fast SEM: ×4 super-resolution of quick scans, planned rescans.",
                  no_args_is_help=True)

Family = Annotated[str, typer.Option(help="Microstructure family: grains, lamellar or dual_phase.")]


def _opts(out, workers, processes, scheduler, cluster, force, quiet) -> RunOptions:
    return RunOptions(out, workers, processes, scheduler, cluster, force, quiet)


def _read(results: Path, step: str) -> dict:
    from matterflow.core.store import read_results

    return read_results(results)[step]


def _family(value: str) -> str:
    from matterflow.microscopy.sem.synthetic import FAMILIES

    if value not in FAMILIES:
        raise InputError(f"--family must be one of {', '.join(FAMILIES)}; got {value!r}")
    return value


@app.command("simulate")
@handle_errors
def simulate_cmd(
    family: Family = "dual_phase",
    n_images: Annotated[int, param_option(SimulateParams, "n_images", "--n-images")] = 4,
    size: Annotated[int, param_option(SimulateParams, "size_px", "--size")] = 256,
    grain: Annotated[float, param_option(SimulateParams, "grain_px", "--grain")] = 40.0,
    events: Annotated[float, param_option(SimulateParams, "event_density_per_mpx", "--events")] = 40.0,
    seed: Annotated[int, param_option(SimulateParams, "seed", "--seed")] = 0,
    out: Out = Path("sem-sim"),
    workers: Workers = None, processes: Processes = None, scheduler: Scheduler = None,
    cluster: Cluster = None, force: Force = False, quiet: Quiet = False,
) -> None:
    """Generate synthetic fast/full SEM scan pairs with planted rare events."""
    params = {"family": _family(family), "n_images": n_images, "size_px": size, "grain_px": grain,
              "event_density_per_mpx": events, "seed": seed}
    opts = _opts(out, workers, processes, scheduler, cluster, force, quiet)
    s = opts.run_steps([{"id": "simulate", "task": "sem.simulate", "params": params}],
                       name="sem-simulate", default_processes=False)
    console.print(f"results: {s.results}")


@app.command("train")
@handle_errors
def train_cmd(
    data: Annotated[Path, typer.Argument(help="results.h5 of `matterflow sem simulate`.")],
    save: Annotated[Path, typer.Option(help="Checkpoint to write (.pt).")] = Path("sem_model.pt"),
    kind: Annotated[str, typer.Option(help="fast (single image) or ref (reference-based).")] = "fast",
    steps: Annotated[int, param_option(TrainParams, "steps", "--steps")] = 1500,
    channels: Annotated[int, param_option(TrainParams, "channels", "--channels")] = 32,
    layers: Annotated[int, param_option(TrainParams, "layers", "--layers")] = 4,
    time_limit: Annotated[float, param_option(TrainParams, "time_limit_s", "--time-limit")] = 0.0,
    validation: Annotated[Path | None, typer.Option(help="results.h5 of held-out images "
                                                    "(validation PSNR/SSIM at each checkpoint).")] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = 100,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to resume from.")] = None,
    seed: Annotated[int, param_option(TrainParams, "seed", "--seed")] = 0,
    quiet: Quiet = False,
) -> None:
    """Train a ×4 model from scratch (checkpoint every 100 steps; --resume continues)."""
    from matterflow.clitools import make_progress
    from matterflow.microscopy.sem.models import (
        TrainConfig,
        load_checkpoint,
        save_checkpoint,
        train,
    )
    from matterflow.microscopy.sem.tasks import _scale_of, _train_figures

    if kind not in ("fast", "ref"):
        raise InputError(f"--kind must be fast or ref; got {kind!r}")
    if not data.exists():
        raise InputError(f"{data}: results file not found")
    d = _read(data, "simulate")
    scale = _scale_of(d["fast"], d["clean"], f"{data}: simulate/fast and simulate/clean")
    val = None
    if validation is not None:
        if not validation.exists():
            raise InputError(f"{validation}: results file not found")
        v = _read(validation, "simulate")
        val = (list(v["fast"]), list(v["clean"]), list(v["reference"]))
    model, opt, start, hist = None, None, 0, None
    cfg = TrainConfig(kind=kind, scale=scale, steps=steps, channels=channels, layers=layers,
                      seed=seed, time_limit_s=time_limit, val_every=checkpoint_every if val else 0)
    if resume is not None:
        model, meta, opt, hist = load_checkpoint(resume)
        start = int(meta["step"])
        if model.kind != kind or model.scale != scale:
            raise InputError(f"{resume}: a ×{model.scale} '{model.kind}' model cannot resume as "
                             f"a ×{scale} '{kind}' one")
        cfg = TrainConfig(kind=kind, scale=scale, steps=steps, channels=model.channels,
                          layers=model.layers, seed=seed, time_limit_s=time_limit,
                          val_every=cfg.val_every)

    def ckpt(m, o, step, h):
        save_checkpoint(save, m, optimizer=o.state_dict(), step=step, history=h,
                        metadata={"data": str(data)})

    with make_progress(quiet) as progress:
        bar = progress.add_task("train", total=steps, completed=start)
        m, info = train(list(d["fast"]), list(d["clean"]), list(d["labels"]),
                        refs=list(d["reference"]), cfg=cfg, model=model, optimizer_state=opt,
                        start_step=start, history=hist, checkpoint=ckpt,
                        checkpoint_every=checkpoint_every, validation=val,
                        progress=lambda k, n, loss: progress.update(bar, completed=k))
    meta = {"data": str(data), "validation": info["validation"]}
    save_checkpoint(save, m, optimizer=info["optimizer"], step=info["steps_done"],
                    history=info["loss_history"], metadata=meta)
    figs = _train_figures({"loss_history": info["loss_history"]}, TrainParams(kind=kind))
    save_figures(figs, stem=save.with_suffix(""))
    h = info["loss_history"]
    console.print(f"model: {save}; steps {info['steps_done']}; loss {h[0]:.4f} -> {h[-1]:.4f}; "
                  f"{info['train_time_s']:.1f} s")
    if info["validation"]:
        v = info["validation"][-1]
        console.print(f"validation: PSNR {v['psnr_db']:.2f} dB (bicubic {v['bicubic_psnr_db']:.2f}), "
                      f"SSIM {v['ssim']:.3f} (bicubic {v['bicubic_ssim']:.3f})")


def _load_step(sid: str, path: Path, pixel_size: float | None, need: bool) -> dict:
    return {"id": sid, "task": "sem.load", "inputs": {"path": path},
            "params": {"pixel_size_nm": pixel_size, "need_pixel_size": need}}


@app.command("upscale")
@handle_errors
def upscale_cmd(
    image: Annotated[Path, typer.Argument(
        help="Fast scan: .tif/.tiff, .dm3/.dm4, .emd, .ser, .mrc, .png/.jpg or .npy.")],
    model: Annotated[Path, typer.Option(help="Checkpoint of `sem train`.")],
    reference: Annotated[Path | None, typer.Option(help="Full-resolution reference image "
                                                   "(reference-based model).")] = None,
    pixel_size: Annotated[float | None, param_option(LoadParams, "pixel_size_nm",
                                                     "--pixel-size")] = None,
    reference_pixel_size: Annotated[float | None, param_option(
        LoadParams, "pixel_size_nm", "--reference-pixel-size",
        help="Pixel size of the reference, overrides its file's")] = None,
    scale: Annotated[int, param_option(UpscaleParams, "scale", "--scale")] = 4,
    tta: Annotated[int, param_option(UpscaleParams, "tta", "--tta")] = 1,
    tile: Annotated[int, param_option(UpscaleParams, "tile_lr", "--tile")] = 256,
    out: Out = Path("sem-upscale"),
    workers: Workers = None, processes: Processes = None, scheduler: Scheduler = None,
    cluster: Cluster = None, force: Force = False, quiet: Quiet = False,
) -> None:
    """Super-resolve one image ×4 tile by tile (bounded memory); OUT/results.h5 and a figure."""
    from matterflow.microscopy.sem.io import read_image
    from matterflow.microscopy.sem.models import load_checkpoint

    m, _, _, _ = load_checkpoint(model)  # checked before the run: a clear error on a bad file
    if m.scale != scale:
        raise InputError(f"{model}: the model was trained for ×{m.scale}, not for --scale {scale}")
    if m.kind == "ref" and reference is None:
        raise InputError(f"{model}: a reference-based model needs --reference (a full-resolution "
                         "scan of the same region)")
    need = reference is not None and m.kind == "ref"
    read_image(image, pixel_size_nm=pixel_size, need_pixel_size=need)
    steps = [_load_step("image", image, pixel_size, need)]
    inputs = {"image": "image.images", "model": model, "pixel_size_nm": "image.pixel_size_nm"}
    if need:
        read_image(reference, pixel_size_nm=reference_pixel_size, need_pixel_size=True)
        steps.append(_load_step("reference", reference, reference_pixel_size, True))
        inputs.update(reference="reference.images",
                      reference_pixel_size_nm="reference.pixel_size_nm")
    steps.append({"id": "upscale", "task": "sem.upscale", "inputs": inputs,
                  "params": {"tta": tta, "scale": scale, "tile_lr": tile}})
    opts = _opts(out, workers, processes, scheduler, cluster, force, quiet)
    s = opts.run_steps(steps, name="sem-upscale", default_processes=False, summary=False)
    u = _read(s.results, "upscale")
    lr = _read(s.results, "image")["images"][0]
    from matterflow.microscopy.sem.figures import comparison_figure

    save_figure(comparison_figure({"fast scan": lr, "bicubic": u["bicubic"][0], "SR": u["sr"][0]}),
                Path(out) / "upscale.png")
    console.print(f"{image} {lr.shape} -> {u['sr'].shape[1:]}; results: {s.results}; "
                  f"figure: {Path(out) / 'upscale.png'}")


@app.command("plan")
@handle_errors
def plan_cmd(
    steps: Annotated[int, param_option(TrainParams, "steps", "--steps")] = 600,
    area: Annotated[float, param_option(PlanParams, "area_fraction", "--area")] = 0.05,
    tile_px: Annotated[int, param_option(PlanParams, "tile_px", "--tile")] = 16,
    family: Family = "dual_phase",
    n_train: Annotated[int, param_option(SimulateParams, "n_images", "--n-train")] = 6,
    n_test: Annotated[int, param_option(SimulateParams, "n_images", "--n-test")] = 2,
    out: Out = Path("sem-plan"),
    workers: Workers = None, processes: Processes = None, scheduler: Scheduler = None,
    cluster: Cluster = None, force: Force = False, quiet: Quiet = False,
) -> None:
    """Simulate, train, upscale and plan rescans in one workflow (the demo's chain)."""
    fam = _family(family)
    wf = demo_steps(family=fam, n_train=n_train, n_test=n_test, train_steps=steps,
                    area_fraction=area, tile_px=tile_px)
    opts = _opts(out, workers, processes, scheduler, cluster, force, quiet)
    s = opts.run_steps(wf, name="sem-plan", default_processes=False, summary=False)
    p = _read(s.results, "plan")
    e = _read(s.results, "evaluate")
    console.print(f"SR {float(np.mean(e['psnr_db'])):.2f} dB vs bicubic "
                  f"{float(np.mean(e['bicubic_psnr_db'])):.2f} dB; recall {float(p['recall']):.2f} "
                  f"({int(np.sum(p['found']))}/{int(np.sum(p['planted']))}), area "
                  f"{float(np.mean(p['area_fraction'])):.3f}, speed-up "
                  f"{float(np.mean(p['speedup'])):.1f}x; results: {s.results}")


def demo_steps(*, family: str = "dual_phase", n_train: int = 6, n_test: int = 2,
               train_steps: int = 600, area_fraction: float = 0.05, tile_px: int = 16) -> list:
    """The steps of the demo chain (as in ``sem.yaml``): simulate → train → upscale → plan."""
    return [
        {"id": "train_data", "task": "sem.simulate",
         "params": {"family": family, "n_images": n_train, "size_px": 256, "seed": 0,
                    "event_density_per_mpx": 120}},
        {"id": "test_data", "task": "sem.simulate",
         "params": {"family": family, "n_images": n_test, "size_px": 256, "seed": 90000,
                    "grain_px": 32}},
        {"id": "train", "task": "sem.train",
         "inputs": {"fast": "train_data.fast", "clean": "train_data.clean",
                    "labels": "train_data.labels"},
         "params": {"kind": "fast", "steps": train_steps, "seed": 0}},
        {"id": "upscale", "task": "sem.upscale",
         "inputs": {"image": "test_data.fast", "model": "train.model"}, "params": {"tta": 4}},
        {"id": "evaluate", "task": "sem.evaluate",
         "inputs": {"fast": "test_data.fast", "sr": "upscale.sr", "clean": "test_data.clean"}},
        {"id": "plan", "task": "sem.plan",
         "inputs": {"event_probability": "upscale.event_probability", "spread": "upscale.spread",
                    "sr": "upscale.sr", "full": "test_data.full", "labels": "test_data.labels"},
         "params": {"tile_px": tile_px, "area_fraction": area_fraction, "threshold": 0.02}},
    ]


@app.command("series")
@handle_errors
def series_cmd(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Frames of an in-situ series (any micrograph file), in time order.")] = None,
    model: Annotated[Path, typer.Option(help="Checkpoint of `sem train`.")] = Path("sem_model.pt"),
    pixel_size: Annotated[float | None, param_option(LoadParams, "pixel_size_nm",
                                                     "--pixel-size")] = None,
    tta: Annotated[int, param_option(UpscaleParams, "tta", "--tta")] = 2,
    out: Out = Path("sem-series"),
    workers: Workers = None, processes: Processes = None, scheduler: Scheduler = None,
    cluster: Cluster = None, force: Force = False, quiet: Quiet = False,
) -> None:
    """SR and rescan planning frame by frame on the executor, drift registration, tracking."""
    from matterflow.core.store import atomic_write_bytes
    from matterflow.microscopy.sem.io import read_image
    from matterflow.microscopy.sem.models import load_checkpoint

    if not files:
        raise InputError("sem series: no frames given (the series is empty)")
    m, _, _, _ = load_checkpoint(model)
    if m.kind == "ref":
        raise InputError(f"{model}: `sem series` needs a single-image model (kind 'fast'); "
                         "this one is reference-based")
    frames = []
    for f in files:
        img, _ = read_image(f, pixel_size_nm=pixel_size)
        if frames and img.shape != frames[0].shape:
            raise InputError(f"{f}: frame of shape {img.shape}; the series' first frame "
                             f"{files[0]} is {frames[0].shape} (all frames need one shape)")
        frames.append(img)
    import io

    Path(out).mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, np.stack(frames))
    stack = Path(out) / "frames.npy"
    atomic_write_bytes(stack, buf.getvalue())
    steps = [_load_step("frames", stack, pixel_size, False),
             {"id": "register", "task": "sem.register", "inputs": {"images": "frames.images"}},
             {"id": "upscale", "task": "sem.upscale",
              "inputs": {"image": "frames.images", "model": model},
              "params": {"tta": tta}, "batch_size": 1},
             {"id": "plan", "task": "sem.plan",
              "inputs": {"event_probability": "upscale.event_probability",
                         "spread": "upscale.spread", "sr": "upscale.sr"},
              "params": {"pixel_size_nm": pixel_size or 10.0}},
             {"id": "track", "task": "sem.track",
              "inputs": {"event_probability": "upscale.event_probability",
                         "shifts_px": "register.shifts_px"}}]
    opts = _opts(out, workers, processes, scheduler, cluster, force, quiet)
    s = opts.run_steps(steps, name="sem-series", default_processes=False, summary=False,
                       description="frames: " + ", ".join(str(f) for f in files))
    t = _read(s.results, "track")
    p = _read(s.results, "plan")
    console.print(f"{len(frames)} frames; {len(t['areas_px'])} tracked features; "
                  f"{len(p['tiles'])} rescan tiles, speed-up {float(np.mean(p['speedup'])):.1f}x; "
                  f"results: {s.results}")
