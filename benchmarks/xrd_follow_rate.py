"""Frames/s of `xrd process --follow` while a writer process appends 512² frames to an SWMR HDF5
file as fast as it can, against `xrd process` (no --follow, one worker thread) on the final file,
in one run; the follow latency (last frame written -> its batch on disk) too. One JSON line.

    OMP_NUM_THREADS=1 python benchmarks/xrd_follow_rate.py [--frames 48] [--size 512]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import yaml

from matterflow.diffraction.xrd.follow import batch_files, follow_process
from matterflow.diffraction.xrd.processing import run_process
from matterflow.diffraction.xrd.sample_data import write_sample

WRITER = Path(__file__).parents[1] / "tests" / "xrd" / "follow_writer.py"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--interval", type=float, default=0.0, help="writer's pause per frame (s)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_sample(d, n_frames=a.frames, size=a.size, compression="none")
        spec = yaml.safe_load((d / "process.yaml").read_text())
        spec["geometry"] = "true.poni"
        spec["input"] = {"path": "live.h5"}
        spec["export"] = {"nexus": False, "csv": False}
        wf = d / "follow.yaml"
        wf.write_text(yaml.safe_dump(spec))
        t0 = time.perf_counter()
        writer = subprocess.Popen([sys.executable, str(WRITER), "h5", str(d / "frames.h5"),
                                   "entry/data/data", str(d / "live.h5"), str(a.interval)])
        done_at: dict = {}

        def report(msg: str) -> None:
            if msg.startswith(f"{a.frames} frames done"):
                done_at["t"] = time.perf_counter()

        res, s = follow_process(wf, d / "follow", idle_timeout=2.0, report=report)
        writer.wait()
        written = (d / "live.h5").stat().st_mtime
        last_batch = max(p.stat().st_mtime for p in batch_files(d / "follow" / "follow"))
        with h5py.File(res.results) as f:
            n_follow = int(f["process/status"].shape[0])
        t1 = time.perf_counter()
        plain = run_process(wf, d / "plain", workers=1, processes=False, report=False)
        t2 = time.perf_counter()
    print(json.dumps({
        "figure": "xrd_follow_rate", "frames": a.frames, "size": a.size,
        "follow_frames_processed": n_follow, "follow_frames_per_s": round(s.rate, 2),
        "follow_wall_s_to_last_batch": round(done_at.get("t", t1) - t0, 2),
        "writer_interval_s": a.interval,
        "latency_last_frame_s": round(last_batch - written, 2),
        "baseline": "xrd process without --follow on the final file, 1 worker thread",
        "plain_frames_per_s": round(plain.n_frames / (t2 - t1), 2),
        "plain_wall_s": round(t2 - t1, 2)}))


if __name__ == "__main__":
    main()
