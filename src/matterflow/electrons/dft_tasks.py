"""Tasks of the DFT-data part of the electrons domain.

- ``electrons.structures``: thermally displaced fcc Al supercells (one per snapshot);
- ``electrons.dft``: PySCF Kohn-Sham DFT of one snapshot, **mapped over snapshots**
  (``map_over="positions"``), so the executor runs them in batches on Dask;
- ``electrons.observables``: DOS, density, Fermi level, band and total energy from
  LDOS arrays, without a DFT code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from pydantic import Field, model_validator

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

__all__ = ["TASKS", "StructuresParams", "HydrogenParams", "hydrogen_structures", "ReadStructuresParams",
           "read_structures", "DftParams", "ObservablesParams", "structures", "dft", "observables",
           "dft_kwargs", "energy_grid", "mesh_for"]


# ----------------------------------------------------------------------------- structures

class StructuresParams(Params):
    n_snapshots: int = Field(3, ge=1, le=10_000, description="number of snapshots")
    repeat: tuple[int, int, int] = Field((1, 1, 1), description="repeats of the 4-atom fcc cube")
    temperature_k: float = Field(298.0, ge=0, le=5000, description="ionic temperature of the "
                                 "displacements", json_schema_extra={"units": "K"})
    thermal: Literal["phonons", "independent"] = Field(
        "phonons", description="displacement sampler: correlated harmonic normal modes (EMT force "
        "constants of the supercell, classical amplitudes) or independent Gaussian per atom "
        "(Debye-model amplitude)")
    lattice_a: float = Field(4.05, gt=0, le=20, description="fcc lattice constant",
                             json_schema_extra={"units": "Å"})
    seed: int = Field(0, ge=0, description="random seed (snapshot i uses seed + i)")
    indices: list[int] = Field([], description="make only these snapshots i (each 0 <= i < "
                               "n_snapshots, seed + i as for all); default: all")

    @model_validator(mode="after")
    def _indices_in_range(self) -> StructuresParams:
        bad = [i for i in self.indices if not 0 <= i < self.n_snapshots]
        if bad:
            raise ValueError(f"indices {bad} are outside [0, n_snapshots={self.n_snapshots})")
        return self


@dataclass(frozen=True)
class Structures:
    positions: np.ndarray = quantity("Å", "(n_snapshots, n_atoms, 3) Cartesian positions")
    cell: np.ndarray = quantity("Å", "(3, 3) lattice vectors as rows")
    numbers: np.ndarray = quantity("dimensionless", "(n_atoms,) atomic numbers")
    grid_shape: np.ndarray | None = quantity("dimensionless", "(3,) the real-space grid of a "
                                             "snapshot file read by read_structures; else None",
                                             default=None)


@task("electrons.structures", params=StructuresParams)
def structures(*, params: StructuresParams) -> Structures:
    """Thermally displaced fcc aluminium supercells (harmonic phonons or Debye model), one per snapshot."""
    from matterflow.electrons.structures import aluminium_supercell

    which = params.indices or range(params.n_snapshots)
    cells = [aluminium_supercell(params.repeat, params.temperature_k, params.seed + i,
                                 lattice_a=params.lattice_a, thermal=params.thermal) for i in which]
    return Structures(positions=np.stack([a.positions for a in cells]),
                      cell=np.asarray(cells[0].cell[:]), numbers=cells[0].numbers.copy())


class HydrogenParams(Params):
    """Boxes of dense molecular hydrogen (:func:`matterflow.electrons.hydrogen.hydrogen_box`)."""

    n_snapshots: int = Field(3, ge=1, le=10_000, description="number of snapshots")
    n_cells: tuple[int, int, int] = Field((2, 2, 1), description="repeats of the 2-molecule hcp cell "
                                          "(also the liquid's box shape)")
    density_g_cm3: float = Field(0.6, gt=0, le=5, description="mass density",
                                 json_schema_extra={"units": "g/cm^3"})
    temperature_k: float = Field(300.0, ge=0, le=20_000, description="ionic temperature scaling the "
                                 "thermal displacements and librations", json_schema_extra={"units": "K"})
    phase: Literal["solid", "liquid"] = Field("solid", description="hcp molecular solid with thermal "
                                              "displacements and librations, or hard-sphere molecular liquid")
    min_distance_ang: float = Field(1.4, gt=0.5, le=4, description="liquid: closest approach of "
                                    "molecular centres", json_schema_extra={"units": "Å"})
    seed: int = Field(0, ge=0, description="random seed (snapshot i uses seed + i)")
    indices: list[int] = Field([], description="make only these snapshots i; default: all")

    @model_validator(mode="after")
    def _indices_in_range(self) -> HydrogenParams:
        bad = [i for i in self.indices if not 0 <= i < self.n_snapshots]
        if bad:
            raise ValueError(f"indices {bad} are outside [0, n_snapshots={self.n_snapshots})")
        return self


@task("electrons.hydrogen_structures", params=HydrogenParams)
def hydrogen_structures(*, params: HydrogenParams) -> Structures:
    """Boxes of H₂ molecules at one density and temperature (solid or liquid), one per snapshot."""
    from matterflow.electrons.hydrogen import hydrogen_box

    which = params.indices or range(params.n_snapshots)
    boxes = [hydrogen_box(params.n_cells, density_g_cm3=params.density_g_cm3,
                          temperature_k=params.temperature_k, phase=params.phase,
                          min_distance_ang=params.min_distance_ang, seed=params.seed + i) for i in which]
    return Structures(positions=np.stack([a.positions for a in boxes]),
                      cell=np.asarray(boxes[0].cell[:]), numbers=boxes[0].numbers.copy())


class ReadStructuresParams(Params):
    indices: list[int] = Field([], description="read only these frames (0-based, -1 the last); "
                               "default: all")


@task("electrons.read_structures", params=ReadStructuresParams)
def read_structures(structure: Path, *, params: ReadStructuresParams) -> Structures:
    """The frames of a structure file (ASE-readable, or a snapshot .h5), stacked, with one cell."""
    from ase.io import read

    from matterflow.electrons.descriptor_tasks import SNAPSHOT_SUFFIXES

    path = Path(structure)
    if not path.exists():
        raise InputError(f"{path}: structure file not found")
    if path.suffix.lower() in SNAPSHOT_SUFFIXES:
        from matterflow.electrons.snapshot import load_snapshot

        snap = load_snapshot(path, with_ldos=False)
        if params.indices and params.indices != [0]:
            raise InputError(f"indices: {path} is a snapshot file with one frame; got {params.indices}")
        return Structures(positions=snap.atoms.positions[None].copy(),
                          cell=np.asarray(snap.atoms.cell[:], dtype=float),
                          numbers=snap.atoms.numbers.copy(),
                          grid_shape=np.asarray(snap.grid_shape, dtype=int))
    try:
        frames = read(path, index=":")
    except Exception as exc:  # ASE raises many kinds of errors for unreadable files
        raise InputError(f"{path}: ASE cannot read it ({exc})") from None
    bad = [i for i in params.indices if not -len(frames) <= i < len(frames)]
    if bad:
        raise InputError(f"indices: {bad} outside the {len(frames)} frames of {path}")
    if params.indices:
        frames = [frames[i] for i in params.indices]
    first = frames[0]
    for k, a in enumerate(frames):
        if len(a) != len(first) or not np.array_equal(a.numbers, first.numbers) \
                or not np.allclose(a.cell[:], first.cell[:]):
            raise InputError(f"{path}: frame {k} differs from frame 0 in its atoms or cell; the "
                             "frames of one run must share them (run such frames separately)")
    return Structures(positions=np.stack([a.positions for a in frames]),
                      cell=np.asarray(first.cell[:], dtype=float), numbers=first.numbers.copy())


# ----------------------------------------------------------------------------- DFT

class DftParams(Params):
    xc: Literal["lda,pz", "lda,vwn"] = Field("lda,pz", description="Slater exchange + PZ81 or "
                                              "VWN5 correlation")
    basis: Literal["gth-szv", "gth-dzv", "gth-dzvp", "gth-tzvp"] = Field(
        "gth-szv", description="PySCF GTH Gaussian basis")
    pseudo: Literal["gth-pade", "gth-lda"] = Field("gth-pade", description="GTH pseudopotential")
    kpts: tuple[int, int, int] = Field((2, 2, 2), description="Monkhorst-Pack k-grid (Gamma-centred)")
    mesh: tuple[int, int, int] = Field((12, 12, 12), description="real-space grid (nx, ny, nz) "
                                       "per cell (scale with the supercell)")
    grid_spacing_a: float | None = Field(None, gt=0, le=2, description="if set, the grid from "
                                         "the cell: round(cell length / spacing) points per "
                                         "axis (replaces mesh)", json_schema_extra={"units": "Å"})
    electronic_temperature_k: float = Field(298.0, gt=0, le=50_000, description="Fermi-Dirac "
                                            "smearing temperature", json_schema_extra={"units": "K"})
    energy_min_ev: float = Field(-4.5, description="lowest LDOS energy",
                                 json_schema_extra={"units": "eV"})
    energy_max_ev: float = Field(11.0, description="highest LDOS energy",
                                 json_schema_extra={"units": "eV"})
    energy_step_ev: float = Field(0.05, gt=0, le=1, description="LDOS energy step",
                                  json_schema_extra={"units": "eV"})
    ldos_smearing_ev: float = Field(0.05, gt=0, le=2, description="Gaussian standard deviation "
                                    "of the LDOS broadening", json_schema_extra={"units": "eV"})
    conv_tol_ha: float = Field(1e-8, gt=0, le=1e-3, description="SCF energy convergence",
                               json_schema_extra={"units": "Ha"})
    max_cycle: int = Field(100, ge=1, le=1000, description="SCF iteration limit")


def energy_grid(params: DftParams) -> np.ndarray:
    """The LDOS energies (eV) of ``params`` (uniform, both ends included when on the step)."""
    if params.energy_max_ev <= params.energy_min_ev:
        raise InputError(f"energy_max_ev ({params.energy_max_ev}) must exceed energy_min_ev "
                         f"({params.energy_min_ev})")
    n = int(np.floor((params.energy_max_ev - params.energy_min_ev) / params.energy_step_ev + 1e-9)) + 1
    return params.energy_min_ev + params.energy_step_ev * np.arange(n)


def mesh_for(cell: np.ndarray, params: DftParams) -> tuple[int, int, int]:
    """The real-space grid of a cell (3, 3) Å: ``params.mesh`` or from ``grid_spacing_a``."""
    if params.grid_spacing_a is None:
        return tuple(params.mesh)
    lengths = np.linalg.norm(np.asarray(cell, dtype=float), axis=1)
    return tuple(int(max(4, round(length / params.grid_spacing_a))) for length in lengths)


def dft_kwargs(params: DftParams, cell: np.ndarray | None = None) -> dict:
    """Keyword arguments of :func:`matterflow.electrons.dft.run_dft` from the task parameters."""
    mesh = params.mesh if cell is None else mesh_for(cell, params)
    return dict(xc=params.xc, basis=params.basis, pseudo=params.pseudo, kpts=params.kpts,
                mesh=mesh, electronic_temperature_k=params.electronic_temperature_k,
                energy_grid_ev=energy_grid(params), ldos_smearing_ev=params.ldos_smearing_ev,
                conv_tol_ha=params.conv_tol_ha, max_cycle=params.max_cycle)


@dataclass(frozen=True)
class DftSnapshot:
    positions: np.ndarray = quantity("Å", "(n_atoms, 3) positions, wrapped into the cell")
    cell: np.ndarray = quantity("Å", "(3, 3) lattice vectors as rows")
    numbers: np.ndarray = quantity("dimensionless", "(n_atoms,) atomic numbers")
    grid_shape: np.ndarray = quantity("dimensionless", "(3,) real-space grid")
    energy_grid_ev: np.ndarray = quantity("eV", "(ne,) LDOS energies")
    ldos: np.ndarray = quantity("1/(eV*Å^3)", "(nx, ny, nz, ne) LDOS, both spins")
    density: np.ndarray = quantity("1/Å^3", "(nx, ny, nz) electron density")
    dos: np.ndarray = quantity("1/eV", "(ne,) DOS of the cell (LDOS summed over the grid)")
    eigenvalues_ev: np.ndarray = quantity("eV", "(nk, nb) Kohn-Sham eigenvalues")
    kweights: np.ndarray = quantity("dimensionless", "(nk,) k-point weights, sum 1")
    fermi_ev: float = quantity("eV", "chemical potential")
    electronic_temperature_k: float = quantity("K", "Fermi-Dirac temperature")
    ldos_smearing_ev: float = quantity("eV", "Gaussian width of the LDOS")
    band_energy_ev: float = quantity("eV", "sum of f * eigenvalue per cell")
    total_energy_ev: float = quantity("eV", "free energy E - TS per cell")
    internal_energy_ev: float = quantity("eV", "internal energy E per cell")
    entropy_ts_ev: float = quantity("eV", "T * S electronic entropy term per cell")
    n_electrons: float = quantity("dimensionless", "valence electrons per cell")
    scf_seconds: float = quantity("s", "wall time of the SCF")
    meta_json: str = quantity("dimensionless", "the run's metadata (code, functional, basis, "
                              "k-points, mesh, timings) as JSON")


def _dft_figures(outputs: dict, params: DftParams) -> dict:
    import matplotlib.pyplot as plt

    e, dos = np.atleast_2d(outputs["energy_grid_ev"]), np.atleast_2d(outputs["dos"])
    fermi = np.atleast_1d(outputs["fermi_ev"])
    dens = outputs["density"]
    dens = dens[0] if dens.ndim == 4 else dens
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i in range(min(len(dos), 5)):
        ax1.plot(e[i], dos[i], lw=1, label=f"snapshot {i}")
        ax1.axvline(fermi[i], color=ax1.lines[-1].get_color(), ls=":", lw=0.8)
    ax1.set_xlabel("energy (eV)")
    ax1.set_ylabel("DOS (states/eV/cell)")
    ax1.legend(fontsize=8)
    im = ax2.imshow(dens[:, :, 0].T, origin="lower", cmap="viridis")
    fig.colorbar(im, ax=ax2, label="electrons/Å³")
    ax2.set_title("density, plane k = 0 (snapshot 0)")
    ax2.set_xlabel("i")
    ax2.set_ylabel("j")
    fig.tight_layout()
    return {"DFT density of states and density": fig}


def _atoms_from(positions: np.ndarray, cell: np.ndarray, numbers: np.ndarray,
                where: str = "positions") -> Atoms:
    positions = np.asarray(positions, dtype=float)
    numbers = np.asarray(numbers, dtype=int).reshape(-1)
    cell = np.asarray(cell, dtype=float)
    if positions.ndim != 2 or positions.shape != (len(numbers), 3):
        raise InputError(f"{where}: shape {positions.shape}; expected (n_atoms={len(numbers)}, 3)")
    if cell.shape != (3, 3):
        raise InputError(f"cell: shape {cell.shape}; expected (3, 3)")
    for name, arr in (("positions", positions), ("cell", cell)):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: contains NaN or inf")
    return Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)


@task("electrons.dft", params=DftParams, map_over="positions", figures=_dft_figures, version="2")
def dft(positions: np.ndarray, cell: np.ndarray, numbers: np.ndarray, *,
        params: DftParams) -> DftSnapshot:
    """Kohn-Sham LDA DFT (PySCF) of one snapshot: LDOS, density, eigenvalues and energies."""
    from matterflow.electrons.dft import run_dft
    from matterflow.electrons.observables import dos_from_ldos

    atoms = _atoms_from(positions, cell, numbers)
    snap = run_dft(atoms, **dft_kwargs(params, atoms.cell[:]))
    return DftSnapshot(
        positions=snap.atoms.positions, cell=np.asarray(snap.atoms.cell[:]),
        numbers=snap.atoms.numbers, grid_shape=np.asarray(snap.grid_shape),
        energy_grid_ev=snap.energy_grid_ev, ldos=snap.ldos, density=snap.density,
        dos=dos_from_ldos(snap.ldos, snap.voxel_volume_a3), eigenvalues_ev=snap.eigenvalues_ev,
        kweights=snap.kweights, fermi_ev=snap.fermi_ev,
        electronic_temperature_k=snap.electronic_temperature_k,
        ldos_smearing_ev=snap.ldos_smearing_ev, band_energy_ev=snap.band_energy_ev,
        total_energy_ev=snap.total_energy_ev, internal_energy_ev=snap.meta["internal_energy_ev"],
        entropy_ts_ev=snap.meta["entropy_ts_ev"], n_electrons=snap.meta["n_electrons"],
        scf_seconds=snap.meta["scf_seconds"],
        meta_json=json.dumps(snap.meta, default=_json_default))


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ----------------------------------------------------------------------------- observables

class ObservablesParams(Params):
    temperature_k: float = Field(298.0, gt=0, le=50_000, description="electronic temperature",
                                 json_schema_extra={"units": "K"})
    ldos_smearing_ev: float = Field(0.05, ge=0, le=2, description="Gaussian width the LDOS was "
                                    "broadened with (0: no broadening correction)",
                                    json_schema_extra={"units": "eV"})
    xc: Literal["lda,pz", "lda,vwn"] = Field("lda,pz", description="LDA of the DFT data")
    kernel: Literal["cubic", "linear"] = Field("cubic", description="interpolant of the LDOS "
                                               "between energy samples")
    n_electrons: float | None = Field(None, gt=0, description="valence electrons per cell "
                                      "(default: GTH valence charges)")


@dataclass(frozen=True)
class Observables:
    energy_grid_ev: np.ndarray = quantity("eV", "(ne,) energies of the DOS")
    dos: np.ndarray = quantity("1/eV", "(n_snapshots, ne) DOS per cell")
    density: np.ndarray = quantity("1/Å^3", "(n_snapshots, nx, ny, nz) electron density")
    fermi_ev: np.ndarray = quantity("eV", "(n_snapshots,) chemical potential")
    band_energy_ev: np.ndarray = quantity("eV", "(n_snapshots,) band energy per cell")
    total_energy_ev: np.ndarray = quantity("eV", "(n_snapshots,) free energy per cell")
    energy_terms: dict = quantity("eV", "each (n_snapshots,): band, hartree and xc double "
                                  "counting, ewald, -TS")


def _observables_figures(outputs: dict, params: ObservablesParams) -> dict:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    e = outputs["energy_grid_ev"]
    for i, d in enumerate(np.atleast_2d(outputs["dos"])[:5]):
        ax.plot(e, d, lw=1, label=f"snapshot {i}, F = "
                f"{np.atleast_1d(outputs['total_energy_ev'])[i]:.3f} eV")
        ax.axvline(np.atleast_1d(outputs["fermi_ev"])[i], color=ax.lines[-1].get_color(), ls=":")
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel("DOS (states/eV/cell)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"DOS from the LDOS": fig}


@task("electrons.observables", params=ObservablesParams, figures=_observables_figures, version="2")
def observables(ldos: np.ndarray, energy_grid_ev: np.ndarray, positions: np.ndarray,
                cell: np.ndarray, numbers: np.ndarray, *,
                params: ObservablesParams) -> Observables:
    """DOS, density, Fermi level, band and total energy from LDOS arrays (no DFT code)."""
    from matterflow.electrons.observables import observables_from_ldos

    ldos = np.asarray(ldos)
    positions = np.asarray(positions, dtype=float)
    single = ldos.ndim == 4
    if single:
        ldos, positions = ldos[None], positions[None]
    if ldos.ndim != 5 or positions.ndim != 3 or len(ldos) != len(positions):
        raise InputError(f"ldos: shape {ldos.shape} with positions {positions.shape}; expected "
                         "(n, nx, ny, nz, ne) and (n, n_atoms, 3) (or one snapshot without n)")
    cell = np.asarray(cell, dtype=float)
    e = np.asarray(energy_grid_ev, dtype=float)
    e = e[0] if e.ndim == 2 else e
    numbers = np.asarray(numbers)
    numbers = numbers[0] if numbers.ndim == 2 else numbers
    results = []
    for i in range(len(ldos)):
        c = cell[i] if cell.ndim == 3 else cell
        atoms = _atoms_from(positions[i], c, numbers, where=f"positions[{i}]")
        results.append(observables_from_ldos(
            ldos[i], e, atoms, temperature_k=params.temperature_k,
            ldos_smearing_ev=params.ldos_smearing_ev, n_electrons=params.n_electrons,
            xc=params.xc, kernel=params.kernel))
    terms = {k: np.array([r.energy_terms[k] for r in results]) for k in results[0].energy_terms}
    return Observables(energy_grid_ev=e, dos=np.stack([r.dos for r in results]),
                       density=np.stack([r.density for r in results]),
                       fermi_ev=np.array([r.fermi_ev for r in results]),
                       band_energy_ev=np.array([r.band_energy_ev for r in results]),
                       total_energy_ev=np.array([r.total_energy_ev for r in results]),
                       energy_terms=terms)


TASKS: list = [structures, hydrogen_structures, read_structures, dft, observables]
