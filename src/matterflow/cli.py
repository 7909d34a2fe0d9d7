"""The ``matterflow`` command.

Core commands: ``run``, ``demo``, ``tasks``, ``inspect``, ``report``. Each
domain adds a sub-app (``matterflow xrd ...``) through its declaration
(:mod:`matterflow.core.domain`); a domain whose optional packages are missing
still shows up, and says what to install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from matterflow import __version__
from matterflow.clitools import (
    Cluster,
    Force,
    Processes,
    Quiet,
    RunOptions,
    Scheduler,
    Workers,
    console,
    handle_errors,
    state,
)
from matterflow.core.errors import InputError

app = typer.Typer(
    name="matterflow",
    help="Data-driven materials science: workflows on Dask, HDF5 results with provenance, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

def _version(value: bool) -> None:
    if value:
        console.print(f"matterflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """matterflow: data-driven materials science on one small core."""
    state.debug = state.debug or debug


def _run(workflow: Path, opts: RunOptions, *, report: bool = True,
         **run_options: Any) -> tuple[Path, str]:
    from matterflow.core.report import write_report
    from matterflow.core.workflow import load_workflow

    wf = load_workflow(workflow)
    summary = opts.run(wf, **run_options)
    rep = write_report(summary.results) if report else None
    console.print(f"results: {summary.results}" + (f"\nreport:  {rep}" if rep else ""))
    return summary.results, "complete"


@app.command()
@handle_errors
def run(
    workflow: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (results.h5, report.html).")] = Path("matterflow-out"),
    workers: Workers = None,
    scheduler: Scheduler = None,
    processes: Processes = None,
    cluster: Cluster = None,
    force: Force = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Do not write report.html.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="If another run writes into OUT, wait for it to finish instead of stopping.")] = False,
    wait_workers: Annotated[int | None, typer.Option("--wait-workers", min=1, help="With --scheduler: wait for this many workers (default 1).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="With --scheduler: seconds to wait for the workers before stopping.")] = 120.0,
    quiet: Quiet = False,
) -> None:
    """Run a workflow file; steps already stored in OUT are reused (resume after a crash)."""
    _run(workflow, RunOptions(out, workers, processes, scheduler, cluster, force, quiet),
         report=not no_report, wait=wait, wait_workers=wait_workers, timeout_s=timeout)


def demo_workflows(*, full: bool = False) -> dict[str, list[Path]]:
    """Domain -> its demo workflow files, for the domains whose tasks are installed."""
    from matterflow.core.domain import list_domains
    from matterflow.core.registry import unavailable_domains

    missing = unavailable_domains()
    found = {}
    for name, dom in list_domains().items():
        paths = dom.demo_paths(full=full)
        if paths and name not in missing:
            found[name] = paths
    return found


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-out"),
    only: Annotated[list[str] | None, typer.Option(help="Run only this domain (repeatable), e.g. core, xrd.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Also run the long versions of the demos.")] = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
    processes: Processes = None,
    cluster: Cluster = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Run the example workflows of every installed domain and link their reports."""
    from matterflow.core.report import write_index

    available = demo_workflows(full=full)
    chosen = only or list(available)
    unknown = [d for d in chosen if d not in available]
    if unknown:
        raise InputError(f"--only: no demo for {', '.join(unknown)}; available: {', '.join(available)}")
    entries = []
    failed = []
    for domain in chosen:
        for path in available[domain]:
            label = domain if len(available[domain]) == 1 else f"{domain}/{path.stem}"
            console.rule(f"[bold]{domain}[/bold]: {path.name}")
            try:
                results, status = _run(path, RunOptions(out / label, workers, processes,
                                                        scheduler, cluster, force, quiet))
            except typer.Exit:
                raise
            except Exception as exc:  # one broken demo must not hide the others
                failed.append(label)
                console.print(f"[red]{label} failed:[/red] {exc}")
                continue
            entries.append((label, results.with_name("report.html"), status))
    index = write_index(entries, out / "index.html")
    console.print(f"\n[bold]demo report:[/bold] {index.resolve()}")
    if failed:
        raise typer.Exit(code=1)


