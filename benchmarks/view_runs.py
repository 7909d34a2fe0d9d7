"""Runs page of a folder with 100 runs (one results file of 50 MB) in chromium: time to load.

Prints one JSON line: the browser's load time of the runs page (cold: summaries not cached;
warm: cached), the server's time for the page, and the baseline of opening the 100 files
with h5py and reading their root attributes (the least any runs table must do).
Goal: <= 1 s.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "view"))
from conftest import run_quick  # noqa: E402
from matterflow.view import ViewServer  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        first = run_quick(root / "run-000", "run-000", 0.1)
        for i in range(1, 100):
            shutil.copytree(first.parent, root / f"run-{i:03d}")
        big = root / "run-099" / "results.h5"
        with h5py.File(big, "a") as f:  # 50 MB of incompressible data in one step
            f["walks"].create_dataset("noise", data=np.random.default_rng(0).random(6_250_000))
        size_mb = big.stat().st_size / 1e6
        t0 = time.perf_counter()
        for p in root.rglob("results.h5"):
            with h5py.File(p, "r") as f:
                dict(f.attrs)
        baseline = time.perf_counter() - t0
        with ViewServer([root]) as srv, sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            pg = b.new_page()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                pg.goto(srv.url, wait_until="load")
                times.append(time.perf_counter() - t0)
                assert pg.locator("#runs tbody tr").count() == 100
            b.close()
    print(json.dumps({"figure": "view_runs_page_load_s", "runs": 100, "big_file_mb": round(size_mb, 1),
                      "cold_s": round(times[0], 3), "warm_s": round(min(times[1:]), 3),
                      "goal_s": 1.0, "baseline_h5py_open_100_s": round(baseline, 3)}))


if __name__ == "__main__":
    main()
