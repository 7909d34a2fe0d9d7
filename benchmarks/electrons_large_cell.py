"""`matterflow electrons predict` on n×n×n supercells of one 32-atom Al cell, up to >= 10⁵ atoms.

Usage::

    python benchmarks/electrons_large_cell.py MODEL.pt SNAPSHOT.h5 [--grid 12] [--repeats 1,2,3,15]
        [--chunk 16384] [--workers 2] [--out DIR]

For each n of ``--repeats`` the command ``matterflow electrons predict MODEL SNAPSHOT --repeat
n,n,n --grid G,G,G`` (G = n × ``--grid``, i.e. the same grid per atom in every cell) runs in a
fresh process: descriptors → LDOS → DOS, Fermi level, density, band and total energy, chunk by
chunk on the executor (``--workers`` threads), the Ewald term by particle-mesh Ewald above 1000
atoms. Measured per cell: the command's wall time (process start, model load and file writing
included), grid points per second (points / wall; and the predict step's own rate), and the
process's peak RSS (``wait4``). The cells are exact repeats of one periodic cell, so every
per-atom value must be the same in all of them: the JSON gives each cell's band and total energy
per atom minus the 1× cell's (the baseline, same run), which is the error of the large-cell path
(chunking, float32 network rounding, PME against the direct Ewald sum).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np


def _run(cmd: list[str], env: dict) -> tuple[float, float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("snapshot")
    ap.add_argument("--grid", type=int, default=12, help="grid points per cell edge of the 1x cell")
    ap.add_argument("--repeats", default="1,2,3,15")
    ap.add_argument("--chunk", type=int, default=16384)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-spool", action="store_true",
                    help="recompute descriptors and LDOS in pass 2 instead of spooling the LDOS to disk")
    args = ap.parse_args()
    out = Path(args.out or f"/tmp/electrons_large_cell_{os.getpid()}")
    out.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("matterflow"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows = []
    for n in (int(r) for r in args.repeats.split(",")):
        g = args.grid * n
        pred = out / f"pred_{n}.h5"
        run_dir = out / f"run_{n}"
        cmd = [exe, "electrons", "predict", args.model, args.snapshot, "--repeat", f"{n},{n},{n}",
               "--grid", f"{g},{g},{g}", "--chunk-points", str(args.chunk), "--workers", str(args.workers),
               "--threads", "--quiet", "--force", "-o", str(pred), "--run-dir", str(run_dir)]
        if not args.no_spool:
            cmd.append("--spool-ldos")
        wall, rss, rc, text = _run(cmd, env)
        if rc != 0:
            raise SystemExit(f"repeat {n}: exit {rc}\n{text}")
        with h5py.File(pred, "r") as f:
            band, total, fermi = (float(f[k][()]) for k in ("band_energy_ev", "total_energy_ev", "fermi_ev"))
        with h5py.File(run_dir / "results.h5", "r") as f:
            step_s = float(f["predict"].attrs.get("duration_s", np.nan))
            n_atoms = int(f["predict"]["n_atoms"][()])
        pts = g**3
        rows.append({"repeat": n, "atoms": n_atoms, "grid": [g, g, g], "points": pts,
                     "wall_s": round(wall, 2), "predict_step_s": round(step_s, 2),
                     "points_per_s": round(pts / wall, 1), "step_points_per_s": round(pts / step_s, 1),
                     "peak_rss_mb": round(rss, 1), "fermi_ev": fermi,
                     "band_ev_per_atom": band / n_atoms, "total_ev_per_atom": total / n_atoms})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    base = rows[0]
    for r in rows:
        r["band_minus_1x_mev_per_atom"] = 1e3 * (r["band_ev_per_atom"] - base["band_ev_per_atom"])
        r["total_minus_1x_mev_per_atom"] = 1e3 * (r["total_ev_per_atom"] - base["total_ev_per_atom"])
        r["rss_over_1x"] = r["peak_rss_mb"] / base["peak_rss_mb"]
        r["rate_over_1x"] = r["step_points_per_s"] / base["step_points_per_s"]
    print(json.dumps({"benchmark": "electrons_large_cell", "model": args.model, "snapshot": args.snapshot,
                      "grid_per_32_atom_cell": args.grid, "points_per_atom": args.grid**3 / base["atoms"],
                      "chunk_points": args.chunk, "workers": args.workers, "spool_ldos": not args.no_spool,
                      "baseline": "the 1x cell, same run",
                      "cells": rows}))


if __name__ == "__main__":
    main()
