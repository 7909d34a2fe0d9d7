"""Kohn–Sham inversion: the potential whose non-interacting density equals a target density.

Method (Wu & Yang, J. Chem. Phys. 118, 2498 (2003), with a smoothness
regulariser as in Heaton-Burgess, Bulat & Yang, PRL 98, 256401 (2007)).
Write the KS potential as ``v = v0 + v_b`` with the reference
``v0 = v_ext + (1 - 1/N) v_H[n_target]`` (Fermi–Amaldi, right asymptotics)
and maximise the concave functional

    W[v_b] = Σ_i f_i ε_i[v] - ∫ v n_target dx - λ ∫ (v_b')² dx

whose gradient is ``(n_v - n_target) dx - 2 λ (D^T D v_b) dx``. Newton steps
use the exact discrete Hessian ``χ dx - 2 λ D^T D dx`` (``χ`` the static KS
response from all eigenpairs of a dense diagonalisation) with a backtracking
line search on W. Where the density is vanishingly small the regulariser
takes over and extends ``v_b`` flat, so the potential stays smooth there.

Gauge (stated): the additive constant is fixed so that ``v_b`` averages to
zero over the two end points of the grid, i.e. ``v_KS → v_ext + (1 - 1/N) v_H``
at the box edges. Then ``v_Hxc = v_KS - v_ext``.

Units: Hartree atomic units (bohr, Ha, electrons/bohr).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.linalg as sla

from matterflow.core.errors import ComputeError, InputError, MatterflowWarning
from matterflow.dft1d.exact import hartree_potential, occupations_for
from matterflow.dft1d.grid import as_grid, check_density, check_potential, kinetic_matrix

__all__ = ["InversionResult", "invert_density", "ks_response"]

_CONTROLLER = None


def _blas_limit(threads: int | None) -> contextlib.AbstractContextManager:
    """Limit the BLAS/LAPACK thread pool (threadpoolctl) for the block; no-op if unavailable.

    Dense eigensolvers of a few hundred points run fastest on one thread: OpenBLAS's
    default of one thread per core costs several times more on a 64-point grid
    (thread start-up per call, and contention on a shared machine).
    """
    global _CONTROLLER
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=int(threads), user_api="blas")


@dataclass(frozen=True)
class InversionResult:
    """Outcome of :func:`invert_density`.

    Attributes
    ----------
    v_ks : (n_points,) Kohn–Sham potential, Ha (gauge in the module docstring)
    v_hxc : (n_points,) ``v_ks - v_ext``, Ha
    density : (n_points,) KS density of ``v_ks``, electrons/bohr
    eigenvalues : (n_occ,) occupied KS eigenvalues, Ha
    max_density_error : max |n_KS - n_target|, electrons/bohr
    n_iterations : Newton iterations taken
    converged : whether ``max_density_error <= tol``
    seconds : wall time
    start_max_density_error : max |n_KS - n_target| of the starting potential, electrons/bohr
    """

    v_ks: np.ndarray
    v_hxc: np.ndarray
    density: np.ndarray
    eigenvalues: np.ndarray
    max_density_error: float
    n_iterations: int
    converged: bool
    seconds: float
    start_max_density_error: float = float("nan")


def ks_response(energies: np.ndarray, orbitals: np.ndarray, occupations: np.ndarray,
                dx: float) -> np.ndarray:
    """Static density response ``χ(x, x') = δn(x)/δv(x')`` (per grid point), shape (n, n).

    ``orbitals`` (n, n_states) are normalised with ``sum phi² dx = 1``; the
    first ``len(occupations)`` are occupied.
    """
    n_occ = len(occupations)
    chi = np.zeros((orbitals.shape[0],) * 2)
    for i in range(n_occ):
        others = np.arange(orbitals.shape[1]) != i
        de = energies[i] - energies[others]
        f_other = np.zeros(int(others.sum()))
        idx = np.arange(orbitals.shape[1])[others]
        f_other[idx < n_occ] = occupations[idx[idx < n_occ]]
        # pairs of occupied orbitals: (f_i - f_a)/(e_i - e_a), counted once from each side
        coef = 2.0 * dx * np.where(idx < n_occ, 0.5 * (occupations[i] - f_other), occupations[i]) / de
        a = orbitals[:, i:i + 1] * orbitals[:, others]
        chi += (a * coef) @ a.T
    return chi


def _single_orbital_guess(target: np.ndarray, occ: np.ndarray, kin: np.ndarray, v0: np.ndarray,
                          dx: float) -> np.ndarray:
    """Exact one-orbital inversion ``v = -(T phi)/phi`` with ``phi = sqrt(n/f)`` (gauge free),
    as ``v - v0``, extended flat where the density is too small to trust."""
    phi = np.sqrt(target / occ[0])
    good = target > 1e-10 * target.max()
    v = np.zeros_like(target)
    v[good] = -(kin @ phi)[good] / phi[good]
    vb = v - v0
    idx = np.flatnonzero(good)
    if idx.size == 0:
        return np.zeros_like(target)
    first, last = idx[0], idx[-1]
    vb[:first] = vb[first]
    vb[last + 1:] = vb[last]
    inner = np.arange(first, last + 1)
    bad = inner[~good[inner]]
    if bad.size:  # low-density gaps inside: interpolate
        vb[bad] = np.interp(bad, idx, vb[idx])
    return vb - vb.mean()


def invert_density(density: np.ndarray, v_ext: np.ndarray, x: np.ndarray, *, n_electrons: int = 2,
                   occupations: np.ndarray | None = None,
                   spin: Literal["unpolarised", "polarised"] = "unpolarised",
                   stencil: int = 5, softening: float = 1.0, regularisation: float = 1e-9,
                   tol: float = 1e-7, max_iter: int = 100, guess: Literal["auto", "reference"] = "auto",
                   on_failure: Literal["raise", "warn"] = "raise",
                   blas_threads: int | None = 1,
                   v_start: np.ndarray | None = None) -> InversionResult:
    """Kohn–Sham potential reproducing ``density`` (see the module docstring for the method).

    Parameters
    ----------
    density : (n_points,) target density, electrons/bohr; must be >= 0 and integrate to N
    v_ext : (n_points,) external potential, Ha (only the reference and v_Hxc use it)
    x : (n_points,) uniform grid, bohr
    n_electrons : N
    occupations : KS occupations (default: Aufbau for N and ``spin``)
    spin : "unpolarised" (two electrons per orbital; singlet targets) or "polarised"
        (one per orbital; triplet targets)
    stencil : finite-difference stencil of the kinetic energy (same as the exact solver)
    regularisation : λ of the smoothness penalty, Ha·bohr
    tol : required max |n_KS - n_target|, electrons/bohr
    max_iter : Newton iterations before giving up
    guess : "auto" starts one-orbital systems (N=1, or N=2 unpolarised) from the exact
        one-orbital inversion ``v = -(T sqrt(n/f))/sqrt(n/f)`` (tails extended flat) and
        the others from the reference ``v0``; "reference" always starts from ``v0``
    on_failure : "raise" a ComputeError, or "warn" (MatterflowWarning) and return the
        unconverged result with ``converged=False``
    blas_threads : BLAS threads while inverting (default 1, fastest for small grids; None
        leaves the process setting)
    v_start : (n_points,) a KS potential (Ha) to start the Newton iterations from (e.g. a
        neural operator's prediction, see :mod:`matterflow.dft1d.refine`); overrides
        ``guess``. Any constant offset is irrelevant (gauge).

    Raises
    ------
    InputError
        bad density (negative, wrong electron number, other grid) or potential.
    ComputeError
        no convergence (``on_failure="raise"``); the message gives the residual reached.
    """
    with _blas_limit(blas_threads):
        return _invert(density, v_ext, x, n_electrons=n_electrons, occupations=occupations,
                       spin=spin, stencil=stencil, softening=softening,
                       regularisation=regularisation, tol=tol, max_iter=max_iter, guess=guess,
                       on_failure=on_failure, v_start=v_start)


def _invert(density: np.ndarray, v_ext: np.ndarray, x: np.ndarray, *, n_electrons: int,
            occupations: np.ndarray | None, spin: str, stencil: int, softening: float,
            regularisation: float, tol: float, max_iter: int, guess: str,
            on_failure: str, v_start: np.ndarray | None = None) -> InversionResult:
    t0 = time.perf_counter()
    grid = as_grid(x)
    target = check_density(density, grid, n_electrons)
    v_ext = check_potential(v_ext, grid)
    occ = occupations_for(n_electrons, spin) if occupations is None else np.asarray(occupations, float)
    if abs(occ.sum() - n_electrons) > 1e-9:
        raise InputError(f"occupations: sum to {occ.sum()}; n_electrons is {n_electrons}")
    if on_failure not in ("raise", "warn"):
        raise InputError(f"on_failure: accepted 'raise', 'warn'; got {on_failure!r}")
    dx, n = grid.dx, grid.n_points
    kin = kinetic_matrix(grid, stencil).toarray()
    v0 = v_ext + (1.0 - 1.0 / n_electrons) * hartree_potential(target, grid, softening)
    d = (np.eye(n, k=1) - np.eye(n))[:-1] / dx          # forward differences (n-1, n)
    dtd = d.T @ d
    lam = float(regularisation)
    ones = np.ones(n) / np.sqrt(n)

    def solve(vb: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        h = kin.copy()
        h[np.diag_indices(n)] += v0 + vb
        e, phi = sla.eigh(h)
        phi /= np.sqrt(dx)
        dens = (phi[:, : len(occ)] ** 2) @ occ
        w = float(occ @ e[: len(occ)] - np.sum((v0 + vb) * target) * dx - lam * vb @ dtd @ vb * dx)
        return w, e, phi, dens

    if guess not in ("auto", "reference"):
        raise InputError(f"guess: accepted 'auto', 'reference'; got {guess!r}")
    one = len(occ) == 1 and guess == "auto"
    if v_start is not None:
        vb = check_potential(v_start, grid, name="v_start") - v0
        vb = vb - vb.mean()
    else:
        vb = _single_orbital_guess(target, occ, kin, v0, dx) if one else np.zeros(n)
    w, e, phi, dens = solve(vb)
    err = start_err = float(np.max(np.abs(dens - target)))
    it, damping = 0, 0.0
    while err > tol and it < max_iter:
        it += 1
        grad = (dens - target) * dx - 2 * lam * (dtd @ vb) * dx
        neg = -(ks_response(e, phi, occ, dx) * dx - 2 * lam * dtd * dx)
        scale = float(np.abs(neg).max())
        neg += np.outer(ones, ones) * scale
        accepted = False
        while not accepted:
            try:
                step = sla.solve(neg + damping * scale * np.eye(n), grad, assume_a="sym")
            except (sla.LinAlgError, ValueError):
                step = np.linalg.lstsq(neg + damping * scale * np.eye(n), grad, rcond=1e-14)[0]
            step -= ones * (ones @ step)
            alpha = 1.0
            while alpha >= 1.0 / 64:
                w_new, e_new, phi_new, dens_new = solve(vb + alpha * step)
                if w_new >= w - 1e-13 * max(1.0, abs(w)):
                    accepted = True
                    break
                alpha *= 0.5
            if not accepted:  # Newton model poor (near-degenerate levels): damp towards gradient
                damping = max(1e-6, 10 * damping)
                if damping > 1e6:
                    break
            else:
                damping = damping / 10 if alpha == 1.0 and damping > 1e-6 else damping
        if not accepted:
            break
        vb = vb + alpha * step
        w, e, phi, dens = w_new, e_new, phi_new, dens_new
        err = float(np.max(np.abs(dens - target)))
    converged = err <= tol
    if not converged:
        msg = (f"KS inversion did not converge: max |n_KS - n_target| = {err:.3g} electrons/bohr "
               f"after {it} Newton iterations (tol {tol:g}); try more iterations (max_iter), a "
               f"larger regularisation, or check that the density is v-representable")
        if on_failure == "raise":
            raise ComputeError(msg)
        warnings.warn(msg, MatterflowWarning, stacklevel=3)
    vb = vb - 0.5 * (vb[0] + vb[-1])
    v_ks = v0 + vb
    return InversionResult(v_ks=v_ks, v_hxc=v_ks - v_ext, density=dens, eigenvalues=e[: len(occ)],
                           max_density_error=err, n_iterations=it, converged=converged,
                           seconds=time.perf_counter() - t0, start_max_density_error=start_err)
