"""`basis evaluate` maps its (model, fold) fits over the executor: the same numbers as the
serial cross-validation of `basis.evaluate`, and a rerun reuses every fit."""

import numpy as np
from typer.testing import CliRunner

from matterflow.basis.tasks import evaluate
from matterflow.cli import app
from matterflow.core.store import Results

PARAMS = {"models": ["baseline", "sisso"], "n_splits": 3, "seed": 4, "sisso_dim": 2}


def test_mapped_folds_equal_the_serial_cross_validation(tmp_path):
    serial = evaluate(params=PARAMS)
    args = ["basis", "evaluate", "--model", "baseline", "--model", "sisso", "--folds", "3",
            "--seed", "4", "--sisso-dim", "2", "--out", str(tmp_path), "--workers", "2",
            "--threads", "-q"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    res = Results(tmp_path / "results.h5")
    ev = res["evaluate"]
    for name in ("pred_ha", "lower_ha", "upper_ha", "coverage_curve", "smape_pct", "r2"):
        np.testing.assert_array_equal(ev[name], getattr(serial, name), err_msg=name)
    assert str(ev["sisso_formula"]) == serial.sisso_formula
    assert res["folds"]["pred_ha"].shape == (2 * 3, len(serial.y_ha))  # one item per fit
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "parity.png").exists()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0
    assert Results(tmp_path / "results.h5").steps["folds"]["status"] == "reused"
