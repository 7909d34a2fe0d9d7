"""Seconds per ptychography iteration, single-slice and 10 slices, one thread.

Dataset: simulated SrTiO3 [001] (Lobato potentials), N positions × W² patterns
(default 256 × 64²; the issue's 1024 × 78² with --full); the raster step is 2 object
pixels, so the positions are whole pixels; the ``subpixel`` rows add a 0.05 Å jitter
(every probe then needs its Fourier-shift FFTs). Engines, all in the same run and
interleaved (the machine is shared; each figure is the minimum over ``--repeats``):

- ``matterflow``: the analytic engine (hand-derived gradients), ``--batch`` positions per
  Adam step;
- ``autograd``: the same model and batches through torch autograd (the previous engine);
- ``unbatched_loop``: autograd, one position per step (a plain torch loop; the baseline
  of the first version of this benchmark).

The peers (quantem, py4DSTEM, own venvs) are compared in ptycho_peers.py. Prints one JSON line.

    OMP_NUM_THREADS=1 python benchmarks/ptycho_iteration.py [--full] [--iterations 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json

import numpy as np
import torch

from matterflow.microscopy.probe import probe_wave, raster_positions
from matterflow.microscopy.ptycho import model
from matterflow.microscopy.ptycho.reconstruct import reconstruct
from matterflow.microscopy.ptycho.samples import srtio3_slices


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="1024 positions × 78² (the issue's size)")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-loop", action="store_true", help="skip the (slow) unbatched loop")
    a = ap.parse_args()
    torch.set_num_threads(1)
    scan, w = (32, 78) if a.full else (16, 64)
    energy = 200e3
    v, dx, dz = srtio3_slices(4, 16, 3)
    step = 4 * 3.905 / scan
    pos = raster_positions(scan, scan, step)
    p = probe_wave((w, w), (dx, dx), energy, semiangle_mrad=25, defocus=100)
    inten = model.patterns(p, model.transmission(v, energy, dx),
                           torch.tensor(pos, dtype=torch.float32), dx,
                           model.propagator(w, dx, dz, energy))
    counts = model.poisson_counts(inten, 1e5 * step ** 2)
    jittered = pos + np.random.default_rng(1).normal(0, 0.05, pos.shape)
    out: dict = {"figure": "ptycho seconds per iteration (1 thread)",
                 "dataset": f"{len(pos)} positions x {w}^2 SrTiO3", "iterations": a.iterations,
                 "batch": a.batch, "repeats": a.repeats}
    runs = [("matterflow", "analytic", a.batch), ("autograd", "autograd", a.batch)]
    if not a.no_loop:
        runs.append(("unbatched_loop", "autograd", 1))
    for label, n_slices in (("single_slice", 1), ("slices10", 10)):
        for var, ps in (("", pos), ("subpixel_", jittered)):
            best: dict = {}
            for _ in range(a.repeats):
                for who, engine, bs in runs:
                    if var and who == "unbatched_loop":
                        continue
                    r = reconstruct(counts, ps, sampling_a=dx, energy_ev=energy,
                                    semiangle_mrad=25, defocus=100, n_slices=n_slices,
                                    slice_thickness_a=dz * 6 / n_slices,
                                    iterations=a.iterations, batch_size=bs,
                                    object_shape=(64, 64), engine=engine)
                    best[who] = min(best.get(who, np.inf), r.seconds_per_iteration)
            for who, s in best.items():
                out[f"{var}{label}_{who}_s"] = round(s, 3)
            for who in best:
                if who != "matterflow":
                    out[f"{var}{label}_speedup_vs_{who}"] = round(best[who] / best["matterflow"], 2)
    out["peers"] = {name: ("installed, not run here" if importlib.util.find_spec(name)
                           else "not installed") for name in ("quantem", "py4DSTEM")}
    out["issue_anchor_s"] = {"py4DSTEM": [1.33, 12.1], "quantem": [0.82, 14.2],
                             "note": "measured by the issue author on 1024 x 78^2, not here"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
