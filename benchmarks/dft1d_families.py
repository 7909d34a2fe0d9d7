"""The FNO per potential family: in distribution and leave-one-family-out, singlet and triplet.

Declared before training: the held-out family of the goal (FNO alone on a held-out family,
mean density error <= 2 %) is **poschl_teller** (V = -V0/cosh²((x - x0)/a) + E x, the family
of issue 26); every other family is also left out in turn and reported in the same table.

Data (:func:`family_data`, cached in ``--cache-dir``): ``--n-per-family``
potentials of each of the nine families of :mod:`matterflow.dft1d.potentials`, exact two-electron
densities (singlet and triplet) on 64 points over 20 bohr, KS potentials by Wu–Yang to 1e-8 /bohr;
80 % train, 20 % test (seeded); ``--train-per-family`` of each family's train split are used
(default 100, to keep each training to about a minute of CPU).

Trainings (all with the same settings, ``DensityToPotentialFNO``: hidden 16, 16 modes, batch 64,
``--epochs``, exact Hartree-exchange part, Wu–Yang physics loss λ = 1 weighted per sample by the
density residual (``residual_weight``), mirror-symmetrised prediction, deterministic), per spin:

- ``in``: on the train split of all nine families, scored on each family's test split;
- ``loo:<f>``: on the train split of the eight other families, scored on *all* samples of ``f``;
- ``old4``: on the train split of the four original families only (gaussian_wells, harmonic,
  double_well, coulomb_chain), scored on every family's test split: the baseline of what
  adding families buys, in the same run.

Errors: potential rel. L2 of v_Hxc against the inversion, and the relative L1 error of the
density that the predicted potential gives (one KS solve), mean and median. For held-out families
also the reliability flag (:func:`matterflow.dft1d.refine.fno_reliability`, residual > 2 %):
the share of samples with density error > 5 % that are flagged, and the share flagged.

Prints one JSON line; ``--table`` also writes a Markdown table. Trainings run on ``--jobs``
processes (one torch thread each); finished jobs are kept in ``--cache-dir`` (a rerun resumes).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dft1d_families.py --epochs 20 --jobs 2 \
        --cache-dir /tmp/fno_work --save-dir /tmp/fno_work/models --table /tmp/fno_work/table.md
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DEFAULT_CACHE = str(Path(tempfile.gettempdir()) / "matterflow-bench" / "dft1d_families")
DECLARED_HOLDOUT = "poschl_teller"
OLD4 = ("gaussian_wells", "harmonic", "double_well", "coulomb_chain")


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


def _settings(epochs: int, residual_weight: float = 1.0, symmetrise: bool = True) -> dict:
    return {"epochs": epochs, "n_modes": 16, "hidden_channels": 16, "batch_size": 64,
            "density_weight": 1.0, "physics_loss": "wu_yang", "exact_hx": True,
            "residual_weight": residual_weight, "symmetrise": symmetrise, "density_warmup": 0.3,
            "seed": 0}


def _job(args: tuple) -> list[dict]:
    spin, mode, n_per_family, epochs, cache_dir, save_dir, train_per_family, rw, sym = args
    tag = "" if (rw, sym) == (1.0, True) else f"_rw{rw:g}_sym{int(sym)}"
    done = Path(cache_dir) / f"rows_{spin}_{n_per_family}_{train_per_family}_{epochs}{tag}.jsonl"
    if done.is_file():  # resume: a finished job's rows are kept
        rows = [json.loads(line) for line in done.read_text().splitlines() if line.strip()]
        mine = [r for r in rows if r["job"] == mode]
        if mine:
            return mine
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from matterflow.dft1d.fno import DensityToPotentialFNO, evaluate_fno
    from matterflow.dft1d.refine import fno_reliability

    z = family_data(spin, n_per_family, cache=str(Path(cache_dir) / f"fam_{spin}.npz"))
    fam, split = z["family"].astype(str), z["split"].astype(str)
    occ = "polarised" if spin == "triplet" else "unpolarised"
    if mode == "in":
        train = split == "train"
    elif mode == "old4":
        train = (split == "train") & np.isin(fam, OLD4)
    else:
        train = (split == "train") & (fam != mode[4:])
    if train_per_family:  # the first k train samples of each family (the data are shuffled)
        keep = np.zeros(len(fam), bool)
        for f in set(fam):
            keep[np.flatnonzero(train & (fam == f))[:train_per_family]] = True
        train = keep
    tr = np.flatnonzero(train)
    t0 = time.perf_counter()
    model = DensityToPotentialFNO(**_settings(epochs, rw, sym), n_electrons=2, spin=occ).fit(
        z["density"][tr], z["v_hxc"][tr], v_ext=z["v_ext"][tr], x=z["x"])
    fit_s = time.perf_counter() - t0
    if save_dir and mode == "in":
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        model.save(Path(save_dir) / f"fno_{spin}.pt")
    rows = []
    fams = [mode[4:]] if mode.startswith("loo:") else sorted(set(fam))
    for f in fams:
        idx = np.flatnonzero((fam == f) & ((split == "test") if not mode.startswith("loo:") else True))
        if not len(idx):
            continue
        ev = evaluate_fno(model, z["x"], z["density"][idx], z["v_ext"][idx], z["v_hxc"][idx],
                          n_electrons=2, spin=occ)
        row = {"job": mode, "spin": spin, "mode": "loo" if mode.startswith("loo:") else mode,
               "family": f,
               "n": int(len(idx)), "n_train": int(len(tr)), "fit_seconds": round(fit_s, 1),
               "potential_rel_l2_mean": float(ev.potential_rel_l2.mean()),
               "density_rel_l1_mean": float(ev.density_rel_l1.mean()),
               "density_rel_l1_median": float(np.median(ev.density_rel_l1)),
               "density_within_1pct": float(np.mean(ev.density_rel_l1 <= 0.01))}
        if mode.startswith("loo:"):
            rel = fno_reliability(model, z["density"][idx], z["v_ext"][idx], z["x"], threshold=0.02)
            bad = ev.density_rel_l1 > 0.05
            row.update({"n_above_5pct": int(bad.sum()),
                        "flag_coverage_above_5pct": float(rel.flagged[bad].mean()) if bad.any() else None,
                        "flagged_fraction": float(rel.flagged.mean()),
                        "gap_median": float(np.median(rel.gap))})
        rows.append(row)
    with done.open("a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spins", default="singlet,triplet")
    ap.add_argument("--n-per-family", type=int, default=250)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--train-per-family", type=int, default=100,
                    help="train samples per family (0: the whole train split)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--holdout", default="all", help="comma-separated families to leave out, all, or none")
    ap.add_argument("--no-old4", action="store_true", help="skip the four-family baseline")
    ap.add_argument("--residual-weight", type=float, default=1.0, help="γ (ablation: 0)")
    ap.add_argument("--no-symmetrise", action="store_true", help="ablation: no mirror symmetrisation")
    ap.add_argument("--cache-dir", default=DEFAULT_CACHE)
    ap.add_argument("--save-dir", default=None, help="write the in-distribution models here")
    ap.add_argument("--table", default=None, help="also write a Markdown table here")
    a = ap.parse_args()
    from matterflow.dft1d.potentials import FAMILIES

    spins = [s.strip() for s in a.spins.split(",") if s.strip()]
    for s in spins:  # data first, in this process (cached for the workers)
        family_data(s, a.n_per_family, cache=str(Path(a.cache_dir) / f"fam_{s}.npz"))
    hold = list(FAMILIES) if a.holdout == "all" else [] if a.holdout == "none" else \
        [h.strip() for h in a.holdout.split(",")]
    if DECLARED_HOLDOUT in hold:  # the declared family first
        hold = [DECLARED_HOLDOUT, *[h for h in hold if h != DECLARED_HOLDOUT]]
    modes = ["in", *(f"loo:{h}" for h in hold), *([] if a.no_old4 else ["old4"])]
    jobs = [(s, m, a.n_per_family, a.epochs, a.cache_dir, a.save_dir, a.train_per_family,
             a.residual_weight, not a.no_symmetrise)
            for m in modes for s in spins]
    t0 = time.perf_counter()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            rows = [r for rs in ex.map(_job, jobs) for r in rs]
    else:
        rows = [r for j in jobs for r in _job(j)]
    summary = {}
    for s in spins:
        inn = [r for r in rows if r["spin"] == s and r["mode"] == "in"]
        loo = [r for r in rows if r["spin"] == s and r["mode"] == "loo"]
        old = [r for r in rows if r["spin"] == s and r["mode"] == "old4" and r["family"] not in OLD4]
        cov = [r for r in loo if r.get("flag_coverage_above_5pct") is not None]
        n_bad = sum(r["n_above_5pct"] for r in cov)
        summary[s] = {
            "in_density_rel_l1_mean": float(np.average([r["density_rel_l1_mean"] for r in inn],
                                                       weights=[r["n"] for r in inn])),
            "in_potential_rel_l2_mean": float(np.average([r["potential_rel_l2_mean"] for r in inn],
                                                         weights=[r["n"] for r in inn])),
            "loo_density_rel_l1_mean_over_families": float(np.mean([r["density_rel_l1_mean"] for r in loo]))
            if loo else None,
            "declared_holdout": DECLARED_HOLDOUT,
            "declared_holdout_density_rel_l1_mean": next(
                (r["density_rel_l1_mean"] for r in loo if r["family"] == DECLARED_HOLDOUT), None),
            "old4_on_new_families_density_rel_l1_mean": float(np.mean([r["density_rel_l1_mean"] for r in old]))
            if old else None,
            "loo_flag_coverage_above_5pct": (sum(r["flag_coverage_above_5pct"] * r["n_above_5pct"] for r in cov)
                                             / n_bad) if n_bad else None,
            "loo_n_above_5pct": n_bad,
        }
    out = {"benchmark": "dft1d_families",
           "settings": _settings(a.epochs, a.residual_weight, not a.no_symmetrise),
           "n_per_family": a.n_per_family, "train_per_family": a.train_per_family,
           "seconds": round(time.perf_counter() - t0, 1),
           "summary": summary, "rows": rows}
    if a.table:
        lines = ["| spin | family | in: potential | in: density mean / median | held out: potential | "
                 "held out: density mean / median | flagged of > 5 % | 4-family model: density |",
                 "|---|---|---|---|---|---|---|---|"]
        for s in spins:
            for f in FAMILIES:
                r_in = next((r for r in rows if (r["spin"], r["mode"], r["family"]) == (s, "in", f)), None)
                r_lo = next((r for r in rows if (r["spin"], r["mode"], r["family"]) == (s, "loo", f)), None)
                r_o4 = next((r for r in rows if (r["spin"], r["mode"], r["family"]) == (s, "old4", f)), None)

                def pc(v: float | None) -> str:
                    return "–" if v is None else f"{100 * v:.2f} %"

                cov = "–" if not r_lo or r_lo.get("flag_coverage_above_5pct") is None else \
                    f"{r_lo['n_above_5pct']} / {100 * r_lo['flag_coverage_above_5pct']:.0f} %"
                lines.append(
                    f"| {s} | {f} | {pc(r_in and r_in['potential_rel_l2_mean'])} | "
                    f"{pc(r_in and r_in['density_rel_l1_mean'])} / {pc(r_in and r_in['density_rel_l1_median'])} | "
                    f"{pc(r_lo and r_lo['potential_rel_l2_mean'])} | "
                    f"{pc(r_lo and r_lo['density_rel_l1_mean'])} / {pc(r_lo and r_lo['density_rel_l1_median'])} | "
                    f"{cov} | {pc(r_o4 and r_o4['density_rel_l1_mean'])} |")
        Path(a.table).write_text("\n".join(lines) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
