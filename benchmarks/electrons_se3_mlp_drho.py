"""Control for the se3 pilots: the bispectrum MLP predicting Δρ = ρ − ρ_SAD directly; one JSON line.

Same cached hydrogen snapshots (``benchmarks/electrons_se3_hydrogen_data.py DATADIR``), trained on
``train_*``, density NMAE (%) on ``interp_*`` and the training relative RMSE (RMSE / std of Δρ),
for bispectrum cut-offs 1.5 and 2.5 Å (2J = 6, 128×128, 60 epochs). If a different descriptor
and network stop at the same test error as se3, the limit is the data, not the architecture.

Usage: python benchmarks/electrons_se3_mlp_drho.py DATADIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from matterflow.electrons.descriptors import BispectrumParams
from matterflow.electrons.hydrogen import atomic_density_sum
from matterflow.electrons.ml_tasks import snapshot_dataset
from matterflow.electrons.model import FeedForwardLdosModel
from matterflow.electrons.training import TrainParams


def _sad(s) -> np.ndarray:
    return atomic_density_sum(s.atoms, tuple(s.grid_shape), float(s.n_electrons)).reshape(-1)


def main(data: Path) -> None:
    train, tests = sorted(data.glob("train_*.h5")), sorted(data.glob("interp_*.h5"))
    rows = []
    for rc in (1.5, 2.5):
        bp = BispectrumParams(twojmax=6, rcutfac=rc, radius={"H": 0.5}, weight={"H": 1.0})
        d, dt = snapshot_dataset(train, "bispectrum", bp), snapshot_dataset(tests, "bispectrum", bp)
        y = np.concatenate([np.asarray(s.density).reshape(-1) - _sad(s) for s in d.snapshots])[:, None]
        t0 = time.perf_counter()
        f = FeedForwardLdosModel((128, 128), "leaky_relu", output_scaling="standard",
                                 train=TrainParams(max_epochs=60, learning_rate=1e-3, batch_size=128,
                                                   patience=10)).fit(np.concatenate(d.x), y)
        nmae = []
        for x, s in zip(dt.x, dt.snapshots, strict=True):
            ref = np.asarray(s.density).reshape(-1)
            nmae.append(round(float(100 * np.abs(f.predict(x)[:, 0] + _sad(s) - ref).mean() / ref.mean()), 2))
        fit = f.predict(np.concatenate(d.x))[:, 0]
        rows.append({"rcutfac_ang": rc, "test_density_nmae_percent": nmae,
                     "train_rel_rmse": round(float(np.sqrt(np.mean((fit - y[:, 0]) ** 2)) / y.std()), 3),
                     "train_seconds": round(time.perf_counter() - t0, 1)})
    print(json.dumps({"figure": "bispectrum MLP predicting the density residual over SAD",
                      "tests": [p.name for p in tests], "rows": rows}))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("se3-data"))
