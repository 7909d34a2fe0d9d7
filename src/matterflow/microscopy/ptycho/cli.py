"""``matterflow ptycho``: simulate 4D-STEM data, reconstruct it, joint ptycho-tomography."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matterflow.clitools import (
    console,
    handle_errors,
    param_option,
    read_result_file,
    save_figures,
    write_result_file,
)
from matterflow.core.errors import InputError
from matterflow.microscopy.ptycho.tasks import ReconstructParams, SimulateParams, TomoParams

app = typer.Typer(help="Multislice electron ptychography and joint ptychographic tomography.",
                  no_args_is_help=True)

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder (result .h5 and PNGs).")]


def _figures(task_obj, result, params) -> dict:
    from matterflow.core.registry import result_to_dict

    return task_obj.figures(result_to_dict(result)[0], params) if task_obj.figures else {}


@app.command()
@handle_errors
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="HDF5 file to write.")] = Path("ptycho-data.h5"),
    sample: Annotated[str, typer.Option(help="srtio3 (one tilt), nanocube (tilt series) or "
                                        "bilayer (two atom layers apart in depth).")] = "srtio3",
    scan: Annotated[int | None, param_option(SimulateParams, "scan", help="Scan positions per "
                                             "side (default 20 srtio3, 8 nanocube)")] = None,
    dose: Annotated[float, param_option(SimulateParams, "dose")] = 1e5,
    n_tilts: Annotated[int, param_option(SimulateParams, "n_tilts")] = 11,
    jitter: Annotated[float, param_option(SimulateParams, "jitter_a")] = 0.0,
    layer_gap: Annotated[float, param_option(SimulateParams, "layer_gap_a")] = 12.0,
    seed: Annotated[int, param_option(SimulateParams, "seed")] = 0,
) -> None:
    """Simulate a noisy 4D-STEM dataset (HDF5: patterns, positions_a, truth, ...) and its figure."""
    from matterflow.microscopy.ptycho.tasks import simulate as task

    if sample not in ("srtio3", "nanocube", "bilayer"):
        raise InputError(f"--sample must be srtio3, nanocube or bilayer; got {sample!r}")
    extra: dict = ({"energy_ev": 200e3, "semiangle_mrad": 20.0, "defocus": 50.0, "window": 24,
                    "scan": scan or 8, "dose": 1e6 if dose == 1e5 else dose}
                   if sample == "nanocube" else {"scan": scan or 20})
    if sample == "bilayer":  # a large angle: λ/α² = 27.9 Å at 30 mrad
        extra = {"energy_ev": 200e3, "semiangle_mrad": 30.0, "defocus": 40.0, "window": 40,
                 "scan": scan or 16, "dose": 1e6 if dose == 1e5 else dose,
                 "layer_gap_a": layer_gap}
    params = task.params(**{"sample": sample, "dose": dose, "n_tilts": n_tilts,
                            "jitter_a": jitter, "seed": seed, **extra})
    res = task(params=params)
    write_result_file(out, res, parameters=params.model_dump(), voxel_size_a=res.sampling_a)
    figs = save_figures(_figures(task, res, params), stem=out.with_suffix(""))
    console.print(f"{out}: {res.patterns.shape[0]} tilt(s) × {res.patterns.shape[1]} patterns of "
                  f"{res.patterns.shape[2]}², pixel {res.sampling_a:.4f} Å; figure {figs[0]}")


@app.command()
@handle_errors
def reconstruct(
    data: Annotated[Path, typer.Argument(help="4D-STEM data: .npy or HDF5/EMD (with --dataset).")],
    out: OutDir = Path("ptycho-out"),
    dataset: Annotated[str | None, typer.Option(help="HDF5 dataset path of the patterns "
                                                "(default for HDF5: patterns).")] = None,
    positions: Annotated[Path | None, typer.Option(help="Positions (.npy, (n, 2) Å); default: "
                                                   "the file's positions_a, else a raster.")] = None,
    energy: Annotated[float | None, param_option(ReconstructParams, "energy_ev")] = None,
    semiangle: Annotated[float | None, param_option(ReconstructParams, "semiangle_mrad")] = None,
    sampling: Annotated[float | None, param_option(ReconstructParams, "sampling_a")] = None,
    scan_step: Annotated[float | None, param_option(ReconstructParams, "scan_step_a")] = None,
    defocus: Annotated[float | None, param_option(ReconstructParams, "defocus")] = None,
    slices: Annotated[int, param_option(ReconstructParams, "n_slices")] = 1,
    slice_thickness: Annotated[float, param_option(ReconstructParams, "slice_thickness_a")] = 2.0,
    iterations: Annotated[int, param_option(ReconstructParams, "iterations")] = 15,
    batch_size: Annotated[int, param_option(ReconstructParams, "batch_size")] = 64,
    object_px: Annotated[int | None, param_option(ReconstructParams, "object_px")] = None,
    lr_object: Annotated[float, param_option(ReconstructParams, "lr_object")] = 0.01,
    no_probe: Annotated[bool, typer.Option("--no-probe", help="Keep the probe fixed.")] = False,
) -> None:
    """Ptychography of one dataset; resumes from OUT/checkpoint.pt after a kill."""
    import numpy as np

    from matterflow.microscopy.ptycho.tasks import load_patterns
    from matterflow.microscopy.ptycho.tasks import reconstruct as task

    is_h5 = data.suffix in (".h5", ".hdf5", ".emd")
    ds = dataset or ("patterns" if is_h5 else None)
    _, attrs = load_patterns(data, ds)  # checked here (and its attributes), read by the task
    pos = truth = None
    extra: dict = {}
    if is_h5 and dataset is None:  # a file of `ptycho simulate`: positions, sampling, truth
        stored = read_result_file(data)
        pos = stored.get("positions_a")
        truth = stored.get("truth")
        if "sampling_a" in stored and sampling is None:
            extra["sampling_a"] = float(stored["sampling_a"])
        pr = stored.get("probe_amplitude")
        sp = _read_attrs(data).get("parameters", {})
        if isinstance(sp, dict):
            energy = energy if energy is not None else sp.get("energy_ev")
            semiangle = semiangle if semiangle is not None else sp.get("semiangle_mrad")
            defocus = defocus if defocus is not None else sp.get("defocus", 0.0)
        if truth is not None and object_px is None and np.ndim(truth) == 3 and pr is not None:
            extra["object_px"] = int(np.shape(truth)[-1])
    if positions is not None:
        if not positions.exists():
            raise InputError(f"{positions}: positions file not found")
        pos = np.load(positions, allow_pickle=False)
    out.mkdir(parents=True, exist_ok=True)
    given = {"energy_ev": energy, "semiangle_mrad": semiangle, "sampling_a": sampling,
             "scan_step_a": scan_step, "object_px": object_px}
    params = task.params(**{k: v for k, v in given.items() if v is not None}, **extra,
                         defocus=defocus or 0.0, n_slices=slices, slice_thickness_a=slice_thickness,
                         iterations=iterations, batch_size=batch_size, lr_object=lr_object,
                         retrieve_probe=not no_probe, checkpoint=str(out / "checkpoint.pt"),
                         dataset=ds)
    for k, v in attrs.items():
        if getattr(params, k, None) is None:
            params = params.model_copy(update={k: v})
    if truth is not None and np.shape(truth)[-2:] != (params.object_px,) * 2:
        truth = None
    res = task(data, pos, truth, params=params)
    path = write_result_file(out / "ptycho.h5", res, inputs={"data": data},
                             parameters=params.model_dump(), pixel_size_a=res.sampling_a)
    save_figures(_figures(task, res, params), out)
    console.print(f"{path}: {len(res.loss)} iterations, {res.seconds_per_iteration:.3f} s each, "
                  f"final loss {res.loss[-1]:.4g}, retries {len(res.retries)}"
                  + (f", phase NCC {res.ncc:.4f}" if np.isfinite(res.ncc) else ""))
    if res.layer_ncc.size:
        z = (np.argmax(res.layer_ncc, 0) + 0.5) * params.slice_thickness_a
        console.print("depth profile: each truth layer's pattern peaks at "
                      + ", ".join(f"{v:.2f} Å" for v in z) + " (NCC "
                      + ", ".join(f"{v:.3f}" for v in res.layer_ncc.max(0)) + ")")


@app.command()
@handle_errors
def tomo(
    data: Annotated[Path, typer.Argument(help="Tilt series HDF5 from `ptycho simulate --sample "
                                         "nanocube` (patterns, positions_a, angles_deg).")],
    out: OutDir = Path("ptycho-tomo"),
    iterations: Annotated[int, param_option(TomoParams, "iterations")] = 20,
    tv_weight: Annotated[float, param_option(TomoParams, "tv_weight")] = 2.5e-4,
    baseline: Annotated[bool, typer.Option(help="Also run the sequential baseline.")] = True,
    align: Annotated[bool, typer.Option(help="Estimate each tilt's in-plane shift.")] = False,
) -> None:
    """Joint ptychographic tomography of a tilt series (and the sequential baseline)."""
    import numpy as np

    from matterflow.microscopy.ptycho.tasks import tomo as task

    d = read_result_file(data)
    missing = [k for k in ("patterns", "positions_a", "angles_deg", "sampling_a") if k not in d]
    if missing:
        raise InputError(f"{data}: datasets {', '.join(missing)} missing (write it with "
                         "`matterflow ptycho simulate --sample nanocube`)")
    prov = _read_attrs(data)
    sp = prov.get("parameters", {})
    truth = d.get("truth")
    n = int(sp.get("voxels", 32))
    params = task.params(energy_ev=sp.get("energy_ev", 200e3),
                         semiangle_mrad=sp.get("semiangle_mrad", 20.0),
                         defocus=sp.get("defocus", 50.0), sampling_a=float(d["sampling_a"]),
                         voxels=n, n_slices=sp.get("n_slices", 8), iterations=iterations,
                         tv_weight=tv_weight, baseline=baseline, align=align)
    res = task(d["patterns"], d["positions_a"], d["angles_deg"],
               truth if truth is not None and np.shape(truth)[0] == n else None,
               d.get("isolated_atom"), d.get("probe_amplitude"), d.get("probe_phase"),
               params=params)
    out.mkdir(parents=True, exist_ok=True)
    path = write_result_file(out / "tomo.h5", res, inputs={"data": data},
                             parameters=params.model_dump(), voxel_size_a=res.voxel_size_a)
    save_figures(_figures(task, res, params), out)
    console.print(f"{path}: joint NCC {res.ncc:.3f} in {res.seconds:.1f} s, depth FWHM "
                  f"{res.depth_fwhm_a:.2f} Å; sequential NCC {res.baseline_ncc:.3f} in "
                  f"{res.baseline_seconds:.1f} s, FWHM {res.baseline_depth_fwhm_a:.2f} Å; "
                  f"multislice only FWHM {res.ms_depth_fwhm_a:.2f} Å")


def _read_attrs(path: Path) -> dict:
    import json

    import h5py

    with h5py.File(path, "r") as f:
        out = {}
        for k, v in f.attrs.items():
            try:
                out[k] = json.loads(v) if isinstance(v, str) else v
            except ValueError:
                out[k] = v
        return out

