"""HRTEM tasks: simulate a noisy image, match it (BO, or a random/grid baseline), identify
the structure among candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    import torch

    from matterflow.microscopy.hrtem.matching import Trace

__all__ = ["TASKS", "simulate", "match", "identify", "match_image"]

_STAGES = ("sobol", "bo", "hessian", "valley", "refine", "random", "grid", "scan")


class SimulateParams(Params):
    structure: str = Field("SrTiO3", description="built-in structure name or structure file (ASE)")
    zone: Literal["a", "b", "c"] = Field("c", description="cell vector along the beam")
    energy_ev: float = Field(300e3, ge=20e3, le=1.5e6, description="beam energy",
                             json_schema_extra={"units": "eV"})
    defocus: float = Field(80.0, ge=-2000, le=2000, description="defocus = -C10 (underfocus > 0)",
                           json_schema_extra={"units": "Å"})
    cs_um: float = Field(-15.0, ge=-2000, le=2000, description="spherical aberration Cs = C30",
                         json_schema_extra={"units": "µm"})
    thickness_cells: int = Field(12, ge=1, le=200, description="thickness in repeats along the beam")
    focal_spread: float = Field(30.0, ge=0, le=300, description="focal spread (standard deviation)",
                                json_schema_extra={"units": "Å"})
    pixel_size: float = Field(0.1, gt=0.01, le=1.0, description="image pixel size",
                              json_schema_extra={"units": "Å"})
    size: int = Field(384, ge=32, le=4096, description="image side in pixels")
    rotation_deg: float | None = Field(None, ge=-180, le=180, json_schema_extra={"units": "°"},
                                       description="in-plane lattice rotation (None: random ±3°)")
    dose: float = Field(2e4, gt=0, description="electron dose (Poisson noise)",
                        json_schema_extra={"units": "e/Å²"})
    sampling: float = Field(0.08, ge=0.01, le=0.2, description="multislice grid pixel (at most)",
                            json_schema_extra={"units": "Å"})
    seed: int = Field(0, ge=0, description="seed of the shift, rotation and noise")


@dataclass(frozen=True)
class SimulatedImage:
    image: np.ndarray = quantity("counts", "(size, size) noisy image, row = x, column = y")
    pixel_size: float = quantity("Å", "pixel size")
    true_params: np.ndarray = quantity("Å, µm, repeats, °", "(4,) defocus, Cs, thickness, rotation")


@task("hrtem.simulate", params=SimulateParams)
def simulate(*, params: SimulateParams) -> SimulatedImage:
    """Noisy HRTEM image of a perfect crystal (random shift, small rotation, Poisson noise)."""
    from matterflow.microscopy.hrtem.model import exit_waves, images, render
    from matterflow.microscopy.structures import load_structure, slices

    cell = slices(load_structure(params.structure, params.zone))
    w, px = exit_waves(cell, params.thickness_cells, energy_ev=params.energy_ev,
                       sampling=params.sampling)
    ci = images(w[-1], px, energy_ev=params.energy_ev, defocus=params.defocus,
                cs=params.cs_um * 1e4, focal_spread=params.focal_spread).numpy()
    rng = np.random.default_rng(params.seed)
    rot = float(rng.uniform(-3, 3)) if params.rotation_deg is None else params.rotation_deg
    shift = rng.uniform(0, 1, 2) * np.asarray(cell.cell_xy)
    img = render(ci, cell.cell_xy, (params.size, params.size), params.pixel_size,
                 rotation_deg=rot, shift=shift)
    lam = np.clip(img, 0, None) * params.dose * params.pixel_size ** 2
    counts = rng.poisson(lam).astype(np.float32)
    return SimulatedImage(counts, params.pixel_size,
                          np.array([params.defocus, params.cs_um, params.thickness_cells, rot]))


class MatchParams(Params):
    structure: str = Field("SrTiO3", description="built-in structure name or structure file (ASE)")
    zone: Literal["a", "b", "c"] = Field("c", description="cell vector along the beam")
    energy_ev: float = Field(300e3, ge=20e3, le=1.5e6, description="beam energy",
                             json_schema_extra={"units": "eV"})
    defocus_bounds: tuple[float, float] = Field((-200.0, 200.0), description="defocus range",
                                                json_schema_extra={"units": "Å"})
    cs_bounds_um: tuple[float, float] = Field((-30.0, 30.0), description="Cs range",
                                              json_schema_extra={"units": "µm"})
    max_cells: int = Field(40, ge=1, le=200, description="largest thickness in repeats")
    focal_spread: float | None = Field(None, ge=0, le=300, description="focal spread if known "
                                       "(None: fitted within focal_spread_bounds)",
                                       json_schema_extra={"units": "Å"})
    focal_spread_bounds: tuple[float, float] = Field((10.0, 80.0), description="focal spread "
                                                     "range searched when it is fitted",
                                                     json_schema_extra={"units": "Å"})
    rotation_bounds_deg: tuple[float, float] = Field((-5.0, 5.0), json_schema_extra={"units": "°"},
                                                     description="in-plane rotation searched")
    scale_bounds: tuple[float, float] = Field((0.97, 1.03), description="lattice scale searched "
                                              "(pixel-size calibration error)")
    sampling: float = Field(0.08, ge=0.01, le=0.2, description="multislice grid pixel (at most)",
                            json_schema_extra={"units": "Å"})
    method: Literal["scan", "bo", "random", "grid"] = Field(
        "scan", description="search: scan (fine defocus scans, multi-start gradient refinement "
        "from their valleys), bo (physics-informed BO, valley scan and gradient refinement), "
        "or a baseline with the same loss")
    budget: int = Field(700, ge=8, le=20000, description="forward evaluations: CTF passes over "
                        "the thickness series (the series is one multislice pass, made once)")
    n_init: int = Field(16, ge=2, le=1000, description="Sobol start points (bo)")
    q: int = Field(1, ge=1, le=16, description="points per BO acquisition (qLogEI if > 1)")
    seed: int = Field(0, ge=0, description="seed of the search")
    search_loss: Literal["ncc", "ssim", "power", "ncc+power", "ncc+ssim"] = Field(
        "ncc", description="loss of the Sobol start and BO stage (power: radially averaged "
        "power spectrum, global; ssim, ncc: local; a+b: the sum); random/grid use it too")
    refine_loss: Literal["ncc", "ssim", "ncc+ssim", "ncc+power"] = Field(
        "ncc", description="loss of the valley scan and gradient stage; the optimum is the "
        "best point of this loss")


@dataclass(frozen=True)
class MatchResult:
    best_params: np.ndarray = quantity("Å, µm, repeats", "(3,) defocus, Cs, thickness")
    best_loss: float = quantity("dimensionless", "refine_loss at the optimum (1 - NCC by "
                                "default)")
    losses: np.ndarray = quantity("dimensionless", "(n_evals,) loss of every evaluation")
    evaluated: np.ndarray = quantity("Å, µm, repeats", "(n_evals, 3) every evaluated point")
    stage: np.ndarray = quantity("dimensionless", "(n_evals,) stage index: sobol, bo, hessian, "
                                 "valley, refine, random, grid, scan")
    registration: np.ndarray = quantity("°, dimensionless", "(2,) lattice rotation and scale")
    target: np.ndarray = quantity("a.u.", "(nx, ny) lattice-averaged image on the cell grid")
    best_image: np.ndarray = quantity("a.u.", "(nx, ny) best simulation on the cell grid")
    gp_interval: np.ndarray = quantity("Å, µm", "(2, 2) [lo, hi] of defocus and Cs where the GP "
                                       "posterior's mean − 2 std reaches the minimum mean")
    laplace_interval: np.ndarray = quantity("Å, µm, repeats", "(3, 2) 95 % [lo, hi] of defocus, "
                                            "Cs, thickness from the Laplace estimate (widened "
                                            "by the misfit, see chi2_reduced)")
    laplace_std: np.ndarray = quantity("Å, µm", "(2,) Laplace std of defocus and Cs from the "
                                       "noise alone")
    noise_level: float = quantity("dimensionless", "noise std of the standardised target, "
                                  "estimated from the image")
    replayed: int = quantity("", "evaluations taken from the evaluation log (resume)")
    gp_mean: np.ndarray = quantity("dimensionless", "(121, 121) GP posterior mean of "
                                   "log(1 - NCC) on the (defocus, Cs) grid spanning the bounds")
    gp_std: np.ndarray = quantity("dimensionless", "(121, 121) GP posterior std of log(1 - NCC)")
    chi2_reduced: float = quantity("dimensionless", "misfit over noise at the optimum, "
                                   "2 (1 - NCC) / noise_level²; laplace_interval is widened by "
                                   "its square root where > 1")
    focal_spread: float = quantity("Å", "focal spread at the optimum (fitted, or the known one)")
    focal_spread_interval: np.ndarray = quantity("Å", "(2,) 95 % Laplace [lo, hi] of the fitted "
                                                 "focal spread (widened as laplace_interval; "
                                                 "[σ, σ] when it is known)")
    evaluated_focal_spread: np.ndarray = quantity("Å", "(n_evals,) focal spread of every "
                                                  "evaluated point")


def _check_bounds(params: MatchParams) -> None:
    for name in ("defocus_bounds", "cs_bounds_um", "rotation_bounds_deg", "scale_bounds",
                 "focal_spread_bounds"):
        lo, hi = getattr(params, name)
        if not lo < hi:
            raise InputError(f"hrtem.match params.{name}: lower < upper needed; got {(lo, hi)}")
    if params.scale_bounds[0] <= 0:
        raise InputError(f"hrtem.match params.scale_bounds: > 0 needed; got {params.scale_bounds}")
    if params.focal_spread_bounds[0] < 0:
        raise InputError("hrtem.match params.focal_spread_bounds: >= 0 needed; got "
                         f"{params.focal_spread_bounds}")


def _check_image(img: np.ndarray, pixel_size: float | None,
                 cell_xy: tuple[float, float]) -> float:
    if img.ndim != 2:
        raise InputError(f"image: a 2D array is needed; got shape {img.shape}")
    if not np.isfinite(img).all():
        raise InputError(f"image: {int((~np.isfinite(img)).sum())} NaN or infinite pixels; "
                         "mask or inpaint them first")
    if pixel_size is None or not float(pixel_size) > 0:
        raise InputError("pixel size unknown: give it (--pixel-size Å, or a TIFF written by "
                         "`matterflow hrtem simulate`)")
    px = float(pixel_size)
    cells = [img.shape[i] * px / cell_xy[i] for i in range(2)]
    if min(cells) < 4:
        raise InputError(f"image {img.shape} at {px} Å covers {cells[0]:.1f} × {cells[1]:.1f} "
                         "cells; at least 4 × 4 are needed for the lattice average")
    if px > min(cell_xy) / 4:
        raise InputError(f"pixel size {px} Å is too coarse for a cell of {cell_xy} Å "
                         f"(at most {min(cell_xy) / 4:.3f} Å)")
    return px


def match_image(image: np.ndarray, pixel_size: float | None, params: MatchParams, *,
                log_path: str | Path | None = None, force: bool = False,
                scheduler: Any = None) -> tuple[MatchResult, Trace, torch.Tensor]:
    """Registration, lattice average and the search; returns ``(MatchResult, trace, waves)``.

    ``log_path``: the evaluation log (:mod:`~matterflow.microscopy.hrtem.evallog`): every
    evaluation is stored there as it is made, and a rerun with the same image and settings
    resumes from it (other settings: :class:`InputError` unless ``force``, which starts
    over). ``scheduler``: where independent points run
    (:func:`matterflow.core.execute.map_calls`).
    """
    import torch

    from matterflow.microscopy.hrtem import matching as m
    from matterflow.microscopy.hrtem.model import (
        exit_waves,
        images,
        lattice_average,
        register_lattice,
    )
    from matterflow.microscopy.structures import load_structure, slices

    _check_bounds(params)
    cell = slices(load_structure(params.structure, params.zone))
    img = np.asarray(image, dtype=np.float64)
    px = _check_image(img, pixel_size, cell.cell_xy)
    log = None
    if log_path is not None:
        from matterflow.microscopy.hrtem.evallog import EvalLog, fingerprint

        log = EvalLog(log_path, fingerprint(img, px, params.model_dump(mode="json"),
                                            _MATCH_VERSION), force=force)
    rot, sc = register_lattice(img, px, cell.cell_xy, rotation_bounds=params.rotation_bounds_deg,
                               scale_bounds=params.scale_bounds)
    waves, wpx = exit_waves(cell, params.max_cells, energy_ev=params.energy_ev,
                            sampling=params.sampling)
    target = lattice_average(img, px, cell.cell_xy, tuple(waves.shape[-2:]), rotation_deg=rot,
                             scale=sc)
    fit_fs = params.focal_spread is None
    fs_lo, fs_hi = params.focal_spread_bounds
    obj = m.Objective(waves, wpx, target, energy_ev=params.energy_ev,
                      focal_spread=0.5 * (fs_lo + fs_hi) if fit_fs else float(params.focal_spread),
                      log=log, scheduler=scheduler, loss=params.search_loss)
    bounds = np.array([[params.defocus_bounds[0], params.cs_bounds_um[0]],
                       [params.defocus_bounds[1], params.cs_bounds_um[1]]], dtype=float)
    if fit_fs:  # the focal spread: a third coordinate of every stage
        bounds = np.column_stack([bounds, [fs_lo, fs_hi]])
    n = params.budget
    if params.method == "scan":
        m.defocus_scan_search(obj, bounds, n, refine_loss=params.refine_loss)
    elif params.method == "random":
        m.random_search(obj, bounds, n, seed=params.seed)
    elif params.method == "grid":
        m.grid_search(obj, bounds, n)
    else:
        # budget split (tuned on 6 cases of
        # benchmarks/hrtem_matching.py seeds 0-1; its held-out figure uses seeds 2-3): 40 % BO
        # with the Sobol start, 3 valley scans of 10 % each (+2 for the Hessian) from the
        # three best distinct BO points, the rest L-BFGS refinements from the 3 best points
        n_bo = max(params.n_init + 1, (2 * n) // 5)
        n_valley = max(3, n // 10)
        m.bo_search(obj, bounds, min(n_bo, n), n_init=params.n_init, seed=params.seed, q=params.q)
        obj.loss = params.refine_loss  # stage 2: the local loss from the stage-1 optima
        for x0, _ in m.distinct_starts(obj.trace, bounds, 3, 0.15):
            if len(obj.trace.loss) + n_valley + 2 <= n:
                m.valley_search(obj, bounds, x0, n_valley, dims=2)
        stage2 = obj.trace
        if params.search_loss != params.refine_loss:  # rank by the refinement's loss only
            stage2 = m.Trace()
            for xi, li, ti, si in zip(obj.trace.x, obj.trace.loss, obj.trace.thickness, obj.trace.stage, strict=True):
                if si in ("hessian", "valley"):
                    stage2.add(xi, li, ti, si)
        starts = m.distinct_starts(stage2, bounds, 3)
        for k, (x0, _) in enumerate(starts):
            left = n - len(obj.trace.loss)
            steps = left // (len(starts) - k)
            if steps > 0:
                m.refine(obj, bounds, x0, steps)
    tr = obj.trace
    if len(tr.loss) > n:  # a refinement's last line search may overrun by a step
        for lst in (tr.x, tr.loss, tr.thickness, tr.stage):
            del lst[n:]
    # the optimum and the GP are of the last stage's loss (all evaluations if one loss)
    final = [i for i, st in enumerate(tr.stage)
             if params.method in ("random", "grid") or params.search_loss == params.refine_loss
             or st in ("hessian", "valley", "refine")]
    if not final:  # scan: no refinement fitted in the budget
        final = list(range(len(tr.stage)))
    i_best = min(final, key=lambda i: tr.loss[i])
    x, loss, t = tr.x[i_best], tr.loss[i_best], tr.thickness[i_best]
    fs = float(x[2]) if fit_fs else obj.focal_spread
    with torch.no_grad():
        best_img = images(waves[t - 1], wpx, energy_ev=params.energy_ev, defocus=float(x[0]),
                          cs=float(x[1]) * 1e4, focal_spread=fs).numpy()
    xs = np.array(tr.x)
    evaluated = np.column_stack([xs[:, :2], np.array(tr.thickness, dtype=float)])
    ev_fs = xs[:, 2] if fit_fs else np.full(len(xs), fs)
    from matterflow.microscopy.hrtem import uncertainty as u

    gp_pts = sorted(final, key=lambda i: tr.loss[i])[:1000]  # the GP is O(n³): the best 1000
    gp_iv, gp_mu, gp_sd = u.gp_intervals(xs[gp_pts], np.array(tr.loss)[gp_pts], bounds,
                                         np.asarray(x), grid_dims=2)
    noise_t, dof = u.target_noise(img, px, cell.cell_xy, tuple(waves.shape[-2:]), rot, sc)
    lap_iv, lap_std, sigma_n, chi2 = u.laplace_intervals(
        waves, wpx, target, noise_t, np.asarray(x), t, energy_ev=params.energy_ev,
        focal_spread=fs, dof=dof, fit_focal_spread=fit_fs)
    fs_iv = lap_iv[3] if fit_fs else np.array([fs, fs])
    res = MatchResult(np.array([x[0], x[1], t], dtype=float), float(loss), np.array(tr.loss),
                      evaluated, np.array([_STAGES.index(s) for s in tr.stage]),
                      np.array([rot, sc]), target, best_img, gp_iv, lap_iv[:3], lap_std[:2],
                      sigma_n, min(obj.replayed, len(tr.loss)), gp_mu, gp_sd, chi2,
                      focal_spread=fs, focal_spread_interval=fs_iv, evaluated_focal_spread=ev_fs)
    return res, tr, waves


def _match_figures(outputs: dict, params) -> dict:
    import matplotlib.pyplot as plt

    figs = {}
    tgt, best = np.asarray(outputs["target"]), np.asarray(outputs["best_image"])
    b = (best - best.mean()) / best.std()
    # align the simulation to the target by the circular shift of the NCC maximum
    cc = np.fft.ifft2(np.fft.fft2(tgt) * np.conj(np.fft.fft2(b))).real
    b = np.roll(b, np.unravel_index(np.argmax(cc), cc.shape), (0, 1))
    t = (tgt - tgt.mean()) / tgt.std()
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.4))
    for a, im, title in zip(ax, (t, b, t - b), ("image (lattice average)", "best simulation",
                                                 "difference"), strict=True):
        a.imshow(np.tile(im, (2, 2)).T, cmap="gray", origin="lower", vmin=t.min(), vmax=t.max())
        a.set(title=title, xticks=[], yticks=[])
    d, c, th = outputs["best_params"]
    fs = float(outputs.get("focal_spread", float("nan")))
    fig.suptitle(f"defocus {d:.1f} Å, Cs {c:.2f} µm, thickness {int(th)}, σ {fs:.1f} Å, "
                 f"1 − NCC {float(outputs['best_loss']):.2e}")
    figs["Image, best simulation, difference"] = fig
    fig, ax = plt.subplots(figsize=(5, 3.4))
    losses = np.asarray(outputs["losses"])
    ax.semilogy(np.arange(1, len(losses) + 1), np.minimum.accumulate(losses), label="best so far")
    ax.semilogy(np.arange(1, len(losses) + 1), losses, ".", ms=3, alpha=0.5, label="evaluations")
    ax.set(xlabel="evaluation", ylabel="1 − NCC")
    ax.legend()
    figs["Loss trace"] = fig
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ev = np.asarray(outputs["evaluated"])
    sc = ax.scatter(ev[:, 0], ev[:, 1], c=np.log10(losses), s=10, cmap="viridis")
    ax.plot(d, c, "r*", ms=12)
    ax.set(xlabel="defocus (Å)", ylabel="Cs (µm)")
    fig.colorbar(sc, label="log10(1 − NCC)")
    figs["Evaluated optics"] = fig
    if "gp_mean" in outputs and outputs["gp_mean"] is not None:
        figs["GP posterior"] = _gp_figure(outputs, params)
    return figs


def _gp_figure(outputs: dict, params):
    import matplotlib.pyplot as plt

    p = params if isinstance(params, MatchParams) else MatchParams(**dict(params or {}))
    ext = [*p.defocus_bounds, *p.cs_bounds_um]
    d, c = np.asarray(outputs["best_params"])[:2]
    g = np.asarray(outputs["gp_interval"])
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for a, key, title in zip(ax, ("gp_mean", "gp_std"), ("GP mean of log(1 − NCC)",
                                                          "GP std of log(1 − NCC)"), strict=True):
        im = a.imshow(np.asarray(outputs[key]).T, origin="lower", extent=ext, aspect="auto",
                      cmap="viridis")
        fig.colorbar(im, ax=a)
        a.plot(*np.asarray(outputs["evaluated"])[:, :2].T, "w.", ms=2)
        a.add_patch(plt.Rectangle((g[0, 0], g[1, 0]), g[0, 1] - g[0, 0], g[1, 1] - g[1, 0],
                                  fill=False, ec="r", lw=1))
        a.plot(d, c, "r*", ms=10)
        a.set(xlabel="defocus (Å)", ylabel="Cs (µm)", title=title)
    fig.tight_layout()
    return fig


_MATCH_VERSION = "5"  # 4: the focal spread fitted by default; 5: method scan, budget 700


@task("hrtem.match", params=MatchParams, figures=_match_figures, version=_MATCH_VERSION)
def match(image: np.ndarray, pixel_size: float | None = None, *, params: MatchParams) -> MatchResult:
    """Recover defocus, Cs, thickness and the focal spread (unless known), and the lattice
    rotation/scale, from one image."""
    return match_image(image, pixel_size, params)[0]


class IdentifyParams(MatchParams):
    candidates: tuple[str, ...] = Field(("SrTiO3", "BaTiO3", "SrTiO3-strained"), min_length=2,
                                        description="candidate structures (names or files)")


@dataclass(frozen=True)
class Identification:
    candidates: np.ndarray = quantity("", "(n_candidates,) names (bytes), best first")
    losses: np.ndarray = quantity("dimensionless", "(n_candidates,) best 1 - NCC, ascending")
    best_params: np.ndarray = quantity("Å, µm, repeats", "(n_candidates, 3) each one's optimum")
    margin: float = quantity("dimensionless", "second-best loss / best loss")


def _identify_figures(outputs: dict, params) -> dict:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in outputs["candidates"]]
    ax.barh(names[::-1], np.asarray(outputs["losses"])[::-1])
    ax.set(xscale="log", xlabel="best 1 − NCC", title=f"margin {float(outputs['margin']):.2f}×")
    fig.tight_layout()
    return {"Candidate ranking": fig}


@task("hrtem.identify", params=IdentifyParams, figures=_identify_figures, version="2")
def identify(image: np.ndarray, pixel_size: float | None = None, *,
             params: IdentifyParams) -> Identification:
    """Match the image against every candidate structure; rank by the best loss."""
    return identify_image(image, pixel_size, params)


def _match_candidate(image: np.ndarray, pixel_size: float | None, params: dict) -> MatchResult:
    # one candidate per worker: its own points run here, not dispatched again
    return match_image(image, pixel_size, MatchParams(**params), scheduler="synchronous")[0]


def identify_image(image: np.ndarray, pixel_size: float | None, params: IdentifyParams, *,
                   scheduler: Any = None) -> Identification:
    """:func:`identify` with the candidates' matches run through
    :func:`matterflow.core.execute.map_calls` on ``scheduler``."""
    from matterflow.core.execute import map_calls

    base = params.model_dump(exclude={"candidates"})
    img = np.asarray(image)
    calls = [(img, pixel_size, {**base, "structure": name}) for name in params.candidates]
    for c in calls:  # bad input before any simulation
        p = MatchParams(**c[2])
        _check_bounds(p)
    results = map_calls(_match_candidate, calls, scheduler=scheduler)
    rows = [(r.best_loss, name, r.best_params)
            for r, name in zip(results, params.candidates, strict=True)]
    rows.sort(key=lambda r: r[0])
    losses = np.array([r[0] for r in rows])
    return Identification(np.array([r[1].encode() for r in rows], dtype="S"), losses, np.array([r[2] for r in rows]),
                          float(losses[1] / losses[0]))


TASKS = [simulate, match, identify]
