"""Throughput of `matterflow xrd process` vs pydidas's headless workflow runner (same run).

Workload (issue 5): N frames of 2048x2048 (default 200) from
``xrd_throughput.make_data`` (a synthetic heating series written with
bitshuffle/LZ4, a few distinct frames on disk linked again and again so the
disk stays small; every frame is read and decompressed each time), 1D
integration to 1000 bins in 2θ (pyFAI CSR, bbox splitting, cython; no solid-angle
and no polarisation correction, see below) and a fit of 3 isolated peaks per frame
(±0.3° window, linear background).

matterflow runs twice: cold (empty integration-matrix cache: what the first
scan with a geometry costs; ``speedup_vs_pydidas``) and warm (the cache the
first run filled: every later scan with that geometry;
``speedup_vs_pydidas_warm``). pydidas keeps nothing between runs.

Both codes run as fresh processes, timed end to end from the parent (interpreter
start, imports, worker start-up, processing, writing results), on the same files,
each with 2 workers:

- matterflow: ``matterflow xrd process WORKFLOW.yaml --workers 2`` (a local Dask
  cluster of 2 threads in one process, its default for this chain; ``--processes``
  gives 2 worker processes; plugins mask(high) -> integrate1d(poisson errors) -> fit_peaks
  (pseudo-Voigt); results.h5 only, NeXus/CSV/report off, as in
  ``xrd_throughput.py``);
- pydidas: ``xrd_pydidas_driver.py`` run by the pydidas venv's python, which
  builds a ProcessingTree Hdf5fileSeriesLoader -> PyFAIazimuthalIntegration
  (1000 bins, "2theta / deg", "CSR", keep_results) -> 3 x FitSinglePeak (Voigt,
  background order 1, one per peak window) and runs
  ``pydidas.apps.ExecuteWorkflowRunner`` (what ``run-pydidas-workflow`` runs) with
  ``global/mp_n_workers = 2``; it reads the same data file through symlinks named
  as a numbered file series, since pydidas does not follow the master's external
  links.

Solid angle is off on both sides: pydidas 26.5 passes its ``correct_solid_angle``
flag to pyFAI as ``correctSolidAngle=1``, which pyFAI 2026 reads as a first-order
(cos θ) correction instead of the full one (``True`` = 3), so with it on the two
patterns differ by up to ~50 % at high angle on this geometry (a pydidas quirk,
not a difference in the work done).

CPU seconds (user + system of each run's whole process tree) are printed too:
less sensitive than wall time to other jobs on a shared machine.

Agreement: relative difference of the mean integrated pattern (max over bins,
relative to the pattern's maximum) and max |Δ position| of the fitted peaks
(pseudo-Voigt vs Voigt, so a few 1e-3 deg is expected).

pydidas pins older pyFAI/numpy/h5py and pulls Qt, so it lives in its own venv::

    python -m venv /work/pydidas-venv && /work/pydidas-venv/bin/pip install pydidas

Point ``PYDIDAS_PYTHON`` at that venv's python (default
``/work/pydidas-venv/bin/python``); without it the pydidas side is skipped
(``"pydidas": "not installed"``) and the script still exits 0.
Qt runs with ``QT_QPA_PLATFORM=offscreen``; pydidas's settings go to a scratch
``XDG_CONFIG_HOME``, so the user's own pydidas settings are untouched.

Usage::

    python benchmarks/xrd_vs_pydidas.py [--frames 200] [--size 2048] [--workers 2]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xrd_throughput import make_data  # noqa: E402

DRIVER = Path(__file__).resolve().parent / "xrd_pydidas_driver.py"
DEFAULT_PYDIDAS_PYTHON = "/work/pydidas-venv/bin/python"
NPT = 1000
WINDOW_DEG = 0.3


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of all finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pydidas_python() -> str | None:
    """Path of the pydidas venv's python, or None where it is missing."""
    exe = os.environ.get("PYDIDAS_PYTHON", DEFAULT_PYDIDAS_PYTHON)
    if not Path(exe).is_file():
        return None
    ok = subprocess.run([exe, "-c", "import pydidas"], capture_output=True,
                        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    return exe if ok.returncode == 0 else None


def run_matterflow(folder: Path, master: Path, poni: Path, n: int, centers: list,
                   workers: int, cache: Path) -> tuple[float, dict]:
    """`matterflow xrd process` in a fresh process; wall time and results.

    ``cache`` is its MATTERFLOW_CACHE_DIR: an empty folder gives a cold run (the
    integration matrix is built), a folder filled by an earlier run a warm one
    (the next scan with the same geometry: the matrix is loaded).
    """
    import h5py
    import yaml

    spec = {"name": "bench", "input": {"path": str(master), "last": n}, "geometry": str(poni),
            "plugins": [{"plugin": "mask", "high": 1e7, "detector_gaps": False},
                        {"plugin": "integrate1d", "npt": NPT, "unit": "2th_deg",
                         "error_model": "poisson", "solid_angle": False},
                        {"plugin": "fit_peaks", "centers": centers, "window": WINDOW_DEG}],
            "export": {"nexus": False, "csv": False, "xy": False}}
    wf = folder / "process.yaml"
    wf.write_text(yaml.safe_dump(spec))
    out = folder / "mf-out"
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("matterflow")
    cmd = ([str(exe)] if exe.is_file() else [sys.executable, "-m", "matterflow"])
    cmd += ["xrd", "process", str(wf), "--out", str(out), "--workers", str(workers),
            "--no-report", "--quiet"]
    env = {**os.environ, "MATTERFLOW_CACHE_DIR": str(cache)}
    c0, t0 = _children_cpu_s(), time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    cpu = _children_cpu_s() - c0
    with h5py.File(out / "results.h5") as f:
        g = f["process"]
        intensity = g["intensity"][()]
        radial = g["radial"][()]
        res = {"mean_pattern": np.nanmean(intensity, axis=0),
               "radial": radial[0] if radial.ndim == 2 else radial,
               "positions": g["fit_peaks/center"][()],
               "process_step_s": float(g.attrs["duration_s"]), "cpu_s": cpu}
    return dt, res


def run_pydidas(exe: str, folder: Path, master: Path, poni: Path, n: int, centers: list,
                workers: int) -> tuple[float, dict, dict]:
    """pydidas's ExecuteWorkflowRunner via the driver in a fresh process."""
    import h5py

    # pydidas reads numbered file series: name the data file's copies as one
    data_file = folder / "scan_data_000001.h5"
    with h5py.File(master) as m:
        per = m["entry/data/data_000001"].shape[0]
    n_files = int(np.ceil(n / per))
    series = folder / "pydidas-series"
    series.mkdir(exist_ok=True)
    for k in range(1, n_files + 1):
        link = series / f"scan_data_{k:06d}.h5"
        if not link.exists():
            link.symlink_to(data_file)
    out = folder / "pydidas-out"
    shutil.rmtree(out, ignore_errors=True)
    cfg = {"folder": str(series), "pattern": "scan_data_######.h5", "first_index": 1,
           "n_frames": n, "images_per_file": per, "dataset": "entry/data/data",
           "poni": str(poni), "centers": centers, "window": WINDOW_DEG, "npt": NPT,
           "workers": workers, "out": str(out), "result": str(folder / "pydidas.npz")}
    cfg_path = folder / "pydidas.json"
    cfg_path.write_text(json.dumps(cfg))
    xdg = folder / "pydidas-config"
    xdg.mkdir(exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(xdg)}
    for key in ("LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV"):  # the project's venv only
        env.pop(key, None)
    c0, t0 = _children_cpu_s(), time.perf_counter()
    proc = subprocess.run([exe, str(DRIVER), str(cfg_path)], env=env, capture_output=True,
                          text=True)
    dt = time.perf_counter() - t0
    cpu = _children_cpu_s() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"pydidas driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    inner = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    with np.load(folder / "pydidas.npz") as z:
        res = {k: z[k] for k in z.files}
    res["cpu_s"] = cpu
    return dt, res, inner


def agreement(mf: dict, pd: dict) -> dict:
    """Mean-pattern and peak-position agreement between the two runs."""
    same_axis = float(np.max(np.abs(mf["radial"] - pd["radial"])))
    a, b = mf["mean_pattern"], pd["mean_pattern"]
    rel = float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(a)))
    dpos = np.abs(mf["positions"] - pd["positions"])
    return {"radial_axis_max_abs_diff_deg": same_axis,
            "mean_pattern_max_rel_diff": rel,
            "peak_position_max_abs_diff_deg": float(np.nanmax(dpos)),
            "peak_position_median_abs_diff_deg": float(np.nanmedian(dpos)),
            "peak_fits_failed": {"matterflow": int(np.isnan(mf["positions"]).sum()),
                                 "pydidas": int(np.isnan(pd["positions"]).sum())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--unique", type=int, default=4, help="distinct frames written to disk")
    ap.add_argument("--pydidas-first", action="store_true",
                    help="run pydidas before matterflow (default: after)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    exe = pydidas_python()
    folder = Path(tempfile.mkdtemp(prefix="xrd-vs-pydidas-"))
    try:
        master, poni, centers = make_data(folder, a.frames, a.size, a.unique)
        load = os.getloadavg()
        pd_run = None
        if exe is not None and a.pydidas_first:
            pd_run = run_pydidas(exe, folder, master, poni, a.frames, centers, a.workers)
        cache = folder / "mf-cache"
        t_mf, mf = run_matterflow(folder, master, poni, a.frames, centers, a.workers, cache)
        t_warm, _ = run_matterflow(folder, master, poni, a.frames, centers, a.workers, cache)
        if exe is not None and pd_run is None:
            pd_run = run_pydidas(exe, folder, master, poni, a.frames, centers, a.workers)
        out = {"benchmark": "xrd_vs_pydidas", "frames": a.frames,
               "frame_shape": [a.size, a.size], "bins": NPT, "peaks_fitted": len(centers),
               "workers": a.workers, "cpu_count": os.cpu_count(),
               "order": "pydidas first" if a.pydidas_first else "matterflow first",
               "matterflow_s": round(t_mf, 2),
               "matterflow_frames_per_s": round(a.frames / t_mf, 3),
               "matterflow_warm_s": round(t_warm, 2),
               "matterflow_cpu_s": round(mf["cpu_s"], 2),
               "matterflow_process_step_s": round(mf["process_step_s"], 2)}
        if exe is None:
            out["pydidas"] = "not installed"
        else:
            t_pd, pd, inner = pd_run
            out.update({"pydidas_s": round(t_pd, 2),
                        "pydidas_frames_per_s": round(a.frames / t_pd, 3),
                        "pydidas_workflow_run_s": inner["workflow_run_s"],
                        "pydidas_import_s": inner["import_s"],
                        "pydidas_mp_n_workers": inner["mp_n_workers"],
                        "pydidas_version": inner["pydidas_version"],
                        "pydidas_pyfai_version": inner["pyfai_version"],
                        "speedup_vs_pydidas": round(t_pd / t_mf, 3),
                        "speedup_vs_pydidas_warm": round(t_pd / t_warm, 3),
                        "pydidas_cpu_s": round(pd["cpu_s"], 2),
                        "cpu_ratio_pydidas_over_matterflow": round(pd["cpu_s"] / mf["cpu_s"], 3),
                        "agreement": agreement(mf, pd)})
        out["load_avg_1min_before_after"] = [round(load[0], 2), round(os.getloadavg()[0], 2)]
        print(json.dumps(out))
    finally:
        if a.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
