"""The fault-injection suite (issue 17): shared fixtures and its one-line-per-case summary.

Every test under ``tests/reliability/`` is a *case*: a fault injected (full disk,
read-only folder, a killed run, two runs on one folder, a corrupt input file, a
planted pickle, garbage frames) and the behaviour that must hold. At the end of
the session one line per case is printed, then ``N cases, N held``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_CASES: dict[str, str] = {}  # nodeid -> held / BROKEN / skipped


_PREFIX: list[str] = []  # this folder's node-id prefix, relative to the rootdir


def pytest_configure(config: pytest.Config) -> None:
    try:
        _PREFIX[:] = [HERE.relative_to(config.rootpath).as_posix() + "/"]
    except ValueError:
        _PREFIX[:] = [HERE.as_posix() + "/"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # by node id: a test that changed the working folder gives a relative fspath
    if not _PREFIX or not report.nodeid.startswith(_PREFIX[0]):
        return
    if report.when == "setup" and report.skipped:
        _CASES[report.nodeid] = "skipped"
    elif report.when == "call":
        _CASES[report.nodeid] = ("held" if report.passed else
                                 "skipped" if report.skipped else "BROKEN")
    elif report.failed:  # setup/teardown error
        _CASES[report.nodeid] = "BROKEN"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _CASES:
        return
    tr = terminalreporter
    tr.section("fault-injection cases")
    for nodeid, state in _CASES.items():
        tr.write_line(f"{state:8s} {nodeid[len(_PREFIX[0]):]}")
    held = sum(s == "held" for s in _CASES.values())
    skipped = sum(s == "skipped" for s in _CASES.values())
    tr.write_line(f"{len(_CASES)} cases, {held} held" + (f", {skipped} skipped" if skipped else ""))


# ------------------------------------------------------------------ fixtures

def _can_unshare() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                        "mount -t tmpfs -o size=64k tmpfs /tmp"],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture(scope="session")
def private_mounts() -> bool:
    """True if a private mount namespace (``unshare -m``) can mount a small tmpfs here."""
    return _can_unshare()


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for ``python -m matterflow`` subprocesses: quiet, 1 thread."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1", COLUMNS="200")
    return env

# geometry, series and poni_file: tests/conftest.py (shared with tests/xrd)
