"""Families of random external potentials (Ha) on a 1D grid (bohr).

=====================  =====================================================
family                 v_ext(x)
=====================  =====================================================
``gaussian_wells``     sum of 1-3 Gaussian wells, depths 0.5-3 Ha, widths
                       0.6-2 bohr, centres within ±4 bohr
``harmonic``           ½ ω² (x - x0)², ω 0.3-0.7 Ha, plus a Gaussian bump
                       or dip of ±0.5 Ha (the perturbation)
``double_well``        A ((x/b)² - 1)² + t x, capped at 5 Ha, b 1.5-3 bohr,
                       barrier A 0.2-1.5 Ha, tilt |t| ≤ 0.1 Ha/bohr
``coulomb_chain``      -Σ_k Z_k / sqrt((x - X_k)² + 1), 2-3 centres of charge
                       0.6-1.4 spaced 1.5-4 bohr
=====================  =====================================================

Every family is drawn from a seeded :class:`numpy.random.Generator`, so a
dataset is reproducible from ``(families, n_samples, seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["FAMILIES", "check_families", "sample_potential", "sample_potentials"]


def _gaussian_wells(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    v = np.zeros_like(x)
    for _ in range(rng.integers(1, 4)):
        depth, width, centre = rng.uniform(0.5, 3.0), rng.uniform(0.6, 2.0), rng.uniform(-4, 4)
        v -= depth * np.exp(-((x - centre) ** 2) / (2 * width**2))
    return v


def _harmonic(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    omega, x0 = rng.uniform(0.3, 0.7), rng.uniform(-1.0, 1.0)
    v = 0.5 * omega**2 * (x - x0) ** 2
    amp, width, centre = rng.uniform(-0.5, 0.5), rng.uniform(0.5, 1.5), rng.uniform(-2.5, 2.5)
    v = v + amp * np.exp(-((x - centre) ** 2) / (2 * width**2))
    return np.minimum(v, 5.0 + amp)


def _double_well(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    a, b, tilt = rng.uniform(0.2, 1.5), rng.uniform(1.5, 3.0), rng.uniform(-0.1, 0.1)
    return np.minimum(a * ((x / b) ** 2 - 1) ** 2 + tilt * x, 5.0)


def _coulomb_chain(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    n = int(rng.integers(2, 4))
    spacing = rng.uniform(1.5, 4.0, size=n - 1)
    centres = np.concatenate([[0.0], np.cumsum(spacing)])
    centres = centres - centres.mean() + rng.uniform(-1, 1)
    charges = rng.uniform(0.6, 1.4, size=n)
    return -np.sum(charges[:, None] / np.sqrt((x[None, :] - centres[:, None]) ** 2 + 1.0), axis=0)


FAMILIES: dict[str, Callable[[np.random.Generator, np.ndarray], np.ndarray]] = {
    "gaussian_wells": _gaussian_wells,
    "harmonic": _harmonic,
    "double_well": _double_well,
    "coulomb_chain": _coulomb_chain,
}
"""Family name -> ``sampler(rng, x) -> v_ext`` (Ha)."""


def check_families(families: Sequence[str], *, field: str = "families") -> list[str]:
    """The family names, checked; an unknown name raises InputError listing the known ones."""
    families = list(families)
    if not families:
        raise InputError(f"{field}: give at least one family; known: {', '.join(FAMILIES)}")
    for f in families:
        if f not in FAMILIES:
            raise InputError(f"{field}: unknown potential family {f!r}; known: {', '.join(FAMILIES)}")
    return families


def sample_potential(family: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random potential (Ha) of ``family`` on the grid ``x`` (bohr)."""
    check_families([family], field="family")
    return FAMILIES[family](rng, np.asarray(x, dtype=float))


def sample_potentials(families: Sequence[str], n_samples: int, x: np.ndarray, seed: int = 0
                      ) -> tuple[np.ndarray, list[str]]:
    """``n_samples`` potentials cycling through ``families``: ``(v (n, n_points) Ha, family names)``."""
    families = check_families(families)
    rng = np.random.default_rng(seed)
    names = [families[i % len(families)] for i in range(n_samples)]
    v = np.stack([FAMILIES[f](rng, np.asarray(x, dtype=float)) for f in names]) if names else \
        np.zeros((0, len(x)))
    return v, names
