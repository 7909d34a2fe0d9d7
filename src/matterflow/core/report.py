"""A self-contained HTML report of any results file.

``write_report("results.h5")`` writes ``report.html`` beside it: the
provenance, one section per step (parameters, outputs with shape and units,
scalar values) and the figures each task declares (PNG embedded in the page,
so the file can be mailed or attached to a lab book as it is).
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.core.registry import get_task
from matterflow.core.store import Results, atomic_write_bytes

__all__ = ["write_report", "write_index"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #345}h2{margin-top:2em;color:#345}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef}code,pre{font-size:.85em}pre{background:#f6f6f6;padding:.6em;overflow:auto}
figure{display:inline-block;margin:.5em}figcaption{text-align:center;font-size:.9em}
.bad{color:#a00}.ok{color:#070}
"""


def _fig_to_img(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary(value: Any) -> tuple[str, str, str]:
    """(shape, dtype, value or range) of an output, as HTML-safe text."""
    if isinstance(value, str):
        return "", "str", html.escape(value[:200])
    if isinstance(value, list):
        return f"({len(value)},)", "str", html.escape(", ".join(value[:5]) + (" …" if len(value) > 5 else ""))
    arr = np.asarray(value)
    if arr.ndim == 0:
        return "()", str(arr.dtype), html.escape(f"{arr.item():.6g}" if arr.dtype.kind == "f" else str(arr.item()))
    if arr.dtype.kind in "fiu" and arr.size:
        finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
        rng = f"{finite.min():.4g} … {finite.max():.4g}" if finite.size else "all non-finite"
    else:
        rng = ""
    return str(arr.shape), str(arr.dtype), rng


def _flat(values: dict, units: dict, prefix: str = "") -> list[tuple[str, Any, str]]:
    rows = []
    for k, v in values.items():
        if isinstance(v, dict):
            rows += _flat(v, units, f"{prefix}{k}/")
        else:
            rows.append((f"{prefix}{k}", v, units.get(f"{prefix}{k}", "")))
    return rows


def _step_section(results: Results, step: str) -> str:
    attrs = results.steps[step]
    values, units = results.read(step)
    parts = [f"<h2 id='{html.escape(step)}'>{html.escape(step)} "
             f"<small>({html.escape(str(attrs.get('task', '?')))})</small></h2>"]
    meta = [(html.escape(k), html.escape(json.dumps(attrs[k]) if isinstance(attrs[k], dict) else str(attrs[k])))
            for k in ("status", "duration_s", "n_items", "key", "inputs") if k in attrs]
    parts.append(_table(meta, ("", "")))
    params = attrs.get("params", {})
    if params:
        parts.append("<b>Parameters</b>" + _table([(html.escape(k), html.escape(repr(v)))
                                                    for k, v in params.items()], ("name", "value")))
    rows = [(html.escape(name), *(_summary(v)[:2]), html.escape(u), _summary(v)[2])
            for name, v, u in _flat(values, units)]
    parts.append("<b>Outputs</b>" + _table(rows, ("name", "shape", "dtype", "units", "value / range")))
    parts.append(_figures_html(attrs.get("task"), values, params))
    return "\n".join(parts)


def _figures_html(task_name: str | None, values: dict, params: dict) -> str:
    if not task_name:
        return ""
    try:
        t = get_task(task_name)
    except InputError:
        return f"<p class='bad'>task {html.escape(task_name)} is not installed: no figures</p>"
    if t.figures is None:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figs = t.figures(values, t.params(**params))
    except Exception as exc:  # a broken figure must not lose the report
        return f"<p class='bad'>figures failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
    return "".join(f"<figure><img src='{_fig_to_img(fig)}'><figcaption>{html.escape(title)}</figcaption></figure>"
                   for title, fig in figs.items())


def write_report(results_path: str | Path, out: str | Path | None = None) -> Path:
    """Write a self-contained HTML report for ``results_path``; returns its path."""
    results = Results(results_path)
    out = Path(out) if out else results.path.with_name("report.html")
    prov = results.provenance
    title = prov.get("workflow_name", results.path.stem)
    status = str(prov.get("status", ""))
    keys = ["status", "workflow_file", "matterflow_version", "git_commit", "start_time",
            "end_time", "executor", "host", "user", "python_version", "platform", "command"]
    rows = [(k, html.escape(str(prov[k]))) for k in keys if k in prov]
    for k in ("seeds", "input_checksums", "library_versions"):
        if prov.get(k):
            rows.append((k, "<pre>" + html.escape(json.dumps(prov[k], indent=1)) + "</pre>"))
    toc = " · ".join(f"<a href='#{html.escape(s)}'>{html.escape(s)}</a>" for s in results.steps)
    body = [f"<h1>{html.escape(str(title))}</h1>",
            f"<p class='{'ok' if status == 'complete' else 'bad'}'>status: {html.escape(status)}</p>",
            f"<p>{toc}</p>", "<h2>Provenance</h2>", _table(rows, ("", ""))]
    if prov.get("workflow_text"):
        body.append("<details><summary>workflow</summary><pre>"
                    + html.escape(prov["workflow_text"]) + "</pre></details>")
    body += [_step_section(results, s) for s in results.steps]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(str(title))}"
            f"</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
    return atomic_write_bytes(out, page.encode("utf-8"))


