"""`matterflow view` in a real browser: Debian's chromium driven by Playwright.

Screenshots of every page are saved under the test's ``tmp_path`` (pytest keeps the
last runs in its basetemp), and their paths printed with ``-s``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import pytest

from matterflow.view import ViewServer

CHROMIUM = os.environ.get("MATTERFLOW_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
EVIL = "<script>alert('x')</script>"  # the name of run alpha (conftest)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium "
                        "(apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def live_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live")
    cache = root / "job" / ".matterflow-cache"
    (cache / "k2" / "bs5").mkdir(parents=True)
    (cache / "manifest.json").write_text(json.dumps({
        "workflow_name": "watched", "start_time": "t0", "pid": os.getpid(),
        "host": socket.gethostname(),
        "steps": [{"id": "prepare", "task": "core.sleep", "key": "k1"},
                  {"id": "mapped", "task": "core.mean_squared_displacement", "key": "k2"}]}))
    (cache / "k2" / "bs5" / "plan.json").write_text(json.dumps({"n_items": 20, "batch_size": 5,
                                                                "n_batches": 4}))
    return root


@pytest.fixture(scope="module")
def server(runs_dir: Path, live_root: Path) -> Iterator[ViewServer]:
    with ViewServer([runs_dir, live_root, runs_dir / "notes.txt"]) as srv:
        yield srv


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    outside: list[str] = []
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
        ("http://127.0.0.1", "data:", "blob:")) else None)
    yield pg
    ctx.close()
    assert not errors, errors
    assert not dialogs, f"a script ran: {dialogs}"
    assert not outside, f"requests left the machine: {outside}"


def _wait(pg: Any, expr: str, timeout: float = 15.0) -> None:
    """Poll a JS expression from outside the page (the pages' CSP forbids the eval that
    ``wait_for_function`` uses inside it)."""
    import time

    t0 = time.monotonic()
    while not pg.evaluate(f"() => Boolean({expr})"):
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {expr}")
        time.sleep(0.05)


def _shot(pg: Any, tmp_path: Path, name: str, locator: Any = None) -> Path:
    out = tmp_path / f"{name}.png"
    (locator or pg).screenshot(path=str(out), **({} if locator else {"full_page": False}))
    keep = os.environ.get("MATTERFLOW_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    print(f"screenshot: {out}")
    return out


def test_runs_table(page: Any, server: ViewServer, tmp_path: Path) -> None:
    page.goto(server.url)
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 5  # alpha, beta, corrupt, stack, and the live job
    text = page.locator("#runs").inner_text()
    assert EVIL in text  # shown as text, not run
    assert "unreadable" in text and "running" in text
    assert "notes.txt: skipped" in page.locator(".note").first.inner_text()
    assert page.locator("#runs svg.thumb polyline").count() == 2  # headline curves of the runs
    assert "diffusion_nm2_per_ps = " in text
    _shot(page, tmp_path, "runs")


def test_run_page_with_figures_and_plot(page: Any, server: ViewServer, tmp_path: Path,
                                        runs_dir: Path) -> None:
    page.goto(server.url)
    page.get_by_role("link", name=EVIL).click()
    page.wait_for_selector("#plot .main-svg")
    assert page.locator("#steps tbody tr").count() == 3
    prov = page.locator("#provenance").inner_text()
    assert all(k in prov for k in ("git_commit", "parameters", "library_versions", "host"))
    # the headline curve is plotted with its units on the axis
    assert "msd_mean_nm2 [nm^2]" in page.locator("#plot").inner_text()
    with h5py.File(runs_dir / "alpha" / "results.h5") as f:
        n = f["diffusion/msd_mean_nm2"].shape[0]
    assert page.evaluate("document.getElementById('plot').data[0].y.length") == n
    _wait(page, "[...document.querySelectorAll('div.figures')].every(d => d.dataset.loaded)")
    figs = page.locator("div.figures img")
    assert figs.count() >= 2
    assert page.evaluate("[...document.querySelectorAll('div.figures img')].every(i => i.naturalWidth > 100)")
    _shot(page, tmp_path, "run")
    _shot(page, tmp_path, "figure", page.locator("div.figures figure").first)
    # a plot link draws another dataset
    page.locator("a.plotlink[data-path='/msd/msd_nm2']").click()
    _wait(page, "document.getElementById('plot').data[0].type === 'heatmap'")


def test_tree_browser_frames(page: Any, server: ViewServer, tmp_path: Path) -> None:
    page.goto(server.url + "tree?file=0/stack/results.h5&path=/detector/frames")
    page.wait_for_selector("#plot .main-svg")
    _wait(page, "document.getElementById('plot').dataset.shown === '0,'")
    meta = page.locator("#meta").inner_text()
    assert "(50, 1024, 1024)" in meta.replace("[", "(").replace("]", ")") or "50, 1024, 1024" in meta
    assert "lzf" in meta or "compression" in meta
    assert "counts" in page.locator("#attrs").inner_text()
    page.fill("#lead-0", "7")
    page.dispatch_event("#lead-0", "change")
    _wait(page, "document.getElementById('plot').dataset.shown === '7,'")
    assert page.evaluate("document.getElementById('plot').data[0].type") == "image"
    _shot(page, tmp_path, "tree")
    page.get_by_role("link", name="exposure_s").click()
    page.wait_for_selector("#plot p.ok")
    assert "exposure_s = 0.5 s" in page.locator("#plot").inner_text()


def test_comparison(page: Any, server: ViewServer, tmp_path: Path) -> None:
    page.goto(server.url)
    page.check("input[value='0/alpha/results.h5']")
    page.check("input[value='0/beta/results.h5']")
    page.get_by_role("button", name="compare the ticked runs").click()
    page.wait_for_selector("#plot .main-svg")
    assert page.evaluate("document.getElementById('plot').data.length") == 2
    assert page.locator("#curve").input_value() == "/diffusion/msd_mean_nm2"  # the headline
    diff = page.locator("#params .diff").all_inner_texts()
    assert "walks.step_nm" in diff and "0.1" in diff and "0.2" in diff
    assert "1 differ" in page.locator("h2").nth(0).inner_text()
    _shot(page, tmp_path, "compare")


def test_live_view_updates_without_reload(page: Any, server: ViewServer, live_root: Path,
                                          tmp_path: Path) -> None:
    page.goto(server.url + "live?dir=1/job")
    _wait(page, "document.querySelectorAll('#live tbody tr').length === 2")
    assert "waiting" in page.locator("#live").inner_text()
    cache = live_root / "job" / ".matterflow-cache"
    with h5py.File(cache / "k1.h5", "w") as f:
        f.create_group("step").attrs.update({"duration_s": 0.5, "task": "core.sleep"})
    (cache / "k2" / "bs5" / "batch-000000.h5").write_bytes(b"")
    _wait(page, "document.querySelector('#live').innerText.includes('1/4')")
    assert page.locator("#live tbody tr").first.inner_text().split("\t")[2] == "done"
    _shot(page, tmp_path, "live")
