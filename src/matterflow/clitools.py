"""Shared pieces of the command line: error handling, console, progress bars.

Every command (the core's and each domain's sub-app) wraps its body with
:func:`handle_errors`, so a :class:`~matterflow.core.errors.MatterflowError`
prints its message on stderr without a traceback and exits with 2 (bad input)
or 1 (failure). ``matterflow --debug ...`` (or ``MATTERFLOW_DEBUG=1``) shows
the traceback too.
"""

from __future__ import annotations

import functools
import os
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from matterflow.core.errors import InputError, MatterflowError

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["console", "err_console", "handle_errors", "make_progress", "state", "command_paths",
           "Quiet", "Workers", "Scheduler", "Processes", "Out", "Cluster", "Force",
           "TrustPickle", "RunOptions"]

# options shared by the commands that run a workflow
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Workers = Annotated[int | None, typer.Option(
    min=1, help="Workers of the local Dask cluster (default: cores, at most 4).")]
Scheduler = Annotated[str | None, typer.Option(
    help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")]
Processes = Annotated[bool | None, typer.Option(
    "--processes/--threads",
    help="Local Dask cluster of worker processes, or of threads in this process (for "
         "thread-safe work that releases the GIL). Default: processes; `xrd process` picks "
         "threads when every plugin of the chain allows it.")]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


class _State:
    debug: bool = bool(os.environ.get("MATTERFLOW_DEBUG"))
    quiet: bool = False


state = _State()


def handle_errors(func: F) -> F:
    """Turn MatterflowError into a clean message on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MatterflowError as exc:
            if state.debug:
                err_console.print(traceback.format_exc(), markup=False, highlight=False)
            kind = "bad input" if exc.exit_code == 2 else "error"
            err_console.print(f"[bold red]{kind}:[/bold red] ", end="")
            err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/red]; finished steps are kept, rerun to resume")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def make_progress(quiet: bool = False) -> Progress:
    """A rich progress display (use as a context manager); silent if ``quiet``."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err_console, disable=quiet or state.quiet, transient=False)


def command_paths(app: typer.Typer) -> Iterator[tuple[str, ...]]:
    """Every command of ``app`` as its path of names (``()`` is the app itself), depth first."""

    def walk(cmd: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield prefix
        # a group (typer builds on its own copy of click, so no isinstance test)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            yield from walk(sub, prefix + (name,))

    return walk(typer.main.get_command(app), ())


# =========================================================================== run options
# The options of every command that runs work on the executor, in one place:
# `--out --workers --threads/--processes --scheduler --cluster --force --quiet`.
# A command declares them with these aliases and hands them to `RunOptions`:
#
#     def cmd(..., out: Out = Path("x-out"), workers: Workers = None, processes: Processes = None,
#             scheduler: Scheduler = None, cluster: Cluster = None, force: Force = False,
#             quiet: Quiet = False):
#         opts = RunOptions(out, workers, processes, scheduler, cluster, force, quiet)
#         summary = opts.run_steps([...], name="cmd")

Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (results.h5 and the "
                                   "cache that lets a killed run resume).")]
Cluster = Annotated[Path | None, typer.Option(
    help="Cluster file (YAML): start a SLURM/PBS/SGE/LSF cluster with dask-jobqueue and run "
         "there; see docs/core.md.")]
Force = Annotated[bool, typer.Option("--force", help="Recompute everything, even what is "
                                     "already stored in the output folder.")]
# for commands that read a model, checkpoint or chain file (matterflow.core.safeload)
TrustPickle = Annotated[bool, typer.Option(
    "--trust-pickle", help="Also load an old-format file holding Python pickles (they can run "
    "code): only for files you made yourself. Save it again to get the safe format.")]


@dataclass(frozen=True)
class RunOptions:
    """The shared run options of a command, and how they run a workflow.

    ``processes=None`` lets the command choose (``default_processes`` of :meth:`run`).
    """

    out: Path
    workers: int | None = None
    processes: bool | None = None
    scheduler: str | None = None
    cluster: Path | None = None
    force: bool = False
    quiet: bool = False

    def executor_kwargs(self, default_processes: bool | None = True) -> dict[str, Any]:
        """Keyword arguments of :func:`matterflow.core.execute.run_workflow` (``processes``
        stays None if the command leaves the choice to the function it calls)."""
        processes = default_processes if self.processes is None else self.processes
        return {"scheduler": self.scheduler, "workers": self.workers, "processes": processes,
                "cluster": self.cluster, "force": self.force}

    def run(self, workflow: Any, *, default_processes: bool = True, out: Path | None = None,
            summary: bool = True, **executor_options: Any) -> Any:
        """Run ``workflow`` into ``out`` (default: ``self.out``) with one progress bar per step.

        ``executor_options`` go to :func:`~matterflow.core.execute.run_workflow` as they are
        (``wait``, ``wait_workers``, ``timeout_s``).
        """
        from matterflow.core.execute import run_workflow

        with make_progress(self.quiet) as progress:
            result = run_workflow(workflow, out or self.out, progress=progress,
                                  **self.executor_kwargs(default_processes), **executor_options)
        if summary and not (self.quiet or state.quiet):
            console.print(f"[green]done[/green] in {result.seconds:.1f} s: computed "
                          f"{', '.join(result.computed) or 'nothing'}; reused "
                          f"{', '.join(result.reused) or 'nothing'}")
        return result

    def run_steps(self, steps: list[dict[str, Any]], *, name: str, description: str = "",
                  default_processes: bool = True, out: Path | None = None,
                  summary: bool = True) -> Any:
        """Build a workflow from ``steps`` (:meth:`Workflow.from_steps`) and :meth:`run` it."""
        from matterflow.core.workflow import Workflow

        wf = Workflow.from_steps(steps, name=name, description=description)
        return self.run(wf, default_processes=default_processes, out=out, summary=summary)


# ================================================================ shared command-line helpers
# KEY=VALUE options, figure files, result files with provenance, and options whose
# bounds come from a task's Params (so the command and the task cannot drift).

from pathlib import Path  # noqa: E402  (kept with the block it serves)

__all__ += ["FIGURE_DPI", "parse_key_values", "figure_filename", "save_figure", "save_figures",
            "write_result_file", "param_option"]

#: Resolution of every PNG a command writes.
FIGURE_DPI = 120


def parse_key_values(items: str | list[str] | tuple[str, ...] | None, option: str, *,
                     key: str = "NAME", value: str = "VALUE", example: str = "",
                     convert: Callable[[str], Any] = str, commas: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` options (repeatable; with ``commas`` also ``A=1,B=2``) as a dict.

    Keys and values are stripped; ``convert`` turns each value into the wanted
    type. Anything else raises :class:`InputError` naming ``option``, the form
    ``KEY=VALUE`` and ``example``.
    """
    from matterflow.core.errors import InputError

    texts = [items] if isinstance(items, str) else list(items or [])
    out: dict[str, Any] = {}
    for text in texts:
        for item in (text.split(",") if commas else [text]):
            if commas and not item.strip():
                continue
            k, sep, v = item.partition("=")
            try:
                if not sep or not k.strip():
                    raise ValueError
                out[k.strip()] = convert(v.strip())
            except ValueError:
                form = f"{key}={value}" + (" pairs separated by commas" if commas else "")
                raise InputError(f"{option} {text!r}: expected {form}"
                                 + (f", e.g. {example}" if example else "")) from None
    return out


def parse_ints(text: str | None, option: str, n: int = 3, *, minimum: int = 1
               ) -> tuple[int, ...] | None:
    """``"2,2,2"`` (or ``2x2x2``, ``"2 2 2"``) -> ``(2, 2, 2)``; None stays None.

    :class:`InputError` naming ``option`` if there are not ``n`` integers >= ``minimum``.
    """
    if text is None:
        return None
    parts = [q for q in re.split(r"[,x\s]+", str(text).strip()) if q]
    try:
        vals = tuple(int(q) for q in parts)
    except ValueError:
        vals = ()
    if len(vals) != n or any(v < minimum for v in vals):
        raise InputError(f"{option}: {n} integers >= {minimum} separated by commas are needed, "
                         f"e.g. {','.join(['2'] * n)}; got {text!r}")
    return vals


def figure_filename(title: str, index: int) -> str:
    """The file name of figure ``index`` titled ``title``: ``NN_title_in_letters.png``."""
    slug = "".join(c if c.isalnum() else "_" for c in title)[:60]
    return f"{index:02d}_{slug}.png"


def save_figure(fig: Any, path: Path) -> Path:
    """Write one matplotlib figure as PNG (``FIGURE_DPI``) at ``path`` and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)
    return path


def save_figures(figures: dict[str, Any], folder: Path | None = None, *,
                 stem: Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Write several figures as PNG; returns the paths, in order.

    The one naming rule: in a ``folder``, figure *i* is :func:`figure_filename`
    (``00_title.png``) unless ``names`` gives the file names; beside an output
    the user named (``stem``: ``chain`` of ``chain.h5``) the first figure is
    ``stem.png`` and the next ones ``stem-1.png``, ``stem-2.png``, ...
    """
    if (folder is None) == (stem is None):
        raise TypeError("save_figures: give either folder or stem")
    if names is not None and len(names) != len(figures):
        raise TypeError(f"save_figures: {len(names)} names for {len(figures)} figures")
    paths = []
    for k, (title, fig) in enumerate(figures.items()):
        if stem is not None:
            stem = Path(stem)
            path = stem.with_name(f"{stem.name}{'' if k == 0 else f'-{k}'}.png")
        else:
            path = Path(folder) / (names[k] if names else figure_filename(title, k))  # type: ignore[arg-type]
        paths.append(save_figure(fig, path))
    return paths


def write_result_file(path: Path, result: Any, *, inputs: dict[str, Path] | None = None,
                      parameters: dict[str, Any] | None = None, **attrs: Any) -> Path:
    """Write a command's result to an HDF5 file with provenance, atomically; the path.

    ``result`` is a task result (dataclass), a dict of values, or ``(values,
    units)``. The root attributes carry the provenance of a workflow run
    (versions, host, command, time) plus ``input_checksums`` of ``inputs``
    (name -> file), ``parameters`` and the extra ``attrs``; the datasets
    carry their units, so ``matterflow inspect`` reads the file like a
    ``results.h5``.
    """
    from matterflow.core.registry import result_to_dict
    from matterflow.core.store import (
        atomic_h5,
        base_provenance,
        now_iso,
        sha256_file,
        write_outputs,
        write_provenance,
    )

    if isinstance(result, tuple):
        values, units = result
    elif isinstance(result, dict):
        values, units = result, {}
    else:
        values, units = result_to_dict(result)
    prov = {**base_provenance(), "end_time": now_iso(), "status": "complete",
            "input_checksums": {k: sha256_file(p) for k, p in (inputs or {}).items()
                                if p is not None and Path(p).is_file()},
            "parameters": parameters or {}, **attrs}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as f:
        write_provenance(f, prov)
        write_outputs(f, values, units)
    return path


def read_result_file(path: Path, what: str = "") -> dict[str, Any]:
    """The values of a result file that :func:`write_result_file` (or a task) wrote.

    :class:`InputError` naming ``path`` if it is missing or not HDF5; ``what`` says which kind of
    file it should be (``"chain"`` gives "chain file not found", "not an HDF5 chain file").
    """
    import h5py

    from matterflow.core.store import read_group

    kind = f"{what} file" if what else "file"
    if not path.exists():
        raise InputError(f"{path}: {kind} not found")
    try:
        with h5py.File(path, "r") as f:
            return read_group(f)[0]
    except OSError as exc:
        raise InputError(f"{path}: not an HDF5 {kind} ({exc})") from None


def param_option(model: type[BaseModel], field: str, *param_decls: str, help: str | None = None,
                 **kwargs: Any) -> Any:
    """A ``typer.Option`` whose bounds and help come from ``model.model_fields[field]``.

    Inclusive bounds (``ge``/``le``) become the option's ``min``/``max``; strict
    ones (``gt``/``lt``) are checked by a callback with the same message. The
    help is ``help`` (or the field's description), then its units and range, so
    ``--help`` shows what the task accepts::

        coverage: Annotated[float, param_option(EvaluateParams, "coverage")] = 0.9
    """
    import annotated_types as at

    info = model.model_fields[field]
    # the field's numeric bounds (annotated_types types them only as comparable)
    ge: Any = None
    le: Any = None
    gt: Any = None
    lt: Any = None
    for m in info.metadata:
        if isinstance(m, at.Ge):
            ge = m.ge
        elif isinstance(m, at.Gt):
            gt = m.gt
        elif isinstance(m, at.Le):
            le = m.le
        elif isinstance(m, at.Lt):
            lt = m.lt
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    text = help or (info.description or "").rstrip(".")
    if extra.get("units"):
        text += f" ({extra['units']})"
    if gt is not None or lt is not None:
        low = "" if gt is None and ge is None else f"{gt if gt is not None else ge}{'<' if gt is not None else '<='}"
        high = "" if lt is None and le is None else f"{'<' if lt is not None else '<='}{lt if lt is not None else le}"
        text += f" [{low}x{high}]"

        def check(value: Any) -> Any:
            if value is None:
                return value
            bad = ((gt is not None and not value > gt) or (lt is not None and not value < lt)
                   or (ge is not None and not value >= ge) or (le is not None and not value <= le))
            if bad:
                raise typer.BadParameter(f"{value} is not in the range {low}x{high}.")
            return value

        return typer.Option(*param_decls, help=text + ".", callback=check, **kwargs)
    return typer.Option(*param_decls, min=ge, max=le, help=text + ".", **kwargs)
