"""Recall of planted rare events against the rescanned area: learned planner vs an
intensity-threshold planner vs random tiles, with the effective speed-up (one JSON line).

The learned planner scores tiles by the FastSR event head (TTA mean) plus its TTA spread;
``anomaly`` is the training-free score of ``planning.anomaly_scores`` (variance-stabilised
fast scan minus its local median, matched-filtered, in MAD units); ``learned+anomaly`` the
weighted mean of the two ranks (``planning.rank_combine``).
Held-out micrographs: dual-phase and grains, seeds from 90000, grain 28 px (never trained
on), and lamellar (a family never trained on); events at 40 per megapixel.

    OMP_NUM_THREADS=2 python benchmarks/sem_planner.py --model /tmp/sem_fast.pt
    (a model from benchmarks/sem_sr.py --save; without --model one is trained for --minutes)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from matterflow.microscopy.sem import planning as pl
from matterflow.microscopy.sem.models import TrainConfig, load_checkpoint, train, tta_predict
from matterflow.microscopy.sem.synthetic import synthetic_set

BUDGETS = (0.01, 0.02, 0.03, 0.05, 0.1)


def curve(scores, labels, tile_px, shape, timing):
    rec, sp = [], []
    for a in BUDGETS:
        f = p = 0
        s = []
        for sc, lab in zip(scores, labels, strict=True):
            tiles = pl.choose_tiles(sc, area_fraction=a, threshold=-np.inf)
            tiles = tiles[pl.stage_path(tiles)]
            ff, pp = pl.recall(lab, tiles, tile_px)
            f, p = f + ff, p + pp
            s.append(pl.acquisition_time(shape, scale=4, n_tiles=len(tiles), tile_px=tile_px,
                                         path_px=pl.path_length(tiles, tile_px), **timing)["speedup"])
        rec.append(round(f / max(1, p), 3))
        sp.append(round(float(np.mean(s)), 2))
    return {"recall": rec, "speedup": sp, "planted": int(p)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--tile", type=int, default=16)
    ap.add_argument("--n", type=int, default=6, help="held-out images per family")
    ap.add_argument("--tta", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--uncertainty-weight", type=float, default=0.3)
    ap.add_argument("--anomaly-weight", type=float, default=0.5,
                    help="weight of the training-free anomaly score's rank in learned+anomaly")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.model:
        model = load_checkpoint(a.model)[0]
    else:
        tr = synthetic_set(["dual_phase", "grains"], 8, (256, 256), seed=0,
                           structure={"event_density_per_mpx": 120})
        model, _ = train(tr.fast, tr.clean, tr.labels,
                         cfg=TrainConfig(steps=100_000, time_limit_s=60 * a.minutes, threads=a.threads))
    timing = {"pixel_size_nm": 10.0, "fast_dwell_us": 0.5, "full_dwell_us": 2.0}
    out = {"benchmark": "sem_planner", "tile_px": a.tile, "budgets": list(BUDGETS),
           "event_density_per_mpx": 40, "tta": a.tta,
           "anomaly_weight": a.anomaly_weight}
    for name, fams, struct in (("heldout", ["dual_phase", "grains"], {"grain_px": 28}),
                               ("lamellar", ["lamellar"], {})):
        d = synthetic_set(fams, a.n, (256, 256), seed=90000, structure=struct)
        learned, thresh, rand, anom, comb = [], [], [], [], []
        t0 = time.perf_counter()
        for i, lr in enumerate(d.fast):
            _, spread, prob = tta_predict(model, lr, n=a.tta)
            learned.append(pl.tile_scores(prob, spread, scale=4, tile_px=a.tile,
                                          uncertainty_weight=a.uncertainty_weight))
            thresh.append(pl.threshold_scores(lr, scale=4, tile_px=a.tile))
            rand.append(pl.random_scores(lr.shape, scale=4, tile_px=a.tile, seed=i))
            anom.append(pl.anomaly_scores(lr, scale=4, tile_px=a.tile))
            comb.append(pl.rank_combine(learned[-1], anom[-1], weights=(1 - a.anomaly_weight, a.anomaly_weight)))
        score_s = (time.perf_counter() - t0) / len(d.fast)
        shape = d.clean[0].shape
        out[name] = {"learned": curve(learned, d.labels, a.tile, shape, timing),
                     "threshold": curve(thresh, d.labels, a.tile, shape, timing),
                     "random": curve(rand, d.labels, a.tile, shape, timing),
                     "anomaly": curve(anom, d.labels, a.tile, shape, timing),
                     "learned+anomaly": curve(comb, d.labels, a.tile, shape, timing),
                     "score_s_per_image": round(score_s, 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
