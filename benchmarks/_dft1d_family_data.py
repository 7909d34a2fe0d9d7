"""Exact two-electron data per potential family for the dft1d family benchmarks (in-process).

``family_data(spin, n_per_family, seed, cache)`` samples ``n_per_family`` potentials of every
family of :data:`matterflow.dft1d.potentials.FAMILIES` (64 points on 20 bohr), solves the two
electrons exactly (singlet or triplet) and inverts each density to its KS potential
(tolerance 1e-8 /bohr); arrays are cached in ``cache`` (.npz) so that reruns reuse them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def family_data(spin: str, n_per_family: int, seed: int = 0, cache: str | None = None) -> dict:
    from matterflow.dft1d.exact import solve_two_electrons
    from matterflow.dft1d.grid import make_grid
    from matterflow.dft1d.inversion import invert_density
    from matterflow.dft1d.potentials import FAMILIES, sample_potentials

    if cache and Path(cache).is_file():
        z = np.load(cache)
        if int(z["n_per_family"]) == n_per_family and int(z["seed"]) == seed and str(z["spin"]) == spin:
            return {k: z[k] for k in z.files}
    g = make_grid(64, 20.0)
    fams = list(FAMILIES)
    v, fam = sample_potentials(fams, n_per_family * len(fams), g.x, seed=seed)
    occ = "polarised" if spin == "triplet" else "unpolarised"
    dens, vhxc, err = [], [], []
    for vi in v:
        n = solve_two_electrons(vi, g.x, spin=spin).density
        r = invert_density(n, vi, g.x, n_electrons=2, spin=occ, tol=1e-8, max_iter=300,
                           on_failure="warn")
        dens.append(n)
        vhxc.append(r.v_hxc)
        err.append(r.max_density_error)
    rng = np.random.default_rng(seed + 1)
    split = np.where(rng.random(len(v)) < 0.2, "test", "train")
    out = {"x": g.x, "v_ext": v, "density": np.array(dens), "v_hxc": np.array(vhxc),
           "max_density_error": np.array(err), "family": np.array(fam), "split": split,
           "n_per_family": np.array(n_per_family), "seed": np.array(seed), "spin": np.array(spin)}
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **out)
    return out


if __name__ == "__main__":
    import sys
    import time

    t0 = time.perf_counter()
    d = family_data(sys.argv[1], int(sys.argv[2]), cache=sys.argv[3])
    print(sys.argv[1], len(d["family"]), f"{time.perf_counter() - t0:.0f} s",
          f"max inversion error {d['max_density_error'].max():.2g}")
