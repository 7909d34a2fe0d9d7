"""The from-data recipe through the CLI, shortened (`make test-slow`; the full run is
benchmarks/calphad_from_data.py): fit -> sample of all parameters with ESPEI's likelihood
and priors -> propagate, with the convergence report and the data check."""
import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

EXPERIMENT_LABELS = ("eutectic:FCC_A1+LIQUID+LAVES_C15", "eutectic:LAVES_C15+LIQUID+CUMG2",
                     "eutectic:CUMG2+LIQUID+HCP_A3", "congruent:CUMG2+LIQUID",
                     "congruent:LAVES_C15+LIQUID")


def test_from_data_recipe_runs_and_reports_convergence(tmp_path):
    """30 walkers x 12 steps, 10 draws (648 s measured on 2 cores at load ~20)."""
    from matterflow.calphad.cli import app

    runner = CliRunner()
    tdb = tmp_path / "model.tdb"
    r = runner.invoke(app, ["fit", "--out", str(tdb)])
    assert r.exit_code == 0, r.output
    chain = tmp_path / "chain.h5"
    r = runner.invoke(app, ["sample", "--tdb", str(tdb), "-p", "all", "--no-offsets",
                            "--engine", "fast-espei", "--espei-prior",
                            '{"name": "normal", "loc_relative": 1.0, "scale_relative": 0.5}',
                            "--init-std-relative", "0.1", "--walkers", "30", "--steps", "12",
                            "-o", str(chain), "-q"])
    assert r.exit_code == 0, r.output
    assert "convergence (R-hat <= 1.05 and ESS >= 200 for every parameter): NOT met" in r.output
    with h5py.File(chain, "r") as f:
        assert f["chain"].shape == (12, 30, 15)
        lnp = f["lnprob"][()]
    assert np.all(np.isfinite(lnp[-1]))
    assert np.median(lnp[-1]) > np.median(lnp[0])  # the walkers climb out of ESPEI's ball
    out = tmp_path / "prop"
    r = runner.invoke(app, ["propagate", str(chain), "-o", str(out), "--draws", "10", "-q"])
    assert r.exit_code == 0, r.output
    table = json.loads((out / "invariants.json").read_text())
    labels = {row["label"] for row in table["invariants"]}
    assert set(EXPERIMENT_LABELS) <= labels, labels
    assert isinstance(table["data_warnings"], list) and "topologies" in table
