"""``matterflow basis evaluate|fit|predict``: basis-set error models of DFT total energies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from matterflow.basis.params import EvaluateParams, FitParams, PredictParams
from matterflow.clitools import (
    Cluster,
    Force,
    Processes,
    Quiet,
    RunOptions,
    Scheduler,
    Workers,
    console,
    handle_errors,
    make_progress,
    param_option,
)
from matterflow.core.errors import InputError

app = typer.Typer(help="Basis-set (precision) error of DFT total energies: QRF, SISSO, "
                       "calibrated intervals.", no_args_is_help=True)

DataArg = Annotated[Path | None, typer.Argument(
    help="CSV of calculations (default: the shipped exciting data set).")]
MapOpt = Annotated[list[str] | None, typer.Option(
    "--map", help="Rename a column: OLD=NEW (repeatable).")]


def _map(pairs: list[str] | None) -> dict[str, str]:
    from matterflow.basis.tasks import _column_map

    return _column_map(pairs or [])


@app.command()
@handle_errors
def evaluate(
    data: DataArg = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics.json and figures.")
                   ] = Path("basis-eval"),
    folds: Annotated[int, param_option(EvaluateParams, "n_splits",
                                       help="Grouped folds (by material)")] = 5,
    seed: Annotated[int, param_option(EvaluateParams, "seed", help="Seed of folds and forests")] = 0,
    coverage: Annotated[float, param_option(EvaluateParams, "coverage",
                                            help="Nominal coverage")] = 0.9,
    trees: Annotated[int, param_option(EvaluateParams, "n_estimators", help="Trees per forest")] = 300,
    sisso_dim: Annotated[int, param_option(EvaluateParams, "sisso_dim",
                                           help="Terms of the SISSO formula")] = 3,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="Model to evaluate (repeatable): baseline, qrf, qrf_conformal, sisso.")
                     ] = None,
    column_map: MapOpt = None,
    workers: Workers = None,
    processes: Processes = None,
    scheduler: Scheduler = None,
    cluster: Cluster = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Grouped cross-validation of all models: sMAPE, MAE, R², coverage and width of intervals.

    Runs on the executor, one (model, fold) fit per task (basis.cv_jobs ->
    basis.cv_fold, mapped -> basis.cv_summary): OUT/results.h5 holds the
    out-of-fold predictions with provenance; a killed run resumes with the fits done.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matterflow.basis.data import load_csv
    from matterflow.basis.evaluate import MODEL_NAMES
    from matterflow.basis.figures import evaluation_figures
    from matterflow.basis.tasks import evaluate as task
    from matterflow.core.store import Results

    models = tuple(model or MODEL_NAMES)
    bad = [m for m in models if m not in MODEL_NAMES]
    if bad:
        raise InputError(f"--model {bad[0]!r}: accepted: {', '.join(MODEL_NAMES)}")
    if data is not None and not data.exists():
        raise InputError(f"{data}: data file not found")
    _map(column_map)  # a bad --map is reported before anything runs
    params = task.make_params({"models": list(models), "n_splits": folds, "seed": seed,
                               "coverage": coverage, "n_estimators": trees,
                               "sisso_dim": sisso_dim, "column_map": list(column_map or [])},
                              where="basis evaluate")
    data_in = {"data": data} if data is not None else {}
    steps = [
        {"id": "jobs", "task": "basis.cv_jobs", "params": params, "inputs": data_in},
        {"id": "folds", "task": "basis.cv_fold", "params": params, "batch_size": 1,
         "inputs": {"job": "jobs.job", **data_in}},
        {"id": "evaluate", "task": "basis.cv_summary", "params": params,
         "inputs": {**{k: f"folds.{k}" for k in ("pred_ha", "lower_ha", "upper_ha", "covered",
                                                 "fit_s", "predict_s", "formula")}, **data_in}},
    ]
    opts = RunOptions(out, workers, processes, scheduler, cluster, force, quiet)
    summary = opts.run_steps(steps, name="basis-evaluate", summary=False)
    ev = Results(summary.results)["evaluate"]
    names = [str(m) for m in ev["models"]]
    keys = ("smape_pct", "mae_mha", "r2", "coverage", "mean_width_mha", "median_rel_width",
            "fit_s", "predict_s")
    met = {m: {k: float(ev[k][i]) for k in keys} for i, m in enumerate(names)}
    formula = str(ev["sisso_formula"])
    fold_formulas = [str(f) for f in ev["sisso_fold_formulas"] if str(f)]
    n_materials = len(set(load_csv(data, column_map=_map(column_map)).nonreference().groups))
    console.print(f"grouped {folds}-fold CV by material, {len(ev['y_ha'])} rows below the "
                  f"reference precision, {n_materials} materials, seed {seed}")
    console.print(f"{'model':<14}{'sMAPE %':>9}{'MAE mHa':>10}{'R2':>8}"
                  f"{'cover':>8}{'width mHa':>11}{'fit s':>8}")
    for m, v in met.items():
        console.print(f"{m:<14}{v['smape_pct']:9.2f}{v['mae_mha']:10.1f}{v['r2']:8.4f}"
                      f"{v['coverage']:8.3f}{v['mean_width_mha']:11.1f}{v['fit_s']:8.2f}")
    if formula:
        console.print(f"SISSO (all rows): {formula}", markup=False)
    out.mkdir(parents=True, exist_ok=True)
    outputs = {"models": names, **{k: ev[k] for k in (
        "y_ha", "pred_ha", "lower_ha", "upper_ha", "nominal", "coverage_curve", "levels",
        "smape_by_level_pct")}}
    files = ("parity.png", "coverage.png", "error_by_level.png")
    for fname, fig in zip(files, evaluation_figures(outputs).values(), strict=True):
        fig.savefig(out / fname, dpi=120)
    (out / "metrics.json").write_text(json.dumps(
        {"metrics": met, "sisso_formula": formula, "sisso_fold_formulas": fold_formulas,
         "folds": folds, "seed": seed, "coverage": coverage}, indent=2))
    console.print(f"metrics and figures: {out}/ (run: {summary.results})")


@app.command()
@handle_errors
def fit(
    data: DataArg = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")
                   ] = Path("basis.model"),
    seed: Annotated[int, param_option(FitParams, "seed", help="Seed of the forest")] = 0,
    coverage: Annotated[float, param_option(FitParams, "coverage", help="Nominal coverage")] = 0.9,
    trees: Annotated[int, param_option(FitParams, "n_estimators", help="Trees of the forest")] = 300,
    column_map: MapOpt = None,
) -> None:
    """Fit the conformal QRF and the SISSO formula on all rows and write a model file."""
    from matterflow.basis.data import load_csv
    from matterflow.basis.model import BasisPredictor

    table = load_csv(data, column_map=_map(column_map))
    with make_progress() as progress:
        progress.add_task("fitting forest, calibration folds and SISSO", total=None)
        model = BasisPredictor(n_estimators=trees, seed=seed, coverage=coverage).fit(table)
    model.save(out)
    console.print(f"fitted on {model.n_rows_} rows of {model.n_materials_} materials; "
                  f"model: {out}")
    console.print(f"SISSO: {model.sisso_.formula()}", markup=False)


@app.command()
@handle_errors
def predict(
    model: Annotated[Path, typer.Argument(help="Model file from `matterflow basis fit`.")],
    data: Annotated[Path, typer.Argument(help="CSV of new calculations (features; "
                                              "total_energy for the converged energy).")],
    tolerance: Annotated[float, param_option(PredictParams, "tolerance_mev_per_atom",
                                             help="Accepted |error| in meV/atom")] = 1.0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV of the predictions.")
                   ] = None,
    column_map: MapOpt = None,
) -> None:
    """Predicted error, extrapolated converged energy, interval and trust flag per calculation."""
    import pandas as pd

    from matterflow.basis.data import load_csv
    from matterflow.basis.model import BasisPredictor

    predictor = BasisPredictor.load(model)
    table = load_csv(data, features=predictor.features_, require_target=False,
                     require_levels=False, column_map=_map(column_map))
    res = predictor.predict(table, tolerance)
    frame = pd.DataFrame({k: getattr(res, k) for k in res.__dataclass_fields__})
    pct = int(round(100 * predictor.coverage))
    console.print(f"{'material':<12}{'level':>6}{'error Ha':>12}{f'{pct}% interval Ha':>24}"
                  f"{'E_conv Ha':>16}{'meV/atom':>12}  trust", soft_wrap=True)
    for r in frame.itertuples():
        console.print(f"{r.material:<12}{r.precision_level:6.0f}{r.error_ha:12.5f}"
                      f"  [{r.lower_ha:9.5f},{r.upper_ha:9.5f}]{r.converged_energy_ha:16.5f}"
                      f"{r.max_abs_error_mev_per_atom:12.3f}  {'yes' if r.trustworthy else 'no'}"
                      f"{' (extrapolating)' if r.extrapolating else ''}",
                      markup=False, soft_wrap=True)
    n_ok = int(frame.trustworthy.sum())
    console.print(f"{n_ok} of {len(frame)} calculations trustworthy at {tolerance:g} meV/atom "
                  f"({pct} % interval); {int(frame.extrapolating.sum())} outside the training "
                  "range of the features")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
        console.print(f"predictions: {out}")
