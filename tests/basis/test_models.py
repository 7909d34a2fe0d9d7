"""Models: conformal coverage on synthetic held-out groups, the shared interface, bad input."""

import numpy as np
import pandas as pd
import pytest

from matterflow.basis.baseline import ElementalBaseline
from matterflow.basis.data import BASELINE, grouped_folds, load_csv
from matterflow.basis.qrf import ConformalQuantileForest, QuantileForest, conformal_quantile
from matterflow.basis.sisso import SissoModel
from matterflow.core.errors import InputError, NotFittedError


def _synthetic(n_groups=60, per_group=8, seed=0):
    """y = baseline * r with a log-normal, heteroscedastic ratio and a per-group effect."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    x1 = rng.uniform(0, 1, len(g))
    x2 = rng.uniform(0, 1, n_groups)[g]
    b = -np.exp(rng.uniform(-5, 2, len(g)))
    t = 0.3 * x1 - 0.2 * x2 + (0.05 + 0.3 * x1) * rng.normal(size=len(g)) \
        + 0.05 * rng.normal(size=n_groups)[g]
    y = b * np.exp(t)
    X = pd.DataFrame({"x1": x1, "x2": x2, BASELINE: b})
    return X, y, g.astype(str)


def test_conformal_quantile_is_the_finite_sample_order_statistic():
    s = np.arange(1, 20, dtype=float)  # n = 19: ceil(20 * 0.9) = 18th smallest
    assert conformal_quantile(s, 0.9) == 18.0
    assert conformal_quantile(s[:5], 0.9) == np.inf  # too few scores: infinite interval


def test_conformal_coverage_on_held_out_groups():
    # exchangeable groups: CQR coverage must be >= nominal (minus sampling noise)
    covered, n = 0, 0
    for seed in (0, 1):
        X, y, g = _synthetic(seed=seed)
        for tr, te in grouped_folds(g, 4, seed):
            m = ConformalQuantileForest(n_estimators=40, random_state=seed, coverage=0.9,
                                        n_calibration_folds=4)
            m.fit(X.iloc[tr], y[tr], groups=g[tr])
            lo, hi = m.predict_interval(X.iloc[te], 0.9)
            assert (lo <= hi).all()
            covered += int(np.sum((y[te] >= lo) & (y[te] <= hi)))
            n += len(te)
    assert covered / n >= 0.87
    assert covered / n <= 0.98  # and not trivially wide


def test_qrf_median_inside_interval_and_quantiles_ordered():
    X, y, g = _synthetic()
    m = QuantileForest(n_estimators=30).fit(X, y)
    p = m.predict(X)
    lo, hi = m.predict_interval(X, 0.8)
    assert ((lo <= p + 1e-12) & (p <= hi + 1e-12)).all()
    q = m.predict_quantiles(X, [0.1, 0.5, 0.9])
    assert (np.diff(q, axis=1) >= -1e-12).all()
    np.testing.assert_allclose(q[:, 1], p)


def test_interface_not_fitted_and_missing_feature():
    X, y, g = _synthetic(n_groups=10)
    for m in (ElementalBaseline(), QuantileForest(n_estimators=10), SissoModel(primary=["x1"])):
        with pytest.raises(NotFittedError):
            m.predict(X)
        m.fit(X, y) if not isinstance(m, ConformalQuantileForest) else None
        with pytest.raises(InputError, match="lacks feature column.*x2"):
            m.predict(X.drop(columns=["x2"]))
    with pytest.raises(InputError, match="groups"):
        ConformalQuantileForest(n_estimators=10).fit(X, y)
    with pytest.raises(InputError, match="DataFrame"):
        QuantileForest().fit(X.to_numpy(), y)


def test_baseline_model_is_the_column():
    d = load_csv().nonreference()
    X = d.frame[d.features]
    np.testing.assert_array_equal(ElementalBaseline().fit(X, d.y).predict(X),
                                  d.frame["stoich_error_pred"].to_numpy())
