"""ESPEI's likelihood of all data types: ours (vectorised, `engine="fast-espei"`) vs ESPEI's own.

Model: the ESPEI-generated Cu-Mg TDB (`calphad fit` on the bundled datasets), all 15 fitted
parameters free. Data: every bundled Cu-Mg dataset (ZPF tie-lines, activities, formation
and mixing enthalpies), the same for both. Parameters: the fitted values and `--points - 1`
vectors with 5 % relative noise. Prints one JSON line: both log-likelihoods at each point,
their largest difference, and seconds per evaluation of each (the same function, so the
ratio compares equal work).

    python benchmarks/calphad_likelihood_all.py [--points 3]
"""
import argparse
import json
import time
import warnings

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from pycalphad import Database

    from matterflow.calphad.datasets import bundled_system, load_datasets
    from matterflow.calphad.espeilike import AllDataLikelihood
    from matterflow.calphad.likelihood import EspeiLikelihood
    from matterflow.calphad.sampling import all_parameters
    from matterflow.calphad.tasks import fit

    tdb = fit().tdb
    ds = load_datasets(bundled_system())
    dbf = Database(tdb)
    names = all_parameters(dbf)
    t0 = time.perf_counter()
    ours = AllDataLikelihood(dbf, ds, names)
    x0 = ours.model.default_parameters
    ours(x0)  # warm-up: compiles, splits the energies into E0 + F p
    setup_ours = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    points = [x0] + [x0 * (1 + 0.05 * rng.normal(size=x0.size)) for _ in range(args.points - 1)]
    t0 = time.perf_counter()
    v_ours = [ours(p) for p in points]
    t_ours = (time.perf_counter() - t0) / len(points)

    t0 = time.perf_counter()
    esp = EspeiLikelihood(Database(tdb), ds, names)
    setup_espei = time.perf_counter() - t0
    t0 = time.perf_counter()
    v_esp = [esp(p) for p in points]
    t_esp = (time.perf_counter() - t0) / len(points)
    diff = np.abs(np.array(v_ours) - np.array(v_esp))
    print(json.dumps({
        "benchmark": "calphad_likelihood_all", "system": "Cu-Mg", "n_parameters": len(names),
        "n_residuals": ours.n_residuals(),
        "data_types": sorted({"ZPF", "ACR"} | {d["prop"] for d in ours.thermo}),
        "loglike_ours": [round(v, 3) for v in v_ours],
        "loglike_espei": [round(float(v), 3) for v in v_esp],
        "max_abs_difference": round(float(diff.max()), 3),
        "max_relative_difference": float((diff / np.abs(v_esp)).max()),
        "seconds_per_eval_ours": round(t_ours, 4), "seconds_per_eval_espei": round(t_esp, 3),
        "speedup": round(t_esp / t_ours, 1),
        "setup_seconds_ours": round(setup_ours, 2), "setup_seconds_espei": round(setup_espei, 2),
    }))


if __name__ == "__main__":
    main()
