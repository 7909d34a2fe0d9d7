"""YAML workflow files: parsed, validated with line numbers, ordered into a step graph.

A workflow names steps; each runs one task with parameters and inputs::

    name: quickstart
    steps:
      - id: walks
        task: core.random_walks
        params: {n_walkers: 400, seed: 7}
      - id: msd
        task: core.mean_squared_displacement
        inputs: {walk: walks.positions_nm}    # step_id.output_name
        batch_size: 50                        # items per Dask task (mapped tasks)
      - id: fit
        task: core.fit_diffusion
        inputs: {msd: msd.msd_nm2, lag: msd.lag_ps}

An input is either ``step_id.output`` (an earlier step's output) or the path of
a file, relative to the workflow file. Everything is checked before anything
runs; each problem is reported as ``FILE:LINE: steps[i] (id 'x').field: what
is accepted; got VALUE`` and raises :class:`~matterflow.core.errors.InputError`.
"""

from __future__ import annotations

import difflib
import functools
import graphlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, Task, get_task, list_tasks, validation_message

__all__ = ["Workflow", "Step", "load_workflow", "parse_workflow", "InputRef"]

_ID = r"^[A-Za-z_][A-Za-z0-9_-]*$"
# suffixes of files any task may read; each domain adds its own (Domain.file_suffixes)
_CORE_SUFFIXES = (".h5", ".hdf5", ".nxs", ".csv", ".json", ".npy", ".npz", ".yaml", ".yml", ".txt",
                  ".dat")


@functools.cache
def file_suffixes() -> frozenset[str]:
    """Suffixes that mark a workflow input as a file name: the core's and every domain's."""
    from matterflow.core.domain import list_domains

    found = set(_CORE_SUFFIXES)
    for dom in list_domains().values():
        found.update(s.lower() for s in dom.file_suffixes)
    return frozenset(found)


class StepSpec(BaseModel):
    """One step as written in the file."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID, description="unique name of the step (letters, digits, _ and -)")
    task: str = Field(description="registered task name, see `matterflow tasks`")
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    batch_size: int | None = Field(default=None, ge=1, description="items per Dask task")


class WorkflowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "workflow"
    description: str = ""
    steps: list[StepSpec] = Field(min_length=1)


@dataclass(frozen=True)
class InputRef:
    """Where an input comes from: an earlier step's output, or a file."""

    step: str | None = None
    output: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        return f"{self.step}.{self.output}" if self.step else str(self.path)


@dataclass(frozen=True)
class Step:
    """A validated step: its task, validated params and resolved inputs."""

    id: str
    task: Task
    params: Params
    inputs: dict[str, InputRef]
    batch_size: int | None = None

    @property
    def depends_on(self) -> set[str]:
        return {ref.step for ref in self.inputs.values() if ref.step}


@dataclass(frozen=True)
class Workflow:
    """A validated workflow: steps in an order where each comes after its inputs."""

    name: str
    description: str
    steps: list[Step]
    text: str = ""
    source: Path | None = None
    _by_id: dict[str, Step] = field(default_factory=dict, repr=False)

    def step(self, step_id: str) -> Step:
        return self._by_id[step_id]

    def with_text(self, text: str, *, source: str | Path | None = None,
                  description: str | None = None) -> Workflow:
        """The same steps, recorded as ``text`` (e.g. the file a command's own format was
        read from, with the steps made from it) from ``source``."""
        import dataclasses

        return dataclasses.replace(self, text=text,
                                   source=Path(source).resolve() if source else self.source,
                                   description=self.description if description is None
                                   else description)

    @classmethod
    def from_steps(cls, steps: Sequence[dict[str, Any]], *, name: str = "steps",
                   description: str = "", base_dir: str | Path | None = None) -> Workflow:
        """A workflow built in code, validated like a file, and recorded as YAML text.

        Each step is a mapping as in a workflow file: ``id``, ``task``,
        ``params`` (a mapping or a task's ``Params``), ``inputs`` (``"step.output"``,
        or a file as a :class:`~pathlib.Path`, made absolute) and ``batch_size``.
        The YAML text goes into the results' provenance, so ``matterflow run``
        reruns it::

            wf = Workflow.from_steps([
                {"id": "walks", "task": "core.random_walks", "params": {"n_walkers": 50}},
                {"id": "msd", "task": "core.mean_squared_displacement",
                 "inputs": {"walk": "walks.positions_nm"}, "batch_size": 10},
            ], name="msd")
        """
        import json

        base = Path.cwd() if base_dir is None else Path(base_dir)
        plain: list[dict[str, Any]] = []
        for i, s in enumerate(steps):
            if not isinstance(s, dict):
                raise InputError(f"{name}: steps[{i}] must be a mapping (id, task, params, "
                                 f"inputs); got {type(s).__name__}")
            step = dict(s)
            params = step.get("params")
            if isinstance(params, BaseModel):
                params = params.model_dump(mode="json")
            if params:
                try:
                    step["params"] = json.loads(json.dumps(params, default=_json_value))
                except TypeError as exc:
                    raise InputError(f"{name}: steps[{i}] (id {step.get('id')!r}).params: "
                                     f"{exc}") from None
            else:
                step.pop("params", None)
            inputs = {}
            for key, ref in (step.get("inputs") or {}).items():
                inputs[key] = str((base / ref).resolve()) if isinstance(ref, Path) else ref
            if inputs:
                step["inputs"] = inputs
            else:
                step.pop("inputs", None)
            if step.get("batch_size") is None:
                step.pop("batch_size", None)
            plain.append(step)
        text = yaml.safe_dump({"name": name, "description": description, "steps": plain},
                              sort_keys=False, allow_unicode=True)
        return parse_workflow(text, source=f"<{name}>", base_dir=base)


