"""Throughput of `matterflow xrd process` vs a plain single-process pyFAI loop (same run).

Workload (issue 5): N frames of 2048x2048 (default 200) in an Eiger-like
master file (external links, bitshuffle/LZ4), 1D integration to 1000 bins
(2θ, Poisson errors, CSR) and a pseudo-Voigt fit of 3 peaks per frame.
To keep the disk small the master links the same few data files again and
again (the frames are read and decompressed every time, from the page cache).

- baseline: one Python process, `ai.integrate1d` + the same peak fit, in a loop,
  (a) with pyFAI's default OpenMP threads (its CSR integrator uses all cores),
  (b) in a fresh process with OMP_NUM_THREADS=1 (a strictly single-core loop).
- matterflow: `run_process` on a local Dask cluster of `--workers` threads (its
  default for this chain: one process, one shared integration matrix; see
  docs/xrd.md) (results.h5 written; NeXus/CSV/report off), end to end incl. cluster start,
  cold (the integration matrix is built: an empty MATTERFLOW_CACHE_DIR). Its
  integrate1d uses pyFAI's matrix through matterflow's fused kernel (engine auto);
  the patterns agree with pyFAI's to ~1e-7 and the fitted positions are compared.

pydidas runs in its own venv: see `xrd_vs_pydidas.py`.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(folder: Path, n_frames: int, size: int, unique: int) -> tuple[Path, Path, list]:
    import h5py

    from matterflow.diffraction.xrd._geometry import poni_text
    from matterflow.diffraction.xrd.sample_data import write_frames_h5
    from matterflow.diffraction.xrd.synthetic import heating_series, make_geometry

    ai = make_geometry(distance_mm=120.0 * size / 2048, centre_px=(size / 2 + 12.3, size / 2 - 20.7),
                       rot1_deg=0.8, rot2_deg=-0.5, pixel_size_um=75.0, shape=(size, size),
                       energy_kev=25.0)
    run = heating_series(ai, unique, seed=1)
    per = unique
    data = write_frames_h5(folder / "scan_data_000001.h5", run.frames, compression="bitshuffle")
    master = folder / "scan_master.h5"
    with h5py.File(master, "w") as m:
        d = m.create_group("entry/data")
        for k in range(int(np.ceil(n_frames / per))):
            d[f"data_{k + 1:06d}"] = h5py.ExternalLink(data.name, "/entry/data/data")
    poni = folder / "geometry.poni"
    poni.write_text(poni_text(ai))
    # A(111), B(111), B(200): isolated peaks
    centers = [round(float(run.tth_a_deg[0][0]), 2), round(float(run.tth_b_deg[0]), 2),
               round(float(run.tth_b_deg[1]), 2)]
    return master, poni, centers


def baseline(master: Path, poni: Path, n: int, centers: list) -> tuple[float, np.ndarray]:
    import h5py
    import hdf5plugin  # noqa: F401
    import pyFAI

    from matterflow.diffraction.xrd.fitting import fit_peaks

    t0 = time.perf_counter()
    ai = pyFAI.load(str(poni))
    pos = np.empty((n, len(centers)))
    with h5py.File(master, "r") as f:
        keys = sorted(k for k in f["entry/data"] if k.startswith("data_"))
        dsets = [f["entry/data"][k] for k in keys]
        per = dsets[0].shape[0]
        for i in range(n):
            img = dsets[i // per][i % per].astype(np.float32)
            res = ai.integrate1d(img, 1000, unit="2th_deg", error_model="poisson",
                                 method=("bbox", "csr", "cython"))
            fit = fit_peaks(res.radial, res.intensity, res.sigma, centers, 0.3)
            pos[i] = fit.center
    return time.perf_counter() - t0, pos


def matterflow_run(folder: Path, master: Path, poni: Path, n: int, centers: list, workers: int,
                   batch: int | None, omp: int | None = None) -> tuple[float, np.ndarray]:
    """A cold run: an empty integration-matrix cache (MATTERFLOW_CACHE_DIR), so the matrix is
    built as on the first scan with a geometry; workers inherit the environment."""
    import h5py
    import yaml

    from matterflow.diffraction.xrd.processing import run_process

    spec = {"name": "bench", "input": {"path": str(master), "last": n}, "geometry": str(poni),
            "plugins": [{"plugin": "mask", "high": 1e7, "detector_gaps": False},
                        {"plugin": "integrate1d", "npt": 1000, "unit": "2th_deg",
                         "error_model": "poisson"},
                        {"plugin": "fit_peaks", "centers": centers, "window": 0.3}],
            "export": {"nexus": False, "csv": False, "xy": False}}
    if batch:
        spec["batch_size"] = batch
    if omp:
        spec["omp_threads"] = omp
    wf = folder / "process.yaml"
    wf.write_text(yaml.safe_dump(spec))
    out = folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    cache = folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["MATTERFLOW_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    run_process(wf, out, workers=workers, report=False)
    dt = time.perf_counter() - t0
    with h5py.File(out / "results.h5") as f:
        pos = f["process/fit_peaks/center"][()]
        matterflow_run.process_step_s = float(f["process"].attrs["duration_s"])
        matterflow_run.frame_s = float(np.sum(f["process/seconds"][()]))
    return dt, pos


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline-child":
        t, _ = baseline(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]),
                        json.loads(sys.argv[5]))
        print(t)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--unique", type=int, default=4, help="distinct frames written to disk")
    ap.add_argument("--omp-threads", type=int, default=None,
                    help="pyFAI OpenMP threads per worker (default: Dask's 1)")
    a = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="xrd-bench-"))
    try:
        master, poni, centers = make_data(folder, a.frames, a.size, a.unique)
        t_mf, pos_mf = matterflow_run(folder, master, poni, a.frames, centers, a.workers, a.batch,
                                      a.omp_threads)
        t_base, pos_base = baseline(master, poni, a.frames, centers)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        one = subprocess.run([sys.executable, __file__, "--baseline-child", str(master), str(poni),
                              str(a.frames), json.dumps(centers)], env=env, check=True,
                             capture_output=True, text=True)
        t_one = float(one.stdout.strip().splitlines()[-1])
        agree = float(np.nanmax(np.abs(pos_mf - pos_base)))
        print(json.dumps({
            "benchmark": "xrd_throughput",
            "frames": a.frames, "frame_shape": [a.size, a.size], "bins": 1000, "peaks_fitted": 3,
            "workers": a.workers, "omp_threads_per_worker": a.omp_threads or 1,
            "cpu_count": os.cpu_count(),
            "matterflow_s": round(t_mf, 2), "matterflow_frames_per_s": round(a.frames / t_mf, 2),
            "plain_pyfai_loop_s": round(t_base, 2),
            "plain_pyfai_loop_frames_per_s": round(a.frames / t_base, 2),
            "speedup_vs_plain_loop": round(t_base / t_mf, 3),
            "matterflow_process_step_s": round(matterflow_run.process_step_s, 2),
            "matterflow_worker_seconds_in_frames": round(matterflow_run.frame_s, 2),
            "plain_loop_1_thread_s": round(t_one, 2),
            "speedup_vs_plain_loop_1_thread": round(t_one / t_mf, 3),
            "pydidas": "see benchmarks/xrd_vs_pydidas.py (its own venv)",
            "max_peak_position_difference_deg": agree,
        }))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
