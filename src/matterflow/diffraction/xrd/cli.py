"""``matterflow xrd``: calibrate, process, show, plugins, simulate."""

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
    make_progress,
    save_figure,
    save_figures,
)
from matterflow.core.errors import InputError

app = typer.Typer(help="X-ray diffraction processing on pyFAI: calibrate, process, show.",
                  no_args_is_help=True)


@app.command()
@handle_errors
def calibrate(
    image: Annotated[Path, typer.Argument(help="Calibrant image (HDF5, TIFF, CBF, EDF, .npy).")],
    calibrant: Annotated[str, typer.Option(help="pyFAI calibrant name, e.g. LaB6, CeO2, Si.")],
    energy: Annotated[float | None, typer.Option(help="X-ray energy in keV.")] = None,
    detector: Annotated[str | None, typer.Option(help="pyFAI detector name, e.g. Pilatus1M.")] = None,
    pixel_size: Annotated[float | None, typer.Option(
        "--pixel-size", help="Pixel size in µm (if no --detector).")] = None,
    guess_distance: Annotated[float | None, typer.Option("--guess-distance", help="Rough distance in mm.")] = None,
    dataset: Annotated[str | None, typer.Option(help="HDF5 dataset of the image.")] = None,
    frame: Annotated[int, typer.Option(help="Frame of a multi-frame file.")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="PONI file to write.")] = Path("geometry.poni"),
    figure: Annotated[Path | None, typer.Option(help="Figure of the fitted rings (default: OUT with .png).")] = None,
) -> None:
    """Find the rings of a calibrant image automatically and refine the geometry (writes PONI)."""
    import matplotlib

    matplotlib.use("Agg")
    from matterflow.diffraction.xrd.figures import calibrate_figures
    from matterflow.diffraction.xrd.tasks import calibrate as task

    if energy is None:
        raise InputError("--energy: the X-ray energy in keV is needed (e.g. --energy 20)")
    if detector is None and pixel_size is None:
        raise InputError("give --detector NAME (pyFAI) or --pixel-size MICRONS")
    if not image.exists():
        raise InputError(f"{image}: calibrant image not found")
    res = task(image, params={"calibrant": calibrant, "energy_kev": energy, "detector": detector,
                              "pixel_size_um": pixel_size, "guess_distance_mm": guess_distance,
                              "dataset": dataset, "frame": frame})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(res.poni)
    fig_path = figure or out.with_suffix(".png")
    vals = {k: getattr(res, k) for k in res.__dataclass_fields__}
    for fig in calibrate_figures(vals).values():
        save_figure(fig, fig_path)
    console.print(f"distance {res.distance_mm:.4f} mm, beam centre x={res.centre_px[0]:.2f} "
                  f"y={res.centre_px[1]:.2f} px, rot1 {res.rot_deg[0]:.3f}° rot2 "
                  f"{res.rot_deg[1]:.3f}°, rms 2θ {res.rms_tth_deg:.2g}° "
                  f"({len(res.control_points)} points)")
    console.print(f"geometry: {out}\nfigure:   {fig_path}")


