"""Peak memory of ptychography against the number of scan positions (same batch size).

For each number of positions a fresh process makes random Poisson patterns
(``W²`` detector, float32) at random positions over a fixed periodic object, then runs
``--iterations`` iterations of :func:`reconstruct`; the figure is the peak resident
memory during the reconstruction above the resident memory just before it (the data
are already there: Linux VmHWM, reset through /proc/self/clear_refs). With mini-batches
the growth with positions should be about one copy of the data (the √counts kept by the
reconstruction), the rest flat. Prints one JSON line.

    OMP_NUM_THREADS=1 python benchmarks/ptycho_memory.py [--positions 256,1024,4096]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1))


def measure(n: int, window: int, batch: int, n_slices: int, iterations: int,
            engine: str = "analytic") -> dict:
    """Peak RSS increase (MB) of one reconstruction of ``n`` random patterns."""
    import numpy as np
    import torch

    from matterflow.microscopy.ptycho.reconstruct import reconstruct

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    dx, side = 0.25, 128
    counts = rng.poisson(3.0, (n, window, window)).astype(np.float32)
    pos = rng.uniform(0, side * dx, (n, 2))
    kw = dict(sampling_a=dx, energy_ev=200e3, semiangle_mrad=25, defocus=50, n_slices=n_slices,
              batch_size=batch, object_shape=(side, side), engine=engine)
    # warm-up (libraries' lazily touched pages, FFT plans), not counted
    reconstruct(counts[:2], pos[:2], iterations=1, **kw)
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    r = reconstruct(counts, pos, iterations=iterations, **kw)
    peak = _status_kb("VmHWM")
    return {"positions": n, "data_mb": round(counts.nbytes / 2 ** 20, 1),
            "peak_increase_mb": round((peak - base) / 1024, 1),
            "seconds_per_iteration": round(r.seconds_per_iteration, 3)}


def run_one(n: int, window: int, batch: int, n_slices: int, iterations: int,
            engine: str = "analytic") -> dict:
    """:func:`measure` in a fresh interpreter (so earlier runs do not hold the heap)."""
    code = (f"import json, sys; sys.path.insert(0, {sys.path[0]!r}); import ptycho_memory as m; "
            f"print(json.dumps(m.measure({n}, {window}, {batch}, {n_slices}, {iterations}, "
            f"{engine!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--positions", default="256,1024,4096")
    ap.add_argument("--window", type=int, default=78)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--slices", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--engine", default="analytic")
    a = ap.parse_args()
    rows = [run_one(int(n), a.window, a.batch, a.slices, a.iterations, a.engine)
            for n in a.positions.split(",")]
    growth = [(r["peak_increase_mb"] - rows[0]["peak_increase_mb"])
              / max(r["data_mb"] - rows[0]["data_mb"], 1e-9) for r in rows[1:]]
    print(json.dumps({"figure": "ptycho peak memory vs scan positions", "engine": a.engine,
                      "window": a.window, "batch": a.batch, "slices": a.slices, "rows": rows,
                      "growth_mb_per_data_mb": [round(g, 2) for g in growth],
                      "note": "peak RSS during reconstruct above RSS with the data loaded"}))


if __name__ == "__main__":
    main()
