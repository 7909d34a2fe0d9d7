"""`calphad sample` runs as a workflow step: provenance beside the chain, and the walkers'
log-posteriors spread over the workers give the same chain as one worker."""

import h5py
import numpy as np
from typer.testing import CliRunner

from matterflow.calphad.cli import app


def _sample(tmp_path, name, workers):
    out = tmp_path / f"{name}.h5"
    r = CliRunner().invoke(app, ["sample", "-o", str(out), "--walkers", "4", "--steps", "2",
                                 "--stride", "8", "--workers", str(workers), "-q"])
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f:
        return f["chain"][()], f["lnprob"][()]


def test_two_workers_give_the_chain_of_one(tmp_path):
    one = _sample(tmp_path, "one", 1)
    two = _sample(tmp_path, "two", 2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_allclose(one[1], two[1], rtol=1e-12)
    with h5py.File(tmp_path / "two-run" / "results.h5") as f:
        assert f.attrs["executor"] == "LocalCluster(2 processes)"
        assert "calphad.sample" in f.attrs["workflow_text"]
