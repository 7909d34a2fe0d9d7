"""`gixd detect --follow`: a writer process appends detector frames (SWMR HDF5, TIFF files);
every frame is detected once and the peak table equals a run without --follow."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.cli import app

runner = CliRunner()
WRITER = Path(__file__).parents[1] / "xrd" / "follow_writer.py"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("gixdf")
    r = runner.invoke(app, ["gixd", "simulate", str(d / "sim.h5"), "--n", "5", "--size", "64",
                            "--detector-px", "128", "--keep-detector", "--mode", "series"])
    assert r.exit_code == 0, r.output
    return d


@pytest.mark.parametrize("kind", ["h5", "tiff"])
def test_follow_equals_plain_run(sim, tmp_path, kind):
    dest = tmp_path / ("live.h5" if kind == "h5" else "live")
    data = str(dest) if kind == "h5" else str(dest / "*.tif")
    proc = subprocess.Popen([sys.executable, str(WRITER), kind, str(sim / "sim.h5"), "detector",
                             str(dest), "0.15"])
    common = ["--method", "classical", "--geometry", str(sim / "sim.poni"),
              "--incidence-deg", "0.2"]
    try:
        r = runner.invoke(app, ["gixd", "detect", data, *common, "-p", str(tmp_path / "f.h5"),
                                "-o", str(tmp_path / "frun"), "--follow", "--idle-timeout", "2",
                                "--batch-size", "2"])
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert r.exit_code == 0, r.output
    assert "follow stopped (idle): 5 frames this run" in r.output, r.output
    assert len(list((tmp_path / "frun" / "follow").glob("batch-*.h5"))) >= 2
    r = runner.invoke(app, ["gixd", "detect", data, *common, "-p", str(tmp_path / "p.h5"),
                            "-o", str(tmp_path / "prun"), "--workers", "1", "-q"])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "f.h5") as a, h5py.File(tmp_path / "p.h5") as b:
        assert a["n"].shape == (5,) and list(a["status"][()]) == [0] * 5
        for k in ("n", "boxes", "scores", "labels", "q_inv_nm", "chi_deg"):
            np.testing.assert_allclose(a[k][()], b[k][()], rtol=1e-6, err_msg=k)
        assert a["q_inv_nm"].attrs["units"] == "1/nm"
