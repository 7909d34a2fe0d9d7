"""Processing plugins: typed parameters with units, validated before a frame is read.

A processing chain is a list of plugins, each a mapping with a ``plugin``
name and that plugin's parameters::

    plugins:
      - {plugin: dark_flat, dark: dark.edf}
      - {plugin: mask, file: mask.npy, high: 1.0e6, detector_gaps: true}
      - {plugin: integrate1d, npt: 1000, unit: 2th_deg, error_model: poisson}
      - {plugin: background, method: snip, iterations: 30}
      - {plugin: fit_peaks, centers: [12.3, 14.2], window: 0.4, shape: pseudo_voigt}

Stages run in this order and a chain is rejected if they are not:
``image`` (corrections and masks on the 2D frame) → ``integrate`` (pyFAI;
exactly one ``integrate1d``, any number of ``integrate2d``/``sector``) →
``pattern`` (1D: background subtraction, user filters) → ``analysis``
(peak fitting, user measures).

Writing a plugin
----------------
Subclass :class:`Plugin`, give it ``name``, ``stage``, a ``Params`` model
(units in ``json_schema_extra={"units": ...}``), ``outputs()`` (the per-frame
arrays it adds, with shapes and units, known from the parameters alone) and
``process(frame)``; then declare it in your package::

    [project.entry-points."matterflow.xrd_plugins"]
    peak_ratio = "mypkg.xrd:PeakRatio"

A complete example is :class:`matterflow.diffraction.xrd.example_plugin.PeakRatio`.

Layout: :mod:`._base` (``Frame``, ``Plugin``, stages), one module per stage
(:mod:`.image`, :mod:`.integrate`, :mod:`.pattern`, :mod:`.analysis`) and,
here, the registry (built-in plugins, entry points, chains).
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from matterflow.core.errors import InputError
from matterflow.core.registry import validation_message
from matterflow.diffraction.xrd.plugins._base import (
    ENTRY_POINT_GROUP,
    STAGES,
    Frame,
    Plugin,
    RadialUnit,
    radial_units,
)
from matterflow.diffraction.xrd.plugins.analysis import FitPeaks, FitPeaksParams
from matterflow.diffraction.xrd.plugins.image import (
    DarkFlat,
    DarkFlatParams,
    Mask,
    MaskParams,
    SubtractImage,
    SubtractImageParams,
)
from matterflow.diffraction.xrd.plugins.integrate import (
    PYFAI_LOCK,
    ChiProfile,
    ChiProfileParams,
    Integrate1D,
    Integrate2D,
    Integrate2DParams,
    IntegrateParams,
    Sector,
    SectorParams,
    integrate_kwargs,
    integrate_pattern,
    integration_options,
    uses_fast_kernel,
)
from matterflow.diffraction.xrd.plugins.pattern import Background, BackgroundParams, snip

__all__ = ["Plugin", "Frame", "get_plugin", "list_plugins", "validate_chain", "STAGES",
           "ENTRY_POINT_GROUP", "radial_units", "RadialUnit", "register_plugin", "chain_spec",
           "BUILTIN",
           # the built-in plugins and their parameters, by stage
           "DarkFlat", "DarkFlatParams", "Mask", "MaskParams", "SubtractImage",
           "SubtractImageParams", "Integrate1D", "IntegrateParams", "Sector", "SectorParams",
           "Integrate2D", "Integrate2DParams", "ChiProfile", "ChiProfileParams", "Background",
           "BackgroundParams", "FitPeaks", "FitPeaksParams",
           # helpers of the integration plugins
           "integration_options", "integrate_kwargs", "integrate_pattern", "uses_fast_kernel",
           "PYFAI_LOCK", "snip"]


BUILTIN: dict[str, type[Plugin]] = {c.name: c for c in (DarkFlat, Mask, SubtractImage, Integrate1D,
                                                         Sector, Integrate2D, ChiProfile,
                                                         Background, FitPeaks)}


@functools.lru_cache(maxsize=1)
def _entry_point_plugins() -> dict[str, type[Plugin]]:
    found: dict[str, type[Plugin]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break the rest
            import warnings

            from matterflow.core.errors import MatterflowWarning

            warnings.warn(f"xrd plugin {ep.name} ({ep.value}) cannot be loaded: {exc}",
                          MatterflowWarning, stacklevel=2)
            continue
        if isinstance(cls, type) and issubclass(cls, Plugin):
            found[cls.name or ep.name] = cls
    return found


_RUNTIME: dict[str, type[Plugin]] = {}


def register_plugin(cls: type[Plugin]) -> type[Plugin]:
    """Register a plugin class at run time (tests, notebooks); entry points are the normal way."""
    if not cls.name or cls.stage not in STAGES:
        raise InputError(f"plugin {cls.__name__}: needs a name and a stage in {STAGES}")
    _RUNTIME[cls.name] = cls
    return cls


def list_plugins() -> dict[str, type[Plugin]]:
    """All plugins: built-in, from entry points, and registered at run time."""
    return {**BUILTIN, **_entry_point_plugins(), **_RUNTIME}


def get_plugin(name: str) -> type[Plugin]:
    known = list_plugins()
    if name not in known:
        raise InputError(f"unknown plugin {name!r}; known: {', '.join(known)}")
    return known[name]


def validate_chain(specs: list[dict[str, Any]], *, base_dir: Path | None = None
                   ) -> list[Plugin]:
    """Plugins of a chain from their specs, every parameter and the stage order checked.

    Raises InputError naming ``plugins[i] (name).field``.
    """
    if not isinstance(specs, list) or not specs:
        raise InputError("plugins: a non-empty list of {plugin: NAME, ...} mappings is needed")
    chain: list[Plugin] = []
    errors: list[str] = []
    ids: set[str] = set()
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "plugin" not in spec:
            errors.append(f"plugins[{i}]: needs a 'plugin' name; got {spec!r}")
            continue
        spec = dict(spec)
        name = spec.pop("plugin")
        pid = spec.pop("id", None)
        try:
            cls = get_plugin(str(name))
        except InputError as exc:
            errors.append(f"plugins[{i}]: {exc}")
            continue
        try:
            params = cls.Params(**spec)
        except ValidationError as exc:
            errors.append(validation_message(exc, prefix=f"plugins[{i}] ({name})", model=cls.Params))
            continue
        pid = str(pid or name)
        k = 2
        while pid in ids:
            pid = f"{name}_{k}"
            k += 1
        ids.add(pid)
        chain.append(cls(params, pid=pid, base_dir=base_dir))
    if errors:
        raise InputError("\n".join(errors))
    order = [STAGES.index(p.stage) for p in chain]
    for i in range(1, len(order)):
        if order[i] < order[i - 1]:
            raise InputError(f"plugins[{i}] ({chain[i].name}): a {chain[i].stage!r} plugin cannot "
                             f"come after a {chain[i - 1].stage!r} one; order: "
                             f"{' -> '.join(STAGES)}")
    n1 = sum(isinstance(p, Integrate1D) for p in chain)
    if n1 != 1:
        raise InputError(f"plugins: exactly one integrate1d plugin is needed; got {n1}")
    for p in chain:
        if p.stage == "pattern" or p.stage == "analysis":
            p.outputs(chain)  # shapes known from the parameters alone
    return chain


def chain_spec(chain: list[Plugin]) -> list[dict[str, Any]]:
    """The normalised specs (defaults filled in) of a validated chain."""
    return [{"plugin": p.name, "id": p.id, **p.params.model_dump(mode="json")} for p in chain]
