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
``poschl_teller``      -V0 / cosh²((x - x0)/a) + E x, V0 0.5-2 Ha, a 0.8-2 bohr,
                       |x0| ≤ 1.5 bohr, |E| ≤ 0.03 Ha/bohr
``morse``              D [(1 - exp(-α s (x - x0)))² - 1], capped at 3 Ha, D 0.5-2.5 Ha,
                       α 0.5-1.5 /bohr, x0 within ±2 bohr, s = ±1 (the steep wall left
                       or right)
``step_barrier``       a smoothed square well (depth 0.5-2.5 Ha, width 3-9 bohr) with a
                       step of ±0.6 Ha inside and, half the time, a barrier (0.3-1.5 Ha,
                       0.4-1.5 bohr wide); edges tanh-smoothed over 0.3-0.6 bohr
``linear_field``       E x (|E| 0.05-0.3 Ha/bohr, the hard walls confine) plus a
                       Gaussian well of depth 0-1.5 Ha
``sum``                the sum of two draws of two different families above, plus a
                       field |E| ≤ 0.05 Ha/bohr, capped at 5 Ha
=====================  =====================================================

``DEFAULT_FAMILIES`` are the first four (the defaults of ``dft1d generate`` and of
the ``dft1d.potentials`` task, so earlier datasets stay reproducible); ``FAMILIES``
holds all nine.

Every family is drawn from a seeded :class:`numpy.random.Generator`, so a
dataset is reproducible from ``(families, n_samples, seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["DEFAULT_FAMILIES", "FAMILIES", "check_families", "sample_potential", "sample_potentials"]


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


def _poschl_teller(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    v0, a, x0, field = (rng.uniform(0.5, 2.0), rng.uniform(0.8, 2.0), rng.uniform(-1.5, 1.5),
                        rng.uniform(-0.03, 0.03))
    return -v0 / np.cosh((x - x0) / a) ** 2 + field * x


def _morse(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    d, alpha, x0 = rng.uniform(0.5, 2.5), rng.uniform(0.5, 1.5), rng.uniform(-2.0, 2.0)
    side = 1.0 if rng.random() < 0.5 else -1.0
    return np.minimum(d * ((1 - np.exp(-alpha * side * (x - x0))) ** 2 - 1), 3.0)


def _smooth_step(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return 0.5 * (1 + np.tanh((x - centre) / width))


def _step_barrier(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    depth, width, centre = rng.uniform(0.5, 2.5), rng.uniform(3.0, 9.0), rng.uniform(-1.5, 1.5)
    edge = rng.uniform(0.3, 0.6)
    inside = _smooth_step(x, centre - width / 2, edge) - _smooth_step(x, centre + width / 2, edge)
    step = rng.uniform(-0.6, 0.6) * _smooth_step(x, centre + rng.uniform(-0.3, 0.3) * width, edge)
    v = -depth * inside + step * inside
    if rng.random() < 0.5:
        height, bw = rng.uniform(0.3, 1.5), rng.uniform(0.4, 1.5)
        bc = centre + rng.uniform(-0.25, 0.25) * width
        v = v + height * (_smooth_step(x, bc - bw / 2, edge) - _smooth_step(x, bc + bw / 2, edge))
    return v


def _linear_field(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    field = rng.uniform(0.05, 0.3) * (1.0 if rng.random() < 0.5 else -1.0)
    depth, width, centre = rng.uniform(0.0, 1.5), rng.uniform(0.6, 2.0), rng.uniform(-4, 4)
    return field * x - depth * np.exp(-((x - centre) ** 2) / (2 * width**2))


_BASE = ("gaussian_wells", "harmonic", "double_well", "coulomb_chain", "poschl_teller", "morse",
         "step_barrier", "linear_field")


def _sum(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    i, j = rng.choice(len(_BASE), size=2, replace=False)
    v = FAMILIES[_BASE[i]](rng, x) + FAMILIES[_BASE[j]](rng, x) + rng.uniform(-0.05, 0.05) * x
    return np.minimum(v, 5.0)


FAMILIES: dict[str, Callable[[np.random.Generator, np.ndarray], np.ndarray]] = {
    "gaussian_wells": _gaussian_wells,
    "harmonic": _harmonic,
    "double_well": _double_well,
    "coulomb_chain": _coulomb_chain,
    "poschl_teller": _poschl_teller,
    "morse": _morse,
    "step_barrier": _step_barrier,
    "linear_field": _linear_field,
    "sum": _sum,
}
"""Family name -> ``sampler(rng, x) -> v_ext`` (Ha)."""

DEFAULT_FAMILIES: tuple[str, ...] = ("gaussian_wells", "harmonic", "double_well", "coulomb_chain")
"""The families of ``dft1d generate`` and of the ``dft1d.potentials`` task by default."""


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
