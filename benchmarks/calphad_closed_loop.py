"""Closed loop on synthetic Cu-Mg truth: entropy-proposed vs random experiments.

Prints one JSON line: per strategy, the mean over seeds of the 95 % interval width of the
invariant temperatures, their error against the truth, and the phase-set error, after each
iteration; and the ratio proposed/random of the final interval width and error.
Settings (short MCMC) are printed with it. About 5-10 minutes on 2 loaded cores.

    python benchmarks/calphad_closed_loop.py [--seeds 3] [--iterations 5] [--system Fe-C]
"""
import argparse
import json
import time
import warnings

import numpy as np

from matterflow.calphad.closedloop import LoopSettings, run_loop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--system", choices=["Cu-Mg", "Fe-C"], default="Cu-Mg")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    s = LoopSettings(n_iterations=args.iterations, n_steps=args.steps, n_walkers=12,
                     n_draws=12, system=args.system)
    t0 = time.perf_counter()
    out = {}
    for strategy in ("proposed", "random"):
        hs = [run_loop(strategy, seed, s) for seed in range(args.seeds)]
        out[strategy] = {
            "n_experiments": hs[0].n_experiments,
            "ci_width_k": np.mean([h.ci_width_k for h in hs], axis=0).round(2).tolist(),
            "t_error_k": np.mean([h.t_error_k for h in hs], axis=0).round(2).tolist(),
            "phase_error": np.mean([h.phase_error for h in hs], axis=0).round(4).tolist(),
            "per_seed_ci_width_k": [np.round(h.ci_width_k, 1).tolist() for h in hs],
        }
    p, r = out["proposed"], out["random"]
    print(json.dumps({
        "benchmark": "calphad_closed_loop",
        "figure": "final mean 95% width of invariant temperatures (K), proposed vs random",
        "proposed_final_ci_width_k": p["ci_width_k"][-1],
        "random_final_ci_width_k": r["ci_width_k"][-1],
        "ratio_ci_width_proposed_to_random": round(p["ci_width_k"][-1] / r["ci_width_k"][-1], 3),
        "ratio_t_error_proposed_to_random": round(p["t_error_k"][-1] / max(r["t_error_k"][-1], 1e-9), 3),
        "curves": out,
        "settings": {"system": args.system, "seeds": args.seeds, "iterations": args.iterations,
                     "per_iteration": s.per_iteration, "initial": s.n_initial,
                     "walkers": s.n_walkers, "steps": s.n_steps, "draws": s.n_draws,
                     "offsets": s.offsets, "prior_std_j_mol": s.prior_std,
                     "sigma_zpf_j_mol": s.sigma_zpf, "noise_x": s.noise_x},
        "seconds": round(time.perf_counter() - t0, 1),
    }))


if __name__ == "__main__":
    main()
