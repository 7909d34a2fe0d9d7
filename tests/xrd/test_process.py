"""`matterflow xrd process` end to end: Dask, failed frames, NeXus, CSV, report, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.diffraction.xrd._geometry import load_geometry
from matterflow.diffraction.xrd.sample_data import write_frames_h5

runner = CliRunner()


def _write(tmp_path, series, poni_file, *, corrupt=None, extra=None, n=None, batch=None):
    frames = series.frames if n is None else np.concatenate([series.frames] * (n // 8 + 1))[:n]
    p = write_frames_h5(tmp_path / "frames.h5", frames, compression="gzip")
    if corrupt is not None:
        with h5py.File(p) as f:
            info = f["entry/data/data"].id.get_chunk_info(corrupt)
        with open(p, "r+b") as fh:
            fh.seek(info.byte_offset)
            fh.write(b"\x00garbage" * (info.size // 8))
    (tmp_path / "geometry.poni").write_text(poni_file.read_text())
    t = series.tth_a_deg[0]
    spec = {"name": "t", "input": {"path": "frames.h5"}, "geometry": "geometry.poni",
            "plugins": [{"plugin": "mask", "high": 1e7},
                        {"plugin": "integrate1d", "npt": 400, "unit": "2th_deg"},
                        *(extra or []),
                        {"plugin": "fit_peaks", "centers": [round(float(t[0]), 1)], "window": 0.3}],
            "reduce": {"centers": [round(float(t[0]), 1)], "window": 0.3},
            "export": {"xy": True}}
    if batch:
        spec["batch_size"] = batch
    wf = tmp_path / "process.yaml"
    wf.write_text(yaml.safe_dump(spec))
    return wf


def test_process_cli_end_to_end(tmp_path, series, poni_file):
    wf = _write(tmp_path, series, poni_file, corrupt=5,
                extra=[{"plugin": "integrate2d", "npt": 100, "npt_azim": 36}])
    out = tmp_path / "out"
    r = runner.invoke(app, ["xrd", "process", str(wf), "--out", str(out), "--workers", "1", "-q"])
    assert r.exit_code == 1, r.output           # one frame failed -> exit 1
    assert "7 of 8 frames processed" in r.output and "frame 5" in r.output
    with h5py.File(out / "results.h5") as f:
        st = f["process/status"][()]
        assert list(np.nonzero(st)[0]) == [5]
        assert "cannot be read" in f["process/reason"].asstr()[5]
        assert np.isnan(f["process/intensity"][5]).all()
        got = f["process/intensity"][2]
        assert f["process/radial"].attrs["units"] == "deg"
        assert f["process/fit_peaks/center"].attrs["units"] == "deg"
        assert f["reduce/n_frames"][()] == 7
    ai = load_geometry(poni_file)
    ref = ai.integrate1d(series.frames[2].astype(np.float32), 400, unit="2th_deg",
                         error_model="poisson", mask=series.frames[2] > 1e7)
    assert np.allclose(got, ref.intensity, rtol=1e-6, atol=0)
    with h5py.File(out / "azint.nxs") as f:
        assert f["entry"].attrs["NX_class"] == "NXentry"
        assert f["entry/definition"].asstr()[()] == "NXazint1d"
        assert f["entry/data/I"].shape == (8, 400)
        assert f["entry/data"].attrs["signal"] == "I"
        assert f["entry_2d/definition"].asstr()[()] == "NXazint2d"
        assert f["entry_2d/data/I"].shape == (8, 36, 100)
        assert "Distance" in f["entry/reduction/geometry_poni"].asstr()[()]
        assert "integrate1d" in f["entry/reduction/workflow"].asstr()[()]
    rows = (out / "fits.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 and rows[0].startswith("plugin,frame")
    assert len(list((out / "xy").glob("frame_*.xy"))) == 7
    assert (out / "report.html").stat().st_size > 10_000


def test_process_file_errors_before_running(tmp_path, series, poni_file):
    wf = _write(tmp_path, series, poni_file)
    spec = yaml.safe_load(wf.read_text())
    spec["input"]["dataset"] = "/entry/nothing"
    wf.write_text(yaml.safe_dump(spec))
    r = runner.invoke(app, ["xrd", "process", str(wf), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "dataset '/entry/nothing' does not exist" in r.output
    spec["input"]["dataset"] = None
    spec["plugins"][1]["unit"] = "furlongs"
    wf.write_text(yaml.safe_dump(spec))
    r = runner.invoke(app, ["xrd", "process", str(wf), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "plugins[1] (integrate1d).unit" in r.output
    assert not (tmp_path / "o" / "results.h5").exists()


def test_threads_and_processes_give_the_same_results(tmp_path, series, poni_file):
    """2 threads share one pipeline (matrix, open file, pyFAI engines): same numbers as 2 processes."""
    from matterflow.core.store import Results
    from matterflow.diffraction.xrd.processing import run_process

    (tmp_path / "fast").mkdir()
    fast = run_process(_write(tmp_path / "fast", series, poni_file), tmp_path / "fast" / "o",
                       workers=2, report=False)
    assert "2 threads" in Results(fast.results).provenance["executor"]  # default for this chain

    wf = _write(tmp_path, series, poni_file, corrupt=3, n=24, batch=2,
                extra=[{"plugin": "integrate2d", "npt": 100, "npt_azim": 36},
                       {"plugin": "sector", "npt": 200, "azimuth_range": [-30, 30]}])
    runs = {}
    for name, processes in (("threads", False), ("processes", None)):  # None: integrate2d -> processes
        res = run_process(wf, tmp_path / name, workers=2, report=False, processes=processes)
        assert res.n_failed == 1 and res.failed[0][0] == 3
        runs[name] = Results(res.results)
    assert "2 threads" in runs["threads"].provenance["executor"]
    assert "2 processes" in runs["processes"].provenance["executor"]
    a, b = runs["threads"]["process"], runs["processes"]["process"]
    for key in ("intensity", "sigma", "radial", "status"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for group in ("integrate2d", "sector", "fit_peaks"):
        for key, val in a[group].items():
            np.testing.assert_array_equal(val, b[group][key], err_msg=f"{group}/{key}")


def test_killed_run_resumes_with_stored_batches(tmp_path, series, poni_file):
    wf = _write(tmp_path, series, poni_file, n=48, batch=2,
                extra=[{"plugin": "integrate2d", "npt": 300, "npt_azim": 180}])
    out = tmp_path / "out"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    exe = os.path.join(os.path.dirname(sys.executable), "matterflow")
    cmd = [exe, "xrd", "process", str(wf), "--out", str(out),
           "--workers", "1", "-q", "--no-report"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / ".matterflow-cache"
    t0 = time.time()
    batches: list = []
    while time.time() - t0 < 120 and proc.poll() is None:
        batches = sorted(cache.rglob("batch-*.h5")) if cache.exists() else []
        if len(batches) >= 3:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if len(batches) < 3:
        pytest.skip("the run finished before it could be killed")
    batches = sorted(cache.rglob("batch-*.h5"))
    # mark one stored batch: if the rerun reuses it, the mark shows in the results
    marked = int(batches[0].stem.split("-")[1]) * 2        # batch b holds frames 2b, 2b+1
    with h5py.File(batches[0], "r+") as f:
        f["batch/intensity"][...] = -1.0
    r = runner.invoke(app, ["xrd", "process", str(wf), "--out", str(out), "--workers", "1",
                            "-q", "--no-report"])
    assert r.exit_code == 0, r.output
    with h5py.File(out / "results.h5") as f:
        inten = f["process/intensity"][()]
        assert (f["process/status"][()] == 0).all()
    assert inten.shape == (48, 400)
    assert np.all(inten[marked:marked + 2] == -1.0)          # reused, not recomputed
    rest = np.delete(inten, [marked, marked + 1], axis=0)
    assert np.all(np.isfinite(rest)) and np.all(rest != -1.0)


def test_export_command_on_a_run_workflow(tmp_path):
    """`matterflow run` of the demo-like chain, then `xrd export` finds the calibrated geometry."""
    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"name": "t", "steps": [
        {"id": "sim", "task": "xrd.simulate_heating",
         "params": {"n_frames": 3, "rows": 256, "cols": 256, "distance_mm": 60,
                    "centre_px": [131.2, 123.9], "pixel_size_um": 150}},
        {"id": "cal", "task": "xrd.calibrate", "inputs": {"image": "sim.calibrant_image"},
         "params": {"calibrant": "LaB6", "energy_kev": 25, "pixel_size_um": 150}},
        {"id": "proc", "task": "xrd.process", "inputs": {"frame": "sim.frames", "geometry": "cal.poni"},
         "params": {"plugins": [{"plugin": "integrate1d", "npt": 300},
                                {"plugin": "fit_peaks", "centers": [12.17], "window": 0.4}]}}]}))
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(wf), "--out", str(out), "--workers", "1", "-q", "--no-report"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["xrd", "export", str(out / "results.h5"), "--out", str(tmp_path / "a.nxs"),
                            "--csv", str(tmp_path / "f.csv")])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "a.nxs") as f:
        assert f["entry/data/I"].shape == (3, 300)
        # calibrated distance, mm (256² with 0.14° pixels: coarser than the 1024² tests)
        assert abs(f["entry/instrument/detector/distance"][()] - 60.0) < 0.3
        assert abs(f["entry/instrument/monochromator/energy"][()] - 25.0) < 1e-9
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 4
