"""AP50 / AP of the Faster R-CNN and the classical baseline on the same held-out simulated frames
(and on frames of a structure never trained on). One JSON line.

    python benchmarks/gixd_ap.py [N_TRAIN] [TRAIN_MINUTES]
"""

import json
import sys
import time

import numpy as np

from matterflow.diffraction.gixd.tasks import detect, evaluate, simulate, train


def _ap(sim, **kw):
    t = time.time()
    d = [detect(p, **kw) for p in sim.polar]
    rate = len(d) / (time.time() - t) * 3600
    stack = {k: np.stack([getattr(x, k) for x in d]) for k in ("boxes", "scores", "labels", "n")}
    ev = evaluate(stack["boxes"], stack["scores"], stack["labels"], stack["n"], sim.boxes,
                  sim.labels, sim.n_boxes)
    return {"ap": round(ev.ap, 3), "ap50": round(ev.ap50, 3), "images_per_h": round(rate)}


def main() -> None:
    n_train = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    t0 = time.time()
    tr_set = simulate(params={"n_images": n_train, "seed": 0})
    sim_s = time.time() - t0
    tr = train(tr_set.polar, tr_set.boxes, tr_set.labels, tr_set.n_boxes,
               params={"steps": 100000, "batch_size": 4, "width": 32, "max_minutes": minutes})
    test = simulate(params={"n_images": 40, "seed": 1})
    unseen = simulate(params={"n_images": 40, "seed": 2, "mode": "unseen"})
    cl = {"method": "classical"}
    print(json.dumps({"figure": "gixd_ap", "n_train": n_train, "simulate_s": round(sim_s, 1),
                      "train_steps": tr.steps_done, "train_s": round(tr.seconds),
                      "model_heldout": _ap(test, model=tr.checkpoint),
                      "baseline_heldout": _ap(test, params=cl),
                      "model_unseen": _ap(unseen, model=tr.checkpoint),
                      "baseline_unseen": _ap(unseen, params=cl)}))


if __name__ == "__main__":
    main()
