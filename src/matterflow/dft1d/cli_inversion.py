"""``matterflow dft1d generate | invert | train-fno``: datasets, numerical inversion, FNO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from matterflow.clitools import TrustPickle, console, handle_errors, make_progress, save_figures
from matterflow.core.errors import InputError

app = typer.Typer(help="Datasets, numerical inversion, FNO.")


def _families(text: str) -> list[str]:
    from matterflow.dft1d.potentials import check_families

    return check_families([f.strip() for f in text.split(",") if f.strip()], field="--families")


@app.command("generate")
@handle_errors
def generate(
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output folder (dataset.h5, results.h5).")] = Path("dft1d-data"),
    n_samples: Annotated[int, typer.Option("--n-samples", "-n", min=1, help="Number of potentials.")] = 2000,
    families: Annotated[str, typer.Option(
        help="Comma-separated families: gaussian_wells, harmonic, double_well, coulomb_chain, "
             "poschl_teller, morse, step_barrier, linear_field, sum.")
    ] = "gaussian_wells,harmonic,double_well,coulomb_chain",
    n_points: Annotated[int, typer.Option("--n-points", min=16, max=512, help="Grid points.")] = 64,
    length: Annotated[float, typer.Option(help="Box length in bohr (grid from -L/2 to L/2).")] = 20.0,
    holdout_family: Annotated[str | None, typer.Option(
        "--holdout-family", help="Family put in the 'ood' split.")] = None,
    spin: Annotated[str, typer.Option(help="singlet or triplet.")] = "singlet",
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    workers: Annotated[int | None, typer.Option(min=1, help="Local Dask workers.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Existing Dask scheduler address.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute everything.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Exact two-electron densities and their KS potentials for random potentials (HDF5, on Dask)."""
    from matterflow.dft1d.datasets import generate_dataset, load_dataset

    fams = _families(families)
    if spin not in ("singlet", "triplet"):
        raise InputError(f"--spin: accepted singlet, triplet; got {spin!r}")
    if holdout_family is not None:
        _families(holdout_family)
    with make_progress(quiet) as progress:
        path = generate_dataset(out, n_samples=n_samples, families=fams, n_points=n_points,
                                length=length, holdout_family=holdout_family, spin=spin,
                                seed=seed, workers=workers, scheduler=scheduler, force=force,
                                progress=progress)
    ds = load_dataset(path)
    counts = {s: ds.split.count(s) for s in dict.fromkeys(ds.split)}
    console.print(f"{len(ds)} samples in {ds.attrs.get('seconds', float('nan')):.1f} s; "
                  f"splits {counts}; max inversion density error "
                  f"{ds.max_density_error.max():.2g} /bohr; mean inversion "
                  f"{1e3 * ds.seconds_inversion.mean():.1f} ms per sample")
    console.print(f"dataset: {path}")


