"""The HTML pages: every user-controlled string goes through :func:`e` (``html.escape``), and
the data a page's script needs goes in one ``application/json`` block with ``<`` escaped."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import h5py
import numpy as np

from matterflow.core.headline import thumbnail_html
from matterflow.view._h5 import Unreadable, open_file
from matterflow.view._runs import RunInfo

__all__ = ["runs_page", "run_page", "tree_page", "compare_page", "live_page", "error_page"]


def e(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def url(route: str, /, **params: Any) -> str:
    """An escaped link ``path?k=v`` (lists give repeated keys)."""
    pairs = [(k, x) for k, v in params.items() if v is not None
             for x in (v if isinstance(v, (list, tuple)) else [v])]
    return e(route + ("?" + urlencode(pairs) if pairs else ""))


def _config(data: dict[str, Any]) -> str:
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"<script type='application/json' id='mf-config'>{text}</script>"


def page(title: str, body: str, config: dict[str, Any] | None = None, *, plotly: bool = False) -> str:
    """A whole page: header, body, the config block and the scripts."""
    scripts = ("<script src='/static/plotly.min.js'></script>" if plotly else "") + \
        "<script src='/static/view.js'></script>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            "<link rel='stylesheet' href='/static/view.css'></head><body>"
            "<header><a href='/'>matterflow view</a><span>runs, results files, provenance"
            f"</span></header><main>{body}</main>{_config(config or {})}{scripts}</body></html>")


def _table(header: list[str], rows: list[list[str]], *, ident: str = "", cls: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    idattr = f" id='{e(ident)}'" if ident else ""
    return f"<table{idattr} class='{e(cls)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status(status: str) -> str:
    cls = "ok" if status == "complete" else "run" if status == "running" else "bad"
    return f"<span class='{cls}'>{e(status)}</span>"


def _duration(s: float | None) -> str:
    if s is None:
        return ""
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def runs_page(runs: list[RunInfo], notes: list[str]) -> str:
    """The runs table: one row per run, a headline figure and number each."""
    rows = []
    for r in runs:
        if r.file_id:
            name = f"<a href='{url('/run', file=r.file_id)}'>{e(r.name)}</a>"
            links = (f"<a href='{url('/tree', file=r.file_id)}'>tree</a> "
                     f"<input type='checkbox' name='file' value='{e(r.file_id)}' title='compare'>")
        else:
            name, links = e(r.name), ""
        if r.running and r.dir_id is not None:
            links += f" <a href='{url('/live', dir=r.dir_id)}'>live</a>"
        status = _status(r.status) + (f"<br><small class='bad'>{e(r.error)}</small>" if r.error else "")
        head = ""
        if r.headline is not None:
            head = thumbnail_html(r.headline) + f"<br><small>{e(r.headline.number_text)}</small>"
        rows.append([name, e(r.domain), status, e(r.start), e(r.end), e(_duration(r.duration_s)),
                     e(r.host), e(r.version), f"<code>{e(r.commit[:12])}</code>", head, links])
    note_html = "".join(f"<div class='note'>{e(n)}</div>" for n in notes)
    body = (f"<h1>Runs ({len(runs)})</h1>{note_html}<form action='/compare' method='get'>"
            + _table(["run", "domain", "status", "start", "end", "duration", "host",
                      "matterflow", "git commit", "headline", ""], rows, ident="runs")
            + "<button type='submit'>compare the ticked runs</button></form>")
    return page("matterflow view: runs", body, {"page": "runs"})


def _pre(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True,
                                                           default=str)
    return f"<pre>{e(text)}</pre>"


def _datasets(group: h5py.Group) -> list[tuple[str, h5py.Dataset]]:
    out: list[tuple[str, h5py.Dataset]] = []
    group.visititems(lambda n, o: out.append((n, o)) if isinstance(o, h5py.Dataset) else None)
    return out


def _value_text(ds: h5py.Dataset) -> str:
    if ds.size > 1 or ds.ndim > 1:
        return ""
    try:
        if h5py.check_string_dtype(ds.dtype) is not None:
            v = ds.asstr()[()]
            v = v if isinstance(v, str) else ", ".join(map(str, np.ravel(v)))
            return v[:120] + ("…" if len(v) > 120 else "")
        v = np.ravel(ds[()])
        return f"{v[0]:.6g}" if v.size and v.dtype.kind == "f" else (str(v[0]) if v.size else "")
    except (OSError, TypeError, ValueError) as exc:
        return f"unreadable: {exc}"


def run_page(info: RunInfo, path: Path) -> str:
    """Provenance, steps, figures and interactive plots of one results file."""
    title = info.name
    if info.error:
        return page(title, f"<h1>{e(title)}</h1><p class='bad' id='unreadable'>unreadable: "
                           f"{e(info.error)}</p>")
    prov = info.provenance
    keys = ["status", "workflow_name", "workflow_file", "matterflow_version", "git_commit",
            "start_time", "end_time", "executor", "host", "user", "python_version", "platform",
            "command"]
    prov_rows = [[e(k), e(prov[k])] for k in keys if k in prov]
    for k in ("parameters", "input_checksums", "seeds", "library_versions"):
        if prov.get(k):
            prov_rows.append([e(k), _pre(prov[k])])
    parts = [f"<h1>{e(title)}</h1>",
             f"<p>{_status(info.status)} · domain <b>{e(info.domain)}</b> · "
             f"<a href='{url('/tree', file=info.file_id)}'>HDF5 tree</a> · "
             f"<a href='{url('/report', file=info.file_id)}'>report.html</a></p>"]
    if info.headline is not None and info.headline.number_text:
        parts.append(f"<p id='headline'>headline: <b>{e(info.headline.number_text)}</b></p>")
    parts.append("<div id='plot' class='plot'></div>")
    parts += ["<h2>Provenance</h2>", _table(["", ""], prov_rows, ident="provenance")]
    if prov.get("workflow_text"):
        parts.append("<details><summary>workflow text</summary>" + _pre(prov["workflow_text"])
                     + "</details>")
    step_rows, sections = [], []
    try:
        f = open_file(path)
    except Unreadable as exc:
        return page(title, "".join(parts) + f"<p class='bad'>{e(exc)}</p>")
    with f:
        for sid, g in f.items():
            if not isinstance(g, h5py.Group):
                continue
            a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
            n_items = a.get("n_items", "")
            step_rows.append([f"<a href='#step-{e(sid)}'>{e(sid)}</a>", e(a.get("task", "")),
                              _status(str(a.get("status", ""))), e(a.get("started", "")),
                              e(_duration(float(a["duration_s"])) if "duration_s" in a else ""),
                              e(n_items)])
            rows = []
            for name, ds in _datasets(g):
                dpath = f"/{sid}/{name}"
                numeric = ds.dtype.kind in "fiub" and ds.size > 1
                link = (f"<a class='plotlink' href='#' data-path='{e(dpath)}'>plot</a> "
                        if numeric else "")
                link += f"<a href='{url('/tree', file=info.file_id, path=dpath)}'>tree</a>"
                rows.append([e(name), e(ds.shape), e(ds.dtype if h5py.check_string_dtype(ds.dtype)
                                                      is None else "str"),
                             e(ds.attrs.get("units", "")), e(_value_text(ds)), link])
            sections.append(f"<h2 id='step-{e(sid)}'>{e(sid)} <small>({e(a.get('task', ''))})"
                            f"</small></h2>" + _table(["output", "shape", "dtype", "units", "value",
                                                       ""], rows)
                            + f"<div class='figures' data-step='{e(sid)}'>"
                            "<p class='muted'>figures loading…</p></div>")
    parts += ["<h2>Steps</h2>", _table(["step", "task", "status", "started", "duration", "items"],
                                       step_rows, ident="steps")]
    parts += sections
    headline = info.headline.figure if info.headline and info.headline.figure else None
    if headline and "[" in headline:
        headline = headline.split("[", 1)[0]
    return page(title, "".join(parts), {"page": "run", "file": info.file_id,
                                        "headline": headline}, plotly=True)


def _tree_html(f: h5py.File, file_id: str, selected: str) -> str:
    def node(g: h5py.Group, prefix: str) -> str:
        items = []
        for name in g:
            p = f"{prefix}/{name}"
            link = g.get(name, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                items.append(f"<li>{e(name)} <span class='muted'>(link, not followed)</span></li>")
                continue
            obj = g[name]
            cls = " class='sel'" if p == selected else ""
            href = url("/tree", file=file_id, path=p)
            if isinstance(obj, h5py.Group):
                items.append(f"<li><a{cls} href='{href}'>{e(name)}/</a>{node(obj, p)}</li>")
            else:
                units = obj.attrs.get("units", "")
                dt = "str" if h5py.check_string_dtype(obj.dtype) is not None else obj.dtype
                items.append(f"<li><a{cls} href='{href}'>{e(name)}</a> <span class='muted'>"
                             f"{e(obj.shape)} {e(dt)} {e(units)}</span></li>")
        return f"<ul>{''.join(items)}</ul>"

    return node(f, "")


def tree_page(file_id: str, path: Path, selected: str, label: str) -> str:
    """The HDF5 tree on the left; the selected entity's metadata, attributes and plot on the right."""
    from matterflow.view._h5 import attrs, meta

    try:
        f = open_file(path)
    except Unreadable as exc:
        return page(label, f"<h1>{e(label)}</h1><p class='bad' id='unreadable'>unreadable: "
                           f"{e(exc)}</p>")
    with f:
        tree = _tree_html(f, file_id, selected)
        pane = [f"<h1>{e(label)}</h1>"]
        if selected:
            try:
                m = meta(f, selected)
                a = attrs(f, selected)
            except KeyError as exc:
                pane.append(f"<p class='bad'>{e(exc)}</p>")
                m, a = {}, {}
            if m:
                info = [[e(k), e(m[k])] for k in ("kind", "shape", "dtype", "chunks", "units")
                        if k in m]
                if m.get("filters"):
                    info.append(["filters", e(", ".join(x["name"] for x in m["filters"]))])
                pane.append(f"<h2>{e(selected)}</h2>" + _table(["", ""], info, ident="meta"))
                pane.append("<h3>Attributes</h3>" + _table(
                    ["name", "value"], [[e(k), _pre(v) if isinstance(v, str) and len(v) > 80
                                         else e(v)] for k, v in a.items()], ident="attrs"))
                if m.get("kind") == "dataset" and m.get("dtype") == "str":
                    pane.append(_pre(_value_text(f[selected]) or "(text array)"))
        else:
            pane.append("<p class='muted'>pick a group or dataset on the left</p>")
    body = (f"<div class='tree' id='tree'>{tree}</div><div class='pane'>{''.join(pane)}"
            "<div class='controls' id='lead'></div><div id='plot' class='plot'></div></div>")
    return page(f"{label} · tree", body, {"page": "tree", "file": file_id, "path": selected},
                plotly=True)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def compare_page(runs: list[RunInfo], curves: list[str]) -> str:
    """Parameter and provenance diff of two or more runs, and overlaid curves."""
    names = [r.name for r in runs]
    header = ["", *[f"{n} ({r.file_id})" for n, r in zip(names, runs, strict=True)]]

    def diff_rows(dicts: list[dict[str, Any]]) -> list[list[str]]:
        keys = sorted(set().union(*dicts))
        rows = []
        for k in keys:
            vals = [d.get(k, "—") for d in dicts]
            same = all(json.dumps(v, default=str) == json.dumps(vals[0], default=str) for v in vals)
            cls = "" if same else " class='diff'"
            rows.append([f"<span{cls}>{e(k)}</span>", *[f"<span{cls}>{e(v)}</span>" for v in vals]])
        return rows

    params = [_flat(r.provenance.get("parameters", {})) for r in runs]
    keys = ["workflow_name", "status", "matterflow_version", "git_commit", "host", "executor",
            "start_time", "end_time", "python_version"]
    provs = []
    for r in runs:
        p = {k: r.provenance[k] for k in keys if k in r.provenance}
        p.update(_flat(r.provenance.get("input_checksums", {}), "input_checksums."))
        p.update(_flat(r.provenance.get("library_versions", {}), "library_versions."))
        provs.append(p)
    n_diff = sum(1 for row in diff_rows(params) if "class='diff'" in row[0])
    options = "".join(f"<option value='{e(c)}'>{e(c)}</option>" for c in curves)
    body = (f"<h1>Comparison of {len(runs)} runs</h1>"
            + ("<p>overlay: <select id='curve'>" + options + "</select></p>" if curves else
               "<p class='muted'>no 1D dataset common to these runs</p>")
            + "<div id='plot' class='plot'></div>"
            + f"<h2>Parameters ({n_diff} differ)</h2>" + _table(header, diff_rows(params), ident="params")
            + "<h2>Provenance</h2>" + _table(header, diff_rows(provs), ident="prov"))
    return page("compare", body, {"page": "compare", "files": [r.file_id for r in runs],
                                  "names": names}, plotly=True)


def live_page(dir_id: str, label: str) -> str:
    """Steps and batches of a running workflow, updated by server-sent events."""
    body = (f"<h1>Live: {e(label)}</h1><p>status: <b id='live-status'>connecting…</b></p>"
            + _table(["step", "task", "state", "batches", "items", "duration s"], [], ident="live"))
    return page(f"live · {label}", body, {"page": "live", "dir": dir_id})


def error_page(status: int, message: str) -> str:
    """A page for a refused or failed request (the message escaped)."""
    return page(f"{status}", f"<h1>{status}</h1><p class='bad'>{e(message)}</p>")
