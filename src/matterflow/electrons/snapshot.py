"""One DFT snapshot: atoms, real-space grid, LDOS, density, eigenvalues and energies.

Conventions (shared by the electrons domain): eV, Å, K; grid point (i, j, k)
at fractional coordinates (i/nx, j/ny, k/nz) of the cell; arrays in C order
with shape (nx, ny, nz, ...). The LDOS counts both spins.

:func:`save_snapshot` / :func:`load_snapshot` store a snapshot in HDF5, one
dataset per field with a ``units`` attribute, written atomically.
Readers of other formats (MALA ``.npy`` + DFT output, Gaussian cube) are in
:mod:`matterflow.electrons.io_formats`, which builds on this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from matterflow.core.errors import InputError
from matterflow.core.registry import quantity

__all__ = ["Snapshot", "save_snapshot", "load_snapshot", "check_snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """A DFT snapshot (see module docstring for conventions)."""

    atoms: Atoms = quantity("Å", "periodic structure (ase.Atoms)")
    grid_shape: tuple[int, int, int] = quantity("dimensionless", "(nx, ny, nz)")
    energy_grid_ev: np.ndarray = quantity("eV", "(ne,) uniform LDOS energies")
    ldos: np.ndarray | None = quantity("1/(eV*Å^3)", "(nx, ny, nz, ne), both spins")
    density: np.ndarray | None = quantity("1/Å^3", "(nx, ny, nz) electrons per Å³")
    eigenvalues_ev: np.ndarray | None = quantity("eV", "(nk, nb) Kohn-Sham eigenvalues")
    kweights: np.ndarray | None = quantity("dimensionless", "(nk,) summing to 1")
    fermi_ev: float = quantity("eV", "chemical potential at the electronic temperature")
    electronic_temperature_k: float = quantity("K", "Fermi-Dirac temperature")
    band_energy_ev: float = quantity("eV", "sum of f * eigenvalue, both spins, per cell")
    total_energy_ev: float = quantity("eV", "free energy E - TS of the cell")
    ldos_smearing_ev: float = quantity("eV", "Gaussian standard deviation of the LDOS")
    meta: dict = quantity("dimensionless", "code, functional, pseudopotential, basis, kpts, mesh",
                          default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def n_electrons(self) -> float | None:
        """Valence electrons per cell if known (``meta['n_electrons']``)."""
        n = self.meta.get("n_electrons")
        return None if n is None else float(n)

    @property
    def voxel_volume_a3(self) -> float:
        """Volume of one grid cell (Å³)."""
        return float(abs(self.atoms.cell.volume)) / int(np.prod(self.grid_shape))

    def with_(self, **changes: Any) -> Snapshot:
        """A copy with some fields replaced."""
        return replace(self, **changes)


def check_snapshot(snap: Snapshot, *, where: str = "snapshot") -> Snapshot:
    """Validate shapes and finiteness; raise :class:`InputError` naming the field."""
    shape = tuple(int(s) for s in snap.grid_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"{where}: grid_shape must be three positive ints; got {snap.grid_shape}")
    e = np.asarray(snap.energy_grid_ev)
    if e.ndim != 1 or len(e) < 2 or not np.all(np.isfinite(e)):
        raise InputError(f"{where}: energy_grid_ev must be a finite 1-d array of >= 2 energies")
    if snap.ldos is not None:
        ldos = np.asarray(snap.ldos)
        if ldos.shape != (*shape, len(e)):
            raise InputError(f"{where}: ldos has shape {ldos.shape}; expected grid_shape + (ne,) = "
                             f"{(*shape, len(e))}")
        if not np.all(np.isfinite(ldos)):
            raise InputError(f"{where}: ldos contains NaN or inf")
    if snap.density is not None:
        dens = np.asarray(snap.density)
        if dens.shape != shape:
            raise InputError(f"{where}: density has shape {dens.shape}; expected {shape}")
        if not np.all(np.isfinite(dens)):
            raise InputError(f"{where}: density contains NaN or inf")
    if not np.all(np.isfinite(snap.atoms.positions)):
        raise InputError(f"{where}: atoms.positions contain NaN or inf")
    return snap


_SCALARS = ("fermi_ev", "electronic_temperature_k", "band_energy_ev", "total_energy_ev",
            "ldos_smearing_ev")
_ARRAYS = ("energy_grid_ev", "ldos", "density", "eigenvalues_ev", "kweights")


def _units() -> dict[str, str]:
    return {f.name: f.metadata["units"] for f in fields(Snapshot)}


def save_snapshot(snap: Snapshot, path: str | os.PathLike) -> Path:
    """Write ``snap`` to an HDF5 file (atomically); returns the path."""
    from matterflow.core.store import atomic_h5

    check_snapshot(snap)
    units = _units()
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["format"] = "matterflow.electrons.snapshot"
        f.attrs["version"] = 1
        g = f.create_group("atoms")
        g.create_dataset("positions", data=np.asarray(snap.atoms.positions, float)).attrs["units"] = "Å"
        g.create_dataset("cell", data=np.asarray(snap.atoms.cell[:], float)).attrs["units"] = "Å"
        g.create_dataset("numbers", data=np.asarray(snap.atoms.numbers, int)).attrs["units"] = \
            "dimensionless"
        g.create_dataset("pbc", data=np.asarray(snap.atoms.pbc, bool))
        f.create_dataset("grid_shape", data=np.asarray(snap.grid_shape, int))
        for name in _ARRAYS:
            val = getattr(snap, name)
            if val is None:
                continue
            arr = np.asarray(val)
            big = arr.size > 65536
            ds = f.create_dataset(name, data=arr, compression="lzf" if big else None)
            ds.attrs["units"] = units[name]
        for name in _SCALARS:
            ds = f.create_dataset(name, data=float(getattr(snap, name)))
            ds.attrs["units"] = units[name]
        f.attrs["meta"] = json.dumps(snap.meta, default=_json_default)

    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def load_snapshot(path: str | os.PathLike, *, with_ldos: bool = True) -> Snapshot:
    """Read a snapshot written by :func:`save_snapshot`.

    ``with_ldos=False`` skips the (large) LDOS array.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such snapshot file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not an HDF5 file ({exc})") from None
    with f:
        if f.attrs.get("format") != "matterflow.electrons.snapshot":
            raise InputError(f"{path}: not a matterflow electrons snapshot (attribute 'format' is "
                             f"{f.attrs.get('format')!r})")
        try:
            atoms = Atoms(numbers=f["atoms/numbers"][()], positions=f["atoms/positions"][()],
                          cell=f["atoms/cell"][()], pbc=f["atoms/pbc"][()])
            values: dict[str, Any] = {n: (f[n][()] if n in f else None) for n in _ARRAYS}
            if not with_ldos:
                values["ldos"] = None
            for n in _SCALARS:
                values[n] = float(f[n][()])
            shape = tuple(int(s) for s in f["grid_shape"][()])
            meta = json.loads(f.attrs.get("meta", "{}"))
        except KeyError as exc:
            raise InputError(f"{path}: missing field {exc}") from None
    return check_snapshot(Snapshot(atoms=atoms, grid_shape=shape, meta=meta, **values),
                          where=str(path))
