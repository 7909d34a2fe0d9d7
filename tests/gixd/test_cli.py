"""`matterflow gixd` commands: simulate -> detect (classical) -> evaluate -> track; bad files."""

from typer.testing import CliRunner

from matterflow.cli import app

runner = CliRunner()


def test_cli_round_trip(tmp_path):
    data, peaks = tmp_path / "sim.h5", tmp_path / "peaks.h5"
    r = runner.invoke(app, ["gixd", "simulate", str(data), "--n", "2", "--size", "64"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["gixd", "detect", str(data), "--method", "classical", "-o", str(peaks)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["gixd", "evaluate", str(peaks), str(data)])
    assert r.exit_code == 0 and "AP50" in r.output, r.output
    r = runner.invoke(app, ["gixd", "track", str(peaks)])
    assert r.exit_code == 0 and "tracks" in r.output, r.output


def test_cli_missing_file_is_named(tmp_path):
    r = runner.invoke(app, ["gixd", "train", str(tmp_path / "none.h5")])
    assert r.exit_code == 2 and "none.h5" in r.output


def test_detector_frames_with_geometry():
    import numpy as np

    from matterflow.diffraction.gixd.tasks import detect, simulate

    s = simulate(params={"n_images": 1, "n_q": 64, "n_chi": 64, "detector_px": 128,
                         "keep_detector": True})
    d = detect(s.detector[0], geometry=s.poni, params={"method": "classical", "n_q": 64,
                                                       "n_chi": 64, "incidence_deg": 0.2})
    assert d.status == 0
    import pytest

    from matterflow.core.errors import InputError

    with pytest.raises(InputError, match="does not match the detector"):
        detect(np.zeros((100, 100)), geometry=s.poni,
               params={"method": "classical", "incidence_deg": 0.2, "n_q": 64, "n_chi": 64})
