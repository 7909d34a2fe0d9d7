"""Tasks: plain functions with a pydantic parameter model, found by name.

A task is an ordinary Python function; :func:`task` attaches a name, a
parameter model and (optionally) figures to it:

>>> from dataclasses import dataclass
>>> import numpy as np
>>> from pydantic import Field
>>> class ScaleParams(Params):
...     factor: float = Field(2.0, gt=0, description="multiplier")
>>> @dataclass(frozen=True)
... class Scaled:
...     y: np.ndarray = quantity("nm", "(n,)")
>>> @task("demo.scale", params=ScaleParams)
... def scale(x, *, params):
...     "Multiply by a factor."
...     return Scaled(y=params.factor * x)
>>> scale(np.ones(3), params={"factor": 3}).y          # the Python API
array([3., 3., 3.])
>>> scale(np.ones(3), params={"factor": -1})
Traceback (most recent call last):
...
matterflow.core.errors.InputError: demo.scale params.factor: input should be greater than 0; got -1

In a workflow the same task is a step:
``steps: [{id: s, task: demo.scale, inputs: {x: ...}}]``.

The function knows nothing of Dask, YAML or HDF5. It returns a frozen
dataclass whose fields carry units (:func:`quantity`); the store writes each
field as a dataset with a ``units`` attribute.

Tasks are found through the domains' declarations
(:class:`matterflow.core.domain.Domain`, entry-point group
``matterflow.domains``): each domain names a list of tasks whose names start
with the domain's name, so a domain subpackage or a third-party plugin adds
tasks without touching the core.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from matterflow.core.errors import InputError

__all__ = [
    "Params",
    "Task",
    "task",
    "quantity",
    "get_task",
    "list_tasks",
    "unavailable_domains",
    "result_to_dict",
    "validation_message",
    "validate_params",
]

class Params(BaseModel):
    """Base class of task parameters: frozen, unknown fields rejected.

    Declare units in a field's ``json_schema_extra={"units": "eV"}`` so
    ``matterflow tasks NAME`` can show them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


class NoParams(Params):
    """A task without parameters."""


def quantity(units: str, doc: str = "", **kwargs: Any) -> Any:
    """A dataclass field that carries its units (``"dimensionless"`` if none)."""
    return dataclasses.field(metadata={"units": units, "doc": doc}, **kwargs)


