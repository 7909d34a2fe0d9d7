"""Quantile random forest of the basis-set error, and its conformalised intervals.

:class:`QuantileForest` wraps ``quantile_forest.RandomForestQuantileRegressor``
(Meinshausen's QRF): it learns ``t = log(y / baseline)`` (see
:mod:`matterflow.basis.baseline`) and predicts any quantile of it; the median
is the point prediction. Its raw quantile intervals are not guaranteed to
cover on new materials.

:class:`ConformalQuantileForest` calibrates them with conformalised quantile
regression (CQR, Romano et al. 2019) on *held-out materials*: an inner grouped
K-fold over the training materials gives out-of-fold quantiles ``lo, hi`` of
``t`` for every training row; the conformity score is
``s = max(lo - t, t - hi)``; the interval of a new row is
``[lo - q, hi + q]`` with ``q`` the ``ceil((n+1)(1-alpha))/n`` empirical
quantile of ``s`` (the CV+ / cross-conformal construction, with the final
forest refitted on all training rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from matterflow.core.errors import InputError, NotFittedError

from .baseline import BasisModel, _ratio_interval, ratio_to_baseline
from .data import BASELINE, grouped_folds

__all__ = ["QuantileForest", "ConformalQuantileForest", "conformal_quantile"]


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The ``ceil((n+1) c) / n`` empirical quantile of ``scores`` (inf if n is too small)."""
    scores = np.sort(np.asarray(scores, dtype=float))
    n = len(scores)
    k = int(np.ceil((n + 1) * coverage))
    if k > n:
        return float("inf")
    return float(scores[max(k - 1, 0)])


class QuantileForest(BasisModel):
    """Quantile random forest of ``log(y / baseline)``.

    Parameters
    ----------
    n_estimators : int
        Number of trees.
    max_features : float
        Fraction of features tried at each split.
    min_samples_leaf : int
        Smallest leaf.
    random_state : int
        Seed of the forest.
    n_jobs : int
        Parallel jobs of the forest.
    """

    name = "qrf"

    def __init__(self, n_estimators: int = 300, max_features: float = 0.33,
                 min_samples_leaf: int = 3, random_state: int = 0, n_jobs: int = 1):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _forest(self):
        from quantile_forest import RandomForestQuantileRegressor

        return RandomForestQuantileRegressor(
            n_estimators=self.n_estimators, max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf, random_state=self.random_state,
            n_jobs=self.n_jobs)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> QuantileForest:
        X, y = self._check_fit(X, y)
        b = X[BASELINE].to_numpy(dtype=float)
        keep = b != 0
        if keep.sum() < 2:
            raise InputError(f"{self.name}.fit: fewer than 2 rows with a non-zero baseline "
                             f"({BASELINE}); reference-precision rows cannot be learned from")
        t = np.log(ratio_to_baseline(y[keep], b[keep]))
        self.forest_ = self._forest().fit(X.to_numpy(dtype=float)[keep], t)
        return self

    def predict_log_ratio_quantiles(self, X: pd.DataFrame, quantiles: list[float]) -> np.ndarray:
        """Quantiles of ``log(y / baseline)``, shape (n, len(quantiles))."""
        X = self._check_predict(X)
        q = self.forest_.predict(X.to_numpy(dtype=float), quantiles=list(quantiles))
        return np.asarray(q, dtype=float).reshape(len(X), len(quantiles))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Median predicted error in Hartree, shape (n,)."""
        t = self.predict_log_ratio_quantiles(X, [0.5])[:, 0]
        return X[BASELINE].to_numpy(dtype=float) * np.exp(t)

    def predict_quantiles(self, X: pd.DataFrame, quantiles: list[float]) -> np.ndarray:
        """Quantiles of the error in Hartree, shape (n, len(quantiles)).

        The baseline is negative, so the ``q`` quantile of the ratio is the
        ``1 - q`` quantile of the error; columns are returned in the order of
        the requested error quantiles.
        """
        flip = [1.0 - q for q in quantiles]
        t = self.predict_log_ratio_quantiles(X, flip)
        b = X[BASELINE].to_numpy(dtype=float)[:, None]
        return np.where(b <= 0, b * np.exp(t),
                        b * np.exp(self.predict_log_ratio_quantiles(X, list(quantiles))))

    def predict_interval(self, X: pd.DataFrame, coverage: float = 0.9
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Central ``coverage`` interval from the forest's quantiles (not calibrated)."""
        a = (1.0 - coverage) / 2
        t = self.predict_log_ratio_quantiles(X, [a, 1 - a])
        return _ratio_interval(X[BASELINE].to_numpy(dtype=float), np.exp(t[:, 0]), np.exp(t[:, 1]))

    @property
    def feature_importances_(self) -> np.ndarray:
        if not hasattr(self, "forest_"):
            raise NotFittedError(f"{self.name}: call fit first")
        return self.forest_.feature_importances_


