"""``matterflow calphad ...``: fit, sample, propagate, propose."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matterflow.calphad.tasks import FitParams, ProposeParams
from matterflow.clitools import (
    console,
    handle_errors,
    make_progress,
    param_option,
    parse_key_values,
    save_figures,
    write_result_file,
)
from matterflow.core.errors import InputError

app = typer.Typer(help="Bayesian CALPHAD on pycalphad/ESPEI: fit a model, sample its posterior, "
                  "propagate it to phase diagrams and invariant points, propose experiments.",
                  no_args_is_help=True)


def _write_h5(path: Path, result) -> None:
    write_result_file(path, result)


def _read_h5(path: Path, what: str) -> dict:
    import h5py

    from matterflow.core.store import read_group

    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    try:
        with h5py.File(path, "r") as f:
            return read_group(f)[0]
    except OSError as exc:
        raise InputError(f"{path}: not an HDF5 {what} file ({exc})") from None


def diagram_defaults_query() -> list:
    from matterflow.calphad.tasks import DiagramParams

    return list(DiagramParams().query_points)


def _save_figs(figs: dict, stem: Path) -> list[Path]:
    return save_figures(figs, stem=stem)


@app.command()
@handle_errors
def fit(
    datasets: Annotated[Path | None, typer.Option(help="ESPEI datasets folder (default: the "
                                                  "bundled Cu-Mg).")] = None,
    phases: Annotated[Path | None, typer.Option(help="ESPEI phase-models JSON.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="TDB file to write.")] = Path("model.tdb"),
    ridge_alpha: Annotated[float | None, param_option(FitParams, "ridge_alpha",
                                                      help="Ridge regularisation")] = None,
) -> None:
    """ESPEI parameter generation from thermochemical data (datasets validated); writes a TDB."""
    from matterflow.calphad.tasks import fit as task

    res = task(datasets, phases, params={"ridge_alpha": ridge_alpha})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(res.tdb)
    console.print(f"{len(res.parameter_names)} parameters from {res.n_datasets} datasets -> {out}")
    for n, v in zip(res.parameter_names, res.parameter_values, strict=False):
        console.print(f"  {n} = {v:.6g}")


def _parse_offsets(items: list[str] | None) -> dict | None:
    if not items:
        return None
    return parse_key_values(items, "--offset", key="NAME", value="TARGET",
                            example="DL0='G(LIQUID,CU,MG;0)'")


@app.command()
@handle_errors
def sample(
    tdb: Annotated[Path | None, typer.Option(help="Model TDB (default: the published Cu-Mg "
                                             "assessment shipped with pycalphad).")] = None,
    datasets: Annotated[Path | None, typer.Option(help="ESPEI datasets folder (default: the "
                                                  "bundled Cu-Mg).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Chain file (HDF5).")] = Path("chain.h5"),
    parameter: Annotated[list[str] | None, typer.Option("--parameter", "-p", help="Database "
                         "symbol to sample (repeat).")] = None,
    offset: Annotated[list[str] | None, typer.Option(help="NAME=TARGET: add a free offset to a "
                      "TDB parameter, e.g. DL0='G(LIQUID,CU,MG;0)' (repeat).")] = None,
    no_offsets: Annotated[bool, typer.Option("--no-offsets", help="Sample only --parameter "
                                             "symbols.")] = False,
    engine: Annotated[str, typer.Option(help="fast (ours) or espei.")] = "fast",
    walkers: Annotated[int, typer.Option(help="emcee walkers.")] = 8,
    steps: Annotated[int, typer.Option(help="MCMC steps.")] = 20,
    stride: Annotated[int, typer.Option(help="Use every k-th ZPF tie-line.")] = 1,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint file (default: "
                          "OUT.ckpt); a killed run resumes from it.")] = None,
    workers: Annotated[int, typer.Option(help="Dask workers for likelihood evaluations "
                                         "(1 = in process).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """emcee MCMC against the data, checkpointed; R-hat/ESS and trace plots."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from matterflow.calphad import figures
    from matterflow.calphad.mcmc import ConvergenceWarning, DaskPool
    from matterflow.calphad.tasks import sample as task
    from matterflow.calphad.tasks import sample_posterior

    p = {"engine": engine, "n_walkers": walkers, "n_steps": steps, "data_stride": stride,
         "seed": seed, "checkpoint": str(checkpoint or out.with_suffix(".ckpt")),
         "parameters": list(parameter or [])}
    offs = _parse_offsets(offset)
    if offs is not None:
        p["offsets"] = offs
    if no_offsets:
        p["offsets"] = {}
    params = task.make_params(p)
    with make_progress(quiet) as progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        bar = progress.add_task("MCMC steps", total=steps)

        def tick(done, total):
            progress.update(bar, completed=done)

        if workers > 1:
            from matterflow.core.execute import dask_client

            with dask_client(workers=workers) as client:
                res = sample_posterior(tdb, datasets, params=params, pool=DaskPool(client),
                                       progress=tick)
        else:
            res = sample_posterior(tdb, datasets, params=params, progress=tick)
    _write_h5(out, res)
    pngs = _save_figs(figures.trace_figures(res.__dict__), out.with_suffix(""))
    if res.resumed_from:
        console.print(f"resumed from step {res.resumed_from} of {steps}")
    console.print(f"{steps} steps x {walkers} walkers, {res.n_data} residuals, "
                  f"{res.seconds_per_evaluation:.3f} s per log-posterior")
    for n, r, e, c in zip(res.parameter_names, res.rhat, res.ess, res.chain[-1].mean(axis=0), strict=False):
        console.print(f"  {n}: last mean {c:.1f} J/mol, R-hat {r:.3f}, ESS {e:.0f}")
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            from matterflow.clitools import err_console
            err_console.print(f"[yellow]warning:[/yellow] {w.message}", markup=True)
    console.print(f"chain: {out}\ntraces: {', '.join(map(str, pngs))}")


