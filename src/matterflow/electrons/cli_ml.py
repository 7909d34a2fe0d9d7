"""``matterflow electrons train | evaluate | correct | hyperopt | predict``: the LDOS model on the command line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from matterflow.clitools import (
    Cluster,
    Force,
    Processes,
    Quiet,
    RunOptions,
    Scheduler,
    TrustPickle,
    Workers,
    console,
    handle_errors,
    make_progress,
    param_option,
)
from matterflow.core.errors import InputError, MatterflowError
from matterflow.electrons.training import TrainParams

__all__ = ["app", "error_summary"]

app = typer.Typer(help="The LDOS model: train, evaluate, correct, hyperopt, predict.")


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        vals = ()
    if not vals or min(vals) < 1:
        raise InputError(f"{option}: positive integers separated by commas are needed (e.g. 64,64); "
                         f"got {text!r}")
    return vals


def _descriptor_params(kind: str, params_file: Path | None, twojmax: int | None, rcutfac: float | None):
    from matterflow.electrons.cli_descriptors import build_params

    if kind not in ("bispectrum", "gaussian"):
        raise InputError(f"--kind: bispectrum or gaussian is accepted; got {kind!r}")
    over: dict[str, Any] = {"rcutfac": rcutfac}
    if kind == "bispectrum":
        over["twojmax"] = twojmax
    elif twojmax is not None:
        raise InputError("--twojmax: only for --kind bispectrum")
    return build_params(kind, params_file, over)


def _load(snapshots: list[Path], kind: str, params_file: Path | None, twojmax: int | None,
          rcutfac: float | None, descriptor_files: list[Path] | None, progress: Any):
    from matterflow.electrons.ml_tasks import snapshot_dataset

    for p in snapshots:
        if not p.exists():
            raise InputError(f"{p}: snapshot file not found")
    dparams = _descriptor_params(kind, params_file, twojmax, rcutfac)
    return snapshot_dataset(snapshots, kind, dparams, descriptor_files=descriptor_files or None,
                            progress=progress)


def _split(n: int, n_test: int, n_val: int) -> tuple[list[int], list[int], list[int]]:
    if n_test < 0 or n_val < 0 or n_test + n_val >= n:
        raise InputError(f"--test/--validation: {n_test} + {n_val} snapshots held out leave none of the "
                         f"{n} to train on")
    test = list(range(n - n_test, n))
    val = list(range(n - n_test - n_val, n - n_test))
    return [i for i in range(n) if i not in test and i not in val], val, test


def _check_files(model: Path, snapshots: list[Path]) -> None:
    """InputError naming the first missing file: the model, then the snapshots."""
    if not model.exists():
        raise InputError(f"{model}: model file not found")
    for p in snapshots:
        if not p.exists():
            raise InputError(f"{p}: snapshot file not found")


def _error_table(rows: list[tuple[str, dict]], floor: bool = False,
                 title: str = "held-out snapshots: ML vs DFT") -> None:
    from rich.table import Table

    t = Table(title=title)
    if floor:   # narrower headers so that the seven columns fit 80 characters
        cols = ["band (meV/at)", "total (meV/at)", "Fermi (meV)", "density (%)", "floor band", "floor total"]
    else:
        cols = ["band (meV/atom)", "total (meV/atom)", "Fermi (meV)", "density MRAE (%)"]
    t.add_column("snapshot", no_wrap=True)
    for col in cols:
        t.add_column(col)
    for name, e in rows:
        cells = [name, f"{e['band_energy_mev_per_atom']:+.2f}", f"{e['total_energy_mev_per_atom']:+.2f}",
                 f"{e['fermi_mev']:+.1f}", f"{e['density_mrae_percent']:.2f}"]
        if floor:
            f = e.get("floor")
            cells += ([f"{f['band_energy_mev_per_atom']:+.2f}", f"{f['total_energy_mev_per_atom']:+.2f}"]
                      if f else ["–", "–"])
        t.add_row(*cells)
    console.print(t)


def error_summary(rows: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Counts within ``tolerance`` (meV/atom) and worst errors of per-snapshot error dicts.

    ``rows`` are dicts of :func:`~matterflow.electrons.ml_tasks.prediction_errors`;
    the result holds ``n``, ``band_within``, ``total_within``, ``worst_band``,
    ``worst_total`` (signed, meV/atom), ``mae_band``, ``mae_total``, ``rms_band``,
    ``rms_total``, ``mean_band``, ``mean_total`` (meV/atom; the mean is the bias),
    ``max_density_mrae`` (%) and a one-line ``text``.
    """
    import numpy as np

    if not rows:
        raise InputError("snapshots: none to summarise")
    band = [r["band_energy_mev_per_atom"] for r in rows]
    total = [r["total_energy_mev_per_atom"] for r in rows]
    out = {"n": len(rows),
           "band_within": sum(abs(b) <= tolerance for b in band),
           "total_within": sum(abs(t) <= tolerance for t in total),
           "worst_band": max(band, key=abs), "worst_total": max(total, key=abs),
           "max_density_mrae": max(r["density_mrae_percent"] for r in rows)}
    for name, err in (("band", band), ("total", total)):
        e = np.asarray(err, dtype=float)
        out |= {f"mae_{name}": float(np.abs(e).mean()), f"rms_{name}": float(np.sqrt((e * e).mean())),
                f"mean_{name}": float(e.mean())}
    out["text"] = (f"within ±{tolerance:g} meV/atom: band {out['band_within']}/{out['n']} "
                   f"(worst {out['worst_band']:+.2f}), total {out['total_within']}/{out['n']} "
                   f"(worst {out['worst_total']:+.2f}); MAE band {out['mae_band']:.2f}, total "
                   f"{out['mae_total']:.2f} meV/atom (rms {out['rms_band']:.2f}, {out['rms_total']:.2f}); "
                   f"density MRAE ≤ {out['max_density_mrae']:.2f} %")
    return out



