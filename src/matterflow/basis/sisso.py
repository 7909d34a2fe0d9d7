"""SISSO: sure-independence screening and sparsifying operator (Ouyang et al. 2018).

A clean implementation (no code from the GPL reference) in three steps:

1. **Feature space.** Starting from the primary features ``x_i``, rung 1
   adds unary functions (``x^2``, ``x^3``, ``sqrt(x)``, ``log(x)``, ``1/x``,
   ``exp(x)`` where defined on all rows) and binary combinations of two
   primaries (``a+b``, ``a-b``, ``a*b``, ``a/b``); rung 2 combines the
   ``n_rung2`` best-screened rung-1 features pairwise with the same binary
   operators. Non-finite, constant and duplicate columns are dropped.
2. **SIS.** For dimension ``d = 1..max_dim`` the ``n_sis`` features most
   correlated with the current residual (the target for ``d = 1``) join the
   candidate pool.
3. **l0.** Every ``d``-subset of the pool is fitted by least squares with an
   intercept (solved in batches through the Gram matrix) and the subset
   with the smallest squared error is the ``d``-dimensional descriptor.

An expression is a nested tuple (``("var", i)``, ``("sq", e)``,
``("mul", e1, e2)``, ...), so a fitted formula can be re-evaluated on new
rows and printed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from matterflow.core.errors import ComputeError, InputError, NotFittedError

from .baseline import BasisModel
from .data import BASELINE

__all__ = ["SissoRegressor", "SissoModel", "evaluate_expression", "format_expression",
           "SISSO_PRIMARY"]

Expr = tuple

_UNARY = {
    "sq": (lambda x: x * x, lambda s: f"({s})^2"),
    "cb": (lambda x: x * x * x, lambda s: f"({s})^3"),
    "sqrt": (np.sqrt, lambda s: f"sqrt({s})"),
    "log": (np.log, lambda s: f"log({s})"),
    "inv": (lambda x: 1.0 / x, lambda s: f"1/({s})"),
    "exp": (np.exp, lambda s: f"exp({s})"),
}
_BINARY = {
    "add": (np.add, "+"),
    "sub": (np.subtract, "-"),
    "mul": (np.multiply, "*"),
    "div": (np.divide, "/"),
}


def evaluate_expression(expr: Expr, X: np.ndarray) -> np.ndarray:
    """Values of ``expr`` on the rows of the primary-feature matrix ``X`` (n, p)."""
    op = expr[0]
    with np.errstate(all="ignore"):
        if op == "var":
            return X[:, expr[1]].astype(float)
        if op in _UNARY:
            return _UNARY[op][0](evaluate_expression(expr[1], X))
        if op in _BINARY:
            return _BINARY[op][0](evaluate_expression(expr[1], X),
                                  evaluate_expression(expr[2], X))
    raise ValueError(f"unknown operator {op!r}")


def format_expression(expr: Expr, names: list[str]) -> str:
    """Human-readable form of ``expr`` with the primary feature ``names``."""
    op = expr[0]
    if op == "var":
        return names[expr[1]]
    if op in _UNARY:
        return _UNARY[op][1](format_expression(expr[1], names))
    a, b = format_expression(expr[1], names), format_expression(expr[2], names)
    return f"({a} {_BINARY[op][1]} {b})"


def _unary_ok(op: str, x: np.ndarray) -> bool:
    if op in ("sqrt",):
        return bool(np.all(x >= 0))
    if op == "log":
        return bool(np.all(x > 0))
    if op == "inv":
        return bool(np.all(x != 0))
    if op == "exp":
        return bool(np.max(np.abs(x)) < 50)
    return True


class SissoRegressor:
    """SISSO on a plain matrix of primary features (scikit-learn style).

    Parameters
    ----------
    max_dim : int
        Largest descriptor dimension (number of terms), 1..4.
    n_sis : int
        Features added to the candidate pool by SIS at each dimension.
    max_rung : int
        1: unary and pairwise operators on the primaries; 2: also pairwise
        combinations of the best ``n_rung2`` rung-1 features.
    n_rung2 : int
        Rung-1 features (best correlated with the target) combined at rung 2.
    feature_names : list of str or None
        Names of the primary features (for printing).
    """

    def __init__(self, max_dim: int = 3, n_sis: int = 20, max_rung: int = 1, n_rung2: int = 30,
                 feature_names: list[str] | None = None):
        self.max_dim = max_dim
        self.n_sis = n_sis
        self.max_rung = max_rung
        self.n_rung2 = n_rung2
        self.feature_names = feature_names

    # ---------------------------------------------------------------- feature space
    def _feature_space(self, X: np.ndarray, y: np.ndarray) -> tuple[list[Expr], np.ndarray]:
        p = X.shape[1]
        exprs: list[Expr] = [("var", i) for i in range(p)]
        cols = [X[:, i].astype(float) for i in range(p)]
        for i in range(p):
            for op in _UNARY:
                if _unary_ok(op, X[:, i]):
                    exprs.append((op, ("var", i)))
                    cols.append(evaluate_expression(exprs[-1], X))
        for i, j in itertools.combinations(range(p), 2):
            for op in _BINARY:
                for a, b in ((i, j), (j, i)) if op in ("sub", "div") else ((i, j),):
                    if op == "sub" and a > b:  # a-b and b-a are the same feature up to sign
                        continue
                    exprs.append((op, ("var", a), ("var", b)))
                    cols.append(evaluate_expression(exprs[-1], X))
        F = np.column_stack(cols)
        exprs, F = self._clean(exprs, F)
        if self.max_rung >= 2:
            score = np.abs(self._standardize(F).T @ self._standardize(y[:, None]))[:, 0]
            top = np.argsort(-score)[: self.n_rung2]
            new_e, new_c = [], []
            for a, b in itertools.combinations(top, 2):
                for op in _BINARY:
                    for u, v in ((a, b), (b, a)) if op == "div" else ((a, b),):
                        new_e.append((op, exprs[u], exprs[v]))
                        with np.errstate(all="ignore"):
                            new_c.append(_BINARY[op][0](F[:, u], F[:, v]))
            if new_c:
                exprs, F = self._clean(exprs + new_e, np.column_stack([F, *new_c]))
        return exprs, F

    @staticmethod
    def _clean(exprs: list[Expr], F: np.ndarray) -> tuple[list[Expr], np.ndarray]:
        finite = np.all(np.isfinite(F), axis=0)
        std = np.where(finite, np.nanstd(np.where(np.isfinite(F), F, 0.0), axis=0), 0.0)
        scale = np.maximum(np.abs(np.where(np.isfinite(F), F, 0.0)).max(axis=0), 1e-300)
        ok = finite & (std > 1e-12 * scale)
        F = F[:, ok]
        exprs = [e for e, k in zip(exprs, ok, strict=True) if k]
        # duplicates (same values up to sign and scale): keep the first (the simplest)
        Z = SissoRegressor._standardize(F)
        Z = Z * np.sign(Z[0:1] + 1e-300)
        _, first = np.unique(np.round(Z, 8), axis=1, return_index=True)
        first = np.sort(first)
        return [exprs[i] for i in first], F[:, first]

    @staticmethod
    def _standardize(F: np.ndarray) -> np.ndarray:
        sd = F.std(axis=0)
        return (F - F.mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    # ---------------------------------------------------------------- fit / predict
    def fit(self, X: np.ndarray, y: np.ndarray) -> SissoRegressor:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float).ravel()
        if X.ndim != 2 or len(X) != len(y):
            raise InputError(f"SISSO: X must be (n, p) with n = len(y); got {X.shape}, {y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise InputError("SISSO: X and y must be finite")
        if not 1 <= self.max_dim <= 4:
            raise InputError(f"SISSO: max_dim must be 1..4; got {self.max_dim}")
        if len(y) <= self.max_dim + 1:
            raise InputError(f"SISSO: {len(y)} rows cannot fit {self.max_dim} terms")
        self.n_features_in_ = X.shape[1]
        names = list(self.feature_names or [f"x{i}" for i in range(X.shape[1])])
        exprs, F = self._feature_space(X, y)
        self.n_candidates_ = F.shape[1]
        Z = self._standardize(F)
        yc = y - y.mean()
        pool: list[int] = []
        residual = yc
        self.models_ = []
        for d in range(1, self.max_dim + 1):
            corr = np.abs(Z.T @ (residual / max(np.linalg.norm(residual), 1e-300)))
            corr[pool] = -1
            pool.extend(int(i) for i in np.argsort(-corr)[: self.n_sis])
            best = self._l0(F, y, pool, d)
            combo, coef, intercept, _ = best
            residual = y - (F[:, combo] @ coef + intercept)
            self.models_.append({"features": [exprs[i] for i in combo], "coef": coef,
                                 "intercept": intercept,
                                 "rmse": float(np.sqrt(np.mean(residual ** 2)))})
            residual = residual - residual.mean()
        self.names_ = names
        chosen = self.models_[-1]
        self.descriptors_ = chosen["features"]
        self.coef_ = chosen["coef"]
        self.intercept_ = chosen["intercept"]
        return self

    @staticmethod
    def _l0(F: np.ndarray, y: np.ndarray, pool: list[int], d: int
            ) -> tuple[list[int], np.ndarray, float, float]:
        P = F[:, pool]
        mu = P.mean(axis=0)
        Pc = P - mu
        yc = y - y.mean()
        G = Pc.T @ Pc
        g = Pc.T @ yc
        yy = float(yc @ yc)
        best = (None, np.inf)
        combos = np.array(list(itertools.combinations(range(len(pool)), d)), dtype=int)
        for start in range(0, len(combos), 20000):
            c = combos[start:start + 20000]
            Gs = G[c[:, :, None], c[:, None, :]]
            gs = g[c]
            # tiny ridge keeps nearly collinear subsets solvable; they then lose on SSE
            Gs = Gs + 1e-12 * np.trace(Gs, axis1=1, axis2=2)[:, None, None] * np.eye(d)
            try:
                w = np.linalg.solve(Gs, gs[..., None])[..., 0]
            except np.linalg.LinAlgError:
                continue
            sse = yy - np.einsum("ij,ij->i", gs, w)
            k = int(np.nanargmin(sse))
            if sse[k] < best[1]:
                best = ((c[k], w[k]), float(sse[k]))
        if best[0] is None:
            raise ComputeError(f"SISSO: no solvable {d}-term descriptor in the pool")
        (c, w), sse = best
        combo = [pool[i] for i in c]
        intercept = float(y.mean() - mu[c] @ w)
        return combo, w, intercept, max(sse, 0.0)

    def predict(self, X: np.ndarray, dim: int | None = None) -> np.ndarray:
        """Prediction of the ``dim``-term model (default the largest), shape (n,)."""
        if not hasattr(self, "models_"):
            raise NotFittedError("SISSO: call fit before predict")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InputError(f"SISSO: X must have {self.n_features_in_} columns; got {X.shape}")
        m = self.models_[(dim or len(self.models_)) - 1]
        out = np.full(len(X), m["intercept"])
        for e, c in zip(m["features"], m["coef"], strict=True):
            out += c * evaluate_expression(e, X)
        return out

    def formula(self, dim: int | None = None, target: str = "y") -> str:
        """The fitted ``dim``-term formula with its coefficients."""
        if not hasattr(self, "models_"):
            raise NotFittedError("SISSO: call fit first")
        m = self.models_[(dim or len(self.models_)) - 1]
        terms = [f"{m['intercept']:+.4g}"]
        for e, c in zip(m["features"], m["coef"], strict=True):
            terms.append(f"{c:+.4g} * {format_expression(e, self.names_)}")
        return f"{target} = " + " ".join(terms)


SISSO_PRIMARY = ["precision_level", "rgkmax", "A_energy_error", "B_energy_error",
                 "A_fraction", "B_fraction", "formation_over_baseline", "formation_per_atom",
                 "A_atom_num", "B_atom_num"]


class SissoModel(BasisModel):
    """SISSO formula for the ratio of the error to the elemental baseline.

    The formula learns ``r = y / baseline`` from the primary features
    ``primary`` (a subset of the table's columns) and predicts
    ``y = baseline * r(x)``. Its 90 % interval is split-conformal on the
    relative residual ``|r - r_hat|`` of the training rows.

    Parameters
    ----------
    primary : list of str
        Primary feature columns.
    max_dim, n_sis, max_rung, n_rung2 : see :class:`SissoRegressor`.
    """

    name = "sisso"

    def __init__(self, primary: list[str] | None = None, max_dim: int = 3, n_sis: int = 20,
                 max_rung: int = 1, n_rung2: int = 30):
        self.primary = primary
        self.max_dim = max_dim
        self.n_sis = n_sis
        self.max_rung = max_rung
        self.n_rung2 = n_rung2

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> SissoModel:
        X, y = self._check_fit(X, y)
        primary = list(self.primary or [c for c in SISSO_PRIMARY if c in X.columns])
        missing = [c for c in primary if c not in X.columns]
        if missing:
            raise InputError(f"sisso.fit: primary feature(s) {', '.join(missing)} not in the "
                             f"table; available: {', '.join(X.columns)}")
        b = X[BASELINE].to_numpy(dtype=float)
        keep = b != 0
        r = y[keep] / b[keep]
        self.primary_ = primary
        self.sisso_ = SissoRegressor(self.max_dim, self.n_sis, self.max_rung, self.n_rung2,
                                     feature_names=primary)
        P = X[primary].to_numpy(dtype=float)[keep]
        self.sisso_.fit(P, r)
        self.abs_residuals_ = np.sort(np.abs(r - self.sisso_.predict(P)))
        self.feature_names_in_ = list(X.columns)
        return self

    def _ratio(self, X: pd.DataFrame) -> np.ndarray:
        X = self._check_predict(X)
        return self.sisso_.predict(X[self.primary_].to_numpy(dtype=float))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        r = self._ratio(X)
        return X[BASELINE].to_numpy(dtype=float) * r

    def predict_interval(self, X: pd.DataFrame, coverage: float = 0.9
                         ) -> tuple[np.ndarray, np.ndarray]:
        from .qrf import conformal_quantile

        r = self._ratio(X)
        q = conformal_quantile(self.abs_residuals_, coverage)
        b = X[BASELINE].to_numpy(dtype=float)
        a, c = b * (r - q), b * (r + q)
        return np.minimum(a, c), np.maximum(a, c)

    def formula(self) -> str:
        """The fitted formula, ``error = baseline * (...)``."""
        if not hasattr(self, "sisso_"):
            raise NotFittedError("sisso: call fit first")
        return self.sisso_.formula(target=f"{BASELINE} ratio r").replace(
            f"{BASELINE} ratio r = ", f"binary_energy_error = {BASELINE} * [") + " ]"
