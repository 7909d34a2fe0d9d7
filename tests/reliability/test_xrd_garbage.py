"""Issue 17 item 7, no silent garbage in XRD: blank, constant and dim frames are flagged
suspect (and left out of means unless asked); fit windows outside the radial range are
an input error before any frame is processed; a failed fit says so (status + reason)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.diffraction.xrd.fitting import FIT_FEW_POINTS, FIT_NO_PEAK, fit_peaks
from matterflow.diffraction.xrd.pipeline import Pipeline
from matterflow.diffraction.xrd.sample_data import write_frames_h5
from matterflow.diffraction.xrd.tasks import reduce

runner = CliRunner()
CHAIN = [{"plugin": "integrate1d", "npt": 600, "unit": "2th_deg"}]


def _fit_chain(center, window=0.3, **integrate):
    return [{**CHAIN[0], **integrate},
            {"plugin": "fit_peaks", "centers": [center], "window": window}]


def test_all_zero_frame_is_suspect_and_not_fitted(series, poni_file):
    t0 = round(float(series.tth_a_deg[0][0]), 2)
    p = Pipeline(str(poni_file), _fit_chain(t0))
    res = p.run(image=np.zeros((256, 256), np.uint32), index=0)
    assert res.status == 2 and "every pixel of the frame is 0" in res.reason
    assert res.fit_peaks.status[0] == 3 and np.isnan(res.fit_peaks.height[0])
    good = p.run(image=series.frames[0], index=1)
    assert good.status == 0 and good.reason == ""
    assert abs(good.fit_peaks.center[0] - series.tth_a_deg[0][0]) < 0.02


def test_constant_frame_is_suspect(poni_file):
    p = Pipeline(str(poni_file), CHAIN)
    res = p.run(image=np.full((256, 256), 7.0, np.float32), index=0)
    assert res.status == 2 and "every pixel of the frame is 7 (constant frame)" in res.reason


def test_frame_blank_behind_the_mask_is_suspect(poni_file, series):
    img = np.zeros((256, 256), np.float32)
    img[:, :3] = 1e9                                  # hot columns, masked by the threshold
    p = Pipeline(str(poni_file), [{"plugin": "mask", "high": 1e7}, *CHAIN])
    res = p.run(image=img, index=0)
    assert res.status == 2 and "pattern is flat" in res.reason


def test_frames_far_below_the_series_median_are_flagged_and_left_out_of_the_mean():
    rng = np.random.default_rng(1)
    inten = 100 + rng.normal(0, 1, (6, 50))
    inten[4] *= 0.02                                  # a shutter/beam drop-out
    radial = np.tile(np.linspace(5, 20, 50), (6, 1))
    status = np.array([0, 0, 2, 0, 0, 0])             # frame 2: blank, from xrd.process
    reason = ["", "", "suspect: every pixel of the frame is 0", "", "", ""]
    red = reduce(radial, inten, status=status, reason=reason)
    assert list(red.frame_status) == [0, 0, 2, 0, 2, 0]
    assert "of the series' median" in red.frame_reason[4]
    assert red.n_suspect == 2 and red.n_frames == 4 and list(red.used) == [1, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(red.intensity, inten[[0, 1, 3, 5]].mean(axis=0))
    both = reduce(radial, inten, status=status, reason=reason, params={"include_suspect": True})
    assert both.n_frames == 6
    np.testing.assert_allclose(both.intensity, inten.mean(axis=0))


def test_fit_of_a_flat_window_is_no_peak_not_a_tiny_height():
    x = np.linspace(10, 14, 400)
    fit = fit_peaks(x, np.zeros_like(x), None, [12.0], 0.3)
    assert fit.status[0] == FIT_NO_PEAK and "flat window" in fit.reason[0]
    assert np.isnan(fit.height[0]) and np.isnan(fit.center[0])


def test_fit_window_outside_the_pattern_is_too_few_points():
    x = np.linspace(10, 14, 400)
    y = 5 + 100 * np.exp(-((x - 12) / 0.05) ** 2)
    fit = fit_peaks(x, y, None, [12.0, 30.0], 0.3)
    assert fit.status[0] == 0 and abs(fit.center[0] - 12.0) < 1e-3
    assert fit.status[1] == FIT_FEW_POINTS and "window" in fit.reason[1]
    assert np.isnan(fit.center[1])


def test_fit_failed_on_a_frame_is_status_3_with_the_reason(series, poni_file):
    # centre inside integrate1d's radial range, but its window holds too few bins
    p = Pipeline(str(poni_file), _fit_chain(19.99, window=0.01, radial_range=(5.0, 20.0)))
    res = p.run(image=series.frames[0], index=0)
    assert res.status == 3
    assert "fit_peaks: peak 0 at 19.99" in res.reason and "points" in res.reason
    assert res.fit_peaks.status[0] == FIT_FEW_POINTS and np.isnan(res.fit_peaks.center[0])
    assert np.isfinite(res.intensity).all()           # the pattern itself is good


def test_fit_centre_outside_the_radial_range_is_an_input_error_before_processing(poni_file):
    with pytest.raises(InputError, match=r"centers\[0\] = 40 lies outside the radial range"):
        Pipeline(str(poni_file), _fit_chain(40.0), shape=(256, 256))
    with pytest.raises(InputError, match=r"outside the radial range 5\.\.20"):
        Pipeline(str(poni_file), _fit_chain(22.0, radial_range=(5.0, 20.0)), shape=(256, 256))


def _process_file(tmp_path, series, poni_file, frames, **spec_extra):
    write_frames_h5(tmp_path / "frames.h5", frames)
    (tmp_path / "geometry.poni").write_text(poni_file.read_text())
    t0 = round(float(series.tth_a_deg[0][0]), 1)
    spec = {"name": "g", "input": {"path": "frames.h5"}, "geometry": "geometry.poni",
            "plugins": [{"plugin": "integrate1d", "npt": 600, "unit": "2th_deg"},
                        {"plugin": "fit_peaks", "centers": [t0], "window": 0.3}],
            "reduce": {"centers": [t0], "window": 0.3}, **spec_extra}
    wf = tmp_path / "process.yaml"
    wf.write_text(yaml.safe_dump(spec))
    return wf


def test_process_cli_window_outside_radial_range_exits_2_before_any_frame(tmp_path, series,
                                                                           poni_file):
    wf = _process_file(tmp_path, series, poni_file, series.frames[:2])
    spec = yaml.safe_load(wf.read_text())
    spec["plugins"][1]["centers"] = [80.0]
    wf.write_text(yaml.safe_dump(spec))
    r = runner.invoke(app, ["xrd", "process", str(wf), "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 2 and "centers[0] = 80 lies outside the radial range" in r.output
    assert "process.yaml" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o" / "results.h5").exists()
    spec["plugins"][1]["centers"] = [12.0]
    spec["reduce"]["centers"] = [-3.0]
    wf.write_text(yaml.safe_dump(spec))
    r = runner.invoke(app, ["xrd", "process", str(wf), "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 2 and "reduce.centers[0] = -3 lies outside" in r.output


def test_process_cli_zeroed_frame_is_suspect_and_left_out_of_the_mean(tmp_path, series,
                                                                        poni_file):
    frames = series.frames[:6].copy()
    frames[2] = 0                                     # dropped-out frame
    frames[4] = (frames[4] * 0.01).astype(frames.dtype)  # beam loss
    wf = _process_file(tmp_path, series, poni_file, frames)
    out = tmp_path / "out"
    r = runner.invoke(app, ["xrd", "process", str(wf), "--out", str(out), "--workers", "1",
                            "-q", "--no-report"])
    assert r.exit_code == 0, r.output
    assert "2 frame(s) suspect" in r.output and "frame 2:" in r.output and "frame 4:" in r.output
    with h5py.File(out / "results.h5") as f:
        st = f["process/status"][()]
        assert st[2] == 2 and (st[[0, 1, 3, 5]] == 0).all()
        assert f["process/fit_peaks/status"][2, 0] == 3
        assert list(f["reduce/frame_status"][()]) == [0, 0, 2, 0, 2, 0]
        assert f["reduce/n_frames"][()] == 4 and f["reduce/n_suspect"][()] == 2
        good = f["process/intensity"][()][[0, 1, 3, 5]].mean(axis=0)
        np.testing.assert_allclose(f["reduce/intensity"][()], good, rtol=1e-6)
    rows = (out / "fits.csv").read_text().splitlines()
    assert rows[0].split(",")[4] == "fit_status" and rows[3].split(",")[2:5] == ["2", "1", "3"]
