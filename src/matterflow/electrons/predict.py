"""Inference at scale: descriptors → LDOS → observables, grid chunk by grid chunk.

The LDOS of a large cell (n_points × n_energies numbers) is never held in
memory (unless ``return_ldos=True``). The grid is cut into chunks of
``chunk_points`` flat C-order indices and processed in two passes:

1. per chunk: descriptors → LDOS → the chunk's share of the DOS,
   ``sum_r LDOS(r, E) dV`` (the DOS is additive over chunks); the sum over
   chunks is the DOS, which fixes the Fermi level for the electron count;
2. per chunk again (descriptors and LDOS recomputed, cheaper than storing
   them): the density ``n(r) = ∫ LDOS(r, E) f(E; μ, T) dE``, or, for a model with
   ``density_head`` true, its own density output (``predict_ldos_and_density``).

Chunks run in parallel through :func:`matterflow.core.execute.map_calls`
(``scheduler``: ``"threads"``, ``"processes"``, ``"synchronous"``, a
``distributed.Client``, or None: the executor's cluster when called inside one
of its tasks, else in this thread); each returns only a DOS
vector or a density chunk, so peak memory is about
``workers × chunk_points × (n_features + n_energies) × 8 bytes`` plus the
density grid, whatever the cell size, and time is linear in the number of grid
points (itself linear in the number of atoms at fixed grid spacing).

Band energy, Fermi level and total energy come from the DOS and the density
through :mod:`matterflow.electrons.observables`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matterflow.core.errors import InputError, MatterflowWarning
from matterflow.electrons.energy_reference import reference_shift_ev
from matterflow.electrons.model import LdosModel

__all__ = ["Prediction", "predict_observables", "grid_shape_for", "descriptor_params_of"]


@dataclass(frozen=True)
class Prediction:
    """Observables predicted for one structure.

    Attributes
    ----------
    dos : ndarray (n_energies,)
        Density of states of the cell, states/eV (both spins).
    density : ndarray (nx, ny, nz)
        Electron density, electrons/Å³.
    energy_grid_ev : ndarray (n_energies,)
    fermi_ev, band_energy_ev, total_energy_ev : float
        eV; the total energy is ``nan`` when it cannot be computed.
    energy_terms : dict
        Parts of the total energy (eV).
    grid_shape : tuple of 3 int
    n_atoms : int
    ldos : ndarray (nx, ny, nz, n_energies) or None
        Only with ``return_ldos=True``.
    timings : dict
        Seconds of each pass, chunks, grid points per second.
    cell_features : ndarray (2 n_features,) or None
        Cell integrals ``ΔV Σ_r [x(r), x(r)²]`` of the descriptors (Å³ × feature units),
        the input of the energy correction (:mod:`matterflow.electrons.energy_correction`).
    energy_correction_ev : dict
        ``{"band": ..., "total": ...}`` (eV) added to the band and total energy when the
        model carries an energy correction and it was applied; empty otherwise.
    energy_correction_leverage : float or None
        Leverage of this cell in the correction's feature space (see
        :mod:`matterflow.electrons.energy_correction`); above the largest of its training
        cells the correction extrapolates (a warning is issued). None when not known.
    """

    dos: np.ndarray
    density: np.ndarray
    energy_grid_ev: np.ndarray
    fermi_ev: float
    band_energy_ev: float
    total_energy_ev: float
    energy_terms: dict[str, float]
    grid_shape: tuple[int, int, int]
    n_atoms: int
    ldos: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cell_features: np.ndarray | None = None
    energy_correction_ev: dict[str, float] = field(default_factory=dict)
    energy_correction_leverage: float | None = None


def descriptor_params_of(model: LdosModel) -> Any:
    """The descriptor parameters saved with ``model`` as a pydantic model."""
    from matterflow.electrons.descriptors import (
        BispectrumParams,
        GaussianDescriptorParams,
        NeighbourParams,
    )

    setup = model.setup
    if setup is None or not setup.descriptor_params and setup.descriptor_kind not in ("bispectrum", "gaussian"):
        raise InputError("model: no descriptor parameters saved with it (model.setup); train it with "
                         "`matterflow electrons train`, which records them")
    kinds = {"bispectrum": BispectrumParams, "gaussian": GaussianDescriptorParams,
             "neighbours": NeighbourParams}   # the last: the se3 model's neighbour lists
    if setup.descriptor_kind not in kinds:
        raise InputError(f"model.setup.descriptor_kind: one of {', '.join(kinds)} is accepted; "
                         f"got {setup.descriptor_kind!r}")
    return kinds[setup.descriptor_kind](**setup.descriptor_params)


def grid_shape_for(atoms: Any, spacing_ang: tuple[float, float, float]) -> tuple[int, int, int]:
    """Grid with (about) the training spacing along each cell vector of ``atoms``."""
    lengths = np.linalg.norm(np.asarray(atoms.get_cell()[:]), axis=1)
    if min(spacing_ang) <= 0:
        raise InputError(f"model.setup.grid_spacing_ang must be > 0; got {spacing_ang}")
    return tuple(int(max(1, round(n / s))) for n, s in zip(lengths, spacing_ang, strict=True))


def _check_atoms(atoms: Any, model: LdosModel) -> Any:
    setup = model.setup
    atoms = atoms.copy()
    if not all(atoms.pbc) or atoms.cell.rank != 3:
        raise InputError("atoms: a periodic cell in all three directions is needed "
                         f"(pbc {list(atoms.pbc)}, cell rank {atoms.cell.rank})")
    if not np.all(np.isfinite(atoms.get_positions())):
        raise InputError("atoms.positions: contains NaN or infinite values")
    atoms.wrap()
    known = set(setup.valence_electrons) if setup and setup.valence_electrons else None
    unknown = sorted(set(atoms.get_chemical_symbols()) - known) if known else []
    if unknown:
        raise InputError(f"atoms: species {', '.join(unknown)} unknown to the model; it was trained on "
                         f"{', '.join(sorted(known))}")
    return atoms


def _chunk_ldos(model: LdosModel, atoms: Any, grid: tuple[int, int, int], dparams: Any,
                points: np.ndarray) -> np.ndarray:
    from matterflow.electrons.descriptors import compute_descriptors

    desc = compute_descriptors(_near(atoms, grid, dparams, points), grid, dparams, points=points,
                               n_threads=1)
    return model.predict(desc)


def _near(atoms, grid, dparams, points):
    """Only the atoms within the descriptor cut-off of the chunk (keeps big cells linear)."""
    from matterflow.electrons.large_cell import atoms_near_points, descriptor_cutoff

    cut = descriptor_cutoff(dparams)
    return atoms if cut is None else atoms_near_points(atoms, grid, points, cut)


def _spool_file(spool: Any, points: np.ndarray) -> Any:
    from pathlib import Path

    return Path(spool) / f"ldos_chunk_{int(points[0]):013d}.npy"


def _chunk_dos(model, atoms, grid, dparams, points, voxel_volume, spool=None):
    """The chunk's share of the DOS and of the cell features ``ΔV Σ [x, x²]``.

    With ``spool`` (a folder) the chunk's LDOS is also written there (float32, the network's
    precision) for pass 2, which then reads it instead of recomputing it.
    """
    from matterflow.electrons.descriptors import compute_descriptors
    from matterflow.electrons.energy_correction import cell_features
    from matterflow.electrons.observables import dos_from_ldos

    desc = compute_descriptors(_near(atoms, grid, dparams, points), grid, dparams, points=points,
                               n_threads=1)
    ldos = model.predict(desc)
    if spool is not None:
        ldos = ldos.astype(np.float32)
        np.save(_spool_file(spool, points), ldos)
    return dos_from_ldos(ldos, voxel_volume), cell_features(desc, voxel_volume)


def _chunk_density(model, atoms, grid, dparams, points, fermi_ev, temperature_k, sigma, keep_ldos,
                   spool=None):
    from matterflow.electrons.observables import density_from_ldos

    if getattr(model, "density_head", False):
        # the model predicts the density itself (e.g. Se3LdosModel(density_head=True))
        from matterflow.electrons.descriptors import compute_descriptors

        if spool is not None:
            _spool_file(spool, points).unlink(missing_ok=True)
        desc = compute_descriptors(_near(atoms, grid, dparams, points), grid, dparams, points=points,
                                   n_threads=1)
        ldos, rho = model.predict_ldos_and_density(desc)
        return rho, (ldos.astype(np.float32) if keep_ldos else None)
    if spool is not None:
        path = _spool_file(spool, points)
        ldos = np.load(path)
        path.unlink()
    else:
        ldos = _chunk_ldos(model, atoms, grid, dparams, points)
    energies = model.setup.energies + reference_shift_ev(model.setup, atoms)
    rho = density_from_ldos(ldos, energies, fermi_ev, temperature_k, ldos_smearing_ev=sigma)
    return rho, (ldos.astype(np.float32) if keep_ldos else None)


def _compute(func: Any, calls: list, scheduler: Any, progress: Any = None, label: str = "") -> list:
    from matterflow.core.execute import map_calls

    return map_calls(func, calls, scheduler=scheduler, progress=progress, label=label)


def predict_observables(model: LdosModel, atoms: Any, *, grid_shape: tuple[int, int, int] | None = None,
                        chunk_points: int = 16384, scheduler: Any = "threads",
                        temperature_k: float | None = None, return_ldos: bool = False,
                        with_total_energy: bool = True, broadening_correction: bool = True,
                        energy_correction: bool = True, progress: Any = None,
                        spool_dir: Any = None) -> Prediction:
    """DOS, density, Fermi level, band and total energy of ``atoms`` predicted by ``model``.

    Parameters
    ----------
    model : LdosModel
        A fitted model with its :class:`~matterflow.electrons.model.LdosSetup`.
    atoms : ase.Atoms
        Periodic structure (atoms outside the cell are wrapped), any size.
    grid_shape : (nx, ny, nz), optional
        Default: the training grid spacing (``model.setup.grid_spacing_ang``).
    chunk_points : int
        Grid points per chunk (one parallel call); bounds the memory.
    scheduler : str, distributed.Client or None
        Where the chunks run (see :func:`matterflow.core.execute.map_calls`).
    temperature_k : float, optional
        Electronic temperature (K); default the training one.
    return_ldos : bool
        Also return the whole LDOS (n_points × n_energies float32 in memory).
    with_total_energy : bool
        Compute the total energy (Hartree by FFT, XC, Ewald; needs the density).
    broadening_correction : bool
        Correct the occupation integrals for the LDOS's Gaussian broadening
        (as :func:`~matterflow.electrons.observables.observables_from_ldos`).
    energy_correction : bool
        Add the model's energy correction (``model.setup.meta["energy_correction"]``, fitted by
        ``matterflow electrons correct``) to the band and total energy, if it has one.
    progress : rich Progress, optional
    spool_dir : path, optional
        A folder (local, or shared by all workers) where pass 1 writes each chunk's LDOS
        (float32, ``n_points × n_energies × 4`` bytes in all, on disk, not in memory) and pass 2
        reads it back and deletes it, instead of computing descriptors and network a second
        time. None: recompute (no disk).
    """
    from matterflow.electrons import observables as obs

    if model.setup is None:
        raise InputError("model: it carries no setup (energy grid, descriptors); load one saved by "
                         "`matterflow electrons train`")
    if chunk_points < 1:
        raise InputError(f"chunk_points: must be >= 1; got {chunk_points}")
    setup = model.setup
    atoms = _check_atoms(atoms, model)
    dparams = descriptor_params_of(model)
    grid = tuple(int(n) for n in grid_shape) if grid_shape is not None else grid_shape_for(
        atoms, setup.grid_spacing_ang)
    if len(grid) != 3 or min(grid) < 1:
        raise InputError(f"grid_shape: three sizes >= 1 are needed; got {grid}")
    temp = float(setup.temperature_k if temperature_k is None else temperature_k)
    n_points = int(np.prod(grid))
    voxel = float(atoms.get_volume()) / n_points
    chunks = [np.arange(s, min(s + chunk_points, n_points)) for s in range(0, n_points, chunk_points)]
    energies = setup.energies + reference_shift_ev(setup, atoms)  # 0 unless meta["energy_reference"]
    valence = dict(setup.valence_electrons) or None
    n_electrons = float(obs.valence_charges(atoms, valence).sum())
    sigma = float(setup.ldos_smearing_ev) if broadening_correction else 0.0

    t0 = time.perf_counter()
    spool = None if spool_dir is None else str(spool_dir)
    if spool is not None:
        from pathlib import Path

        Path(spool).mkdir(parents=True, exist_ok=True)
    dos_parts = _compute(_chunk_dos, [(model, atoms, grid, dparams, c, voxel, spool) for c in chunks],
                         scheduler, progress, "LDOS → DOS (pass 1)")
    dos = np.sum([d for d, _ in dos_parts], axis=0)
    feats = np.sum([f for _, f in dos_parts], axis=0)
    fermi = float(obs.fermi_level(dos, energies, n_electrons, temp, ldos_smearing_ev=sigma))
    t1 = time.perf_counter()
    parts = _compute(_chunk_density, [(model, atoms, grid, dparams, c, fermi, temp, sigma, return_ldos,
                                       spool) for c in chunks], scheduler, progress, "LDOS → density (pass 2)")
    density = np.concatenate([p[0] for p in parts]).reshape(grid)
    ldos = np.concatenate([p[1] for p in parts]).reshape(*grid, -1) if return_ldos else None
    t2 = time.perf_counter()
    band = float(obs.band_energy(dos, energies, fermi, temp, ldos_smearing_ev=sigma))
    total, terms = float("nan"), {}
    if with_total_energy:
        ts = float(obs.entropy_energy(dos, energies, fermi, temp, ldos_smearing_ev=sigma))
        total, terms = obs.total_energy(density, atoms, band_energy_ev=band, entropy_ts_ev=ts,
                                        xc=str(setup.meta.get("xc", "lda,pz")), valence=valence)
    corr: dict[str, float] = {}
    leverage = None
    if energy_correction and setup.meta.get("energy_correction"):
        from matterflow.electrons.energy_correction import EnergyCorrection

        ec = EnergyCorrection.from_dict(setup.meta["energy_correction"])
        db, dt = ec.apply(feats, atoms.get_volume())
        corr = {"band": db, "total": dt}
        leverage = ec.leverage(feats, atoms.get_volume())
        if ec.extrapolates(feats, atoms.get_volume()):
            warnings.warn(
                f"energy correction: this cell lies outside its {ec.n_snapshots} training cells "
                f"(leverage {leverage:.3g} > {ec.domain['max_training_leverage']:.3g}, the largest among "
                f"them); the corrected band and total energies extrapolate. Compare with "
                f"energy_correction=False, or refit the correction on cells like this one",
                MatterflowWarning, stacklevel=2)
        band, total = band + db, total + dt
    t3 = time.perf_counter()
    return Prediction(dos=dos, density=density, energy_grid_ev=energies, fermi_ev=fermi,
                      band_energy_ev=band, total_energy_ev=total, energy_terms=terms,
                      grid_shape=grid, n_atoms=len(atoms), ldos=ldos, cell_features=feats,
                      energy_correction_ev=corr, energy_correction_leverage=leverage,
                      timings={"pass1_s": t1 - t0, "pass2_s": t2 - t1, "energy_s": t3 - t2,
                               "n_chunks": float(len(chunks)), "n_points": float(n_points),
                               "points_per_s": n_points / max(t2 - t0, 1e-9)})
