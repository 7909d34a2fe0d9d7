"""Shared model interface and the additive elemental-error baseline.

Every model of this domain is scikit-learn style and works on a
:class:`pandas.DataFrame` of named feature columns (so a table without the
columns a model was trained on is caught by name):

- ``fit(X, y)`` validates, learns attributes ending in ``_`` and returns self;
- ``predict(X)`` -> predicted basis-set error in Hartree, shape (n,);
- ``predict_interval(X, coverage)`` -> (lower, upper), each shape (n,).

Targets are errors ``E_ref - E(p) <= 0`` that span four decades; the models
learn the *ratio* ``y / baseline`` to the additive elemental-error estimate
(Carbogno et al.), which is O(1), and multiply back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from matterflow.core.errors import InputError, NotFittedError

from .data import BASELINE

__all__ = ["BasisModel", "ElementalBaseline", "ratio_to_baseline", "RATIO_FLOOR"]

RATIO_FLOOR = 1e-3  # ratios y/baseline below this (sign flips from numerical noise) are clipped


def ratio_to_baseline(y: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """``y / baseline`` clipped to >= :data:`RATIO_FLOOR` (rows with a zero baseline give 1)."""
    y = np.asarray(y, dtype=float)
    b = np.asarray(baseline, dtype=float)
    safe = np.where(b != 0, b, 1.0)
    return np.where(b != 0, np.maximum(y / safe, RATIO_FLOOR), 1.0)


class BasisModel:
    """Common validation of the domain's regressors (not used directly)."""

    name = "model"

    def _check_fit(self, X: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        X = self._as_frame(X, "X")
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X):
            raise InputError(f"{self.name}.fit: X has {len(X)} rows but y has {len(y)}")
        if len(y) < 2:
            raise InputError(f"{self.name}.fit: at least 2 rows are needed; got {len(y)}")
        if not np.isfinite(y).all():
            i = int(np.flatnonzero(~np.isfinite(y))[0])
            raise InputError(f"{self.name}.fit: target row {i} is not finite ({y[i]})")
        if BASELINE not in X.columns:
            raise InputError(f"{self.name}.fit: feature column {BASELINE!r} (the elemental "
                             "baseline) is needed by every model")
        self.feature_names_in_ = list(X.columns)
        return X, y

    @staticmethod
    def _as_frame(X: pd.DataFrame, what: str) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise InputError(f"{what}: a pandas DataFrame with named feature columns is "
                             f"expected; got {type(X).__name__}")
        return X

    def _check_predict(self, X: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "feature_names_in_"):
            raise NotFittedError(f"{self.name}: call fit before predict")
        X = self._as_frame(X, "X")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise InputError(f"{self.name}.predict: the table lacks feature column(s) "
                             f"{', '.join(missing)} the model was trained on; expected "
                             f"{', '.join(self.feature_names_in_)}")
        X = X[self.feature_names_in_]
        values = X.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            r, c = (int(v[0]) for v in np.nonzero(~np.isfinite(values)))
            raise InputError(f"{self.name}.predict: column {self.feature_names_in_[c]!r}, "
                             f"row {r}: value is not finite")
        return X

    def predict_interval(self, X: pd.DataFrame, coverage: float = 0.9
                         ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _ratio_interval(baseline: np.ndarray, r_lo: np.ndarray, r_hi: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Interval in Hartree from an interval of the ratio (baseline <= 0 flips the ends)."""
    a, b = baseline * r_lo, baseline * r_hi
    return np.minimum(a, b), np.maximum(a, b)


class ElementalBaseline(BasisModel):
    """Additive elemental-error model: the binary's error is the stoichiometric sum of the
    elemental solids' errors at the same precision (column ``stoich_error_pred``).

    The point prediction needs no fit. ``fit`` only learns the empirical
    quantiles of the ratio ``y / baseline`` on the training rows, which give
    the interval ``baseline * [q_lo, q_hi]`` (a split-conformal-like interval).
    """

    name = "baseline"

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> ElementalBaseline:
        X, y = self._check_fit(X, y)
        b = X[BASELINE].to_numpy(dtype=float)
        keep = b != 0
        self.ratios_ = np.sort(ratio_to_baseline(y[keep], b[keep]))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        X = self._check_predict(X)
        return X[BASELINE].to_numpy(dtype=float).copy()

    def predict_interval(self, X: pd.DataFrame, coverage: float = 0.9
                         ) -> tuple[np.ndarray, np.ndarray]:
        X = self._check_predict(X)
        alpha = 1.0 - coverage
        n = len(self.ratios_)
        lo_q = max(np.floor(alpha / 2 * (n + 1)) / n, 0.0)
        hi_q = min(np.ceil((1 - alpha / 2) * (n + 1)) / n, 1.0)
        r_lo, r_hi = np.quantile(self.ratios_, [lo_q, hi_q])
        b = X[BASELINE].to_numpy(dtype=float)
        return _ratio_interval(b, np.full_like(b, r_lo), np.full_like(b, r_hi))
