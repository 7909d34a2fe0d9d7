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
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

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

from matterflow.core.errors import MatterflowError

__all__ = ["console", "err_console", "handle_errors", "make_progress", "state", "command_paths",
           "Quiet", "Workers", "Scheduler", "Processes", "Out", "Cluster", "Force",
           "RunOptions"]

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
            summary: bool = True) -> Any:
        """Run ``workflow`` into ``out`` (default: ``self.out``) with one progress bar per step."""
        from matterflow.core.execute import run_workflow

        with make_progress(self.quiet) as progress:
            result = run_workflow(workflow, out or self.out, progress=progress,
                                  **self.executor_kwargs(default_processes))
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
