"""CLI: --help of every command, version, tasks, inspect, report, and the core demo end to end."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matterflow import __version__
from matterflow.cli import app
from matterflow.clitools import command_paths

runner = CliRunner()


ALL_COMMANDS = list(command_paths(app))
assert len(ALL_COMMANDS) > 30, ALL_COMMANDS  # every domain's commands, not only the root


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "matterflow")
def test_help_of_every_command(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_tasks_lists_and_describes():
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0 and "core.random_walks" in result.output
    result = runner.invoke(app, ["tasks", "core.random_walks"])
    assert result.exit_code == 0
    assert "step_nm" in result.output and "nm" in result.output and "n_walkers" in result.output


def test_unknown_task_suggests_nearest():
    result = runner.invoke(app, ["tasks", "core.random_walk"])
    assert result.exit_code == 2
    assert "did you mean 'core.random_walks'" in result.output


def test_inspect_and_report_of_missing_file_exit_2(tmp_path):
    for cmd in ("inspect", "report"):
        result = runner.invoke(app, [cmd, str(tmp_path / "nope.h5")])
        assert result.exit_code == 2 and "no such results file" in result.output


def test_demo_core_end_to_end(tmp_path):
    """The real console script, as a user runs it: results, report, index, inspect."""
    exe = Path(sys.executable).parent / "matterflow"
    out = tmp_path / "demo"
    done = subprocess.run([str(exe), "demo", "--only", "core", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (out / "core" / "results.h5").exists()
    html = (out / "core" / "report.html").read_text()
    assert "data:image/png;base64" in html and "Provenance" in html and "seeds" in html
    assert "core/report.html" in (out / "index.html").read_text()
    shown = subprocess.run([str(exe), "inspect", str(out / "core" / "results.h5")],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    for word in ("positions_nm", "nm^2/ps", "workflow_text", "git_commit", "library_versions"):
        assert word in shown.stdout


def test_demo_unknown_domain_exit_2(tmp_path):
    result = runner.invoke(app, ["demo", "--only", "nonesuch", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "available: core" in result.output


def test_run_on_threads(tmp_path):
    """`matterflow run --threads`: a LocalCluster of threads in this process, recorded in the results."""
    from matterflow.core.store import Results

    flow = Path(__file__).resolve().parents[2] / "src" / "matterflow" / "examples" / "quickstart.yaml"
    result = runner.invoke(app, ["run", str(flow), "--out", str(tmp_path), "--workers", "2",
                                 "--threads", "--no-report", "-q"])
    assert result.exit_code == 0, result.output
    assert Results(tmp_path / "results.h5").provenance["executor"] == "LocalCluster(2 threads)"
