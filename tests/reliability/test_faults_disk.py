"""Fault injection: full disk and read-only folder, for real, on a small tmpfs.

Each case runs in a private mount namespace (``unshare -m``: the mounts are seen by
that process tree only and vanish with it), where a tmpfs of a chosen size -- or
remounted read-only, or filled up in the middle of a run -- is the ``--out`` of real
``matterflow`` commands. Where that is not possible the cases are skipped (the
``os.write``/HDF5 patches of ``test_outdir_store.py`` still run)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

EXE = str(Path(sys.executable).parent / "matterflow")

PRELUDE = f"""
import glob, json, os, subprocess, sys, time
EXE = {EXE!r}
def mount(path, opts):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], check=True)
def remount(path, opts):
    # "ro" is refused (EBUSY) while a file there is open for writing: retry until the writer
    # has closed it (the run writes many small batch files, so a gap comes within milliseconds)
    for _ in range(4000):
        r = subprocess.run(["mount", "-o", "remount," + opts, path], capture_output=True, text=True)
        if r.returncode == 0:
            return
        if "busy" not in r.stderr:
            break
        time.sleep(0.002)
    raise RuntimeError("remount " + opts + " failed: " + r.stderr)
def run(*args):
    r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=240)
    return {{"rc": r.returncode, "out": r.stdout, "err": r.stderr}}
def files(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, _, fs in os.walk(path) for f in fs)
def batches(out):
    return sorted(glob.glob(os.path.join(out, ".matterflow-cache", "*", "bs*", "batch-*.h5")))
