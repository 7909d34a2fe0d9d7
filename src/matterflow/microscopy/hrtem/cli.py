"""``matterflow hrtem``: simulate, match and identify HRTEM images."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from matterflow.clitools import (
    console,
    handle_errors,
    param_option,
    save_figures,
    write_result_file,
)
from matterflow.microscopy.hrtem.tasks import MatchParams, SimulateParams

_IMAGE_HELP = "Image: .tif/.tiff, .dm3/.dm4, .emd, .ser, .mrc/.mrcs, .png/.jpg or .npy."

app = typer.Typer(help="HRTEM image matching: multislice forward model + Bayesian optimisation.",
                  no_args_is_help=True)


def read_image(path: Path, pixel_size: float | None) -> tuple[Any, float | None]:
    """``(image, pixel size Å)`` of a micrograph file (TIFF, DM3/DM4, EMD, SER, MRC, PNG/JPEG,
    .npy: :func:`matterflow.microscopy.imageio.read_micrograph`); the pixel size is
    ``pixel_size`` if given, else the file's (the TIFF description `hrtem simulate` writes,
    DM/EMD/SER calibrations, MRC cell), else None."""
    from matterflow.core.errors import InputError
    from matterflow.microscopy.imageio import read_micrograph

    m = read_micrograph(path, pixel_size=pixel_size)
    img = m.data
    if img.ndim == 3:
        if img.shape[0] != 1:
            raise InputError(f"{path}: a stack of {img.shape[0]} frames of {img.shape[1:]}; "
                             "`hrtem` matches one image (save one frame)")
        img = img[0]
    if img.dtype.kind not in "buif":
        raise InputError(f"{path}: image values must be real numbers; got dtype {img.dtype}")
    return img, m.pixel_size_A


def _write_image(path: Path, image, pixel_size: float, meta: dict) -> None:
    import io

    import numpy as np

    from matterflow.core.store import atomic_write_bytes

    buf = io.BytesIO()
    if path.suffix.lower() == ".npy":
        np.save(buf, image)
    else:
        import tifffile

        tifffile.imwrite(buf, image, description=json.dumps({"pixel_size_A": pixel_size, **meta}))
    atomic_write_bytes(path, buf.getvalue())


@app.command()
@handle_errors
def simulate(
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Image file (.tif with the pixel size, or .npy).")] = Path("hrtem.tif"),
    structure: Annotated[str, typer.Option(help="Built-in structure or structure file.")] = "SrTiO3",
    zone: Annotated[str, typer.Option(help="Cell vector along the beam: a, b or c.")] = "c",
    defocus: Annotated[float, param_option(SimulateParams, "defocus")] = 80.0,
    cs: Annotated[float, param_option(SimulateParams, "cs_um", "--cs")] = -15.0,
    thickness: Annotated[int, param_option(SimulateParams, "thickness_cells", "--thickness")] = 12,
    focal_spread: Annotated[float, param_option(SimulateParams, "focal_spread")] = 30.0,
    dose: Annotated[float, param_option(SimulateParams, "dose")] = 2e4,
    seed: Annotated[int, param_option(SimulateParams, "seed")] = 0,
) -> None:
    """Simulate a noisy HRTEM image of a perfect crystal."""
    from matterflow.microscopy.hrtem.tasks import simulate as task

    res = task(params={"structure": structure, "zone": zone, "defocus": defocus, "cs_um": cs,
                       "thickness_cells": thickness, "focal_spread": focal_spread,
                       "dose": dose, "seed": seed})
    _write_image(out, res.image, res.pixel_size, {"structure": structure,
                                                  "rotation_deg": float(res.true_params[3])})
    console.print(f"{out}: {res.image.shape[0]}×{res.image.shape[1]} px at "
                  f"{res.pixel_size:.4f} Å, lattice rotation {res.true_params[3]:.2f}°")


@contextlib.contextmanager
def _scheduler(workers: int) -> Iterator[Any]:
    """None for one worker, else a LocalCluster of ``workers`` processes (its Client)."""
    from matterflow.core.errors import InputError

    if workers < 1:
        raise InputError(f"--workers must be >= 1; got {workers}")
    if workers == 1:
        yield None
        return
    from matterflow.core.execute import dask_client

    with dask_client(workers=workers, processes=True) as client:
        yield client


def _match_params(structure, zone, budget, method, focal_spread, max_cells, seed) -> dict:
    return {"structure": structure, "zone": zone, "budget": budget, "method": method,
            "focal_spread": focal_spread, "max_cells": max_cells, "seed": seed}


@app.command()
@handle_errors
def match(
    image: Annotated[Path, typer.Argument(help=_IMAGE_HELP)],
    pixel_size: Annotated[float | None, typer.Option(
        "--pixel-size", help="Pixel size in Å (overrides the file's).")] = None,
    structure: Annotated[str, typer.Option(help="Built-in structure or structure file.")] = "SrTiO3",
    zone: Annotated[str, typer.Option(help="Cell vector along the beam: a, b or c.")] = "c",
    budget: Annotated[int, param_option(MatchParams, "budget")] = 700,
    method: Annotated[str, typer.Option(
        help="scan (defocus scans + multi-start gradient refinement), bo, random or grid.")
    ] = "scan",
    focal_spread: Annotated[float | None, param_option(MatchParams, "focal_spread")] = None,
    max_cells: Annotated[int, param_option(MatchParams, "max_cells")] = 40,
    seed: Annotated[int, param_option(MatchParams, "seed")] = 0,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Result file (HDF5); figures and the evaluation log beside it.")
    ] = Path("hrtem-match.h5"),
    workers: Annotated[int, typer.Option(
        help="Worker processes for the independent evaluations (Sobol start, random/grid "
             "search, valley scan).")] = 1,
    force: Annotated[bool, typer.Option(
        help="Start over even if OUT.evals.jsonl holds another run's evaluations.")] = False,
    search_loss: Annotated[str, typer.Option(
        help="Loss of the Sobol/BO stage: ncc, ssim, power, ncc+power, ncc+ssim.")] = "ncc",
    refine_loss: Annotated[str, typer.Option(
        help="Loss of the valley/gradient stage: ncc, ssim, ncc+ssim, ncc+power.")] = "ncc",
) -> None:
    """Recover defocus, Cs and thickness of an image (writes HDF5 and figures).

    Every evaluation is stored in OUT.evals.jsonl as it is made; a rerun with the same
    image and settings resumes from it (a killed run continues where it stopped)."""
    from matterflow.microscopy.hrtem.tasks import _match_figures, match_image

    img, px = read_image(image, pixel_size)
    params = MatchParams(**_match_params(structure, zone, budget, method, focal_spread,
                                         max_cells, seed), search_loss=search_loss,
                         refine_loss=refine_loss)
    with _scheduler(workers) as sched:
        res = match_image(img, px, params, log_path=out.with_suffix(".evals.jsonl"), force=force,
                          scheduler=sched)[0]
    write_result_file(out, res, inputs={"image": image}, parameters=params.model_dump(mode="json"))
    vals = {k: getattr(res, k) for k in res.__dataclass_fields__}
    figs = save_figures(_match_figures(vals, params), stem=out.with_suffix(""))
    d, c, t = res.best_params
    fsi = res.focal_spread_interval
    fs_txt = (f"focal spread {res.focal_spread:.1f} Å (95 % {fsi[0]:.1f}…{fsi[1]:.1f})"
              if params.focal_spread is None else f"focal spread {res.focal_spread:.1f} Å (known)")
    console.print(f"defocus {d:.1f} Å, Cs {c:.2f} µm, thickness {int(t)}, {fs_txt}, 1 − NCC "
                  f"{res.best_loss:.3g}; lattice rotation {res.registration[0]:.2f}°, scale "
                  f"{res.registration[1]:.4f}; {len(res.losses)} evaluations "
                  f"({res.replayed} from the evaluation log)")
    g, lap = res.gp_interval, res.laplace_interval
    console.print(f"GP interval: defocus {g[0, 0]:.1f}…{g[0, 1]:.1f} Å, Cs {g[1, 0]:.2f}…"
                  f"{g[1, 1]:.2f} µm; Laplace 95 % (noise σ {res.noise_level:.3g}, misfit "
                  f"χ²/dof {res.chi2_reduced:.2g}): defocus {lap[0, 0]:.1f}…{lap[0, 1]:.1f} Å, "
                  f"Cs {lap[1, 0]:.2f}…{lap[1, 1]:.2f} µm, thickness "
                  f"{int(lap[2, 0])}…{int(lap[2, 1])}")
    console.print(f"result: {out}\nfigures: {', '.join(str(f) for f in figs)}")


@app.command()
@handle_errors
def identify(
    image: Annotated[Path, typer.Argument(help=_IMAGE_HELP)],
    candidates: Annotated[str, typer.Option(
        help="Comma-separated structures (names or files).")] = "SrTiO3,BaTiO3,SrTiO3-strained",
    pixel_size: Annotated[float | None, typer.Option(
        "--pixel-size", help="Pixel size in Å (overrides the file's).")] = None,
    budget: Annotated[int, param_option(MatchParams, "budget")] = 700,
    focal_spread: Annotated[float | None, param_option(MatchParams, "focal_spread")] = None,
    max_cells: Annotated[int, param_option(MatchParams, "max_cells")] = 40,
    seed: Annotated[int, param_option(MatchParams, "seed")] = 0,
    workers: Annotated[int, typer.Option(
        help="Worker processes: the candidates are matched in parallel.")] = 1,
) -> None:
    """Match the image against each candidate structure and rank them."""
    from matterflow.microscopy.hrtem.tasks import IdentifyParams, identify_image

    img, px = read_image(image, pixel_size)
    names = tuple(s.strip() for s in candidates.split(",") if s.strip())
    params = IdentifyParams(candidates=names, budget=budget, focal_spread=focal_spread,
                            max_cells=max_cells, seed=seed)
    with _scheduler(workers) as sched:
        res = identify_image(img, px, params, scheduler=sched)
    for name, loss, p in zip(res.candidates, res.losses, res.best_params, strict=True):
        console.print(f"{name.decode():>18}: 1 − NCC {loss:.3g} (defocus {p[0]:.1f} Å, Cs {p[1]:.2f} µm, "
                      f"thickness {int(p[2])})")
    console.print(f"best: {res.candidates[0].decode()}, margin {res.margin:.2f}×")
