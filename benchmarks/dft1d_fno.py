"""FNO inference vs numerical KS inversion, per sample, in one run.

Uses ``--dataset`` (dataset.h5 from ``matterflow dft1d generate``) and ``--model``
(fno.pt from ``matterflow dft1d train-fno``) if given; otherwise makes a small dataset
in-process and trains a short FNO (accuracy then is only indicative). Times batched FNO
inference (8192 test densities, repeated, batches of 1024) and the numerical
inversion of the same densities, and
prints one JSON line with both, their ratio and the FNO's errors on those samples.

    .venv/bin/python benchmarks/dft1d_fno.py [--dataset D --model M] [--n-invert 50]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset")
    ap.add_argument("--model")
    ap.add_argument("--n-samples", type=int, default=300, help="in-process dataset size")
    ap.add_argument("--epochs", type=int, default=10, help="short training if no --model")
    ap.add_argument("--n-invert", type=int, default=50, help="test densities inverted numerically")
    a = ap.parse_args()

    import torch

    from matterflow.dft1d.fno import DensityToPotentialFNO, evaluate_fno
    from matterflow.dft1d.inversion import invert_density

    torch.set_num_threads(1)
    if a.dataset:
        from matterflow.dft1d.datasets import load_dataset

        ds = load_dataset(a.dataset)
        x, dens, vext, vhxc = ds.x, ds.density, ds.v_ext, ds.v_hxc
        split = np.array(ds.split)
    else:
        from matterflow.dft1d.inversion_tasks import exact_invert, potentials

        p = potentials(params={"n_samples": a.n_samples, "seed": 5})
        rs = [exact_invert(v, p.x) for v in p.v_ext]
        x, vext = p.x, p.v_ext
        dens = np.stack([r.density for r in rs])
        vhxc = np.stack([r.v_hxc for r in rs])
        split = np.array(p.split)
    te = np.flatnonzero(split == "test")
    if a.model:
        model = DensityToPotentialFNO.load(a.model)
    else:
        tr = np.flatnonzero(split == "train")
        model = DensityToPotentialFNO(epochs=a.epochs).fit(dens[tr], vhxc[tr])
    model.predict(dens[te][:2])  # warm-up
    batch = np.tile(dens[te], (int(np.ceil(8192 / len(te))), 1))[:8192]
    t0 = time.perf_counter()
    model.predict(batch, batch_size=1024)
    t_fno = (time.perf_counter() - t0) / len(batch)
    k = min(a.n_invert, len(te))
    t0 = time.perf_counter()
    errs = [invert_density(dens[i], vext[i], x, n_electrons=2).max_density_error for i in te[:k]]
    t_inv = (time.perf_counter() - t0) / k
    # the general Wu-Yang/Newton path (started from the Fermi-Amaldi reference, as for
    # triplets or N > 2), without the exact one-orbital start that singlet pairs allow
    t0 = time.perf_counter()
    for i in te[:k]:
        invert_density(dens[i], vext[i], x, n_electrons=2, guess="reference")
    t_wy = (time.perf_counter() - t0) / k
    ev = evaluate_fno(model, x, dens[te], vext[te], vhxc[te])
    print(json.dumps({
        "benchmark": "dft1d_fno", "n_test": int(len(te)), "grid_points": int(len(x)),
        "fno_seconds_per_sample": t_fno, "inversion_seconds_per_sample": t_inv,
        "speedup_fno_vs_inversion": t_inv / t_fno, "n_inverted": k,
        "wu_yang_reference_start_seconds_per_sample": t_wy,
        "speedup_fno_vs_wu_yang_reference_start": t_wy / t_fno,
        "inversion_max_density_error": float(max(errs)),
        "fno_potential_rel_l2_mean": float(ev.potential_rel_l2.mean()),
        "fno_density_rel_l1_mean": float(ev.density_rel_l1.mean()),
        "fno_density_rel_l1_median": float(np.median(ev.density_rel_l1)),
        "model": a.model or f"trained here, {a.epochs} epochs", "torch_threads": 1}))


if __name__ == "__main__":
    main()
