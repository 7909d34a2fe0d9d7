"""Exact solvers: one and two interacting electrons, and non-interacting (Kohn–Sham) electrons.

Two electrons interact through the softened Coulomb potential
``w(x, x') = 1 / sqrt((x - x')² + 1)``. Their spatial wavefunction lives on
the tensor-product grid ``(x1, x2)``; it is symmetric for the singlet and
antisymmetric for the triplet, so the Hamiltonian is projected onto the
symmetric (``i <= j``) or antisymmetric (``i < j``) pair basis and its lowest
eigenpair found with a sparse shift-invert Lanczos solver (``scipy.sparse.linalg.eigsh``).

Units: Hartree atomic units (bohr, Ha, electrons/bohr).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from matterflow.core.errors import ComputeError, InputError
from matterflow.dft1d.grid import Grid, as_grid, check_potential, kinetic_matrix, softened_coulomb

__all__ = ["KSState", "TwoElectronState", "occupations_for", "solve_noninteracting",
           "solve_one_electron", "solve_two_electrons", "hartree_potential"]


@dataclass(frozen=True)
class KSState:
    """Non-interacting electrons in a potential.

    Attributes
    ----------
    energies : (n_states,) Ha, all single-particle eigenvalues
    orbitals : (n_points, n_states), normalised ``sum |phi|² dx = 1``
    occupations : (n_occ,) electrons in each of the lowest orbitals
    density : (n_points,) electrons/bohr
    """

    energies: np.ndarray
    orbitals: np.ndarray
    occupations: np.ndarray
    density: np.ndarray

    @property
    def energy(self) -> float:
        """Sum of occupied eigenvalues (Ha)."""
        k = len(self.occupations)
        return float(self.occupations @ self.energies[:k])


@dataclass(frozen=True)
class TwoElectronState:
    """Ground state of two interacting electrons in a given spin state.

    Attributes
    ----------
    energy : Ha
    density : (n_points,) electrons/bohr, integrates to 2
    wavefunction : (n_points, n_points) spatial part, ``sum |psi|² dx² = 1``
    spin : "singlet" or "triplet"
    """

    energy: float
    density: np.ndarray
    wavefunction: np.ndarray
    spin: str


def occupations_for(n_electrons: int, spin: Literal["unpolarised", "polarised"] = "unpolarised"
                    ) -> np.ndarray:
    """Aufbau occupations: two per orbital (unpolarised) or one per orbital (all spins up)."""
    if n_electrons < 1:
        raise InputError(f"n_electrons: must be >= 1; got {n_electrons}")
    if spin == "polarised":
        return np.ones(n_electrons)
    if spin != "unpolarised":
        raise InputError(f"spin: accepted 'unpolarised', 'polarised'; got {spin!r}")
    occ = np.full((n_electrons + 1) // 2, 2.0)
    if n_electrons % 2:
        occ[-1] = 1.0
    return occ


def _hamiltonian_dense(v: np.ndarray, grid: Grid, stencil: int) -> np.ndarray:
    h = kinetic_matrix(grid, stencil).toarray()
    h[np.diag_indices_from(h)] += v
    return h


def solve_noninteracting(v: np.ndarray, x: np.ndarray | Grid, occupations: np.ndarray, *,
                         stencil: int = 5, n_states: int | None = None) -> KSState:
    """Orbitals, eigenvalues and density of non-interacting electrons in ``v`` (Ha).

    Parameters
    ----------
    v : (n_points,) potential, Ha
    x : (n_points,) uniform grid, bohr
    occupations : (n_occ,) electrons per orbital, lowest first
    stencil : finite-difference stencil of the kinetic energy (3, 5, 7 or 9 points)
    n_states : eigenpairs to return (default: all, dense diagonalisation)
    """
    grid = as_grid(x)
    v = check_potential(v, grid, name="v")
    occ = np.asarray(occupations, dtype=float)
    h = _hamiltonian_dense(v, grid, stencil)
    if n_states is None:
        e, phi = sla.eigh(h)
    else:
        k = max(int(n_states), len(occ))
        e, phi = sla.eigh(h, subset_by_index=(0, k - 1))
    phi = phi / np.sqrt(grid.dx)
    density = (phi[:, : len(occ)] ** 2) @ occ
    return KSState(energies=e, orbitals=phi, occupations=occ, density=density)


def solve_one_electron(v: np.ndarray, x: np.ndarray | Grid, *, n_states: int = 1,
                       stencil: int = 5) -> KSState:
    """Lowest ``n_states`` eigenstates of one electron in ``v`` (Ha); density of the ground state."""
    return solve_noninteracting(v, x, np.array([1.0]), stencil=stencil, n_states=n_states)


def hartree_potential(density: np.ndarray, x: np.ndarray | Grid, softening: float = 1.0
                      ) -> np.ndarray:
    """Hartree potential ``∫ n(x') w(x - x') dx'`` (Ha) of a density (1/bohr) on ``x``."""
    grid = as_grid(x)
    w = softened_coulomb(grid.x[:, None] - grid.x[None, :], softening)
    return w @ np.asarray(density, dtype=float) * grid.dx


