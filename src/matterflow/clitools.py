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
           "Quiet", "Workers", "Scheduler", "Processes"]

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
