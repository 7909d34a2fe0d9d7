"""Dense-hydrogen PySCF snapshots for the se3 study; one JSON line (seconds, grid count, energy check).

Each snapshot: ``hydrogen_box((2, 2, 1))`` (8 H2 = 16 H; hcp molecular solid with thermal
displacements and librations, or hard-sphere molecular liquid), LDA (PZ81) Γ-point,
gth-szv / gth-pade, mesh from a 0.2 Å spacing (finer spacing needed for the LDOS to hold
the cell's electrons: at 0.4 Å it holds +0.13 % and the total energy from it is off by
3-10 meV/atom), Fermi-Dirac smearing at 3000 K, LDOS broadened by 0.2 eV on a 0.1 eV grid.
The total energy is recomputed from the snapshot's own LDOS (``observables_from_ldos``,
what ``electrons observables`` runs) and compared with PySCF's.

Splits (``SPLIT`` in each file name): ``train`` — solid, 0.6/0.7 g/cm³, 300/600 K;
``interp`` — solid 0.65 g/cm³, 450 K; ``extrap`` — higher density (solid 0.85 g/cm³, 300 K),
higher temperature (solid 0.6 g/cm³, 1200 K) and the other phase (liquid 0.65 g/cm³).
Temperatures are the ionic ones (displacement and libration amplitudes); the electronic
temperature is 3000 K everywhere.  Usage: python benchmarks/electrons_se3_hydrogen_data.py OUTDIR
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
from matterflow.electrons.snapshot import load_snapshot, save_snapshot

POINTS = [  # (split, phase, g/cm³, ionic K, seed)
    ("train", "solid", 0.6, 300, 0), ("train", "solid", 0.6, 600, 1), ("train", "solid", 0.7, 300, 2),
    ("train", "solid", 0.7, 600, 3), ("train", "solid", 0.6, 300, 4), ("train", "solid", 0.7, 600, 5),
    ("interp", "solid", 0.65, 450, 10), ("interp", "solid", 0.65, 450, 11),
    ("extrap", "solid", 0.85, 300, 20), ("extrap", "solid", 0.6, 1200, 21),
    ("extrap", "liquid", 0.65, 600, 22),
]
SPACING_ANG, STEP, SIGMA, T_EL = 0.2, 0.1, 0.2, 3000.0   # Å, eV, eV, K


def snapshot_name(split: str, phase: str, rho: float, t: float, seed: int) -> str:
    return f"{split}_{phase}_{rho}_{t}_{seed}.h5"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, phase, rho, t, seed in POINTS:
        path = out / snapshot_name(split, phase, rho, t, seed)
        atoms = hydrogen_box((2, 2, 1), density_g_cm3=rho, temperature_k=t, phase=phase, seed=seed,
                             min_distance_ang=1.4)
        mesh = tuple(int(2 * np.ceil(length / SPACING_ANG / 2)) for length in atoms.cell.lengths())
        t0 = time.perf_counter()
        if path.is_file():   # cached from an earlier run
            snap = load_snapshot(path)
        else:
            snap = run_dft(atoms, kpts=(1, 1, 1), mesh=mesh, electronic_temperature_k=T_EL,
                           energy_grid_ev=np.arange(-18.0, 10.0, STEP), ldos_smearing_ev=SIGMA,
                           conv_tol_ha=1e-8)
            save_snapshot(snap, path)
        sec = float(snap.meta.get("total_seconds", time.perf_counter() - t0))
        obs = observables_from_ldos(snap.ldos, snap.energy_grid_ev, snap.atoms,
                                    temperature_k=snap.electronic_temperature_k,
                                    ldos_smearing_ev=snap.ldos_smearing_ev)
        n = len(atoms)
        rows.append({"file": path.name, "mesh": list(mesh), "seconds": round(sec, 1),
                     "n_electrons_on_grid": round(float(snap.meta["n_electrons_on_grid"]), 5),
                     "total_from_ldos_minus_dft_mev_per_atom":
                         round(1000 * (float(obs.total_energy_ev) - float(snap.total_energy_ev)) / n, 3),
                     "band_from_ldos_minus_dft_mev_per_atom":
                         round(1000 * (float(obs.band_energy_ev) - float(snap.band_energy_ev)) / n, 3)})
    worst = max(abs(r["total_from_ldos_minus_dft_mev_per_atom"]) for r in rows)
    print(json.dumps({"figure": "hydrogen snapshots, total energy from own LDOS vs PySCF",
                      "n_atoms": 16, "worst_abs_mev_per_atom": worst, "goal_mev_per_atom": 5.0,
                      "rows": rows}))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("se3-data"))