@dataclasses.dataclass(frozen=True)
class Task:
    """A named, documented function with a parameter model.

    Parameters
    ----------
    name : str
        Dotted name, ``domain.action`` (``xrd.integrate``).
    func : callable
        ``func(**inputs, params=ParamsModel) -> dataclass``.
    params : type[Params]
        The pydantic model of the parameters.
    version : str
        Bumped when the results of the function change; part of a step's key,
        so cached results of an older version are recomputed.
    map_over : str or None
        Name of an input that holds many items (an array along axis 0 or a
        list). The function is called once per item; the executor runs the
        items in batches on Dask and stacks the per-item results.
    figures : callable or None
        ``figures(outputs: dict, params) -> dict[str, matplotlib.figure.Figure]``
        drawn from *stored* outputs (so a report can be made from any file).
    """

    name: str
    func: Callable[..., Any]
    params: type[Params] = NoParams
    version: str = "1"
    map_over: str | None = None
    figures: Callable[..., dict[str, Any]] | None = None

    @property
    def doc(self) -> str:
        """First line of the function's docstring."""
        return (inspect.getdoc(self.func) or "").strip().splitlines()[0] if self.func.__doc__ else ""

    @property
    def input_names(self) -> list[str]:
        """Names of the inputs the function takes (everything but ``params``)."""
        sig = inspect.signature(self.func)
        return [n for n, p in sig.parameters.items() if n != "params"
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    @property
    def required_inputs(self) -> list[str]:
        sig = inspect.signature(self.func)
        return [n for n in self.input_names if sig.parameters[n].default is inspect.Parameter.empty]

    @property
    def output_names(self) -> list[str] | None:
        """Fields of the result dataclass named in the return annotation (None if unknown)."""
        try:
            ret = typing.get_type_hints(self.func).get("return")
        except Exception:  # unresolvable annotations: outputs are checked at run time
            return None
        if ret is not None and dataclasses.is_dataclass(ret):
            return [f.name for f in dataclasses.fields(ret)]
        return None

    def make_params(self, params: Params | dict[str, Any] | None = None, *, where: str = "") -> Params:
        """Validate ``params`` (a model, a dict or None for defaults) into the model."""
        return validate_params(self.params, params, where=where or self.name,
                               prefix=where or f"{self.name} params")

    def run(self, params: Params, inputs: dict[str, Any]) -> Any:
        """Call the function with already validated ``params`` and keyword ``inputs``."""
        if "params" in inspect.signature(self.func).parameters:
            return self.func(params=params, **inputs)
        return self.func(**inputs)

    def __call__(self, *args: Any, params: Params | dict[str, Any] | None = None, **inputs: Any) -> Any:
        """Call the function with validated parameters (the Python API)."""
        if "params" in inspect.signature(self.func).parameters:
            return self.func(*args, params=self.make_params(params), **inputs)
        return self.func(*args, **inputs)


def task(name: str, *, params: type[Params] = NoParams, version: str = "1",
         map_over: str | None = None, figures: Callable[..., dict[str, Any]] | None = None
         ) -> Callable[[Callable[..., Any]], Task]:
    """Decorator turning a function into a :class:`Task` (see module docstring)."""

    def wrap(func: Callable[..., Any]) -> Task:
        return Task(name=name, func=func, params=params, version=version, map_over=map_over,
                    figures=figures)

    return wrap


def validate_params(model: type[Params], params: Any = None, *, where: str = "params",
                    prefix: str | None = None) -> Params:
    """``params`` (an instance of ``model``, another pydantic model, a dict, or None for the
    defaults) validated into ``model``; :class:`InputError` naming ``where`` (a non-mapping)
    or ``prefix.field`` (a bad value, ``prefix`` defaulting to ``where``)."""
    if isinstance(params, model):
        return params
    if params is None:
        params = {}
    if isinstance(params, BaseModel):
        params = params.model_dump()
    if not isinstance(params, dict):
        raise InputError(f"{where}: params must be a mapping of names to values or a "
                         f"{model.__name__}; got {type(params).__name__}")
    try:
        return model(**params)
    except ValidationError as exc:
        raise InputError(validation_message(exc, prefix=prefix or where, model=model)) from None


def validation_message(exc: ValidationError, *, prefix: str, model: type[BaseModel] | None = None,
                       locate: Callable[[tuple[Any, ...]], str] | None = None) -> str:
    """One line per pydantic error: ``prefix.field: what is accepted; got VALUE``.

    ``locate(loc)``, if given, replaces ``prefix.field`` by its own description
    of the error location (a workflow gives ``file:line: steps[0].params.x``).
    """
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        where = f"{prefix}.{field}" if field else prefix
        if err["type"] == "extra_forbidden" and model is not None:
            accepted = ", ".join(model.model_fields)
            msg = f"unknown parameter; accepted: {accepted or '(none)'}"
        else:
            msg = err["msg"][0].lower() + err["msg"][1:]
        got = err.get("input")
        got_txt = "" if err["type"] == "missing" else f"; got {got!r}"
        lines.append(f"{locate(loc) if locate else where}: {msg}{got_txt}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- discovery

def _check_prefix(domain: str, tasks: list[Task]) -> list[Task]:
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"domain {domain!r}: its tasks must be Task objects; "
                            f"got {type(t).__name__}")
    wrong = [t.name for t in tasks if t.name.split(".")[0] != domain]
    if wrong:
        raise TypeError(f"domain {domain!r}: task names must start with '{domain}.'; got "
                        f"{', '.join(wrong)}")
    return tasks


@functools.lru_cache(maxsize=1)
def _discover() -> tuple[dict[str, Task], dict[str, str]]:
    from matterflow.core.domain import list_domains

    tasks: dict[str, Task] = {}
    unavailable: dict[str, str] = {}
    for name, dom in list_domains().items():
        try:
            tasks.update({t.name: t for t in _check_prefix(name, dom.load_tasks())})
        except ImportError as exc:  # an optional domain whose extra is not installed
            unavailable[name] = f"{exc} (install matterflow[{dom.pip_extra}])"
    return dict(sorted(tasks.items())), unavailable


def list_tasks() -> dict[str, Task]:
    """All registered tasks by name."""
    return dict(_discover()[0])


def unavailable_domains() -> dict[str, str]:
    """Domains whose tasks could not be imported (missing optional extras), with the reason."""
    return dict(_discover()[1])


@functools.cache
def _domain_tasks(domain: str) -> dict[str, Task]:
    """Tasks of the one domain named ``domain`` (no other domain imported); {} if none."""
    from matterflow.core.domain import list_domains

    dom = list_domains().get(domain)
    if dom is None:
        return {}
    try:
        return {t.name: t for t in _check_prefix(domain, dom.load_tasks())}
    except ImportError:  # reported by the full discovery
        return {}


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name lists the nearest known ones.

    A name ``domain.task`` first loads only the ``domain`` entry point, so looking up an
    xrd task does not import torch or PySCF; every domain is loaded only on a miss.
    """
    quick = _domain_tasks(name.split(".")[0])
    if name in quick:
        return quick[name]
    tasks = list_tasks()
    if name in tasks:
        return tasks[name]
    near = difflib.get_close_matches(name, tasks, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(n) for n in near)}? " if near else ""
    domain = name.split(".")[0]
    missing = unavailable_domains().get(domain)
    if missing:
        hint += f"the '{domain}' domain is not available: {missing}. "
    raise InputError(f"unknown task {name!r}; {hint}known tasks: {', '.join(tasks)} "
                     "(see `matterflow tasks`)")


def register(tasks: Iterable[Task]) -> None:
    """Add tasks at run time (tests, notebooks); entry points are the normal route."""
    known = _discover()[0]
    for t in tasks:
        known[t.name] = t


# --------------------------------------------------------------------------- results

def result_to_dict(result: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Flatten a task result into ``(values, units)`` keyed by output name.

    A dataclass gives one entry per field (units from :func:`quantity`,
    ``"dimensionless"`` if a field has none); a nested dataclass or dict
    becomes a sub-mapping. A plain dict is taken as it is.
    """
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        values, units = {}, {}
        for f in dataclasses.fields(result):
            v = getattr(result, f.name)
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                v, sub_units = result_to_dict(v)
                units.update({f"{f.name}/{k}": u for k, u in sub_units.items()})
            values[f.name] = v
            units[f.name] = f.metadata.get("units", "dimensionless")
        return values, units
    if isinstance(result, dict):
        return dict(result), {}
    raise TypeError(f"a task must return a dataclass or a dict; got {type(result).__name__}")


def stack_results(results: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Stack per-item results of a mapped task along a new first axis."""
    if not results:
        return {}, {}
    flat = [result_to_dict(r) for r in results]
    units = flat[0][1]
    values: dict[str, Any] = {}
    for key in flat[0][0]:
        items = [f[0][key] for f in flat]
        if isinstance(items[0], str):
            values[key] = list(items)
        elif isinstance(items[0], dict):
            values[key] = {k: np.stack([np.asarray(i[k]) for i in items]) for k in items[0]}
        else:
            values[key] = np.stack([np.asarray(i) for i in items])
    return values, units
