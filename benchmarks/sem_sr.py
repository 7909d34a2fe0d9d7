"""PSNR/SSIM of the sem models and baselines on held-out synthetic micrographs (one JSON line).

Trains FastSR and RefSR from scratch (time-limited, on this machine's CPU) on dual-phase and
grain micrographs (grain 40 px, seeds 0..), then scores bicubic, Lanczos-3, FastSR and RefSR
against the noise-free full-resolution images of
- ``heldout``: the same families with seeds from 90000 and a grain size (28 px) never
  trained on, and
- ``lamellar``: a family never trained on (pearlite-like lamellae).
Optionally saves the FastSR checkpoint for benchmarks/sem_planner.py.

    OMP_NUM_THREADS=1 python benchmarks/sem_sr.py --minutes 6 --ref-minutes 4 --save /tmp/sem_fast.pt
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from matterflow.microscopy.sem.models import (
    TrainConfig,
    bicubic,
    lanczos,
    predict_tiled,
    psnr,
    save_checkpoint,
    ssim,
    train,
)
from matterflow.microscopy.sem.synthetic import synthetic_set


def score(model, data):
    rows = {k: [] for k in ("bicubic", "lanczos", "model")}
    for i, lr in enumerate(data.fast):
        c = data.clean[i]
        ref = data.reference[i] if model.kind == "ref" else None
        sr, _ = predict_tiled(model, lr, ref)
        for k, img in (("bicubic", bicubic(lr)), ("lanczos", lanczos(lr)), ("model", sr)):
            rows[k].append((psnr(img, c), ssim(img, c)))
    return {k: {"psnr_db": round(float(np.mean([r[0] for r in v])), 3),
                "ssim": round(float(np.mean([r[1] for r in v])), 4)} for k, v in rows.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=6.0, help="training time of FastSR")
    ap.add_argument("--ref-minutes", type=float, default=4.0, help="training time of RefSR")
    ap.add_argument("--n-train", type=int, default=8, help="training images per family")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-ref", action="store_true")
    ap.add_argument("--save", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    tr = synthetic_set(["dual_phase", "grains"], a.n_train, (256, 256), seed=0,
                       structure={"event_density_per_mpx": 120})
    held = synthetic_set(["dual_phase", "grains"], 3, (256, 256), seed=90000,
                         structure={"grain_px": 28})
    lam = synthetic_set(["lamellar"], 4, (256, 256), seed=80000)
    gen_s = time.perf_counter() - t0
    out = {"benchmark": "sem_sr", "scale": 4, "train_images": len(tr.fast), "generate_s": round(gen_s, 1),
           "threads": a.threads, "channels": a.channels, "layers": a.layers}
    for kind in ("fast",) + (() if a.skip_ref else ("ref",)):
        cfg = TrainConfig(kind=kind, steps=100_000, channels=a.channels, layers=a.layers,
                          time_limit_s=60 * (a.minutes if kind == "fast" else a.ref_minutes),
                          threads=a.threads)
        m, info = train(tr.fast, tr.clean, tr.labels, refs=tr.reference, cfg=cfg)
        if kind == "fast" and a.save:
            save_checkpoint(a.save, m, step=info["steps_done"])
        out[kind] = {"train_s": round(info["train_time_s"], 1), "steps": info["steps_done"],
                     "params": sum(p.numel() for p in m.parameters()),
                     "heldout": score(m, held), "lamellar": score(m, lam)}
    f = out["fast"]
    out["fast_gain_db_heldout"] = round(f["heldout"]["model"]["psnr_db"] - f["heldout"]["bicubic"]["psnr_db"], 3)
    out["fast_gain_db_lamellar"] = round(f["lamellar"]["model"]["psnr_db"] - f["lamellar"]["bicubic"]["psnr_db"], 3)
    if "ref" in out:
        r = out["ref"]
        out["ref_over_fast_db_heldout"] = round(r["heldout"]["model"]["psnr_db"] - f["heldout"]["model"]["psnr_db"], 3)
        out["ref_over_fast_db_lamellar"] = round(
            r["lamellar"]["model"]["psnr_db"] - f["lamellar"]["model"]["psnr_db"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
