"""gixd figures: precision-recall curves and AP50 against |q| against hand-computed values; the
CLI writes the figures of detect, evaluate and track."""

import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.diffraction.gixd.tasks import evaluate

runner = CliRunner()
NAN4 = [np.nan] * 4


def _pad(rows, n=4):
    out = np.full((n, 4), np.nan)
    out[:len(rows)] = rows
    return out


def test_pr_curve_and_ap_vs_q_by_hand():
    # one image, columns 0..99 map to |q| = 1.0 + 0.1 * (column - 0.5 + 0.5) ...
    gt = _pad([[10, 10, 20, 20], [70, 10, 80, 20]])                    # peaks at q ~ 2.5, 8.5
    det = _pad([[10, 10, 20, 20], [40, 40, 50, 50], [70, 10, 80, 21]])   # TP, FP, TP (IoU 10/11)
    scores = np.array([[0.9, 0.8, 0.7, np.nan]])
    labels = np.array([[1, 1, 1, 0]])
    q_axis = 1.0 + 0.1 * (np.arange(100) + 0.5)
    r = evaluate(det[None], scores, labels, np.array([3]), gt[None], np.array([[1, 1, 0, 0]]),
                 np.array([2]), q_axis=q_axis, params={"n_q_bins": 2})
    # precision after each detection 1, 1/2, 2/3 at recall 1/2, 1/2, 1: interpolated 1 up to
    # recall 0.5 (51 of the 101 points) and 2/3 above (50 points)
    expect = np.r_[np.ones(51), np.full(50, 2 / 3)]
    np.testing.assert_allclose(r.pr_precision[0, 0], expect)
    assert np.isnan(r.pr_precision[1]).all()                    # no ring in the labels
    assert np.isclose(r.ap50, expect.mean())
    # bins |q| 1..6 and 6..11: the FP (centre column 45, q 5.5) falls in the first bin with the
    # first peak -> AP50 1 there (the TP scores higher); the second bin: one TP -> 1
    np.testing.assert_allclose(r.q_bin_edges, [1.0, 6.0, 11.0])
    np.testing.assert_allclose(r.ap50_vs_q, [1.0, 1.0])
    assert list(r.n_gt_vs_q) == [1, 1]
    # without the q axis the curves stay, the |q| bins are NaN
    r2 = evaluate(det[None], scores, labels, np.array([3]), gt[None], np.array([[1, 1, 0, 0]]),
                  np.array([2]))
    assert np.isnan(r2.ap50_vs_q).all() and np.isclose(r2.ap50, r.ap50)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("gixdfig")
    r = runner.invoke(app, ["gixd", "simulate", str(d / "sim.h5"), "--n", "3", "--size", "64",
                            "--detector-px", "128", "--keep-detector", "--mode", "series"])
    assert r.exit_code == 0, r.output
    return d


def test_cli_detection_figures_over_detector_images(sim, tmp_path):
    data = sim / "sim.h5"
    figs, peaks = tmp_path / "figs", tmp_path / "peaks.h5"
    r = runner.invoke(app, ["gixd", "detect", str(data), "--method", "classical", "--geometry",
                            str(sim / "sim.poni"), "--incidence-deg", "0.2", "-p", str(peaks),
                            "-o", str(tmp_path / "run"), "-q", "--figures", str(figs / "detect")])
    assert r.exit_code == 0, r.output
    assert len(list((figs / "detect").glob("*.png"))) == 3          # frames 0, 1, 2


def test_cli_evaluate_and_track_figures(sim, tmp_path):
    data = sim / "sim.h5"
    figs, peaks = tmp_path / "figs", tmp_path / "peaks.h5"
    r = runner.invoke(app, ["gixd", "detect", str(data), "--method", "classical", "-p",
                            str(peaks), "-o", str(tmp_path / "run2"), "-q",
                            "--figures", str(figs / "polar")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["gixd", "evaluate", str(peaks), str(data), "--figures",
                            str(figs / "eval"), "-o", str(tmp_path / "eval.h5")])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (figs / "eval").glob("*.png"))
    assert len(names) == 2 and "recall" in names[0].lower() + names[1].lower(), names
    assert len(list((figs / "polar").glob("*.png"))) == 3
    r = runner.invoke(app, ["gixd", "track", str(peaks), "-o", str(tmp_path / "tracks.h5")])
    assert r.exit_code == 0 and (tmp_path / "tracks.png").exists(), r.output
