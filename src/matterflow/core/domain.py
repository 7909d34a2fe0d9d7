"""Domains: each one declares itself once, through one entry point.

A domain is a subpackage (or a separate package) that adds tasks, a command
line sub-app and demo workflows. It declares all of that in one
:class:`Domain` object, named by one entry point of the group
``matterflow.domains``::

    # src/matterflow/diffraction/gixd/domain.py  (imports nothing heavy)
    from matterflow.core.domain import Domain

    DOMAIN = Domain(
        name="gixd",                                   # CLI name and task prefix
        summary="GIXD Bragg-feature detection with a Faster R-CNN.",
        tasks="matterflow.diffraction.gixd.tasks:TASKS",
        cli="matterflow.diffraction.gixd.cli:app",
        demos=("gixd.yaml",),                          # beside domain.py, or examples/
        libraries=("torch", "torchvision"),
        file_suffixes=(".edf", ".cbf"),
        docs="gixd.md",
    )

    # pyproject.toml
    [project.entry-points."matterflow.domains"]
    gixd = "matterflow.diffraction.gixd.domain:DOMAIN"

The core reads these declarations and names no domain: the CLI adds one
sub-app per domain (``matterflow gixd``, whatever the package nesting), the
registry loads the tasks, provenance records the versions of the declared
libraries, workflow validation knows the file suffixes, and ``matterflow
demo`` runs the demo workflows. Loading a declaration imports only the module
that holds it, so ``tasks`` and ``cli`` are ``"module:attribute"`` strings,
imported when first needed; a domain whose optional packages are missing
still shows up, and says which extra to install.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

__all__ = ["Domain", "ENTRY_POINT_GROUP", "list_domains", "get_domain", "load_object"]

ENTRY_POINT_GROUP = "matterflow.domains"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_OBJECT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Domain:
    """What a domain adds to matterflow.

    Parameters
    ----------
    name : str
        Lower-case name: the CLI sub-command (``matterflow NAME``), the prefix
        of every task name (``NAME.action``) and the entry point's name.
    summary : str
        One line for ``matterflow --help``.
    tasks : str
        ``"module:attribute"`` naming a list of :class:`~matterflow.core.registry.Task`.
    cli : str or None
        ``"module:attribute"`` naming a ``typer.Typer`` app, or None for none.
    extra : str or None
        The pip extra that installs the domain's packages (default: ``name``).
    demos : tuple of str
        Demo workflow files, run in this order by ``matterflow demo``; a
        relative path is looked up beside the module that holds the declaration,
        then in the package's ``examples/`` folder.
    full_demos : tuple of str
        Longer workflows added by ``matterflow demo --full``.
    libraries : tuple of str
        Distribution names whose versions go into every run's provenance.
    file_suffixes : tuple of str
        Suffixes (``".poni"``) of the files the domain's tasks read, so a
        workflow input ``scan.cbf`` that does not exist is reported as a
        missing file rather than as an unknown step output.
    docs : str or None
        The domain's page in ``docs/`` (``"xrd.md"``).
    headline : str or None
        Which stored outputs are a run's headline in ``matterflow view`` and the
        demo gallery: ``"task:output"`` references, comma-separated; the first
        1D/2D array is the headline figure, the first number the headline number
        (``"xrd.integrate:intensity, xrd.integrate:peak_ratio"``). None: a
        generic choice from the last steps (:mod:`matterflow.core.headline`).
    """

    name: str
    summary: str
    tasks: str
    cli: str | None = None
    extra: str | None = None
    demos: tuple[str, ...] = ()
    full_demos: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    file_suffixes: tuple[str, ...] = ()
    docs: str | None = None
    headline: str | None = None
    module: str = field(default="", compare=False)
    """The module that holds the declaration (set from the entry point when discovered)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"Domain.name must be lower case letters, digits and _; got {self.name!r}")
        for label, value in (("tasks", self.tasks), ("cli", self.cli)):
            if value is not None and not _OBJECT.match(value):
                raise ValueError(f"Domain {self.name!r}: {label} must be 'module:attribute'; "
                                 f"got {value!r}")
        for ref in self.headline.split(",") if self.headline is not None else ():
            task, _, output = ref.strip().partition(":")
            if not (task.startswith(f"{self.name}.") and output):
                raise ValueError(f"Domain {self.name!r}: headline entries are '{self.name}.TASK:OUTPUT'"
                                 f", comma-separated; got {ref.strip()!r}")
        for suffix in self.file_suffixes:
            if not suffix.startswith("."):
                raise ValueError(f"Domain {self.name!r}: file suffixes start with '.'; got {suffix!r}")

    @property
    def pip_extra(self) -> str:
        """The extra that installs this domain: ``pip install 'matterflow[EXTRA]'``."""
        return self.extra or self.name

    def load_tasks(self) -> list[Any]:
        """Import and return what the domain's ``tasks`` names: one task or a list of them
        (ImportError if its extra is missing). The registry checks that they are tasks."""
        obj = load_object(self.tasks)
        return list(obj) if isinstance(obj, (list, tuple)) else [obj]

    def load_cli(self) -> Any:
        """Import and return the domain's typer app (None if it has none)."""
        return load_object(self.cli) if self.cli else None

    def demo_paths(self, *, full: bool = False) -> list[Path]:
        """The demo workflow files as absolute paths (``full`` adds the long ones)."""
        names = self.demos + (self.full_demos if full else ())
        return [self._resolve(n) for n in names]

    def _resolve(self, name: str) -> Path:
        path = Path(name)
        if path.is_absolute():
            return path
        here = _module_dir(self.module)
        candidates = ([here / path] if here else []) + [Path(__file__).resolve().parents[1]
                                                         / "examples" / path]
        for c in candidates:
            if c.exists():
                return c
        return candidates[0]


def _module_dir(module: str) -> Path | None:
    if not module:
        return None
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent


def load_object(ref: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@functools.lru_cache(maxsize=1)
def _discover() -> dict[str, Domain]:
    found: dict[str, Domain] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dom = ep.load()
        if not isinstance(dom, Domain):
            raise TypeError(f"entry point {ep.name} ({ep.value}) of {ENTRY_POINT_GROUP} must give "
                            f"a Domain; got {type(dom).__name__}")
        if dom.name != ep.name:
            raise TypeError(f"entry point {ep.name} ({ep.value}) gives the domain {dom.name!r}; "
                            "the entry point's name must be the domain's name")
        if not dom.module:
            object.__setattr__(dom, "module", ep.value.partition(":")[0])
        found[dom.name] = dom
    # core first, then by name: the order of `matterflow --help` and `matterflow demo`
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != "core", kv[0])))


def list_domains() -> dict[str, Domain]:
    """Every declared domain by name (core first), installed extras or not."""
    return dict(_discover())


def get_domain(name: str) -> Domain:
    """The domain called ``name``; an unknown name lists the known ones."""
    from matterflow.core.errors import InputError

    domains = _discover()
    if name not in domains:
        raise InputError(f"unknown domain {name!r}; known domains: {', '.join(domains)}")
    return domains[name]
