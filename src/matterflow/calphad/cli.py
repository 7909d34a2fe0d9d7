"""``matterflow calphad ...``: fit, sample, propagate, propose."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from matterflow.calphad.tasks import FitParams, ProposeParams
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
    param_option,
    parse_key_values,
    read_result_file,
    save_figures,
    write_result_file,
)
from matterflow.core.errors import InputError

app = typer.Typer(help="Bayesian CALPHAD on pycalphad/ESPEI: fit a model, sample its posterior, "
                  "propagate it to phase diagrams and invariant points, propose experiments.",
                  no_args_is_help=True)


def _write_h5(path: Path, result) -> None:
    write_result_file(path, result)


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
    _print_data_warnings(res.data_warnings)


def _print_data_warnings(messages) -> None:
    """The model's diagram misses data it was fitted to (matterflow.calphad.checks)."""
    from matterflow.clitools import err_console

    for msg in messages:
        err_console.print(f"[yellow]warning:[/yellow] {msg}", markup=True)


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
                         "symbol to sample (repeat); 'all': every fitted symbol (VV....).")] = None,
    offset: Annotated[list[str] | None, typer.Option(help="NAME=TARGET: add a free offset to a "
                      "TDB parameter, e.g. DL0='G(LIQUID,CU,MG;0)' (repeat).")] = None,
    no_offsets: Annotated[bool, typer.Option("--no-offsets", help="Sample only --parameter "
                                             "symbols.")] = False,
    engine: Annotated[str, typer.Option(help="fast (ours), espei (ESPEI's own) or fast-espei "
                                     "(ESPEI's likelihood, all data types, on our engine).")
                      ] = "fast",
    espei_prior: Annotated[str | None, typer.Option(help="Prior as ESPEI defines it (JSON), "
                           "e.g. '{\"name\": \"normal\", \"loc_relative\": 1, "
                           "\"scale_relative\": 0.5}'.")] = None,
    init_std_relative: Annotated[float | None, typer.Option(help="Initial walker spread "
                                 "relative to |start| (ESPEI: 0.1).")] = None,
    moves: Annotated[str, typer.Option(help="Ensemble moves: stretch, de (differential "
                                    "evolution) or de-stretch.")] = "stretch",
    target_rhat: Annotated[float, typer.Option(help="Convergence check: R-hat at most.")] = 1.05,
    target_ess: Annotated[float, typer.Option(help="Convergence check: ESS at least.")] = 200.0,
    walkers: Annotated[int, typer.Option(help="emcee walkers.")] = 8,
    steps: Annotated[int, typer.Option(help="MCMC steps.")] = 20,
    stride: Annotated[int, typer.Option(help="Use every k-th ZPF tie-line.")] = 1,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint file (default: "
                          "OUT.ckpt, HDF5); a killed run resumes from it.")] = None,
    trust_pickle: TrustPickle = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Workers = None,
    processes: Processes = None,
    scheduler: Scheduler = None,
    cluster: Cluster = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """emcee MCMC against the data, checkpointed; R-hat/ESS and trace plots.

    Runs as a workflow step on the executor (provenance and the step cache in
    OUT-run/); with more than one worker the walkers' log-posteriors are spread
    over them.
    """
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from matterflow.calphad import figures
    from matterflow.calphad.mcmc import ConvergenceWarning, diagnostics
    from matterflow.calphad.tasks import sample as task
    from matterflow.core.store import Results

    p = {"engine": engine, "n_walkers": walkers, "n_steps": steps, "data_stride": stride,
         "seed": seed, "checkpoint": str((checkpoint or out.with_suffix(".ckpt")).resolve()),
         "parameters": list(parameter or []), "trust_pickle": trust_pickle}
    if espei_prior is not None:
        import json

        try:
            p["espei_prior"] = json.loads(espei_prior)
        except json.JSONDecodeError as exc:
            raise InputError(f"--espei-prior {espei_prior!r}: not JSON ({exc.msg})") from None
    if init_std_relative is not None:
        p["init_std_relative"] = init_std_relative
    if moves != "stretch":
        p["moves"] = moves
    offs = _parse_offsets(offset)
    if offs is not None:
        p["offsets"] = offs
    if no_offsets:
        p["offsets"] = {}
    params = task.make_params(p)
    inputs = {}
    for name, path in (("tdb", tdb), ("datasets", datasets)):
        if path is not None:
            if not path.exists():
                raise InputError(f"--{name} {path}: not found")
            inputs[name] = path
    run_dir = out.with_name(f"{out.stem}-run")
    opts = RunOptions(run_dir, workers, processes, scheduler, cluster, force, quiet)
    with warnings.catch_warnings():  # said once below, also when the step is reused
        warnings.simplefilter("ignore", ConvergenceWarning)
        summary = opts.run_steps([{"id": "sample", "task": "calphad.sample", "params": params,
                                   "inputs": inputs}], name="calphad-sample", summary=False)
    values, units = Results(summary.results).read("sample")
    _write_h5(out, (values, units))
    pngs = _save_figs(figures.trace_figures(values), out.with_suffix(""))
    if int(values["resumed_from"]):
        console.print(f"resumed from step {int(values['resumed_from'])} of {steps}")
    console.print(f"{steps} steps x {walkers} walkers, {int(values['n_data'])} residuals, "
                  f"{float(values['seconds_per_evaluation']):.3f} s per log-posterior")
    for n, r, e, c in zip(values["parameter_names"], values["rhat"], values["ess"],
                          values["chain"][-1].mean(axis=0), strict=False):
        console.print(f"  {n}: last mean {c:.1f} J/mol, R-hat {r:.3f}, ESS {e:.0f}")
    bad = [str(n) for n, r, e in zip(values["parameter_names"], values["rhat"], values["ess"],
                                     strict=False)
           if not (float(r) <= target_rhat and float(e) >= target_ess)]
    console.print(f"convergence (R-hat <= {target_rhat:g} and ESS >= {target_ess:g} for every "
                  f"parameter): " + ("met" if not bad else
                                     f"NOT met for {len(bad)} of {len(values['rhat'])} "
                                     f"({', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''})"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        diagnostics(values["chain"], list(values["parameter_names"]))
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            from matterflow.clitools import err_console
            err_console.print(f"[yellow]warning:[/yellow] {w.message}", markup=True)
    console.print(f"chain: {out}\ntraces: {', '.join(map(str, pngs))}\nrun: {summary.results}")


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
    seed: Annotated[int, typer.Option(help="Random seed of the draw selection.")] = 0,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Draws per Dask task (default: "
                                                   "a few tasks per worker).")] = None,
    datasets: Annotated[Path | None, typer.Option(help="ESPEI datasets the model was fitted to: "
                        "its diagram at the posterior mean is checked against their ZPF data "
                        "(default: the bundled Cu-Mg for a Cu-Mg model).")] = None,
    check_data: Annotated[bool, typer.Option(help="Warn where the diagram misses the ZPF "
                                              "data.")] = True,
    workers: Workers = None,
    processes: Processes = None,
    scheduler: Scheduler = None,
    cluster: Cluster = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Posterior draws -> invariant points with 95 % intervals, ensemble phase diagram.

    Runs as a workflow (read_chain -> posterior -> diagram, mapped over draws ->
    summarize) into OUT/results.h5; a killed run resumes with the draws already done.
    """
    import json
    from types import SimpleNamespace

    import matplotlib

    matplotlib.use("Agg")
    from matterflow.calphad import figures
    from matterflow.core.store import Results

    ch = read_result_file(chain, "chain")
    for key in ("chain", "model_tdb", "parameter_names"):
        if key not in ch:
            raise InputError(f"{chain}: no {key!r} dataset; is it a `calphad sample` output?")
    qp = []
    for q in query or []:
        try:
            t, x = (float(v) for v in q.split(","))
        except ValueError:
            raise InputError(f"--query {q!r}: expected T,x (e.g. 800,0.5)") from None
        qp.append((t, x))
    dparams = {"t_min": t_min, "t_max": t_max, **({"query_points": qp} if qp else {})}
    model = {"model_tdb": "chain.model_tdb", "parameter_names": "chain.parameter_names"}
    steps = [
        {"id": "chain", "task": "calphad.read_chain", "inputs": {"chain": chain}},
        {"id": "posterior", "task": "calphad.posterior",
         "params": {"n_draws": draws, "burn_fraction": burn, "t_min": t_min, "t_max": t_max,
                    "seed": seed},
         "inputs": {"chain": "chain.chain", **model}},
        {"id": "diagram", "task": "calphad.diagram", "params": dparams, "batch_size": batch_size,
         "inputs": {"draw": "posterior.draws", "labels": "posterior.invariant_labels", **model}},
        {"id": "summarize", "task": "calphad.summarize",
         "inputs": {"labels": "posterior.invariant_labels",
                    **{k: f"diagram.{k}" for k in (
                        "invariant_temperature_k", "invariant_x", "boundary_x", "temperatures_k",
                        "query_fractions", "query_gibbs_j_mol", "query_activity",
                        "invariant_signature", "invariant_all_temperature_k")}}},
    ]
    opts = RunOptions(out, workers, processes, scheduler, cluster, force, quiet)
    summary = opts.run_steps(steps, name="calphad-propagate", summary=False)
    res = Results(summary.results)
    post = SimpleNamespace(**res["posterior"])
    vals, units = res.read("diagram")
    tab = SimpleNamespace(**res["summarize"])
    out.mkdir(parents=True, exist_ok=True)
    _write_h5(out / "draws.h5", ({**vals, "phases": list(post.phases), "draws": post.draws,
                                   "labels": list(post.invariant_labels)},
                                  {**units, "draws": "J/mol"}))
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
    topologies = json.loads(str(getattr(tab, "topologies", "[]")) or "[]")
    if len(topologies) > 1:
        console.print(f"{len(topologies)} topologies among the draws (each with its own "
                      "invariants and intervals):")
        for top in topologies:
            console.print(f"  {top['count']} of {draws} draws:")
            for r in top["invariants"]:
                console.print(f"    {r['label']:34s} T {r['temperature_mean_k']:6.1f} K "
                              f"[{r['temperature_low_k']:.1f}, {r['temperature_high_k']:.1f}]")
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
    data_warnings = _propagate_data_warnings(ch, post, datasets) if check_data else []
    _print_data_warnings(data_warnings)
    (out / "invariants.json").write_text(json.dumps({"invariants": rows, "properties": queries,
                                                     "topologies": topologies,
                                                     "data_warnings": data_warnings},
                                                    indent=1, default=float))
    pngs = _save_figs(figures.ensemble_figures(tab.__dict__), out / "phase_diagram")
    console.print(f"draws: {out / 'draws.h5'}\ntable: {out / 'invariants.json'}\n"
                  f"figure: {pngs[0]}\nrun: {summary.results}")


def _propagate_data_warnings(ch: dict, post, datasets: Path | None) -> list[str]:
    """Messages where the posterior-mean diagram misses the ZPF data (empty if no data)."""
    import warnings

    from pycalphad import Database

    from matterflow.calphad.checks import check_files
    from matterflow.calphad.datasets import bundled_system
    from matterflow.calphad.sampling import DEFAULT_ALIASES

    dbf = Database(str(ch["model_tdb"]))
    if datasets is None:
        elements = sorted(str(e) for e in dbf.elements if str(e) not in ("VA", "/-"))
        if elements != ["CU", "MG"]:
            return []
        datasets = bundled_system("Cu-Mg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = check_files(dbf, datasets, [str(n) for n in ch["parameter_names"]],
                                post.posterior_mean, aliases=DEFAULT_ALIASES)
        except InputError as exc:  # data of other phases or systems: say so, do not fail
            return [f"diagram not checked against {datasets}: {exc}"]
    return [m.message for m in found]


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

    d = read_result_file(draws, "draws")
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


# ternary systems: section, liquidus, section-propagate, section-propose
from matterflow.calphad import ternary_cli  # noqa: E402

app.add_typer(ternary_cli.app)
