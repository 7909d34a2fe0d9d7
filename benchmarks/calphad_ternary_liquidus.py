"""Ternary liquidus projection: ours (driving-force scan on the hull) vs a liquidus found with
pycalphad's ``equilibrium`` by bisection in T at the same compositions.

Default system: Cr-Ti-V (Ghosh 2002, ``crtiv_ghosh.tdb`` of pycalphad's tests). Ours is the
whole projection on the lattice (seconds per projection and per composition); pycalphad
bisects ``--check`` randomly chosen lattice points (bracket = ours +- 40 K, widened if
needed, to 0.5 K: "liquid alone" above, anything else below), warm (models and phase
records built once). Prints one JSON line: seconds per composition each way, the
liquidus differences (mean, max) and whether the primary phases agree.

    python benchmarks/calphad_ternary_liquidus.py [--step 0.05] [--check 8]
"""
import argparse
import json
import time
import warnings

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", type=float, default=0.05)
    ap.add_argument("--margin", type=float, default=0.01)
    ap.add_argument("--t-min", type=float, default=1400.0)
    ap.add_argument("--t-max", type=float, default=2300.0)
    ap.add_argument("--dt", type=float, default=20.0)
    ap.add_argument("--check", type=int, default=8)
    ap.add_argument("--tdb", default=None)
    ap.add_argument("--components", default="CR,TI,V")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from pycalphad import equilibrium
    from pycalphad import variables as v
    from pycalphad.codegen.phase_record_factory import PhaseRecordFactory
    from pycalphad.core.utils import instantiate_models

    from matterflow.calphad.ternary import TernaryModel, crtiv_tdb, section_grid

    comps = args.components.split(",")
    model = TernaryModel(args.tdb or crtiv_tdb(), comps)
    x = section_grid(args.step, args.margin)
    model.liquidus(x[:2], args.t_max - 2 * args.dt, args.t_max, args.dt)  # numba compile
    t0 = time.perf_counter()
    res = model.liquidus(x, args.t_min, args.t_max, args.dt)
    ours_s = time.perf_counter() - t0

    dbf, phases = model.database, list(model.phases)
    species = comps + ["VA"]
    models = instantiate_models(dbf, species, phases)
    conds0 = {v.T: 1500.0, v.P: 101325.0, v.N: 1.0, v.X(comps[1]): 0.3, v.X(comps[2]): 0.3}
    records = PhaseRecordFactory(dbf, species, set(conds0), models)

    def phases_at(t, xb, xc):
        eq = equilibrium(dbf, species, phases, {**conds0, v.T: t, v.X(comps[1]): xb,
                                                v.X(comps[2]): xc},
                         model=models, phase_records=records)
        return sorted(str(p) for p in np.asarray(eq.Phase.values).ravel() if str(p))

    phases_at(1500.0, 0.3, 0.3)  # warm-up
    liq = model.liquid
    rng = np.random.default_rng(args.seed)
    ok = np.flatnonzero(np.isfinite(res.liquidus_k))
    pick = rng.choice(ok, size=min(args.check, len(ok)), replace=False)
    diffs, same_primary, n_calls = [], [], 0
    t1 = time.perf_counter()
    for i in pick:
        xb, xc = x[i]
        lo, hi = res.liquidus_k[i] - 40.0, res.liquidus_k[i] + 40.0
        while phases_at(hi, xb, xc) != [liq]:
            hi += 40.0
            n_calls += 1
        while phases_at(lo, xb, xc) == [liq]:
            lo -= 40.0
            n_calls += 1
        below = phases_at(lo, xb, xc)
        n_calls += 2
        while hi - lo > 0.5:
            mid = 0.5 * (lo + hi)
            ph = phases_at(mid, xb, xc)
            n_calls += 1
            if ph == [liq]:
                hi = mid
            else:
                lo, below = mid, ph
        diffs.append(res.liquidus_k[i] - 0.5 * (lo + hi))
        solids = [p for p in below if p != liq]
        same_primary.append(solids == [res.primary_phase[i]])
    pc_s = time.perf_counter() - t1
    diffs = np.array(diffs)
    print(json.dumps({
        "benchmark": "calphad_ternary_liquidus",
        "system": "Cr-Ti-V (Ghosh 2002)" if args.tdb is None else args.tdb,
        "n_compositions": len(x), "scan_k": [args.t_min, args.t_max, args.dt],
        "ours_s_per_projection": round(ours_s, 2),
        "ours_s_per_composition": round(ours_s / len(x), 4),
        "pycalphad_bisection_s_per_composition": round(pc_s / len(pick), 3),
        "speedup_per_composition": round((pc_s / len(pick)) / (ours_s / len(x)), 1),
        "n_checked": len(pick), "pycalphad_calls": n_calls,
        "liquidus_diff_mean_k": round(float(np.mean(diffs)), 2),
        "liquidus_diff_max_abs_k": round(float(np.max(np.abs(diffs))), 2),
        "primary_phase_agreement": float(np.mean(same_primary)),
        "ours_range_k": [round(float(np.nanmin(res.liquidus_k)), 1),
                         round(float(np.nanmax(res.liquidus_k)), 1)],
        "primary_phases": sorted({p for p in res.primary_phase if p})}))


if __name__ == "__main__":
    main()
