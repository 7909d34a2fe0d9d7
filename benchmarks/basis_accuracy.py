"""Accuracy table of every basis-error model in one run, with fit and predict times.

Grouped 5-fold CV by material on the shipped exciting data (780 rows below the
reference precision, 63 materials), same folds and seed for every model. The
peer measured in the same run is a plain scikit-learn RandomForestRegressor on
the raw target with the same features and folds (no ratio target, no quantiles,
no calibration): its sMAPE and fit time give the ratios.

Prints ONE JSON line. Usage: ``python benchmarks/basis_accuracy.py [--trees 300] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from sklearn.ensemble import RandomForestRegressor

    from matterflow.basis.data import grouped_folds, load_csv
    from matterflow.basis.evaluate import cross_validate, smape

    data = load_csv()
    res = cross_validate(data, n_splits=5, seed=args.seed, n_estimators=args.trees)
    table = {m: {k: round(v, 4) for k, v in met.items()} for m, met in res.metrics().items()}

    d = data.nonreference()
    X, y = d.X, d.y
    pred = np.zeros_like(y)
    t_fit = t_pred = 0.0
    for tr, te in grouped_folds(d.groups, 5, args.seed):
        rf = RandomForestRegressor(n_estimators=args.trees, max_features=0.33,
                                   min_samples_leaf=3, random_state=args.seed)
        t0 = time.perf_counter()
        rf.fit(X[tr], y[tr])
        t1 = time.perf_counter()
        pred[te] = rf.predict(X[te])
        t_pred += time.perf_counter() - t1
        t_fit += t1 - t0
    peer = {"smape_pct": round(smape(y, pred), 4), "fit_s": round(t_fit, 4),
            "predict_s": round(t_pred, 4)}
    q = table["qrf_conformal"]
    print(json.dumps({
        "benchmark": "basis_accuracy",
        "cv": "grouped 5-fold by material", "rows": int(len(y)),
        "materials": int(len(np.unique(d.groups))), "seed": args.seed, "trees": args.trees,
        "models": table,
        "sklearn_random_forest": peer,
        "qrf_smape_over_baseline": round(q["smape_pct"] / table["baseline"]["smape_pct"], 4),
        "qrf_smape_over_sklearn_rf": round(q["smape_pct"] / peer["smape_pct"], 4),
        "conformal_fit_time_over_sklearn_rf": round(q["fit_s"] / peer["fit_s"], 3),
        "sisso_formula": res.sisso_full_formula,
    }))


if __name__ == "__main__":
    main()
