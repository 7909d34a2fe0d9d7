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

Two electrons (``n_electrons=2``, a spin singlet) are propagated in
time-dependent Kohn–Sham with adiabatic exact exchange (for two electrons in
one orbital φ this is time-dependent Hartree–Fock): the density is
``n = 2|φ|²`` and the Hartree-exchange potential ``v_Hx = v_H/2 =
∫ |φ(x')|² w(x − x') dx'`` with the softened interaction
``w(u) = 1/sqrt(u² + b²)``. The ground state is found self-consistently;
each Crank–Nicolson step uses ``v_Hx`` at the midpoint density
(predictor–corrector). The harmonic potential theorem still holds: in a
harmonic well the dipole follows the same classical trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from scipy.linalg import eigh_tridiagonal, solve_banded

from matterflow.core.errors import ComputeError, InputError

__all__ = ["PotentialName", "TDSESetup", "setup_of", "TDSESolution", "grid", "well_potential", "binding_potential",
           "hx_kernel", "ground_state", "propagate", "harmonic_centre", "density_rel_l2"]

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
    n_electrons : {1, 2}
        One electron, or two (singlet) in TDKS with exact exchange.
    interaction_softening : float
        Softening ``b`` (bohr) of the electron–electron interaction.
    """

    potential: PotentialName = "harmonic"
    omega0: float = 1.0
    charge: float = 1.0
    softening: float = 1.0
    omega: float = 1.0
    t_final: float = 2.0
    x_max: float = 5.0
    n_electrons: int = 1
    interaction_softening: float = 1.0

    def __post_init__(self) -> None:
        if self.n_electrons not in (1, 2):
            raise InputError(f"n_electrons: 1 or 2 accepted; got {self.n_electrons!r}")
        if self.potential not in ("harmonic", "soft_coulomb"):
            raise InputError(f"potential: unknown binding potential {self.potential!r}; "
                             "accepted: 'harmonic', 'soft_coulomb'")
        for name in ("omega0", "charge", "softening", "t_final", "x_max",
                     "interaction_softening"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name}: must be > 0; got {getattr(self, name)!r}")
        if self.omega < 0:
            raise InputError(f"omega: must be >= 0; got {self.omega!r}")

    def field(self, t: np.ndarray | float, e0: float) -> np.ndarray:
        """Electric field ``E₀ sin(ωt)`` (a.u.) at times ``t``."""
        return e0 * np.sin(self.omega * np.asarray(t, dtype=float))


def setup_of(obj: Any) -> TDSESetup:
    """The :class:`TDSESetup` of any object with the same attribute names (a PINN, a Params)."""
    return TDSESetup(**{f.name: getattr(obj, f.name) for f in fields(TDSESetup)})


@dataclass(frozen=True)
class TDSESolution:
    """Wave function on a space-time grid.

    Attributes
    ----------
    x : (n_x,) grid points (bohr), the interior of the box.
    t : (n_t,) saved times (a.u.), ``t[0] = 0``.
    psi : (n_t, n_x) complex wave function (bohr^-1/2); the orbital for two electrons.
    ground_energy : energy of the initial (ground) state (hartree); the orbital
        eigenvalue for two electrons.
    n_electrons : 1 or 2.
    """

    x: np.ndarray
    t: np.ndarray
    psi: np.ndarray
    ground_energy: float
    n_electrons: int = 1

    @property
    def density(self) -> np.ndarray:
        """(n_t, n_x) electron density ``n_electrons |ψ|²`` (1/bohr)."""
        return self.n_electrons * np.abs(self.psi) ** 2

    @property
    def dx(self) -> float:
        return float(self.x[1] - self.x[0])

    @property
    def norm(self) -> np.ndarray:
        """(n_t,) ``∫|ψ|² dx`` (of the orbital: 1)."""
        return (np.abs(self.psi) ** 2).sum(axis=1) * self.dx

    @property
    def dipole(self) -> np.ndarray:
        """(n_t,) mean position of an electron ``<x> = ∫ x |ψ|² dx`` (bohr)."""
        return (np.abs(self.psi) ** 2 * self.x).sum(axis=1) * self.dx

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


def well_potential(kind: str, x: Any, *, omega0: float, charge: float, softening: float) -> Any:
    """The static well ``V(x)`` (hartree) at ``x`` (bohr; a NumPy array or a torch tensor).

    ``kind`` ``"harmonic"``: ``½ ω₀² x²``; ``"soft_coulomb"``: ``−Z / √(x² + a²)``. The one
    definition behind :func:`binding_potential`, :func:`.tdks.external_potential` and the PINNs.
    """
    if kind == "harmonic":
        return 0.5 * omega0**2 * x**2
    return -charge / (x**2 + softening**2) ** 0.5


def binding_potential(setup: TDSESetup, x: np.ndarray) -> np.ndarray:
    """The static potential ``V(x)`` (hartree) at points ``x`` (bohr)."""
    return well_potential(setup.potential, np.asarray(x, dtype=float), omega0=setup.omega0,
                          charge=setup.charge, softening=setup.softening)


def hx_kernel(setup: TDSESetup, x: np.ndarray) -> np.ndarray:
    """(n_x, n_x) quadrature of ``v_Hx = ∫ |φ|² w dx'``: ``w(x_i − x_j) dx`` (hartree·bohr)."""
    dx = float(x[1] - x[0])
    return dx / np.sqrt((x[:, None] - x[None, :]) ** 2 + setup.interaction_softening**2)