@app.command()
@handle_errors
def tasks(
    name: Annotated[str | None, typer.Argument(help="Show the parameters of this task.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the registered tasks, or show one task's parameters, types, defaults and units."""
    from matterflow.core.registry import get_task, list_tasks, unavailable_domains

    if name is None:
        table = Table("task", "maps over", "description", box=None)
        for tname, t in list_tasks().items():
            table.add_row(tname, t.map_over or "", t.doc)
        console.print(table)
        for domain, why in unavailable_domains().items():
            console.print(f"[yellow]{domain}: not available[/yellow] ", end="")
            console.print(f"({why})", markup=False)
        return
    t = get_task(name)
    schema = t.params.model_json_schema()
    if as_json:
        console.print_json(json.dumps(schema))
        return
    console.print(f"[bold]{t.name}[/bold] (version {t.version}): {t.doc}")
    console.print(f"inputs: {', '.join(t.input_names) or '(none)'}"
                  + (f"; maps over [bold]{t.map_over}[/bold]" if t.map_over else ""))
    table = Table("parameter", "type", "default", "units", "description", box=None)
    for fname, f in t.params.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        prop = schema.get("properties", {}).get(fname, {})
        bounds = ", ".join(f"{k} {prop[k]}" for k in ("minimum", "exclusiveMinimum", "maximum",
                                                        "exclusiveMaximum") if k in prop)
        typ = getattr(f.annotation, "__name__", str(f.annotation)).replace("typing.", "")
        default = "(required)" if f.is_required() else repr(f.get_default(call_default_factory=True))
        desc = (f.description or "") + (f" [{bounds}]" if bounds else "")
        table.add_row(fname, typ, default, str(extra.get("units", "")), desc)
    console.print(table)


@app.command()
@handle_errors
def inspect(
    file: Annotated[Path, typer.Argument(help="A results file (HDF5).")],
) -> None:
    """Print the tree of a results file (names, shapes, dtypes, units) and its provenance."""
    from matterflow.core.store import Results, describe

    res = Results(file)
    table = Table("name", "shape", "dtype", "units", box=None)
    for row in describe(file):
        table.add_row(*row)
    console.print(table)
    console.print("\n[bold]provenance[/bold]")
    for key, value in res.provenance.items():
        if key == "workflow_text":
            console.print(f"  {key}:", highlight=False)
            console.print("    " + str(value).replace("\n", "\n    "), markup=False, highlight=False)
        else:
            text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
            console.print(f"  {key}: {text}", markup=False, highlight=False)


@app.command()
@handle_errors
def report(
    file: Annotated[Path, typer.Argument(help="A results file (HDF5).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default: report.html beside FILE).")] = None,
) -> None:
    """Write a self-contained HTML report (provenance, outputs, figures) of a results file."""
    from matterflow.core.report import write_report

    console.print(f"report: {write_report(file, out)}")


@app.command()
@handle_errors
def view(
    paths: Annotated[list[Path] | None, typer.Argument(help="Run folders or results files (default: .).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; not loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8765,
    token: Annotated[str | None, typer.Option(help="Secret every request must carry (?token=...).")] = None,
) -> None:
    """Serve local web pages of runs: table, run pages, HDF5 tree, comparison, live view."""
    from matterflow.view import serve

    serve([str(p) for p in paths or [Path(".")]], host=host, port=port, token=token,
          echo=lambda text: console.print(text, markup=False, highlight=False))


def _add_domain_apps() -> None:
    from matterflow.core.domain import list_domains

    for name, dom in list_domains().items():
        if dom.cli is None:
            continue
        try:
            sub, summary = dom.load_cli(), dom.summary
        except ImportError as exc:
            sub = _unavailable_app(name, str(exc), dom.pip_extra)
            summary = sub.info.help
        app.add_typer(sub, name=name, help=summary)


def _unavailable_app(name: str, why: str, extra: str) -> typer.Typer:
    from rich.markup import escape

    sub = typer.Typer(help=escape(f"[not installed: {why}; pip install 'matterflow[{extra}]']"),
                      invoke_without_command=True)

    @sub.callback()
    @handle_errors
    def _missing() -> None:
        raise InputError(f"the {name} commands need extra packages ({why}); "
                         f"install them with: pip install 'matterflow[{extra}]'")

    return sub


_add_domain_apps()


def main() -> None:
    """Entry point of the ``matterflow`` console script."""
    app()


if __name__ == "__main__":
    main()
