"""`--cluster FILE.yaml`: a validated job-queue spec, started with dask-jobqueue.

The runs use dask-jobqueue's own local job runner (`system: local`,
`dask_jobqueue.local.LocalCluster`): the real job machinery (job scripts, job
submission, workers joining the scheduler), with local processes instead of a
batch system.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matterflow.core.cluster import job_script, load_cluster_spec, parse_cluster_spec
from matterflow.core.errors import InputError
from matterflow.core.execute import run_steps, run_workflow
from matterflow.core.store import Results
from matterflow.core.workflow import parse_workflow

BIN = Path(sys.executable).parent
FLOW = """\
steps:
  - id: walks
    task: core.random_walks
    params: {n_walkers: 40, n_steps: 50, seed: 3}
  - id: msd
    task: core.mean_squared_displacement
    inputs: {walk: walks.positions_nm}
    params: {max_lag: 10}
    batch_size: 8
"""
SLURM = """\
system: slurm
queue: normal
account: mat123
cores: 8
processes: 2
memory: 16GB
walltime: "02:00:00"
jobs: 4
prologue: ["module load python"]
job_directives: ["--constraint=cpu"]
"""


def test_slurm_job_script_follows_the_spec():
    script = job_script(parse_cluster_spec(SLURM))
    for line in ("#SBATCH -p normal", "#SBATCH -A mat123", "#SBATCH -n 1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH -t 02:00:00", "#SBATCH --constraint=cpu", "module load python"):
        assert line in script, line
    assert "--nworkers 2" in script and "--nthreads 4" in script  # 8 cores / 2 processes


@pytest.mark.parametrize("text, where", [
    ("system: slurm\ncores: 0\n", "c.yaml:2: cores: input should be greater than or equal to 1; got 0"),
    ("system: slurm\nmemory: lots\n", "c.yaml:2: memory: string should match pattern"),
    ("system: slurm\nqueue: a\nnodes: 3\n", "c.yaml:3: nodes: unknown parameter; accepted: system"),
    ("system: torque\n", "c.yaml:1: system: input should be 'slurm', 'pbs', 'sge', 'lsf' or 'local'"),
    ("system: pbs\nadaptive: {minimum: 3, maximum: 1}\n", "c.yaml:2: adaptive: value error, maximum (1)"),
    ("system: lsf\ncores: 2\nprocesses: 4\n", "processes (4) must be <= cores (2)"),
    ("system: sge\nwalltime: 1h\n", "c.yaml:2: walltime: string should match pattern"),
    ("- system\n", "c.yaml:1: a cluster file must be a mapping"),
])
def test_bad_cluster_file_names_line_and_field(text, where, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_cluster_spec(path)
    assert where.replace("c.yaml", str(path)) in str(info.value)


def test_workflow_on_a_job_queue_cluster_equals_a_local_run(tmp_path):
    spec = tmp_path / "cluster.yaml"
    spec.write_text("system: local\ncores: 2\nprocesses: 1\nmemory: 2GB\njobs: 1\nwait_s: 120\n")
    wf = parse_workflow(FLOW)
    on_cluster = run_workflow(wf, tmp_path / "cluster-run", cluster=spec)
    local = run_workflow(wf, tmp_path / "local-run", workers=1, processes=False)
    a, b = Results(on_cluster.results), Results(local.results)
    np.testing.assert_array_equal(a["msd"]["msd_nm2"], b["msd"]["msd_nm2"])
    assert a.provenance["executor"].startswith("local cluster (1 jobs x 2 cores")
    assert str(spec) in a.provenance["executor"]


def test_adaptive_cluster_from_the_command_line(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    spec = tmp_path / "cluster.yaml"
    spec.write_text("system: local\ncores: 1\nmemory: 1GB\nadaptive: {minimum: 0, maximum: 2}\n")
    r = subprocess.run([str(BIN / "matterflow"), "run", str(flow), "--out", str(tmp_path / "o"),
                        "--cluster", str(spec), "--no-report", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = Results(tmp_path / "o" / "results.h5")
    assert res["msd"]["msd_nm2"].shape == (40, 10)
    assert "adaptive 0-2 jobs" in res.provenance["executor"]


def test_cluster_and_scheduler_exclude_each_other(tmp_path):
    spec = tmp_path / "cluster.yaml"
    spec.write_text("system: local\n")
    with pytest.raises(InputError, match="--scheduler and --cluster exclude each other"):
        run_steps([{"id": "w", "task": "core.random_walks"}], tmp_path / "o",
                  scheduler="tcp://127.0.0.1:1", cluster=spec)
