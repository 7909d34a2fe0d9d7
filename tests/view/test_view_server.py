"""`matterflow view` over HTTP: security, h5grove endpoints, bad input, headlines, live state."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from matterflow.core.headline import find_headline
from matterflow.view import ViewServer, make_app
from matterflow.view._roots import Roots
from matterflow.view._runs import live_state

EVIL = "<script>alert('x')</script>"  # the name of run alpha (conftest)


@pytest.fixture(scope="module")
def client(runs_dir: Path) -> TestClient:
    roots = Roots.from_args([runs_dir, runs_dir / "notes.txt", runs_dir / "no-such-dir"])
    return TestClient(make_app(roots, loopback_only=False))


TRAVERSALS = ["0/../alpha/results.h5", "0/alpha/../../etc/passwd", "0//etc/passwd",
              "/etc/passwd", "0/%2e%2e/x", "0/escape/secret.h5", "0\\..\\x", "9/alpha/results.h5",
              "0/alpha", "..", "0/alpha/results.h5\x00"]


@pytest.mark.parametrize("ident", TRAVERSALS)
def test_nothing_outside_the_roots_is_served(client: TestClient, ident: str) -> None:
    for route in ("/meta/", "/data/", "/attr/", "/tree", "/run", "/report", "/image"):
        r = client.get(route, params={"file": ident, "path": "/secret"})
        assert r.status_code in (403, 404), (route, ident, r.status_code)
        assert "secret" not in r.text.replace(ident, "") or r.status_code != 200
    for route in ("/live", "/events"):
        r = client.get(route, params={"dir": ident.replace("/results.h5", "") + "/.."})
        assert r.status_code in (403, 404), (route, ident)


def test_symlink_out_of_the_root_is_forbidden(client: TestClient, runs_dir: Path) -> None:
    assert (runs_dir / "escape" / "secret.h5").is_file()  # the file is there, but outside
    r = client.get("/meta/", params={"file": "0/escape/secret.h5", "path": "/"})
    assert r.status_code == 403 and "outside" in r.json()["message"]


def test_only_get(client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = client.request(method, "/data/", params={"file": "0/alpha/results.h5", "path": "/x"})
        assert r.status_code == 405


def test_user_strings_are_escaped(client: TestClient) -> None:
    for page in ("/", "/run?file=0/alpha/results.h5",
                 "/compare?file=0/alpha/results.h5&file=0/beta/results.h5",
                 "/tree?file=0/alpha/results.h5&path=/"):
        html = client.get(page).text
        assert EVIL not in html, page
        assert "&lt;script&gt;alert(" in html or page.startswith("/tree")
        assert "<script>" not in html.replace("<script type='application/json' id='mf-config'>",
                                              "").replace("<script src=", "")
    r = client.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_runs_table_rows_notes_and_headline(client: TestClient, runs_dir: Path) -> None:
    html = client.get("/").text
    assert "Runs (4)" in html  # alpha, beta, corrupt, stack; the symlinked folder is not walked
    assert "notes.txt: skipped" in html and "no-such-dir: skipped" in html
    with h5py.File(runs_dir / "alpha" / "results.h5") as f:
        d = float(f["diffusion/diffusion_nm2_per_ps"][()])
    assert f"diffusion_nm2_per_ps = {d:.4g} nm^2/ps" in html
    assert "unreadable" in html and "truncated" in html.lower()


def test_meta_attr_data_match_h5py(client: TestClient, runs_dir: Path) -> None:
    fid = "0/stack/results.h5"
    m = client.get("/meta/", params={"file": fid, "path": "/detector/frames"}).json()
    assert m["kind"] == "dataset" and m["shape"] == [50, 1024, 1024] and m["dtype"] == "<u2"
    assert m["chunks"] == [1, 256, 256] and m["units"] == "counts"
    g = client.get("/meta/", params={"file": fid, "path": "/detector"}).json()
    assert {c["name"] for c in g["children"]} == {"frames", "exposure_s"}
    a = client.get("/attr/", params={"file": fid, "path": "/detector/frames"}).json()
    assert a == {"units": "counts"}
    with h5py.File(runs_dir / "stack" / "results.h5") as f:
        ref = f["detector/frames"][7, 100:104, 5:50:7]
        full = f["detector/frames"][7]
    got = client.get("/data/", params={"file": fid, "path": "/detector/frames",
                                       "selection": "7,100:104,5:50:7"}).json()
    np.testing.assert_array_equal(np.array(got), ref)
    raw = client.get("/data/", params={"file": fid, "path": "/detector/frames", "selection": "7",
                                       "format": "bin"})
    np.testing.assert_array_equal(np.frombuffer(raw.content, "<u2").reshape(1024, 1024), full)
    npy = client.get("/data/", params={"file": fid, "path": "/detector/frames",
                                       "selection": "-43", "format": "npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content), allow_pickle=False), full)
    png = client.get("/image", params={"file": fid, "path": "/detector/frames", "selection": "7"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("selection, expect", [
    ("50", "valid indices on axis 0 are 0..49"),
    ("0,0:2000", "bound 2000 is out of range; valid indices on axis 1 are 0..1023"),
    ("0,0,0,0", "has 4 entries; the dataset has 3 axes"),
    ("a", "not an index"),
    ("0,::0", "slice steps must be >= 1"),
])
def test_bad_selection_is_400_with_the_valid_range(client: TestClient, selection: str,
                                                   expect: str) -> None:
    r = client.get("/data/", params={"file": "0/stack/results.h5", "path": "/detector/frames",
                                     "selection": selection})
    assert r.status_code == 400 and expect in r.json()["message"]


def test_whole_stack_is_never_sent_as_json(client: TestClient) -> None:
    r = client.get("/data/", params={"file": "0/stack/results.h5", "path": "/detector/frames"})
    assert r.status_code == 400 and "too large for JSON" in r.json()["message"]


def test_corrupt_file_is_shown_unreadable(client: TestClient) -> None:
    r = client.get("/meta/", params={"file": "0/corrupt/results.h5", "path": "/"})
    assert r.status_code == 422 and "not a readable HDF5 file" in r.json()["message"]
    page = client.get("/tree", params={"file": "0/corrupt/results.h5"}).text
    assert "unreadable" in page
    assert "unreadable" in client.get("/run", params={"file": "0/corrupt/results.h5"}).text


def test_token_checked_on_every_request(runs_dir: Path) -> None:
    c = TestClient(make_app(Roots.from_args([runs_dir]), token="s3cret", loopback_only=False))
    assert c.get("/").status_code == 401
    assert c.get("/meta/", params={"file": "0/alpha/results.h5"}).status_code == 401
    assert c.get("/", params={"token": "wrong"}).status_code == 401
    assert c.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    first = c.get("/", params={"token": "s3cret"})
    assert first.status_code == 200 and "matterflow_view_token" in first.headers["set-cookie"]
    assert c.get("/meta/", params={"file": "0/alpha/results.h5"}).status_code == 200  # cookie


def test_loopback_server_refuses_other_host_names(runs_dir: Path) -> None:
    import httpx

    with ViewServer([runs_dir]) as srv, httpx.Client(trust_env=False) as c:
        assert c.get(srv.url).status_code == 200
        assert c.get(srv.url, headers={"Host": "evil.example:80"}).status_code == 403


def test_cli_refuses_public_bind_without_token_and_port_in_use(runs_dir: Path) -> None:
    from matterflow.cli import app

    res = CliRunner().invoke(app, ["view", str(runs_dir), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "--token" in res.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = CliRunner().invoke(app, ["view", str(runs_dir), "--port", str(port)])
    assert res.exit_code == 2 and "already in use" in res.output


def test_headline_generic_fallback(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f.create_group("a").attrs["task"] = "x.first"
        f["a/curve"] = np.arange(5.0)
        b = f.create_group("b")
        b.attrs["task"] = "x.second"
        b["n"] = 3  # an int is not a headline number
        b["err"] = 0.25
        b["err"].attrs["units"] = "eV"
        b["img"] = np.ones((4, 3))
        f["a/rows"] = np.arange(6.0).reshape(3, 2)
    with h5py.File(tmp_path / "r.h5") as f:
        h = find_headline(f, None)
        assert (h.figure, h.number, h.value, h.units, h.declared) == ("/b/img", "/b/err", 0.25,
                                                                     "eV", False)
        h = find_headline(f, "x.first:curve, x.first:rows[2], x.second:nope")
        assert h.figure == "/a/curve" and h.declared and h.number == "/b/err"
        h = find_headline(f, "x.first:rows[1]")
        np.testing.assert_array_equal(h.curve, [2.0, 3.0])


def test_headline_of_a_repeated_task_is_its_first_step(tmp_path: Path) -> None:
    # a workflow that evaluates the model, then a baseline with the same task (the gixd demo):
    # the headline is the model's, whichever name sorts first
    with h5py.File(tmp_path / "r.h5", "w", track_order=True) as f:
        for name, ap in (("z_model", 0.5), ("a_baseline", 0.2)):
            g = f.create_group(name)
            g.attrs["task"] = "x.evaluate"
            g["ap"] = ap
    with h5py.File(tmp_path / "r.h5") as f:
        h = find_headline(f, "x.evaluate:ap")
        assert (h.number, h.value) == ("/z_model/ap", 0.5)


def test_domain_headline_is_checked() -> None:
    from matterflow.core.domain import Domain, list_domains

    with pytest.raises(ValueError, match="headline entries"):
        Domain(name="dom", summary="s", tasks="m:T", headline="other.task:x")
    for dom in list_domains().values():  # every shipped domain declares one of its own tasks
        assert dom.headline and dom.headline.startswith(f"{dom.name}.")


def test_live_state_from_the_executor_cache(tmp_path: Path) -> None:
    from matterflow.core.execute import run_workflow
    from matterflow.core.workflow import parse_workflow

    wf = parse_workflow("name: nap\nsteps:\n  - id: nap\n    task: core.sleep\n"
                        "    params: {seconds: 2.0, value: 1.5}\n")
    out = tmp_path / "run"
    t = threading.Thread(target=run_workflow, args=(wf, out), kwargs={"workers": 1,
                                                                      "processes": False})
    t.start()
    seen = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20 and t.is_alive():
        s = live_state(out)
        if s["running"] and s["steps"]:
            seen = s
            break
        time.sleep(0.05)
    t.join()
    assert seen is not None and seen["workflow_name"] == "nap"
    assert [(r["id"], r["task"], r["state"]) for r in seen["steps"]] == [("nap", "core.sleep",
                                                                          "waiting")]
    done = live_state(out)
    assert done == {"running": False, "status": "complete", "steps": []}


def test_live_state_counts_batches_and_sees_dead_runs(tmp_path: Path) -> None:
    from matterflow.view._runs import scan

    cache = tmp_path / "r" / ".matterflow-cache"
    (cache / "k2" / "bs4").mkdir(parents=True)
    (cache / "manifest.json").write_text(json.dumps({
        "workflow_name": "w", "start_time": "t", "pid": os.getpid(), "host": socket.gethostname(),
        "steps": [{"id": "a", "task": "t.a", "key": "k1"}, {"id": "b", "task": "t.b",
                                                            "key": "k2"}]}))
    with h5py.File(cache / "k1.h5", "w") as f:
        f.create_group("step").attrs.update({"duration_s": 1.25, "task": "t.a"})
    (cache / "k2" / "bs4" / "plan.json").write_text(json.dumps({"n_items": 10, "batch_size": 4,
                                                                "n_batches": 3}))
    for i in range(2):
        (cache / "k2" / "bs4" / f"batch-{i:06d}.h5").write_bytes(b"")
    s = live_state(tmp_path / "r")
    assert [(r["id"], r["state"], r["batches_done"], r["batches_total"]) for r in s["steps"]] == \
        [("a", "done", 0, None), ("b", "running", 2, 3)]
    assert s["steps"][0]["duration_s"] == 1.25
    runs, _ = scan(Roots.from_args([tmp_path]))
    assert [(r.name, r.status, r.running) for r in runs] == [("w", "running", True)]
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["pid"] = 2 ** 22 + 12345  # no such process
    (cache / "manifest.json").write_text(json.dumps(manifest))
    runs, _ = scan(Roots.from_args([tmp_path]))
    assert runs[0].status.startswith("interrupted") and not runs[0].running


def test_demo_gallery_shows_headlines(runs_dir: Path, tmp_path: Path) -> None:
    from matterflow.core.report import write_index

    out = runs_dir / "index-test.html"
    try:
        write_index([(EVIL, runs_dir / "alpha" / "report.html", "complete"),
                     ("beta", runs_dir / "beta" / "report.html", "complete")], out)
        html = out.read_text()
    finally:
        out.unlink()
    with h5py.File(runs_dir / "beta" / "results.h5") as f:
        d = float(f["diffusion/diffusion_nm2_per_ps"][()])
    assert html.count("class='card'") == 2 and html.count("<polyline") == 2
    assert f"diffusion_nm2_per_ps = {d:.4g} nm^2/ps" in html
    assert EVIL not in html and "href='alpha/report.html'" in html
    assert "matterflow view beta" in html
