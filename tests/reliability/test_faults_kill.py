"""Fault injection: a mapped step of ``matterflow run`` killed (SIGKILL) or interrupted
(SIGINT) at a random point, then rerun: the results are identical to an uninterrupted run
and no batch that was stored is computed again; two runs on one ``--out`` at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

EXE = str(Path(sys.executable).parent / "matterflow")
N_FRAMES, BATCH = 64, 2
SEED = int(os.environ.get("MATTERFLOW_FAULT_SEED", "17"))


@pytest.fixture(scope="module")
def scan(tmp_path_factory, series, poni_file):
    """A 64-frame scan and a workflow whose mapped step (xrd.process, 32 batches) runs ~1 s."""
    from matterflow.diffraction.xrd.sample_data import write_frames_h5

    d = tmp_path_factory.mktemp("scan")
    write_frames_h5(d / "scan.h5", np.concatenate([series.frames] * (N_FRAMES // 8)))
    (d / "geometry.poni").write_text(poni_file.read_text())
    chain = [{"plugin": "integrate1d", "npt": 400, "engine": "pyfai",
              "method": ["full", "histogram", "cython"]},
             {"plugin": "fit_peaks", "centers": [round(float(series.tth_a_deg[0][0]), 1)],
              "window": 0.3}]
    wf = {"name": "faults", "steps": [
        {"id": "frames", "task": "xrd.frames", "inputs": {"source": "scan.h5"}},
        {"id": "process", "task": "xrd.process", "batch_size": BATCH,
         "inputs": {"frame": "frames.index", "source": "scan.h5", "geometry": "geometry.poni"},
         "params": {"plugins": chain}}]}
    (d / "wf.yaml").write_text(yaml.safe_dump(wf))
    return d


def _cmd(scan, out, *extra):
    return [EXE, "run", str(scan / "wf.yaml"), "--out", str(out), "--workers", "2", "--quiet",
            "--no-report", *extra]


def _read(results):
    with h5py.File(results, "r") as f:
        g = f["process"]
        return {k: g[k][()] for k in ("frame_index", "status", "intensity", "sigma", "seconds")}


@pytest.fixture(scope="module")
def reference(scan, cli_env):
    """The same workflow, never interrupted."""
    out = scan / "reference"
    r = subprocess.run(_cmd(scan, out, "--threads"), capture_output=True, text=True,
                       timeout=180, env=cli_env)
    assert r.returncode == 0, r.stderr
    return _read(out / "results.h5")


def _batches(out):
    return sorted(Path(out, ".matterflow-cache").glob("*/bs*/batch-*.h5"))


def _interrupt(scan, out, sig, mode, env, rng):
    """Start a run, wait for a random number of stored batches (+ a random delay), signal
    its whole process group; the batches it stored, frame index -> seconds."""
    target = rng.randint(2, N_FRAMES // BATCH - 6)
    proc = subprocess.Popen(_cmd(scan, out, mode), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    t_end = time.monotonic() + 120
    while len(_batches(out)) < target and proc.poll() is None and time.monotonic() < t_end:
        time.sleep(0.003)
    time.sleep(rng.uniform(0, 0.03))
    os.killpg(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    stored = {}
    for part in _batches(out):
        with h5py.File(part, "r") as f:
            for i, s in zip(f["batch/frame_index"][()], f["batch/seconds"][()], strict=True):
                stored[int(i)] = float(s)
    return proc.returncode, err, stored


def _rerun_matches(scan, out, env, stored, reference):
    r = subprocess.run(_cmd(scan, out, "--threads"), capture_output=True, text=True,
                       timeout=180, env=env)
    assert r.returncode == 0, r.stderr
    got = _read(Path(out) / "results.h5")
    for k in ("frame_index", "status", "intensity", "sigma"):
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)
    # a batch computed again would have new per-frame timings: the stored ones are kept
    assert stored, "the interrupted run stored no batch"
    for i, s in stored.items():
        assert got["seconds"][i] == s, f"frame {i} was recomputed"
    assert not list(Path(out).rglob("*.tmp")) and not (Path(out) / ".matterflow-cache").exists()


@pytest.mark.parametrize("mode", [pytest.param("--processes", marks=pytest.mark.slow),
                                  "--threads"])
def test_sigkill_in_a_mapped_step_then_rerun_is_identical_and_recomputes_nothing_stored(
        scan, reference, cli_env, mode, tmp_path):
    rng = random.Random(f"{SEED}-kill-{mode}")
    rc, _err, stored = _interrupt(scan, tmp_path / "out", signal.SIGKILL, mode, cli_env, rng)
    assert rc == -signal.SIGKILL
    assert 0 < len(stored) < N_FRAMES, "the kill did not land inside the mapped step"
    assert (tmp_path / "out" / ".matterflow.lock").exists()   # stale lock, taken over below
    _rerun_matches(scan, tmp_path / "out", cli_env, stored, reference)


@pytest.mark.parametrize("mode", ["--processes",
                                  pytest.param("--threads", marks=pytest.mark.slow)])
def test_sigint_in_a_mapped_step_stops_cleanly_then_rerun_is_identical(
        scan, reference, cli_env, mode, tmp_path):
    rng = random.Random(f"{SEED}-int-{mode}")
    rc, err, stored = _interrupt(scan, tmp_path / "out", signal.SIGINT, mode, cli_env, rng)
    assert rc == 130, err
    assert "interrupted" in err and "rerun to resume" in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / ".matterflow.lock").exists()  # released on the way out
    _rerun_matches(scan, tmp_path / "out", cli_env, stored, reference)


def test_two_concurrent_runs_on_one_out_second_stops_at_once_or_waits(scan, reference, cli_env,
                                                                        tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(_cmd(scan, out, "--threads"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=cli_env)
    t_end = time.monotonic() + 60
    while not (out / ".matterflow.lock").exists() and time.monotonic() < t_end:
        time.sleep(0.01)
    t0 = time.monotonic()
    second = subprocess.run(_cmd(scan, out, "--threads"), capture_output=True, text=True,
                            timeout=60, env=cli_env)
    assert second.returncode == 2, second.stderr
    assert "another run" in second.stderr.lower() or "in use" in second.stderr.lower(), \
        second.stderr
    assert str(first.pid) in second.stderr and "--wait" in second.stderr
    assert "Traceback" not in second.stderr and time.monotonic() - t0 < 15
    waiter = subprocess.run(_cmd(scan, out, "--threads", "--wait"), capture_output=True,
                            text=True, timeout=180, env=cli_env)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert waiter.returncode == 0, waiter.stderr
    got = _read(out / "results.h5")
    np.testing.assert_array_equal(got["intensity"], reference["intensity"])
    assert not (out / ".matterflow.lock").exists()
