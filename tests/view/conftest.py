"""Runs for the viewer tests: one real quickstart run (threads, small) copied into variants."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

QUICK = """
name: {name}
steps:
  - id: walks
    task: core.random_walks
    params: {{n_walkers: 40, n_steps: 200, dimensions: 3, step_nm: {step}, dt_ps: 1.0, seed: 7}}
  - id: msd
    task: core.mean_squared_displacement
    inputs: {{walk: walks.positions_nm}}
    params: {{max_lag: 20, dt_ps: 1.0}}
    batch_size: 10
  - id: diffusion
    task: core.fit_diffusion
    inputs: {{msd: msd.msd_nm2, lag: msd.lag_ps}}
    params: {{dimensions: 3}}
"""

EVIL = "<script>alert('x')</script>"


def run_quick(out: Path, name: str, step: float) -> Path:
    from matterflow.core.execute import run_workflow
    from matterflow.core.workflow import parse_workflow

    wf = parse_workflow(QUICK.format(name=json.dumps(name), step=step))
    return run_workflow(wf, out, workers=1, processes=False).results


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree of runs: two quickstart runs (one named with a script tag), a corrupt file, a
    large frame stack, a symlink out of the tree, and a text file."""
    root = tmp_path_factory.mktemp("runs")
    run_quick(root / "alpha", EVIL, 0.1)
    run_quick(root / "beta", "beta", 0.2)
    (root / "corrupt").mkdir()
    data = (root / "alpha" / "results.h5").read_bytes()
    (root / "corrupt" / "results.h5").write_bytes(data[: len(data) // 3])
    make_stack(root / "stack" / "results.h5", frames=50, size=1024)
    outside = tmp_path_factory.mktemp("outside") / "secret.h5"
    with h5py.File(outside, "w") as f:
        f["secret"] = np.arange(3)
    (root / "escape").symlink_to(outside.parent, target_is_directory=True)
    (root / "notes.txt").write_text("not a results file")
    return root


def make_stack(path: Path, *, frames: int, size: int, written: tuple[int, ...] = (0, 7)) -> Path:
    """A results file with a (frames, size, size) uint16 stack: chunked by frame tile, LZF,
    only the ``written`` frames stored (the others are fill value, so the file stays small)."""
    from matterflow.core.store import write_provenance

    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    with h5py.File(path, "w") as f:
        g = f.create_group("detector")
        g.attrs.update({"task": "core.sleep", "status": "computed", "duration_s": 1.0})
        ds = g.create_dataset("frames", shape=(frames, size, size), dtype="uint16",
                              chunks=(1, 256, 256), compression="lzf", fillvalue=0)
        ds.attrs["units"] = "counts"
        for i in written:
            ds[i] = ((xx + i * 10) % 256 + yy // 8).astype("uint16")
        g["exposure_s"] = 0.5
        g["exposure_s"].attrs["units"] = "s"
        write_provenance(f, {"workflow_name": "stack", "status": "complete",
                             "start_time": "2026-01-01T00:00:00+00:00",
                             "end_time": "2026-01-01T00:01:00+00:00", "host": "h"})
    return path
