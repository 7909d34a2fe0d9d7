"""Images/h end to end (512² detector frames read lazily from HDF5 -> pyFAI polar 128² ->
detector) for the Faster R-CNN and the classical baseline, and the model alone on in-memory
polar tensors, in one run. One JSON line. An untrained model of the default size is timed
(the rate does not depend on the weights beyond the number of boxes kept).

    python benchmarks/gixd_rate.py [N_FRAMES]
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from matterflow.diffraction.gixd._model import build_model, predict, save_checkpoint
from matterflow.diffraction.gixd.tasks import detect, simulate


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    torch.manual_seed(0)
    s = simulate(params={"n_images": n, "keep_detector": True, "seed": 3})
    model = build_model((128, 128), width=32).eval()
    ck = np.frombuffer(save_checkpoint(model, {"shape": [128, 128], "width": 32}), np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / "frames.h5"
        with h5py.File(h5, "w") as f:
            f["entry/data/data"] = s.detector.astype(np.uint32)
        out = {}
        for name, kw in (("model", {"model": ck}), ("baseline", {"params": {"method": "classical"}})):
            p = dict(kw.get("params", {}), incidence_deg=0.2)
            detect(np.int64(0), kw.get("model"), s.poni, h5, params=p)  # warm-up (LUT, model)
            t = time.time()
            for i in range(n):
                detect(np.int64(i), kw.get("model"), s.poni, h5, params=p)
            out[f"{name}_end_to_end_images_per_h"] = round(n / (time.time() - t) * 3600)
    t = time.time()
    for p in s.polar:
        predict(model, [p])
    out["model_alone_images_per_h"] = round(n / (time.time() - t) * 3600)
    print(json.dumps({"figure": "gixd_rate", "detector_px": 512, "polar": [128, 128],
                      "threads": torch.get_num_threads(), **out}))


if __name__ == "__main__":
    main()
