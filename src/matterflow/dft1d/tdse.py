"""Reference propagator for one electron in 1D driven by a field: Crank–Nicolson.

Atomic units throughout (ħ = mₑ = e = 1; length in bohr, time in ħ/Eₕ,
energy in hartree, field in Eₕ/(e·bohr)). The Hamiltonian, in the length
gauge, is

.. math::

    H(t) = -\\tfrac12 \\partial_x^2 + V(x) + x\\,E(t), \\qquad E(t) = E_0 \\sin(\\omega t),

so the force of the field on the electron (charge −1) is ``-E(t)``. The
binding potential ``V`` is either harmonic, ``½ ω₀² x²``, or softened Coulomb,
``-Z / sqrt(x² + a²)``. The wave function lives on the interior points of
``[-x_max, x_max]`` with ψ = 0 on the walls; the kinetic energy is the
second-order finite difference. Each step solves the tridiagonal system
``(1 + i dt/2 H(t+dt/2)) ψ(t+dt) = (1 − i dt/2 H(t+dt/2)) ψ(t)``, which is
unitary (the norm is conserved to round-off) and second order in ``dt``.

For the harmonic well the driven problem has an exact solution: the ground
state stays a Gaussian of the same width whose centre follows the classical
trajectory ``x_c'' = -ω₀² x_c − E(t)``, ``x_c(0) = x_c'(0) = 0``
(:func:`harmonic_centre`), which the tests use as an independent check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.linalg import eigh_tridiagonal, solve_banded

from matterflow.core.errors import ComputeError, InputError

__all__ = ["PotentialName", "TDSESetup", "TDSESolution", "grid", "binding_potential",
           "ground_state", "propagate", "harmonic_centre", "density_rel_l2"]

PotentialName = Literal["harmonic", "soft_coulomb"]


@dataclass(frozen=True)
class TDSESetup:
    """The physical problem (everything but the field amplitude ``E₀``).

    Parameters
    ----------
    potential : {"harmonic", "soft_coulomb"}
        Binding potential.
    omega0 : float
        Harmonic frequency ω₀ (1/ħ·Eₕ), used when ``potential="harmonic"``.
    charge : float
        Nuclear charge ``Z`` of the softened Coulomb well.
    softening : float
        Softening length ``a`` (bohr) of the softened Coulomb well.
    omega : float
        Angular frequency ω of the driving field (a.u.).
    t_final : float
        End of the time window (a.u. of time).
    x_max : float
        Half width of the box (bohr); ψ = 0 at ±x_max.
    """

    potential: PotentialName = "harmonic"
    omega0: float = 1.0
    charge: float = 1.0
    softening: float = 1.0
    omega: float = 1.0
    t_final: float = 2.0
    x_max: float = 5.0

    def __post_init__(self) -> None:
        if self.potential not in ("harmonic", "soft_coulomb"):
            raise InputError(f"potential: unknown binding potential {self.potential!r}; "
                             "accepted: 'harmonic', 'soft_coulomb'")
        for name in ("omega0", "charge", "softening", "t_final", "x_max"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name}: must be > 0; got {getattr(self, name)!r}")
        if self.omega < 0:
            raise InputError(f"omega: must be >= 0; got {self.omega!r}")

    def field(self, t: np.ndarray | float, e0: float) -> np.ndarray:
        """Electric field ``E₀ sin(ωt)`` (a.u.) at times ``t``."""
        return e0 * np.sin(self.omega * np.asarray(t, dtype=float))


@dataclass(frozen=True)
class TDSESolution:
    """Wave function on a space-time grid.

    Attributes
    ----------
    x : (n_x,) grid points (bohr), the interior of the box.
    t : (n_t,) saved times (a.u.), ``t[0] = 0``.
    psi : (n_t, n_x) complex wave function (bohr^-1/2).
    ground_energy : energy of the initial (ground) state (hartree).
    """

    x: np.ndarray
    t: np.ndarray
    psi: np.ndarray
    ground_energy: float

    @property
    def density(self) -> np.ndarray:
        """(n_t, n_x) electron density ``|ψ|²`` (1/bohr)."""
        return np.abs(self.psi) ** 2

    @property
    def dx(self) -> float:
        return float(self.x[1] - self.x[0])

    @property
    def norm(self) -> np.ndarray:
        """(n_t,) ``∫|ψ|² dx``."""
        return self.density.sum(axis=1) * self.dx

    @property
    def dipole(self) -> np.ndarray:
        """(n_t,) ``<x>`` (bohr)."""
        return (self.density * self.x).sum(axis=1) * self.dx

    @property
    def momentum(self) -> np.ndarray:
        """(n_t,) ``<p> = Im ∫ ψ* ∂ψ/∂x dx`` (a.u.), central differences."""
        dpsi = np.gradient(self.psi, self.dx, axis=1)
        return np.imag(np.sum(np.conj(self.psi) * dpsi, axis=1)) * self.dx


def grid(x_max: float, n_x: int) -> np.ndarray:
    """Interior points of ``[-x_max, x_max]`` with ``n_x + 1`` intervals (bohr)."""
    if n_x < 8:
        raise InputError(f"n_x: need at least 8 grid points; got {n_x}")
    return np.linspace(-x_max, x_max, n_x + 2)[1:-1]


def binding_potential(setup: TDSESetup, x: np.ndarray) -> np.ndarray:
    """The static potential ``V(x)`` (hartree) at points ``x`` (bohr)."""
    x = np.asarray(x, dtype=float)
    if setup.potential == "harmonic":
        return 0.5 * setup.omega0**2 * x**2
    return -setup.charge / np.sqrt(x**2 + setup.softening**2)


def ground_state(setup: TDSESetup, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Lowest eigenpair of the finite-difference ``H₀`` on grid ``x``.

    Returns
    -------
    energy : float
        Ground-state energy (hartree).
    psi0 : (n_x,) real, positive, normalised so that ``sum(psi0**2) dx = 1``.
    """
    dx = float(x[1] - x[0])
    diag = 1.0 / dx**2 + binding_potential(setup, x)
    off = np.full(len(x) - 1, -0.5 / dx**2)
    w, v = eigh_tridiagonal(diag, off, select="i", select_range=(0, 0))
    psi0 = v[:, 0] / np.sqrt(np.sum(v[:, 0] ** 2) * dx)
    if psi0[len(x) // 2] < 0:
        psi0 = -psi0
    return float(w[0]), psi0


def propagate(setup: TDSESetup, e0: float, *, n_x: int = 256, n_steps: int = 400,
              n_saved: int = 81, psi0: np.ndarray | None = None) -> TDSESolution:
    """Crank–Nicolson propagation of the ground state under ``E₀ sin(ωt)``.

    Parameters
    ----------
    setup : TDSESetup
        The problem.
    e0 : float
        Field amplitude E₀ (a.u.).
    n_x : int
        Interior grid points.
    n_steps : int
        Time steps over ``[0, t_final]``.
    n_saved : int
        Equally spaced times to keep (``n_steps`` must be a multiple of ``n_saved - 1``).
    psi0 : (n_x,) complex, optional
        Initial state; default the ground state of ``V``.

    Returns
    -------
    TDSESolution
    """
    if not np.isfinite(e0):
        raise InputError(f"e0: field amplitude must be finite; got {e0!r}")
    if n_saved < 2 or n_steps % (n_saved - 1):
        raise InputError(f"n_steps: must be a multiple of n_saved - 1 = {n_saved - 1}; "
                         f"got n_steps={n_steps}")
    x = grid(setup.x_max, n_x)
    dx = float(x[1] - x[0])
    energy, ground = ground_state(setup, x)
    psi = (ground if psi0 is None else np.asarray(psi0)).astype(complex)
    if psi.shape != x.shape:
        raise InputError(f"psi0: shape {psi.shape} does not match the grid ({n_x},)")
    dt = setup.t_final / n_steps
    every = n_steps // (n_saved - 1)
    v = binding_potential(setup, x)
    kin_diag, kin_off = 1.0 / dx**2, -0.5 / dx**2
    ab = np.zeros((3, n_x), dtype=complex)   # banded (1 + i dt/2 H)
    ab[0, 1:] = 0.5j * dt * kin_off
    ab[2, :-1] = 0.5j * dt * kin_off
    out = np.empty((n_saved, n_x), dtype=complex)
    out[0] = psi
    rhs = np.empty(n_x, dtype=complex)
    for step in range(n_steps):
        h_diag = kin_diag + v + x * float(setup.field((step + 0.5) * dt, e0))
        ab[1] = 1.0 + 0.5j * dt * h_diag
        # (1 - i dt/2 H) psi
        rhs[:] = (1.0 - 0.5j * dt * h_diag) * psi
        rhs[1:] -= 0.5j * dt * kin_off * psi[:-1]
        rhs[:-1] -= 0.5j * dt * kin_off * psi[1:]
        psi = solve_banded((1, 1), ab, rhs, overwrite_ab=False, overwrite_b=False,
                           check_finite=False)
        if (step + 1) % every == 0:
            out[(step + 1) // every] = psi
    if not np.all(np.isfinite(out)):
        raise ComputeError(f"Crank–Nicolson propagation produced NaN/inf (e0={e0}, dt={dt})")
    return TDSESolution(x=x, t=np.linspace(0.0, setup.t_final, n_saved), psi=out,
                        ground_energy=energy)


def harmonic_centre(setup: TDSESetup, e0: float, t: np.ndarray) -> np.ndarray:
    """Exact centre ``x_c(t)`` (bohr) of the driven harmonic ground state.

    Solves ``x_c'' = -ω₀² x_c − E₀ sin(ωt)`` from rest at the origin (the
    resonant case ``ω = ω₀`` included).
    """
    t = np.asarray(t, dtype=float)
    w0, w = setup.omega0, setup.omega
    if abs(w - w0) < 1e-9:
        return -e0 / (2 * w0**2) * (np.sin(w0 * t) - w0 * t * np.cos(w0 * t))
    return -e0 / (w0**2 - w**2) * (np.sin(w * t) - (w / w0) * np.sin(w0 * t))


def density_rel_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    """Relative L2 error ``||pred − ref|| / ||ref||`` over all points (space and time)."""
    return float(np.linalg.norm(np.asarray(pred) - ref) / np.linalg.norm(ref))
