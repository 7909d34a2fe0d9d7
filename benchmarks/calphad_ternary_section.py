"""Ternary isothermal sections: seconds per section, ours (convex hull) vs pycalphad's
``equilibrium`` on the same composition lattice, and the agreement of the phase assemblage.

Database: the Cr-Ti-V assessment of Ghosh (J. Phase Equilib. 23 (2002) 310), TDB by
T. Abe (NIMS CPDDB), shipped with pycalphad's tests (``crtiv_ghosh.tdb``); six phases
(LIQUID, BCC_A2, HCP_A3 and three Laves phases with two three-species sublattices).

Both sides are timed warm: our model compiled and numba warmed up once (build time
reported apart); pycalphad's models and phase records built once and compiled by a
one-point warm-up (:func:`matterflow.calphad.ternary.pycalphad_section`). At each
temperature the agreement is the fraction of lattice points with the same assemblage
(sorted phase names, a phase twice in a miscibility gap); where they disagree, the
difference of the molar Gibbs energies says who found the lower state.

Prints one JSON line.

    python benchmarks/calphad_ternary_section.py [--step 0.05] [--temperatures 800,1000,1200,1600,1900]
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
    ap.add_argument("--temperatures", default="800,1000,1200,1600,1900")
    ap.add_argument("--n-grid", type=int, default=60)
    ap.add_argument("--refine", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tdb", default=None, help="another ternary TDB (default: Cr-Ti-V)")
    ap.add_argument("--components", default="CR,TI,V")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from matterflow.calphad.ternary import (
        TernaryModel,
        agreement,
        crtiv_tdb,
        pycalphad_section,
        section_grid,
    )

    t0 = time.perf_counter()
    model = TernaryModel(args.tdb or crtiv_tdb(), args.components.split(","), n_grid=args.n_grid)
    build = time.perf_counter() - t0
    x = section_grid(args.step, args.margin)
    model.section(1000.0, x[:3], refine=0)  # numba compile
    rows = []
    for t in (float(v) for v in args.temperatures.split(",")):
        times = []
        for _ in range(args.repeats):
            t1 = time.perf_counter()
            s = model.section(t, x, refine=args.refine)
            times.append(time.perf_counter() - t1)
        ref, g_ref, ref_s = pycalphad_section(model.database, model.components, model.phases,
                                              t, x)
        bad = [i for i, (a, b) in enumerate(zip(s.labels, ref, strict=True)) if a != b]
        dg = s.gibbs_j_mol[bad] - g_ref[bad]
        rows.append({"temperature_k": t, "ours_s": round(min(times), 4),
                     "pycalphad_s": round(ref_s, 3), "speedup": round(ref_s / min(times), 1),
                     "agreement": round(agreement(s.labels, ref), 4),
                     "n_disagree": len(bad),
                     "disagree_ours_lower": int(np.sum(dg < -0.5)),
                     "disagree_pycalphad_lower": int(np.sum(dg > 0.5)),
                     "max_abs_dG_j_mol": round(float(np.max(np.abs(s.gibbs_j_mol - g_ref))), 2),
                     "assemblages": sorted(set(s.labels))})
    ours = float(np.mean([r["ours_s"] for r in rows]))
    pc = float(np.mean([r["pycalphad_s"] for r in rows]))
    system = "Cr-Ti-V (Ghosh 2002)" if args.tdb is None else args.tdb
    print(json.dumps({"benchmark": "calphad_ternary_section", "system": system,
                      "n_compositions": len(x), "step": args.step, "n_grid": args.n_grid,
                      "refine": args.refine, "ours_build_s": round(build, 2),
                      "ours_s_per_section": round(ours, 4),
                      "pycalphad_s_per_section": round(pc, 3),
                      "speedup": round(pc / ours, 1),
                      "agreement_mean": round(float(np.mean([r["agreement"] for r in rows])), 4),
                      "agreement_min": min(r["agreement"] for r in rows),
                      "per_temperature": rows}))


if __name__ == "__main__":
    main()
