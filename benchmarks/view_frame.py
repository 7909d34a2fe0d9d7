"""One 2048 x 2048 frame of a 10^4-frame stack shown in chromium: time from the request to
the drawn image.

The stack (10000 x 2048 x 2048 uint16, 80 GB logical) is chunked (1, 256, 256) and LZF
compressed; only a few frames are written, the rest are fill value, so the file is small.
Prints one JSON line: time in the browser (fetch of the PNG + decode + plotly draw, measured
by the page), the server's /image time, and the baseline of reading the frame with h5py.
Goal: <= 0.5 s.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "view"))
from conftest import make_stack  # noqa: E402
from matterflow.view import ViewServer  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
FRAME = 5000


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        path = make_stack(Path(tmp) / "stack" / "results.h5", frames=10_000, size=2048,
                          written=(0, 4999, FRAME, 9999))
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        with h5py.File(path, "r") as f:
            f["detector/frames"][FRAME]
        baseline = time.perf_counter() - t0
        with ViewServer([Path(tmp)]) as srv, sync_playwright() as pw:
            fid = "0/stack/results.h5"
            with httpx.Client(base_url=srv.url, trust_env=False) as c:
                server = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    r = c.get("/image", params={"file": fid, "path": "/detector/frames",
                                                "selection": str(FRAME)})
                    server.append(time.perf_counter() - t0)
                    assert r.status_code == 200
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            pg = b.new_page(viewport={"width": 1400, "height": 1000})
            pg.goto(srv.url + f"tree?file={fid}&path=/detector/frames", wait_until="load")
            shown = []
            for frame in (FRAME, 9999, FRAME):
                pg.fill("#lead-0", str(frame))
                t0 = time.perf_counter()
                pg.dispatch_event("#lead-0", "change")
                while pg.evaluate("() => document.getElementById('plot').dataset.shown") != f"{frame},":
                    time.sleep(0.005)
                shown.append(time.perf_counter() - t0)
            page_ms = float(pg.evaluate("() => document.getElementById('plot').dataset.ms"))
            b.close()
    print(json.dumps({"figure": "view_frame_shown_s", "stack": [10_000, 2048, 2048],
                      "file_mb": round(size_mb, 1), "browser_s": round(min(shown), 3),
                      "browser_worst_s": round(max(shown), 3), "page_measured_s": round(page_ms / 1000, 3),
                      "server_image_s": round(min(server), 3), "goal_s": 0.5,
                      "baseline_h5py_read_s": round(baseline, 3)}))


if __name__ == "__main__":
    main()
