"""Extrapolation table: se3 (e3nn) vs the bispectrum MLP on the same hydrogen snapshots; one JSON line.

Data: ``benchmarks/electrons_se3_hydrogen_data.py OUTDIR`` (16-H boxes, PySCF LDA). Both
models train on the ``train_*`` snapshots (solid, 0.6/0.7 g/cm³, 300/600 K) and are
evaluated on ``interp_*`` (0.65 g/cm³, 450 K) and ``extrap_*`` (0.85 g/cm³; 1200 K; liquid)
through :func:`~matterflow.electrons.predict.predict_observables` (the ``electrons predict``
path). Per snapshot: density NMAE (mean |Δn| / mean n, %), the MRAE of ``electrons
evaluate``, band and total energy error (meV/atom), for se3, the MLP and a
sum-of-atomic-densities baseline (hydrogenic 1s densities of every atom, periodic images,
scaled to the cell's electron count; density only).

The floor column is the density integrated from each snapshot's *true* LDOS through the
same pipeline (what any LDOS model could reach at best). ``--density-head`` trains the se3
density head (a residual over the listed neighbours' atomic densities, used by ``predict``);
``--k``/``--cutoff`` set its neighbour lists.

Usage: python benchmarks/electrons_se3_extrapolation.py DATADIR [SE3_EPOCHS] [POINTS_PER_EPOCH]
       [--density-head] [--k 8] [--cutoff 2.5] [--lr 3e-3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from matterflow.electrons.descriptors import BispectrumParams
from matterflow.electrons.equivariant import NeighbourParams, Se3LdosModel
from matterflow.electrons.hydrogen import atomic_density_sum
from matterflow.electrons.ml_tasks import prediction_errors, snapshot_dataset
from matterflow.electrons.model import FeedForwardLdosModel
from matterflow.electrons.observables import observables_from_ldos
from matterflow.electrons.predict import predict_observables
from matterflow.electrons.training import TrainParams


def nmae(rho: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean(np.abs(rho - ref)) / np.mean(ref) * 100)


def main(data: Path, se3_epochs: int = 40, points_per_epoch: int = 8000, density_head: bool = False,
         k: int = 8, cutoff: float = 2.5, lr: float = 3e-3) -> None:
    train = sorted(data.glob("train_*.h5"))
    tests = sorted(data.glob("interp_*.h5")) + sorted(data.glob("extrap_*.h5"))
    models, seconds = {}, {}
    t0 = time.perf_counter()
    d = snapshot_dataset(train, "neighbours", NeighbourParams(cutoff=cutoff, max_neighbours=k))
    m = Se3LdosModel(n_scalars=16, hidden_irreps="16x0e+8x1o+4x2e", epochs=se3_epochs, batch_size=128,
                     learning_rate=lr, points_per_epoch=points_per_epoch, setup=d.setup,
                     density_head=density_head)
    rho = np.concatenate([np.asarray(s.density).reshape(-1) for s in d.snapshots]) if density_head else None
    models["se3"] = m.fit(np.concatenate(d.x), np.concatenate(d.y), density=rho)
    seconds["se3"] = time.perf_counter() - t0
    print(f"se3 trained in {seconds['se3']:.0f} s", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    bp = BispectrumParams(twojmax=6, rcutfac=1.5, radius={"H": 0.5}, weight={"H": 1.0})  # 1.5 Å: best of 1.5/2/3
    d = snapshot_dataset(train, "bispectrum", bp)
    f = FeedForwardLdosModel((128, 128), "leaky_relu", setup=d.setup, refit_output=True,
                             train=TrainParams(max_epochs=60, learning_rate=1e-3, batch_size=128,
                                               patience=10))
    models["mlp"] = f.fit(np.concatenate(d.x), np.concatenate(d.y))
    seconds["mlp"] = time.perf_counter() - t0
    snaps = {p: snap for p, snap in zip(tests, snapshot_dataset(tests, "neighbours",
                                                                  NeighbourParams(max_neighbours=1)).snapshots,
                                        strict=True)}
    rows = []
    for p, snap in snaps.items():
        row = {"snapshot": p.name, "split": p.name.split("_")[0], "n_atoms": len(snap.atoms)}
        ref = np.asarray(snap.density)
        row["sad_density_nmae_percent"] = nmae(atomic_density_sum(snap.atoms, snap.grid_shape,
                                                                  float(snap.n_electrons)), ref)
        true = observables_from_ldos(snap.ldos, snap.energy_grid_ev, snap.atoms,
                                     temperature_k=snap.electronic_temperature_k,
                                     ldos_smearing_ev=snap.ldos_smearing_ev)
        row["floor_true_ldos_density_nmae_percent"] = round(nmae(np.asarray(true.density), ref), 4)
        for name, model in models.items():
            t1 = time.perf_counter()
            pred = predict_observables(model, snap.atoms, grid_shape=tuple(snap.grid_shape), scheduler=None)
            err = prediction_errors(pred, snap)
            row[name] = {"density_nmae_percent": round(nmae(np.asarray(pred.density), ref), 3),
                         "density_mrae_percent": round(err["density_mrae_percent"], 3),
                         "band_mev_per_atom": round(err["band_energy_mev_per_atom"], 2),
                         "total_mev_per_atom": round(err["total_energy_mev_per_atom"], 2),
                         "fermi_mev": round(err["fermi_mev"], 1),
                         "predict_seconds": round(time.perf_counter() - t1, 1)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"figure": "hydrogen extrapolation table, se3 vs bispectrum MLP (same training snapshots)",
                      "train": [p.name for p in train], "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
                      "se3": {"epochs": se3_epochs, "points_per_epoch": points_per_epoch,
                              "density_head": density_head, "k": k, "cutoff": cutoff, "lr": lr,
                              "best_epoch": models["se3"].history_.best_epoch + 1,
                              "best_val_mse": models["se3"].history_.best_val_loss},
                      "mlp": {"epochs_run": models["mlp"].history_.epochs_run,
                              "best_val_mse": models["mlp"].history_.best_val_loss},
                      "rows": rows}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path, nargs="?", default=Path("se3-data"))
    ap.add_argument("epochs", type=int, nargs="?", default=40)
    ap.add_argument("points", type=int, nargs="?", default=8000)
    ap.add_argument("--density-head", action="store_true")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--cutoff", type=float, default=2.5)
    ap.add_argument("--lr", type=float, default=3e-3)
    a = ap.parse_args()
    main(a.data, a.epochs, a.points, a.density_head, a.k, a.cutoff, a.lr)
