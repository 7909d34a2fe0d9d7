"""CLI and tasks: fit -> predict round trip, evaluate, bad input messages and exit codes."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from matterflow.basis.data import TARGET, shipped_csv
from matterflow.basis.model import HARTREE_MEV
from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.core.registry import get_task

runner = CliRunner()


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Train on 20 materials, predict 5 others (without the target column)."""
    raw = pd.read_csv(shipped_csv())
    mats = sorted(raw["chem_formula"].unique())
    tmp = tmp_path_factory.mktemp("basis")
    train, new = raw[raw["chem_formula"].isin(mats[:20])], raw[raw["chem_formula"].isin(mats[40:45])]
    train.to_csv(tmp / "train.csv", index=False)
    new.drop(columns=[TARGET]).to_csv(tmp / "new.csv", index=False)
    return tmp, new


def test_fit_then_predict_cli(split):
    tmp, new = split
    r = runner.invoke(app, ["basis", "fit", str(tmp / "train.csv"), "--out", str(tmp / "m.model"),
                            "--trees", "30"])
    assert r.exit_code == 0, r.output
    assert "SISSO" in r.output
    r = runner.invoke(app, ["basis", "predict", str(tmp / "m.model"), str(tmp / "new.csv"),
                            "--tolerance", "5", "--out", str(tmp / "pred.csv")])
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(tmp / "pred.csv")
    assert len(pred) == len(new)
    # converged energy = E(p) + predicted error (the target is E_ref - E(p))
    np.testing.assert_allclose(pred["converged_energy_ha"],
                               new["total_energy"].to_numpy() + pred["error_ha"], rtol=1e-12)
    ref = pred["precision_level"] == 90
    assert (pred.loc[ref, "error_ha"] == 0).all()
    assert (pred["lower_ha"] <= pred["error_ha"] + 1e-12).all()
    # trust flag: the whole interval within 5 meV/atom
    worst = np.maximum(pred["lower_ha"].abs(), pred["upper_ha"].abs()) \
        / new["num_atoms"].to_numpy() * HARTREE_MEV
    np.testing.assert_array_equal(pred["trustworthy"], (worst <= 5) & ~pred["extrapolating"])
    assert pred.loc[pred["precision_level"] == 30, "trustworthy"].sum() == 0
    # held-out truth: lowest precision errors are large and predicted within a factor 3
    truth = new[TARGET].to_numpy()
    low = pred["precision_level"].to_numpy() == 30
    ratio = pred["error_ha"].to_numpy()[low] / truth[low]
    assert np.all((ratio > 1 / 3) & (ratio < 3))


def test_predict_without_trained_features(split):
    tmp, new = split
    runner.invoke(app, ["basis", "fit", str(tmp / "train.csv"), "--out", str(tmp / "m2.model"),
                        "--trees", "20"])
    new.drop(columns=[TARGET, "A_rs"]).to_csv(tmp / "nofeat.csv", index=False)
    r = runner.invoke(app, ["basis", "predict", str(tmp / "m2.model"), str(tmp / "nofeat.csv")])
    assert r.exit_code == 2
    assert "nofeat.csv" in r.output and "A_rs" in r.output


def test_cli_bad_inputs(tmp_path):
    raw = pd.read_csv(shipped_csv())
    raw.drop(columns=["E_cut"]).to_csv(tmp_path / "bad.csv", index=False)
    r = runner.invoke(app, ["basis", "fit", str(tmp_path / "bad.csv")])
    assert r.exit_code == 2 and "missing column(s) E_cut" in r.output
    r = runner.invoke(app, ["basis", "predict", str(tmp_path / "none.model"), str(tmp_path / "bad.csv")])
    assert r.exit_code == 2 and "model file not found" in r.output
    (tmp_path / "junk.model").write_bytes(b"not a model")
    r = runner.invoke(app, ["basis", "predict", str(tmp_path / "junk.model"), str(tmp_path / "bad.csv")])
    assert r.exit_code == 2 and "not a matterflow basis model" in r.output
    r = runner.invoke(app, ["basis", "evaluate", "--model", "gpr"])
    assert r.exit_code == 2 and "accepted" in r.output


