"""The test tree itself: pytest (rootdir import mode) needs unique test-module names."""

from collections import Counter
from pathlib import Path


def test_test_module_names_are_unique():
    names = Counter(p.name for p in Path(__file__).parents[1].rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1], "rename the test modules that share a name"
