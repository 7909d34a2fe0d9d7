"""Cold Wu–Yang vs FNO-started Wu–Yang refinement, per sample, in one run.

``--model`` (fno.pt) and ``--data`` (the ``.npz`` cache of ``benchmarks/dft1d_families.py``
for ``--spin``, made if missing, or a ``dataset.h5``): the test densities
are inverted to ``--tol`` (max |n_KS - n|, default 1e-6 /bohr) twice each, interleaved:

- cold: :func:`matterflow.dft1d.inversion.invert_density` with ``guess="reference"`` (the
  Fermi–Amaldi reference, the general Wu–Yang path; for triplet pairs this is also the
  default path);
- FNO-started: :func:`matterflow.dft1d.refine.refine_inversion` (the batched FNO prediction,
  its time shared out per sample, then chord Newton from it);
- control: the same chord kernel started from the cold reference (what the start buys).

For singlet pairs the default path (closed-form one-orbital start) is timed too, for context.
Reported: Newton iterations (median, max), seconds per sample (median, mean), the ratio of the
medians, the final max density error (max over samples; both must be <= tol), the share
converged, and the FNO start's own error (its density residual, and whether the reliability flag
fired). Without ``--model`` a short FNO is trained in-process (indicative only).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dft1d_refine.py --model M --data D [--n 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _load(path: str, spin: str, n_per_family: int) -> dict:
    if path.endswith(".h5"):
        from matterflow.dft1d.datasets import load_dataset

        ds = load_dataset(path)
        return {"x": ds.x, "v_ext": ds.v_ext, "density": ds.density, "v_hxc": ds.v_hxc,
                "family": np.array(ds.family), "split": np.array(ds.split),
                "spin": ds.attrs.get("spin", "singlet")}
    from dft1d_families import family_data

    return family_data(spin, n_per_family, cache=path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    from dft1d_families import DEFAULT_CACHE

    ap.add_argument("--data", default=None, help="default: the family cache for --spin")
    ap.add_argument("--spin", default="triplet", help="for --data made here")
    ap.add_argument("--n-per-family", type=int, default=250)
    ap.add_argument("--n", type=int, default=400, help="test densities (at most the test split)")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--epochs", type=int, default=10, help="in-process training if no --model")
    a = ap.parse_args()
    import torch

    from matterflow.dft1d.fno import DensityToPotentialFNO
    from matterflow.dft1d.inversion import invert_density
    from matterflow.dft1d.refine import fno_reliability, refine_inversion

    torch.set_num_threads(1)
    z = _load(a.data or str(Path(DEFAULT_CACHE) / f"fam_{a.spin}.npz"), a.spin, a.n_per_family)
    spin = str(z["spin"])
    occ = "polarised" if spin == "triplet" else "unpolarised"
    split = np.asarray(z["split"]).astype(str)
    te = np.flatnonzero(split == "test")
    te = te[np.random.default_rng(0).permutation(len(te))[: a.n]]  # every family
    if a.model:
        model = DensityToPotentialFNO.load(a.model)
    else:
        tr = np.flatnonzero(split == "train")
        model = DensityToPotentialFNO(epochs=a.epochs, n_modes=16, hidden_channels=16, batch_size=64,
                                      density_weight=1.0, physics_loss="wu_yang", exact_hx=True,
                                      symmetrise=True, spin=occ).fit(
            z["density"][tr], z["v_hxc"][tr], v_ext=z["v_ext"][tr], x=z["x"])
    x, dens, vext = z["x"], z["density"][te], z["v_ext"][te]
    kw = {"n_electrons": 2, "spin": occ, "tol": a.tol, "max_iter": 200}
    refine_inversion(model, dens[:4], vext[:4], x, tol=a.tol)  # warm-up
    t0 = time.perf_counter()
    res = refine_inversion(model, dens, vext, x, tol=a.tol, spin=occ, compare_cold=True,
                           on_failure="warn")
    wall = time.perf_counter() - t0
    rel = fno_reliability(model, dens, vext, x, threshold=0.02, spin=occ)
    auto = None
    if occ == "unpolarised":
        t1 = time.perf_counter()
        auto_it = [invert_density(dens[i], vext[i], x, **kw).n_iterations for i in range(len(te))]
        auto = {"seconds_per_sample_mean": (time.perf_counter() - t1) / len(te),
                "n_iterations_median": float(np.median(auto_it))}
    fam = np.asarray(z["family"]).astype(str)[te]
    out = {
        "benchmark": "dft1d_refine", "spin": spin, "n_samples": int(len(te)), "tol": a.tol,
        "model": a.model or f"in-process, {a.epochs} epochs",
        "cold": {"n_iterations_median": float(np.median(res.cold_n_iterations)),
                 "n_iterations_max": int(res.cold_n_iterations.max()),
                 "seconds_per_sample_median": float(np.median(res.cold_seconds)),
                 "seconds_per_sample_mean": float(res.cold_seconds.mean()),
                 "cpu_seconds_per_sample_median": float(np.median(res.cold_cpu_seconds)),
                 "max_density_error_max": float(res.cold_max_density_error.max()),
                 "converged_fraction": float(np.mean(res.cold_max_density_error <= a.tol))},
        "fno_refine": {"n_iterations_median": float(np.median(res.n_iterations)),
                       "n_iterations_max": int(res.n_iterations.max()),
                       "seconds_per_sample_median": float(np.median(res.seconds)),
                       "seconds_per_sample_mean": float(res.seconds.mean()),
                       "cpu_seconds_per_sample_median": float(np.median(res.cpu_seconds)),
                       "max_density_error_max": float(res.max_density_error.max()),
                       "converged_fraction": float(res.converged.mean())},
        "control_same_kernel_from_reference": {
            "n_iterations_median": float(np.median(res.kernel_cold_n_iterations)),
            "cpu_seconds_per_sample_median": float(np.median(res.kernel_cold_cpu_seconds)),
            "converged_fraction": float(np.mean(np.nan_to_num(res.kernel_cold_max_density_error, nan=1.0) <= a.tol)),
            "cpu_time_ratio_over_refine_median": float(np.median(res.kernel_cold_cpu_seconds)
                                                       / np.median(res.cpu_seconds))},
        "n_fallbacks": res.n_fallbacks,
        "n_hessians_median": float(np.median(res.n_hessians)),
        "time_ratio_cold_over_refine_median": res.speedup,
        "cpu_time_ratio_cold_over_refine_median": res.cpu_speedup,
        "iterations_saved_median": float(np.median(res.cold_n_iterations - res.n_iterations)),
        "fno_start": {"density_residual_mean": float(rel.density_residual.mean()),
                      "density_residual_median": float(np.median(rel.density_residual)),
                      "start_max_density_error_median": float(np.median(res.start_max_density_error)),
                      "flagged_fraction": float(rel.flagged.mean()),
                      "fno_seconds_per_sample": rel.fno_seconds_per_sample},
        "singlet_default_path": auto,
        "per_family_ratio": {f: float(np.median(res.cold_seconds[fam == f]) / np.median(res.seconds[fam == f]))
                             for f in sorted(set(fam))},
        "wall_seconds": round(wall, 2),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
