"""`electrons dft` runs its snapshots on the executor: kill -9 mid-run, rerun, the snapshots
stored before the kill are reused (not recomputed) and the rest match an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from matterflow.electrons.snapshot import load_snapshot

BIN = Path(sys.executable).parent
N = 8


def _cmd(out):
    return [str(BIN / "matterflow"), "electrons", "dft", "--out", str(out), "--snapshots", str(N),
            "--kpts", "1", "1", "1", "--mesh", "8", "8", "8", "--energy-min", "-6",
            "--energy-max", "14", "--workers", "1", "--quiet"]


def _batches(out):
    return sorted((out / ".matterflow-run" / ".matterflow-cache").glob("*/bs1/batch-*.h5"))


def test_kill_9_then_rerun_resumes(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_batches(out)) < 2 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its Dask worker
    proc.wait()
    stored = _batches(out)
    assert len(stored) >= 2, "no snapshot was stored before the kill"
    assert len(stored) < N and not list(out.glob("snapshot_*.h5")), "killed too late"
    # mark one stored snapshot: if the rerun reuses it, the mark shows in its file
    k0 = int(stored[0].stem.split("-")[1])
    with h5py.File(stored[0], "r+") as f:
        ds = f["batch/total_energy_ev"]
        ds[...] = ds[()] + 0.5
        mark = float(np.ravel(ds[()])[0])

    done = subprocess.run(_cmd(out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    clean = tmp_path / "clean"
    ok = subprocess.run(_cmd(clean), capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    for k in range(N):
        a = load_snapshot(out / f"snapshot_{k:03d}.h5")
        b = load_snapshot(clean / f"snapshot_{k:03d}.h5")
        if k == k0:
            assert a.total_energy_ev == mark  # reused from the stored batch
            continue
        assert a.total_energy_ev == b.total_energy_ev
        np.testing.assert_array_equal(a.ldos, b.ldos)
        np.testing.assert_array_equal(a.atoms.positions, b.atoms.positions)
    # provenance of the run beside the snapshot files
    with h5py.File(out / ".matterflow-run" / "results.h5") as f:
        assert "electrons.dft" in f.attrs["workflow_text"] and f.attrs["status"] == "complete"
