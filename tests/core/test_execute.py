"""Executor: same results on 1 and 2 workers, on a real scheduler, and resume after kill -9."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from matterflow.core.execute import run_workflow
from matterflow.core.store import Results
from matterflow.core.workflow import parse_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "matterflow" / "examples"
BIN = Path(sys.executable).parent
SMALL = """\
name: small
steps:
  - id: walks
    task: core.random_walks
    params: {n_walkers: 60, n_steps: 300, dimensions: 2, step_nm: 0.2, dt_ps: 0.5, seed: 3}
  - id: msd
    task: core.mean_squared_displacement
    inputs: {walk: walks.positions_nm}
    params: {max_lag: 20, dt_ps: 0.5}
    batch_size: 7
  - id: fit
    task: core.fit_diffusion
    inputs: {msd: msd.msd_nm2, lag: msd.lag_ps}
    params: {dimensions: 2}
"""


def _arrays(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def one_worker_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("w1")
    summary = run_workflow(parse_workflow(SMALL), out, workers=1)
    return summary


def test_diffusion_matches_exact_value(one_worker_run):
    res = Results(one_worker_run.results)
    d = res["fit"]["diffusion_nm2_per_ps"]
    sem = res["fit"]["diffusion_sem_nm2_per_ps"]
    exact = res["walks"]["exact_diffusion_nm2_per_ps"]
    assert exact == pytest.approx(0.2**2 / (2 * 0.5))
    assert abs(d - exact) < 4 * sem  # the estimate is consistent with the exact answer
    assert res["msd"]["msd_nm2"].shape == (60, 20)  # stacked over the 60 mapped walkers
    assert res.provenance["status"] == "complete" and res.provenance["seeds"] == {"walks": 3}


def test_same_results_on_one_and_two_workers(one_worker_run, tmp_path):
    two = run_workflow(parse_workflow(SMALL), tmp_path, workers=2)
    a, b = _arrays(one_worker_run.results), _arrays(two.results)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_threads_give_the_same_results_as_processes(one_worker_run, tmp_path):
    threads = run_workflow(parse_workflow(SMALL), tmp_path, workers=2, processes=False)
    assert Results(threads.results).provenance["executor"] == "LocalCluster(2 threads)"
    assert Results(one_worker_run.results).provenance["executor"] == \
        "LocalCluster(1 process)"
    a, b = _arrays(one_worker_run.results), _arrays(threads.results)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_rerun_reuses_stored_steps_and_recomputes_changed_ones(one_worker_run, tmp_path):
    out = tmp_path / "o"
    first = run_workflow(parse_workflow(SMALL), out, workers=1)
    assert first.computed == ["walks", "msd", "fit"]
    again = run_workflow(parse_workflow(SMALL), out, workers=1)
    assert again.computed == [] and set(again.reused) == {"walks", "msd", "fit"}
    changed = run_workflow(parse_workflow(SMALL.replace("dimensions: 2}", "dimensions: 1}")), out,
                           workers=1)
    assert changed.computed == ["fit"]
    forced = run_workflow(parse_workflow(SMALL), out, workers=1, force=True)
    assert sorted(forced.computed) == ["fit", "msd", "walks"]
    assert not (out / ".matterflow-cache").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_existing_dask_scheduler_runs_the_quickstart(one_worker_run, tmp_path):
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                              str(port), "--no-dashboard"], stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(BIN / "dask"), "worker", addr, "--nworkers", "2", "--nthreads",
                               "1", "--no-dashboard"], stderr=subprocess.DEVNULL)
    try:
        wf = tmp_path / "small.yaml"
        wf.write_text(SMALL)
        cmd = [str(BIN / "matterflow"), "run", str(wf), "--out", str(tmp_path / "o"),
               "--scheduler", addr, "--quiet"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        res = Results(tmp_path / "o" / "results.h5")
        assert res.provenance["executor"] == f"scheduler {addr}"
        a, b = _arrays(one_worker_run.results), _arrays(res.path)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert (tmp_path / "o" / "report.html").exists()
    finally:
        worker.terminate()
        sched.terminate()
        worker.wait(timeout=30)
        sched.wait(timeout=30)


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    from matterflow.core.errors import ComputeError

    with pytest.raises(ComputeError, match="cannot reach the Dask scheduler"):
        run_workflow(parse_workflow(SMALL), tmp_path, scheduler=f"tcp://127.0.0.1:{_free_port()}")


RESUMABLE = textwrap.dedent('''
    import sys, time
    from dataclasses import dataclass
    from pathlib import Path
    from matterflow.core import quantity, task
    from matterflow.core.registry import register
    from matterflow.core.execute import run_workflow
    from matterflow.core.workflow import parse_workflow

    LOG = Path(sys.argv[2])

    @dataclass(frozen=True)
    class Sq:
        y: float = quantity("m^2")

    @task("test.slow_square", map_over="x")
    def slow_square(x) -> Sq:
        """Square, slowly."""
        with open(LOG, "a") as fh:
            fh.write(f"{x}\\n")
        time.sleep(0.15)
        return Sq(y=float(x) ** 2)

    if __name__ == "__main__":  # Dask starts worker processes that import this file
        register([slow_square])
        wf = parse_workflow("""
    steps:
      - id: walks
        task: core.random_walks
        params: {n_walkers: 3, n_steps: 5}
      - id: sq
        task: test.slow_square
        inputs: {x: walks.time_ps}
        batch_size: 2
    """)
        s = run_workflow(wf, sys.argv[1], workers=1)
        print("computed", ",".join(s.computed), "reused", ",".join(s.reused))
''')


def test_kill_9_then_rerun_resumes(tmp_path):
    """A run killed mid-way keeps finished steps and batches; the rerun does only the rest."""
    script, out, log = tmp_path / "run.py", tmp_path / "out", tmp_path / "calls.txt"
    script.write_text(RESUMABLE)
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(log)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    cache = out / ".matterflow-cache"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for some finished batches of step 'sq'
        if len(list(cache.glob("*/bs2/batch-*.h5"))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask workers
    proc.wait()
    assert not (out / "results.h5").exists()
    calls_before = len(log.read_text().split())
    assert calls_before < 6  # killed before the end
    done = subprocess.run([sys.executable, str(script), str(out), str(log)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "computed sq reused walks" in done.stdout
    calls = log.read_text().split()
    assert len(calls) - calls_before <= 6 - 4  # at least two stored batches were not redone
    res = Results(out / "results.h5")
    np.testing.assert_allclose(res["sq"]["y"], np.arange(6.0) ** 2)
