"""Quickstart tasks: diffusion of random walkers, with an exact answer to check against.

Three tasks make the core's demo workflow (``examples/quickstart.yaml``):

1. ``core.random_walks`` -- Gaussian random walks: each step in each of the
   ``dimensions`` directions is normal with standard deviation ``step_nm``,
   one step every ``dt_ps``. The exact diffusion coefficient is
   ``D = step_nm**2 / (2 dt_ps)`` (nm²/ps).
2. ``core.mean_squared_displacement`` -- mapped over walkers: the
   time-averaged MSD of one trajectory at each lag.
3. ``core.fit_diffusion`` -- the ensemble MSD, and ``D`` from a fit of
   ``MSD = 2 d D t``, with its standard error over walkers; compared with
   the exact value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from matterflow.core.domain import Domain
from matterflow.core.registry import Params, quantity, task

__all__ = ["random_walks", "mean_squared_displacement", "fit_diffusion", "TASKS"]


class RandomWalkParams(Params):
    n_walkers: int = Field(200, ge=1, le=1_000_000, description="number of independent walkers")
    n_steps: int = Field(1000, ge=2, description="steps per walker")
    dimensions: int = Field(3, ge=1, le=3, description="spatial dimensions")
    step_nm: float = Field(0.1, gt=0, description="std. dev. of one step per direction",
                           json_schema_extra={"units": "nm"})
    dt_ps: float = Field(1.0, gt=0, description="time per step", json_schema_extra={"units": "ps"})
    seed: int = Field(0, ge=0, description="random seed")


@dataclass(frozen=True)
class RandomWalks:
    positions_nm: np.ndarray = quantity("nm", "(n_walkers, n_steps + 1, dimensions)")
    time_ps: np.ndarray = quantity("ps", "(n_steps + 1,)")
    exact_diffusion_nm2_per_ps: float = quantity("nm^2/ps", "step_nm**2 / (2 dt_ps)")


def _walk_figures(outputs: dict[str, Any], params: RandomWalkParams) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    pos, t = outputs["positions_nm"], outputs["time_ps"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for walk in pos[:8]:
        ax1.plot(walk[:, 0], walk[:, 1] if pos.shape[2] > 1 else t, lw=0.7)
    ax1.set_xlabel("x (nm)")
    ax1.set_ylabel("y (nm)" if pos.shape[2] > 1 else "t (ps)")
    ax1.set_title("first 8 walkers")
    final = pos[:, -1, 0]
    sigma = params.step_nm * np.sqrt(params.n_steps)
    ax2.hist(final, bins=30, density=True, alpha=0.6, label="walkers")
    x = np.linspace(-4 * sigma, 4 * sigma, 200)
    ax2.plot(x, np.exp(-x**2 / (2 * sigma**2)) / np.sqrt(2 * np.pi * sigma**2), "k--",
             label="exact Gaussian")
    ax2.set_xlabel("final x (nm)")
    ax2.legend()
    fig.tight_layout()
    return {"Trajectories and final displacement": fig}


@task("core.random_walks", params=RandomWalkParams, figures=_walk_figures)
def random_walks(*, params: RandomWalkParams) -> RandomWalks:
    """Gaussian random walks of independent walkers, starting at the origin."""
    rng = np.random.default_rng(params.seed)
    steps = rng.normal(0.0, params.step_nm, size=(params.n_walkers, params.n_steps,
                                                  params.dimensions))
    positions = np.concatenate([np.zeros((params.n_walkers, 1, params.dimensions)),
                                np.cumsum(steps, axis=1)], axis=1)
    return RandomWalks(positions_nm=positions,
                       time_ps=np.arange(params.n_steps + 1) * params.dt_ps,
                       exact_diffusion_nm2_per_ps=params.step_nm**2 / (2 * params.dt_ps))


class MSDParams(Params):
    max_lag: int = Field(100, ge=1, description="largest lag, in steps")
    dt_ps: float = Field(1.0, gt=0, description="time per step", json_schema_extra={"units": "ps"})


@dataclass(frozen=True)
class MSD:
    lag_ps: np.ndarray = quantity("ps", "(max_lag,)")
    msd_nm2: np.ndarray = quantity("nm^2", "(max_lag,) time-averaged over the trajectory")


@task("core.mean_squared_displacement", params=MSDParams, map_over="walk")
def mean_squared_displacement(walk: np.ndarray, *, params: MSDParams) -> MSD:
    """Time-averaged mean squared displacement of one trajectory (n_steps + 1, d) in nm."""
    walk = np.asarray(walk, dtype=float)
    lags = np.arange(1, min(params.max_lag, len(walk) - 1) + 1)
    msd = np.array([np.mean(np.sum((walk[k:] - walk[:-k]) ** 2, axis=-1)) for k in lags])
    return MSD(lag_ps=lags * params.dt_ps, msd_nm2=msd)


class FitParams(Params):
    dimensions: int = Field(3, ge=1, le=3, description="spatial dimensions of the walks")


@dataclass(frozen=True)
class DiffusionFit:
    lag_ps: np.ndarray = quantity("ps")
    msd_mean_nm2: np.ndarray = quantity("nm^2", "MSD averaged over walkers")
    msd_sem_nm2: np.ndarray = quantity("nm^2", "standard error of the mean over walkers")
    diffusion_nm2_per_ps: float = quantity("nm^2/ps", "least-squares D of MSD = 2 d D t")
    diffusion_sem_nm2_per_ps: float = quantity("nm^2/ps", "standard error of D over walkers")


def _figures(outputs: dict[str, Any], params: FitParams) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    lag, msd, sem = outputs["lag_ps"], outputs["msd_mean_nm2"], outputs["msd_sem_nm2"]
    d = float(outputs["diffusion_nm2_per_ps"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.fill_between(lag, msd - 2 * sem, msd + 2 * sem, alpha=0.3, label="±2 s.e.m.")
    ax.plot(lag, msd, lw=1.5, label="mean over walkers")
    ax.plot(lag, 2 * params.dimensions * d * lag, "k--", lw=1, label=f"fit, D = {d:.4g} nm²/ps")
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (nm²)")
    ax.legend()
    fig.tight_layout()
    return {"Mean squared displacement": fig}


@task("core.fit_diffusion", params=FitParams, figures=_figures)
def fit_diffusion(msd: np.ndarray, lag: np.ndarray, *, params: FitParams) -> DiffusionFit:
    """Diffusion coefficient from per-walker MSD curves (n_walkers, n_lags) in nm²."""
    msd = np.atleast_2d(np.asarray(msd, dtype=float))
    lag = np.asarray(lag, dtype=float)
    lag = lag[0] if lag.ndim == 2 else lag
    # slope through the origin per walker: D_i = sum(t m_i) / (2 d sum(t^2))
    d_each = msd @ lag / (2 * params.dimensions * float(lag @ lag))
    n = len(d_each)
    return DiffusionFit(lag_ps=lag, msd_mean_nm2=msd.mean(axis=0),
                        msd_sem_nm2=msd.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(lag),
                        diffusion_nm2_per_ps=float(d_each.mean()),
                        diffusion_sem_nm2_per_ps=float(d_each.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"))


class SleepParams(Params):
    seconds: float = Field(1.0, ge=0, le=3600, description="how long to wait",
                           json_schema_extra={"units": "s"})
    value: float = Field(0.0, description="returned unchanged")


@dataclass(frozen=True)
class Slept:
    value: float = quantity("dimensionless")


@task("core.sleep", params=SleepParams)
def sleep(*, params: SleepParams) -> Slept:
    """Wait, then return ``value`` (for testing resume and scheduling)."""
    import time

    time.sleep(params.seconds)
    return Slept(value=params.value)


TASKS = [random_walks, mean_squared_displacement, fit_diffusion, sleep]


DOMAIN = Domain(
    name="core",
    summary="The core's own example tasks (random walks, diffusion fit).",
    tasks="matterflow.core.quickstart:TASKS",
    demos=("quickstart.yaml",),
    docs="core.md",
    headline="core.fit_diffusion:msd_mean_nm2, core.fit_diffusion:diffusion_nm2_per_ps",
)
