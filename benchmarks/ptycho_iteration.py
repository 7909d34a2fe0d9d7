"""Seconds per ptychography iteration, single-slice and 10 slices, one thread.

Dataset: simulated SrTiO3 [001] (Lobato potentials), N positions × W² patterns
(default 256 × 64²; the issue's 1024 × 78² with --full). Ours: mini-batches of
``--batch`` positions per Adam step. Baseline in the same run: the same model as a
plain unbatched torch loop (one position per step), since quantem and py4DSTEM
are not installed here (checked below). Prints one JSON line.

    OMP_NUM_THREADS=1 python benchmarks/ptycho_iteration.py [--full] [--iterations 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json

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
    out = {"figure": "ptycho seconds per iteration (1 thread)",
           "dataset": f"{len(pos)} positions x {w}^2 SrTiO3", "iterations": a.iterations}
    for label, n_slices in (("single_slice", 1), ("slices10", 10)):
        for who, bs in (("matterflow", a.batch), ("unbatched_loop", 1)):
            r = reconstruct(counts, pos, sampling_a=dx, energy_ev=energy, semiangle_mrad=25,
                            defocus=100, n_slices=n_slices, slice_thickness_a=dz * 6 / n_slices,
                            iterations=a.iterations, batch_size=bs, object_shape=(64, 64))
            out[f"{label}_{who}_s"] = round(r.seconds_per_iteration, 3)
        out[f"{label}_speedup"] = round(out[f"{label}_unbatched_loop_s"]
                                        / out[f"{label}_matterflow_s"], 2)
    out["peers"] = {name: ("installed, not run here" if importlib.util.find_spec(name)
                           else "not installed") for name in ("quantem", "py4DSTEM")}
    out["issue_anchor_s"] = {"py4DSTEM": [1.33, 12.1], "quantem": [0.82, 14.2],
                             "note": "measured by the issue author on 1024 x 78^2, not here"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
