"""Run one peer ptychography code on a dataset written by ``ptycho_peers.py``.

Runs in the peer's own venv (``/work/refvenvs/<peer>/bin/python``); imports numpy, torch
(quantem only) and the peer, never matterflow. Reads ``DATA.npz`` (patterns
``(rows, cols, W, W)`` centred, ``energy_ev``, ``semiangle_mrad``, ``defocus_a``,
``scan_step_a``, ``reciprocal_a`` (Å⁻¹ per detector pixel)), reconstructs ``--slices``
slices for ``--iterations`` iterations with ``--batch`` positions per update, one
thread, and prints one JSON line: seconds per iteration (the reconstruct call over the
iteration count; wall and this process's CPU time), setup seconds; the summed object
phase is saved to ``--out`` (.npy).

    OMP_NUM_THREADS=1 /work/refvenvs/quantem/bin/python benchmarks/ptycho_peer_run.py \
        --peer quantem --data data.npz --slices 1 --iterations 5 --out phase.npy
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_k] = "1"

import numpy as np  # noqa: E402


def run_quantem(d, slices: int, thickness: float, iterations: int, batch: int):
    import torch

    torch.set_num_threads(1)
    from quantem.core.datastructures import Dataset4dstem
    from quantem.diffractive_imaging import PtychographyDatasetRaster, PtychoLite

    step, dk = float(d["scan_step_a"]), float(d["reciprocal_a"])
    # pad the object by half a window on each side (its default, 0, wraps the windows
    # around the scanned area), so it covers the scan like py4DSTEM's and ours
    pad = d["patterns"].shape[-1] // 2
    t0 = time.perf_counter()
    ds = Dataset4dstem.from_array(d["patterns"].astype(np.float32), sampling=[step, step, dk, dk],
                                  units=["A", "A", "A^-1", "A^-1"])
    dm = PtychographyDatasetRaster.from_dataset4dstem(ds, verbose=False)
    dm.preprocess(com_fit_function="constant", force_com_rotation=0.0,
                  force_com_transpose=False, plot_rotation=False, plot_com=False)
    pt = PtychoLite.from_dataset(
        dm, num_slices=slices, slice_thicknesses=thickness if slices > 1 else None,
        obj_type="complex", energy=float(d["energy_ev"]), defocus=float(d["defocus_a"]),
        semiangle_cutoff=float(d["semiangle_mrad"]), device="cpu", verbose=False, rng=0,
        obj_padding_px=(pad, pad))
    setup = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    pt.reconstruct(num_iters=iterations, batch_size=batch, learn_probe=True, verbose=False)
    sec = (time.perf_counter() - t0, time.process_time() - c0)
    obj = pt.obj_model.obj
    obj = obj.detach().cpu().numpy() if hasattr(obj, "detach") else np.asarray(obj)
    return sec, setup, obj


def run_py4dstem(d, slices: int, thickness: float, iterations: int, batch: int):
    import py4DSTEM

    step, dk = float(d["scan_step_a"]), float(d["reciprocal_a"])
    t0 = time.perf_counter()
    dc = py4DSTEM.DataCube(data=d["patterns"].astype(np.float32))
    dc.calibration.set_R_pixel_size(step)
    dc.calibration.set_R_pixel_units("A")
    dc.calibration.set_Q_pixel_size(dk)
    dc.calibration.set_Q_pixel_units("A^-1")
    common = dict(energy=float(d["energy_ev"]), datacube=dc,
                  semiangle_cutoff=float(d["semiangle_mrad"]),
                  defocus=float(d["defocus_a"]), device="cpu", verbose=False)
    if slices > 1:
        pt = py4DSTEM.process.phase.MultislicePtychography(
            num_slices=slices, slice_thicknesses=thickness, **common)
    else:
        pt = py4DSTEM.process.phase.SingleslicePtychography(**common)
    pt.preprocess(plot_center_of_mass=False, plot_rotation=False, plot_probe_overlaps=False,
                  force_com_rotation=0.0, force_com_transpose=False, fit_function="constant")
    setup = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    pt.reconstruct(num_iter=iterations, max_batch_size=batch, reset=True, progress_bar=False,
                   store_iterations=False, seed_random=0)
    sec = (time.perf_counter() - t0, time.process_time() - c0)
    return sec, setup, np.asarray(pt.object)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", choices=("quantem", "py4dstem"), required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--slices", type=int, default=1)
    ap.add_argument("--thickness", type=float, default=2.0, help="slice thickness (Å)")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", required=True, help="summed phase (.npy)")
    a = ap.parse_args()
    d = dict(np.load(a.data))
    fn = run_quantem if a.peer == "quantem" else run_py4dstem
    sec, setup, obj = fn(d, a.slices, a.thickness, a.iterations, a.batch)
    obj = np.asarray(obj)
    if obj.ndim == 2:
        obj = obj[None]
    phase = np.angle(obj).sum(0) if np.iscomplexobj(obj) else obj.sum(0)
    np.save(a.out, phase.astype(np.float32))
    print(json.dumps({"peer": a.peer, "slices": a.slices, "iterations": a.iterations,
                      "batch": a.batch, "seconds_per_iteration": round(sec[0] / a.iterations, 3),
                      "cpu_s_per_iteration": round(sec[1] / a.iterations, 3),
                      "setup_s": round(setup, 3), "finite": bool(np.isfinite(obj).all()),
                      "object_shape": list(obj.shape)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
