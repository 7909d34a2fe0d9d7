"""Checks every declared domain alike (like scikit-learn's test_common.py).

Each domain named by an entry point of ``matterflow.domains`` must: load, name
its tasks with its own prefix, have demo workflows that validate, a docs page
that exists, ``--help`` on every command of its CLI, and pass the common task
checks (``test_tasks_common.py`` runs them over every task of every domain).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matterflow.clitools import command_paths
from matterflow.core.domain import ENTRY_POINT_GROUP, Domain, list_domains
from matterflow.core.registry import list_tasks, unavailable_domains
from matterflow.core.workflow import load_workflow

DOMAINS = list_domains()
DOCS = Path(__file__).resolve().parents[2] / "docs"
runner = CliRunner()


def test_every_entry_point_is_a_domain_of_its_own_name():
    eps = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert eps == set(DOMAINS)
    assert next(iter(DOMAINS)) == "core"


@pytest.mark.parametrize("name", list(DOMAINS))
def test_domain_tasks_load_and_carry_its_prefix(name):
    assert name not in unavailable_domains(), unavailable_domains().get(name)
    tasks = DOMAINS[name].load_tasks()
    assert tasks, f"domain {name} declares no task"
    assert all(t.name.startswith(f"{name}.") for t in tasks)
    assert {t.name for t in tasks} <= set(list_tasks())


@pytest.mark.parametrize("name", list(DOMAINS))
def test_domain_demos_validate(name):
    dom = DOMAINS[name]
    paths = dom.demo_paths(full=True)
    assert dom.demos, f"domain {name} declares no demo workflow"
    for path in paths:
        assert path.exists(), f"{name}: demo {path} not found"
        wf = load_workflow(path)
        assert wf.steps
        # a demo exercises its own domain
        assert any(s.task.name.startswith(f"{name}.") for s in wf.steps)


@pytest.mark.parametrize("name", list(DOMAINS))
def test_domain_has_docs_page(name):
    dom = DOMAINS[name]
    assert dom.docs, f"domain {name} names no docs page"
    page = DOCS / dom.docs
    assert page.exists(), f"{name}: docs page {page} not found"
    assert page.read_text().lstrip().startswith("#")


@pytest.mark.parametrize("name", list(DOMAINS))
def test_domain_declares_libraries_that_are_installed(name):
    from importlib.metadata import PackageNotFoundError, version

    for lib in DOMAINS[name].libraries:
        try:
            version(lib)
        except PackageNotFoundError:
            pytest.fail(f"{name}: declared library {lib!r} is not an installed distribution")


@pytest.mark.parametrize("name", [n for n, d in DOMAINS.items() if d.cli])
def test_every_domain_command_has_help(name):
    from matterflow.cli import app

    paths = [(name, *path) for path in command_paths(DOMAINS[name].load_cli())]
    assert len(paths) > 1, f"{name}: its CLI has no commands"
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "Usage" in res.output


def test_declaration_is_checked():
    with pytest.raises(ValueError, match="lower case"):
        Domain(name="Bad", summary="", tasks="m:x")
    with pytest.raises(ValueError, match="module:attribute"):
        Domain(name="ok", summary="", tasks="no_colon")
    with pytest.raises(ValueError, match="start with '.'"):
        Domain(name="ok", summary="", tasks="m:x", file_suffixes=("tif",))
