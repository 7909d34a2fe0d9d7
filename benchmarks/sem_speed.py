"""Inference seconds for a 1024² output (256² fast scan, ×4) on one thread: FastSR (tiled, no
TTA, event head off; with it too) against bicubic in torch and cubic-spline zoom in scipy
on the same machine (one JSON line).

    python benchmarks/sem_speed.py [--model M.pt]   (an untrained FastSR of the default size otherwise)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy import ndimage

from matterflow.microscopy.sem.models import FastSR, bicubic, load_checkpoint, predict_tiled


def best(f, n=5):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    m = load_checkpoint(a.model)[0] if a.model else FastSR().eval()
    lr = np.random.default_rng(0).uniform(size=(256, 256)).astype(np.float32)
    t_sr = best(lambda: predict_tiled(m, lr, detect=False))
    t_det = best(lambda: predict_tiled(m, lr))
    t_bic = best(lambda: bicubic(lr))
    t_sp = best(lambda: ndimage.zoom(lr, 4, order=3))
    mpx = 1024 * 1024 / 1e6
    print(json.dumps({"benchmark": "sem_speed", "output": [1024, 1024], "threads": 1,
                      "params": sum(p.numel() for p in m.parameters()),
                      "fastsr_s": round(t_sr, 4), "fastsr_with_event_head_s": round(t_det, 4),
                      "bicubic_torch_s": round(t_bic, 4),
                      "scipy_zoom3_s": round(t_sp, 4),
                      "fastsr_s_per_mpx": round(t_sr / mpx, 4),
                      "ratio_fastsr_to_bicubic": round(t_sr / t_bic, 1),
                      "goal_s": 0.3}))


if __name__ == "__main__":
    main()
