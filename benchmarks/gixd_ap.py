"""AP50 / COCO AP of the Faster R-CNN and the classical baseline on the same held-out simulated
frames, and on frames of a structure and texture never trained on (pentacene). One JSON line.

The score threshold is chosen on a separate validation set (best F1 at IoU 0.5) and
reported with the precision and recall it gives on the held-out set; AP itself is computed
over all detections (score >= 0.01), as COCO does.

    OMP_NUM_THREADS=2 python benchmarks/gixd_ap.py [--n-train 200] [--minutes 14] \
        [--arch 1] [--n-q 128] [--n-chi 128] [--work /tmp/gixd-bench]

``--n-q`` / ``--n-chi`` set the polar grid of every set (training, validation, held-out,
unseen) and so of the model.

The checkpoint is saved in the work folder and resumed, so a rerun only evaluates.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from matterflow.diffraction.gixd._metrics import average_precision, best_threshold
from matterflow.diffraction.gixd.tasks import detect_batch, simulate, train


def _sets(work: Path, n_train: int, n_q: int = 128, n_chi: int = 128) -> dict:
    out = {}
    grid = "" if (n_q, n_chi) == (128, 128) else f"-{n_chi}x{n_q}"
    for name, params in (("train", {"n_images": n_train, "seed": 0}),
                         ("val", {"n_images": 30, "seed": 11}),
                         ("test", {"n_images": 40, "seed": 1}),
                         ("unseen", {"n_images": 40, "seed": 2, "mode": "unseen"})):
        f = work / f"{name}-{params['n_images']}{grid}.npz"
        if not f.exists():
            s = simulate(params={**params, "n_q": n_q, "n_chi": n_chi})
            np.savez(f, polar=s.polar, boxes=s.boxes, labels=s.labels, n_boxes=s.n_boxes)
        z = np.load(f)
        out[name] = {k: z[k] for k in z.files}
    return out


def _score(s: dict, **kw) -> tuple[dict, list]:
    t = time.time()
    d = detect_batch(s["polar"], **kw)
    rate = len(d) / (time.time() - t) * 3600
    gb = [s["boxes"][i, :s["n_boxes"][i]] for i in range(len(d))]
    gl = [s["labels"][i, :s["n_boxes"][i]] for i in range(len(d))]
    r = average_precision([x["boxes"] for x in d], [x["scores"] for x in d],
                          [x["labels"] for x in d], gb, gl)
    return {"ap": round(r.ap, 3), "ap50": round(r.ap50, 3), "ap75": round(r.ap75, 3),
            "ap50_peak": round(r.per_category.get(1, (np.nan,) * 2)[1], 3),
            "ap50_ring": round(r.per_category.get(2, (np.nan,) * 2)[1], 3),
            "images_per_h": round(rate)}, [d, gb, gl]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=14.0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--arch", type=int, default=2)
    ap.add_argument("--n-q", type=int, default=128, help="polar bins along |q|")
    ap.add_argument("--n-chi", type=int, default=128, help="polar bins along chi")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gixd-bench"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sets = _sets(a.work, a.n_train, a.n_q, a.n_chi)
    sim_s = time.time() - t0
    tr_set = sets["train"]
    tag = f"{a.n_train}-w{a.width}"
    if (a.arch, a.n_q, a.n_chi) != (1, 128, 128):
        tag += f"-a{a.arch}-{a.n_chi}x{a.n_q}"
    model_file = a.work / f"model-{tag}.pt"
    ck = a.work / f"train-{tag}.ckpt"
    done = model_file.exists()
    if not done:
        tr = train(tr_set["polar"], tr_set["boxes"], tr_set["labels"], tr_set["n_boxes"],
                   params={"steps": 100000, "batch_size": a.batch_size, "width": a.width,
                           "arch": a.arch, "max_minutes": a.minutes, "checkpoint_path": str(ck)})
        model_file.write_bytes(tr.checkpoint.tobytes())
        info = {"train_steps": tr.steps_done, "train_s": round(tr.seconds),
                "last_losses_mean": round(float(np.mean(tr.losses[-20:])), 3)}
    else:
        import torch

        st = torch.load(ck, weights_only=True, map_location="cpu")
        info = {"train_steps": int(st["step"]), "train_s": "reused",
                "last_losses_mean": round(float(np.mean(st["losses"][-20:])), 3)}
    model = model_file.read_bytes()
    m = np.frombuffer(model, np.uint8)
    _, (vd, vgb, vgl) = _score(sets["val"], model=m)
    thr = best_threshold([x["boxes"] for x in vd], [x["scores"] for x in vd],
                         [x["labels"] for x in vd], vgb, vgl)
    res = {"figure": "gixd_ap", "n_train": a.n_train, "width": a.width, "arch": a.arch,
           "n_chi": a.n_chi, "n_q": a.n_q,
           "simulate_s": round(sim_s, 1), **info, "val_score_threshold": round(thr.threshold, 3)}
    for name in ("test", "unseen"):
        r, (d, gb, gl) = _score(sets[name], model=m)
        at = best_threshold([x["boxes"] for x in d], [x["scores"] for x in d],
                            [x["labels"] for x in d], gb, gl, fixed=thr.threshold)
        r["precision_at_val_threshold"] = round(at.precision, 3)
        r["recall_at_val_threshold"] = round(at.recall, 3)
        res[f"model_{name}"] = r
        b, _ = _score(sets[name], method="classical")
        res[f"baseline_{name}"] = b
    print(json.dumps(res))


if __name__ == "__main__":
    main()