def test_evaluate_cli_fast_models(tmp_path):
    r = runner.invoke(app, ["basis", "evaluate", "--model", "baseline", "--model", "sisso",
                            "--out", str(tmp_path), "-q"])
    assert r.exit_code == 0, r.output
    assert "29.67" in r.output  # the baseline's sMAPE on the 780 non-reference rows
    for f in ("metrics.json", "parity.png", "coverage.png", "error_by_level.png"):
        assert (tmp_path / f).exists()


def test_evaluate_task_same_seed_same_result():
    t = get_task("basis.evaluate")
    p = {"models": ["baseline", "qrf"], "n_estimators": 20, "n_splits": 3, "seed": 4}
    a, b = t(params=p), t(params=p)
    np.testing.assert_array_equal(a.pred_ha, b.pred_ha)
    assert a.models == ["baseline", "qrf"]
    assert a.smape_pct[0] == pytest.approx(29.6747, abs=1e-3)
    figs = t.figures({k: getattr(a, k) for k in a.__dataclass_fields__}, t.make_params(p))
    assert len(figs) == 3
    with pytest.raises(InputError, match="models"):
        t(params={"models": ["svm"]})


def test_fit_and_predict_tasks_round_trip(split):
    tmp, new = split
    fitted = get_task("basis.fit")(tmp / "train.csv", params={"n_estimators": 20})
    assert fitted.n_materials == 20 and fitted.model.dtype == np.uint8
    assert fitted.sisso_formula.startswith("binary_energy_error = stoich_error_pred *")
    out = get_task("basis.predict")(fitted.model, tmp / "new.csv")
    assert len(out.error_ha) == len(new)
    assert out.material[0] == new["chem_formula"].iloc[0]


def test_column_map_option(split):
    tmp, new = split
    raw = pd.read_csv(tmp / "train.csv").rename(columns={"rgkmax": "RGKMAX", TARGET: "dE"})
    raw.to_csv(tmp / "renamed.csv", index=False)
    r = runner.invoke(app, ["basis", "fit", str(tmp / "renamed.csv"), "--out", str(tmp / "r.model")])
    assert r.exit_code == 2 and "rgkmax" in r.output
    r = runner.invoke(app, ["basis", "fit", str(tmp / "renamed.csv"), "--out", str(tmp / "r.model"),
                            "--trees", "20", "--map", "RGKMAX=rgkmax", "--map", f"dE={TARGET}"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["basis", "fit", str(tmp / "renamed.csv"), "--map", "RGKMAX"])
    assert r.exit_code == 2 and "OLD=NEW" in r.output


def test_extrapolation_is_flagged(split):
    tmp, new = split
    fitted = get_task("basis.fit")(tmp / "train.csv", params={"n_estimators": 20})
    raw = pd.read_csv(tmp / "train.csv")
    rows = raw[raw["precision_level"] == 80].head(3).drop(columns=[TARGET]).copy()
    rows.to_csv(tmp / "inside.csv", index=False)
    out = get_task("basis.predict")(fitted.model, tmp / "inside.csv",
                                    params={"tolerance_mev_per_atom": 1e6})
    assert not out.extrapolating.any() and out.trustworthy.all()
    rows.iloc[1, rows.columns.get_loc("rgkmax")] = 50.0  # far beyond the training range
    rows.to_csv(tmp / "outside.csv", index=False)
    out = get_task("basis.predict")(fitted.model, tmp / "outside.csv",
                                    params={"tolerance_mev_per_atom": 1e6})
    np.testing.assert_array_equal(out.extrapolating, [False, True, False])
    np.testing.assert_array_equal(out.trustworthy, [True, False, True])
