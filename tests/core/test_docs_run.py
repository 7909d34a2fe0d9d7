"""The documentation runs: every ```python block of README.md and docs/*.md, and the
docstring examples (``>>>``) of the core's public API.

The blocks of one page run in order in one namespace, in an empty folder (with the
repository's ``tests/`` linked in, as in the root of a clone), as a reader would paste them;
an error names the page and line.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(first line, code)`` of each ```python block of a Markdown page."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


WITH_CODE = [p for p in PAGES if python_blocks(p)]


@pytest.mark.parametrize("page", WITH_CODE, ids=[p.name for p in WITH_CODE])
def test_python_blocks_of_the_page_run(page, tmp_path, monkeypatch):
    import sys
    import types

    monkeypatch.chdir(tmp_path)
    # as from the root of a clone: pages may read the small data files under tests/
    (tmp_path / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    module = types.ModuleType("docs_page")  # a real module, so dataclasses defined there work
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for line, code in python_blocks(page):
        # padding puts the block at its own line numbers in tracebacks: page.md:LINE
        exec(compile("\n" * (line - 1) + code, str(page.relative_to(ROOT)), "exec"), namespace)


WITH_EXAMPLES = {"matterflow.core.registry", "matterflow.core.workflow"}
CORE_MODULES = ["matterflow.core.registry", "matterflow.core.workflow", "matterflow.core.store",
                "matterflow.core.domain", "matterflow.core.execute", "matterflow.core.errors"]


@pytest.mark.parametrize("name", CORE_MODULES)
def test_docstring_examples_of_the_core_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{name}: {failed} of {attempted} docstring examples failed"
    if name in WITH_EXAMPLES:
        assert attempted > 0, f"{name}: its docstring examples were not found"


def test_every_page_with_code_is_checked():
    assert {p.name for p in WITH_CODE} >= {"README.md", "core.md", "developing.md"}
