"""A new domain is a package plus one entry point: no edit of the core.

The test writes a small third-party package ``mftoy`` (a nested one, like
``diffraction/gixd``) and an installed-distribution record holding its one
entry point, puts both on ``PYTHONPATH`` and drives the real ``matterflow``
command in a subprocess: the domain's tasks, CLI, demo, provenance libraries
and file suffixes all appear.
"""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import pytest

TASKS = '''
from dataclasses import dataclass
import numpy as np
from pydantic import Field
from matterflow.core import Params, quantity, task

class LineParams(Params):
    n: int = Field(5, ge=1, description="points")
    slope: float = Field(2.0, description="slope", json_schema_extra={"units": "eV/Å"})

@dataclass(frozen=True)
class Line:
    y_ev: np.ndarray = quantity("eV", "(n,)")

@task("toy.line", params=LineParams)
def line(*, params: LineParams) -> Line:
    """A straight line."""
    return Line(y_ev=params.slope * np.arange(params.n, dtype=float))

@task("toy.total", params=Params)
def total(y, *, params) -> Line:
    """Sum of the line."""
    return Line(y_ev=np.array([np.sum(y)]))

TASKS = [line, total]
'''

DOMAIN = '''
from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="toy",
    summary="A toy domain, installed by a test.",
    tasks="mftoy.nested.toy.tasks:TASKS",
    cli="mftoy.nested.toy.cli:app",
    demos=("toy.yaml",),
    libraries=("h5py",),
    file_suffixes=(".toy",),
    docs="toy.md",
)
'''

CLI = '''
import typer
from matterflow.clitools import console, handle_errors

app = typer.Typer(help="Toy commands.", no_args_is_help=True)

@app.command()
@handle_errors
def hello(name: str = "world") -> None:
    """Say hello."""
    console.print(f"hello {name}")
'''

DEMO = '''
name: toy-demo
steps:
  - {id: line, task: toy.line, params: {n: 4, slope: 1.5}}
  - {id: total, task: toy.total, inputs: {y: line.y_ev}}
'''


@pytest.fixture
def toy_env(tmp_path):
    pkg = tmp_path / "site" / "mftoy" / "nested" / "toy"
    pkg.mkdir(parents=True)
    for d in (pkg.parents[1], pkg.parent, pkg):
        (d / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(TASKS)
    (pkg / "domain.py").write_text(DOMAIN)
    (pkg / "cli.py").write_text(CLI)
    (pkg / "toy.yaml").write_text(DEMO)
    dist = tmp_path / "site" / "mftoy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mftoy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[matterflow.domains]\ntoy = mftoy.nested.toy.domain:DOMAIN\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env.get("PYTHONPATH", "")])
    return tmp_path, env


def _mf(env, *args, cwd):
    return subprocess.run([sys.executable, "-m", "matterflow.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_new_domain_needs_only_its_package_and_one_entry_point(toy_env):
    tmp, env = toy_env
    res = _mf(env, "--help", cwd=tmp)
    assert res.returncode == 0 and "toy" in res.stdout and "A toy domain" in res.stdout
    res = _mf(env, "toy", "hello", "--name", "referee", cwd=tmp)
    assert res.returncode == 0 and "hello referee" in res.stdout
    res = _mf(env, "tasks", "toy.line", cwd=tmp)
    assert res.returncode == 0 and "eV/Å" in res.stdout

    res = _mf(env, "demo", "--only", "toy", "--out", "demo-out", "--workers", "1", "-q", cwd=tmp)
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp / "demo-out" / "toy" / "results.h5") as f:
        assert f["total/y_ev"][0] == pytest.approx(1.5 * (0 + 1 + 2 + 3))
        assert f["total/y_ev"].attrs["units"] == "eV"
        assert "h5py" in f.attrs["library_versions"]
    assert (tmp / "demo-out" / "index.html").exists()


def test_a_new_domain_s_file_suffixes_reach_workflow_validation(toy_env):
    tmp, env = toy_env
    flow = tmp / "flow.yaml"
    flow.write_text("steps:\n  - {id: t, task: toy.total, inputs: {y: missing.toy}}\n")
    res = _mf(env, "run", str(flow), "--out", str(tmp / "o"), cwd=tmp)
    assert res.returncode == 2
    assert "input file 'missing.toy' not found" in res.stderr


def test_a_task_outside_the_domain_prefix_is_refused(toy_env):
    tmp, env = toy_env
    tasks = tmp / "site" / "mftoy" / "nested" / "toy" / "tasks.py"
    tasks.write_text(tasks.read_text().replace('"toy.total"', '"other.total"'))
    res = _mf(env, "tasks", cwd=tmp)
    assert res.returncode != 0
    assert "task names must start with 'toy.'" in (res.stderr + res.stdout)