@app.command("train")
@handle_errors
def train_cmd(
    snapshots: Annotated[list[Path], typer.Argument(help="Snapshot .h5 files from `matterflow electrons dft`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write.")] = Path("model.pt"),
    test: Annotated[int, typer.Option(help="Last N snapshots held out and evaluated.")] = 1,
    validation: Annotated[int, typer.Option(
        help="N snapshots before the test ones for early stopping (0: 10 % of the points).")] = 0,
    kind: Annotated[str, typer.Option(help="Descriptors: bispectrum or gaussian.")] = "bispectrum",
    params: Annotated[Path | None, typer.Option("--params", help="YAML/JSON descriptor parameters.")] = None,
    twojmax: Annotated[int | None, typer.Option(help="Bispectrum band limit 2J.")] = None,
    rcutfac: Annotated[float | None, typer.Option(help="Descriptor cut-off scale (Å).")] = None,
    descriptors: Annotated[list[Path] | None, typer.Option(
        "--descriptors", help="Precomputed .npy descriptors, one per snapshot, same order.")] = None,
    hidden: Annotated[str, typer.Option(help="Hidden layer widths, e.g. 128,128.")] = "128,128",
    activation: Annotated[str, typer.Option(help="relu, leaky_relu, tanh, sigmoid, silu, gelu.")] = "leaky_relu",
    epochs: Annotated[int, param_option(TrainParams, "max_epochs", help="Maximum epochs")] = 200,
    lr: Annotated[float, param_option(TrainParams, "learning_rate", help="Initial learning rate")] = 1e-3,
    batch_size: Annotated[int, param_option(TrainParams, "batch_size", help="Grid points per step")] = 256,
    patience: Annotated[int, param_option(TrainParams, "patience",
                                          help="Early stopping patience (epochs)")] = 20,
    nproc: Annotated[int, param_option(TrainParams, "nproc",
                                       help="Processes of DistributedDataParallel (gloo)")] = 1,
    checkpoint_dir: Annotated[Path | None, typer.Option(
        help="Checkpoints (default OUT.ckpt/); a killed run resumes from them.")] = None,
    trust_pickle: TrustPickle = False,
    seed: Annotated[int, param_option(TrainParams, "seed", help="Random seed")] = 0,
    members: Annotated[int, typer.Option(
        min=1, help="Train K networks (seeds SEED..SEED+K-1) and average their LDOS.")] = 1,
    weight_decay: Annotated[float, param_option(TrainParams, "weight_decay", help="L2 penalty of Adam")] = 0.0,
    refit_output: Annotated[bool, typer.Option(
        "--refit-output/--no-refit-output",
        help="After training, solve the output layer exactly by least squares on the training "
             "points (removes the random offset of the cell-summed LDOS that Adam leaves).")] = True,
    energy_correction: Annotated[bool, typer.Option(
        "--energy-correction/--no-energy-correction",
        help="After training, fit the energy correction (as `electrons correct`) on the training "
             "snapshots and store it in the model.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    arch: Annotated[str, typer.Option("--model", help="feedforward (descriptor MLP) or se3 (e3nn network "
                                      "on neighbour lists; --rcutfac is its cut-off, Å).")] = "feedforward",
    density_head: Annotated[bool, typer.Option(
        "--density-head/--no-density-head",
        help="se3 only: also predict the density directly, as a residual over the sum of atomic "
             "densities (trained on the snapshots' DFT densities; predict/evaluate then use it).")] = False,
    max_neighbours: Annotated[int, typer.Option("--max-neighbours", min=1, max=256,
                                                help="se3 only: nearest atoms per grid point.")] = 16,
) -> None:
    """Train the descriptors → LDOS network on DFT snapshots; resumable; --nproc N for DDP."""
    import numpy as np

    from matterflow.electrons.ml_tasks import prediction_errors
    from matterflow.electrons.model import EnsembleLdosModel, FeedForwardLdosModel
    from matterflow.electrons.predict import predict_observables

    tp = TrainParams(learning_rate=lr, batch_size=batch_size, max_epochs=epochs, patience=patience,
                     nproc=nproc, seed=seed, weight_decay=weight_decay)
    if arch not in ("feedforward", "se3"):
        raise InputError(f"--model: feedforward or se3 is accepted; got {arch!r}")
    with make_progress(quiet) as progress:
        if arch == "se3":   # neighbour lists, not descriptors (matterflow.electrons.equivariant)
            from matterflow.electrons.equivariant import NeighbourParams, Se3LdosModel
            from matterflow.electrons.ml_tasks import snapshot_dataset

            data = snapshot_dataset(snapshots, "neighbours", NeighbourParams(cutoff=rcutfac or 3.0,
                                                                             max_neighbours=max_neighbours),
                                    progress=progress)
        elif density_head:
            raise InputError("--density-head: only with --model se3")
        else:
            data = _load(snapshots, kind, params, twojmax, rcutfac, descriptors, progress)
        fit, val, held = _split(len(snapshots), test, validation)
        x = np.concatenate([data.x[i] for i in fit])
        y = np.concatenate([data.y[i] for i in fit])
        xv = np.concatenate([data.x[i] for i in val]) if val else None
        yv = np.concatenate([data.y[i] for i in val]) if val else None
        nets = [FeedForwardLdosModel(_ints(hidden, "--hidden"), activation,
                                     train=tp.model_copy(update={"seed": seed + i}), setup=data.setup,
                                     refit_output=refit_output)
                for i in range(members)]
        model = nets[0] if members == 1 else EnsembleLdosModel(nets, setup=data.setup)
        if arch == "se3":
            model = Se3LdosModel(epochs=epochs, batch_size=batch_size, learning_rate=lr, seed=seed,
                                 setup=data.setup, density_head=density_head)
        bar = progress.add_task("training", total=epochs)

        def on_epoch(epoch: int, loss: float) -> None:
            progress.update(bar, completed=epoch + 1, description=f"training (val {loss:.3g})")

        ckpt = checkpoint_dir or out.with_name(out.name + ".ckpt")
        dens: dict = {}
        if arch == "se3" and density_head:   # the snapshots' DFT densities train the density head
            def _rho(idx: list) -> np.ndarray:
                for i in idx:
                    if data.snapshots[i].density is None:
                        raise InputError(f"{snapshots[i]}: density: --density-head needs the DFT density "
                                         "in every training snapshot")
                return np.concatenate([np.asarray(data.snapshots[i].density).reshape(-1) for i in idx])

            dens = {"density": _rho(fit), "density_val": _rho(val) if val else None}
        model.fit(x, y, xv, yv, checkpoint_dir=ckpt, on_epoch=on_epoch if nproc == 1 else None,
                  trust_pickle=trust_pickle, **dens)
        progress.update(bar, completed=epochs)
        if energy_correction:
            from matterflow.electrons.correct import attach_energy_correction

            corr = attach_energy_correction(model, [data.snapshots[i] for i in fit])
            console.print(corr.summary())
        model.save(out)
        h = model.history_ if arch == "se3" else nets[-1].history_
        if members > 1:
            console.print(f"ensemble of {members} networks (seeds {seed}..{seed + members - 1}); "
                          "last member:")
        resumed = ("" if h.resumed_from_epoch is None
                   else f" (resumed after epoch {h.resumed_from_epoch + 1})")
        console.print(f"trained on {len(fit)} snapshots ({x.shape[0]} points, {x.shape[1]} features → "
                      f"{y.shape[1]} energies); best epoch {h.best_epoch + 1} of {h.epochs_run}{resumed}, "
                      f"val MSE {h.best_val_loss:.4g}, {h.seconds:.1f} s")
        rows = []
        for i in held:
            snap = data.snapshots[i]
            try:
                pred = predict_observables(model, snap.atoms, grid_shape=tuple(snap.grid_shape),
                                           progress=progress)
            except MatterflowError as exc:   # the model is saved; say why it cannot be evaluated
                console.print(f"[yellow]{data.paths[i]}: not evaluated: {exc}[/yellow]")
                continue
            rows.append((Path(data.paths[i]).name, prediction_errors(pred, snap)))
    if rows:
        _error_table(rows)
        console.print(error_summary([e for _, e in rows], 10.0)["text"])
    console.print(f"model: {out}")

@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="Model file from `matterflow electrons train`.")],
    snapshots: Annotated[list[Path], typer.Argument(help="DFT snapshot .h5 files to compare with.")],
    tolerance: Annotated[float, typer.Option(
        min=0.0, help="Energy tolerance (meV/atom) counted in the summary.")] = 10.0,
    floor: Annotated[bool, typer.Option(
        "--floor/--no-floor", help="Also the error of the observables of each snapshot's own LDOS "
                                   "(what a perfect model would reach).")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the per-snapshot errors here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Errors of a trained model on DFT snapshots: band, total, Fermi, density; DFT floor; summary."""
    from matterflow.electrons.ml_tasks import floor_errors, prediction_errors
    from matterflow.electrons.model import load_model
    from matterflow.electrons.predict import predict_observables
    from matterflow.electrons.snapshot import load_snapshot

    _check_files(model, snapshots)
    m = load_model(model)
    rows: list[dict[str, Any]] = []
    with make_progress(quiet) as progress:
        bar = progress.add_task("evaluating", total=len(snapshots))
        for p in snapshots:
            snap = load_snapshot(p)
            with warnings.catch_warnings():     # summarised below instead of once per snapshot
                warnings.filterwarnings("ignore", message="energy correction: this cell lies outside")
                pred = predict_observables(m, snap.atoms, grid_shape=tuple(snap.grid_shape))
            row: dict[str, Any] = {"snapshot": str(p), **prediction_errors(pred, snap)}
            if pred.energy_correction_ev:   # the same prediction without the model's energy correction
                n = len(snap.atoms)
                row["energy_correction_leverage"] = pred.energy_correction_leverage
                row["uncorrected"] = {
                    "band_energy_mev_per_atom": row["band_energy_mev_per_atom"]
                    - pred.energy_correction_ev["band"] / n * 1000,
                    "total_energy_mev_per_atom": row["total_energy_mev_per_atom"]
                    - pred.energy_correction_ev["total"] / n * 1000,
                    "fermi_mev": row["fermi_mev"], "density_mrae_percent": row["density_mrae_percent"]}
            if floor and snap.ldos is not None:
                row["floor"] = floor_errors(snap)
            rows.append(row)
            progress.advance(bar)
    _error_table([(f"{Path(r['snapshot']).parent.name}/{Path(r['snapshot']).name}", r) for r in rows],
                 floor=floor, title="ML − DFT per snapshot (floor: the snapshot's own LDOS − DFT)"
                 if floor else "ML − DFT per snapshot")
    summary = error_summary(rows, tolerance)
    console.print(summary["text"])
    doc = {"model": str(model), "tolerance_mev_per_atom": tolerance,
           "summary": {k: v for k, v in summary.items() if k != "text"}, "snapshots": rows}
    if all("uncorrected" in r for r in rows):
        raw = error_summary([r["uncorrected"] for r in rows], tolerance)
        console.print(f"(with the model's energy correction; without it: {raw['text']})")
        doc["summary_uncorrected"] = {k: v for k, v in raw.items() if k != "text"}
        domain = m.setup.meta["energy_correction"].get("domain")
        if domain:
            h_max = float(domain["max_training_leverage"])
            out_of = [(f"{Path(r['snapshot']).parent.name}/{Path(r['snapshot']).name}",
                       r["energy_correction_leverage"]) for r in rows
                      if r["energy_correction_leverage"] > h_max * (1 + 1e-9)]
            console.print(f"energy correction extrapolates (leverage above {h_max:.3g}, the largest of its "
                          f"training cells) on {len(out_of)}/{len(rows)} snapshots"
                          + (": " + ", ".join(f"{n} ({h:.3g})" for n, h in out_of) if out_of else ""))
            doc["energy_correction_max_training_leverage"] = h_max
    if json_out is not None:
        json_out.write_text(json.dumps(doc, indent=1))
        console.print(f"errors: {json_out}")

@app.command("correct")
@handle_errors
def correct_cmd(
    model: Annotated[Path, typer.Argument(help="Model file from `matterflow electrons train`.")],
    snapshots: Annotated[list[Path], typer.Argument(
        help="DFT snapshots to fit on (the model's training snapshots).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Model file to write (default: MODEL).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Fit the energy correction (local ridge model of the band/total residual) and store it in the model."""
    from matterflow.electrons.correct import attach_energy_correction
    from matterflow.electrons.model import load_model
    from matterflow.electrons.snapshot import load_snapshot

    _check_files(model, snapshots)
    m = load_model(model)
    if m.setup is None:
        raise InputError(f"{model}: the model carries no setup; train it with `matterflow electrons train`")
    with make_progress(quiet) as progress:
        bar = progress.add_task("snapshots", total=len(snapshots))
        snaps = []
        for p in snapshots:
            snaps.append(load_snapshot(p, with_ldos=False))
            progress.advance(bar)
    corr = attach_energy_correction(m, snaps)
    target = out or model
    m.save(target)
    console.print(f"{corr.summary()}; model: {target}")

@app.command("hyperopt")
@handle_errors
def hyperopt_cmd(
    snapshots: Annotated[list[Path], typer.Argument(help="Snapshot .h5 files (last one: validation).")],
    storage: Annotated[str, typer.Option(help="Optuna storage; rerun to resume.")] = "sqlite:///ldos-study.db",
    study: Annotated[str, typer.Option(help="Study name.")] = "ldos",
    trials: Annotated[int, typer.Option(min=1, help="Finished trials the study should hold.")] = 20,
    epochs: Annotated[int, typer.Option(min=1, help="Max epochs per trial.")] = 30,
    kind: Annotated[str, typer.Option(help="Descriptors: bispectrum or gaussian.")] = "bispectrum",
    params: Annotated[Path | None, typer.Option("--params", help="YAML/JSON descriptor parameters.")] = None,
    twojmax: Annotated[int | None, typer.Option(help="Bispectrum band limit 2J.")] = None,
    rcutfac: Annotated[float | None, typer.Option(help="Descriptor cut-off scale (Å).")] = None,
    naswot_prefilter: Annotated[int, typer.Option(
        help="Per trial, draw K architectures and keep the best NASWOT score (0: off).")] = 0,
    naswot_compare: Annotated[int, typer.Option(
        help="Instead of a study: score N random architectures by NASWOT, train each, "
             "print the Spearman ρ.")] = 0,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Optuna search (SQLite, resumable, pruning) of the network; NASWOT training-free ranking."""
    import numpy as np

    from matterflow.electrons.hyperopt import HyperoptParams, run_study
    from matterflow.electrons.scaling import Scaler

    if len(snapshots) < 2:
        raise InputError("snapshots: at least two are needed (the last one validates)")
    with make_progress(quiet) as progress:
        data = _load(snapshots, kind, params, twojmax, rcutfac, None, progress)
        x = np.concatenate(data.x[:-1])
        y = np.concatenate(data.y[:-1])
        sx, sy = Scaler("standard").fit(x), Scaler("max").fit(y)
        arrays = (sx.transform(x), sy.transform(y), sx.transform(data.x[-1]), sy.transform(data.y[-1]))
        if naswot_compare:
            from matterflow.electrons.naswot import naswot_vs_training, sample_architectures
            from matterflow.electrons.training import TrainParams

            archs = sample_architectures(naswot_compare, seed=seed)
            cmp = naswot_vs_training(*arrays, archs, TrainParams(max_epochs=epochs, patience=5, seed=seed),
                                     seed=seed)
            for a, s, v in sorted(zip(cmp.architectures, cmp.scores, cmp.val_losses, strict=True),
                                  key=lambda t: -t[1]):
                console.print(f"  NASWOT {s:9.2f}   val MSE {v:.4g}   {a['hidden']} {a['activation']}")
            console.print(f"Spearman ρ(NASWOT score, validation loss) = {cmp.spearman_rho:+.3f} "
                          f"(p = {cmp.spearman_p:.2g}) over {len(archs)} architectures; scoring "
                          f"{cmp.score_seconds:.1f} s, training {cmp.train_seconds:.1f} s")
            return
        hp = HyperoptParams(n_trials=trials, epochs=epochs, naswot_prefilter=naswot_prefilter, seed=seed)
        bar = progress.add_task("trials", total=trials)
        res = run_study(*arrays, hp, storage=storage, study_name=study,
                        callback=lambda done, total: progress.update(bar, completed=done))
    console.print(f"study '{study}' in {storage}: {res.n_complete} complete, {res.n_pruned} pruned, "
                  f"{res.n_failed} failed ({res.n_run_now} run now)")
    console.print(f"best validation MSE {res.best_value:.4g}: {json.dumps(res.best_params)}")

@app.command("predict")
@handle_errors
def predict_cmd(
    model: Annotated[Path, typer.Argument(help="Model file from `matterflow electrons train`.")],
    structure: Annotated[Path, typer.Argument(help="Structure file (ASE-readable) or snapshot .h5.")],
    repeat: Annotated[str, typer.Option(help="Supercell of the structure, e.g. 2,2,2.")] = "1,1,1",
    grid: Annotated[str | None, typer.Option(help="Grid NX,NY,NZ (default: the training spacing).")] = None,
    chunk_points: Annotated[int, typer.Option(min=1, help="Grid points per chunk (bounds memory).")] = 16384,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HDF5 file of DOS and density.")] = None,
    save_ldos: Annotated[bool, typer.Option(help="Keep the whole LDOS (memory!) in --out.")] = False,
    spool_ldos: Annotated[bool, typer.Option(
        help="Pass 1 writes each chunk's LDOS (float32) to a temporary folder on disk, pass 2 reads "
             "it back instead of recomputing descriptors and network (disk: points x energies x 4 "
             "bytes; workers on this machine).")] = False,
    run_dir: Annotated[Path | None, typer.Option(help="Folder of the run (results.h5 with "
                                                 "provenance, cache); default: OUT-run, or "
                                                 "predict-run without --out.")] = None,
    workers: Workers = None,
    processes: Processes = None,
    scheduler: Scheduler = None,
    cluster: Cluster = None,
    force: Force = False,
    quiet: Quiet = False,
    descriptors: Annotated[Path | None, typer.Option(
        help="Given descriptors (.npy, e.g. MALA's .in.npy): predict their LDOS, no workflow.")] = None,
) -> None:
    """Predict DOS, density, Fermi level, band and total energy, chunk by chunk on the executor.

    Runs as a workflow (read_structures -> predict) in --run-dir; the chunks
    spread over the executor's workers (threads of this process by default:
    the descriptor and network code releases the GIL).
    """
    import h5py
    import numpy as np

    from matterflow.core.store import atomic_h5
    from matterflow.electrons.descriptor_tasks import SNAPSHOT_SUFFIXES

    if not model.exists():
        raise InputError(f"{model}: model file not found")
    if not structure.exists():
        raise InputError(f"{structure}: structure file not found")
    if descriptors is not None:
        from matterflow.electrons.cli_mala import predict_descriptors_command

        return predict_descriptors_command(model, structure, descriptors, out)
    rep = _ints(repeat, "--repeat")
    if len(rep) != 3:
        raise InputError(f"--repeat: three integers are needed; got {repeat!r}")
    grid_shape = _ints(grid, "--grid") if grid else None
    if grid_shape is not None and len(grid_shape) != 3:
        raise InputError(f"--grid: three integers are needed; got {grid!r}")
    snapshot_file = structure.suffix.lower() in SNAPSHOT_SUFFIXES
    inputs = {k: f"structure.{k}" for k in ("positions", "cell", "numbers")}
    if snapshot_file:
        inputs["grid_shape"] = "structure.grid_shape"
    steps = [{"id": "structure", "task": "electrons.read_structures",
              "params": {"indices": [] if snapshot_file else [-1]},
              "inputs": {"structure": structure}},
             {"id": "predict", "task": "electrons.predict",
              "params": {"chunk_points": chunk_points, "repeat": list(rep),
                         "grid": list(grid_shape) if grid_shape else None,
                         "return_ldos": save_ldos, "spool_ldos": spool_ldos},
              "inputs": {"model": model, **inputs}}]
    if run_dir is None:
        run_dir = out.with_name(f"{out.stem}-run") if out is not None else Path("predict-run")
    opts = RunOptions(run_dir, workers, processes, scheduler, cluster, force, quiet)
    summary = opts.run_steps(steps, name="electrons-predict", default_processes=False,
                             summary=False)
    with h5py.File(summary.results, "r") as f:
        g = f["predict"]
        p = {name: g[name][()] for name in g}
    n = int(p["n_atoms"])
    shape = tuple(int(s) for s in p["density"].shape)
    n_points = int(np.prod(shape))
    console.print(f"{n} atoms, grid {shape} ({n_points} points, "
                  f"{-(-n_points // chunk_points)} chunks): {float(p['points_per_s']):.0f} points/s")
    band, total = float(p["band_energy_ev"]), float(p["total_energy_ev"])
    console.print(f"Fermi level {float(p['fermi_ev']):.4f} eV; band energy {band:.4f} eV "
                  f"({band / n:.4f} eV/atom); total energy {total:.4f} eV "
                  f"({total / n:.4f} eV/atom)")
    from matterflow.electrons.cli_mala import report_qe_terms

    report_qe_terms(structure, p)
    if out is not None:
        with atomic_h5(out) as f:
            for name, units in (("dos", "1/eV"), ("energy_grid_ev", "eV"), ("density", "1/Å^3"),
                                ("fermi_ev", "eV"), ("band_energy_ev", "eV"),
                                ("total_energy_ev", "eV"),
                                *((("ldos", "1/(eV*Å^3)"),) if save_ldos else ())):
                f.create_dataset(name, data=np.asarray(p[name])).attrs["units"] = units
            f.attrs["model"] = str(model)
            f.attrs["structure"] = str(structure)
            f.attrs["run"] = str(summary.results)
        console.print(f"results: {out}")
