"""The web application of ``matterflow view`` (FastAPI) and the server around it (uvicorn).

Read-only by construction: every route is a GET, every file is found through
:class:`~matterflow.view._roots.Roots`, and nothing is written or deleted.
Binding to an address other than loopback needs a token, checked on every
request (``?token=`` once, then a cookie; or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)

from matterflow.core.errors import InputError
from matterflow.view import _h5, _pages
from matterflow.view._assets import CSS, JS
from matterflow.view._roots import Forbidden, NotFound, Roots
from matterflow.view._runs import live_state, scan, summarize

__all__ = ["make_app", "serve", "ViewServer", "bind", "is_loopback"]

_COOKIE = "matterflow_view_token"
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _local_host(header: str) -> bool:
    name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
    return is_loopback(name.strip("[]")) if name else False


def make_app(roots: Roots, *, token: str | None = None, loopback_only: bool = True) -> Any:
    """The FastAPI app serving ``roots`` (read-only); ``token`` required on every request if set.

    ``loopback_only`` refuses requests whose ``Host`` header is not a loopback name (a web page
    elsewhere cannot reach the server by DNS rebinding).
    """
    app = FastAPI(title="matterflow view", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if request.method not in ("GET", "HEAD"):
            return _error(405, "matterflow view is read-only: only GET requests")
        if loopback_only and not _local_host(request.headers.get("host", "")):
            return _error(403, "this server answers requests for localhost only")
        given_query = request.query_params.get("token")
        if token is not None:
            auth = request.headers.get("authorization", "")
            given = (given_query or (auth[7:] if auth.lower().startswith("bearer ") else "")
                     or request.cookies.get(_COOKIE, ""))
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "a valid token is needed: open the URL that `matterflow view` "
                                   "printed (it ends in ?token=...)")
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if token is not None and given_query:
            response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
        return response

    def _error(status: int, message: str, *, as_json: bool = False) -> Response:
        if as_json:
            return JSONResponse({"message": message}, status_code=status)
        return HTMLResponse(_pages.error_page(status, message), status_code=status)

    def resolve(ident: str, kind: str = "file") -> Path:
        return roots.resolve(ident, kind=kind)

    def guarded(as_json: bool = False) -> Any:
        def wrap(fn: Any) -> Any:
            import functools

            @functools.wraps(fn)
            async def inner(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except Forbidden as exc:
                    return _error(403, str(exc), as_json=as_json)
                except (NotFound, KeyError) as exc:
                    return _error(404, str(exc).strip("'\""), as_json=as_json)
                except _h5.BadSelection as exc:
                    return _error(400, str(exc), as_json=as_json)
                except _h5.Unreadable as exc:
                    return _error(422, str(exc), as_json=as_json)
            return inner
        return wrap

    # ---------------------------------------------------------------- static
    @app.get("/static/view.css")
    async def css() -> Response:
        return Response(CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.get("/static/view.js")
    async def js() -> Response:
        return Response(JS, media_type="text/javascript",
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/static/plotly.min.js")
    async def plotly_js() -> Response:
        return FileResponse(_plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    # ---------------------------------------------------------------- pages
    @app.get("/", response_class=HTMLResponse)
    @guarded()
    async def runs() -> Response:
        found, notes = await asyncio.to_thread(scan, roots)
        return HTMLResponse(_pages.runs_page(found, notes))

    def _info(file: str) -> tuple[Any, Path]:
        path = resolve(file)
        parent = path.parent
        dir_id = None
        with contextlib.suppress(Forbidden):
            dir_id = roots.id_of(parent)
        return summarize(path, file, dir_id), path

    @app.get("/run", response_class=HTMLResponse)
    @guarded()
    async def run(file: str) -> Response:
        info, path = await asyncio.to_thread(_info, file)
        return HTMLResponse(await asyncio.to_thread(_pages.run_page, info, path))

    @app.get("/figures", response_class=HTMLResponse)
    @guarded()
    async def figures(file: str, step: str) -> Response:
        path = resolve(file)
        return HTMLResponse(await asyncio.to_thread(_figures, path, step))

    @app.get("/report", response_class=HTMLResponse)
    @guarded()
    async def report(file: str) -> Response:
        path = resolve(file)
        rep = path.with_name("report.html")
        rid = roots.id_of(rep) if rep.exists() else None
        if rid is None:
            raise NotFound(f"no report.html beside {file!r}: write one with `matterflow report`")
        return FileResponse(resolve(rid), media_type="text/html")

    @app.get("/tree", response_class=HTMLResponse)
    @guarded()
    async def tree(file: str, path: str = "") -> Response:
        real = resolve(file)
        label = real.parent.name + "/" + real.name
        return HTMLResponse(await asyncio.to_thread(_pages.tree_page, file, real, path, label))

    @app.get("/compare", response_class=HTMLResponse)
    @guarded()
    async def compare(file: list[str] = Query(default=[])) -> Response:  # noqa: B008
        if len(file) < 2:
            return _error(400, "compare needs two or more runs: tick them in the runs table")
        infos = [(await asyncio.to_thread(_info, fid)) for fid in file]
        curves = await asyncio.to_thread(_common_curves, [p for _, p in infos])
        heads = [i.headline.figure for i, _ in infos if i.headline and i.headline.figure]
        curves.sort(key=lambda c: c not in heads)  # a headline curve first
        return HTMLResponse(_pages.compare_page([i for i, _ in infos], curves))

    @app.get("/live", response_class=HTMLResponse)
    @guarded()
    async def live(dir: str) -> Response:
        folder = resolve(dir, "dir")
        return HTMLResponse(_pages.live_page(dir, folder.name))

    @app.get("/events")
    @guarded()
    async def events(request: Request, dir: str, interval: float = 0.5) -> Response:
        folder = resolve(dir, "dir")
        interval = min(max(interval, 0.05), 10.0)

        async def stream() -> Any:
            last = None
            while True:
                state = await asyncio.to_thread(live_state, folder)
                text = json.dumps(state, default=str)
                if text != last:
                    yield f"data: {text}\n\n"
                    last = text
                if not state["running"] or await request.is_disconnected():
                    return
                await asyncio.sleep(interval)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    # ---------------------------------------------------------------- h5grove endpoints
    @app.get("/meta/")
    @app.get("/meta")
    @guarded(as_json=True)
    async def meta(file: str, path: str = "/") -> Response:
        real = resolve(file)

        def work() -> Any:
            with _h5.open_file(real) as f:
                return _h5.meta(f, path)
        return JSONResponse(await asyncio.to_thread(work))

    @app.get("/attr/")
    @app.get("/attr")
    @guarded(as_json=True)
    async def attr(file: str, path: str = "/",
                   attr_keys: list[str] = Query(default=[])) -> Response:  # noqa: B008
        real = resolve(file)

        def work() -> Any:
            with _h5.open_file(real) as f:
                return _h5.attrs(f, path, attr_keys or None)
        return Response(_h5.encode_json(await asyncio.to_thread(work)),
                        media_type="application/json")

    @app.get("/data/")
    @app.get("/data")
    @guarded(as_json=True)
    async def data(file: str, path: str, selection: str | None = None,
                   format: str = "json", flatten: bool = False) -> Response:
        real = resolve(file)
        if format not in ("json", "bin", "npy"):
            raise _h5.BadSelection(f"format must be json, bin or npy; got {format!r}")

        def work() -> Response:
            with _h5.open_file(real) as f:
                ds = f.get(path)
                if ds is None:
                    raise KeyError(f"no entity {path!r} in the file")
                if not hasattr(ds, "shape"):
                    raise _h5.BadSelection(f"{path} is a group: data comes from datasets")
                n = _h5.n_selected(ds, selection)
                if format == "json" and n > _h5.MAX_JSON_ELEMENTS:
                    raise _h5.BadSelection(
                        f"selection of {n} elements is too large for JSON (at most "
                        f"{_h5.MAX_JSON_ELEMENTS}); use format=bin or a smaller selection")
                arr = _h5.read_selection(ds, selection)
            if flatten:
                arr = arr.ravel()
            if format == "json":
                return Response(_h5.encode_json(arr), media_type="application/json")
            if arr.dtype == object:
                raise _h5.BadSelection("text datasets are sent as JSON only")
            if format == "npy":
                import io

                import numpy as np

                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                return Response(buf.getvalue(), media_type="application/octet-stream")
            return Response(arr.tobytes(), media_type="application/octet-stream",
                            headers={"X-Shape": ",".join(map(str, arr.shape)),
                                     "X-Dtype": arr.dtype.str})
        return await asyncio.to_thread(work)

    @app.get("/image")
    @guarded(as_json=True)
    async def image(file: str, path: str, selection: str | None = None) -> Response:
        """One 2D slice (leading indices in ``selection``) as a PNG heat map."""
        real = resolve(file)

        def work() -> bytes:
            from matterflow.core.headline import heatmap_png

            with _h5.open_file(real) as f:
                ds = f.get(path)
                if ds is None or not hasattr(ds, "shape"):
                    raise KeyError(f"no dataset {path!r} in the file")
                sel = (selection or "").strip().rstrip(",")
                arr = _h5.read_selection(ds, sel)
            if arr.ndim != 2 or arr.dtype.kind not in "fiub":
                raise _h5.BadSelection(f"the selection {sel!r} of {path} gives a "
                                       f"{arr.ndim}D {arr.dtype} array; an image needs 2D numbers"
                                       f" (dataset shape {tuple(ds.shape)})")
            return heatmap_png(arr)
        return Response(await asyncio.to_thread(work), media_type="image/png")

    return app


def _figures(path: Path, step: str) -> str:
    """The figures the step's task declares, as HTML (the report's own rendering)."""
    import html

    from matterflow.core.report import _figures_html
    from matterflow.core.store import Results

    try:
        res = Results(path)
    except InputError as exc:
        return f"<p class='bad'>{html.escape(str(exc))}</p>"
    if step not in res.steps:
        raise NotFound(f"no step {step!r}")
    attrs = res.steps[step]
    values, _ = res.read(step)
    out = _figures_html(attrs.get("task"), values, attrs.get("params", {}) or {})
    return out or "<p class='muted'>this task declares no figures</p>"


def _common_curves(paths: list[Path]) -> list[str]:
    """1D numeric datasets present (same path) in every file, headline ones first."""
    import h5py

    sets = []
    for p in paths:
        found: list[str] = []
        try:
            with h5py.File(p, "r") as f:
                f.visititems(lambda n, o, acc=found: acc.append("/" + n) if isinstance(o, h5py.Dataset)
                             and o.ndim == 1 and o.size > 1 and o.dtype.kind in "fiu" else None)
        except OSError:
            return []
        sets.append(found)
    common = set(sets[0]).intersection(*sets[1:])
    return [c for c in sets[0] if c in common]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; a port in use is an :class:`InputError` that says what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"--port {port}: the port is already in use on {host}; choose "
                             "another one, or --port 0 for any free port") from None
        raise InputError(f"--host {host} --port {port}: cannot listen there ({exc})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _check_host(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise InputError(f"--host {host} is not a loopback address: anyone on the network could "
                         "read the files; give --token TOKEN (every request must then carry it), "
                         "or keep the default --host 127.0.0.1")


class ViewServer:
    """A viewer running in a background thread (for tests, benchmarks and notebooks).

    ``with ViewServer(["runs/"]) as srv: print(srv.url)``.
    """

    def __init__(self, paths: list[str | Path], *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None):
        import uvicorn

        _check_host(host, token)
        self.roots = Roots.from_args(list(paths))
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        config = uvicorn.Config(make_app(self.roots, token=token, loopback_only=is_loopback(host)), log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> ViewServer:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > 20:
                raise RuntimeError("the view server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def serve(paths: list[str | Path], *, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None, echo: Any = print) -> None:
    """Serve ``paths`` until interrupted; prints the URL (opens nothing)."""
    import uvicorn

    _check_host(host, token)
    roots = Roots.from_args(list(paths))
    if not roots.paths:
        raise InputError("matterflow view: nothing to serve: "
                         + "; ".join(roots.notes or ["give folders or results files"]))
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    for note in roots.notes:
        echo(f"note: {note}")
    echo(f"matterflow view: serving {', '.join(map(str, roots.paths))}\n  {url}\n(Ctrl-C stops)")
    config = uvicorn.Config(make_app(roots, token=token, loopback_only=is_loopback(host)), log_level="warning", lifespan="off")
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])

