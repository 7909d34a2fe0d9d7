"""Tasks of the basis domain (entry point ``matterflow.tasks: basis``).

- ``basis.evaluate``: grouped K-fold CV (by material) of the elemental
  baseline, the QRF, the conformalised QRF and SISSO on one table.
- ``basis.fit``: fit the predictor (conformal QRF + SISSO) on a table; the
  fitted model is returned as bytes (``model_pickle``) for ``basis.predict``.
- ``basis.predict``: predicted error, extrapolated converged energy, interval
  and trustworthy-at-tolerance flag for new calculations.

``data`` may be omitted (None): the shipped exciting data set is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matterflow.core.blob import bytes_field, from_bytes_array, to_bytes_array
from matterflow.core.errors import InputError
from matterflow.core.registry import quantity, task

from .data import load_csv
from .evaluate import cross_validate
from .figures import evaluation_figures
from .model import BasisPredictor
from .params import EvaluateParams, FitParams, PredictParams

__all__ = ["evaluate", "cv_jobs", "cv_fold", "cv_summary", "fit", "predict", "TASKS"]


def _column_map(pairs: list[str]) -> dict[str, str]:
    from matterflow.clitools import parse_key_values

    return parse_key_values(pairs, "column_map entry", key="OLD", value="NEW",
                            example="RGKMAX=rgkmax (a column of the file = the name matterflow "
                                    "expects)")




@dataclass(frozen=True)
class Evaluation:
    models: list = quantity("", "model names (n_models,)")
    smape_pct: np.ndarray = quantity("%", "(n_models,) symmetric MAPE")
    mae_mha: np.ndarray = quantity("mHa", "(n_models,) mean absolute error")
    r2: np.ndarray = quantity("dimensionless", "(n_models,) coefficient of determination")
    coverage: np.ndarray = quantity("dimensionless", "(n_models,) empirical interval coverage")
    mean_width_mha: np.ndarray = quantity("mHa", "(n_models,) mean interval width")
    median_rel_width: np.ndarray = quantity("dimensionless", "(n_models,) median width / |y|")
    fit_s: np.ndarray = quantity("s", "(n_models,) fit time summed over folds")
    predict_s: np.ndarray = quantity("s", "(n_models,) predict time summed over folds")
    y_ha: np.ndarray = quantity("Ha", "(n,) true error E_ref - E(p) of non-reference rows")
    pred_ha: np.ndarray = quantity("Ha", "(n_models, n) out-of-fold predictions")
    lower_ha: np.ndarray = quantity("Ha", "(n_models, n) interval lower ends")
    upper_ha: np.ndarray = quantity("Ha", "(n_models, n) interval upper ends")
    precision_level: np.ndarray = quantity("dimensionless", "(n,) precision level of each row")
    fold: np.ndarray = quantity("dimensionless", "(n,) test fold of each row")
    nominal: np.ndarray = quantity("dimensionless", "(k,) nominal coverages")
    coverage_curve: np.ndarray = quantity("dimensionless", "(n_models, k) empirical coverage")
    levels: np.ndarray = quantity("dimensionless", "(L,) precision levels")
    smape_by_level_pct: np.ndarray = quantity("%", "(n_models, L) sMAPE per level")
    sisso_formula: str = quantity("", "SISSO formula fitted on all rows (Hartree)")
    sisso_fold_formulas: list = quantity("", "SISSO formula of each fold")


def _figures(outputs: dict, params: EvaluateParams) -> dict:
    return evaluation_figures(outputs, params)


@task("basis.evaluate", params=EvaluateParams, figures=_figures, version="1")
def evaluate(data: Path | None = None, *, params: EvaluateParams) -> Evaluation:
    """Grouped cross-validation of baseline, QRF, conformal QRF and SISSO basis-error models."""
    table = load_csv(data, column_map=_column_map(params.column_map))
    res = cross_validate(table, models=tuple(dict.fromkeys(params.models)),
                         n_splits=params.n_splits, seed=params.seed,
                         coverage_level=params.coverage, n_estimators=params.n_estimators,
                         sisso_dim=params.sisso_dim, sisso_sis=params.sisso_sis,
                         sisso_rung=params.sisso_rung, n_jobs=params.n_jobs)
    return _evaluation(res)


def _evaluation(res) -> Evaluation:
    met = res.metrics()
    levels, by_level = res.smape_by_level()

    def col(key: str) -> np.ndarray:
        return np.array([met[m][key] for m in res.models])

    return Evaluation(
        models=list(res.models), smape_pct=col("smape_pct"), mae_mha=col("mae_mha"),
        r2=col("r2"), coverage=col("coverage"), mean_width_mha=col("mean_width_mha"),
        median_rel_width=col("median_rel_width"), fit_s=col("fit_s"),
        predict_s=col("predict_s"), y_ha=res.y, pred_ha=res.pred, lower_ha=res.lower,
        upper_ha=res.upper, precision_level=res.precision, fold=res.fold.astype(float),
        nominal=res.nominal, coverage_curve=res.coverage_curve, levels=levels,
        smape_by_level_pct=by_level, sisso_formula=res.sisso_full_formula,
        sisso_fold_formulas=list(res.formulas) or [""])


# ============================================================================ evaluate, mapped
# The same cross-validation as three steps, so that each (model, fold) fit is one item
# the executor maps over: cv_jobs -> cv_fold (mapped over jobs) -> cv_summary.

def _plan_and_kw(data: Path | None, params: EvaluateParams):
    from .evaluate import cv_plan

    table = load_csv(data, column_map=_column_map(params.column_map))
    kw = dict(n_estimators=params.n_estimators, seed=params.seed, coverage=params.coverage,
              sisso_dim=params.sisso_dim, sisso_sis=params.sisso_sis,
              sisso_rung=params.sisso_rung, n_jobs=params.n_jobs)
    return cv_plan(table, params.n_splits, params.seed), kw, tuple(dict.fromkeys(params.models))


@dataclass(frozen=True)
class CVJobs:
    job: np.ndarray = quantity("dimensionless", "(n_models * n_splits,) job k * n_splits + f "
                               "fits model k on the training rows of fold f")
    n_rows: int = quantity("dimensionless", "rows cross-validated (below the reference level)")


@task("basis.cv_jobs", params=EvaluateParams, version="1")
def cv_jobs(data: Path | None = None, *, params: EvaluateParams) -> CVJobs:
    """The (model, fold) fits of a grouped cross-validation, one item each for basis.cv_fold."""
    plan, _kw, models = _plan_and_kw(data, params)
    return CVJobs(job=np.arange(len(models) * params.n_splits), n_rows=len(plan.y))


@dataclass(frozen=True)
class CVFold:
    pred_ha: np.ndarray = quantity("Ha", "(n,) predictions on the fold's test rows, NaN elsewhere")
    lower_ha: np.ndarray = quantity("Ha", "(n,) interval lower ends, NaN off the fold")
    upper_ha: np.ndarray = quantity("Ha", "(n,) interval upper ends, NaN off the fold")
    covered: np.ndarray = quantity("dimensionless", "(k, n) 1 where the nominal-level interval "
                                   "holds the row's error, 0 where not, NaN off the fold")
    fit_s: float = quantity("s", "fit time")
    predict_s: float = quantity("s", "predict time")
    formula: str = quantity("", "SISSO formula of the fold ('' for other models)")


@task("basis.cv_fold", params=EvaluateParams, map_over="job", version="1")
def cv_fold(job: int, data: Path | None = None, *, params: EvaluateParams) -> CVFold:
    """One (model, fold) fit of the cross-validation: out-of-fold predictions and intervals."""
    from .evaluate import NOMINAL, cv_job

    plan, kw, models = _plan_and_kw(data, params)
    k, f = divmod(int(job), params.n_splits)
    if not 0 <= k < len(models):
        raise InputError(f"job: {int(job)} is outside the {len(models) * params.n_splits} "
                         "(model, fold) jobs of basis.cv_jobs")
    r = cv_job(plan, models[k], f, kw, params.coverage)
    n = len(plan.y)
    full = np.full((3, n), np.nan)
    full[:, r.test] = r.pred, r.lower, r.upper
    covered = np.full((len(NOMINAL), n), np.nan)
    covered[:, r.test] = r.covered
    return CVFold(pred_ha=full[0], lower_ha=full[1], upper_ha=full[2], covered=covered,
                  fit_s=float(r.fit_s), predict_s=float(r.predict_s), formula=r.formula)


@task("basis.cv_summary", params=EvaluateParams, figures=_figures, version="1")
def cv_summary(pred_ha: np.ndarray, lower_ha: np.ndarray, upper_ha: np.ndarray,
               covered: np.ndarray, fit_s: np.ndarray, predict_s: np.ndarray, formula: list,
               data: Path | None = None, *, params: EvaluateParams) -> Evaluation:
    """Metrics of the mapped cross-validation (basis.cv_fold outputs), as basis.evaluate gives."""
    from .evaluate import CVJob, cv_combine

    plan, kw, models = _plan_and_kw(data, params)
    pred_ha = np.asarray(pred_ha, dtype=float)
    if pred_ha.shape != (len(models) * params.n_splits, len(plan.y)):
        raise InputError(f"pred_ha: shape {pred_ha.shape}; expected (n_models * n_splits, n_rows) = "
                         f"({len(models) * params.n_splits}, {len(plan.y)}): the outputs of "
                         "basis.cv_fold with the same parameters")
    covered = np.asarray(covered, dtype=float)
    jobs = []
    for j in range(len(pred_ha)):
        te = np.flatnonzero(np.isfinite(pred_ha[j]))
        jobs.append(CVJob(test=te, pred=pred_ha[j, te], lower=np.asarray(lower_ha)[j, te],
                          upper=np.asarray(upper_ha)[j, te], covered=covered[j][:, te] > 0.5,
                          fit_s=float(fit_s[j]), predict_s=float(predict_s[j]),
                          formula=str(formula[j])))
    return _evaluation(cv_combine(plan, models, jobs, kw, params.coverage))




@dataclass(frozen=True)
class FittedModel:
    model_pickle: np.ndarray = bytes_field("pickle of the BasisPredictor")
    features: list = quantity("", "feature columns")
    feature_importance: np.ndarray = quantity("dimensionless", "(n_features,) forest importance")
    conformal_correction: float = quantity("dimensionless",
                                           "CQR widening of the log-ratio interval")
    sisso_formula: str = quantity("", "SISSO formula of the error (Hartree)")
    n_rows: int = quantity("", "training rows (below the reference precision)")
    n_materials: int = quantity("", "training materials")


@task("basis.fit", params=FitParams, version="1")
def fit(data: Path | None = None, *, params: FitParams) -> FittedModel:
    """Fit the basis-error predictor (conformal QRF + SISSO formula) on a table of calculations."""
    table = load_csv(data, column_map=_column_map(params.column_map))
    model = BasisPredictor(n_estimators=params.n_estimators, seed=params.seed,
                           coverage=params.coverage, sisso_dim=params.sisso_dim,
                           n_jobs=params.n_jobs).fit(table)
    return FittedModel(model_pickle=to_bytes_array(model.to_bytes()),
                       features=list(model.features_),
                       feature_importance=np.asarray(model.qrf_.feature_importances_),
                       conformal_correction=model.qrf_.correction(params.coverage),
                       sisso_formula=model.sisso_.formula(), n_rows=model.n_rows_,
                       n_materials=model.n_materials_)




@dataclass(frozen=True)
class Prediction:
    material: list = quantity("", "(n,) material of each row")
    precision_level: np.ndarray = quantity("dimensionless", "(n,)")
    error_ha: np.ndarray = quantity("Ha", "(n,) predicted E_ref - E(p)")
    lower_ha: np.ndarray = quantity("Ha", "(n,) interval lower end of the error")
    upper_ha: np.ndarray = quantity("Ha", "(n,) interval upper end of the error")
    converged_energy_ha: np.ndarray = quantity("Ha", "(n,) E(p) + error (NaN without total_energy)")
    converged_lower_ha: np.ndarray = quantity("Ha", "(n,)")
    converged_upper_ha: np.ndarray = quantity("Ha", "(n,)")
    max_abs_error_mev_per_atom: np.ndarray = quantity("meV/atom", "(n,) worst |error| in interval")
    trustworthy: np.ndarray = quantity("", "(n,) bool: interval within the tolerance")
    sisso_error_ha: np.ndarray = quantity("Ha", "(n,) SISSO formula's error")
    extrapolating: np.ndarray = quantity("", "(n,) bool: a feature outside the training range")


def _load_model(model) -> BasisPredictor:
    if isinstance(model, BasisPredictor):
        return model
    if isinstance(model, (str, Path)):
        return BasisPredictor.load(model)
    return BasisPredictor.from_bytes(
        from_bytes_array(model, field="model", accepted="a BasisPredictor (basis.fit's model_pickle)"),
        "model_pickle")


@task("basis.predict", params=PredictParams, version="1")
def predict(model, data: Path | None = None, *, params: PredictParams) -> Prediction:
    """Predicted basis-set error, converged energy, interval and trust flag of new calculations."""
    predictor = _load_model(model)
    table = load_csv(data, features=predictor.features_, require_target=False,
                     require_levels=False, column_map=_column_map(params.column_map))
    out = predictor.predict(table, params.tolerance_mev_per_atom)
    return Prediction(**{k: getattr(out, k) for k in out.__dataclass_fields__})


TASKS = [evaluate, cv_jobs, cv_fold, cv_summary, fit, predict]
