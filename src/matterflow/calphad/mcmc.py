"""emcee ensemble MCMC with a checkpoint file (a killed run resumes) and ArviZ diagnostics."""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matterflow.core.errors import ComputeError, ConvergenceWarning, InputError

__all__ = ["run_emcee", "ChainResult", "diagnostics", "ConvergenceWarning"]


@dataclass(frozen=True)
class ChainResult:
    chain: np.ndarray  # (n_steps, n_walkers, n_params)
    lnprob: np.ndarray  # (n_steps, n_walkers)
    acceptance: np.ndarray  # (n_walkers,)
    resumed_from: int  # steps found in the checkpoint


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(state, f)
    os.replace(tmp, path)


def run_emcee(logpost, start, init_std, *, n_walkers, n_steps, seed, checkpoint=None,
              pool=None, progress=None, tag: str = "") -> ChainResult:
    """Run emcee's affine-invariant ensemble sampler (emcee 2 API), checkpointing each step.

    Parameters
    ----------
    logpost : callable
        ``logpost(params (n_params,)) -> float`` (picklable for a Dask pool).
    start : ndarray, shape (n_params,)
        Centre of the initial Gaussian ball of walkers.
    init_std : ndarray, shape (n_params,)
        Its standard deviations (same units as the parameters).
    checkpoint : path, optional
        Pickle with the chain so far and the random state; if it exists and
        matches (walkers, parameters, seed) the run continues from it.
    pool : object with ``map``, optional
        Evaluates the walkers' log-posteriors in parallel (e.g.
        :class:`matterflow.core.execute.WorkerPool`).
    progress : callable, optional
        ``progress(step_done, n_steps)``.
    tag : str
        Describes the posterior (data, engine, parameters); a checkpoint with another
        tag is refused.
    """
    import emcee

    start = np.asarray(start, dtype=float)
    dim = start.size
    if n_walkers < 2 * dim:
        raise InputError(f"n_walkers: emcee needs at least 2 x n_params = {2 * dim}; "
                         f"got {n_walkers}")
    key = {"n_walkers": int(n_walkers), "dim": int(dim), "seed": int(seed),
           "start": start.tolist(), "tag": str(tag)}
    chain = np.empty((0, n_walkers, dim))
    lnp = np.empty((0, n_walkers))
    rstate = None
    accepted = np.zeros(n_walkers)
    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.exists():
        with open(path, "rb") as f:
            state = pickle.load(f)
        if state["key"] != key:
            raise InputError(f"{path}: checkpoint is from a different run ({state['key']}); "
                             "delete it or choose another --checkpoint")
        chain, lnp, rstate, accepted = (state["chain"], state["lnprob"], state["rstate"],
                                        state["accepted"])
    resumed = len(chain)
    rng = np.random.RandomState(seed)
    if resumed:
        pos, lnp0 = chain[-1], lnp[-1]
    else:
        pos = start + rng.normal(size=(n_walkers, dim)) * np.asarray(init_std, dtype=float)
        lnp0 = None
        rstate = rng.get_state()
    sampler = emcee.EnsembleSampler(n_walkers, dim, logpost, pool=pool)
    todo = n_steps - resumed
    if progress:
        progress(resumed, n_steps)
    if todo > 0:
        sampler.random_state = rstate
        steps = []
        for k, (p, lp, rs) in enumerate(sampler.sample(pos, lnprob0=lnp0, rstate0=rstate,
                                                       iterations=todo, storechain=False)):
            accepted += (p != pos).any(axis=1)
            pos = np.array(p, copy=True)  # emcee updates its arrays in place
            steps.append(k)
            chain = np.concatenate([chain, p[None]], axis=0)
            lnp = np.concatenate([lnp, np.asarray(lp)[None]], axis=0)
            if path is not None:
                _save(path, {"key": key, "chain": chain, "lnprob": lnp, "rstate": rs,
                             "accepted": accepted})
            if progress:
                progress(len(chain), n_steps)
    chain, lnp = chain[:n_steps], lnp[:n_steps]
    if not np.any(np.isfinite(lnp[-1])):
        raise ComputeError("every walker has log-posterior -inf: the initial ball is outside "
                           "the model's valid region; reduce init_std")
    return ChainResult(chain=chain, lnprob=lnp, acceptance=accepted / max(len(chain), 1),
                       resumed_from=resumed)


def diagnostics(chain: np.ndarray, names, burn_fraction=0.5, rhat_max=1.1, warn=True):
    """Split R-hat and bulk effective sample size per parameter (ArviZ), walkers as chains.

    Parameters
    ----------
    chain : ndarray, shape (n_steps, n_walkers, n_params)

    Returns
    -------
    rhat, ess : ndarray, shape (n_params,)
        Warns with :class:`ConvergenceWarning` (naming the parameters) if any
        R-hat exceeds ``rhat_max``.
    """
    import arviz as az

    n = chain.shape[0]
    kept = chain[int(n * burn_fraction):]
    if kept.shape[0] < 4:
        kept = chain
    import logging

    post = {str(nm): kept[:, :, i].T for i, nm in enumerate(names)}
    logging.disable(logging.WARNING)  # arviz's shape warnings on short chains: reported below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = az.from_dict(posterior=post)
            rhat = np.array([float(az.rhat(idata)[str(nm)]) for nm in names])
            ess = np.array([float(az.ess(idata)[str(nm)]) for nm in names])
    finally:
        logging.disable(logging.NOTSET)
    bad = [f"{nm}: R-hat {r:.3f}, ESS {e:.0f}" for nm, r, e in zip(names, rhat, ess, strict=False)
           if not r <= rhat_max]
    if bad and warn:
        warnings.warn(f"chain not converged (R-hat > {rhat_max} over {kept.shape[0]} kept "
                      f"steps x {kept.shape[1]} walkers): " + "; ".join(bad) +
                      ". Run more steps before trusting intervals.", ConvergenceWarning,
                      stacklevel=2)
    return rhat, ess
