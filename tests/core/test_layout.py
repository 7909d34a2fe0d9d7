"""The test tree itself: pytest (rootdir import mode) needs unique test-module names."""

from collections import Counter
from pathlib import Path


def test_test_module_names_are_unique():
    names = Counter(p.name for p in Path(__file__).parents[1].rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1], "rename the test modules that share a name"


def _imports(path: Path) -> set[str]:
    """Top-level module names imported anywhere in ``path`` (any depth: inside functions too)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_core_imports_dask():
    """One execution path: outside core/ no module imports dask, distributed or dask_jobqueue
    (torch.distributed for DDP training is another package and stays)."""
    src = Path(__file__).parents[2] / "src" / "matterflow"
    offenders = {}
    for path in sorted(src.rglob("*.py")):
        if path.relative_to(src).parts[0] == "core":
            continue
        bad = _imports(path) & {"dask", "distributed", "dask_jobqueue"}
        if bad:
            offenders[str(path.relative_to(src))] = sorted(bad)
    assert not offenders, f"use matterflow.core.execute (run_steps, map_calls, WorkerPool): {offenders}"


def test_layout_check_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from distributed import as_completed\n    import torch.distributed\n")
    assert _imports(f) == {"distributed", "torch"}
