"""Parametric TDSE PINN against the Crank–Nicolson propagator: accuracy, cost, break-even.

In one run (atomic units; harmonic well ω₀ = 1 driven by E₀ sin(t), t ∈ [0, 2],
box [-5, 5], E₀ ∈ [0, 1]):

1. train one :class:`~matterflow.dft1d.pinn.TDSEPINN` with its default
   settings (1000 Adam + 60 L-BFGS iterations), timed;
2. at ``N_EVAL`` amplitudes across the range, the density on the 81 × 256
   space-time grid from the PINN and from Crank–Nicolson (256 points, 400
   steps), each timed (fastest of 3); the relative L2 density error of the
   PINN, and of the field-free guess ρ(x,t) = ρ₀(x) as a baseline;
3. the break-even number of new E₀ queries,
   ``n* = train / (t_reference − t_PINN)``, or ``null`` ("never") when one PINN
   query is not cheaper than one reference run;
4. the same for a query that needs the density at the final time only
   (256 values): the PINN evaluates just those points, the propagator still
   has to take all 400 steps;
5. a coarser Crank–Nicolson run that is still at least as accurate as the
   PINN (the cheapest of a few grids whose density error against the fine
   reference, interpolated onto it, is ≤ the PINN's worst error), timed,
   and the break-even count against it.

Prints one JSON line. ``--threads N`` sets torch's threads (default 1);
``--adam-steps``/``--lbfgs-steps`` shorten the run; ``--electrons 2`` does the
two-electron (singlet, TDKS with exact exchange) problem.
"""

import argparse
import json
import platform
import time

import numpy as np
import torch

from matterflow.dft1d.pinn import TDSEPINN, break_even_queries, compare_with_reference
from matterflow.dft1d.tdse import propagate

N_EVAL = 6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--adam-steps", type=int, default=1000)
    ap.add_argument("--lbfgs-steps", type=int, default=60)
    ap.add_argument("--electrons", type=int, default=1, choices=(1, 2),
                    help="2: singlet pair in time-dependent Kohn-Sham with exact exchange")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = TDSEPINN(adam_steps=args.adam_steps, lbfgs_steps=args.lbfgs_steps,
                     n_threads=args.threads, n_electrons=args.electrons).fit()
    e0s = np.linspace(model.e0_min, model.e0_max, N_EVAL)
    rows = [compare_with_reference(model, e0, repeats=3) for e0 in e0s]
    errors = [r["density_error"] for r in rows]
    t_pinn = float(np.mean([r["inference_time_s"] for r in rows]))
    t_ref = float(np.mean([r["reference_time_s"] for r in rows]))
    n_star = break_even_queries(model.fit_time_s_, t_pinn, t_ref)
    worst = int(np.argmax(errors))
    # final-time-only queries: fastest of 3 per amplitude
    fin_pinn, fin_ref = [], []
    for e0 in e0s:
        for _ in range(3):
            start = time.perf_counter()
            ref = propagate(model.setup, e0, n_x=256, n_steps=400, n_saved=2)
            fin_ref.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.predict_density(ref.x, ref.t[-1:], e0)
            fin_pinn.append(time.perf_counter() - start)
    f_pinn = float(np.mean(sorted(fin_pinn)[: len(e0s)]))
    f_ref = float(np.mean(sorted(fin_ref)[: len(e0s)]))
    n_star_final = break_even_queries(model.fit_time_s_, f_pinn, f_ref)
    # the cheapest coarse reference at least as accurate as the PINN (at the worst E0)
    fine = propagate(model.setup, e0s[worst], n_x=256, n_steps=400, n_saved=81)
    matched = None
    for n_x, n_steps in ((32, 40), (48, 40), (64, 40), (64, 80), (96, 80), (128, 160)):
        coarse = propagate(model.setup, e0s[worst], n_x=n_x, n_steps=n_steps, n_saved=41)
        rho = np.array([np.interp(fine.x, coarse.x, r) for r in coarse.density])
        err = float(np.linalg.norm(rho - fine.density[::2]) / np.linalg.norm(fine.density[::2]))
        if err <= errors[worst]:
            times = []
            for e0 in e0s:
                best = np.inf
                for _ in range(3):
                    start = time.perf_counter()
                    propagate(model.setup, e0, n_x=n_x, n_steps=n_steps, n_saved=41)
                    best = min(best, time.perf_counter() - start)
                times.append(best)
            t_c = float(np.mean(times))
            n_c = break_even_queries(model.fit_time_s_, f_pinn, t_c)
            matched = {"n_x": n_x, "n_steps": n_steps, "density_rel_l2": round(err, 5),
                       "query_s": round(t_c, 6),
                       "break_even_queries_final_time_only":
                           None if not np.isfinite(n_c) else int(n_c)}
            break
    print(json.dumps({
        "benchmark": "dft1d_pinn",
        "problem": "harmonic well w0=1, field E0 sin(t), t in [0,2], x in [-5,5], E0 in [0,1]",
        "electrons": args.electrons,
        "output_grid": "81 times x 256 points",
        "reference": "Crank-Nicolson, 256 points, 400 steps",
        "threads": args.threads, "machine": platform.processor() or platform.machine(),
        "adam_steps": args.adam_steps, "lbfgs_steps": args.lbfgs_steps,
        "train_time_s": round(model.fit_time_s_, 2),
        "pinn_query_s": round(t_pinn, 5), "reference_query_s": round(t_ref, 5),
        "query_speedup_pinn_over_reference": round(t_ref / t_pinn, 3),
        "break_even_queries": None if not np.isfinite(n_star) else int(n_star),
        "breaks_even": bool(np.isfinite(n_star)),
        "final_time_only": {"pinn_query_s": round(f_pinn, 6), "reference_query_s": round(f_ref, 5),
                            "query_speedup_pinn_over_reference": round(f_ref / f_pinn, 2),
                            "break_even_queries": None if not np.isfinite(n_star_final)
                            else int(n_star_final)},
        "reference_at_pinn_accuracy": matched,
        "e0": [round(float(e), 3) for e in e0s],
        "density_rel_l2": [round(float(e), 5) for e in errors],
        "static_guess_rel_l2": [round(float(r["static_error"]), 4) for r in rows],
        "worst_density_rel_l2": round(float(errors[worst]), 5),
        "worst_e0": round(float(e0s[worst]), 3),
        "final_residual": float(model.loss_history_[-1]),
    }))


if __name__ == "__main__":
    main()
