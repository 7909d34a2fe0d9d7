"""Every domain's public API is annotated, so type checkers and readers see what it takes.

For each declared domain (installed domains, found through their entry points, so a new
domain is checked as soon as it is declared): its tasks' functions, the functions and classes
named in the ``__all__`` of its package and of each public module in it (public methods and
``__init__`` of those classes), and the commands of its CLI sub-app. Each parameter
(``self``/``cls`` aside) and each return needs an annotation (``__init__`` may leave its return
out, as mypy allows). ``make lint`` runs mypy on the core; this test covers the domains without
type-checking their bodies.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from matterflow.core.domain import list_domains
from matterflow.core.registry import Task

DOMAINS = list_domains()


def unannotated(func: Callable[..., Any], where: str, *, method: bool = False) -> list[str]:
    """``where: parameter NAME`` / ``where: return`` for each missing annotation of ``func``."""
    func = inspect.unwrap(func)
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin: nothing to check
        return []
    params = list(sig.parameters.values())[1 if method else 0:]
    out = [f"{where}: parameter {p.name}" for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty and func.__name__ != "__init__":
        out.append(f"{where}: return")
    return out


def unannotated_api(obj: Any, where: str) -> list[str]:
    """Missing annotations of a public name: a task, a function, or a class's own methods."""
    if isinstance(obj, Task):
        return unannotated(obj.func, where)
    if inspect.isfunction(obj):
        return unannotated(obj, where)
    if not inspect.isclass(obj):
        return []  # constants, type aliases
    out = []
    for name, attr in vars(obj).items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        at = f"{where}.{name}"
        if isinstance(attr, staticmethod):
            out += unannotated(attr.__func__, at)
        elif isinstance(attr, classmethod):
            out += unannotated(attr.__func__, at, method=True)
        elif isinstance(attr, property):
            out += unannotated(attr.fget, at, method=True) if attr.fget else []
        elif inspect.isfunction(attr):
            out += unannotated(attr, at, method=True)
    return out


def commands(app: Any, prefix: str, *, groups: bool = True) -> Iterator[tuple[str, Callable[..., Any]]]:
    """``(command line, function)`` of every command and callback of a typer app."""
    info = app.registered_callback
    if info is not None and info.callback is not None:
        yield f"`{prefix}` (callback)", info.callback
    for cmd in app.registered_commands:
        yield f"`{prefix} {cmd.name or cmd.callback.__name__.replace('_', '-')}`", cmd.callback
    for group in app.registered_groups if groups else ():
        yield from commands(group.typer_instance, f"{prefix} {group.name}")


def public_modules(package: str) -> Iterator[Any]:
    """The package and every module below it whose dotted name has no ``_``-prefixed part."""
    module = importlib.import_module(package)
    yield module
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


def domain_gaps(name: str) -> list[str]:
    dom = DOMAINS[name]
    try:
        tasks = dom.load_tasks()
        app = dom.load_cli()
    except ImportError as exc:  # an optional extra that is not installed
        pytest.skip(f"domain {name}: {exc}")
    gaps = []
    for t in tasks:
        gaps += unannotated(t.func, f"task {t.name}")
    package = dom.module.rpartition(".")[0] or dom.module
    for module in public_modules(package):
        for public in getattr(module, "__all__", ()):
            obj = getattr(module, public)
            defined_elsewhere = getattr(obj, "__module__", module.__name__) != module.__name__
            if defined_elsewhere and module.__name__ != package:
                continue  # a re-export: checked where it is defined (or in the package's __all__)
            gaps += unannotated_api(obj, f"{module.__name__}.{public}")
    if app is not None:
        for where, func in commands(app, f"matterflow {name}"):
            gaps += unannotated(func, where)
    return sorted(set(gaps))


@pytest.mark.parametrize("name", list(DOMAINS))
def test_public_api_of_domain_is_annotated(name: str) -> None:
    gaps = domain_gaps(name)
    assert not gaps, f"domain {name}: {len(gaps)} missing annotations:\n  " + "\n  ".join(gaps)


def test_core_commands_are_annotated() -> None:
    from matterflow.cli import app

    gaps = [g for where, func in commands(app, "matterflow", groups=False)
            for g in unannotated(func, where)]
    assert not gaps, "missing annotations:\n  " + "\n  ".join(gaps)


def test_the_check_sees_missing_annotations() -> None:
    def f(x, *, params: int = 1):  # deliberately missing annotations
        return x

    class C:
        def __init__(self, a: int) -> None: ...

        def m(self, b) -> None: ...

        @property
        def p(self): return 1

    assert unannotated(f, "f") == ["f: parameter x", "f: return"]
    assert unannotated_api(C, "C") == ["C.m: parameter b", "C.p: return"]
    assert unannotated_api(Task("demo.t", f), "t") == ["t: parameter x", "t: return"]