def _gallery_card(title: str, report: Path, status: str, out: Path) -> str:
    """One demo's card: headline thumbnail and number, time, links to the report and the viewer."""
    import h5py

    from matterflow.core.domain import list_domains
    from matterflow.core.headline import find_headline, run_domain, thumbnail_html

    results = report.with_name("results.h5")
    thumb = number = seconds = ""
    try:
        with h5py.File(results, "r") as f:
            dom = list_domains().get(run_domain(f))
            head = find_headline(f, dom.headline if dom else None)
            thumb, number = thumbnail_html(head, width=240, height=90), head.number_text
            start, end = f.attrs.get("start_time", ""), f.attrs.get("end_time", "")
        import datetime as dt

        seconds = f"{(dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))).total_seconds():.0f} s"
    except (OSError, ValueError, TypeError) as exc:
        number = f"no results: {exc}"
    rel = html.escape(str(report.relative_to(out.parent)))
    cls = "ok" if status == "complete" else "bad"
    return (f"<div class='card'><h2>{html.escape(title)}</h2>{thumb}<p><b>{html.escape(number)}</b>"
            f"</p><p class='{cls}'>{html.escape(status)} {html.escape(seconds)}</p>"
            f"<p><a href='{rel}'>report</a> · view: <code>matterflow view "
            f"{html.escape(str(report.parent.relative_to(out.parent)))}</code></p></div>")


def write_index(entries: list[tuple[str, Path, str]], out: Path) -> Path:
    """A gallery of several runs: ``entries`` are (title, report path, status); each card shows
    the run's headline figure and number (:mod:`matterflow.core.headline`), its time, and links
    to its report and to ``matterflow view``."""
    cards = "".join(_gallery_card(t, p, s, out) for t, p, s in entries)
    css = _CSS + (".card{display:inline-block;vertical-align:top;width:270px;margin:.5em;"
                  "padding:.6em;border:1px solid #ccc;border-radius:6px;background:#fff}"
                  ".card h2{margin:.1em 0 .4em;font-size:1.1em}.card p{margin:.3em 0;overflow-wrap:anywhere}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>matterflow demo</title>"
            f"<style>{css}</style></head><body><h1>matterflow demo</h1>"
            f"<p>Every domain's demo: its headline figure and number. Browse all runs with "
            f"<code>matterflow view {html.escape(out.parent.name or '.')}</code>.</p>"
            f"{cards}</body></html>")
    out.write_text(page)
    return out
