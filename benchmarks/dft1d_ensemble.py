"""Seed ensembles (and more training data) of the exact-density FNO, scored per member and together.

Declared before training: the held-out family is **poschl_teller** (as in
``benchmarks/dft1d_families.py``), and the ensemble is the mean potential of **three seeds**
(0, 1, 2) of the same settings; nothing is chosen on the held-out family or the test split.

Data: the family benchmark's cached set (seed 0: 250 potentials of each of the nine families,
exact two-electron densities, Wu–Yang KS potentials to 1e-8) and a second, independent draw
(seed 1, same size, cached beside it). The **validation set** for every tuning decision is the
seed-1 draw's ``test`` split (without the held-out family in ``--mode loo``); with
``--extra-per-family`` the seed-1 draw's ``train`` split (same rule) is added to training.

Each member is ``dft1d_exact_density.py``'s model: the family table's Wu–Yang model
(hidden 16, 16 modes, batch 64, exact Hx part, symmetrised, λ = 1, γ = 1, ``--epochs``), then
``--ft-epochs`` of the exact-density loss (``density_l1``, gap floor ``--gap-floor`` Ha,
optionally small-gap training samples repeated, ``--oversample-gap``). Members are cached in
``--cache-dir`` (the seed-0 base is the one ``dft1d_exact_density.py`` cached), so
``--train-only --seeds 1`` in two processes trains members side by side. ``--shared-base``
makes a cheap ensemble: every member fine-tunes the seed-0 base, the seed sets only the
fine-tuning's data order.

``--mode in``: trained on all nine families, scored on the seed-0 ``test`` split;
``--mode loo``: trained without the declared family, scored on all of its seed-0 samples.
One JSON line: per member and for the ensemble, the density rel. L1 of the predicted potential
on the evaluation and validation sets (the ensemble with the full score of
``dft1d_exact_density.py``: median, small-gap share, flag coverage, ...).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dft1d_ensemble.py --spin triplet --mode loo
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dft1d_exact_density import _gaps, _score  # noqa: E402
from dft1d_families import DECLARED_HOLDOUT, DEFAULT_CACHE, _settings, family_data  # noqa: E402


def _sets(a: argparse.Namespace) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """All samples (seed-0 draw, then seed-1 draw), training, evaluation and validation indices."""
    z0 = family_data(a.spin, a.n_per_family, cache=str(Path(a.cache_dir) / f"fam_{a.spin}.npz"))
    z1 = family_data(a.spin, a.n_per_family, seed=1,
                     cache=str(Path(a.cache_dir) / f"fam_{a.spin}_seed1.npz"))
    n0 = len(z0["density"])
    z = {k: np.concatenate([z0[k], z1[k]]) for k in ("v_ext", "density", "v_hxc", "family", "split")}
    z["x"] = z0["x"]
    fam, split = z["family"].astype(str), z["split"].astype(str)
    first = np.arange(len(fam)) < n0
    keep = np.ones(len(fam), bool) if a.mode == "in" else fam != DECLARED_HOLDOUT
    train = first & (split == "train") & keep
    if a.extra_per_family > 0:  # the first extra_per_family of each family of the seed-1 draw
        extra = np.zeros(len(fam), bool)
        for f in set(fam):
            idx = np.flatnonzero(~first & (split == "train") & keep & (fam == f))
            extra[idx[:a.extra_per_family]] = True
        train |= extra
    if a.mode == "in":
        ev = np.flatnonzero(first & (split == "test"))
    else:
        ev = np.flatnonzero(first & (fam == DECLARED_HOLDOUT))
    val = np.flatnonzero(~first & (split == "test") & keep)
    return z, np.flatnonzero(train), ev, val


def _paths(a: argparse.Namespace, seed: int) -> tuple[Path, Path]:
    base_seed = 0 if a.shared_base else seed
    tag = "" if (base_seed, a.extra_per_family) == (0, 0) else f"_s{base_seed}_x{a.extra_per_family}"
    base = Path(a.cache_dir) / f"exact_base_{a.spin}_{a.mode}_{a.n_per_family}_{a.epochs}{tag}.pt"
    ft_tag = f"_fs{seed}" if a.shared_base and seed != 0 else ""
    ft = base.with_name(base.stem + f"_ft{a.ft_epochs}_g{a.gap_floor:g}_o{a.oversample_gap:g}"
                                    f"_w{a.ft_weight:g}_r{a.ft_residual_weight:g}"
                                    f"_lr{a.ft_lr:g}{ft_tag}.pt")
    return base, ft


def _member(a, seed: int, z: dict, tr: np.ndarray, gaps: np.ndarray, occ_name: str) -> dict:
    """Train (or read) one member; returns its timings."""
    from matterflow.dft1d.fno import DensityToPotentialFNO

    base_path, ft_path = _paths(a, seed)
    out: dict = {"seed": seed, "base_seconds": None, "finetune_seconds": None}
    if not base_path.is_file():
        t0 = time.perf_counter()
        s = {**_settings(a.epochs), "seed": 0 if a.shared_base else seed}
        m = DensityToPotentialFNO(**s, n_electrons=2, spin=occ_name).fit(
            z["density"][tr], z["v_hxc"][tr], v_ext=z["v_ext"][tr], x=z["x"])
        m.save(base_path)
        out["base_seconds"] = round(time.perf_counter() - t0, 1)
    if a.ft_epochs > 0 and not ft_path.is_file():
        ft_tr = tr
        if a.oversample_gap > 0:
            ft_tr = np.concatenate([tr, tr[gaps[tr] < a.oversample_gap]])
        m = DensityToPotentialFNO.load(base_path)
        m.x_ = z["x"]
        m.seed = seed  # the fine-tuning's data order (and the base's weights unless shared)
        m.warm_start, m.epochs, m.learning_rate = True, a.ft_epochs, a.ft_lr
        m.physics_loss, m.density_weight = "density_l1", a.ft_weight
        m.residual_weight, m.gap_floor, m.density_warmup = a.ft_residual_weight, a.gap_floor, 0.0
        t1 = time.perf_counter()
        m.fit(z["density"][ft_tr], z["v_hxc"][ft_tr], v_ext=z["v_ext"][ft_tr], x=z["x"])
        m.save(ft_path)
        out["finetune_seconds"] = round(time.perf_counter() - t1, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spin", default="triplet", choices=["singlet", "triplet"])
    ap.add_argument("--mode", default="loo", choices=["in", "loo"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-per-family", type=int, default=250)
    ap.add_argument("--extra-per-family", type=int, default=0,
                    help="training samples per family added from the seed-1 draw")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--ft-epochs", type=int, default=30)
    ap.add_argument("--ft-weight", type=float, default=1.0)
    ap.add_argument("--ft-residual-weight", type=float, default=1.0)
    ap.add_argument("--ft-lr", type=float, default=1e-3)
    ap.add_argument("--gap-floor", type=float, default=0.02)
    ap.add_argument("--oversample-gap", type=float, default=0.0)
    ap.add_argument("--small-gap", type=float, default=0.05)
    ap.add_argument("--cache-dir", default=DEFAULT_CACHE)
    ap.add_argument("--shared-base", action="store_true",
                    help="every member fine-tunes the seed-0 base (the seed sets only the "
                         "fine-tuning's data order): a cheap ensemble")
    ap.add_argument("--train-only", action="store_true", help="train missing members, no scores")
    a = ap.parse_args()
    from matterflow.dft1d.exact import occupations_for
    from matterflow.dft1d.fno import DensityToPotentialFNO, evaluate_fno
    from matterflow.dft1d.fno_ensemble import FNOEnsemble

    occ_name = "polarised" if a.spin == "triplet" else "unpolarised"
    occ = occupations_for(2, occ_name)
    t0 = time.perf_counter()
    z, tr, ev, val = _sets(a)
    gaps = _gaps(z["x"], z["v_ext"] + z["v_hxc"], occ)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    timings = [_member(a, s, z, tr, gaps, occ_name) for s in seeds]
    if a.train_only:
        print(json.dumps({"benchmark": "dft1d_ensemble", "train_only": True, "timings": timings,
                          "seconds": round(time.perf_counter() - t0, 1)}))
        return
    members = []
    for s in seeds:
        base_path, ft_path = _paths(a, s)
        m = DensityToPotentialFNO.load(ft_path if a.ft_epochs > 0 else base_path)
        m.x_ = z["x"]
        members.append(m)

    def dens_err(model, idx):
        return evaluate_fno(model, z["x"], z["density"][idx], z["v_ext"][idx], z["v_hxc"][idx],
                            n_electrons=2, spin=occ_name).density_rel_l1

    rows = []
    for s, m in zip(seeds, members, strict=True):
        rows.append({"seed": s, "eval_density_rel_l1_mean": float(dens_err(m, ev).mean()),
                     "val_density_rel_l1_mean": float(dens_err(m, val).mean())})
    ens = FNOEnsemble(members)
    ens.x_ = z["x"]
    full = _score(ens, z, ev, occ_name, gaps[ev], a.small_gap)
    val_err = dens_err(ens, val)
    print(json.dumps({
        "benchmark": "dft1d_ensemble", "spin": a.spin, "mode": a.mode,
        "eval": "seed-0 test split, all families" if a.mode == "in" else f"all {DECLARED_HOLDOUT}",
        "validation": "seed-1 test split" + ("" if a.mode == "in" else f" without {DECLARED_HOLDOUT}"),
        "declared_holdout": DECLARED_HOLDOUT, "n_train": int(len(tr)), "n_eval": int(len(ev)),
        "n_val": int(len(val)), "seeds": seeds, "base_settings": _settings(a.epochs),
        "extra_per_family": a.extra_per_family, "shared_base": a.shared_base,
        "finetune": {"physics_loss": "density_l1", "epochs": a.ft_epochs, "weight": a.ft_weight,
                     "residual_weight": a.ft_residual_weight, "learning_rate": a.ft_lr,
                     "gap_floor_Ha": a.gap_floor, "oversample_gap_Ha": a.oversample_gap},
        "members": rows, "timings": timings,
        "ensemble": {**full, "val_density_rel_l1_mean": float(val_err.mean()),
                     "val_density_rel_l1_median": float(np.median(val_err))},
        "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