def _pair_basis(n: int, spin: str) -> sp.csr_matrix:
    """Orthonormal (n², m) map from the symmetric/antisymmetric pair basis to the product grid."""
    i, j = np.triu_indices(n, k=0 if spin == "singlet" else 1)
    m = len(i)
    cols = np.arange(m)
    diag = i == j
    rows_a = i * n + j
    rows_b = j * n + i
    sign = 1.0 if spin == "singlet" else -1.0
    val = np.where(diag, 1.0, np.sqrt(0.5))
    rows = np.concatenate([rows_a, rows_b[~diag]])
    cc = np.concatenate([cols, cols[~diag]])
    vals = np.concatenate([val, sign * val[~diag]])
    return sp.csr_matrix((vals, (rows, cc)), shape=(n * n, m))


def solve_two_electrons(v_ext: np.ndarray, x: np.ndarray | Grid, *,
                        spin: Literal["singlet", "triplet"] = "singlet", stencil: int = 5,
                        softening: float = 1.0, strength: float = 1.0) -> TwoElectronState:
    """Exact ground state of two electrons in ``v_ext`` with softened-Coulomb repulsion.

    Parameters
    ----------
    v_ext : (n_points,) external potential, Ha
    x : (n_points,) uniform grid, bohr
    spin : "singlet" (symmetric spatial part) or "triplet" (antisymmetric)
    stencil : finite-difference stencil of the kinetic energy
    softening : a in ``strength / sqrt((x - x')² + a²)``, bohr
    strength : interaction prefactor (0 gives non-interacting electrons)
    """
    grid = as_grid(x)
    v = check_potential(v_ext, grid)
    if spin not in ("singlet", "triplet"):
        raise InputError(f"spin: accepted 'singlet', 'triplet'; got {spin!r}")
    n = grid.n_points
    h1 = kinetic_matrix(grid, stencil) + sp.diags(v)
    eye = sp.identity(n, format="csr")
    w = softened_coulomb(grid.x[:, None] - grid.x[None, :], softening, strength).ravel()
    h2 = (sp.kron(h1, eye) + sp.kron(eye, h1) + sp.diags(w)).tocsr()
    p = _pair_basis(n, spin)
    hp = (p.T @ h2 @ p).tocsc()
    sigma = 2.0 * float(v.min()) + min(0.0, strength) / softening - 1.0
    try:
        # a fixed start vector: ARPACK's own random start advances with every call, which made
        # the same potential give densities differing by ~1e-14 with the call order (datasets,
        # hence trained models, not bit-reproducible)
        v0 = np.random.default_rng(0).standard_normal(hp.shape[0])
        e, vec = spla.eigsh(hp, k=1, sigma=sigma, which="LM", tol=1e-12, v0=v0)
    except (spla.ArpackNoConvergence, RuntimeError) as exc:
        raise ComputeError(f"two-electron eigensolver did not converge: {exc}") from None
    psi = (p @ vec[:, 0]).reshape(n, n) / grid.dx
    if psi.sum() < 0:
        psi = -psi
    density = 2.0 * np.sum(psi**2, axis=1) * grid.dx
    return TwoElectronState(energy=float(e[0]), density=density, wavefunction=psi, spin=spin)
