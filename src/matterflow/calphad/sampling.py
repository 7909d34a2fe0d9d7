"""The MCMC of the calphad domain: the model, its likelihood and the emcee sampler.

:func:`sample_posterior` builds the model of a TDB (:func:`build_model`, with
free offsets), the likelihood of the data (:func:`make_loglike`: our fast
ZPF + activity one or ESPEI's) and runs emcee with a checkpoint; the task
``calphad.sample`` (:mod:`matterflow.calphad.tasks`) is this function with
its parameters (:class:`SampleParams`) and result (:class:`SampleResult`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity

if TYPE_CHECKING:
    from pycalphad import Database

    from matterflow.calphad.engine import BinaryModel
    from matterflow.calphad.likelihood import EspeiLikelihood, FastLikelihood

__all__ = ["SampleParams", "SampleResult", "build_model", "make_loglike", "sample_posterior",
           "all_parameters",
           "DEFAULT_OFFSETS", "DEFAULT_ALIASES"]

DEFAULT_OFFSETS = {"DL0": "G(LIQUID,CU,MG;0)", "DCUMG2": "G(CUMG2,CU:MG;0)"}
DEFAULT_ALIASES = {"LAVES_C15": "CU2MG"}
JMOL = {"units": "J/mol"}


class SampleParams(Params):
    parameters: list[str] = Field([], description="database symbols to sample (e.g. VV0001); "
                                  "with `offsets`, the offsets are sampled too")
    offsets: dict[str, str] = Field(DEFAULT_OFFSETS, description="new symbol -> TDB parameter "
                                    "it is added to ('G(LIQUID,CU,MG;0)', '...*T'); makes a "
                                    "published (numeric) assessment sampleable, start 0 J/mol")
    aliases: dict[str, str] = Field(DEFAULT_ALIASES, description="dataset phase -> model phase, "
                                    "used where the dataset name is not a model phase")
    engine: Literal["fast", "espei", "fast-espei"] = Field(
        "fast", description="likelihood: our vectorised ZPF+activity one, ESPEI's own (all data "
        "types), or fast-espei: ESPEI's likelihood (all data types, its error model) on our "
        "vectorised engine")
    espei_prior: dict[str, Any] | None = Field(
        None, description="prior as ESPEI defines it (espei.priors.PriorSpec), e.g. "
        "{'name': 'normal', 'loc_relative': 1.0, 'scale_relative': 0.5}, built around each "
        "start value; replaces the Normal prior of prior_std")
    moves: Literal["stretch", "de", "de-stretch"] = Field(
        "stretch", description="ensemble moves: emcee's stretch, differential evolution, or "
        "80 % DE + 20 % stretch (better mixing in many correlated dimensions)")
    init_std_relative: float | None = Field(
        None, gt=0, description="initial walker ball std relative to |start| (ESPEI's "
        "chain_std_deviation, 0.1); replaces init_std")
    data_stride: int = Field(1, ge=1, le=1000, description="use every k-th ZPF tie-line "
                             "(fast engine; subsets for quick runs)")
    n_walkers: int = Field(8, ge=2, le=1000, description="emcee walkers (>= 2 x n_params)")
    n_steps: int = Field(20, ge=1, le=100_000, description="MCMC steps")
    init_std: float = Field(300.0, gt=0, description="std of the initial walker ball",
                            json_schema_extra=JMOL)
    prior_std: float = Field(5000.0, gt=0, description="std of the Normal prior around the "
                             "start values", json_schema_extra=JMOL)
    sigma_zpf: float = Field(1000.0, gt=0, description="ZPF driving-force std",
                             json_schema_extra=JMOL)
    sigma_activity: float = Field(0.05, gt=0, description="activity std (dimensionless)")
    n_grid: int = Field(150, ge=20, le=5000, description="grid points per site-fraction axis")
    checkpoint: str | None = Field(None, description="checkpoint file; an existing one of the "
                                   "same run is resumed")
    trust_pickle: bool = Field(False, description="also read a checkpoint of an older matterflow "
                               "(a Python pickle, which can run code): only for files you made")
    seed: int = Field(0, ge=0, description="random seed")

    @field_validator("offsets")
    @classmethod
    def _check_offsets(cls, v):
        for name in v:
            if not name.isidentifier():
                raise ValueError(f"offset name {name!r} must be an identifier")
        return v


@dataclass(frozen=True)
class SampleResult:
    chain: np.ndarray = quantity("J/mol", "(n_steps, n_walkers, n_params) parameter values")
    lnprob: np.ndarray = quantity("dimensionless", "(n_steps, n_walkers) log-posterior")
    parameter_names: list = quantity("", "(n_params,)")
    start: np.ndarray = quantity("J/mol", "(n_params,) start values (prior centre)")
    rhat: np.ndarray = quantity("dimensionless", "(n_params,) split R-hat, second half")
    ess: np.ndarray = quantity("dimensionless", "(n_params,) bulk effective sample size")
    acceptance: np.ndarray = quantity("dimensionless", "(n_walkers,) acceptance fraction")
    model_tdb: str = quantity("", "model TDB with the sampled symbols (start values)")
    n_data: int = quantity("dimensionless", "residuals in the likelihood")
    seconds_per_evaluation: float = quantity("s", "mean wall time of one log-posterior")
    resumed_from: int = quantity("dimensionless", "steps read from the checkpoint")


def all_parameters(dbf: Database) -> list[str]:
    """The symbols ESPEI fits (``VV0000`` ...), sorted, as ESPEI's ``database_symbols_to_fit``."""
    from espei.utils import database_symbols_to_fit

    return sorted(str(s) for s in database_symbols_to_fit(dbf))