@app.command()
@handle_errors
def process(
    workflow: Annotated[Path, typer.Argument(help="Process file (YAML): input, geometry, plugins.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("xrd-out"),
    workers: Workers = None,
    scheduler: Scheduler = None,
    processes: Processes = None,
    cluster: Cluster = None,
    force: Force = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Do not write report.html.")] = False,
    quiet: Quiet = False,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Process frames as they are appended (an SWMR HDF5 file or a folder "
        "filling with files) until Ctrl-C/SIGTERM, --idle-timeout or the input's `last`.")] = False,
    idle_timeout: Annotated[float | None, typer.Option(
        "--idle-timeout", min=0, help="With --follow: stop after this many seconds without a "
        "new frame (default: wait until stopped).")] = None,
) -> None:
    """Run a plugin chain over frames on Dask; a killed run resumes where it stopped."""
    from matterflow.diffraction.xrd.processing import run_process

    opts = RunOptions(out, workers, processes, scheduler, cluster, force, quiet)
    if follow:
        from matterflow.clitools import err_console
        from matterflow.diffraction.xrd.follow import follow_process

        say = (lambda m: None) if opts.quiet else (lambda m: err_console.print(m, markup=False))
        res, fs = follow_process(workflow, opts.out, idle_timeout=idle_timeout, force=force,
                                 report=say)
        console.print(f"follow stopped ({fs.stopped_by}): {fs.n_new} frames this run, "
                      f"{fs.n_frames} in all, {fs.rate:.1f} frames/s; results: {res.results}")
    else:
        with make_progress(opts.quiet) as progress:
            res = run_process(workflow, opts.out, progress=progress, report=not no_report,
                              **opts.executor_kwargs(default_processes=None))
        console.print(f"{res.n_frames - res.n_failed} of {res.n_frames} frames processed in "
                      f"{res.seconds:.1f} s; results: {res.results}")
    for p in res.files:
        console.print(f"  {p}")
    if res.n_suspect:
        console.print(f"[yellow]{res.n_suspect} frame(s) suspect (left out of the mean):[/yellow]")
        for i, why in res.suspect[:20]:
            console.print(f"  frame {i}: {why}", markup=False)
    if res.n_fit_failed:
        console.print(f"[yellow]{res.n_fit_failed} frame(s) with a failed peak fit:[/yellow]")
        for i, why in res.fit_failed[:20]:
            console.print(f"  frame {i}: {why}", markup=False)
    if res.n_failed:
        console.print(f"[red]{res.n_failed} frame(s) failed:[/red]")
        for i, why in res.failed[:20]:
            console.print(f"  frame {i}: {why}", markup=False)
        raise typer.Exit(code=1)


@app.command()
@handle_errors
def show(
    results: Annotated[Path, typer.Argument(help="results.h5 of a run.")],
    save: Annotated[Path | None, typer.Option(
        help="Save the figures as PNG in this folder instead of opening windows.")] = None,
) -> None:
    """Open the plots of an XRD results file (heat map, peaks vs frame, cake, mean pattern)."""
    import matplotlib

    if save is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matterflow.core.registry import get_task
    from matterflow.core.store import Results

    res = Results(results)
    figs = {}
    for step, meta in res.steps.items():
        name = str(meta.get("task", ""))
        if not name.startswith("xrd."):
            continue
        t = get_task(name)
        if t.figures is None:
            continue
        params = t.make_params(meta.get("params") or {})
        figs.update({f"{step}: {k}": v for k, v in t.figures(res[step], params).items()})
    if not figs:
        raise InputError(f"{results}: no xrd step with figures; steps: {', '.join(res.steps)}")
    if save is not None:
        for p in save_figures(figs, save):
            console.print(str(p))
        return
    plt.show()


@app.command()
@handle_errors
def export(
    results: Annotated[Path, typer.Argument(help="results.h5 with an xrd.process step.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="NeXus file to write.")] = Path("azint.nxs"),
    xy: Annotated[Path | None, typer.Option(help="Also write .xy files and patterns.csv here.")] = None,
    csv: Annotated[Path | None, typer.Option(help="Also write the per-frame fit table here.")] = None,
    geometry: Annotated[Path | None, typer.Option(help="PONI file (default: found in the results).")] = None,
) -> None:
    """Export a results file as NeXus NXazint1d/NXazint2d (and .xy / CSV)."""
    from matterflow.core.store import Results
    from matterflow.diffraction.xrd.export import (
        export_fit_csv,
        export_nexus,
        export_xy,
        find_geometry,
    )

    Results(results)  # a clear error for a missing or unreadable file
    poni = geometry.read_text() if geometry else find_geometry(results)
    console.print(str(export_nexus(results, out, geometry_text=poni)))
    if xy is not None:
        console.print(f"{len(export_xy(results, xy))} files in {xy}")
    if csv is not None:
        p = export_fit_csv(results, csv)
        console.print(str(p) if p else "no fit plugin in the results: no CSV written")


@app.command()
@handle_errors
def plugins(
    name: Annotated[str | None, typer.Argument(help="Show this plugin's parameters.")] = None,
) -> None:
    """List the processing plugins (built-in and from entry points), or one plugin's parameters."""
    from rich.table import Table

    from matterflow.diffraction.xrd.plugins import get_plugin, list_plugins

    if name is None:
        table = Table("plugin", "stage", "description", box=None)
        for n, cls in list_plugins().items():
            doc = (cls.__doc__ or "").strip().splitlines()
            table.add_row(n, cls.stage, doc[0] if doc else "")
        console.print(table)
        return
    cls = get_plugin(name)
    console.print(f"{name} ({cls.stage}): {(cls.__doc__ or '').strip()}", markup=False)
    for fname, f in cls.Params.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        units = f" [{extra['units']}]" if extra.get("units") else ""
        default = "required" if f.is_required() else f"default {f.default!r}"
        typ = str(f.annotation).replace("typing.", "")
        console.print(f"  {fname}: {typ}, {default}{units} -- {f.description or ''}",
                      markup=False, soft_wrap=True)


@app.command()
@handle_errors
def simulate(
    out: Annotated[Path, typer.Argument(help="Folder for frames.h5, calibrant.h5, true.poni, process.yaml.")],
    frames: Annotated[int, typer.Option(min=1, help="Frames of the heating run.")] = 24,
    size: Annotated[int, typer.Option(min=64, help="Detector rows = columns.")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    compression: Annotated[str, typer.Option(help="HDF5 compression: none, gzip or bitshuffle (LZ4).")] = "bitshuffle",
) -> None:
    """Write a synthetic heating run (HDF5, NeXus layout) and a calibrant image to try the tools on."""
    from matterflow.diffraction.xrd.sample_data import write_sample

    paths = write_sample(out, n_frames=frames, size=size, seed=seed, compression=compression)
    for p in paths:
        console.print(str(p))
