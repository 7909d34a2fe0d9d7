"""Training-step and inference speed, se3 (e3nn) vs the bispectrum MLP, same hydrogen cell; one JSON line.

Forward + backward of one batch of grid points (Adam step excluded) and inference
(descriptors + network on every grid point, one of the two passes of ``predict``) on the same 16-H cell.
se3 time is also given per atom–grid edge (occupied neighbour slots) and per
atom–atom pair (messages among a point's neighbours).
Usage: python benchmarks/electrons_se3_speed.py SNAPSHOT.h5 (from electrons_se3_hydrogen_data.py)
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from matterflow.electrons.descriptors import BispectrumParams, compute_descriptors
from matterflow.electrons.equivariant import NeighbourParams, Se3LdosModel
from matterflow.electrons.ml_tasks import snapshot_dataset
from matterflow.electrons.model import FeedForwardLdosModel
from matterflow.electrons.snapshot import load_snapshot
from matterflow.electrons.training import TrainParams

BATCH, REPEATS = 256, 5


def _step_seconds(net, x, y) -> float:
    times = []
    for _ in range(REPEATS + 1):
        t = time.perf_counter()
        loss = torch.mean((net(x) - y) ** 2)
        loss.backward()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def main(path: str) -> None:
    snap = load_snapshot(path)
    shape = tuple(snap.grid_shape)
    y = np.asarray(snap.ldos).reshape(-1, len(snap.energy_grid_ev))
    rng = np.random.default_rng(0)
    idx = rng.choice(len(y), BATCH, replace=False)
    out = {"figure": "se3 vs MLP training step and inference speed", "cell": path, "n_atoms": len(snap.atoms),
           "grid": list(shape), "n_energies": y.shape[1], "batch_points": BATCH,
           "torch_threads": torch.get_num_threads()}
    models = {}
    nb = NeighbourParams(cutoff=2.5, max_neighbours=8)
    xs = compute_descriptors(snap.atoms, shape, nb).reshape(len(y), -1)
    bp = BispectrumParams(twojmax=6, rcutfac=3.0, radius={"H": 0.5}, weight={"H": 1.0})
    xb = compute_descriptors(snap.atoms, shape, bp).reshape(len(y), -1)
    for name, x, model, kind, dp in (
            ("se3", xs, Se3LdosModel(epochs=1, batch_size=BATCH, points_per_epoch=BATCH, refit_output=False,
                                     neighbours=nb), "neighbours", nb),
            ("mlp", xb, FeedForwardLdosModel((128, 128), "leaky_relu", refit_output=False,
                                             train=TrainParams(max_epochs=1, batch_size=BATCH)),
             "bispectrum", bp)):
        model.setup = snapshot_dataset([path], kind, dp).setup
        model.fit(x[:2048], y[:2048])
        models[name] = model
        net = model.network_
        xt = torch.from_numpy(x[idx]).to(next(net.parameters()).dtype)
        if name == "mlp":
            xt = torch.from_numpy(model.x_scaler_.transform(x[idx])).float()
        yt = torch.from_numpy(model.y_scaler_.transform(y[idx])).to(xt.dtype)
        sec = _step_seconds(net, xt, yt)
        t = time.perf_counter()       # one pass of the predict path: descriptors + network, all points
        model.predict(compute_descriptors(snap.atoms, shape, dp).reshape(len(y), -1))
        inf = time.perf_counter() - t
        out[name] = {"step_seconds": sec, "step_us_per_point": sec / BATCH * 1e6,
                     "inference_points_per_s": len(y) / inf}
        if name == "se3":
            codes = x[idx].reshape(BATCH, -1, 4)[..., 3] > 0
            edges = int(codes.sum())
            pairs = int(sum(k * (k - 1) for k in codes.sum(axis=1)))
            out[name] |= {"atom_grid_edges": edges, "atom_atom_pairs": pairs,
                          "step_us_per_atom_grid_edge": sec / edges * 1e6,
                          "step_us_per_edge_incl_pairs": sec / (edges + pairs) * 1e6}
    out["ratio_step_se3_over_mlp"] = out["se3"]["step_seconds"] / out["mlp"]["step_seconds"]
    out["ratio_inference_mlp_over_se3"] = (out["mlp"]["inference_points_per_s"]
                                           / out["se3"]["inference_points_per_s"])
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
