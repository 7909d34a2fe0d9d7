"""ptycho tasks: simulate 4D-STEM (tilt series), reconstruct (multislice ptychography), tomo."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

__all__ = ["TASKS", "simulate", "reconstruct", "tomo", "load_patterns"]

_E = {"units": "eV"}
_A = {"units": "Å"}
_MRAD = {"units": "mrad"}


def _sim_figures(out: dict, params) -> dict:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(11, 3.6))
    ax[0].imshow(np.log1p(out["patterns"][0, 0]), cmap="magma")
    ax[0].set_title("pattern 0 (log counts)")
    t = np.asarray(out["truth"])
    ax[1].imshow(t.sum(0), cmap="gray")
    ax[1].set_title("true projected phase (rad)")
    ax[2].imshow(out["probe_amplitude"], cmap="viridis")
    ax[2].set_title("probe amplitude")
    for a in ax:
        a.set_axis_off()
    fig.tight_layout()
    return {"Simulated data": fig}


def _rec_figures(out: dict, params) -> dict:
    import matplotlib.pyplot as plt

    ph = np.asarray(out["phase"])
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.6))
    im = ax[0].imshow(ph.sum(0), cmap="gray")
    fig.colorbar(im, ax=ax[0], label="rad")
    ax[0].set_title(f"phase (sum of {len(ph)} slices)")
    ax[1].imshow(out["probe_amplitude"], cmap="viridis")
    ax[1].set_title("probe amplitude")
    ax[2].imshow(out["probe_phase"], cmap="twilight")
    ax[2].set_title("probe phase")
    for a in ax:
        a.set_axis_off()
    fig.tight_layout()
    f2, a2 = plt.subplots(figsize=(5, 3.5))
    a2.semilogy(np.arange(1, len(out["loss"]) + 1), out["loss"])
    a2.set(xlabel="iteration", ylabel="amplitude loss per pattern")
    f2.tight_layout()
    figs = {"Phase and probe": fig, "Loss": f2}
    prof = np.asarray(out.get("layer_ncc", np.zeros((0, 0))))
    if prof.size:
        f3, a3 = plt.subplots(figsize=(5, 3.5))
        z = (np.arange(len(prof)) + 0.5) * params.slice_thickness_a
        for k in range(prof.shape[1]):
            a3.plot(z, prof[:, k], "o-", label=f"layer {k + 1} of the truth")
        a3.set(xlabel="slice depth (Å)", ylabel="slice phase NCC with the layer")
        a3.legend()
        f3.tight_layout()
        figs["Depth profile"] = f3
    return figs


def _tomo_figures(out: dict, params) -> dict:
    import matplotlib.pyplot as plt

    v = np.asarray(out["volume"])
    c = [s // 2 for s in v.shape]
    fig, ax = plt.subplots(1, 4, figsize=(13, 3.4))
    for a, img, title in zip(ax, (v[c[0]], v[:, c[1]], v[:, :, c[2]], v.max(0)),
                             ("z slice", "x slice (z down)", "y slice (z down)", "max along z"),
                             strict=True):
        a.imshow(img, cmap="magma")
        a.set_title(title)
        a.set_axis_off()
    fig.suptitle(f"joint volume, NCC {out['ncc']:.3f}")
    fig.tight_layout()
    f2, a2 = plt.subplots(figsize=(5.5, 3.5))
    z = np.arange(v.shape[0]) * float(out["voxel_size_a"])
    for row, lab in zip(out["depth_profiles"], ("truth", "joint", "sequential", "multislice only"),
                        strict=True):
        if np.isfinite(row).any():
            a2.plot(z, row, label=lab)
    a2.set(xlabel="depth z (Å)", ylabel="phase per voxel (rad)", title="isolated atom column")
    a2.legend()
    f2.tight_layout()
    f3, a3 = plt.subplots(figsize=(5, 3.5))
    a3.plot(np.arange(1, len(out["ncc_history"]) + 1), out["ncc_history"])
    a3.set(xlabel="iteration", ylabel="volume NCC vs truth")
    f3.tight_layout()
    return {"Volume slices": fig, "Depth profile": f2, "NCC": f3}


class SimulateParams(Params):
    sample: Literal["srtio3", "nanocube", "bilayer"] = Field(
        "srtio3", description="srtio3: SrTiO3 [001] slab (Lobato potentials), one tilt; "
        "nanocube: cube of point-like atoms, tilt series; bilayer: two Pt sheets (4×4 and "
        "5×5 lattices per 15.36 Å cell, 96² px) layer_gap_a apart in depth, one tilt")
    energy_ev: float = Field(200e3, gt=1e3, le=1.5e6, description="beam energy", json_schema_extra=_E)
    semiangle_mrad: float = Field(25.0, gt=0, le=100, description="probe aperture semi-angle",
                                  json_schema_extra=_MRAD)
    defocus: float = Field(100.0, ge=-5000, le=5000, description="probe defocus (= -C10)",
                           json_schema_extra=_A)
    cs: float = Field(0.0, ge=-1e8, le=1e8, description="spherical aberration C30",
                      json_schema_extra=_A)
    astigmatism: float = Field(0.0, ge=0, le=1000, description="two-fold astigmatism C12",
                               json_schema_extra=_A)
    scan: int = Field(20, ge=2, le=256, description="scan positions per side")
    jitter_a: float = Field(0.0, ge=0, le=5, description="scan position error (std)",
                            json_schema_extra=_A)
    dose: float = Field(1e5, gt=0, description="areal dose", json_schema_extra={"units": "e/Å²"})
    cells: int = Field(4, ge=1, le=16, description="srtio3: unit cells per side (periodic)")
    thickness_cells: int = Field(1, ge=1, le=50, description="srtio3: thickness in unit cells")
    px_per_cell: int = Field(16, ge=8, le=64, description="srtio3: pixels per unit cell")
    window: int = Field(48, ge=8, le=512, description="probe window = detector pixels per side")
    voxels: int = Field(32, ge=8, le=128, description="nanocube: volume side in voxels")
    voxel_a: float = Field(0.3, gt=0, le=2, description="nanocube: voxel size",
                           json_schema_extra=_A)
    n_tilts: int = Field(11, ge=1, le=181, description="nanocube: number of tilts")
    tilt_max_deg: float = Field(60.0, ge=0, le=90, description="nanocube: tilts over ±this",
                                json_schema_extra={"units": "deg"})
    n_slices: int = Field(8, ge=1, le=512, description="nanocube: multislice slices of the volume")
    atoms_per_edge: int = Field(0, ge=0, le=16, description="nanocube: atoms per cube edge "
                                "(0: 3, or 2 below 24 voxels)")
    atom_jitter_vox: float = Field(0.0, ge=0, le=4, description="nanocube: std of seeded random "
                                   "atom displacements (a second sample)",
                                   json_schema_extra={"units": "voxel"})
    oversample: int = Field(1, ge=1, le=4, description="nanocube: simulate on a grid this many "
                            "times finer with as many times more slices, patterns cropped to "
                            "the window (not the reconstruction's forward model)")
    tilt_shift_a: float = Field(0.0, ge=0, le=10, description="nanocube: std of a seeded "
                                "in-plane shift per tilt (less what a volume translation explains: "
                                "tomo.shift_gauge)",
                                json_schema_extra=_A)
    layer_gap_a: float = Field(12.0, ge=2, le=200, description="bilayer: depth between the "
                               "two layers (simulated in 2 Å slices)", json_schema_extra=_A)
    seed: int = Field(0, ge=0, description="seed of the noise and the jitter")


@dataclass(frozen=True)
class SimulatedData:
    patterns: np.ndarray = quantity("counts", "(tilts, positions, W, W) centred diffraction patterns")
    positions_a: np.ndarray = quantity("Å", "(positions, 2) probe positions (true, with jitter)")
    nominal_positions_a: np.ndarray = quantity("Å", "(positions, 2) raster without jitter")
    angles_deg: np.ndarray = quantity("deg", "(tilts,) tilt angles about y")
    sampling_a: float = quantity("Å", "object pixel = voxel size")
    truth: np.ndarray = quantity("rad", "(nz, nx, ny) phase per voxel (srtio3: (1, nx, ny) "
                                 "projected phase σV, band-limited; bilayer: (2, nx, ny), "
                                 "each layer's)")
    isolated_atom: np.ndarray = quantity("voxel", "(3,) z, x, y of the isolated atom (nan: none)")
    probe_amplitude: np.ndarray = quantity("sqrt(counts)", "(W, W) probe amplitude")
    probe_phase: np.ndarray = quantity("rad", "(W, W) probe phase")
    tilt_shifts_a: np.ndarray = quantity("Å", "(tilts, 2) in-plane shift of each tilt's "
                                         "positions in the data (0: none)")


@task("ptycho.simulate", params=SimulateParams, figures=_sim_figures)
def simulate(*, params: SimulateParams) -> SimulatedData:
    """Simulate a noisy 4D-STEM dataset (SrTiO3) or tilt series (nanocube) by multislice."""
    import torch

    from matterflow.microscopy.optics import interaction_constant
    from matterflow.microscopy.probe import probe_wave, raster_positions
    from matterflow.microscopy.ptycho import model, samples
    from matterflow.microscopy.ptycho.tomo import shift_gauge, simulate_tilts

    p = params
    w = p.window
    if p.sample == "srtio3":
        v, dx, dz = samples.srtio3_slices(p.cells, p.px_per_cell, p.thickness_cells)
        length = p.cells * samples.A_SRTIO3
        step = length / p.scan
        nominal = raster_positions(p.scan, p.scan, step)
        angles = np.zeros(1)
        truth = (interaction_constant(p.energy_ev) * samples.band_limit(v.sum(0), dx))[None]
        iso = np.full(3, np.nan)
    elif p.sample == "bilayer":
        v, dx, dz, _, layers = samples.bilayer_slices(gap_a=p.layer_gap_a)
        step = v.shape[-1] * dx / p.scan
        nominal = raster_positions(p.scan, p.scan, step)
        angles = np.zeros(1)
        truth = interaction_constant(p.energy_ev) * samples.band_limit(layers, dx)
        iso = np.full(3, np.nan)
    else:
        dx = p.voxel_a
        n = p.voxels
        if n % p.n_slices:
            raise InputError(f"ptycho.simulate params.n_slices {p.n_slices} must divide "
                             f"params.voxels {n}")
        if w > n:
            raise InputError(f"ptycho.simulate params.window {w} must be <= params.voxels {n} "
                             "for the nanocube")
        o = p.oversample
        # phase per fine voxel: the same atoms (0.6 rad each over a coarse pixel's area),
        # so the fine projected phase equals the coarse one pointwise
        vol, centres = samples.nanocube_volume(
            n * o, sigma_vox=1.2 * o, spacing_vox=4.0 * o, jitter_vox=p.atom_jitter_vox * o,
            phase_per_atom=0.6 * o ** 2,
            atoms_per_edge=p.atoms_per_edge or (3 if n >= 24 else 2), seed=p.seed)
        centres = (centres + 0.5) / o - 0.5
        margin = max(n // 8, 1)
        step = (n - 2 * margin) * dx / (p.scan - 1)
        nominal = raster_positions(p.scan, p.scan, step, origin_a=(margin * dx, margin * dx))
        angles = (np.linspace(-p.tilt_max_deg, p.tilt_max_deg, p.n_tilts) if p.n_tilts > 1
                  else np.zeros(1))
        truth = samples.block_sum(vol, o) / o ** 2  # summed along z, averaged across
        iso = centres[-1]
    pos = nominal + (np.random.default_rng(p.seed + 1).normal(0, p.jitter_a, nominal.shape)
                     if p.jitter_a else 0.0)
    shifts = np.zeros((len(angles), 2))
    if p.tilt_shift_a and p.sample == "nanocube":
        # without the part a translation of the volume explains (the truth stays put)
        shifts = shift_gauge(np.random.default_rng(p.seed + 2).normal(0, p.tilt_shift_a,
                                                                      shifts.shape), angles)
    probe = probe_wave((w, w), (dx, dx), p.energy_ev, semiangle_mrad=p.semiangle_mrad,
                       defocus=p.defocus, cs=p.cs, astigmatism=p.astigmatism)
    if p.sample in ("srtio3", "bilayer"):
        inten = model.patterns(probe, model.transmission(v, p.energy_ev, dx),
                               torch.tensor(pos, dtype=torch.float32), dx,
                               model.propagator(w, dx, dz, p.energy_ev))[None]
    elif p.oversample == 1:
        inten = simulate_tilts(truth, angles, probe, pos, sampling_a=dx, energy_ev=p.energy_ev,
                               n_slices=p.n_slices, shifts_a=shifts)
    else:
        o = p.oversample
        fine = probe_wave((w * o, w * o), (dx / o, dx / o), p.energy_ev,
                          semiangle_mrad=p.semiangle_mrad, defocus=p.defocus, cs=p.cs,
                          astigmatism=p.astigmatism)
        inten = simulate_tilts(vol, angles, fine, pos, sampling_a=dx / o, energy_ev=p.energy_ev,
                               n_slices=p.n_slices * o, shifts_a=shifts)
        # the same angular pixel; the detector keeps the central W × W pixels
        c0 = (w * o) // 2 - w // 2
        inten = inten[..., c0:c0 + w, c0:c0 + w]
    epp = model.dose_to_electrons(p.dose, step)
    counts = np.stack([model.poisson_counts(inten[k], epp, seed=p.seed + 10 * k)
                       for k in range(len(angles))])
    pw = (probe * math.sqrt(epp)).numpy()
    return SimulatedData(counts, pos, nominal, angles, float(dx), np.asarray(truth, np.float32),
                         np.asarray(iso, float), np.abs(pw), np.angle(pw), shifts)


def load_patterns(path: Path, dataset: str | None = None) -> tuple[np.ndarray, dict]:
    """4D-STEM patterns from ``.npy`` or HDF5/EMD (``dataset`` path); and the dataset's
    attributes (``energy_ev``, ``semiangle_mrad``, ``scan_step_a``, ``sampling_a``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: 4D-STEM file not found")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False), {}
        except ValueError as e:
            raise InputError(f"{path}: not a plain .npy array ({e})") from None
    if path.suffix in (".h5", ".hdf5", ".emd"):
        import h5py

        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            if dataset is None or dataset not in f:
                raise InputError(f"{path}: dataset path {dataset!r} not in the file; its datasets: "
                                 f"{', '.join(names[:20]) or 'none'} (params.dataset)")
            ds = f[dataset]
            attrs = {k: float(v) for k, v in ds.attrs.items()
                     if k in ("energy_ev", "semiangle_mrad", "scan_step_a", "sampling_a")}
            return ds[()], attrs
    raise InputError(f"{path}: 4D-STEM data must be .npy, .h5, .hdf5 or .emd; got {path.suffix!r}")


class ReconstructParams(Params):
    energy_ev: float | None = Field(None, gt=1e3, le=1.5e6, description="beam energy (or the "
                                    "file's energy_ev attribute)", json_schema_extra=_E)
    semiangle_mrad: float | None = Field(None, gt=0, le=100, description="probe semi-angle (or "
                                         "the file's semiangle_mrad)", json_schema_extra=_MRAD)
    sampling_a: float | None = Field(None, gt=0, le=5, description="object pixel = λ/(W·detector "
                                     "angle per pixel) (or the file's sampling_a)",
                                     json_schema_extra=_A)
    scan_step_a: float | None = Field(None, gt=0, le=100, description="raster step, used when no "
                                      "positions are given (or the file's scan_step_a)",
                                      json_schema_extra=_A)
    scan_shape: tuple[int, int] | None = Field(None, description="rows, cols of the raster "
                                               "(default: the data's scan axes, or square)")
    defocus: float = Field(0.0, ge=-5000, le=5000, description="probe defocus start",
                           json_schema_extra=_A)
    cs: float = Field(0.0, ge=-1e8, le=1e8, description="probe Cs start", json_schema_extra=_A)
    dataset: str | None = Field(None, description="HDF5/EMD dataset path of the patterns")
    tilt: int = Field(0, ge=0, description="which tilt of a (tilts, positions, W, W) series")
    n_slices: int = Field(1, ge=1, le=256, description="object slices (1: single-slice)")
    slice_thickness_a: float = Field(2.0, gt=0, le=1000, description="slice thickness",
                                     json_schema_extra=_A)
    object_px: int | None = Field(None, ge=8, le=8192, description="object side in pixels "
                                  "(periodic); default: the scan plus one window")
    iterations: int = Field(15, ge=1, le=10000, description="passes over all positions")
    batch_size: int = Field(64, ge=1, le=65536, description="positions per Adam step (memory)")
    lr_object: float = Field(0.01, gt=0, le=1, description="Adam step of the projected phase",
                             json_schema_extra={"units": "rad"})
    lr_probe: float = Field(0.02, gt=0, le=1, description="Adam step of the probe (× its peak)")
    retrieve_probe: bool = Field(True, description="refine the probe after 2 iterations")
    checkpoint: str | None = Field(None, description="checkpoint file (.pt), resumed if it exists")
    seed: int = Field(0, ge=0, description="seed of the batch order")


@dataclass(frozen=True)
class PtychoResult:
    phase: np.ndarray = quantity("rad", "(n_slices, nx, ny) object phase")
    absorption: np.ndarray = quantity("dimensionless", "(n_slices, nx, ny) -ln|t|")
    probe_amplitude: np.ndarray = quantity("sqrt(counts)", "(W, W)")
    probe_phase: np.ndarray = quantity("rad", "(W, W)")
    loss: np.ndarray = quantity("counts", "(iterations,) amplitude loss per pattern")
    retries: np.ndarray = quantity("iteration, factor", "(k, 2) retried iterations, new step scale")
    seconds_per_iteration: float = quantity("s", "wall time per iteration")
    sampling_a: float = quantity("Å", "object pixel")
    ncc: float = quantity("dimensionless", "phase NCC against the truth (nan: none given)")
    layer_ncc: np.ndarray = quantity("dimensionless", "(n_slices, layers) NCC of each slice's "
                                     "phase with each layer of a layered truth (depth profile; "
                                     "(0, 0): none)")


def _resolve(params: ReconstructParams, attrs: dict, name: str, src: str):
    v = getattr(params, name)
    if v is None:
        v = attrs.get(name)
    if v is None:
        raise InputError(f"{src}: missing {name}: give params.{name} or the dataset "
                         f"attribute {name}")
    return float(v)


@task("ptycho.reconstruct", params=ReconstructParams, figures=_rec_figures)
def reconstruct(patterns: np.ndarray | Path, positions_a: np.ndarray | None = None,
                truth: np.ndarray | None = None, *, params: ReconstructParams) -> PtychoResult:
    """Single- or multislice ptychography (amplitude loss, Adam, mini-batches, probe retrieval)."""
    from matterflow.microscopy.probe import raster_positions
    from matterflow.microscopy.ptycho import reconstruct as rec

    p = params
    attrs: dict = {}
    src = "patterns"
    if isinstance(patterns, (str, Path)):
        src = str(patterns)
        patterns, attrs = load_patterns(Path(patterns), p.dataset)
    d = np.asarray(patterns)
    if d.ndim == 4 and positions_a is not None and len(positions_a) == d.shape[1]:
        if p.tilt >= d.shape[0]:
            raise InputError(f"{src}: params.tilt {p.tilt} but the series has {d.shape[0]} tilts")
        d = d[p.tilt]
    energy = _resolve(p, attrs, "energy_ev", src)
    alpha = _resolve(p, attrs, "semiangle_mrad", src)
    sampling = _resolve(p, attrs, "sampling_a", src)
    if positions_a is None:
        step = _resolve(p, attrs, "scan_step_a", src)
        shape = p.scan_shape or (d.shape[:2] if d.ndim == 4 else
                                 (int(round(math.sqrt(len(d)))),) * 2)
        if d.ndim == 4 and tuple(d.shape[:2]) != tuple(shape):
            raise InputError(f"{src}: scan axes {d.shape[:2]} do not match params.scan_shape "
                             f"{tuple(shape)} (axes 0, 1)")
        n_data = d.shape[0] * d.shape[1] if d.ndim == 4 else d.shape[0]
        if shape[0] * shape[1] != n_data:
            raise InputError(f"{src}: {n_data} patterns do not fill a {shape[0]}×{shape[1]} scan "
                             "(axis 0); give params.scan_shape")
        positions_a = raster_positions(shape[0], shape[1], step)
        origin = np.full(2, (d.shape[-1] // 2) * sampling)
        positions_a = positions_a + origin
    data = rec.check_dataset(d, positions_a, source=src)
    shape2 = (p.object_px, p.object_px) if p.object_px else None
    r = rec.reconstruct(data, positions_a, sampling_a=sampling, energy_ev=energy,
                        semiangle_mrad=alpha, defocus=p.defocus, cs=p.cs, n_slices=p.n_slices,
                        slice_thickness_a=p.slice_thickness_a, iterations=p.iterations,
                        batch_size=p.batch_size, lr_object=p.lr_object, lr_probe=p.lr_probe,
                        retrieve_probe=p.retrieve_probe, object_shape=shape2, seed=p.seed,
                        checkpoint=Path(p.checkpoint) if p.checkpoint else None)
    score = math.nan
    if truth is not None:
        t = np.asarray(truth, float)
        t = t.sum(0) if t.ndim == 3 else t
        ph = r.phase.sum(0)
        if t.shape != ph.shape:
            raise InputError(f"truth shape {t.shape} differs from the object {ph.shape}")
        score = rec.ncc(ph, t)
    layer_ncc = np.zeros((0, 0))
    if truth is not None and np.ndim(truth) == 3 and len(truth) > 1 and p.n_slices > 1:
        from matterflow.microscopy.ptycho.samples import layer_ncc_profile

        layer_ncc = layer_ncc_profile(r.phase, np.asarray(truth, float))
    return PtychoResult(r.phase, r.absorption, np.abs(r.probe), np.angle(r.probe), r.losses,
                        np.array(r.retries, float).reshape(-1, 2), r.seconds_per_iteration,
                        sampling, score, layer_ncc)


class TomoParams(Params):
    energy_ev: float = Field(200e3, gt=1e3, le=1.5e6, description="beam energy", json_schema_extra=_E)
    semiangle_mrad: float = Field(25.0, gt=0, le=100, description="probe semi-angle",
                                  json_schema_extra=_MRAD)
    defocus: float = Field(100.0, ge=-5000, le=5000, description="probe defocus",
                           json_schema_extra=_A)
    sampling_a: float = Field(0.3, gt=0, le=5, description="voxel size", json_schema_extra=_A)
    voxels: int = Field(32, ge=8, le=256, description="volume side in voxels")
    n_slices: int = Field(8, ge=1, le=256, description="multislice slices of the rotated volume")
    iterations: int = Field(20, ge=1, le=10000, description="joint passes over all tilts")
    batch_size: int = Field(64, ge=1, le=65536, description="positions per Adam step")
    lr: float = Field(5e-4, gt=0, le=1, description="Adam step (one per tilt)",
                      json_schema_extra={"units": "rad"})
    tv_weight: float = Field(2.5e-4, ge=0, le=1e4, description="total-variation weight against "
                             "the amplitude loss over the areal dose",
                             json_schema_extra={"units": "Å²/rad"})
    baseline: bool = Field(True, description="also run the sequential baseline and multislice "
                           "ptychography alone (middle tilt)")
    baseline_iterations: int = Field(300, ge=1, le=100000, description="tomographic "
                                     "iterations of the sequential baseline")
    align: bool = Field(False, description="estimate each tilt's in-plane shift (sample drift) "
                        "with the volume (gradient through the probe shift)")
    shift_lr: float = Field(0.3, gt=0, le=10, description="Adam step of the per-tilt shifts",
                            json_schema_extra=_A)
    seed: int = Field(0, ge=0, description="seed of the batch order")


@dataclass(frozen=True)
class TomoResult:
    volume: np.ndarray = quantity("rad", "(nz, nx, ny) phase per voxel, joint")
    potential: np.ndarray = quantity("V·Å", "(nz, nx, ny) projected potential per voxel, joint")
    voxel_size_a: float = quantity("Å", "voxel size")
    loss: np.ndarray = quantity("counts", "(iterations,) amplitude loss per pattern")
    ncc_history: np.ndarray = quantity("dimensionless", "(iterations,) volume NCC (nan: no truth)")
    ncc: float = quantity("dimensionless", "final volume NCC, joint")
    seconds: float = quantity("s", "wall time, joint")
    baseline_volume: np.ndarray = quantity("rad", "(nz, nx, ny) sequential baseline (empty: off)")
    baseline_ncc: float = quantity("dimensionless", "volume NCC, sequential baseline")
    baseline_seconds: float = quantity("s", "wall time, sequential baseline")
    depth_fwhm_a: float = quantity("Å", "depth FWHM of the isolated atom, joint")
    baseline_depth_fwhm_a: float = quantity("Å", "the same, sequential baseline")
    ms_depth_fwhm_a: float = quantity("Å", "the same, multislice ptychography alone")
    depth_profiles: np.ndarray = quantity("rad", "(4, nz) truth, joint, sequential, multislice")
    shifts_a: np.ndarray = quantity("Å", "(tilts, 2) estimated per-tilt shift (0: align off)")


@task("ptycho.tomo", params=TomoParams, figures=_tomo_figures)
def tomo(patterns: np.ndarray, positions_a: np.ndarray, angles_deg: np.ndarray,
         truth: np.ndarray | None = None, isolated_atom: np.ndarray | None = None,
         probe_amplitude: np.ndarray | None = None, probe_phase: np.ndarray | None = None, *,
         params: TomoParams) -> TomoResult:
    """Joint ptychographic tomography (rotate, multislice, ≥ 0, TV) vs the sequential baseline."""
    import torch

    from matterflow.microscopy.optics import interaction_constant
    from matterflow.microscopy.probe import probe_wave
    from matterflow.microscopy.ptycho import reconstruct as rec
    from matterflow.microscopy.ptycho import tomo as tm

    p = params
    c = np.asarray(patterns)
    if c.ndim != 4:
        raise InputError(f"ptycho.tomo patterns must be (tilts, positions, W, W); got {c.shape}")
    if len(np.atleast_1d(angles_deg)) != c.shape[0]:
        raise InputError(f"ptycho.tomo: {len(np.atleast_1d(angles_deg))} angles_deg for "
                         f"{c.shape[0]} tilts (axis 0 of patterns)")
    if p.voxels % p.n_slices:
        raise InputError(f"ptycho.tomo params.n_slices {p.n_slices} must divide params.voxels "
                         f"{p.voxels}")
    w = c.shape[-1]
    if probe_amplitude is not None and probe_phase is not None:
        probe = torch.polar(torch.tensor(probe_amplitude, dtype=torch.float32),
                            torch.tensor(probe_phase, dtype=torch.float32))
    else:
        probe = probe_wave((w, w), (p.sampling_a,) * 2, p.energy_ev,
                           semiangle_mrad=p.semiangle_mrad, defocus=p.defocus)
        probe = probe * math.sqrt(float(c.sum((2, 3)).mean()))
    shape = (p.voxels,) * 3
    t = torch.tensor(np.asarray(truth), dtype=torch.float32) if truth is not None else None
    if t is not None and tuple(t.shape) != shape:
        raise InputError(f"ptycho.tomo truth shape {tuple(t.shape)} != params.voxels³ {shape}")
    angles = [float(a) for a in np.atleast_1d(angles_deg)]
    j = tm.joint_tomography(c, angles, probe, positions_a, shape=shape, sampling_a=p.sampling_a,
                            energy_ev=p.energy_ev, n_slices=p.n_slices, iterations=p.iterations,
                            batch_size=p.batch_size, lr=p.lr, tv_weight=p.tv_weight, seed=p.seed,
                            truth=t, align=p.align, shift_lr=p.shift_lr)
    nan = math.nan
    iso = np.asarray(isolated_atom, float) if isolated_atom is not None else np.full(3, nan)
    has_iso = bool(np.isfinite(iso).all())

    def fwhm(v):
        return tm.depth_fwhm(v, iso, p.sampling_a) if has_iso else nan

    def prof(v):
        return (np.asarray(v)[:, int(round(iso[1])), int(round(iso[2]))] if has_iso
                else np.full(p.voxels, nan))

    b_vol, b_ncc, b_sec, b_fw, ms_fw = np.zeros((0, 0, 0)), nan, nan, nan, nan
    ms_prof = np.full(p.voxels, nan)
    if p.baseline:
        b = tm.sequential_tomography(c, angles, probe, positions_a, shape=shape,
                                     sampling_a=p.sampling_a, energy_ev=p.energy_ev,
                                     semiangle_mrad=p.semiangle_mrad, defocus=p.defocus, truth=t,
                                     tomo_iterations=p.baseline_iterations)
        b_vol, b_ncc, b_sec, b_fw = b.volume, float(b.ncc_history[-1]), b.seconds, fwhm(b.volume)
        k = int(np.argmin(np.abs(angles)))
        m = rec.reconstruct(c[k], positions_a, sampling_a=p.sampling_a, energy_ev=p.energy_ev,
                            semiangle_mrad=p.semiangle_mrad, defocus=p.defocus,
                            n_slices=p.voxels, slice_thickness_a=p.sampling_a,
                            iterations=max(20, p.iterations), retrieve_probe=False,
                            object_shape=shape[1:], lr_object=0.05)
        ms_fw, ms_prof = fwhm(m.phase), prof(m.phase)
    profiles = np.stack([prof(truth) if truth is not None else np.full(p.voxels, nan),
                         prof(j.volume), prof(b_vol) if b_vol.size else np.full(p.voxels, nan),
                         ms_prof])
    return TomoResult(j.volume, j.volume / interaction_constant(p.energy_ev), p.sampling_a,
                      j.losses, j.ncc_history, float(j.ncc_history[-1]), j.seconds, b_vol, b_ncc,
                      b_sec, fwhm(j.volume), b_fw, ms_fw, profiles, j.shifts_a)


TASKS = [simulate, reconstruct, tomo]
