"""``matterflow basis evaluate|fit|predict``: basis-set error models of DFT total energies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from matterflow.basis.params import EvaluateParams, FitParams, PredictParams
from matterflow.clitools import console, handle_errors, make_progress, param_option
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Grouped cross-validation of all models: sMAPE, MAE, R², coverage and width of intervals."""
    import matplotlib

    matplotlib.use("Agg")
    from matterflow.basis.data import load_csv
    from matterflow.basis.evaluate import MODEL_NAMES, cross_validate
    from matterflow.basis.figures import evaluation_figures

    models = tuple(model or MODEL_NAMES)
    bad = [m for m in models if m not in MODEL_NAMES]
    if bad:
        raise InputError(f"--model {bad[0]!r}: accepted: {', '.join(MODEL_NAMES)}")
    table = load_csv(data, column_map=_map(column_map))
    with make_progress(quiet) as progress:
        bar = progress.add_task("cross-validating", total=len(models) * folds)
        res = cross_validate(table, models=models, n_splits=folds, seed=seed,
                             coverage_level=coverage, n_estimators=trees, sisso_dim=sisso_dim,
                             progress=lambda msg: progress.update(bar, advance=1, description=msg))
    met = res.metrics()
    console.print(f"grouped {folds}-fold CV by material, {len(res.y)} rows below the reference "
                  f"precision, {len(set(res.groups))} materials, seed {seed}")
    console.print(f"{'model':<14}{'sMAPE %':>9}{'MAE mHa':>10}{'R2':>8}"
                  f"{'cover':>8}{'width mHa':>11}{'fit s':>8}")
    for m, v in met.items():
        console.print(f"{m:<14}{v['smape_pct']:9.2f}{v['mae_mha']:10.1f}{v['r2']:8.4f}"
                      f"{v['coverage']:8.3f}{v['mean_width_mha']:11.1f}{v['fit_s']:8.2f}")
    if res.sisso_full_formula:
        console.print(f"SISSO (all rows): {res.sisso_full_formula}", markup=False)
    out.mkdir(parents=True, exist_ok=True)
    levels, by_level = res.smape_by_level()
    outputs = {"models": res.models, "y_ha": res.y, "pred_ha": res.pred, "lower_ha": res.lower,
               "upper_ha": res.upper, "nominal": res.nominal,
               "coverage_curve": res.coverage_curve, "levels": levels,
               "smape_by_level_pct": by_level}
    files = ("parity.png", "coverage.png", "error_by_level.png")
    for fname, fig in zip(files, evaluation_figures(outputs).values(), strict=True):
        fig.savefig(out / fname, dpi=120)
    (out / "metrics.json").write_text(json.dumps(
        {"metrics": met, "sisso_formula": res.sisso_full_formula,
         "sisso_fold_formulas": res.formulas, "folds": folds, "seed": seed,
         "coverage": coverage}, indent=2))
    console.print(f"metrics and figures: {out}/")


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
