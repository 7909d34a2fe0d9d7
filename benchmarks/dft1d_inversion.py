"""KS inversion, ours (regularised Wu–Yang/Newton) vs iDEA's reverse engineering, same densities.

Exact two-electron singlet densities of potentials from each family (64 points, 20 bohr,
5-point stencil in both codes) are inverted by both codes; for each we measure the wall
time and the max |n_KS - n_exact| that the returned potential gives (recomputed here with
the same non-interacting solver for both). iDEA runs to its own L1 tolerance
(``--idea-tol``) or a time cap per case. Prints one JSON line.

    .venv/bin/python benchmarks/dft1d_inversion.py [--n-cases 4] [--idea-tol 1e-6] [--cap 120]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal
import time

import numpy as np


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-cases", type=int, default=4)
    ap.add_argument("--idea-tol", type=float, default=1e-6, help="iDEA: ∫|n - n_target| dx")
    ap.add_argument("--cap", type=float, default=120.0, help="seconds per iDEA inversion")
    a = ap.parse_args()

    import iDEA
    from iDEA.methods import non_interacting

    from matterflow.dft1d.exact import occupations_for, solve_noninteracting, solve_two_electrons
    from matterflow.dft1d.grid import make_grid
    from matterflow.dft1d.inversion import invert_density
    from matterflow.dft1d.potentials import FAMILIES, sample_potentials

    g = make_grid(64, 20.0)
    vs, fams = sample_potentials(list(FAMILIES), a.n_cases, g.x, seed=11)
    occ = occupations_for(2)
    w = 1.0 / np.sqrt((g.x[:, None] - g.x[None, :]) ** 2 + 1.0)
    rows = []
    for v, fam in zip(vs, fams, strict=True):
        n = solve_two_electrons(v, g.x).density
        t0 = time.perf_counter()
        ours = invert_density(n, v, g.x, n_electrons=2)
        t_ours = time.perf_counter() - t0
        err_ours = np.abs(solve_noninteracting(ours.v_ks, g.x, occ).density - n).max()
        s = iDEA.system.System(g.x, v.copy(), w, electrons="ud", stencil=5)
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, a.cap)
        t0 = time.perf_counter()
        capped = False
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                s_ks = iDEA.reverse_engineering.reverse(s, n, non_interacting, tol=a.idea_tol,
                                                        silent=True)
            v_idea = s_ks.v_ext
        except _Timeout:
            capped, v_idea = True, None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        t_idea = time.perf_counter() - t0
        err_idea = (float(np.abs(solve_noninteracting(v_idea, g.x, occ).density - n).max())
                    if v_idea is not None else float("nan"))
        rows.append({"family": fam, "ours_s": t_ours, "ours_max_err": float(err_ours),
                     "idea_s": t_idea, "idea_max_err": err_idea, "idea_capped": capped})
    t_o = float(np.mean([r["ours_s"] for r in rows]))
    t_i = float(np.mean([r["idea_s"] for r in rows]))
    print(json.dumps({
        "benchmark": "dft1d_inversion", "n_cases": len(rows), "grid_points": g.n_points,
        "ours_seconds_per_case": t_o, "idea_seconds_per_case": t_i,
        "speedup_vs_idea": t_i / t_o,
        "ours_max_density_error": max(r["ours_max_err"] for r in rows),
        "idea_max_density_error": float(np.nanmax([r["idea_max_err"] for r in rows]))
        if any(not r["idea_capped"] for r in rows) else None,
        "idea_tol_l1": a.idea_tol, "idea_cap_s": a.cap,
        "idea_capped_cases": sum(r["idea_capped"] for r in rows), "cases": rows}))


if __name__ == "__main__":
    main()