# --------------------------------------------------------------------------- YAML with lines

_Path = tuple[Any, ...]


def _line_map(node: yaml.Node, path: _Path = (),
              out: dict[_Path, int] | None = None) -> dict[_Path, int]:
    """Map each key path (``('steps', 2, 'params', 'npt')``) to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


class _Locator:
    def __init__(self, source: str, lines: dict[_Path, int], data: Any):
        self.source, self.lines, self.data = source, lines, data

    def line(self, path: _Path) -> int:
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def where(self, path: _Path) -> str:
        """``file:line: steps[2] (id 'x').params.npt``."""
        parts: list[str] = []
        for i, p in enumerate(path):
            if isinstance(p, int):
                label = f"[{p}]"
                if path[:i] == ("steps",):
                    sid = _step_id(self.data, p)
                    label += f" (id {sid!r})" if sid else ""
                parts.append(label)
            else:
                parts.append(("." if parts else "") + str(p))
        return f"{self.source}:{self.line(path)}: " + ("".join(parts) or "workflow")


def _step_id(data: Any, index: int) -> str | None:
    try:
        sid = data["steps"][index].get("id")
        return str(sid) if sid is not None else None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def parse_workflow(text: str, *, source: str = "<workflow>", base_dir: Path | None = None) -> Workflow:
    """Validate workflow ``text`` (YAML) into a :class:`Workflow`.

    ``base_dir`` is where relative file inputs are looked up (default: cwd).
    Raises :class:`InputError` naming file, line, step and field.

    >>> wf = parse_workflow('''
    ... steps:
    ...   - {id: walks, task: core.random_walks, params: {n_walkers: 4, seed: 7}}
    ...   - {id: msd, task: core.mean_squared_displacement, inputs: {walk: walks.positions_nm}}
    ... ''')
    >>> [s.id for s in wf.steps], wf.step("msd").task.map_over
    (['walks', 'msd'], 'walk')
    >>> parse_workflow('''
    ... steps:
    ...   - {id: walks, task: core.random_walks, params: {n_walkers: -5}}
    ... ''', source="flow.yaml")
    Traceback (most recent call last):
    ...
    matterflow.core.errors.InputError: flow.yaml:3: steps[0] (id 'walks').params.n_walkers: input should be greater than or equal to 1; got -5
    """
    base_dir = Path.cwd() if base_dir is None else base_dir
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "1"
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"{source}:{line}: not valid YAML: {problem}") from None
    if node is None or not isinstance(data, dict):
        raise InputError(f"{source}:1: a workflow must be a mapping with a 'steps' list; "
                         f"got {type(data).__name__}")
    loc = _Locator(source, _line_map(node), data)

    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(validation_message(exc, prefix="", locate=loc.where)) from None

    errors: list[str] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(spec.steps):
        if s.id in seen:
            errors.append(f"{loc.where(('steps', i, 'id'))}: duplicate step id {s.id!r} "
                          f"(first used by steps[{seen[s.id]}])")
        seen.setdefault(s.id, i)

    steps: list[Step] = []
    for i, s in enumerate(spec.steps):
        try:
            t = get_task(s.task)
        except InputError as exc:
            errors.append(f"{loc.where(('steps', i, 'task'))}: {exc}")
            continue
        try:
            params = t.params(**s.params)
        except ValidationError as exc:
            errors.append(validation_message(
                exc, prefix="", model=t.params,
                locate=functools.partial(_params_where, loc, i)))
            continue
        inputs: dict[str, InputRef] = {}
        for name, ref in s.inputs.items():
            where = loc.where(("steps", i, "inputs", name))
            if name not in t.input_names:
                errors.append(f"{where}: task {t.name} has no input {name!r}; "
                              f"accepted: {', '.join(t.input_names) or '(none)'}")
                continue
            inputs[name] = _resolve_ref(ref, seen, s.id, base_dir, where, errors)
        for name in t.required_inputs:
            if name not in s.inputs:
                errors.append(f"{loc.where(('steps', i, 'inputs'))}: task {t.name} needs input "
                              f"{name!r} (a step output 'step_id.output' or a file path)")
        if s.batch_size is not None and t.map_over is None:
            errors.append(f"{loc.where(('steps', i, 'batch_size'))}: task {t.name} does not map "
                          "over items; remove batch_size")
        steps.append(Step(s.id, t, params, inputs, s.batch_size))

    tasks_by_id = {st.id: st.task for st in steps}
    for i, s in enumerate(spec.steps):
        for name, ref in s.inputs.items():
            src = _match_ref(ref)
            if not src or src[0] not in tasks_by_id:
                continue
            outputs = tasks_by_id[src[0]].output_names
            if outputs is not None and src[1].split("/")[0] not in outputs:
                errors.append(f"{loc.where(('steps', i, 'inputs', name))}: step {src[0]!r} "
                              f"({tasks_by_id[src[0]].name}) has no output {src[1]!r}; its "
                              f"outputs: {', '.join(outputs)}")

    if errors:
        raise InputError("\n".join(errors))

    by_id = {s.id: s for s in steps}
    sorter = graphlib.TopologicalSorter({s.id: s.depends_on for s in steps})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        first = next(i for i, s in enumerate(spec.steps) if s.id == cycle[0])
        raise InputError(f"{loc.where(('steps', first, 'inputs'))}: steps form a cycle: "
                         f"{' -> '.join(cycle)}; a step may only use outputs of other steps "
                         "that do not depend on it") from None
    return Workflow(spec.name, spec.description, [by_id[s] for s in order], text=text,
                    _by_id=by_id)


def _params_where(loc: _Locator, index: int, path: _Path) -> str:
    return loc.where(("steps", index, "params") + tuple(path))


def _json_value(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"a step parameter must be plain data (numbers, strings, lists, mappings); "
                    f"got {type(obj).__name__}")


def _match_ref(ref: str) -> tuple[str, str] | None:
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][\w/]*)$", ref)
    return (m.group(1), m.group(2)) if m else None


def _resolve_ref(ref: str, step_ids: dict[str, int], own: str, base_dir: Path, where: str,
                 errors: list[str]) -> InputRef:
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][\w/]*)$", ref)
    if m and m.group(1) in step_ids:
        if m.group(1) == own:
            errors.append(f"{where}: step {own!r} cannot use its own output {ref!r}")
        return InputRef(step=m.group(1), output=m.group(2))
    path = (base_dir / ref).resolve()
    if path.exists():
        return InputRef(path=path)
    looks_like_file = "/" in ref or Path(ref).suffix.lower() in file_suffixes()
    if m and not looks_like_file:  # looks like step.output, but no such step and no such file
        near = difflib.get_close_matches(m.group(1), list(step_ids), n=2)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        errors.append(f"{where}: {ref!r} is neither an output of a step (steps: "
                      f"{', '.join(step_ids)}) nor an existing file{hint}")
    else:
        errors.append(f"{where}: input file {ref!r} not found (looked in {base_dir})")
    return InputRef(path=path)


def load_workflow(path: str | Path) -> Workflow:
    """Read and validate a workflow file (see :func:`parse_workflow`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: workflow file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read workflow file ({exc})") from None
    wf = parse_workflow(text, source=str(path), base_dir=path.resolve().parent)
    return Workflow(wf.name, wf.description, wf.steps, text=text, source=path.resolve(),
                    _by_id=wf._by_id)


def known_task_names() -> list[str]:
    return list(list_tasks())
