"""emcee ensemble MCMC with a checkpoint file (a killed run resumes) and ArviZ diagnostics.

The checkpoint is an HDF5 file, rewritten atomically after every step::

    /            attrs: format = "matterflow.calphad.chain-checkpoint/1", key (JSON: walkers,
                 parameters, seed, start, tag), rstate_pos, rstate_has_gauss, rstate_gauss
    /chain       (n_steps, n_walkers, n_params) float64, J/mol
    /lnprob      (n_steps, n_walkers) float64
    /accepted    (n_walkers,) accepted moves per walker
    /rstate_key  (624,) uint32, the Mersenne-Twister state of emcee's random generator

It is read as data (its magic checked first); a checkpoint of an older
matterflow (a pickle) is read only with ``trust_pickle=True``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import ComputeError, ConvergenceWarning, InputError

__all__ = ["run_emcee", "ChainResult", "diagnostics", "ConvergenceWarning"]


@dataclass(frozen=True)
class ChainResult:
    chain: np.ndarray  # (n_steps, n_walkers, n_params)
    lnprob: np.ndarray  # (n_steps, n_walkers)
    acceptance: np.ndarray  # (n_walkers,)
    resumed_from: int  # steps found in the checkpoint


CHECKPOINT_FORMAT = "matterflow.calphad.chain-checkpoint/1"
_HINT = ("delete it to start the chain from step 0, or choose another --checkpoint (a killed "
         "run never leaves a damaged checkpoint: was the file copied or truncated?)")


def _save(path: Path, state: dict) -> None:
    from matterflow.core.store import atomic_h5

    name, key, pos, has_gauss, gauss = state["rstate"]
    with atomic_h5(path) as f:
        f.attrs["format"] = CHECKPOINT_FORMAT
        f.attrs["key"] = json.dumps(state["key"], sort_keys=True)
        f.attrs["rstate_name"] = str(name)
        f.attrs["rstate_pos"] = int(pos)
        f.attrs["rstate_has_gauss"] = int(has_gauss)
        f.attrs["rstate_gauss"] = float(gauss)
        for k in ("chain", "lnprob", "accepted"):
            f.create_dataset(k, data=np.asarray(state[k], dtype=float))
        f.create_dataset("rstate_key", data=np.asarray(key, dtype=np.uint32))


def _load(path: Path, trust_pickle: bool = False) -> dict:
    """The state of a checkpoint file: key, chain, lnprob, rstate, accepted."""
    import h5py

    from matterflow.core.safeload import check_kind, load_trusted_pickle

    what = "an MCMC checkpoint (HDF5, written by `matterflow calphad sample`)"
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise InputError(f"{path}: checkpoint cannot be read ({exc.strerror or exc})") from None
    kind = check_kind(head, ("hdf5", "pickle") if trust_pickle else ("hdf5",),
                      source=str(path), what=what)
    if kind == "pickle":
        state = load_trusted_pickle(path.read_bytes(), source=str(path), what="MCMC checkpoint", hint=_HINT)
        if not isinstance(state, dict) or not {"key", "chain", "lnprob", "rstate",
                                               "accepted"} <= set(state):
            raise InputError(f"{path}: not {what}; {_HINT}")
        return state
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CHECKPOINT_FORMAT:
                raise InputError(f"{path}: not {what} (format attribute "
                                 f"{f.attrs.get('format')!r}); {_HINT}")
            chain, lnp = f["chain"][()], f["lnprob"][()]
            accepted = f["accepted"][()]
            rstate = (str(f.attrs["rstate_name"]), f["rstate_key"][()].astype(np.uint32),
                      int(f.attrs["rstate_pos"]), int(f.attrs["rstate_has_gauss"]),
                      float(f.attrs["rstate_gauss"]))
            key = json.loads(f.attrs["key"])
    except InputError:
        raise
    except Exception as exc:  # truncated (OSError), a dataset or attribute missing (KeyError)
        raise InputError(f"{path}: damaged MCMC checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); {_HINT}"
                         ) from None
    if (chain.ndim != 3 or lnp.shape != chain.shape[:2] or accepted.shape != chain.shape[1:2]
            or rstate[1].shape != (624,)):
        raise InputError(f"{path}: damaged MCMC checkpoint (chain {chain.shape}, lnprob "
                         f"{lnp.shape}, accepted {accepted.shape} disagree); {_HINT}")
    return {"key": key, "chain": chain, "lnprob": lnp, "rstate": rstate, "accepted": accepted}


def run_emcee(logpost: Callable[[np.ndarray], float], start: np.ndarray, init_std: np.ndarray, *,
              n_walkers: int, n_steps: int, seed: int, checkpoint: str | Path | None = None,
              pool: Any = None, progress: Callable[[int, int], None] | None = None,
              tag: str = "", trust_pickle: bool = False, moves: str = "stretch") -> ChainResult:
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
        HDF5 file with the chain so far and the random state (layout in the module
        docstring); if it exists and matches (walkers, parameters, seed) the run
        continues from it.
    pool : object with ``map``, optional
        Evaluates the walkers' log-posteriors in parallel (e.g.
        :class:`matterflow.core.execute.WorkerPool`).
    progress : callable, optional
        ``progress(step_done, n_steps)``.
    tag : str
        Describes the posterior (data, engine, parameters); a checkpoint with another
        tag is refused.
    trust_pickle : bool
        Also read a checkpoint of an older matterflow (a pickle, which can run code).
    moves : {"stretch", "de", "de-stretch"}
        emcee's stretch move; differential-evolution moves (ter Braak 2006, as emcee 3's
        ``DEMove``: x + gamma (x_a - x_b), two walkers of the other half, gamma =
        2.38 / sqrt(2 d)); or DE for 80 % of the half-steps and stretch for the rest.
    """
    import emcee

    start = np.asarray(start, dtype=float)
    dim = start.size
    if n_walkers < 2 * dim:
        raise InputError(f"n_walkers: emcee needs at least 2 x n_params = {2 * dim}; "
                         f"got {n_walkers}")
    if moves not in ("stretch", "de", "de-stretch"):
        raise InputError(f"moves: {moves!r} is not one of stretch, de, de-stretch")
    key = {"n_walkers": int(n_walkers), "dim": int(dim), "seed": int(seed),
           "start": start.tolist(), "tag": str(tag)}
    if moves != "stretch":  # (stretch-move checkpoints of earlier versions stay valid)
        key["moves"] = moves
    chain = np.empty((0, n_walkers, dim))
    lnp = np.empty((0, n_walkers))
    rstate = None
    accepted = np.zeros(n_walkers)
    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.exists():
        state = _load(path, trust_pickle)
        if state["key"] != key:
            raise InputError(f"{path}: checkpoint is from a different run ({state['key']}); "
                             "delete it or choose another --checkpoint")
        chain, lnp, rstate, accepted = (state["chain"], state["lnprob"], state["rstate"],
                                        state["accepted"])
    resumed = len(chain)
    rng = np.random.RandomState(seed)
    if resumed:
        # copies: emcee updates its start arrays in place, which would change the stored last step
        pos, lnp0 = chain[-1].copy(), lnp[-1].copy()
    else:
        pos = start + rng.normal(size=(n_walkers, dim)) * np.asarray(init_std, dtype=float)
        lnp0 = None
        rstate = rng.get_state()
    if moves == "stretch":
        sampler = emcee.EnsembleSampler(n_walkers, dim, logpost, pool=pool)
    else:
        sampler = _de_sampler(emcee)(n_walkers, dim, logpost, pool=pool)
        sampler.de_fraction = 1.0 if moves == "de" else 0.8
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


def _de_sampler(emcee: Any) -> Any:
    """emcee 2's ensemble sampler with differential-evolution proposals (see ``run_emcee``)."""

    class DESampler(emcee.EnsembleSampler):
        de_fraction = 1.0

        def _propose_stretch(self, p0, p1, lnprob0):  # emcee 2 hook: one half-ensemble step
            if self._random.rand() >= self.de_fraction:
                return super()._propose_stretch(p0, p1, lnprob0)
            s = np.atleast_2d(p0)
            c = np.atleast_2d(p1)
            ns, nc = len(s), len(c)
            first = self._random.randint(nc, size=ns)
            second = (first + 1 + self._random.randint(nc - 1, size=ns)) % nc  # another one
            gamma = 2.38 / np.sqrt(2.0 * self.dim) * (1.0 + 1e-5 * self._random.randn(ns))
            q = s + gamma[:, None] * (c[first] - c[second])
            newlnprob, blob = self._get_lnprob(q)
            accept = (newlnprob - lnprob0) > np.log(self._random.rand(ns))  # symmetric
            return q, newlnprob, accept, blob

    return DESampler


def diagnostics(chain: np.ndarray, names: Sequence[str], burn_fraction: float = 0.5, rhat_max: float = 1.1,
                warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
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