@app.command("invert")
@handle_errors
def invert(
    source: Annotated[Path, typer.Argument(help="dataset.h5 / results.h5, or .npz with x, density, v_ext.")],
    index: Annotated[list[int] | None, typer.Option(
        "--index", "-i", help="Samples of a dataset (repeat; default: first).")] = None,
    n_electrons: Annotated[int, typer.Option("--n-electrons", min=1, help="Electrons in the density.")] = 2,
    spin: Annotated[str, typer.Option(
        help="unpolarised (2 per orbital) or polarised (1 per orbital).")] = "unpolarised",
    regularisation: Annotated[float, typer.Option(help="Smoothness penalty λ (Ha bohr).")] = 1e-9,
    tol: Annotated[float, typer.Option(help="Required max |n_KS - n| (1/bohr).")] = 1e-7,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output .npz (v_ks, v_hxc, density, ...).")] = Path("inverted.npz"),
    method: Annotated[str, typer.Option(
        help="wu-yang (numerical inversion), fno+refine (the FNO's potential starts Wu-Yang, run to "
             "--tol: exact, faster) or fno (the FNO alone, with its density residual, KS gap and a "
             "reliability flag per sample). The FNO methods need --model.")] = "wu-yang",
    model: Annotated[list[Path] | None, typer.Option(
        "--model", help="fno.pt of `matterflow dft1d train-fno` (for --method fno, fno+refine); "
                        "repeat for an ensemble (the members' mean potential).")] = None,
    flag_threshold: Annotated[float, typer.Option(
        "--flag-threshold", min=0.0,
        help="--method fno: flag samples whose density residual ∫|n[v_FNO] - n|/N exceeds this.")] = 0.02,
    compare_cold: Annotated[bool, typer.Option(
        "--compare-cold/--no-compare-cold",
        help="--method fno+refine: also invert from the cold start, for iterations and time saved.")] = True,
    trust_pickle: TrustPickle = False,
) -> None:
    """Kohn–Sham potential of given densities (regularised Wu–Yang, or FNO-started), with residual and time."""
    import numpy as np

    from matterflow.dft1d.inversion_tasks import invert as task

    if method not in ("wu-yang", "fno+refine", "fno"):
        raise InputError(f"--method: accepted wu-yang, fno+refine, fno; got {method!r}")
    fno = None
    if method != "wu-yang":
        if not model:
            raise InputError(f"--model: --method {method} needs a trained FNO (fno.pt of "
                             f"`matterflow dft1d train-fno`)")
        from matterflow.dft1d.fno import DensityToPotentialFNO

        members = [DensityToPotentialFNO.load(m, trust_pickle=trust_pickle) for m in model]
        if len(members) == 1:
            fno = members[0]
        else:
            from matterflow.dft1d.fno_ensemble import FNOEnsemble

            fno = FNOEnsemble(members)

    if source.suffix == ".npz":
        if not source.exists():
            raise InputError(f"{source}: no such file")
        z = np.load(source)
        missing = [k for k in ("x", "density", "v_ext") if k not in z]
        if missing:
            raise InputError(f"{source}: missing arrays {', '.join(missing)}; has {', '.join(z)}")
        x, dens, vext = z["x"], np.atleast_2d(z["density"]), np.atleast_2d(z["v_ext"])
        rows = list(range(len(dens))) if not index else index
    else:
        from matterflow.dft1d.datasets import load_dataset

        ds = load_dataset(source)
        x, dens, vext = ds.x, ds.density, ds.v_ext
        rows = index or [0]
    for r in rows:
        if not 0 <= r < len(dens):
            raise InputError(f"--index: {r} out of range; {source} has {len(dens)} samples")
    if fno is not None:
        if dens.shape[1] != len(x):
            raise InputError(f"{source}: density has {dens.shape[1]} points, x has {len(x)}")
        _invert_with_fno(fno, method, x, dens[rows], vext[rows], rows, n_electrons=n_electrons,
                         spin=spin, regularisation=regularisation, tol=tol,
                         flag_threshold=flag_threshold, compare_cold=compare_cold, out=out)
        return
    params = {"n_electrons": n_electrons, "spin": spin, "regularisation": regularisation, "tol": tol}
    res = []
    for r in rows:
        if dens.shape[1] != len(x):
            raise InputError(f"{source}: density has {dens.shape[1]} points, x has {len(x)}")
        out_r = task(dens[r], vext[r], x, params=params)
        console.print(f"sample {r}: max |n_KS - n| = {out_r.max_density_error:.2e} /bohr, "
                      f"{out_r.n_iterations} Newton steps, {1e3 * out_r.seconds:.1f} ms")
        res.append(out_r)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, x=x, index=np.array(rows), v_ks=np.stack([o.v_ks for o in res]),
             v_hxc=np.stack([o.v_hxc for o in res]), density=np.stack([o.density for o in res]),
             max_density_error=np.array([o.max_density_error for o in res]),
             seconds=np.array([o.seconds for o in res]))
    console.print(f"written: {out}")


