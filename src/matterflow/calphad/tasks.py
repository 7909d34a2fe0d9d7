"""Tasks of the calphad domain (entry point ``matterflow.tasks: calphad``).

fit -> sample -> posterior -> diagram (mapped over draws) -> summarize, propose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from matterflow.calphad import figures as figs
from matterflow.calphad.sampling import (  # noqa: F401  (build_model, make_loglike: re-exported)
    SampleParams,
    SampleResult,
    build_model,
    make_loglike,
    sample_posterior,
)
from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

__all__ = ["fit", "sample", "read_chain", "posterior", "diagram", "summarize",
           "propose_experiments", "TASKS", "sample_posterior"]

KELVIN = {"units": "K"}


# ============================================================================ fit
class FitParams(Params):
    ref_state: Literal["SGTE91"] = Field("SGTE91", description="unary reference data (ESPEI)")
    excess_model: Literal["linear"] = Field("linear", description="ESPEI excess model")
    ridge_alpha: float | None = Field(None, gt=0, description="ridge regularisation of the "
                                      "linear fits (ESPEI; None = ordinary least squares)")
    aicc_penalty_factor: float | None = Field(None, gt=0, description="AICc penalty factor")
    check_data: bool = Field(True, description="compare the fitted model's phase diagram with "
                             "the ZPF data (phases never stable, invariants off the data) and "
                             "warn, naming the data set")


@dataclass(frozen=True)
class FitResult:
    tdb: str = quantity("", "the fitted model as TDB text")
    parameter_names: list = quantity("", "names of the fitted symbols (VV0000 ...)")
    parameter_values: np.ndarray = quantity("J/mol or J/(mol K)", "(n_params,)")
    n_datasets: int = quantity("dimensionless", "datasets read")
    data_warnings: list = quantity("", "where the fitted model's diagram misses its ZPF data "
                                   "(matterflow.calphad.checks), one message each")


def _fit_figures(outputs: dict, params: FitParams) -> dict:
    return figs.fit_figures(outputs)


@task("calphad.fit", params=FitParams, figures=_fit_figures)
def fit(datasets: Path | None = None, phases: Path | None = None, *,
        params: FitParams) -> FitResult:
    """ESPEI parameter generation from thermochemical data; the model as TDB text."""
    from espei.paramselect import generate_parameters

    from matterflow.calphad.datasets import bundled_system, check_consistency, load_datasets

    ds_path = Path(datasets) if datasets is not None else bundled_system("Cu-Mg")
    ph_path = Path(phases) if phases is not None else ds_path.parent / f"{ds_path.name}-phases.json"
    if not ph_path.exists():
        raise InputError(f"{ph_path}: phase-models JSON not found (give --phases)")
    try:
        phase_models = json.loads(ph_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{ph_path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    for key in ("components", "phases"):
        if key not in phase_models:
            raise InputError(f"{ph_path}: missing field {key!r} (ESPEI phase models need "
                             "'components' and 'phases')")
    for name, ph in phase_models["phases"].items():
        if "sublattice_model" not in ph or "sublattice_site_ratios" not in ph:
            raise InputError(f"{ph_path}: phases.{name}: needs 'sublattice_model' and "
                             "'sublattice_site_ratios'")
    dsets = load_datasets(ds_path)
    check_consistency(dsets, phase_models["components"], phase_models["phases"])
    dbf = generate_parameters(phase_models, dsets, params.ref_state, params.excess_model,
                              ridge_alpha=params.ridge_alpha,
                              aicc_penalty_factor=params.aicc_penalty_factor)
    names = sorted(s for s in dbf.symbols if s.startswith("VV"))
    tdb = dbf.to_string(fmt="tdb")
    notes: list[str] = []
    if params.check_data:
        from pycalphad import Database

        from matterflow.calphad.checks import diagram_vs_data, warn_mismatches

        found = diagram_vs_data(Database(tdb), dsets)
        warn_mismatches(found)
        notes = [m.message for m in found]
    return FitResult(tdb=tdb, parameter_names=names,
                     parameter_values=np.array([float(dbf.symbols[s]) for s in names]),
                     n_datasets=len(dsets), data_warnings=notes)


# ============================================================================ sample
# parameters, result, model, likelihood and sampler: matterflow.calphad.sampling


def _sample_figures(outputs: dict, params: SampleParams) -> dict:
    return figs.trace_figures(outputs)


@task("calphad.sample", params=SampleParams, figures=_sample_figures)
def sample(tdb: Path | str | None = None, datasets: Path | None = None, *,
           params: SampleParams) -> SampleResult:
    """emcee MCMC of model parameters against phase-equilibrium and activity data."""
    from matterflow.core.execute import WorkerPool, report_progress

    # on the executor's cluster, the walkers' log-posteriors are spread over its workers,
    # and the steps done show on the step's progress bar
    return sample_posterior(tdb, datasets, params=params, pool=WorkerPool(),
                            progress=report_progress)


# ============================================================================ read_chain
@dataclass(frozen=True)
class Chain:
    chain: np.ndarray = quantity("J/mol", "(n_steps, n_walkers, n_params) parameter values")
    model_tdb: str = quantity("", "model TDB with the sampled symbols (start values)")
    parameter_names: list = quantity("", "(n_params,)")


@task("calphad.read_chain")
def read_chain(chain: Path) -> Chain:
    """The chain, model and parameter names of a chain file written by `calphad sample`."""
    import h5py

    from matterflow.core.store import read_group

    path = Path(chain)
    if not path.exists():
        raise InputError(f"{path}: chain file not found")
    try:
        with h5py.File(path, "r") as f:
            values = read_group(f)[0]
    except OSError as exc:
        raise InputError(f"{path}: not an HDF5 chain file ({exc})") from None
    for key in ("chain", "model_tdb", "parameter_names"):
        if key not in values:
            raise InputError(f"{path}: no {key!r} dataset; is it a `calphad sample` output?")
    return Chain(chain=np.asarray(values["chain"], dtype=float), model_tdb=str(values["model_tdb"]),
                 parameter_names=[str(n) for n in values["parameter_names"]])


# ============================================================================ posterior
class PosteriorParams(Params):
    burn_fraction: float = Field(0.5, ge=0, lt=1, description="leading fraction of steps dropped")
    n_draws: int = Field(20, ge=1, le=100_000, description="posterior draws to propagate")
    n_grid: int = Field(150, ge=20, le=5000, description="grid points per site-fraction axis")
    t_min: float = Field(500.0, gt=0, description="lowest temperature scanned",
                         json_schema_extra=KELVIN)
    t_max: float = Field(1400.0, gt=0, description="highest temperature scanned",
                         json_schema_extra=KELVIN)
    seed: int = Field(0, ge=0, description="random seed of the draw selection")


@dataclass(frozen=True)
class Posterior:
    draws: np.ndarray = quantity("J/mol", "(n_draws, n_params) posterior samples")
    posterior_mean: np.ndarray = quantity("J/mol", "(n_params,)")
    invariant_labels: list = quantity("", "invariants of the posterior-mean model")
    mean_model_temperature_k: np.ndarray = quantity("K", "(n_labels,) at the posterior mean")
    phases: list = quantity("", "model phases (sorted)")


@task("calphad.posterior", params=PosteriorParams)
def posterior(chain: np.ndarray, model_tdb: str, parameter_names: list, *,
              params: PosteriorParams) -> Posterior:
    """Posterior draws after burn-in, and the invariant points of the posterior mean."""
    from matterflow.calphad.propagate import model_from_text

    chain = np.asarray(chain, dtype=float)
    if chain.ndim != 3:
        raise InputError(f"chain: expected shape (n_steps, n_walkers, n_params); got {chain.shape}")
    if params.t_max <= params.t_min:
        raise InputError(f"t_max ({params.t_max}) must exceed t_min ({params.t_min})")
    kept = chain[int(len(chain) * params.burn_fraction):].reshape(-1, chain.shape[2])
    rng = np.random.default_rng(params.seed)
    idx = rng.choice(len(kept), size=params.n_draws, replace=len(kept) < params.n_draws)
    draws = kept[idx]
    mean = kept.mean(axis=0)
    model = model_from_text(model_tdb, tuple(str(p) for p in parameter_names), params.n_grid)
    invs = model.invariants(mean, t_min=params.t_min, t_max=params.t_max)
    return Posterior(draws=draws, posterior_mean=mean, invariant_labels=[i.label for i in invs],
                     mean_model_temperature_k=np.array([i.temperature_k for i in invs]),
                     phases=list(model.phases))


# ============================================================================ diagram
class DiagramParams(Params):
    t_min: float = Field(500.0, gt=0, description="lowest temperature", json_schema_extra=KELVIN)
    t_max: float = Field(1400.0, gt=0, description="highest temperature",
                         json_schema_extra=KELVIN)
    n_temperatures: int = Field(46, ge=2, le=2000, description="temperatures of the grid")
    n_x: int = Field(51, ge=2, le=2000, description="compositions of the grid")
    dt_scan: float = Field(10.0, gt=0, le=200, description="invariant scan step",
                           json_schema_extra=KELVIN)
    query_points: list[tuple[float, float]] = Field(
        [(800.0, 0.5), (1000.0, 0.3)], description="(T in K, x) where properties are reported")
    n_grid: int = Field(150, ge=20, le=5000, description="grid points per site-fraction axis")


@dataclass(frozen=True)
class DrawDiagram:
    invariant_temperature_k: np.ndarray = quantity("K", "(n_labels,) NaN if absent")
    invariant_x: np.ndarray = quantity("dimensionless", "(n_labels, 3) phase compositions")
    temperatures_k: np.ndarray = quantity("K", "(n_T,) grid")
    x_grid: np.ndarray = quantity("dimensionless", "(n_x,) mole fraction of component 2")
    boundary_x: np.ndarray = quantity("dimensionless", "(n_pairs, n_T, 2) two-phase edges")
    phase_set_code: np.ndarray = quantity("dimensionless", "(n_T, n_x) index of phase set")
    query_fractions: np.ndarray = quantity("dimensionless", "(n_q, n_phases)")
    query_gibbs_j_mol: np.ndarray = quantity("J/mol", "(n_q,) equilibrium molar G")
    query_activity: np.ndarray = quantity("dimensionless", "(n_q,) activity of component 2")
    invariant_signature: str = quantity("", "labels of all this draw's invariants, ';'-joined "
                                        "by temperature (its topology)")
    invariant_all_temperature_k: np.ndarray = quantity("K", "(MAX_INVARIANTS,) temperatures of "
                                                       "all its invariants, NaN-padded")


@task("calphad.diagram", params=DiagramParams, map_over="draw")
def diagram(draw: np.ndarray, model_tdb: str, parameter_names: list, labels: list, *,
            params: DiagramParams) -> DrawDiagram:
    """Phase diagram, invariant points and properties of one posterior draw."""
    from matterflow.calphad.propagate import diagram_of_draw, model_from_text

    if params.t_max <= params.t_min:
        raise InputError(f"t_max ({params.t_max}) must exceed t_min ({params.t_min})")
    for _t, x in params.query_points:
        if not 0 <= x <= 1:
            raise InputError(f"query_points: composition x={x} is outside [0, 1]")
    model = model_from_text(model_tdb, tuple(str(p) for p in parameter_names), params.n_grid)
    model.check_temperature([params.t_min, params.t_max] + [t for t, _ in params.query_points])
    temps = np.linspace(params.t_min, params.t_max, params.n_temperatures)
    xg = np.linspace(0.0, 1.0, params.n_x)
    out = diagram_of_draw(model, np.asarray(draw, dtype=float), list(labels), temps, xg,
                          params.query_points, t_scan=(params.t_min, params.t_max),
                          dt=params.dt_scan)
    return DrawDiagram(temperatures_k=temps, x_grid=xg, **out)


# ============================================================================ summarize
class SummarizeParams(Params):
    level: float = Field(0.95, gt=0, lt=1, description="credible level of the intervals")


@dataclass(frozen=True)
class InvariantTable:
    labels: list = quantity("", "(n_labels,) kind:phases")
    temperature_mean_k: np.ndarray = quantity("K", "(n_labels,)")
    temperature_low_k: np.ndarray = quantity("K", "(n_labels,) lower end of the interval")
    temperature_high_k: np.ndarray = quantity("K", "(n_labels,) upper end")
    x_mean: np.ndarray = quantity("dimensionless", "(n_labels, 3)")
    x_low: np.ndarray = quantity("dimensionless", "(n_labels, 3)")
    x_high: np.ndarray = quantity("dimensionless", "(n_labels, 3)")
    found_fraction: np.ndarray = quantity("dimensionless", "(n_labels,) draws showing it")
    query_fraction_mean: np.ndarray = quantity("dimensionless", "(n_q, n_phases)")
    query_fraction_low: np.ndarray = quantity("dimensionless", "(n_q, n_phases)")
    query_fraction_high: np.ndarray = quantity("dimensionless", "(n_q, n_phases)")
    query_gibbs_mean_j_mol: np.ndarray = quantity("J/mol", "(n_q,)")
    query_gibbs_std_j_mol: np.ndarray = quantity("J/mol", "(n_q,)")
    query_activity_mean: np.ndarray = quantity("dimensionless", "(n_q,)")
    query_activity_low: np.ndarray = quantity("dimensionless", "(n_q,)")
    query_activity_high: np.ndarray = quantity("dimensionless", "(n_q,)")
    n_draws: int = quantity("dimensionless", "draws summarised")
    # stored for the figure
    temperatures_k: np.ndarray = quantity("K", "(n_T,)")
    boundary_x: np.ndarray = quantity("dimensionless", "(n_draws, n_pairs, n_T, 2)")
    invariant_temperature_k: np.ndarray = quantity("K", "(n_draws, n_labels)")
    invariant_x: np.ndarray = quantity("dimensionless", "(n_draws, n_labels, 3)")
    topologies: str = quantity("", "JSON list: draws grouped by the topology of their diagram "
                               "(signature, count, fraction, invariants with intervals)")
    n_topologies: int = quantity("dimensionless", "distinct topologies among the draws")


def _summary_figures(outputs: dict, params: SummarizeParams) -> dict:
    return figs.ensemble_figures(outputs)


@task("calphad.summarize", params=SummarizeParams, figures=_summary_figures)
def summarize(invariant_temperature_k: np.ndarray, invariant_x: np.ndarray,
              boundary_x: np.ndarray, temperatures_k: np.ndarray, labels: list,
              query_fractions: np.ndarray | None = None,
              query_gibbs_j_mol: np.ndarray | None = None,
              query_activity: np.ndarray | None = None,
              invariant_signature: list | None = None,
              invariant_all_temperature_k: np.ndarray | None = None, *,
              params: SummarizeParams) -> InvariantTable:
    """Invariant points and properties with mean and credible interval over draws.

    With ``invariant_signature`` and ``invariant_all_temperature_k`` (from
    ``calphad.diagram``) the draws are also grouped by topology, each with its
    own invariants and intervals (``topologies``): a draw with other invariants
    than the posterior mean is counted, not dropped.
    """
    from matterflow.calphad.propagate import interval, topology_table

    it = np.atleast_2d(np.asarray(invariant_temperature_k, dtype=float))
    ix = np.asarray(invariant_x, dtype=float).reshape(it.shape[0], it.shape[1], 3)
    if it.shape[1] != len(labels):
        raise InputError(f"labels: {len(labels)} names for {it.shape[1]} invariant columns")
    tm, tl, th = interval(it, level=params.level)
    xm, xl, xh = interval(ix, level=params.level)
    n = it.shape[0]
    qf = np.zeros((n, 0, 0)) if query_fractions is None else np.asarray(query_fractions, float)
    qg = np.zeros((n, 0)) if query_gibbs_j_mol is None else np.asarray(query_gibbs_j_mol, float)
    qa = np.zeros((n, 0)) if query_activity is None else np.asarray(query_activity, float)
    fm, fl, fh = interval(qf, level=params.level)
    am, al, ah = interval(qa, level=params.level)
    temps = np.asarray(temperatures_k, dtype=float)
    temps = temps[0] if temps.ndim == 2 else temps
    topo = []
    if invariant_signature is not None and invariant_all_temperature_k is not None:
        sigs = [str(s) for s in np.atleast_1d(np.asarray(invariant_signature, dtype=object))]
        if len(sigs) != n:
            raise InputError(f"invariant_signature: {len(sigs)} entries for {n} draws")
        topo = topology_table(sigs, invariant_all_temperature_k, level=params.level)
    return InvariantTable(labels=list(labels), temperature_mean_k=tm, temperature_low_k=tl,
                          temperature_high_k=th, x_mean=xm, x_low=xl, x_high=xh,
                          found_fraction=np.mean(np.isfinite(it), axis=0),
                          query_fraction_mean=fm, query_fraction_low=fl, query_fraction_high=fh,
                          query_gibbs_mean_j_mol=qg.mean(axis=0),
                          query_gibbs_std_j_mol=qg.std(axis=0),
                          query_activity_mean=am, query_activity_low=al, query_activity_high=ah,
                          n_draws=int(n), temperatures_k=temps,
                          boundary_x=np.asarray(boundary_x, dtype=float),
                          invariant_temperature_k=it, invariant_x=ix,
                          topologies=json.dumps(topo), n_topologies=len(topo))


# ============================================================================ propose
class ProposeParams(Params):
    top_k: int = Field(5, ge=1, le=1000, description="experiments to propose")
    cost_per_100k: float = Field(0.0, ge=0, description="relative cost added per 100 K above "
                                 "the lowest temperature (0 = all experiments cost the same)")
    min_separation_k: float = Field(20.0, ge=0, description="minimum distance in T between "
                                    "picks", json_schema_extra=KELVIN)
    min_separation_x: float = Field(0.05, ge=0, le=1, description="minimum distance in x")


@dataclass(frozen=True)
class Proposal:
    temperature_k: np.ndarray = quantity("K", "(top_k,) proposed temperatures")
    x: np.ndarray = quantity("dimensionless", "(top_k,) proposed compositions")
    entropy: np.ndarray = quantity("nat", "(top_k,) entropy of the predicted phase set")
    cost: np.ndarray = quantity("dimensionless", "(top_k,) relative cost")
    score: np.ndarray = quantity("nat", "(top_k,) entropy / cost")
    modal_phase_set: list = quantity("", "(top_k,) most probable phase set there")
    modal_probability: np.ndarray = quantity("dimensionless", "(top_k,)")
    entropy_map: np.ndarray = quantity("nat", "(n_T, n_x)")
    temperatures_k: np.ndarray = quantity("K", "(n_T,)")
    x_grid: np.ndarray = quantity("dimensionless", "(n_x,)")


def _propose_figures(outputs: dict, params: ProposeParams) -> dict:
    return figs.proposal_figures(outputs)


@task("calphad.propose", params=ProposeParams, figures=_propose_figures)
def propose_experiments(phase_set_code: np.ndarray, temperatures_k: np.ndarray,
                        x_grid: np.ndarray, phases: list, *,
                        params: ProposeParams) -> Proposal:
    """Rank candidate (T, x) experiments by the entropy of the predicted phase set."""
    from matterflow.calphad.propagate import entropy_map, phase_set_labels, propose

    codes = np.asarray(phase_set_code)
    temps = np.asarray(temperatures_k, dtype=float)
    xg = np.asarray(x_grid, dtype=float)
    temps = temps[0] if temps.ndim == 2 else temps
    xg = xg[0] if xg.ndim == 2 else xg
    if codes.ndim != 3 or codes.shape[1:] != (len(temps), len(xg)):
        raise InputError(f"phase_set_code: expected (n_draws, {len(temps)}, {len(xg)}); "
                         f"got {codes.shape}")
    labels = phase_set_labels(phases)
    picks = propose(codes, temps, xg, len(labels), top_k=params.top_k,
                    cost_per_100k=params.cost_per_100k,
                    min_separation=(params.min_separation_k, params.min_separation_x))
    h, _, _ = entropy_map(codes, len(labels))
    col = {k: np.array([p[k] for p in picks]) for k in
           ("temperature_k", "x", "entropy", "cost", "score", "mode_probability")}
    return Proposal(temperature_k=col["temperature_k"], x=col["x"], entropy=col["entropy"],
                    cost=col["cost"], score=col["score"],
                    modal_phase_set=[labels[p["mode_code"]] for p in picks],
                    modal_probability=col["mode_probability"], entropy_map=h,
                    temperatures_k=temps, x_grid=xg)


TASKS = [fit, sample, read_chain, posterior, diagram, summarize, propose_experiments]

from matterflow.calphad.ternary_tasks import TERNARY_TASKS  # noqa: E402  (ternary systems)

TASKS += TERNARY_TASKS