@app.command()
@handle_errors
def propagate(
    chain: Annotated[Path, typer.Argument(help="Chain file from `calphad sample`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("calphad-out"),
    draws: Annotated[int, typer.Option(help="Posterior draws.")] = 20,
    burn: Annotated[float, typer.Option(help="Burn-in fraction of the chain.")] = 0.5,
    t_min: Annotated[float, typer.Option(help="Lowest temperature (K).")] = 500.0,
    t_max: Annotated[float, typer.Option(help="Highest temperature (K).")] = 1400.0,
    query: Annotated[list[str] | None, typer.Option(help="T,x where properties are reported "
                     "(repeat), e.g. 800,0.5.")] = None,
    workers: Annotated[int, typer.Option(help="Dask workers (1 = in process).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed of the draw selection.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Posterior draws -> invariant points with 95 % intervals, ensemble phase diagram."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    from matterflow.calphad import figures
    from matterflow.calphad.propagate import run_diagrams
    from matterflow.calphad.tasks import posterior, summarize

    ch = _read_h5(chain, "chain")
    for key in ("chain", "model_tdb", "parameter_names"):
        if key not in ch:
            raise InputError(f"{chain}: no {key!r} dataset; is it a `calphad sample` output?")
    post = posterior(ch["chain"], ch["model_tdb"], ch["parameter_names"],
                     params={"n_draws": draws, "burn_fraction": burn, "t_min": t_min,
                             "t_max": t_max, "seed": seed})
    qp = []
    for q in query or []:
        try:
            t, x = (float(v) for v in q.split(","))
        except ValueError:
            raise InputError(f"--query {q!r}: expected T,x (e.g. 800,0.5)") from None
        qp.append((t, x))
    dparams = {"t_min": t_min, "t_max": t_max, **({"query_points": qp} if qp else {})}
    with make_progress(quiet) as progress:
        bar = progress.add_task("draws", total=draws)

        def tick(done, total):
            progress.update(bar, completed=done)

        if workers > 1:
            from matterflow.core.execute import dask_client

            with dask_client(workers=workers) as client:
                vals = run_diagrams(post.draws, ch["model_tdb"], ch["parameter_names"],
                                    post.invariant_labels, dparams, client=client, progress=tick)
        else:
            vals = run_diagrams(post.draws, ch["model_tdb"], ch["parameter_names"],
                                post.invariant_labels, dparams, progress=tick)
    tab = summarize(vals["invariant_temperature_k"], vals["invariant_x"], vals["boundary_x"],
                    vals["temperatures_k"], post.invariant_labels, vals["query_fractions"],
                    vals["query_gibbs_j_mol"], vals["query_activity"])
    out.mkdir(parents=True, exist_ok=True)
    _write_h5(out / "draws.h5", {**vals, "phases": post.phases, "draws": post.draws,
                                  "labels": post.invariant_labels})
    rows = []
    console.print(f"invariant points over {draws} draws (mean [2.5 %, 97.5 %]):")
    for k, lab in enumerate(tab.labels):
        rows.append({"label": lab, "temperature_k": [tab.temperature_mean_k[k],
                     tab.temperature_low_k[k], tab.temperature_high_k[k]],
                     "x": [tab.x_mean[k].tolist(), tab.x_low[k].tolist(), tab.x_high[k].tolist()],
                     "found_fraction": tab.found_fraction[k]})
        console.print(f"{lab:34s} T {tab.temperature_mean_k[k]:6.1f} K "
                      f"[{tab.temperature_low_k[k]:.1f}, {tab.temperature_high_k[k]:.1f}]  "
                      f"x {tab.x_mean[k][1]:.3f} "
                      f"[{tab.x_low[k][1]:.3f}, {tab.x_high[k][1]:.3f}]")
    queries = []
    qpts = qp or diagram_defaults_query()
    for j, (t, x) in enumerate(qpts):
        fr = {ph: [float(tab.query_fraction_mean[j, k]), float(tab.query_fraction_low[j, k]),
                   float(tab.query_fraction_high[j, k])]
              for k, ph in enumerate(post.phases) if tab.query_fraction_high[j, k] > 0}
        queries.append({"temperature_k": t, "x": x, "phase_fractions": fr,
                        "gibbs_j_mol": [float(tab.query_gibbs_mean_j_mol[j]),
                                        float(tab.query_gibbs_std_j_mol[j])],
                        "activity_2": [float(tab.query_activity_mean[j]),
                                       float(tab.query_activity_low[j]),
                                       float(tab.query_activity_high[j])]})
        fr_txt = ", ".join(f"{ph} {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" for ph, v in fr.items())
        console.print(f"at T={t:g} K, x={x:g}: {fr_txt}; G {tab.query_gibbs_mean_j_mol[j]:.0f} "
                      f"± {tab.query_gibbs_std_j_mol[j]:.0f} J/mol; activity "
                      f"{tab.query_activity_mean[j]:.3f} [{tab.query_activity_low[j]:.3f}, "
                      f"{tab.query_activity_high[j]:.3f}]")
    (out / "invariants.json").write_text(json.dumps({"invariants": rows, "properties": queries},
                                                    indent=1, default=float))
    pngs = _save_figs(figures.ensemble_figures(tab.__dict__), out / "phase_diagram")
    console.print(f"draws: {out / 'draws.h5'}\ntable: {out / 'invariants.json'}\n"
                  f"figure: {pngs[0]}")


@app.command()
@handle_errors
def propose(
    draws: Annotated[Path, typer.Argument(help="draws.h5 from `calphad propagate`.")],
    top_k: Annotated[int, param_option(ProposeParams, "top_k", help="Experiments to propose")] = 5,
    cost_per_100k: Annotated[float, param_option(ProposeParams, "cost_per_100k",
                                                 help="Relative cost per 100 K above the "
                                                      "lowest temperature")] = 0.0,
    out: Annotated[Path | None, typer.Option(help="Figure (PNG) of the entropy map.")] = None,
) -> None:
    """Rank candidate (T, x) experiments by the entropy of the predicted phase set."""
    import matplotlib

    matplotlib.use("Agg")
    from matterflow.calphad import figures
    from matterflow.calphad.tasks import propose_experiments

    d = _read_h5(draws, "draws")
    if "phase_set_code" not in d:
        raise InputError(f"{draws}: no 'phase_set_code'; is it a `calphad propagate` draws.h5?")
    res = propose_experiments(d["phase_set_code"], d["temperatures_k"], d["x_grid"],
                              d["phases"], params={"top_k": top_k,
                                                   "cost_per_100k": cost_per_100k})
    console.print("rank  T (K)    x      entropy (nat)  cost   score  most likely (p)")
    for r in range(len(res.x)):
        console.print(f"{r + 1:4d}  {res.temperature_k[r]:6.1f}  {res.x[r]:.3f}  "
                      f"{res.entropy[r]:.3f}          {res.cost[r]:.2f}   {res.score[r]:.3f}  "
                      f"{res.modal_phase_set[r]} ({res.modal_probability[r]:.2f})")
    fig_path = out or draws.with_name("proposal.png")
    _save_figs(figures.proposal_figures(res.__dict__), fig_path.with_suffix(""))
    console.print(f"figure: {fig_path}")
