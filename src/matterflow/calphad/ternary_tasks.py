"""Tasks for ternary systems: isothermal section, liquidus projection, probability maps, proposal.

``calphad.section`` (optionally checked against pycalphad's ``equilibrium`` on the
same grid), ``calphad.liquidus``, ``calphad.section_ensemble`` (parameter draws ->
probability of each phase assemblage over (x_B, x_C) at one T; draws from a
``calphad sample`` chain or from a Normal prior on offsets) and
``calphad.section_propose`` (next experiments: the compositions where the
predicted assemblage is most uncertain, as ``calphad.propose`` does in (T, x)).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from matterflow.calphad import ternary_figures as figs
from matterflow.calphad.ternary import (
    TernaryModel,
    agreement,
    crtiv_tdb,
    pycalphad_section,
    section_grid,
)
from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

__all__ = ["section", "liquidus", "section_ensemble", "section_propose", "TERNARY_TASKS",
           "parse_components", "entropy_and_mode", "pick_compositions"]

if TYPE_CHECKING:
    from pycalphad import Database

KELVIN: dict = {"units": "K"}


def parse_components(text: str | None, database: Database | None = None) -> list[str]:
    """``"CR,TI,V"`` -> ``["CR", "TI", "V"]``; default: the three elements of ``database``."""
    if text:
        comps = [c.strip().upper() for c in text.split(",") if c.strip()]
        if len(comps) != 3:
            raise InputError(f"components: need three names separated by commas (A,B,C); got "
                             f"{text!r}")
        return comps
    if database is None:
        return ["CR", "TI", "V"]
    els = sorted(str(e) for e in database.elements if str(e) not in ("VA", "/-"))
    if len(els) != 3:
        raise InputError(f"the database has elements {els}; give the components A,B,C")
    return els


class _GridParams(Params):
    components: str | None = Field(None, description="A,B,C (compositions are x_B, x_C); "
                                   "default: the database's three elements (Cr,Ti,V for the "
                                   "bundled Cr-Ti-V)")
    phases: list[str] | None = Field(None, description="phases to include (default: all)")
    step: float = Field(0.05, gt=0, le=0.5, description="spacing of the composition lattice")
    margin: float = Field(0.01, ge=0, lt=0.3, description="smallest mole fraction on the lattice")
    n_grid: int = Field(60, ge=8, le=400, description="site-fraction points per axis of a "
                        "one-sublattice phase")


class SectionParams(_GridParams):
    temperature_k: float = Field(1200.0, gt=0, description="temperature of the section",
                                 json_schema_extra=KELVIN)
    refine: int = Field(2, ge=0, le=5, description="levels of local refinement at phase "
                        "boundaries")
    compare_pycalphad: bool = Field(False, description="also run pycalphad's equilibrium on "
                                    "the same grid and report the agreement")


@dataclass(frozen=True)
class SectionResult:
    components: list = quantity("", "(3,) A, B, C")
    temperature_k: float = quantity("K", "temperature of the section")
    x: np.ndarray = quantity("dimensionless", "(m, 2) mole fractions x_B, x_C")
    labels: list = quantity("", "(m,) phase assemblage, names sorted")
    phases: list = quantity("", "(n_phases,) phase names")
    phase_fractions: np.ndarray = quantity("dimensionless", "(m, n_phases) mole fractions")
    gibbs_j_mol: np.ndarray = quantity("J/mol", "(m,) equilibrium molar Gibbs energy")
    tie_lines: np.ndarray = quantity("dimensionless", "(n_tie, 2, 2) ends (x_B, x_C)")
    tie_triangles: np.ndarray = quantity("dimensionless", "(n_tri, 3, 2) corners (x_B, x_C)")
    tie_triangle_phases: list = quantity("", "(n_tri,) assemblage of each triangle")
    seconds: float = quantity("s", "wall time of the section (ours)")
    reference_labels: list = quantity("", "(m,) pycalphad's assemblage ([] if not compared)")
    reference_gibbs_j_mol: np.ndarray = quantity("J/mol", "(m,) pycalphad's molar G (or empty)")
    reference_seconds: float = quantity("s", "pycalphad's wall time (NaN if not compared)")
    agreement: float = quantity("dimensionless", "fraction of the grid with the same "
                                "assemblage as pycalphad (NaN if not compared)")


def _model(tdb, params, parameters=()) -> TernaryModel:
    from matterflow.calphad.engine import load_database

    dbf = load_database(crtiv_tdb() if tdb is None else tdb)
    return TernaryModel(dbf, parse_components(params.components, dbf), phases=params.phases,
                        parameters=parameters, n_grid=params.n_grid)


def _section_figures(outputs: dict, params: SectionParams) -> dict:
    return figs.section_figures(outputs)


@task("calphad.section", params=SectionParams, figures=_section_figures)
def section(tdb: Path | None = None, *, params: SectionParams) -> SectionResult:
    """Isothermal section of a ternary on a composition lattice (convex hull of all phases)."""
    model = _model(tdb, params)
    x = section_grid(params.step, params.margin)
    model.section(params.temperature_k, x[:3], refine=0)  # compile numba before timing
    t0 = time.perf_counter()
    s = model.section(params.temperature_k, x, refine=params.refine)
    seconds = time.perf_counter() - t0
    ref: list[str] = []
    gref, ref_s, agree = np.zeros(0), float("nan"), float("nan")
    if params.compare_pycalphad:
        ref, gref, ref_s = pycalphad_section(model.database, model.components, model.phases,
                                             params.temperature_k, x)
        agree = agreement(s.labels, ref)
    return SectionResult(components=list(model.components), temperature_k=s.temperature_k,
                         x=s.x, labels=s.labels, phases=list(model.phases),
                         phase_fractions=s.phase_fractions, gibbs_j_mol=s.gibbs_j_mol,
                         tie_lines=s.tie_lines, tie_triangles=s.tie_triangles,
                         tie_triangle_phases=s.tie_triangle_phases, seconds=seconds,
                         reference_labels=ref, reference_gibbs_j_mol=gref,
                         reference_seconds=ref_s, agreement=agree)


class LiquidusParams(_GridParams):
    t_min_k: float = Field(1400.0, gt=0, description="lowest scan temperature",
                           json_schema_extra=KELVIN)
    t_max_k: float = Field(2300.0, gt=0, description="highest scan temperature (the liquid "
                           "must be the only phase there)", json_schema_extra=KELVIN)
    dt_k: float = Field(20.0, gt=0, description="scan step (the crossing is interpolated)",
                        json_schema_extra=KELVIN)


@dataclass(frozen=True)
class LiquidusResult:
    components: list = quantity("", "(3,) A, B, C")
    x: np.ndarray = quantity("dimensionless", "(m, 2) mole fractions x_B, x_C")
    liquidus_k: np.ndarray = quantity("K", "(m,) liquidus temperature (NaN outside the scan)")
    primary_phase: list = quantity("", "(m,) first solid on cooling")
    seconds: float = quantity("s", "wall time")


def _liquidus_figures(outputs: dict, params: LiquidusParams) -> dict:
    return figs.liquidus_figures(outputs)


@task("calphad.liquidus", params=LiquidusParams, figures=_liquidus_figures)
def liquidus(tdb: Path | None = None, *, params: LiquidusParams) -> LiquidusResult:
    """Liquidus projection of a ternary: liquidus temperature and primary phase over x."""
    if params.t_max_k <= params.t_min_k:
        raise InputError(f"params.t_max_k ({params.t_max_k}) must exceed params.t_min_k "
                         f"({params.t_min_k})")
    model = _model(tdb, params)
    x = section_grid(params.step, params.margin)
    t0 = time.perf_counter()
    res = model.liquidus(x, params.t_min_k, params.t_max_k, params.dt_k)
    return LiquidusResult(components=list(model.components), x=x, liquidus_k=res.liquidus_k,
                          primary_phase=res.primary_phase, seconds=time.perf_counter() - t0)


class EnsembleParams(_GridParams):
    temperature_k: float = Field(1200.0, gt=0, description="temperature of the section",
                                 json_schema_extra=KELVIN)
    refine: int = Field(1, ge=0, le=5, description="levels of local refinement")
    n_draws: int = Field(20, ge=1, le=10000, description="parameter draws")
    burn_fraction: float = Field(0.5, ge=0, lt=1, description="chain: burn-in fraction")
    offsets: dict[str, str] = Field(default_factory=dict, description="prior route: NAME -> "
                                    "TDB parameter made free, e.g. {'DL': 'G(LIQUID,CR,TI,V;0)'}")
    prior_std: float = Field(2000.0, gt=0, description="prior route: std of each offset "
                             "(J/mol or J/(mol K))", json_schema_extra={"units": "J/mol"})
    seed: int = Field(0, description="random seed of the draws")


@dataclass(frozen=True)
class SectionEnsemble:
    components: list = quantity("", "(3,) A, B, C")
    temperature_k: float = quantity("K", "temperature of the section")
    x: np.ndarray = quantity("dimensionless", "(m, 2) mole fractions x_B, x_C")
    label_names: list = quantity("", "(n_labels,) phase assemblages met in any draw")
    codes: np.ndarray = quantity("dimensionless", "(n_draws, m) index into label_names")
    probability: np.ndarray = quantity("dimensionless", "(n_labels, m) fraction of draws")
    entropy: np.ndarray = quantity("nat", "(m,) entropy of the predicted assemblage")
    modal_code: np.ndarray = quantity("dimensionless", "(m,) most probable assemblage")
    modal_probability: np.ndarray = quantity("dimensionless", "(m,)")
    draws: np.ndarray = quantity("J/mol", "(n_draws, n_params) parameter values")
    parameter_names: list = quantity("", "(n_params,)")
    source: str = quantity("", "'chain' (posterior draws) or 'prior' (offsets)")
    seconds_per_draw: float = quantity("s", "wall time of one section")


def entropy_and_mode(codes: np.ndarray, n_labels: int) -> tuple[np.ndarray, ...]:
    """Probability (n_labels, m), entropy (m,) in nats, modal code and its probability."""
    from matterflow.calphad.propagate import entropy_of, phase_probabilities

    p = phase_probabilities(codes, n_labels)
    return (p, *entropy_of(p))


def _ensemble_figures(outputs: dict, params: EnsembleParams) -> dict:
    return figs.ensemble_figures(outputs)


@task("calphad.section_ensemble", params=EnsembleParams, figures=_ensemble_figures)
def section_ensemble(tdb: Path | None = None, chain: np.ndarray | None = None,
                     model_tdb: str | None = None, parameter_names: list | None = None, *,
                     params: EnsembleParams) -> SectionEnsemble:
    """Parameter draws -> probability of each phase assemblage over (x_B, x_C) at one T.

    Draws come from a chain (``chain`` (n_steps, n_walkers, n_params) with its
    ``model_tdb`` and ``parameter_names``, as ``calphad sample`` writes them) or,
    without a chain, from Normal(0, ``prior_std``) on ``offsets`` added to ``tdb``.
    """
    from pycalphad import Database

    from matterflow.calphad.engine import add_offset_parameters, load_database

    rng = np.random.default_rng(params.seed)
    if chain is not None:
        if model_tdb is None or parameter_names is None:
            raise InputError("chain: needs model_tdb and parameter_names beside it")
        ch = np.asarray(chain, dtype=float)
        if ch.ndim != 3 or ch.shape[2] != len(parameter_names):
            raise InputError(f"chain: expected (n_steps, n_walkers, {len(parameter_names)}); got "
                             f"{ch.shape}")
        kept = ch[int(len(ch) * params.burn_fraction):].reshape(-1, ch.shape[2])
        if len(kept) < 1:
            raise InputError("chain: nothing left after the burn-in")
        draws = kept[rng.choice(len(kept), size=params.n_draws, replace=len(kept) < params.n_draws)]
        dbf = Database(model_tdb)
        names, source = [str(n) for n in parameter_names], "chain"
    else:
        if not params.offsets:
            raise InputError("params.offsets: give at least one NAME=TARGET offset (or a chain)")
        dbf = load_database(crtiv_tdb() if tdb is None else tdb)
        add_offset_parameters(dbf, dict(params.offsets))
        names, source = list(params.offsets), "prior"
        draws = rng.normal(0.0, params.prior_std, size=(params.n_draws, len(names)))
    comps = parse_components(params.components, dbf)
    model = TernaryModel(dbf, comps, phases=params.phases, parameters=names,
                         n_grid=params.n_grid)
    x = section_grid(params.step, params.margin)
    model.section(params.temperature_k, x[:3], refine=0)  # compile numba before timing
    t0 = time.perf_counter()
    labels = [model.section(params.temperature_k, x, d, refine=params.refine).labels
              for d in draws]
    per_draw = (time.perf_counter() - t0) / len(draws)
    names_set = sorted({lab for row in labels for lab in row})
    codes = np.array([[names_set.index(lab) for lab in row] for row in labels], dtype=np.int16)
    p, h, mode, pmax = entropy_and_mode(codes, len(names_set))
    return SectionEnsemble(components=list(model.components), temperature_k=params.temperature_k,
                           x=x, label_names=names_set, codes=codes, probability=p, entropy=h,
                           modal_code=mode, modal_probability=pmax, draws=draws,
                           parameter_names=names, source=source, seconds_per_draw=per_draw)


class SectionProposeParams(Params):
    top_k: int = Field(5, ge=1, le=1000, description="experiments to propose")
    min_separation: float = Field(0.05, ge=0, le=1, description="smallest distance between "
                                  "picks (and from excluded compositions) in (x_B, x_C)")


@dataclass(frozen=True)
class SectionProposal:
    x: np.ndarray = quantity("dimensionless", "(top_k, 2) proposed compositions (x_B, x_C)")
    entropy: np.ndarray = quantity("nat", "(top_k,) entropy of the predicted assemblage")
    modal_label: list = quantity("", "(top_k,) most probable assemblage there")
    modal_probability: np.ndarray = quantity("dimensionless", "(top_k,)")
    entropy_map: np.ndarray = quantity("nat", "(m,) over the grid")
    x_grid: np.ndarray = quantity("dimensionless", "(m, 2)")
    components: list = quantity("", "(3,) A, B, C")
    temperature_k: float = quantity("K", "temperature of the section")


def pick_compositions(entropy: np.ndarray, x: np.ndarray, top_k: int, min_separation: float,
                      exclude: np.ndarray | None = None) -> list[int]:
    """Indices of the ``top_k`` highest-entropy compositions, greedily kept apart."""
    order = np.argsort(-np.asarray(entropy), kind="stable")
    taken = [np.asarray(e, dtype=float) for e in (exclude if exclude is not None else [])]
    picks: list[int] = []
    for i in order:
        if entropy[i] <= 0:
            break
        if any(np.linalg.norm(x[i] - t) < min_separation for t in taken):
            continue
        picks.append(int(i))
        taken.append(x[i])
        if len(picks) == top_k:
            break
    return picks


def _propose_figures(outputs: dict, params: SectionProposeParams) -> dict:
    return figs.proposal_figures(outputs)


@task("calphad.section_propose", params=SectionProposeParams, figures=_propose_figures)
def section_propose(codes: np.ndarray, x: np.ndarray, label_names: list,
                    components: list | None = None, temperature_k: float = float("nan"),
                    exclude: np.ndarray | None = None, *,
                    params: SectionProposeParams) -> SectionProposal:
    """Next experiments at one T: compositions where the predicted assemblage is most uncertain."""
    codes = np.asarray(codes)
    x = np.asarray(x, dtype=float)
    if codes.ndim != 2 or x.shape != (codes.shape[1], 2):
        raise InputError(f"codes (n_draws, m) and x (m, 2) do not match: {codes.shape}, {x.shape}")
    _, h, mode, pmax = entropy_and_mode(codes, len(label_names))
    ex = None if exclude is None else np.atleast_2d(np.asarray(exclude, dtype=float))
    picks = pick_compositions(h, x, params.top_k, params.min_separation, ex)
    return SectionProposal(x=x[picks].reshape(-1, 2), entropy=h[picks],
                           modal_label=[label_names[mode[i]] for i in picks],
                           modal_probability=pmax[picks], entropy_map=h, x_grid=x,
                           components=list(components or []), temperature_k=float(temperature_k))


TERNARY_TASKS = [section, liquidus, section_ensemble, section_propose]
