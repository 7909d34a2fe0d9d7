"""HRTEM structure identification with the focal spread unknown: correct candidate ranked first.

Cases: an image of SrTiO3 [001] (even seeds) or BaTiO3 [001] (odd seeds) at optics drawn as in
``hrtem_matching.py --fit-focal-spread`` (defocus −200…200 Å, Cs −30…30 µm, thickness 5–40
repeats, focal spread 20–60 Å, not known to the matcher; 300 kV, 2e4 e/Å², 256² at 0.1 Å).
Candidates: SrTiO3 [001], BaTiO3 [001] and SrTiO3 [110] (a rotated variant: the same crystal
turned 45° about a, written by this script as a structure file), each matched by
``hrtem.identify`` (method scan). With ``--with-strained`` the built-in ``SrTiO3-strained``
(2 % in-plane tension, 2 % compression along the beam) is a fourth candidate and the figure is
also given over all four: its in-plane strain is isotropic and so absorbed by the fitted
lattice scale (pixel-size calibration), its 2 % along the beam changes the thickness series
little — a hard case, reported separately.

Prints one JSON line: the fraction identified correctly (among the three; among the four with
``--with-strained``), the margins (second-best / best loss) and seconds.

    OMP_NUM_THREADS=1 python benchmarks/hrtem_identify.py --seeds 10 --seed-offset 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from matterflow.microscopy.hrtem.tasks import IdentifyParams, identify_image, simulate


def srtio3_110(path: Path) -> str:
    """SrTiO3 with the cell (a√2, a, a√2) whose c is [110]: the [110] projection, as extxyz."""
    from ase.build import make_supercell
    from ase.io import write

    from matterflow.microscopy.structures import builtin

    cell = make_supercell(builtin("SrTiO3"), [[-1, 1, 0], [0, 0, 1], [1, 1, 0]])
    write(path, cell, format="extxyz")
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-offset", type=int, default=200)
    ap.add_argument("--budget", type=int, default=700)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--with-strained", action="store_true")
    ap.add_argument("--cases", action="store_true", help="one line per case on stderr")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rotated = srtio3_110(tmp / "SrTiO3-110.xyz")
    names = {"SrTiO3": "SrTiO3", "BaTiO3": "BaTiO3", rotated: "SrTiO3[110]"}
    if args.with_strained:
        names["SrTiO3-strained"] = "SrTiO3-strained"
    n = ok3 = ok_all = 0
    margins, secs = [], []
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        truth_name = "SrTiO3" if seed % 2 == 0 else "BaTiO3"
        rng = np.random.default_rng(5000 + seed)
        d, c, t = float(rng.uniform(-200, 200)), float(rng.uniform(-30, 30)), int(rng.integers(5, 41))
        fs = float(rng.uniform(20, 60))
        sim = simulate(params={"structure": truth_name, "defocus": d, "cs_um": c,
                               "thickness_cells": t, "focal_spread": fs, "seed": seed,
                               "size": args.size})
        t0 = time.perf_counter()
        res = identify_image(sim.image, sim.pixel_size, IdentifyParams(
            candidates=tuple(names), budget=args.budget, seed=seed + 7))
        dt = time.perf_counter() - t0
        ranked = [names[r.decode()] for r in res.candidates]
        losses = dict(zip(ranked, res.losses.tolist(), strict=True))
        three = sorted((v, k) for k, v in losses.items() if k != "SrTiO3-strained")
        n += 1
        ok3 += three[0][1] == truth_name
        ok_all += ranked[0] == truth_name
        margins.append(three[1][0] / three[0][0])
        secs.append(dt)
        if args.cases:
            print(json.dumps({"seed": seed, "truth": truth_name,
                              "optics": [round(d, 1), round(c, 2), t, round(fs, 1)],
                              "ranked": ranked, "losses": [float(f"{v:.3g}") for v in res.losses],
                              "s": round(dt, 1)}), file=sys.stderr, flush=True)
    out = {"figure": "hrtem identification, focal spread unknown: truth ranked first among "
                     "SrTiO3 [001], BaTiO3 [001], SrTiO3 [110]", "cases": n,
           "seeds": [args.seed_offset, args.seed_offset + args.seeds - 1], "budget": args.budget,
           "correct_among_3": ok3 / n, "margin_min_among_3": round(float(np.min(margins)), 3),
           "margin_median_among_3": round(float(np.median(margins)), 3),
           "mean_seconds_per_image": round(float(np.mean(secs)), 1),
           "baseline": "goal of issue 18: >= 95 % correct"}
    if args.with_strained:
        out["correct_among_4_with_SrTiO3-strained"] = ok_all / n
    print(json.dumps(out))


if __name__ == "__main__":
    main()
