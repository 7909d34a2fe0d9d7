"""Images/h at 512² in one run: end to end from HDF5 (frames read lazily -> pyFAI fibre
geometry -> polar 128² -> detector -> peak table) on the core executor, exactly the steps of
`matterflow gixd detect` (xrd.frames -> gixd.detect), for the Faster R-CNN and the classical
baseline; the same per-frame task called in a plain loop; and the model alone on in-memory
polar tensors (one image per forward pass and batches of 8). One JSON line.

    OMP_NUM_THREADS=1 python benchmarks/gixd_rate.py [--frames 64] [--model M.pt] [--workers 1]

Without --model an untrained network of the default size is timed (the trained one keeps
fewer boxes, so it is no slower).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from matterflow.clitools import RunOptions
from matterflow.diffraction.gixd._model import build_model, predict, save_checkpoint
from matterflow.diffraction.gixd.tasks import _model, detect, simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16, help="frames per executor task")
    a = ap.parse_args()
    n = a.frames
    torch.manual_seed(0)
    s = simulate(params={"n_images": n, "keep_detector": True, "seed": 3})
    res: dict = {"figure": "gixd_rate", "detector_px": 512, "polar": [128, 128], "frames": n,
                 "torch_threads": torch.get_num_threads(), "workers": a.workers,
                 "trained_model": a.model is not None}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.model is None:
            ck = tmp / "model.pt"
            ck.write_bytes(save_checkpoint(build_model((128, 128), width=32).eval(),
                                           {"shape": [128, 128], "width": 32}))
        else:
            ck = a.model
        h5 = tmp / "frames.h5"
        with h5py.File(h5, "w") as f:
            f.create_dataset("entry/data/data", data=s.detector.astype(np.uint32),
                             chunks=(1, 512, 512))
        poni = tmp / "det.poni"
        poni.write_text(s.poni)
        for name, method in (("model", "model"), ("baseline", "classical")):
            params = {"method": method, "incidence_deg": 0.2}
            inputs = {"frame": "frames.index", "source": h5, "geometry": poni}
            if method == "model":
                inputs["model"] = ck
            steps = [{"id": "frames", "task": "xrd.frames", "inputs": {"source": h5}},
                     {"id": "detect", "task": "gixd.detect", "inputs": inputs, "params": params,
                      "batch_size": a.batch_size}]
            opts = RunOptions(tmp / f"run-{name}", workers=a.workers, processes=False,
                              quiet=True)
            t = time.time()
            summary = opts.run_steps(steps, name="gixd-rate", summary=False)
            wall = time.time() - t
            with h5py.File(summary.results, "r") as f:
                ok = int((f["detect/status"][()] == 0).sum())
            res[f"{name}_end_to_end_images_per_h"] = round(n / wall * 3600)
            res[f"{name}_frames_ok"] = ok
            # the same task in a plain loop (converter and model warm)
            detect(np.int64(0), ck if method == "model" else None, poni, h5, params=params)
            t = time.time()
            for i in range(n):
                detect(np.int64(i), ck if method == "model" else None, poni, h5, params=params)
            res[f"{name}_task_loop_images_per_h"] = round(n / (time.time() - t) * 3600)
        net, _ = _model(ck)
        predict(net, [s.polar[0]])
        t = time.time()
        for p in s.polar:
            predict(net, [p])
        res["model_alone_images_per_h"] = round(n / (time.time() - t) * 3600)
        t = time.time()
        for i in range(0, n, 8):
            predict(net, list(s.polar[i:i + 8]))
        res["model_alone_batch8_images_per_h"] = round(n / (time.time() - t) * 3600)
    # the network on 512² polar input (an untrained one: what a full-resolution grid costs)
    big = build_model((512, 512), width=32).eval()
    x = np.random.default_rng(0).poisson(5.0, (4, 512, 512)).astype(np.float32)
    predict(big, [x[0]])
    t = time.time()
    for im in x:
        predict(big, [im])
    res["model_alone_polar512_images_per_h"] = round(len(x) / (time.time() - t) * 3600)
    res["end_to_end_over_model_alone"] = round(res["model_end_to_end_images_per_h"]
                                               / res["model_alone_images_per_h"], 3)
    res["model_over_baseline_end_to_end"] = round(res["model_end_to_end_images_per_h"]
                                                  / res["baseline_end_to_end_images_per_h"], 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
