"""LDOS -> DOS, Fermi level, density, band and total energy: time per grid point.

Ours (:func:`matterflow.electrons.observables.observables_from_ldos`: one weight vector per
quantity, the density as one BLAS matrix-vector product) against a straightforward NumPy
baseline in the same run (Fermi function on the energy grid, ``np.trapezoid`` of
``ldos * f`` over energies per grid point, as most LDOS post-processing does), on the
same LDOS. Prints one JSON line.

    .venv/bin/python benchmarks/electrons_observables.py [--grid 32] [--energies 311]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from ase.build import bulk
from scipy.optimize import brentq

from matterflow.electrons import observables as ob


def baseline(ldos, egrid, atoms, temperature_k, n_electrons):
    """Plain NumPy: trapezoid rule with the Fermi function sampled on the energy grid."""
    kt = ob.KB_EV * temperature_k
    dv = atoms.get_volume() / np.prod(ldos.shape[:3])
    dos = ldos.sum(axis=(0, 1, 2)) * dv

    def count(mu):
        return np.trapezoid(dos / (np.exp((egrid - mu) / kt) + 1), egrid) - n_electrons

    mu = brentq(count, egrid[0], egrid[-1], xtol=1e-10)
    f = 1 / (np.exp((egrid - mu) / kt) + 1)
    density = np.trapezoid(ldos * f, egrid, axis=-1)
    band = np.trapezoid(egrid * f * dos, egrid)
    e_h = ob.hartree_energy(density, atoms)
    e_xc, vxc_n = ob.xc_energy(density, atoms)
    return density, band - e_h + e_xc - vxc_n + ob.ewald_energy(atoms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=32, help="grid points per direction")
    ap.add_argument("--energies", type=int, default=311, help="LDOS energies")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--snapshot", default=None, help="also compare both routes with the DFT "
                    "free energy of this snapshot file (from `matterflow electrons dft`)")
    args = ap.parse_args()
    accuracy = _accuracy(args.snapshot) if args.snapshot else {}
    rng = np.random.default_rng(0)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)  # 32 atoms, 96 electrons
    n = args.grid
    egrid = np.linspace(-4.5, 11.0, args.energies)
    # a smooth, positive LDOS: free-electron-like sqrt(E) DOS times spatial modulation
    shape_e = np.sqrt(np.clip(egrid + 4.0, 0, None))
    space = 1 + 0.3 * rng.random((n, n, n))
    ldos = space[..., None] * shape_e[None, None, None, :]
    dv = atoms.get_volume() / n**3
    ldos *= 96 * 1.6 / (ldos.sum() * dv * (egrid[1] - egrid[0]))  # ~96 electrons below ~7 eV
    t = 298.0

    def run_ours():
        return ob.observables_from_ldos(ldos, egrid, atoms, temperature_k=t, ldos_smearing_ev=0.05,
                                        n_electrons=96.0)

    def run_base():
        return baseline(ldos, egrid, atoms, t, 96.0)

    run_ours(), run_base()  # warm up
    t_ours = min(_timed(run_ours) for _ in range(args.repeats))
    t_base = min(_timed(run_base) for _ in range(args.repeats))
    # the density alone (the per-point part), which dominates at scale
    w = ob.occupation_weights(egrid, 7.0, t, ldos_smearing_ev=0.05)
    flat = ldos.reshape(-1, len(egrid))
    t_dens = min(_timed(lambda: flat @ w) for _ in range(args.repeats))
    f = 1 / (np.exp((egrid - 7.0) / (ob.KB_EV * t)) + 1)
    t_dens_base = min(_timed(lambda: np.trapezoid(flat * f, egrid, axis=-1))
                      for _ in range(args.repeats))
    npts = n**3
    print(json.dumps({
        "benchmark": "electrons_observables", "grid_points": npts, "energies": len(egrid),
        "atoms": len(atoms),
        "ours_us_per_point": 1e6 * t_ours / npts, "baseline_us_per_point": 1e6 * t_base / npts,
        "speedup_vs_numpy_trapezoid": t_base / t_ours,
        "density_only_ours_ns_per_point": 1e9 * t_dens / npts,
        "density_only_baseline_ns_per_point": 1e9 * t_dens_base / npts,
        "density_only_speedup": t_dens_base / t_dens, **accuracy,
    }))


def _accuracy(path: str) -> dict:
    """Total-energy error (meV/atom) of ours and of the baseline on a DFT snapshot's own LDOS."""
    from matterflow.electrons.snapshot import load_snapshot

    s = load_snapshot(path)
    n_el = s.n_electrons or float(ob.valence_charges(s.atoms).sum())
    ours = ob.observables_from_ldos(s.ldos, s.energy_grid_ev, s.atoms,
                                    temperature_k=s.electronic_temperature_k,
                                    ldos_smearing_ev=s.ldos_smearing_ev, n_electrons=n_el)
    _, base_total = baseline(s.ldos, s.energy_grid_ev, s.atoms, s.electronic_temperature_k, n_el)
    # the baseline has no entropy term: compare it with the internal energy E = F + TS
    e_int = s.meta.get("internal_energy_ev", s.total_energy_ev)
    return {"snapshot": path, "snapshot_atoms": s.n_atoms,
            "ours_total_energy_error_mev_per_atom":
                (ours.total_energy_ev - s.total_energy_ev) * 1000 / s.n_atoms,
            "baseline_internal_energy_error_mev_per_atom":
                (base_total - e_int) * 1000 / s.n_atoms}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
