"""HRTEM matching: recovery of defocus, Cs and thickness from one noisy image, BO vs baselines.

Cases: structures and zone axes (SrTiO3 [001], BaTiO3 [001], Si [110], Au [001], 2H-MoS2
[001], graphite [001]), each at optics drawn at random (defocus −200…200 Å, Cs −30…30 µm,
thickness 5–40 repeats; 300 kV, focal spread 30 Å known, dose 2e4 e/Å² Poisson, 0.1 Å pixels,
384² image, random shift and ±3° rotation). The same loss and the same registration serve:

- ``bo``: the physics-informed BO of ``hrtem.match`` (budget 100 evaluations);
- ``random`` and ``grid``: the baselines at the same 100 evaluations;
- ``random1000``: random search with 10× the budget, for the evaluations to reach the
  tolerance.

Recovered: |Δdefocus| ≤ 5 Å, |ΔCs| ≤ 2 µm, thickness exact ("±1": within one repeat).
Prints one JSON line (the counts, evaluations to the tolerance, seconds); with ``--cases``
a line per case on stderr.

``--fit-focal-spread``: the issue's benchmark — the focal spread is drawn too (20–60 Å,
``--focal-spread-range``) and fitted by the matcher (not known to it; searched in the
matcher's default 10–80 Å), and the JSON gives the fraction of cases within the goal per
parameter (defocus, Cs, thickness exact, thickness ±1) and the focal spread's errors.

    OMP_NUM_THREADS=1 python benchmarks/hrtem_matching.py --seeds 2 --seed-offset 2
    OMP_NUM_THREADS=1 python benchmarks/hrtem_matching.py --structures SrTiO3 --seeds 10 \
        --seed-offset 100 --fit-focal-spread --size 256
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from matterflow.microscopy.hrtem.tasks import MatchParams, match_image, simulate

STRUCTURES = ["SrTiO3", "BaTiO3", "Si110", "Au001", "MoS2", "graphite"]
TOL = (5.0, 2.0)
CURVE = (25, 50, 100, 200, 300, 400, 500, 700, 1000, 1500, 2000, 3000, 5000, 10000, 20000)


def ok(p, truth, slack=0):
    """``p``: (defocus, Cs[, focal spread], thickness); thickness last."""
    return bool(abs(p[0] - truth[0]) <= TOL[0] and abs(p[1] - truth[1]) <= TOL[1]
                and abs(p[-1] - truth[2]) <= slack)


def evals_to_tol(trace, truth):
    for i, p in enumerate(trace.best_so_far()):
        if ok(p, truth):
            return i + 1
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2, help="cases per structure")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="first case seed (the matcher's budget split was tuned on seeds 0, 1)")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--structures", default=",".join(STRUCTURES))
    ap.add_argument("--cases", action="store_true", help="one line per case on stderr")
    ap.add_argument("--fit-focal-spread", action="store_true",
                    help="draw the focal spread too and fit it (the matcher does not know it)")
    ap.add_argument("--focal-spread-range", default="20,60", help="focal spread drawn, Å")
    ap.add_argument("--size", type=int, default=384, help="image side in pixels")
    ap.add_argument("--methods", default="scan,bo,random,grid,random1000",
                    help="comma-separated; NAME:BUDGET sets one method's budget (e.g. random:5000); "
                         "a name ending in 1000 runs 10x --budget")
    args = ap.parse_args()
    fs_lo, fs_hi = (float(v) for v in args.focal_spread_range.split(","))
    methods = {}
    for spec in args.methods.split(","):
        name_, _, b = spec.partition(":")
        methods[spec] = (int(b) if b else (10 if name_.endswith("1000") else 1) * args.budget)
    stats = {m: {"exact": 0, "within1": 0, "evals": [], "seconds": 0.0, "defocus": 0, "cs": 0,
                 "thick": 0, "thick1": 0, "fs_err": []} for m in methods}
    n = 0
    for name in args.structures.split(","):
        for seed in range(args.seed_offset, args.seed_offset + args.seeds):
            rng = np.random.default_rng(1000 * STRUCTURES.index(name) + seed)
            truth = (float(rng.uniform(-200, 200)), float(rng.uniform(-30, 30)),
                     int(rng.integers(5, 41)))
            fs = float(rng.uniform(fs_lo, fs_hi)) if args.fit_focal_spread else 30.0
            sim = simulate(params={"structure": name, "defocus": truth[0], "cs_um": truth[1],
                                   "thickness_cells": truth[2], "seed": seed, "size": args.size,
                                   "focal_spread": fs})
            n += 1
            row = {"structure": name, "truth": [round(v, 2) for v in (*truth, fs)]}
            for m, budget in methods.items():
                t0 = time.perf_counter()
                res, trace, _ = match_image(sim.image, sim.pixel_size, MatchParams(
                    structure=name, method=m.partition(":")[0].rstrip("0123456789"),
                    budget=budget, seed=seed + 7,
                    focal_spread=None if args.fit_focal_spread else fs))
                dt = time.perf_counter() - t0
                s = stats[m]
                s["seconds"] += dt
                s["exact"] += ok(res.best_params, truth)
                s["within1"] += ok(res.best_params, truth, slack=1)
                s["defocus"] += bool(abs(res.best_params[0] - truth[0]) <= TOL[0])
                s["cs"] += bool(abs(res.best_params[1] - truth[1]) <= TOL[1])
                s["thick"] += bool(res.best_params[2] == truth[2])
                s["thick1"] += bool(abs(res.best_params[2] - truth[2]) <= 1)
                s["fs_err"].append(float(res.focal_spread - fs))
                e = evals_to_tol(trace, truth)
                s["evals"].append(e)
                s.setdefault("budget", budget)
                row[m] = {"found": [*np.round(res.best_params, 2).tolist(),
                                    round(float(res.focal_spread), 1)],
                          "ok": ok(res.best_params, truth), "evals_to_tol": e, "s": round(dt, 1),
                          "n_evals": len(res.losses)}
            if args.cases:
                print(json.dumps(row), file=sys.stderr, flush=True)
    out = {"figure": "hrtem matching: cases recovered (|Δdefocus| ≤ 5 Å, |ΔCs| ≤ 2 µm, thickness "
                     "exact / ±1) from one noisy image", "cases": n,
           "structures": args.structures.split(","), "budget": args.budget,
           "seeds": [args.seed_offset, args.seed_offset + args.seeds - 1], "size": args.size,
           "focal_spread": (f"drawn {fs_lo}-{fs_hi} Å, fitted" if args.fit_focal_spread
                            else "30 Å, known")}
    for m, s in stats.items():
        reached = [e for e in s["evals"] if e is not None]
        fe = np.abs(s["fs_err"])
        out[m] = {"exact": s["exact"], "within1": s["within1"],
                  "fraction": {"defocus_5A": s["defocus"] / n, "cs_2um": s["cs"] / n,
                               "thickness_exact": s["thick"] / n,
                               "thickness_within1": s["thick1"] / n, "all_exact": s["exact"] / n,
                               "all_within1": s["within1"] / n},
                  "focal_spread_abs_err_median": round(float(np.median(fe)), 2),
                  "focal_spread_abs_err_max": round(float(fe.max()), 2),
                  "median_evals_to_tol_when_reached": float(np.median(reached)) if reached else None,
                  "reached": len(reached), "mean_seconds": round(s["seconds"] / n, 2),
                  "budget": s.get("budget"),
                  # the curve: fraction of cases whose best-so-far point is within the goal
                  # (defocus ±5 Å, Cs ±2 µm, thickness exact) after n evaluations
                  "curve": {str(k): sum(e is not None and e <= k for e in s["evals"]) / n
                            for k in CURVE if k <= (s.get("budget") or 0)}}
    # evaluations to the goal accuracy: the smallest budget at which the best-so-far point
    # is within the goal in >= 80 % of the cases (None: not reached within the budget)
    need = int(np.ceil(0.8 * n))
    for m, s in stats.items():
        reached = sorted(e for e in s["evals"] if e is not None)
        out[m]["evals_to_80pct"] = reached[need - 1] if len(reached) >= need else None
    out["baseline"] = ("random and grid search with the same loss and registration in the same "
                       "run (budgets as named)")
    ref = out.get(next(iter(methods)), {}).get("evals_to_80pct")
    if ref:
        out["evals_to_80pct_ratio_over_" + next(iter(methods))] = {
            m: (round(out[m]["evals_to_80pct"] / ref, 2) if out[m]["evals_to_80pct"] else
                f"> {round(out[m]['budget'] / ref, 2)} (not reached)") for m in methods}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
