"""`xrd process --follow`: a writer process appends frames (SWMR HDF5, a folder of TIFFs); every
frame is processed exactly once and the results equal a run without --follow on the final file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from matterflow.diffraction.xrd.sample_data import write_frames_h5

WRITER = Path(__file__).with_name("follow_writer.py")


def _spec(tmp_path, series, poni_file, path, **input_opts):
    (tmp_path / "geometry.poni").write_text(poni_file.read_text())
    t = series.tth_a_deg[0]
    spec = {"name": "t", "input": {"path": path, **input_opts}, "geometry": "geometry.poni",
            "batch_size": 3,
            "plugins": [{"plugin": "mask", "high": 1e7},
                        {"plugin": "integrate1d", "npt": 300, "unit": "2th_deg"},
                        {"plugin": "fit_peaks", "centers": [round(float(t[0]), 1)], "window": 0.3}],
            "reduce": {"centers": [round(float(t[0]), 1)], "window": 0.3},
            "export": {"nexus": False}}
    wf = tmp_path / f"process-{Path(path).stem or 'folder'}.yaml"
    wf.write_text(yaml.safe_dump(spec))
    return wf


def _writer(kind, src, dest, interval=0.15):
    return subprocess.Popen([sys.executable, str(WRITER), kind, str(src), "entry/data/data",
                             str(dest), str(interval)])


def _compare(follow_h5, plain_h5, n):
    with h5py.File(follow_h5) as a, h5py.File(plain_h5) as b:
        assert list(a["process/frame_index"][()]) == list(range(n))   # each frame once, in order
        assert list(a["process/source_frame"][()]) == list(b["process/source_frame"][()])
        np.testing.assert_array_equal(a["process/status"][()], b["process/status"][()])
        for k in ("radial", "intensity", "sigma", "fit_peaks/center"):
            np.testing.assert_allclose(a["process/" + k][()], b["process/" + k][()], rtol=1e-6)
        np.testing.assert_allclose(a["reduce/intensity"][()], b["reduce/intensity"][()], rtol=1e-6)


@pytest.mark.parametrize("kind", ["h5", "tiff"])
def test_follow_equals_plain_run(tmp_path, series, poni_file, kind):
    from matterflow.diffraction.xrd.follow import follow_process
    from matterflow.diffraction.xrd.processing import run_process

    src = write_frames_h5(tmp_path / "src.h5", series.frames, compression="none",
                          dtype=np.float32)
    n = len(series.frames)
    dest = tmp_path / ("live.h5" if kind == "h5" else "live")
    wf = _spec(tmp_path, series, poni_file, dest.name, **({} if kind == "h5" else
                                                           {"pattern": "*.tif"}))
    proc = _writer(kind, src, dest)
    msgs: list[str] = []
    try:
        res, summary = follow_process(wf, tmp_path / "follow", idle_timeout=3.0, poll_s=0.05,
                                      settle_s=0.3, report=msgs.append)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert summary.stopped_by == "idle" and summary.n_new == n and res.n_frames == n
    assert any("frames/s" in m for m in msgs) and any("waiting" in m for m in msgs)
    # more than one batch was written while the writer was still writing
    assert len(summary.batches) >= 2
    plain = run_process(wf, tmp_path / "plain", workers=1, report=False)
    assert plain.n_frames == n
    _compare(res.results, plain.results, n)


def test_follow_sigterm_then_resume(tmp_path, series, poni_file):
    """SIGTERM mid-series: the current batch is finished, results written, exit 0; a rerun
    resumes and the union is every frame exactly once."""
    from matterflow.diffraction.xrd.processing import run_process

    frames = np.concatenate([series.frames, series.frames[:4]])   # 12 frames
    src = write_frames_h5(tmp_path / "src.h5", frames, compression="none", dtype=np.float32)
    dest = tmp_path / "live.h5"
    wf = _spec(tmp_path, series, poni_file, "live.h5")
    out = tmp_path / "follow"
    proc = _writer("h5", src, dest, interval=0.15)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    exe = os.path.join(os.path.dirname(sys.executable), "matterflow")
    cmd = [exe, "xrd", "process", str(wf), "--out", str(out),
           "--follow", "--idle-timeout", "4"]
    try:
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not list((out / "follow").glob("batch-*.h5")):
            time.sleep(0.1)
        run.send_signal(signal.SIGTERM)
        so, se = run.communicate(timeout=20)
        assert run.returncode == 0, so + se
        assert "follow stopped (signal)" in so, so + se
        with h5py.File(out / "results.h5") as f:
            first = len(f["process/status"])
        assert 0 < first < len(frames)
    finally:
        proc.wait(timeout=30)
    # the writer is done: the rerun (the API the command calls) takes the rest, stops when idle
    from matterflow.diffraction.xrd.follow import follow_process

    msgs: list[str] = []
    _res, s2 = follow_process(wf, out, idle_timeout=1.0, poll_s=0.05, report=msgs.append)
    assert f"resuming after {first} frames done by an earlier run" in msgs
    assert s2.n_resumed == first and s2.n_new == len(frames) - first
    plain = run_process(wf, tmp_path / "plain", workers=1, report=False)
    _compare(out / "results.h5", plain.results, len(frames))


def test_follow_refuses_other_settings(tmp_path, series, poni_file):
    from matterflow.core.errors import InputError
    from matterflow.diffraction.xrd.follow import follow_process

    write_frames_h5(tmp_path / "live.h5", series.frames[:2], compression="none")
    wf = _spec(tmp_path, series, poni_file, "live.h5")
    follow_process(wf, tmp_path / "o", idle_timeout=0.5, poll_s=0.05, settle_s=0.1)
    spec = yaml.safe_load(wf.read_text())
    spec["plugins"][1]["npt"] = 200
    wf.write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match="other settings"):
        follow_process(wf, tmp_path / "o", idle_timeout=0.5, poll_s=0.05, settle_s=0.1)
    res, s = follow_process(wf, tmp_path / "o", idle_timeout=0.5, poll_s=0.05, settle_s=0.1,
                            force=True)
    assert s.n_new == 2 and res.n_frames == 2
