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


def test_track_follows_planted_features_through_their_labelled_boxes():
    """The linker alone: detections are the simulation's labelled boxes of a 40-frame in-situ
    series with 10 % of them dropped at random; the planted ``feature_id`` is the reference.
    Every feature seen in >= 3 frames has >= 95 % of its detections on one track, and no track
    mixes features (without gap closing two rings whose boxes vanish for 3-4 frames split)."""
    import numpy as np

    from matterflow.diffraction.gixd.tasks import MAX_DET, simulate, track

    sim = simulate(params={"n_images": 40, "mode": "series", "seed": 2})
    rng = np.random.default_rng(0)
    dq = float(sim.q_axis[1] - sim.q_axis[0])
    dchi = float(sim.chi_axis[1] - sim.chi_axis[0])
    q0, c0 = float(sim.q_axis[0] - dq / 2), float(sim.chi_axis[0] - dchi / 2)
    nf = len(sim.n_boxes)
    q, chi, score, wq, wc = (np.full((nf, MAX_DET), np.nan) for _ in range(5))
    labels, n = np.zeros((nf, MAX_DET), np.int64), np.zeros(nf, np.int64)
    feature = np.full((nf, MAX_DET), -1)
    for i in range(nf):
        k = 0
        for j in range(int(sim.n_boxes[i])):
            if rng.random() < 0.1:
                continue
            b = sim.boxes[i, j]
            q[i, k], chi[i, k] = q0 + (b[0] + b[2]) / 2 * dq, c0 + (b[1] + b[3]) / 2 * dchi
            wq[i, k], wc[i, k] = (b[2] - b[0]) * dq, (b[3] - b[1]) * dchi
            score[i, k], labels[i, k], feature[i, k] = 0.9, sim.labels[i, j], sim.feature_id[i, j]
            k += 1
        n[i] = k
    trk = track(q, chi, score, n, wq, wc, labels)
    seen = [f for f in np.unique(feature[feature >= 0]) if (feature == f).sum() >= 3]
    assert len(seen) >= 20
    for f in seen:
        ids = trk.track_id[feature == f]
        assert (ids >= 0).all()
        assert np.bincount(ids).max() >= 0.95 * len(ids), f"feature {f} split: {ids}"
    for t in np.unique(trk.track_id[trk.track_id >= 0]):
        owners = np.unique(feature[trk.track_id == t])
        assert len(owners) == 1, f"track {t} follows features {owners}"
