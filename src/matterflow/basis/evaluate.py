"""Grouped cross-validation of the basis-error models, with the same folds for every model.

Metrics (on rows below the reference precision; the reference rows have a
target of exactly 0 by construction and are left out):

- sMAPE = mean(2 |y - p| / (|y| + |p|)) in %;
- MAE in mHa, R² of the error;
- empirical coverage and mean width (mHa) of the central ``coverage`` intervals,
  and the median width relative to |y|.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .baseline import ElementalBaseline
from .data import PRECISION, BasisData, grouped_folds
from .params import MODEL_NAMES
from .qrf import ConformalQuantileForest, QuantileForest
from .sisso import SissoModel

__all__ = ["smape", "mae", "r2", "coverage", "CVResult", "cross_validate", "make_models",
           "MODEL_NAMES", "CVPlan", "CVJob", "cv_plan", "cv_job", "cv_combine"]

NOMINAL = np.round(np.arange(0.5, 0.96, 0.05), 2)  # nominal levels of the coverage curve


def smape(y: np.ndarray, p: np.ndarray) -> float:
    """Symmetric mean absolute percentage error in % (0/0 rows count as 0)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    den = np.abs(y) + np.abs(p)
    terms = np.where(den > 0, 2 * np.abs(y - p) / np.where(den > 0, den, 1.0), 0.0)
    return float(100 * terms.mean())


def mae(y: np.ndarray, p: np.ndarray) -> float:
    """Mean absolute error (units of y)."""
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(p, float))))


def r2(y: np.ndarray, p: np.ndarray) -> float:
    """Coefficient of determination."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Fraction of ``y`` inside ``[lo, hi]``."""
    y = np.asarray(y, float)
    return float(np.mean((y >= lo) & (y <= hi)))


def make_models(names: tuple[str, ...] = MODEL_NAMES, *, n_estimators: int = 300,
                seed: int = 0, coverage: float = 0.9, sisso_dim: int = 3, sisso_sis: int = 20,
                sisso_rung: int = 1, n_jobs: int = 1) -> dict:
    """Fresh, unfitted models by name."""
    factories: dict[str, Callable] = {
        "baseline": lambda: ElementalBaseline(),
        "qrf": lambda: QuantileForest(n_estimators=n_estimators, random_state=seed,
                                      n_jobs=n_jobs),
        "qrf_conformal": lambda: ConformalQuantileForest(
            n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs, coverage=coverage),
        "sisso": lambda: SissoModel(max_dim=sisso_dim, n_sis=sisso_sis, max_rung=sisso_rung),
    }
    return {n: factories[n]() for n in names}


def fit_model(model, X, y, groups):
    """Fit ``model`` (the conformal forest also needs the material labels)."""
    if isinstance(model, ConformalQuantileForest):
        return model.fit(X, y, groups=groups)
    return model.fit(X, y)


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions and metrics of every model (rows: non-reference rows)."""

    models: list[str]
    y: np.ndarray                 # (n,) Hartree
    pred: np.ndarray              # (n_models, n) Hartree
    lower: np.ndarray             # (n_models, n) Hartree
    upper: np.ndarray             # (n_models, n)
    fold: np.ndarray              # (n,) test fold of each row
    precision: np.ndarray         # (n,)
    groups: np.ndarray            # (n,) material
    nominal: np.ndarray           # (k,)
    coverage_curve: np.ndarray    # (n_models, k) empirical coverage at each nominal level
    fit_seconds: np.ndarray       # (n_models,) summed over folds
    predict_seconds: np.ndarray   # (n_models,)
    formulas: list[str]           # SISSO formula of each fold ('' if not run)
    sisso_full_formula: str       # SISSO fitted on all rows
    coverage_level: float

    def metrics(self) -> dict[str, dict[str, float]]:
        """Per model: smape_pct, mae_mha, r2, coverage, mean_width_mha, median_rel_width."""
        out = {}
        for k, m in enumerate(self.models):
            lo, hi = self.lower[k], self.upper[k]
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.median((hi - lo) / np.abs(self.y))
            out[m] = {"smape_pct": smape(self.y, self.pred[k]),
                      "mae_mha": 1e3 * mae(self.y, self.pred[k]),
                      "r2": r2(self.y, self.pred[k]),
                      "coverage": coverage(self.y, lo, hi),
                      "mean_width_mha": float(1e3 * np.mean(hi - lo)),
                      "median_rel_width": float(rel),
                      "fit_s": float(self.fit_seconds[k]),
                      "predict_s": float(self.predict_seconds[k])}
        return out

    def smape_by_level(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision levels (L,) and sMAPE per model and level (n_models, L)."""
        levels = np.unique(self.precision)
        table = np.array([[smape(self.y[self.precision == lv], self.pred[k][self.precision == lv])
                           for lv in levels] for k in range(len(self.models))])
        return levels, table


