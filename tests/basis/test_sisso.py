"""SISSO against known formulas and against a brute-force least-squares search."""

import itertools

import numpy as np
import pytest

from matterflow.basis.sisso import SissoRegressor, evaluate_expression, format_expression
from matterflow.core.errors import InputError, NotFittedError


def test_recovers_known_two_term_formula():
    rng = np.random.default_rng(0)
    X = rng.uniform(0.5, 3.0, size=(200, 6))
    y = 1.0 + 3.0 * X[:, 0] * X[:, 1] - 2.0 * X[:, 2] ** 2 + 0.01 * rng.normal(size=200)
    s = SissoRegressor(max_dim=2, n_sis=10, feature_names=[f"x{i}" for i in range(6)]).fit(X, y)
    names = {format_expression(e, s.names_) for e in s.descriptors_}
    assert names == {"(x0 * x1)", "(x2)^2"}
    coef = dict(zip((format_expression(e, s.names_) for e in s.descriptors_), s.coef_, strict=True))
    assert coef["(x0 * x1)"] == pytest.approx(3.0, abs=0.01)
    assert coef["(x2)^2"] == pytest.approx(-2.0, abs=0.01)
    assert s.intercept_ == pytest.approx(1.0, abs=0.05)


def test_recovers_ratio_and_log_terms():
    rng = np.random.default_rng(1)
    X = rng.uniform(1.0, 4.0, size=(150, 4))
    y = 0.5 + 2.0 * X[:, 0] / X[:, 3] + 1.5 * np.log(X[:, 1])
    s = SissoRegressor(max_dim=2, n_sis=15, max_rung=1).fit(X, y)
    assert s.models_[-1]["rmse"] < 1e-8
    assert {format_expression(e, s.names_) for e in s.descriptors_} == {"(x0 / x3)", "log(x1)"}
    np.testing.assert_allclose(sorted(s.coef_), [1.5, 2.0], rtol=1e-8)


def test_rung2_finds_a_nested_descriptor():
    rng = np.random.default_rng(1)
    X = rng.uniform(1.0, 4.0, size=(150, 4))
    y = 0.5 + 2.0 * X[:, 0] * X[:, 1] / X[:, 3]
    assert SissoRegressor(max_dim=1, max_rung=1).fit(X, y).models_[0]["rmse"] > 0.1
    s = SissoRegressor(max_dim=1, n_sis=10, max_rung=2, n_rung2=200).fit(X, y)
    assert s.models_[0]["rmse"] < 1e-8
    np.testing.assert_allclose(s.predict(X), y, rtol=1e-10)


def test_l0_equals_brute_force_lstsq_over_the_pool():
    rng = np.random.default_rng(2)
    F = rng.normal(size=(60, 12))
    y = F[:, 2] - 0.5 * F[:, 7] + 0.3 * rng.normal(size=60)
    pool = list(range(12))
    combo, coef, intercept, sse = SissoRegressor._l0(F, y, pool, 2)
    best = None
    for c in itertools.combinations(pool, 2):  # independent: numpy lstsq on every pair
        A = np.column_stack([np.ones(60), F[:, c]])
        w, *_ = np.linalg.lstsq(A, y, rcond=None)
        r = float(np.sum((A @ w - y) ** 2))
        if best is None or r < best[0]:
            best = (r, c, w)
    assert tuple(combo) == best[1]
    assert sse == pytest.approx(best[0], rel=1e-8)
    np.testing.assert_allclose(np.r_[intercept, coef], best[2], rtol=1e-8)


def test_expression_evaluation_and_errors():
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    e = ("div", ("sq", ("var", 0)), ("var", 1))
    np.testing.assert_allclose(evaluate_expression(e, X), [0.5, 2.25])
    s = SissoRegressor(max_dim=1)
    with pytest.raises(NotFittedError):
        s.predict(X)
    with pytest.raises(InputError, match="max_dim"):
        SissoRegressor(max_dim=7).fit(np.ones((10, 2)), np.arange(10.0))
    with pytest.raises(InputError, match="finite"):
        SissoRegressor().fit(np.full((10, 2), np.nan), np.arange(10.0))
