"""Short pilot training of one detector setting, scored on the validation frames (AP50 / COCO
AP, model and the classical baseline on the same frames). One JSON line. Pilots of several
settings run side by side on one machine compare at equal wall time.

    OMP_NUM_THREADS=1 python benchmarks/gixd_pilot.py --arch 1 --n-q 128 --minutes 7 \
        [--n-train 200] [--work /tmp/gixd-pilot]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from matterflow.diffraction.gixd._metrics import average_precision
from matterflow.diffraction.gixd.tasks import detect_batch, simulate, train


def _set(work: Path, name: str, n: int, seed: int, n_q: int, n_chi: int) -> dict:
    f = work / f"{name}-{n}-{n_chi}x{n_q}.npz"
    if not f.exists():
        s = simulate(params={"n_images": n, "seed": seed, "n_q": n_q, "n_chi": n_chi})
        np.savez(f, polar=s.polar, boxes=s.boxes, labels=s.labels, n_boxes=s.n_boxes)
    z = np.load(f)
    return {k: z[k] for k in z.files}


def _ap(s: dict, **kw) -> dict:
    d = detect_batch(s["polar"], **kw)
    nb = s["n_boxes"]
    r = average_precision([x["boxes"] for x in d], [x["scores"] for x in d],
                          [x["labels"] for x in d], [s["boxes"][i, :nb[i]] for i in range(len(d))],
                          [s["labels"][i, :nb[i]] for i in range(len(d))])
    return {"ap": round(r.ap, 3), "ap50": round(r.ap50, 3), "ap75": round(r.ap75, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", type=int, default=2)
    ap.add_argument("--n-q", type=int, default=128)
    ap.add_argument("--n-chi", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gixd-pilot"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    tr = _set(a.work, "train", a.n_train, 0, a.n_q, a.n_chi)
    va = _set(a.work, "val", 30, 11, a.n_q, a.n_chi)
    w = np.concatenate([tr["boxes"][i, :n, 2] - tr["boxes"][i, :n, 0]
                        for i, n in enumerate(tr["n_boxes"])])
    t0 = time.time()
    res = train(tr["polar"], tr["boxes"], tr["labels"], tr["n_boxes"],
                params={"steps": 100000, "arch": a.arch, "lr": a.lr, "width": a.width,
                        "max_minutes": a.minutes})
    out = {"figure": "gixd_pilot", "arch": a.arch, "n_chi": a.n_chi, "n_q": a.n_q,
           "lr": a.lr, "width": a.width, "n_train": a.n_train,
           "box_width_q_px_5_50_95": np.percentile(w, [5, 50, 95]).round(2).tolist(),
           "train_steps": res.steps_done, "train_s": round(time.time() - t0),
           "last_losses_mean": round(float(np.mean(res.losses[-50:])), 3),
           "model_val": _ap(va, model=np.asarray(res.checkpoint)),
           "baseline_val": _ap(va, method="classical")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