def cross_validate(data: BasisData, *, models: tuple[str, ...] = MODEL_NAMES, n_splits: int = 5,
                   seed: int = 0, coverage_level: float = 0.9, n_estimators: int = 300,
                   sisso_dim: int = 3, sisso_sis: int = 20, sisso_rung: int = 1, n_jobs: int = 1,
                   progress: Callable[[str], None] | None = None) -> CVResult:
    """Grouped K-fold CV by material; the same folds (from ``seed``) for every model.

    Parameters
    ----------
    data : BasisData
        Validated table with target; reference-precision rows are dropped.
    models : tuple of str
        Names from :data:`MODEL_NAMES`.
    progress : callable or None
        Called with a short message after each fitted (model, fold).
    """
    plan = cv_plan(data, n_splits, seed)
    kw = dict(n_estimators=n_estimators, seed=seed, coverage=coverage_level, sisso_dim=sisso_dim,
              sisso_sis=sisso_sis, sisso_rung=sisso_rung, n_jobs=n_jobs)
    jobs = []
    for name in models:
        for f in range(n_splits):
            jobs.append(cv_job(plan, name, f, kw, coverage_level))
            if progress:
                progress(f"{name} fold {f + 1}/{n_splits}")
    return cv_combine(plan, models, jobs, kw, coverage_level)


@dataclass(frozen=True)
class CVPlan:
    """The rows (below the reference precision) and the grouped folds of a cross-validation."""

    X: object                      # DataFrame (n, n_features)
    y: np.ndarray                  # (n,) Hartree
    groups: np.ndarray             # (n,) material
    precision: np.ndarray          # (n,)
    folds: list                    # [(train, test)] index arrays
    fold_of: np.ndarray            # (n,) test fold of each row


def cv_plan(data: BasisData, n_splits: int, seed: int) -> CVPlan:
    """Rows and folds (from ``seed``) shared by every model of a cross-validation."""
    d = data.nonreference()
    folds = grouped_folds(d.groups, n_splits, seed)
    fold_of = np.empty(len(d.y), dtype=int)
    for k, (_, te) in enumerate(folds):
        fold_of[te] = k
    return CVPlan(X=d.frame[d.features], y=d.y, groups=d.groups,
                  precision=d.frame[PRECISION].to_numpy(dtype=float), folds=folds,
                  fold_of=fold_of)


@dataclass(frozen=True)
class CVJob:
    """One model fitted on one fold's training rows, evaluated on its test rows."""

    test: np.ndarray               # (n_test,) row indices
    pred: np.ndarray               # (n_test,) Hartree
    lower: np.ndarray
    upper: np.ndarray
    covered: np.ndarray            # (len(NOMINAL), n_test) bool
    fit_s: float
    predict_s: float
    formula: str                   # SISSO formula ('' for other models)


def cv_job(plan: CVPlan, name: str, fold: int, kw: dict, coverage_level: float) -> CVJob:
    """Fit a fresh ``name`` model on the training rows of ``fold``; predict its test rows."""
    tr, te = plan.folds[fold]
    X, y = plan.X, plan.y
    model = make_models((name,), **kw)[name]
    t0 = time.perf_counter()
    fit_model(model, X.iloc[tr], y[tr], plan.groups[tr])
    t1 = time.perf_counter()
    pred = model.predict(X.iloc[te])
    lower, upper = model.predict_interval(X.iloc[te], coverage_level)
    t_pred = time.perf_counter() - t1
    covered = np.zeros((len(NOMINAL), len(te)), dtype=bool)
    for j, c in enumerate(NOMINAL):
        lo, hi = model.predict_interval(X.iloc[te], float(c))
        covered[j] = (y[te] >= lo) & (y[te] <= hi)
    return CVJob(test=np.asarray(te), pred=np.asarray(pred), lower=np.asarray(lower),
                 upper=np.asarray(upper), covered=covered, fit_s=t1 - t0, predict_s=t_pred,
                 formula=model.formula() if name == "sisso" else "")


def cv_combine(plan: CVPlan, models, jobs: list[CVJob], kw: dict,
               coverage_level: float) -> CVResult:
    """The :class:`CVResult` of ``jobs`` (model-major: model k, fold f at k * n_folds + f)."""
    nm, n_splits, n = len(models), len(plan.folds), len(plan.y)
    pred = np.zeros((nm, n))
    lower, upper = np.zeros_like(pred), np.zeros_like(pred)
    curves = np.zeros((nm, len(NOMINAL), n), dtype=bool)
    t_fit, t_pred = np.zeros(nm), np.zeros(nm)
    formulas = []
    for k, name in enumerate(models):
        for f in range(n_splits):
            job = jobs[k * n_splits + f]
            te = job.test
            pred[k, te], lower[k, te], upper[k, te] = job.pred, job.lower, job.upper
            curves[k, :, te] = job.covered.T
            t_fit[k] += job.fit_s
            t_pred[k] += job.predict_s
            if name == "sisso":
                formulas.append(job.formula)
    X, y = plan.X, plan.y
    full = ""
    if "sisso" in models:
        full = make_models(("sisso",), **kw)["sisso"].fit(X, y).formula()
    return CVResult(models=list(models), y=y, pred=pred, lower=lower, upper=upper,
                    fold=plan.fold_of, precision=plan.precision, groups=plan.groups,
                    nominal=NOMINAL.copy(), coverage_curve=curves.mean(axis=2),
                    fit_seconds=t_fit, predict_seconds=t_pred, formulas=formulas,
                    sisso_full_formula=full, coverage_level=coverage_level)
