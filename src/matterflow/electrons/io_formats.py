"""Readers for data made elsewhere: MALA snapshots (``.npy`` + DFT output) and Gaussian cube files.

MALA stores one snapshot as NumPy arrays of shape (nx, ny, nz, n_features):
the LDOS (``Al_ldos_0.npy``, n_features = number of energies) and the descriptors
(``Al_bispectrum_0.npy``, optionally with the grid coordinates x, y, z as the
first three features), with the DFT output (e.g. Quantum ESPRESSO ``pw.x``
output, readable by ASE) beside them. The energy grid is not in the files; it
is given by MALA's ``ldos_gridoffset_ev``, ``ldos_gridspacing_ev`` and the array size.

Gaussian cube files hold one scalar field on a grid of an atomic structure
(Bohr units); :func:`read_cube` returns the field, the atoms and the grid.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms

from matterflow.core.errors import InputError
from matterflow.electrons.snapshot import Snapshot, check_snapshot
from matterflow.electrons.structures import wrap_atoms

__all__ = ["load_mala", "load_mala_descriptors", "read_cube", "write_cube", "read_ldos_cubes",
           "LDOS_UNITS"]

BOHR_A = 0.52917721092
RYDBERG_EV = 13.605693122994

LDOS_UNITS = {"1/(eV*A^3)": 1.0, "1/(eV*Bohr^3)": 1.0 / BOHR_A**3,
              "1/(Ry*Bohr^3)": 1.0 / (RYDBERG_EV * BOHR_A**3)}
"""Factors converting an LDOS to states/(eV·Å³)."""


def _load_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a NumPy .npy array ({exc})") from None
    if arr.ndim != 4:
        raise InputError(f"{path}: {what} must have shape (nx, ny, nz, n_features); got {arr.shape}")
    return arr


def load_mala_descriptors(path: str | os.PathLike, *, contains_xyz: bool = False,
                          grid_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """MALA descriptors (nx, ny, nz, n_features); ``contains_xyz`` drops the 3 coordinate columns."""
    arr = np.asarray(_load_npy(path, "descriptor"), dtype=float)
    if contains_xyz:
        if arr.shape[-1] <= 3:
            raise InputError(f"{path}: contains_xyz but only {arr.shape[-1]} features")
        arr = arr[..., 3:]
    if grid_shape is not None and arr.shape[:3] != tuple(grid_shape):
        raise InputError(f"{path}: descriptor grid {arr.shape[:3]} does not match the LDOS grid "
                         f"{tuple(grid_shape)}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: descriptors contain NaN or inf")
    return arr


def load_mala(ldos_path: str | os.PathLike, dft_output: str | os.PathLike | Atoms, *,
              energy_offset_ev: float, energy_spacing_ev: float,
              electronic_temperature_k: float, ldos_smearing_ev: float | None = None,
              ldos_units: Literal["1/(eV*A^3)", "1/(eV*Bohr^3)", "1/(Ry*Bohr^3)"] = "1/(eV*A^3)",
              dft_format: str | None = None, n_electrons: float | None = None) -> Snapshot:
    """A :class:`Snapshot` from a MALA LDOS ``.npy`` file and the DFT output beside it.

    Parameters
    ----------
    ldos_path : path
        ``.npy`` array (nx, ny, nz, ne).
    dft_output : path or ase.Atoms
        DFT output readable by ``ase.io.read`` (e.g. QE ``pw.x`` output; total energy and
        Fermi level are taken from it when present), or the atoms.
    energy_offset_ev, energy_spacing_ev : float
        MALA's ``ldos_gridoffset_ev`` and ``ldos_gridspacing_ev``.
    electronic_temperature_k : float
        Electronic temperature (K) of the DFT calculation.
    ldos_smearing_ev : float or None
        Gaussian width of the LDOS (default: the energy spacing, MALA's usual choice).
    ldos_units : str
        Units of the array; converted to states/(eV·Å³).
    """
    ldos = _load_npy(ldos_path, "LDOS")
    if ldos_units not in LDOS_UNITS:
        raise InputError(f"ldos_units: accepted {sorted(LDOS_UNITS)}; got {ldos_units!r}")
    if energy_spacing_ev <= 0:
        raise InputError(f"energy_spacing_ev must be > 0; got {energy_spacing_ev}")
    fermi = total = np.nan
    if isinstance(dft_output, Atoms):
        atoms = dft_output
    else:
        from ase.io import read

        p = Path(dft_output)
        if not p.exists():
            raise InputError(f"{p}: DFT output file not found")
        try:
            atoms = read(p, format=dft_format)
        except Exception as exc:  # ASE raises many types on unknown formats
            raise InputError(f"{p}: ASE cannot read this DFT output ({type(exc).__name__}: "
                             f"{exc}); give dft_format or the atoms") from None
        calc = atoms.calc
        if calc is not None:
            try:
                total = float(calc.get_potential_energy())
            except Exception:  # not every output has an energy
                total = np.nan
            try:
                fermi = float(calc.get_fermi_level())
            except Exception:
                fermi = np.nan
    atoms = wrap_atoms(atoms)
    arr = np.asarray(ldos, dtype=float) * LDOS_UNITS[ldos_units]
    ne = arr.shape[-1]
    energies = energy_offset_ev + energy_spacing_ev * np.arange(ne)
    meta = {"code": "MALA format", "source": str(ldos_path), "ldos_units_in_file": ldos_units}
    if n_electrons is not None:
        meta["n_electrons"] = float(n_electrons)
    snap = Snapshot(atoms=atoms, grid_shape=tuple(int(s) for s in arr.shape[:3]),
                    energy_grid_ev=energies, ldos=arr, density=None, eigenvalues_ev=None,
                    kweights=None, fermi_ev=fermi, electronic_temperature_k=float(
                        electronic_temperature_k), band_energy_ev=np.nan, total_energy_ev=total,
                    ldos_smearing_ev=float(ldos_smearing_ev if ldos_smearing_ev is not None
                                           else energy_spacing_ev), meta=meta)
    return check_snapshot(snap, where=str(ldos_path))


def read_cube(path: str | os.PathLike) -> tuple[np.ndarray, Atoms, dict]:
    """Read a Gaussian cube file.

    Returns
    -------
    data : (nx, ny, nz)
        The field as stored (a density in cube files is in electrons/Bohr³).
    atoms : ase.Atoms
        Structure (Å), periodic, cell = grid vectors times grid size.
    info : dict
        ``origin_a`` (3,), ``spacing_a`` (3, 3) grid step vectors (Å), ``grid_shape``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: cube file not found")
    try:
        lines = path.read_text().splitlines()
        natoms_line = lines[2].split()
        natoms = int(natoms_line[0])
        origin = np.array([float(v) for v in natoms_line[1:4]])
        shape, vecs = [], []
        for i in range(3):
            parts = lines[3 + i].split()
            shape.append(int(parts[0]))
            vecs.append([float(v) for v in parts[1:4]])
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a Gaussian cube file (header: {exc})") from None
    vecs = np.array(vecs)
    if any(s < 0 for s in shape):  # negative counts mean Å units in the cube convention
        shape = [abs(s) for s in shape]
        unit = 1.0
    else:
        unit = BOHR_A
    if natoms < 0:
        raise InputError(f"{path}: cube files with orbital index lines (negative natoms) are not "
                         "supported")
    try:
        numbers, pos = [], []
        for line in lines[6:6 + natoms]:
            parts = line.split()
            numbers.append(int(parts[0]))
            pos.append([float(v) for v in parts[2:5]])
        values = np.array(" ".join(lines[6 + natoms:]).split(), dtype=float)
    except (IndexError, ValueError) as exc:
        raise InputError(f"{path}: bad atom or data line ({exc})") from None
    n = int(np.prod(shape))
    if values.size != n:
        raise InputError(f"{path}: {values.size} data values; the grid {tuple(shape)} needs {n}")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: data contain NaN or inf")
    data = values.reshape(shape)
    spacing = vecs * unit
    atoms = Atoms(numbers=numbers, positions=(np.array(pos).reshape(-1, 3) - origin) * unit,
                  cell=spacing * np.array(shape)[:, None], pbc=True)
    info = {"origin_a": origin * unit, "spacing_a": spacing, "grid_shape": tuple(shape)}
    return data, atoms, info


def write_cube(path: str | os.PathLike, data: np.ndarray, atoms: Atoms,
               comment: str = "matterflow") -> Path:
    """Write a periodic field (nx, ny, nz) on the cell of ``atoms`` as a cube file (Bohr units)."""
    data = np.asarray(data, dtype=float)
    if data.ndim != 3:
        raise InputError(f"data: a cube file holds a 3-d grid; got shape {data.shape}")
    path = Path(path)
    cell = np.asarray(atoms.cell[:]) / BOHR_A
    lines = [comment, "grid point (i,j,k) at fractional (i/nx, j/ny, k/nz)",
             f"{len(atoms):5d} {0.0:12.6f} {0.0:12.6f} {0.0:12.6f}"]
    for i in range(3):
        v = cell[i] / data.shape[i]
        lines.append(f"{data.shape[i]:5d} {v[0]:12.6f} {v[1]:12.6f} {v[2]:12.6f}")
    for z, p in zip(atoms.numbers, atoms.positions / BOHR_A, strict=True):
        lines.append(f"{z:5d} {float(z):12.6f} {p[0]:12.6f} {p[1]:12.6f} {p[2]:12.6f}")
    flat = data.ravel()
    body = [" ".join(f"{v:.8e}" for v in flat[i:i + 6]) for i in range(0, flat.size, 6)]
    path.write_text("\n".join(lines + body) + "\n")
    return path


def read_ldos_cubes(paths: list[str | os.PathLike], *,
                    units: Literal["1/(eV*A^3)", "1/(eV*Bohr^3)", "1/(Ry*Bohr^3)"] = "1/(Ry*Bohr^3)",
                    ) -> tuple[np.ndarray, Atoms]:
    """Stack one cube file per energy (Quantum ESPRESSO ``pp.x`` LDOS output, MALA's raw
    input) into an LDOS (nx, ny, nz, ne) in states/(eV·Å³); ``paths`` in energy order.

    Every file must have the same grid and atoms; the default units are ``pp.x``'s.
    """
    if not paths:
        raise InputError("paths: no cube files given")
    if units not in LDOS_UNITS:
        raise InputError(f"units: accepted {sorted(LDOS_UNITS)}; got {units!r}")
    first, atoms, info = read_cube(paths[0])
    out = np.empty((*first.shape, len(paths)))
    out[..., 0] = first
    for i, p in enumerate(paths[1:], start=1):
        data, other, _ = read_cube(p)
        if data.shape != first.shape:
            raise InputError(f"{p}: grid {data.shape} differs from {paths[0]}'s {first.shape}")
        if len(other) != len(atoms) or not np.allclose(other.positions, atoms.positions, atol=1e-4):
            raise InputError(f"{p}: atoms differ from those of {paths[0]}")
        out[..., i] = data
    return out * LDOS_UNITS[units], atoms
