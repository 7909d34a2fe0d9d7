"""`calphad propagate` and its draws run on the executor: kill -9 mid-run, rerun, same results,
and the draws stored before the kill are not computed again."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

BIN = Path(sys.executable).parent
CACHE = ".matterflow-cache"


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory):
    """A chain over the two default offsets of the published Cu-Mg model (N(0, 300 J/mol))."""
    from matterflow.calphad.tasks import build_model, sample
    from matterflow.core.store import atomic_h5, write_outputs

    model, dbf = build_model(None, sample.make_params({}))
    chain = np.random.default_rng(0).normal(0, 300.0, size=(10, 4, len(model.parameter_names)))
    path = tmp_path_factory.mktemp("chain") / "chain.h5"
    with atomic_h5(path) as f:
        write_outputs(f, {"chain": chain, "model_tdb": dbf.to_string(fmt="tdb"),
                          "parameter_names": list(model.parameter_names)},
                      {"chain": "J/mol"})
    return path


def _cmd(chain, out):
    return [str(BIN / "matterflow"), "calphad", "propagate", str(chain), "--out", str(out),
            "--draws", "8", "--batch-size", "1", "--workers", "1", "--t-min", "700",
            "--t-max", "1200", "--quiet"]


def _batches(out):
    return sorted((out / CACHE).glob("*/bs1/batch-*.h5"))


def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(chain_file, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(chain_file, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_batches(out)) < 2 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its Dask worker
    proc.wait()
    stored = {p.name: p.stat().st_mtime_ns for p in _batches(out)}
    assert len(stored) >= 2, "no draws were stored before the kill"
    assert not (out / "draws.h5").exists() and len(stored) < 8, "killed too late"
    # mark one stored draw: if the rerun reuses it, the mark shows in the results
    marked = _batches(out)[0]
    k0 = int(marked.stem.split("-")[1])
    with h5py.File(marked, "r+") as f:
        ds = f["batch/invariant_temperature_k"]
        ds[...] = ds[()] + 0.125
        mark = ds[0].copy()

    done = subprocess.run(_cmd(chain_file, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    clean = tmp_path / "clean"
    ok = subprocess.run(_cmd(chain_file, clean), capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    with h5py.File(out / "draws.h5") as a, h5py.File(clean / "draws.h5") as b:
        np.testing.assert_array_equal(a["invariant_temperature_k"][k0], mark)  # reused
        rest = [k for k in range(8) if k != k0]
        for name in ("invariant_temperature_k", "invariant_x", "phase_set_code", "boundary_x",
                     "query_activity"):
            np.testing.assert_array_equal(a[name][()][rest], b[name][()][rest])
        np.testing.assert_array_equal(a["draws"][()], b["draws"][()])
    assert json.loads((clean / "invariants.json").read_text())["invariants"]