def ground_state(setup: TDSESetup, x: np.ndarray, *, tol: float = 1e-10,
                 max_iter: int = 500) -> tuple[float, np.ndarray]:
    """Lowest eigenpair of the finite-difference ``H₀`` on grid ``x``.

    For two electrons, the self-consistent orbital of ``H₀ + v_Hx[φ]``
    (linear density mixing until the orbital density changes by < ``tol``).

    Returns
    -------
    energy : float
        Ground-state (orbital) energy (hartree).
    psi0 : (n_x,) real, positive, normalised so that ``sum(psi0**2) dx = 1``.
    """
    dx = float(x[1] - x[0])
    diag0 = 1.0 / dx**2 + binding_potential(setup, x)
    off = np.full(len(x) - 1, -0.5 / dx**2)

    def lowest(diag: np.ndarray) -> tuple[float, np.ndarray]:
        w, v = eigh_tridiagonal(diag, off, select="i", select_range=(0, 0))
        psi = v[:, 0] / np.sqrt(np.sum(v[:, 0] ** 2) * dx)
        return float(w[0]), (-psi if psi[len(x) // 2] < 0 else psi)

    energy, psi0 = lowest(diag0)
    if setup.n_electrons == 1:
        return energy, psi0
    kernel = hx_kernel(setup, x)
    rho = psi0**2
    for _ in range(max_iter):
        energy, psi0 = lowest(diag0 + kernel @ rho)
        change = float(np.max(np.abs(psi0**2 - rho)))
        if change < tol:
            return energy, psi0
        rho = 0.5 * rho + 0.5 * psi0**2
    raise ComputeError(f"two-electron ground state: SCF not converged in {max_iter} iterations "
                       f"(last density change {change:.2e} > tol {tol:.0e})")


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
    kernel = hx_kernel(setup, x) if setup.n_electrons == 2 else None

    def cn_step(psi: np.ndarray, h_diag: np.ndarray) -> np.ndarray:
        ab[1] = 1.0 + 0.5j * dt * h_diag
        rhs[:] = (1.0 - 0.5j * dt * h_diag) * psi       # (1 - i dt/2 H) psi
        rhs[1:] -= 0.5j * dt * kin_off * psi[:-1]
        rhs[:-1] -= 0.5j * dt * kin_off * psi[1:]
        return solve_banded((1, 1), ab, rhs, overwrite_ab=False, overwrite_b=False,
                            check_finite=False)

    for step in range(n_steps):
        h_diag = kin_diag + v + x * float(setup.field((step + 0.5) * dt, e0))
        if kernel is None:
            psi = cn_step(psi, h_diag)
        else:   # predictor with v_Hx(t), corrector with v_Hx at the midpoint density
            rho = np.abs(psi) ** 2
            pred = cn_step(psi, h_diag + kernel @ rho)
            psi = cn_step(psi, h_diag + kernel @ (0.5 * (rho + np.abs(pred) ** 2)))
        if (step + 1) % every == 0:
            out[(step + 1) // every] = psi
    if not np.all(np.isfinite(out)):
        raise ComputeError(f"Crank–Nicolson propagation produced NaN/inf (e0={e0}, dt={dt})")
    return TDSESolution(x=x, t=np.linspace(0.0, setup.t_final, n_saved), psi=out,
                        ground_energy=energy, n_electrons=setup.n_electrons)


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
