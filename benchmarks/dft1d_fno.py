"""FNO inference vs numerical KS inversion, per sample, in one run.

Uses ``--dataset`` (dataset.h5 from ``matterflow dft1d generate``) and ``--model``
(fno.pt from ``matterflow dft1d train-fno``) if given; otherwise makes a small dataset
in-process and trains a short FNO (accuracy then is only indicative).

Measured in the same process, on the same test densities:

- batched FNO inference (8192 test densities, repeated, ``--batch-size`` per call (best of two passes),
  float32, ``torch.inference_mode``): the fast dense-product path (default of
  ``predict``) and the neuraloperator module itself;
- the numerical inversion :func:`matterflow.dft1d.inversion.invert_density`
  (default tolerance 1e-7 /bohr), both its default path (closed-form one-orbital
  potential for singlet pairs, then one dense diagonalisation that checks the density)
  and the general Wu–Yang Newton path (``guess="reference"``, as for triplets or N > 2).
  Each is timed twice: with the BLAS thread pool as the process has it (OpenBLAS
  default: one thread per core) and limited to ``--threads`` (same as torch). On a
  64-point grid the multi-threaded OpenBLAS eigensolver is several times slower than
  the single-threaded one (thread start-up, and contention on a shared machine);
- for context, the singlet closed form alone, batched (``v = -(T sqrt(n/2))/sqrt(n/2)``
  for all densities in one matrix product), without the checking diagonalisation.

Prints one JSON line with all times, the ratios, and the FNO's errors on the test split.

    .venv/bin/python benchmarks/dft1d_fno.py [--dataset D --model M] [--n-invert 50]
        [--threads 1] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _time_inversions(invert, dens, vext, x, idx, **kw) -> tuple[float, float]:
    t0 = time.perf_counter()
    errs = [invert(dens[i], vext[i], x, n_electrons=2, **kw).max_density_error for i in idx]
    return (time.perf_counter() - t0) / len(idx), float(max(errs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset")
    ap.add_argument("--model")
    ap.add_argument("--n-samples", type=int, default=300, help="in-process dataset size")
    ap.add_argument("--epochs", type=int, default=10, help="short training if no --model")
    ap.add_argument("--n-invert", type=int, default=50, help="test densities inverted numerically")
    ap.add_argument("--threads", type=int, default=1, help="torch threads and limited BLAS threads")
    ap.add_argument("--batch-size", type=int, default=256, help="FNO samples per call")
    a = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from matterflow.dft1d.fno import DensityToPotentialFNO, evaluate_fno
    from matterflow.dft1d.grid import as_grid, kinetic_matrix
    from matterflow.dft1d.inversion import invert_density

    torch.set_num_threads(a.threads)
    if a.dataset:
        from matterflow.dft1d.datasets import load_dataset

        ds = load_dataset(a.dataset)
        x, dens, vext, vhxc = ds.x, ds.density, ds.v_ext, ds.v_hxc
        split = np.array(ds.split)
        occ = "polarised" if ds.attrs.get("spin") == "triplet" else "unpolarised"
    else:
        from matterflow.dft1d.inversion_tasks import exact_invert, potentials

        p = potentials(params={"n_samples": a.n_samples, "seed": 5})
        rs = [exact_invert(v, p.x) for v in p.v_ext]
        x, vext = p.x, p.v_ext
        dens = np.stack([r.density for r in rs])
        vhxc = np.stack([r.v_hxc for r in rs])
        split = np.array(p.split)
        occ = "unpolarised"
    te = np.flatnonzero(split == "test")
    if a.model:
        model = DensityToPotentialFNO.load(a.model)
        model.threads = a.threads
    else:
        tr = np.flatnonzero(split == "train")
        model = DensityToPotentialFNO(epochs=a.epochs, threads=a.threads).fit(dens[tr], vhxc[tr])
    batch = np.tile(dens[te], (int(np.ceil(8192 / len(te))), 1))[:8192]
    fno = {}
    for name, fast in (("fast", True), ("library", False)):
        model.predict(batch[:a.batch_size], batch_size=a.batch_size, fast=fast)  # warm-up
        best = np.inf
        for _ in range(2):
            t0 = time.perf_counter()
            model.predict(batch, batch_size=a.batch_size, fast=fast)
            best = min(best, (time.perf_counter() - t0) / len(batch))
        fno[name] = best
    t_fno = fno["fast"]
    k = min(a.n_invert, len(te))
    idx = te[:k]
    blas_default = sorted({d["num_threads"] for d in threadpool_info()})
    # blas_threads=None: the process's BLAS setting (what invert_density did before it
    # limited itself to one thread); then limited to --threads, like torch
    t_inv_def, err_def = _time_inversions(invert_density, dens, vext, x, idx, spin=occ, blas_threads=None)
    t_wy_def, _ = _time_inversions(invert_density, dens, vext, x, idx, spin=occ, guess="reference",
                                   blas_threads=None)
    with threadpool_limits(a.threads):
        t_inv, err_inv = _time_inversions(invert_density, dens, vext, x, idx, spin=occ,
                                          blas_threads=a.threads)
        t_wy, err_wy = _time_inversions(invert_density, dens, vext, x, idx, spin=occ, guess="reference",
                                        blas_threads=a.threads)
        kin = kinetic_matrix(as_grid(x), 5).toarray()
        with np.errstate(all="ignore"):
            t0 = time.perf_counter()
            phi = np.sqrt(np.clip(batch, 1e-300, None) / 2.0)
            v_closed = -(phi @ kin.T) / phi  # one orbital: -(T phi)/phi (gauge free)
            t_closed = (time.perf_counter() - t0) / len(batch)
    assert np.isfinite(v_closed).any()
    ev = evaluate_fno(model, x, dens[te], vext[te], vhxc[te], spin=occ)
    print(json.dumps({
        "benchmark": "dft1d_fno", "occupations": occ, "n_test": int(len(te)), "grid_points": int(len(x)),
        "torch_threads": a.threads, "batch_size": a.batch_size,
        "fno_seconds_per_sample": t_fno, "fno_library_path_seconds_per_sample": fno["library"],
        "inversion_seconds_per_sample": t_inv,
        "speedup_fno_vs_inversion": t_inv / t_fno,
        "wu_yang_reference_start_seconds_per_sample": t_wy,
        "speedup_fno_vs_wu_yang_reference_start": t_wy / t_fno,
        "blas_threads_default": blas_default, "blas_threads_limited": a.threads,
        "inversion_default_blas_seconds_per_sample": t_inv_def,
        "speedup_fno_vs_inversion_default_blas": t_inv_def / t_fno,
        "wu_yang_default_blas_seconds_per_sample": t_wy_def,
        "speedup_fno_vs_wu_yang_default_blas": t_wy_def / t_fno,
        "closed_form_only_batched_seconds_per_sample": t_closed,
        "n_inverted": k,
        "inversion_max_density_error": max(err_def, err_inv),
        "wu_yang_max_density_error": err_wy,
        "fno_potential_rel_l2_mean": float(ev.potential_rel_l2.mean()),
        "fno_density_rel_l1_mean": float(ev.density_rel_l1.mean()),
        "fno_density_rel_l1_median": float(np.median(ev.density_rel_l1)),
        "model": a.model or f"trained here, {a.epochs} epochs",
        "n_parameters": int(sum(p.numel() for p in model.model_.parameters()))}))


if __name__ == "__main__":
    main()
