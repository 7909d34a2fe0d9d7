"""Finding runs below the served roots and summarising each one.

A run is a folder holding ``results.h5`` (written at the end of a run) or the
executor's step cache ``.matterflow-cache/`` (a run in progress), or a results
file given on the command line. A summary reads only root and step attributes
and the headline's thumbnail, and is cached by file size and modification
time, so the runs table of a large tree stays fast.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from matterflow.core.headline import Headline, find_headline, run_domain
from matterflow.view._h5 import Unreadable, open_file
from matterflow.view._roots import Roots

__all__ = ["RunInfo", "scan", "summarize", "live_state", "RESULTS_NAME", "CACHE_NAME"]

RESULTS_NAME = "results.h5"
CACHE_NAME = ".matterflow-cache"
MANIFEST_NAME = "manifest.json"
_H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")


@dataclass
class RunInfo:
    """One row of the runs table."""

    file_id: str | None          # id of the results file (None while a first run is going)
    dir_id: str | None           # id of the run's folder
    name: str
    domain: str = ""
    status: str = ""
    start: str = ""
    end: str = ""
    duration_s: float | None = None
    host: str = ""
    version: str = ""
    commit: str = ""
    n_steps: int = 0
    running: bool = False
    error: str | None = None
    headline: Headline | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    return v


def _seconds(start: str, end: str) -> float | None:
    try:
        return (_dt.datetime.fromisoformat(end) - _dt.datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


_cache: dict[str, tuple[tuple[int, int], RunInfo]] = {}
_lock = threading.Lock()


def _headline_decl(domain: str) -> str | None:
    from matterflow.core.domain import list_domains

    dom = list_domains().get(domain)
    return dom.headline if dom is not None else None


def summarize(path: Path, file_id: str, dir_id: str | None) -> RunInfo:
    """The summary of one results file (cached while its size and mtime stay)."""
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    with _lock:
        hit = _cache.get(str(path))
    if hit and hit[0] == stamp:
        info = hit[1]
    else:
        info = _read_summary(path, file_id, dir_id)
        with _lock:
            _cache[str(path)] = (stamp, info)
    return info


def _read_summary(path: Path, file_id: str, dir_id: str | None) -> RunInfo:
    name = path.parent.name if path.name == RESULTS_NAME else path.stem
    try:
        f = open_file(path)
    except Unreadable as exc:
        return RunInfo(file_id, dir_id, name, status="unreadable", error=str(exc))
    try:
        with f:
            prov = {k: _decode(v) for k, v in f.attrs.items()}
            steps = [g for g in f.values() if isinstance(g, h5py.Group)]
            domain = run_domain(f)
            try:
                head = find_headline(f, _headline_decl(domain))
            except Exception as exc:  # a bad dataset must not lose the row
                head = None
                prov.setdefault("headline_error", f"{type(exc).__name__}: {exc}")
    except (OSError, RuntimeError, KeyError) as exc:
        return RunInfo(file_id, dir_id, name, status="unreadable",
                       error=f"not a readable HDF5 file: {exc}")
    start, end = str(prov.get("start_time", "")), str(prov.get("end_time", ""))
    return RunInfo(file_id, dir_id, str(prov.get("workflow_name", name)), domain=domain,
                   status=str(prov.get("status", "")), start=start, end=end,
                   duration_s=_seconds(start, end), host=str(prov.get("host", "")),
                   version=str(prov.get("matterflow_version", "")),
                   commit=str(prov.get("git_commit", "")), n_steps=len(steps), headline=head,
                   provenance=prov)


def scan(roots: Roots) -> tuple[list[RunInfo], list[str]]:
    """Every run below the roots, and notes on what was skipped."""
    runs: list[RunInfo] = []
    notes = list(roots.notes)
    for i, root in enumerate(roots.paths):
        if root.is_file():
            if root.suffix.lower() in _H5_SUFFIXES or h5py.is_hdf5(root):
                runs.append(summarize(root, str(i), None))
            else:
                notes.append(f"{root.name}: skipped, not a results file (HDF5) or a folder")
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            running = CACHE_NAME in dirnames
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            dir_id = roots.id_of(here)
            if RESULTS_NAME in filenames:
                info = summarize(here / RESULTS_NAME, roots.id_of(here / RESULTS_NAME), dir_id)
                if running:
                    info = _as_running(info, here)
                runs.append(info)
            elif running:
                runs.append(_as_running(RunInfo(None, dir_id, here.name), here))
    return runs, notes


def _as_running(info: RunInfo, folder: Path) -> RunInfo:
    from dataclasses import replace

    manifest = _manifest(folder / CACHE_NAME)
    results = folder / RESULTS_NAME
    try:
        newer = results.stat().st_mtime >= (folder / CACHE_NAME / MANIFEST_NAME).stat().st_mtime
    except OSError:
        newer = False
    if newer and info.status.startswith("failed"):
        return info  # the cache a failed run leaves for its resume
    if not _alive(manifest):
        return replace(info, status=f"interrupted ({info.status or 'no results yet'})")
    return replace(info, running=True, status="running",
                   name=str(manifest.get("workflow_name") or info.name),
                   start=str(manifest.get("start_time") or info.start), end="", duration_s=None)


def _alive(manifest: dict[str, Any]) -> bool:
    """False only when the run's process is known to be gone (same host, no such pid)."""
    import socket

    pid = manifest.get("pid")
    if not isinstance(pid, int) or manifest.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _manifest(cache: Path) -> dict[str, Any]:
    try:
        return json.loads((cache / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}


def _step_meta(path: Path) -> dict[str, Any]:
    try:
        with h5py.File(path, "r") as f:
            return {k: _decode(v) for k, v in f["step"].attrs.items()}
    except (OSError, KeyError):
        return {}


def live_state(folder: Path) -> dict[str, Any]:
    """What the executor's cache in ``folder`` says: steps done, batches of mapped steps."""
    cache = folder / CACHE_NAME
    results = folder / RESULTS_NAME
    if not cache.is_dir():
        status = "no run in progress"
        if results.is_file():
            try:
                with h5py.File(results, "r") as f:
                    status = str(_decode(f.attrs.get("status", "")))
            except OSError as exc:
                status = f"unreadable: {exc}"
        return {"running": False, "status": status, "steps": []}
    manifest = _manifest(cache)
    steps = manifest.get("steps") or []
    known = {s.get("key") for s in steps}
    for p in sorted(cache.glob("*.h5")):  # no manifest: what the cache holds, by task
        if p.stem not in known:
            meta = _step_meta(p)
            steps.append({"id": meta.get("task", p.stem), "task": meta.get("task", ""),
                          "key": p.stem})
    out = []
    for s in steps:
        key = str(s.get("key", ""))
        row = {"id": s.get("id", key), "task": s.get("task", ""), "state": "waiting",
               "batches_done": 0, "batches_total": None, "n_items": None, "duration_s": None}
        done_file = cache / f"{key}.h5"
        if s.get("stored") or done_file.is_file():
            row["state"] = "done"
            meta = _step_meta(done_file) if done_file.is_file() else {}
            row["duration_s"] = meta.get("duration_s")
            row["n_items"] = meta.get("n_items")
        elif (cache / key).is_dir():
            row["state"] = "running"
            for plan_dir in (cache / key).glob("bs*"):
                row["batches_done"] += len(list(plan_dir.glob("batch-*.h5")))
                try:
                    plan = json.loads((plan_dir / "plan.json").read_text())
                    row["batches_total"] = plan.get("n_batches")
                    row["n_items"] = plan.get("n_items")
                except (OSError, ValueError):
                    pass
        out.append(row)
    return {"running": True, "status": "running", "workflow_name": manifest.get("workflow_name", ""),
            "start_time": manifest.get("start_time", ""), "steps": out}