def _invert_with_fno(fno: Any, method: str, x: Any, dens: Any, vext: Any, rows: list[int], *,
                     n_electrons: int, spin: str, regularisation: float, tol: float,
                     flag_threshold: float, compare_cold: bool, out: Path) -> None:
    """``invert --method fno | fno+refine``: print per-sample figures, write the .npz."""
    import numpy as np

    from matterflow.dft1d.refine import fno_reliability, refine_inversion

    if spin not in ("unpolarised", "polarised"):
        raise InputError(f"--spin: accepted unpolarised, polarised; got {spin!r}")
    if (n_electrons, spin) != (fno.n_electrons, fno.spin):
        console.print(f"note: the model was trained for {fno.n_electrons} electrons, {fno.spin}; "
                      f"inverting for {n_electrons}, {spin}")
    sp: Any = spin
    out.parent.mkdir(parents=True, exist_ok=True)
    if method == "fno":
        rel = fno_reliability(fno, dens, vext, x, threshold=flag_threshold,
                              n_electrons=n_electrons, spin=sp)
        for k, r in enumerate(rows):
            console.print(f"sample {r}: density residual {100 * rel.density_residual[k]:.3f} % "
                          f"(max {rel.max_density_error[k]:.2e} /bohr), KS gap "
                          f"{rel.gap[k]:.4f} Ha{'  FLAGGED' if rel.flagged[k] else ''}")
        console.print(f"{int(rel.flagged.sum())} of {len(rows)} flagged (residual > "
                      f"{100 * flag_threshold:g} %); FNO {1e6 * rel.fno_seconds_per_sample:.0f} µs, "
                      f"check {1e3 * rel.check_seconds_per_sample:.2f} ms per sample")
        np.savez(out, x=x, index=np.array(rows), v_ks=rel.v_ks, v_hxc=rel.v_ks - vext,
                 density=rel.predicted_density, density_residual=rel.density_residual,
                 max_density_error=rel.max_density_error, gap=rel.gap, flagged=rel.flagged)
    else:
        res = refine_inversion(fno, dens, vext, x, tol=tol, regularisation=regularisation,
                               n_electrons=n_electrons, spin=sp, compare_cold=compare_cold)
        for k, r in enumerate(rows):
            cold = (f"; cold start {res.cold_n_iterations[k]} steps, "
                    f"{1e3 * res.cold_seconds[k]:.1f} ms") if compare_cold else ""
            console.print(f"sample {r}: max |n_KS - n| = {res.max_density_error[k]:.2e} /bohr "
                          f"(FNO start {res.start_max_density_error[k]:.2e}), "
                          f"{res.n_iterations[k]} Newton steps, {1e3 * res.seconds[k]:.1f} ms{cold}")
        if compare_cold:
            console.print(f"median {np.median(res.n_iterations):g} vs {np.median(res.cold_n_iterations):g} "
                          f"Newton steps, {1e3 * np.median(res.seconds):.2f} vs "
                          f"{1e3 * np.median(res.cold_seconds):.2f} ms: {res.speedup:.2f}x faster "
                          f"than the cold start")
        np.savez(out, x=x, index=np.array(rows), v_ks=res.v_ks, v_hxc=res.v_hxc,
                 density=res.density, max_density_error=res.max_density_error,
                 n_iterations=res.n_iterations, seconds=res.seconds,
                 start_max_density_error=res.start_max_density_error,
                 cold_n_iterations=res.cold_n_iterations, cold_seconds=res.cold_seconds)
    console.print(f"written: {out}")


