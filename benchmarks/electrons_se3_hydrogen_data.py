"""Dense-hydrogen PySCF snapshots for the se3 study; one JSON line (seconds, SCF, energy check).

Each snapshot: ``hydrogen_box`` (4 molecular centres x (1,1,2) -> 8 H2 = 16 H), LDA Γ-point,
gth-szv / gth-pade, explicit mesh, Fermi-Dirac smearing; the total energy is recomputed
from the snapshot's own LDOS (``observables_from_ldos``, what `electrons observables` runs)
and compared with PySCF's.  Usage: python benchmarks/electrons_se3_hydrogen_data.py OUTDIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from matterflow.electrons.dft import run_dft
from matterflow.electrons.hydrogen import hydrogen_box
from matterflow.electrons.observables import observables_from_ldos
from matterflow.electrons.snapshot import save_snapshot

POINTS = [  # (phase, g/cm³, K, seed)
          ("solid", 0.6, 300, 0), ("solid", 0.6, 300, 1), ("solid", 0.6, 600, 2), ("solid", 0.6, 300, 3),
          ("solid", 0.8, 300, 4), ("liquid", 0.6, 600, 5)]

STEP, SIGMA = 0.05, 0.1   # eV


def main(out: Path, mesh: int = 16) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for phase, rho, t, seed in POINTS:
        atoms = hydrogen_box((1, 1, 2), density_g_cm3=rho, temperature_k=t, phase=phase, seed=seed)
        t0 = time.perf_counter()
        snap = run_dft(atoms, kpts=(1, 1, 1), mesh=(mesh, mesh, mesh), electronic_temperature_k=3000.0,
                       energy_grid_ev=np.arange(-25.0, 15.0, STEP), ldos_smearing_ev=SIGMA, conv_tol_ha=1e-8)
        sec = time.perf_counter() - t0
        path = save_snapshot(snap, out / f"h2_{phase}_{rho}_{t}_{seed}.h5")
        obs = observables_from_ldos(snap.ldos, snap.energy_grid_ev, snap.atoms,
                                    temperature_k=snap.electronic_temperature_k,
                                    ldos_smearing_ev=snap.ldos_smearing_ev)
        e_dft = float(snap.total_energy_ev)
        rows.append({"file": str(path), "seconds": round(sec, 1),
                     "total_from_ldos_minus_dft_mev_per_atom":
                         1000 * (float(obs.total_energy_ev) - e_dft) / len(atoms)})
    print(json.dumps({"figure": "hydrogen snapshots", "n_atoms": 16, "mesh": mesh, "rows": rows}))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("se3-data"))
