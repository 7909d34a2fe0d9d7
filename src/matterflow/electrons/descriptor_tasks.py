"""Tasks computing grid descriptors (bispectrum or Gaussian) of structures.

- ``electrons.descriptors`` is mapped over snapshots given as arrays, like
  ``electrons.dft``: ``positions`` (n_snapshots, n_atoms, 3) with ``cell``
  and ``numbers`` shared (or stacked per snapshot but equal, as the outputs
  of ``electrons.dft``), and the grid from ``grid_shape`` (input or
  parameter). In a workflow: ``inputs: {positions: dft.positions, cell:
  dft.cell, numbers: dft.numbers, grid_shape: dft.grid_shape}``.
- ``electrons.structure_descriptors`` takes one structure: a file ASE can
  read, a snapshot HDF5 file (which carries its grid), an ``ase.Atoms`` or
  a :class:`~matterflow.electrons.snapshot.Snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from matterflow.core import Params, quantity, task
from matterflow.core.errors import InputError
from matterflow.electrons.descriptors import (
    BispectrumParams,
    GaussianDescriptorParams,
    NeighbourParams,
    compute_descriptors,
)

__all__ = ["DescriptorTaskParams", "GridDescriptors", "descriptors", "structure_descriptors",
           "load_structure", "TASKS"]

SNAPSHOT_SUFFIXES = {".h5", ".hdf5", ".he5"}


class DescriptorTaskParams(Params):
    """Which descriptor, on which grid, with which parameters."""

    kind: Literal["bispectrum", "gaussian", "neighbours"] = Field(
        "bispectrum", description="bispectrum (LAMMPS sna/grid), gaussian (atomic density) or "
        "neighbours (the neighbour lists the se3 model reads)")
    grid_shape: tuple[int, int, int] | None = Field(
        None, description="(nx, ny, nz); None takes the snapshot's own grid")
    bispectrum: BispectrumParams = Field(default_factory=BispectrumParams,
                                         description="parameters when kind is bispectrum")
    gaussian: GaussianDescriptorParams = Field(default_factory=GaussianDescriptorParams,
                                               description="parameters when kind is gaussian")
    neighbours: NeighbourParams = Field(default_factory=NeighbourParams,
                                        description="parameters when kind is neighbours")

    @field_validator("grid_shape")
    @classmethod
    def _positive_grid(cls, value):
        if value is not None and min(value) < 1:
            raise ValueError(f"grid sizes must be >= 1; got {value}")
        return value

    @property
    def descriptor_params(self) -> BispectrumParams | GaussianDescriptorParams | NeighbourParams:
        """The parameters of the selected descriptor kind."""
        return {"bispectrum": self.bispectrum, "gaussian": self.gaussian,
                "neighbours": self.neighbours}[self.kind]


@dataclass(frozen=True)
class GridDescriptors:
    """Descriptors of one structure on its grid."""

    descriptors: np.ndarray = quantity(
        "dimensionless (bispectrum) or 1/Å^3 (gaussian)", "(nx, ny, nz, n_features)")
    grid_shape: np.ndarray = quantity("dimensionless", "(3,) nx, ny, nz")
    cell_a: np.ndarray = quantity("Å", "(3, 3) lattice vectors as rows")
    n_atoms: int = quantity("dimensionless", "atoms in the structure")


def load_structure(structure: Any) -> tuple[Any, tuple[int, int, int] | None]:
    """``(atoms, grid_shape or None)`` from a path, ``ase.Atoms`` or ``Snapshot``.

    Snapshot HDF5 files (``.h5``) give their own grid; other files are read
    with ``ase.io.read`` (no grid).
    """
    if hasattr(structure, "atoms") and hasattr(structure, "grid_shape"):
        return structure.atoms, tuple(int(n) for n in structure.grid_shape)
    if hasattr(structure, "get_positions") and hasattr(structure, "get_cell"):
        return structure, None
    if isinstance(structure, (str, Path)):
        path = Path(structure)
        if not path.exists():
            raise InputError(f"{path}: structure file not found")
        if path.suffix.lower() in SNAPSHOT_SUFFIXES:
            from matterflow.electrons.snapshot import load_snapshot

            snap = load_snapshot(path, with_ldos=False)
            return snap.atoms, tuple(int(n) for n in snap.grid_shape)
        import ase.io

        try:
            atoms = ase.io.read(path)
        except Exception as exc:  # ASE raises many kinds of errors for unreadable files
            raise InputError(f"{path}: not a structure file ASE can read ({exc})") from None
        if isinstance(atoms, list):
            atoms = atoms[-1]
        if not all(atoms.pbc):
            raise InputError(f"{path}: the structure must be periodic in all three directions "
                             f"(pbc is {atoms.pbc.tolist()}); grid descriptors need a cell")
        return atoms, None
    raise InputError(f"structures: a file path, ase.Atoms or Snapshot is needed; got "
                     f"{type(structure).__name__}")


def _figures(outputs: dict, params: DescriptorTaskParams) -> dict:
    import matplotlib.pyplot as plt

    d = np.asarray(outputs["descriptors"])
    if d.ndim == 5:   # mapped: (n_structures, nx, ny, nz, n_features)
        d = d[0]
    nf = d.shape[-1]
    cols = sorted({0, min(1, nf - 1), nf // 2, nf - 1})
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.0), squeeze=False)
    for ax, c in zip(axes[0], cols, strict=True):
        im = ax.imshow(d[:, :, 0, c].T, origin="lower", cmap="viridis")
        ax.set_title(f"feature {c}, z = 0")
        ax.set_xlabel("i (x)")
        ax.set_ylabel("j (y)")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig2, ax2 = plt.subplots(figsize=(6, 3))
    flat = d.reshape(-1, nf)
    ax2.errorbar(np.arange(nf), flat.mean(axis=0), yerr=flat.std(axis=0), fmt=".", ms=3)
    ax2.set_xlabel("feature")
    ax2.set_ylabel("mean ± std over grid")
    ax2.set_title(f"{params.kind} descriptors ({nf} features)")
    fig2.tight_layout()
    return {"Descriptor slices (first structure)": fig, "Descriptor statistics": fig2}


def _shared(value: Any, name: str, item_ndim: int) -> np.ndarray:
    """``value`` for one snapshot: itself, or the common entry of a per-snapshot stack."""
    arr = np.asarray(value)
    if arr.ndim == item_ndim + 1:
        if len(arr) == 0:
            raise InputError(f"{name}: empty")
        if not all(np.array_equal(arr[0], a) for a in arr[1:]):
            raise InputError(f"{name}: differs between snapshots; electrons.descriptors maps over "
                             f"positions and needs one {name} for all of them (compute "
                             f"snapshots with different {name} in separate steps)")
        arr = arr[0]
    if arr.ndim != item_ndim:
        raise InputError(f"{name}: expected {item_ndim} dimension(s) per snapshot; got shape "
                         f"{arr.shape}")
    return arr


def _atoms_from_arrays(positions: Any, cell: Any, numbers: Any):
    from ase import Atoms

    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise InputError(f"positions: (n_atoms, 3) per snapshot needed; got shape {pos.shape}")
    cell_arr = _shared(cell, "cell", 2).astype(float)
    if cell_arr.shape != (3, 3):
        raise InputError(f"cell: (3, 3) lattice vectors needed; got shape {cell_arr.shape}")
    num = _shared(numbers, "numbers", 1)
    if len(num) != len(pos):
        raise InputError(f"numbers: {len(num)} atomic numbers for {len(pos)} positions")
    try:
        return Atoms(numbers=num.astype(int), positions=pos, cell=cell_arr, pbc=True)
    except (KeyError, ValueError) as exc:
        raise InputError(f"numbers: not valid atomic numbers ({exc})") from None


def _run(atoms, own_grid, params: DescriptorTaskParams) -> GridDescriptors:
    grid = params.grid_shape or own_grid
    if grid is None:
        raise InputError("params.grid_shape: needed for a structure without its own grid "
                         "(only snapshots carry one); e.g. grid_shape: [18, 18, 18]")
    values = compute_descriptors(atoms, grid, params.descriptor_params)
    return GridDescriptors(descriptors=values, grid_shape=np.array(grid, dtype=np.int64),
                           cell_a=np.asarray(atoms.get_cell()[:], dtype=float),
                           n_atoms=len(atoms))


@task("electrons.descriptors", params=DescriptorTaskParams, map_over="positions",
      figures=_figures, version="2")
def descriptors(positions: np.ndarray, cell: np.ndarray, numbers: np.ndarray,
                grid_shape: np.ndarray | None = None, *,
                params: DescriptorTaskParams) -> GridDescriptors:
    """Bispectrum (LAMMPS sna/grid) or Gaussian descriptors of one snapshot on its grid."""
    atoms = _atoms_from_arrays(positions, cell, numbers)
    own = None
    if grid_shape is not None:
        own = tuple(int(n) for n in _shared(grid_shape, "grid_shape", 1))
    return _run(atoms, own, params)


@task("electrons.structure_descriptors", params=DescriptorTaskParams, figures=_figures,
      version="1")
def structure_descriptors(structure: Any, *, params: DescriptorTaskParams) -> GridDescriptors:
    """Descriptors of one structure file (ASE-readable or snapshot .h5), Atoms or Snapshot."""
    atoms, own_grid = load_structure(structure)
    return _run(atoms, own_grid, params)


TASKS = [descriptors, structure_descriptors]
