"""Uniform 1D grids, finite-difference kinetic operators and input checks.

All quantities are in Hartree atomic units: positions in bohr, energies and
potentials in hartree (Ha), densities in electrons per bohr. Wavefunctions
vanish outside the grid (hard walls one spacing beyond the end points), the
same convention as iDEA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from matterflow.core.errors import InputError

__all__ = ["Grid", "make_grid", "as_grid", "kinetic_matrix", "softened_coulomb",
           "check_density", "check_potential", "STENCILS"]

# central second-derivative weights, offsets 0, 1, 2, ... (symmetric)
_D2 = {
    3: [-2.0, 1.0],
    5: [-5.0 / 2, 4.0 / 3, -1.0 / 12],
    7: [-49.0 / 18, 3.0 / 2, -3.0 / 20, 1.0 / 90],
    9: [-205.0 / 72, 8.0 / 5, -1.0 / 5, 8.0 / 315, -1.0 / 560],
}
STENCILS = tuple(_D2)


@dataclass(frozen=True)
class Grid:
    """A uniform grid ``x`` (bohr), shape ``(n_points,)``."""

    x: np.ndarray

    @property
    def dx(self) -> float:
        """Grid spacing (bohr)."""
        return float(self.x[1] - self.x[0])

    @property
    def n_points(self) -> int:
        return int(self.x.shape[0])

    def integrate(self, f: np.ndarray) -> np.ndarray:
        """Integral over x of ``f`` along its last axis (rectangle rule, exact for the grid model)."""
        return np.sum(f, axis=-1) * self.dx


def make_grid(n_points: int = 64, length: float = 20.0) -> Grid:
    """Uniform grid of ``n_points`` from ``-length/2`` to ``length/2`` (bohr)."""
    if n_points < 8:
        raise InputError(f"n_points: at least 8 grid points are needed; got {n_points}")
    if not length > 0:
        raise InputError(f"length: must be > 0 bohr; got {length}")
    return Grid(np.linspace(-length / 2, length / 2, int(n_points)))


def as_grid(x: np.ndarray | Grid, *, name: str = "x") -> Grid:
    """Check that ``x`` is a 1D uniform increasing grid and wrap it."""
    if isinstance(x, Grid):
        return x
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size < 8:
        raise InputError(f"{name}: a 1D grid of at least 8 points is needed; got shape {x.shape}")
    d = np.diff(x)
    if not np.all(d > 0) or np.ptp(d) > 1e-6 * d.mean():
        raise InputError(f"{name}: the grid must be uniform and increasing; spacings range "
                         f"{d.min():.6g} to {d.max():.6g} bohr")
    return Grid(x)


def kinetic_matrix(grid: Grid, stencil: int = 5) -> sp.csr_matrix:
    """Kinetic energy ``-1/2 d²/dx²`` as a sparse ``(n, n)`` matrix (Ha), hard walls."""
    if stencil not in _D2:
        raise InputError(f"stencil: accepted {', '.join(map(str, STENCILS))}; got {stencil}")
    w = _D2[stencil]
    n = grid.n_points
    offsets = [k for k in range(-(len(w) - 1), len(w))]
    diags = [np.full(n - abs(k), w[abs(k)]) for k in offsets]
    d2 = sp.diags(diags, offsets, shape=(n, n), format="csr") / grid.dx**2
    return (-0.5 * d2).tocsr()


def softened_coulomb(r: np.ndarray, softening: float = 1.0, strength: float = 1.0) -> np.ndarray:
    """Softened Coulomb interaction ``strength / sqrt(r² + softening²)`` (Ha), ``r`` in bohr."""
    return strength / np.sqrt(np.asarray(r, dtype=float) ** 2 + softening**2)


def check_potential(v: np.ndarray, grid: Grid, *, name: str = "v_ext") -> np.ndarray:
    """A finite potential on ``grid`` (Ha), shape ``(n_points,)``."""
    v = np.asarray(v, dtype=float)
    if v.shape != grid.x.shape:
        raise InputError(f"{name}: must be on the grid of {grid.n_points} points; got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return v


def check_density(density: np.ndarray, grid: Grid, n_electrons: float, *, name: str = "density",
                  rtol: float = 1e-6, negative_tol: float = 1e-12) -> np.ndarray:
    """Check a density (1/bohr): same grid, non-negative, integrates to ``n_electrons``.

    Raises
    ------
    InputError
        naming ``name`` and the offending value.
    """
    n = np.asarray(density, dtype=float)
    if n.shape != grid.x.shape:
        raise InputError(f"{name}: must be on the grid of {grid.n_points} points "
                         f"(x from {grid.x[0]:.4g} to {grid.x[-1]:.4g} bohr); got shape {n.shape}")
    if not np.all(np.isfinite(n)):
        raise InputError(f"{name}: contains NaN or infinite values")
    if n.min() < -negative_tol:
        i = int(np.argmin(n))
        raise InputError(f"{name}: must be non-negative; got {n[i]:.3g} at x = {grid.x[i]:.4g} bohr")
    total = float(grid.integrate(n))
    if abs(total - n_electrons) > rtol * max(1.0, n_electrons):
        raise InputError(f"{name}: integrates to {total:.8g} electrons; n_electrons is "
                         f"{n_electrons} (tolerance {rtol:g})")
    return np.clip(n, 0.0, None)