class ConformalQuantileForest(QuantileForest):
    """QRF whose ``coverage`` interval is calibrated by CQR on held-out materials.

    Parameters
    ----------
    coverage : float
        Nominal coverage the calibration is made for (a different coverage at
        predict time recalibrates from the stored out-of-fold quantiles).
    n_calibration_folds : int
        Inner grouped folds over the training materials.
    groups : None
        Material labels are passed to ``fit`` (``groups=``), not here.
    Other parameters as :class:`QuantileForest`.
    """

    name = "qrf_conformal"

    def __init__(self, n_estimators: int = 300, max_features: float = 0.33,
                 min_samples_leaf: int = 3, random_state: int = 0, n_jobs: int = 1,
                 coverage: float = 0.9, n_calibration_folds: int = 5):
        super().__init__(n_estimators, max_features, min_samples_leaf, random_state, n_jobs)
        self.coverage = coverage
        self.n_calibration_folds = n_calibration_folds

    def fit(self, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray | None = None
            ) -> ConformalQuantileForest:
        X, y = self._check_fit(X, y)
        if groups is None:
            raise InputError(f"{self.name}.fit: material labels (groups=) are needed to "
                             "calibrate on held-out materials")
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise InputError(f"{self.name}.fit: groups has {len(groups)} entries, y has {len(y)}")
        b = X[BASELINE].to_numpy(dtype=float)
        keep = b != 0
        Xk, yk, gk, bk = X.loc[keep], y[keep], groups[keep], b[keep]
        t = np.log(ratio_to_baseline(yk, bk))
        n_groups = len(np.unique(gk))
        k = min(self.n_calibration_folds, n_groups)
        if k < 2:
            raise InputError(f"{self.name}.fit: at least 2 materials are needed for "
                             f"calibration; got {n_groups}")
        # out-of-fold quantiles of t for a grid of nominal levels (any coverage can be served)
        self.levels_ = np.round(np.arange(0.02, 0.995, 0.01), 4)
        lows, highs = (1 - self.levels_) / 2, (1 + self.levels_) / 2
        qs = list(np.concatenate([lows, highs]))
        oof = np.empty((len(t), len(qs)))
        for tr, te in grouped_folds(gk, k, seed=self.random_state):
            inner = QuantileForest(self.n_estimators, self.max_features, self.min_samples_leaf,
                                   self.random_state, self.n_jobs)
            inner.fit(Xk.iloc[tr], yk[tr])
            oof[te] = inner.predict_log_ratio_quantiles(Xk.iloc[te], qs)
        m = len(self.levels_)
        # score per row and level: s = max(lo - t, t - hi)
        self.scores_ = np.maximum(oof[:, :m] - t[:, None], t[:, None] - oof[:, m:])
        super().fit(X, y)
        self.feature_names_in_ = list(X.columns)
        return self

    def correction(self, coverage: float) -> float:
        """Additive correction ``q`` of the log-ratio interval at ``coverage``."""
        if not hasattr(self, "scores_"):
            raise NotFittedError(f"{self.name}: call fit first")
        j = int(np.argmin(np.abs(self.levels_ - coverage)))
        return conformal_quantile(self.scores_[:, j], coverage)

    def predict_interval(self, X: pd.DataFrame, coverage: float | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Conformalised ``coverage`` interval in Hartree, each shape (n,)."""
        coverage = self.coverage if coverage is None else coverage
        if not 0 < coverage < 1:
            raise InputError(f"coverage must be in (0, 1); got {coverage}")
        if not hasattr(self, "scores_"):
            raise NotFittedError(f"{self.name}: call fit before predict")
        j = int(np.argmin(np.abs(self.levels_ - coverage)))
        level = float(self.levels_[j])
        q = self.correction(level)
        a = (1 - level) / 2
        t = self.predict_log_ratio_quantiles(X, [a, 1 - a])
        return _ratio_interval(X[BASELINE].to_numpy(dtype=float),
                               np.exp(t[:, 0] - q), np.exp(t[:, 1] + q))
