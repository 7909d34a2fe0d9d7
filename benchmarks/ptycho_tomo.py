"""Joint ptycho-tomography vs the sequential baseline on one simulated nanocube tilt series.

Prints one JSON line: joint NCC and seconds (with and without per-tilt shift alignment when
``--tilt-shift`` > 0), the sequential baseline's NCC and seconds, the seconds to NCC 0.9,
in the same run. Data: ``ptycho.simulate`` nanocube, 11 tilts over ±60°, ``--scan``² positions,
simulated on a ``--oversample``× finer grid with as many more slices (not the
reconstruction's forward model).

    OMP_NUM_THREADS=1 python benchmarks/ptycho_tomo.py --voxels 48 --oversample 2
    OMP_NUM_THREADS=1 python benchmarks/ptycho_tomo.py --voxels 32 --tilt-shift 0.5
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from matterflow.microscopy.ptycho import tomo as tm
from matterflow.microscopy.ptycho.tasks import simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxels", type=int, default=48)
    ap.add_argument("--window", type=int, default=24)
    ap.add_argument("--scan", type=int, default=8)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--oversample", type=int, default=2)
    ap.add_argument("--jitter-vox", type=float, default=0.0, help="atom_jitter_vox (2nd sample)")
    ap.add_argument("--tilt-shift", type=float, default=0.0, help="tilt_shift_a (Å)")
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    n = a.voxels
    sim = {"sample": "nanocube", "energy_ev": 2e5, "semiangle_mrad": 20, "defocus": 50,
           "scan": a.scan, "window": a.window, "voxels": n, "voxel_a": 0.3, "n_tilts": 11,
           "tilt_max_deg": 60, "n_slices": a.slices, "dose": 1e6, "seed": 0,
           "oversample": a.oversample, "atom_jitter_vox": a.jitter_vox,
           "tilt_shift_a": a.tilt_shift}
    t = time.perf_counter()
    d = simulate(params=sim)
    out: dict = {"benchmark": "ptycho_tomo", "voxels": n, "oversample": a.oversample,
                 "atom_jitter_vox": a.jitter_vox, "tilt_shift_a": a.tilt_shift,
                 "positions": a.scan ** 2, "tilts": 11, "iterations": a.iterations,
                 "simulate_s": round(time.perf_counter() - t, 1)}
    probe = torch.polar(torch.tensor(d.probe_amplitude), torch.tensor(d.probe_phase))
    truth = torch.tensor(d.truth)
    kw = {"shape": (n,) * 3, "sampling_a": 0.3, "energy_ev": 2e5, "truth": truth}
    for align in ([False, True] if a.tilt_shift > 0 else [False]):
        r = tm.joint_tomography(d.patterns, d.angles_deg, probe, d.positions_a,
                                n_slices=a.slices, iterations=a.iterations, align=align, **kw)
        key = "joint_aligned" if align else "joint"
        hit = np.nonzero(r.ncc_history >= 0.9)[0]
        out[f"{key}_ncc"] = round(float(r.ncc_history[-1]), 4)
        out[f"{key}_s"] = round(r.seconds, 1)
        out[f"{key}_s_to_ncc_0.9"] = round(float(r.times[hit[0]]), 1) if len(hit) else None
        if align:
            out["shift_err_max_a"] = round(float(np.abs(r.shifts_a - d.tilt_shifts_a).max()), 3)
            out["true_shift_max_a"] = round(float(np.abs(d.tilt_shifts_a).max()), 3)
    if not a.no_baseline:
        b = tm.sequential_tomography(d.patterns, d.angles_deg, probe, d.positions_a,
                                     semiangle_mrad=20, defocus=50, **kw)
        out["sequential_ncc"] = round(float(b.ncc_history[-1]), 4)
        out["sequential_s"] = round(b.seconds, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
