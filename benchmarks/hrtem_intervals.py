"""HRTEM matching: do the parameter intervals hold the truth? GP and Laplace coverage.

Cases: one structure (default SrTiO3 [001]) at optics drawn at random as in
``hrtem_matching.py`` (defocus −200…200 Å, Cs −30…30 µm, thickness 5–40 repeats; 300 kV,
σ = 30 Å known, 2e4 e/Å², 0.1 Å pixels, 384², random shift and ±3° rotation), matched by
``hrtem.match`` (BO, budget 100). For each case: whether the truth lies in the GP interval
and in the 95 % Laplace interval, and the error in Laplace standard deviations
(|Δ|/σ; about 1 on average for a calibrated σ, 95 % of the cases under 1.96). The baseline is the
nominal coverage (95 % for the Laplace interval). One JSON line; ``--cases``: one per case on
stderr.

    OMP_NUM_THREADS=1 python benchmarks/hrtem_intervals.py --seeds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from matterflow.microscopy.hrtem.tasks import MatchParams, match_image, simulate

STRUCTURES = ["SrTiO3", "BaTiO3", "Si110", "Au001", "MoS2", "graphite"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-offset", type=int, default=0)
    ap.add_argument("--structure", default="SrTiO3")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--cases", action="store_true")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        rng = np.random.default_rng(1000 * STRUCTURES.index(args.structure) + seed)
        truth = np.array([rng.uniform(-200, 200), rng.uniform(-30, 30), rng.integers(5, 41)],
                         dtype=float)
        sim = simulate(params={"structure": args.structure, "defocus": truth[0],
                               "cs_um": truth[1], "thickness_cells": int(truth[2]), "seed": seed})
        r = match_image(sim.image, sim.pixel_size, MatchParams(
            structure=args.structure, budget=args.budget, seed=seed + 7))[0]
        err = r.best_params - truth
        g, lap = r.gp_interval, r.laplace_interval
        row = {"seed": seed, "truth": truth.round(2).tolist(), "found": r.best_params.round(2).tolist(),
               "recovered": bool(abs(err[0]) <= 5 and abs(err[1]) <= 2 and err[2] == 0),
               "in_gp": bool(g[0, 0] <= truth[0] <= g[0, 1] and g[1, 0] <= truth[1] <= g[1, 1]),
               "in_laplace": bool(np.all((lap[:, 0] <= truth) & (truth <= lap[:, 1]))),
               "z": (np.abs(err[:2]) / r.laplace_std).round(2).tolist(),
               "z_scaled": (np.abs(err[:2]) / (r.laplace_std * np.sqrt(max(1.0, r.chi2_reduced)))
                            ).round(2).tolist(),
               "chi2_reduced": round(r.chi2_reduced, 2),
               "gp_width": (g[:, 1] - g[:, 0]).round(2).tolist(),
               "laplace_std": r.laplace_std.round(3).tolist(), "noise": round(r.noise_level, 4)}
        rows.append(row)
        if args.cases:
            print(json.dumps(row), file=sys.stderr, flush=True)
    rec = [r for r in rows if r["recovered"]]
    z = np.array([r["z"] for r in rec]) if rec else np.zeros((0, 2))
    zs = np.array([r["z_scaled"] for r in rec]) if rec else np.zeros((0, 2))
    out = {"figure": "hrtem match intervals: fraction of cases whose truth lies in the interval",
           "structure": args.structure, "cases": len(rows), "budget": args.budget,
           "seeds": [args.seed_offset, args.seed_offset + args.seeds - 1],
           "recovered": len(rec),
           "gp_coverage_all": sum(r["in_gp"] for r in rows) / len(rows),
           "gp_coverage_recovered": (sum(r["in_gp"] for r in rec) / len(rec)) if rec else None,
           "laplace_coverage_all": sum(r["in_laplace"] for r in rows) / len(rows),
           "laplace_coverage_recovered": (sum(r["in_laplace"] for r in rec) / len(rec))
           if rec else None,
           "rms_z_noise_only_recovered_defocus_cs": np.sqrt((z ** 2).mean(0)).round(2).tolist()
           if rec else None,
           "rms_z_scaled_recovered_defocus_cs": np.sqrt((zs ** 2).mean(0)).round(2).tolist()
           if rec else None,
           "median_chi2_reduced": float(np.median([r["chi2_reduced"] for r in rows])),
           "median_gp_width_A_um": np.median([r["gp_width"] for r in rows], 0).tolist(),
           "median_laplace_std_A_um": np.median([r["laplace_std"] for r in rows], 0).tolist(),
           "baseline": "nominal coverage 0.95 (Laplace); a calibrated std gives rms z = 1",
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