@app.command("train-fno")
@handle_errors
def train_fno(
    dataset: Annotated[Path, typer.Argument(help="dataset.h5 from `matterflow dft1d generate`.")],
    target: Annotated[str, typer.Option(help="v_hxc or v_ks.")] = "v_hxc",
    holdout_family: Annotated[str | None, typer.Option(
        "--holdout-family", help="Train without this family, test on it.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples per step.")] = 64,
    hidden_channels: Annotated[int, typer.Option("--hidden-channels", min=2, help="FNO width.")] = 32,
    n_modes: Annotated[int, typer.Option("--n-modes", min=1, help="Fourier modes per layer.")] = 16,
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="Peak Adam learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(min=0, help="Torch seed.")] = 0,
    n_layers: Annotated[int, typer.Option("--n-layers", min=1, max=16, help="Fourier layers.")] = 4,
    density_weight: Annotated[float, typer.Option(
        "--density-weight", min=0.0,
        help="λ of the physics loss: rel. L2(v) + λ·D, D from --physics-loss, using the KS density n(v_pred) of the "
             "predicted potential (differentiable batched eigensolver). 0: potential loss only.")] = 0.0,
    physics_loss: Annotated[str, typer.Option(
        "--physics-loss",
        help="Density term D: density_l1 = ∫|n(v_pred) - n|/N (gradient ~ 1/gap) or wu_yang = sqrt((W(v_KS) - "
             "W(v_pred))/N), Ha^½, W the Wu–Yang functional (zero only at the KS potential, gradient = density "
             "residual, bounded).")] = "density_l1",
    exact_hx: Annotated[bool, typer.Option(
        "--exact-hx/--no-exact-hx",
        help="Learn v_Hxc - (1 - 1/N) v_H(n) (the correlation part in the inversion's gauge; exchange is exactly "
             "-v_H/2 for a singlet pair) and add the exact term back from the input density. Only with --target "
             "v_hxc.")] = False,
    density_warmup: Annotated[float, typer.Option(
        "--density-warmup", min=0.0, max=0.99,
        help="Fraction of the epochs on the potential loss alone before the density term starts.")] = 0.3,
    grad_clip: Annotated[float, typer.Option(
        "--grad-clip", min=0.0, help="Max gradient norm per step (0: no clipping).")] = 1.0,
    init_model: Annotated[Path | None, typer.Option(
        "--init-model",
        help="fno.pt to continue training from (warm start: its architecture and normalisation are kept).")] = None,
    threads: Annotated[int, typer.Option(
        min=1, help="Torch CPU threads (more than 1 is slow on a loaded machine).")] = 1,
    symmetrise: Annotated[bool, typer.Option(
        "--symmetrise/--no-symmetrise",
        help="Build the x -> -x equivariance in: predict ½(f(n) + R f(R n)), R the grid reversal.")] = False,
    residual_weight: Annotated[float, typer.Option(
        "--residual-weight", min=0.0,
        help="γ: weight each sample's loss by 1 + γ r/mean(r), r its current density residual "
             "∫|n(v_pred) - n|/N (needs --density-weight > 0). 0: off.")] = 0.0,
    gap_floor: Annotated[float, typer.Option(
        "--gap-floor", min=0.0,
        help="Ha, density_l1 only: clip level spacings below this floor in the gradient of the exact KS density "
             "(bounds its 1/gap growth for near-degenerate samples; the loss itself stays exact). 0: exact.")] = 0.0,
    deterministic: Annotated[bool, typer.Option(
        "--deterministic/--no-deterministic",
        help="torch deterministic algorithms while training (same command + seed -> same model).")] = True,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for fno.pt, metrics.json, figures.")] = Path("dft1d-fno"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    trust_pickle: TrustPickle = False,
) -> None:
    """Train an FNO from density to potential; report in-distribution, held-out and timing figures."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from matterflow.dft1d.datasets import load_dataset
    from matterflow.dft1d.fno import holdout_split, train_and_evaluate

    if target not in ("v_hxc", "v_ks"):
        raise InputError(f"--target: accepted v_hxc, v_ks; got {target!r}")
    if physics_loss not in ("density_l1", "wu_yang"):
        raise InputError(f"--physics-loss: accepted density_l1, wu_yang; got {physics_loss!r}")
    init = None
    if init_model is not None:  # checked before the dataset is read
        from matterflow.dft1d.fno import DensityToPotentialFNO

        init = DensityToPotentialFNO.load(init_model, trust_pickle=trust_pickle)
    ds = load_dataset(dataset)
    split = ds.split if holdout_family is None else holdout_split(ds.split, ds.family, holdout_family)
    pot = ds.v_hxc if target == "v_hxc" else ds.v_ks
    with make_progress(quiet) as progress:
        bar = progress.add_task("training FNO", total=epochs) if progress is not None else None

        def tick(epoch: int, total: int, loss: float) -> None:
            if bar is not None:
                progress.update(bar, completed=epoch,
                                description=f"training FNO (loss {loss:.3g})")

        model, rep = train_and_evaluate(ds.x, ds.v_ext, ds.density, pot, split, ds.family,
                                        target=target, progress=tick, epochs=epochs,
                                        batch_size=batch_size, hidden_channels=hidden_channels,
                                        n_modes=n_modes, n_layers=n_layers,
                                        learning_rate=learning_rate, seed=seed, threads=threads,
                                        density_weight=density_weight,
                                        physics_loss=physics_loss, exact_hx=exact_hx,
                                        density_warmup=density_warmup,
                                        grad_clip=grad_clip or None, init=init,
                                        symmetrise=symmetrise, residual_weight=residual_weight,
                                        gap_floor=gap_floor,
                                        deterministic=deterministic,
                                        spin=ds.attrs.get("spin", "singlet"))
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "fno.pt")
    ood = len(rep.ood_rel_l2) > 0
    metrics = {
        "target": target, "spin": ds.attrs.get("spin", "singlet"),
        "n_train": int(split.count("train")), "n_test": len(rep.test_rel_l2),
        "test_rel_l2_mean": float(rep.test_rel_l2.mean()),
        "test_rel_l2_max": float(rep.test_rel_l2.max()),
        "test_density_rel_l1_mean": float(rep.test_density_rel_l1.mean()),
        "test_density_rel_l1_max": float(rep.test_density_rel_l1.max()),
        "ood_family": rep.ood_family or None,
        "ood_rel_l2_mean": float(rep.ood_rel_l2.mean()) if ood else None,
        "ood_density_rel_l1_mean": float(rep.ood_density_rel_l1.mean()) if ood else None,
        "fit_seconds": rep.fit_seconds, "epochs": epochs,
        "fno_seconds_per_sample": rep.fno_seconds_per_sample,
        "inversion_seconds_per_sample": rep.inversion_seconds_per_sample,
        "speedup": rep.inversion_seconds_per_sample / rep.fno_seconds_per_sample,
        "wu_yang_seconds_per_sample": rep.wu_yang_seconds_per_sample,
        "speedup_vs_wu_yang": rep.wu_yang_seconds_per_sample / rep.fno_seconds_per_sample,
        "test_density_rel_l1_median": float(np.median(rep.test_density_rel_l1)),
        "test_density_within_1pct": float(np.mean(rep.test_density_rel_l1 <= 0.01)),
        "test_per_family": {f: {"rel_l2_mean": float(rep.test_rel_l2[m].mean()),
                                "density_rel_l1_mean": float(rep.test_density_rel_l1[m].mean()),
                                "density_rel_l1_median": float(np.median(rep.test_density_rel_l1[m]))}
                            for f in sorted(set(ds.family))
                            if (m := np.array([ds.family[i] == f for i in rep.test_index])).any()},
        "n_parameters": model.n_parameters_,
        "density_weight": density_weight, "physics_loss": physics_loss, "exact_hx": exact_hx,
        "density_warmup": density_warmup, "symmetrise": symmetrise,
        "residual_weight": residual_weight, "gap_floor": gap_floor, "deterministic": deterministic, "seed": seed,
        "init_model": str(init_model) if init_model else None,
        "final_train_density_loss": (model.density_loss_history_[-1]
                                     if model.density_loss_history_ else None),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from matterflow.dft1d.inversion_tasks import TrainFNOParams, _fno_figures

    k = min(4, len(rep.test_index))
    te, od = rep.test_index[:k], rep.ood_index[:k]
    outputs = {"x": ds.x, "loss_history": np.array(model.loss_history_),
               "val_history": np.array(model.val_history_), "test_rel_l2": rep.test_rel_l2,
               "ood_rel_l2": rep.ood_rel_l2, "ood_family": rep.ood_family,
               "test_rel_l2_mean": metrics["test_rel_l2_mean"],
               "test_density_rel_l1_mean": metrics["test_density_rel_l1_mean"],
               "ood_rel_l2_mean": metrics["ood_rel_l2_mean"] or float("nan"),
               "example_density": ds.density[te], "example_true": pot[te],
               "example_pred": rep.test.predicted[:k],
               "example_pred_density": rep.test.predicted_density[:k],
               "ood_example_true": pot[od] if ood else np.zeros((0, len(ds.x))),
               "ood_example_pred": rep.ood.predicted[:k] if ood else np.zeros((0, len(ds.x)))}
    save_figures(_fno_figures(outputs, TrainFNOParams(target=target)), out)
    console.print(f"test: potential rel. L2 {100 * metrics['test_rel_l2_mean']:.2f} % (max "
                  f"{100 * metrics['test_rel_l2_max']:.2f} %), density rel. L1 "
                  f"{100 * metrics['test_density_rel_l1_mean']:.3f} % (median "
                  f"{100 * metrics['test_density_rel_l1_median']:.3f} %, "
                  f"{100 * metrics['test_density_within_1pct']:.0f} % of samples within 1 %)")
    if ood:
        console.print(f"held-out family {rep.ood_family}: potential rel. L2 "
                      f"{100 * metrics['ood_rel_l2_mean']:.2f} %, density rel. L1 "
                      f"{100 * metrics['ood_density_rel_l1_mean']:.3f} %")
    console.print(f"inference {1e6 * rep.fno_seconds_per_sample:.1f} µs/sample vs inversion "
                  f"{1e3 * rep.inversion_seconds_per_sample:.1f} ms/sample: "
                  f"{metrics['speedup']:.0f}x (general Wu-Yang path "
                  f"{1e3 * rep.wu_yang_seconds_per_sample:.1f} ms: {metrics['speedup_vs_wu_yang']:.0f}x); "
                  f"training {rep.fit_seconds:.0f} s")
    console.print(f"model: {out / 'fno.pt'}\nmetrics: {out / 'metrics.json'}")