"""


@pytest.fixture(autouse=True)
def _need_private_mounts(private_mounts):
    if not private_mounts:
        pytest.skip("no private mount namespace here (unshare -m); tmpfs cases need it")


def in_namespace(tmp_path: Path, body: str, env: dict) -> dict:
    """Run ``body`` (Python, after PRELUDE) in a private mount namespace; its JSON answer."""
    script = tmp_path / "case.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    r = subprocess.run(["unshare", "-m", sys.executable, str(script)], capture_output=True,
                       text=True, timeout=400, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _clean(res: dict) -> str:
    text = res["out"] + res["err"]
    assert "Traceback" not in text and "Segmentation" not in text, text
    assert res["rc"] not in (-11, 139), "segmentation fault"
    return text


@pytest.fixture(scope="module")
def big_scan(tmp_path_factory, series, poni_file):
    """64 frames whose 2D cakes (~0.55 MB a frame, stored) fill a 20 MiB disk in the middle
    of the mapped step."""
    from matterflow.diffraction.xrd.sample_data import write_frames_h5

    d = tmp_path_factory.mktemp("bigscan")
    write_frames_h5(d / "scan.h5", np.concatenate([series.frames] * 8))
    (d / "geometry.poni").write_text(poni_file.read_text())
    chain = [{"plugin": "integrate1d", "npt": 400},
             {"plugin": "integrate2d", "npt": 500, "npt_azim": 360}]
    wf = {"name": "disk", "steps": [
        {"id": "frames", "task": "xrd.frames", "inputs": {"source": "scan.h5"}},
        {"id": "process", "task": "xrd.process", "batch_size": 2,
         "inputs": {"frame": "frames.index", "source": "scan.h5", "geometry": "geometry.poni"},
         "params": {"plugins": chain}}]}
    (d / "wf.yaml").write_text(yaml.safe_dump(wf))
    proc = {"name": "disk", "input": {"path": "scan.h5"}, "geometry": "geometry.poni",
            "plugins": chain, "batch_size": 2}
    (d / "process.yaml").write_text(yaml.safe_dump(proc))
    return d


def test_run_on_a_200k_disk_exits_2_before_computing_and_leaves_nothing(tmp_path, cli_env):
    import matterflow

    quick = Path(matterflow.__file__).parent / "examples" / "quickstart.yaml"
    res = in_namespace(tmp_path, f"""
        mount({str(tmp_path / 'mnt')!r}, "size=200k")
        r = run("run", {str(quick)!r}, "--out", {str(tmp_path / 'mnt' / 'out')!r}, "--quiet")
        r["files"] = files({str(tmp_path / 'mnt')!r})
        print(json.dumps(r))
    """, cli_env)
    text = _clean(res)
    assert res["rc"] == 2 and "free" in text and "needs at least" in text
    assert res["files"] == [], res["files"]


@pytest.mark.parametrize("command", ["run", pytest.param("xrd process", marks=pytest.mark.slow)])
def test_disk_full_in_the_middle_is_a_clean_error_keeps_batches_and_rerun_completes(
        tmp_path, cli_env, big_scan, command):
    mnt, out = tmp_path / "mnt", tmp_path / "mnt" / "out"
    args = (["run", str(big_scan / "wf.yaml")] if command == "run"
            else ["xrd", "process", str(big_scan / "process.yaml")])
    args += ["--out", str(out), "--workers", "2", "--threads", "--quiet"]
    res = in_namespace(tmp_path, f"""
        mount({str(mnt)!r}, "size=20m")
        first = run(*{args!r})
        first["batches"] = len(batches({str(out)!r}))
        first["files"] = files({str(mnt)!r})
        remount({str(mnt)!r}, "size=400m")
        second = run(*{args!r})
        second["files"] = files({str(mnt)!r})
        import h5py
        with h5py.File({str(out / 'results.h5')!r}, "r") as f:
            second["n"] = int(f["process/status"].shape[0])
            second["ok"] = int((f["process/status"][()] == 0).sum())
            second["cake_sum"] = float(f["process/integrate2d/intensity"][()].sum())
        print(json.dumps([first, second]))
    """, cli_env)
    first, second = res
    text = _clean(first)
    assert first["rc"] == 1 and "disk is full" in text and "rerun" in text, text
    assert 0 < first["batches"] < 32, first["batches"]          # finished batches kept
    assert not [f for f in first["files"] if f.endswith(".tmp")], first["files"]
    _clean(second)
    assert second["rc"] == 0, second["err"]
    assert second["n"] == 64 and second["ok"] == 64
    assert not [f for f in second["files"] if f.endswith(".tmp") or "cache" in f]
    assert np.isfinite(second["cake_sum"]) and second["cake_sum"] > 0


def test_read_only_out_exits_2_with_the_folder_named(tmp_path, cli_env, big_scan):
    import h5py

    mnt = tmp_path / "mnt"
    with h5py.File(tmp_path / "results.h5", "w") as f:   # for `report` into the folder
        f.attrs["workflow_name"] = "x"
    res = in_namespace(tmp_path, f"""
        mount({str(mnt)!r}, "size=8m")
        os.makedirs({str(mnt / 'out')!r})
        remount({str(mnt)!r}, "ro")
        a = run("run", {str(big_scan / 'wf.yaml')!r}, "--out", {str(mnt / 'out')!r}, "--quiet")
        b = run("xrd", "process", {str(big_scan / 'process.yaml')!r}, "--out",
                {str(mnt / 'out')!r}, "--quiet")
        c = run("report", {str(tmp_path / 'results.h5')!r}, "--out",
                {str(mnt / 'out' / 'report.html')!r})
        print(json.dumps([a, b, c]))
    """, cli_env)
    for r in res[:2]:
        text = _clean(r)
        assert r["rc"] == 2 and str(mnt / "out") in text and "cannot write there" in text, text
    text = _clean(res[2])
    assert res[2]["rc"] == 1 and "read-only" in text and "report.html" in text, text


@pytest.mark.slow
def test_out_turned_read_only_mid_run_is_a_clean_error_and_rerun_resumes(tmp_path, cli_env,
                                                                        big_scan):
    mnt, out = tmp_path / "mnt", tmp_path / "mnt" / "out"
    res = in_namespace(tmp_path, f"""
        mount({str(mnt)!r}, "size=400m")
        args = ["run", {str(big_scan / 'wf.yaml')!r}, "--out", {str(out)!r}, "--workers", "2",
                "--threads", "--quiet"]
        p = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        t_end = time.time() + 120
        while len(batches({str(out)!r})) < 3 and p.poll() is None and time.time() < t_end:
            time.sleep(0.005)
        remount({str(mnt)!r}, "ro")
        o, e = p.communicate(timeout=240)
        first = {{"rc": p.returncode, "out": o, "err": e, "batches": len(batches({str(out)!r}))}}
        remount({str(mnt)!r}, "rw")
        second = run(*args)
        print(json.dumps([first, second]))
    """, cli_env)
    first, second = res
    text = _clean(first)
    assert first["rc"] == 1 and "read-only" in text.lower(), text
    assert first["batches"] >= 3
    _clean(second)
    assert second["rc"] == 0, second["err"]