def build_model(tdb: str | Path | None, params: SampleParams, n_grid: int | None = None
                ) -> tuple[BinaryModel, Database]:
    """(BinaryModel, database) for ``tdb`` (path, text or None = published Cu-Mg) + offsets."""
    from pycalphad import Database

    from matterflow.calphad.datasets import cumg_truth_tdb
    from matterflow.calphad.engine import BinaryModel, add_offset_parameters, load_database

    if tdb is None:
        dbf = load_database(cumg_truth_tdb())
    elif isinstance(tdb, Path) or (isinstance(tdb, str) and "\n" not in tdb):
        dbf = load_database(Path(tdb))
    else:
        try:
            dbf = Database(tdb)
        except Exception as exc:
            raise InputError(f"model TDB text does not parse: {exc}") from None
    add_offset_parameters(dbf, params.offsets)
    names = list(params.parameters)
    if [n.lower() for n in names] == ["all"]:  # every fitted symbol (ESPEI's VV....)
        names = all_parameters(dbf)
        if not names:
            raise InputError("parameters 'all': the TDB has no fitted symbols (VV0000 ...); "
                             "is it a `calphad fit` output?")
    names += list(params.offsets)
    if not names:
        raise InputError("parameters: nothing to sample; give parameters and/or offsets")
    model = BinaryModel(dbf, parameters=names, n_grid=n_grid or params.n_grid)
    return model, dbf


def make_loglike(model: BinaryModel, dbf: Database, datasets: str | Path | None, params: SampleParams
                 ) -> tuple[EspeiLikelihood | FastLikelihood, int]:
    """The log-likelihood chosen by ``params.engine`` and the number of residuals."""
    from matterflow.calphad.datasets import (
        activity_points,
        bundled_system,
        load_datasets,
        zpf_points,
    )
    from matterflow.calphad.likelihood import EspeiLikelihood, FastLikelihood

    ds = load_datasets(Path(datasets) if datasets is not None else bundled_system("Cu-Mg"))
    aliases = {k: v for k, v in params.aliases.items() if k.upper() not in model.phases}
    if params.engine == "fast-espei":
        from matterflow.calphad.espeilike import AllDataLikelihood

        if aliases:
            raise InputError(f"engine 'fast-espei' needs dataset phases named as in the model; "
                             f"aliases {aliases} only work with engine 'fast'")
        like = AllDataLikelihood(dbf, ds, model.parameter_names, n_grid=model.n_grid)
        return like, like.n_residuals()
    if params.engine == "espei":
        if aliases:
            raise InputError(f"engine 'espei' needs dataset phases named as in the model; "
                             f"aliases {aliases} only work with engine 'fast'")
        like = EspeiLikelihood(dbf, ds, model.parameter_names)
        return like, len(ds)
    wanted = set(model.phases) | {k.upper() for k in aliases}
    zpf = zpf_points(ds, model.components, wanted)[::params.data_stride]
    acts = activity_points(ds, model.components)
    like = FastLikelihood(model, zpf, acts, sigma_zpf=params.sigma_zpf,
                          sigma_activity=params.sigma_activity, aliases=aliases)
    return like, len(like.residuals(model.default_parameters))


def sample_posterior(tdb: str | Path | None = None, datasets: str | Path | None = None, *,
                     params: SampleParams, pool: Any = None,
                     progress: Callable[[int, int], None] | None = None) -> SampleResult:
    """:func:`sample` with an optional parallel ``pool`` (an object with ``map``, e.g.
    :class:`matterflow.core.execute.WorkerPool`) and progress callback."""
    from matterflow.calphad.likelihood import LogPosterior
    from matterflow.calphad.mcmc import diagnostics, run_emcee

    model, dbf = build_model(tdb, params)
    like, n_data = make_loglike(model, dbf, datasets, params)
    start = model.default_parameters
    if params.espei_prior is not None:
        from matterflow.calphad.likelihood import EspeiPriorLogPosterior

        post = EspeiPriorLogPosterior(like, start, params.espei_prior)
    else:
        post = LogPosterior(like, start, params.prior_std)
    init = np.full(start.size, params.init_std) if params.init_std_relative is None else \
        params.init_std_relative * np.maximum(np.abs(start), 1.0)
    t0 = time.perf_counter()
    res = run_emcee(post, start, init,
                    n_walkers=params.n_walkers, n_steps=params.n_steps, seed=params.seed,
                    checkpoint=params.checkpoint, pool=pool, progress=progress,
                    trust_pickle=params.trust_pickle, moves=params.moves,
                    tag=f"{params.engine}|{n_data}|{params.data_stride}|{params.prior_std}|"
                        f"{params.sigma_zpf}|{params.sigma_activity}|{params.n_grid}|"
                        f"{','.join(model.parameter_names)}|{sorted(params.offsets.items())}"
                        + (f"|{sorted(params.espei_prior.items())}|{params.init_std_relative}"
                           if params.espei_prior is not None or params.init_std_relative
                           else ""))
    n_eval = max((params.n_steps - res.resumed_from) * params.n_walkers, 1)
    sec = (time.perf_counter() - t0) / n_eval
    rhat, ess = diagnostics(res.chain, model.parameter_names)
    return SampleResult(chain=res.chain, lnprob=res.lnprob,
                        parameter_names=list(model.parameter_names), start=start, rhat=rhat,
                        ess=ess, acceptance=res.acceptance, model_tdb=dbf.to_string(fmt="tdb"),
                        n_data=int(n_data), seconds_per_evaluation=float(sec),
                        resumed_from=int(res.resumed_from))
