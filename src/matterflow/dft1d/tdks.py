"""Time-dependent Kohn–Sham for a 1D two-electron singlet: Crank–Nicolson reference.

Atomic units throughout (ħ = mₑ = e = 1; length in bohr, time in ħ/Eₕ, energy
in hartree, field in Eₕ/(e·bohr)). Two electrons in a spin singlet occupy one
orbital φ; with exact exchange (adiabatic EXX, for two electrons the same as
time-dependent Hartree–Fock) the Hartree-exchange-correlation potential is half
the Hartree potential of the density ``n = 2|φ|²``::

    v_Hxc[n](x) = ½ v_H[n](x) = ∫ |φ(x′)|² w(x − x′) dx′,   w(u) = λ / sqrt(u² + b²)

(the softened interaction of :mod:`.exact` and :mod:`.tdse`; ``λ = 0`` gives
non-interacting electrons). The orbital obeys the non-linear TDKS equation

    i ∂ₜφ = [−½∂ₓ² + V(x) + x E(t) + v_Hxc[|φ|²](x)] φ,   E(t) = E₀ sin(ωt),

with ``V`` a softened Coulomb well ``−Z/sqrt(x² + a²)`` (default ``Z = 2``: a
1D helium atom) or a harmonic well ``½ω₀²x²``. The grid is the interior of
``[−x_max, x_max]`` with φ = 0 on the walls and the 3-point kinetic energy,
as in :mod:`.tdse`.

Initial states (``state``): ``0`` the self-consistent ground state; ``1`` the
self-consistent state with both electrons in the *first excited* orbital
(ΔSCF: φ₁ is the second eigenfunction of its own KS Hamiltonian). Both are
stationary without a field.

:func:`propagate_tdks` takes Crank–Nicolson steps with the Hamiltonian at the
midpoint ``H(t + dt/2)[(|φₙ|² + |φₙ₊₁|²)/2]`` and iterates the corrector to
self-consistency (predictor: ``v_Hxc[|φₙ|²]``), so every step is unitary (the
norm is conserved to round-off), time-reversible and second order.

:func:`propagate_exact_pair` propagates the exact two-electron wave function
Ψ(x₁, x₂, t) on the product grid (the same grid, kinetic energy, well and
interaction) with Crank–Nicolson; at weak field the difference of its density
from TDKS is the error of the adiabatic EXX approximation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.linalg import eigh_tridiagonal, solve_banded

from matterflow.core.errors import ComputeError, InputError
from matterflow.dft1d.tdse import grid, well_potential

__all__ = ["TDKSSetup", "KSOrbital", "TDKSSolution", "PairSolution", "external_potential",
           "hxc_kernel", "ks_state", "propagate_tdks", "propagate_exact_pair",
           "dipole_spectrum", "spectrum_peaks", "grid"]

WellName = Literal["soft_coulomb", "harmonic"]


@dataclass(frozen=True)
class TDKSSetup:
    """The static problem of a driven two-electron singlet (atomic units).

    Parameters
    ----------
    potential : {"soft_coulomb", "harmonic"}
        The well: ``−Z/sqrt(x² + a²)`` or ``½ω₀²x²`` (hartree).
    charge : float
        ``Z`` (e), default 2 (1D helium).
    softening : float
        ``a`` (bohr).
    omega0 : float
        ``ω₀`` (Eₕ/ħ) of the harmonic well.
    x_max : float
        Half width of the box (bohr); φ = 0 at ±x_max.
    t_final : float
        End of the time window (ħ/Eₕ).
    interaction_softening : float
        ``b`` (bohr) of the electron–electron interaction.
    interaction_strength : float
        ``λ`` (dimensionless): 1 the softened Coulomb repulsion, 0 non-interacting.
    """

    potential: WellName = "soft_coulomb"
    charge: float = 2.0
    softening: float = 1.0
    omega0: float = 1.0
    x_max: float = 10.0
    t_final: float = 10.0
    interaction_softening: float = 1.0
    interaction_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.potential not in ("soft_coulomb", "harmonic"):
            raise InputError(f"potential: accepted 'soft_coulomb', 'harmonic'; got {self.potential!r}")
        for name in ("charge", "softening", "omega0", "x_max", "t_final", "interaction_softening"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"{name}: must be a finite number > 0; got {value!r}")
        if not (np.isfinite(self.interaction_strength) and self.interaction_strength >= 0):
            raise InputError(f"interaction_strength: must be >= 0; got {self.interaction_strength!r}")


def external_potential(setup: TDKSSetup, x: np.ndarray) -> np.ndarray:
    """The static well ``V(x)`` (hartree) at ``x`` (bohr)."""
    return well_potential(setup.potential, np.asarray(x, dtype=float), omega0=setup.omega0,
                          charge=setup.charge, softening=setup.softening)


def hxc_kernel(setup: TDKSSetup, x: np.ndarray) -> np.ndarray:
    """(n_x, n_x) matrix ``K`` with ``v_Hxc = K @ |φ|²`` = ½ v_H[2|φ|²] (hartree·bohr)."""
    dx = float(x[1] - x[0])
    u = x[:, None] - x[None, :]
    return dx * setup.interaction_strength / np.sqrt(u**2 + setup.interaction_softening**2)


@dataclass(frozen=True)
class KSOrbital:
    """A self-consistent, doubly occupied KS orbital.

    Attributes
    ----------
    state : 0 (ground) or 1 (both electrons in the first excited orbital).
    energy : the orbital eigenvalue ε (hartree).
    orbital : (n_x,) real, normalised ``Σ φ² dx = 1``, positive at its first extremum from the left.
    levels : (n_levels,) lowest eigenvalues of its own KS Hamiltonian (hartree).
    x : (n_x,) the grid (bohr).
    iterations : SCF iterations used.
    """

    state: int
    energy: float
    orbital: np.ndarray
    levels: np.ndarray
    x: np.ndarray
    iterations: int

    @property
    def density(self) -> np.ndarray:
        """(n_x,) ``2 φ²`` (1/bohr)."""
        return 2.0 * self.orbital**2


def _check_state(state: int) -> int:
    if state not in (0, 1):
        raise InputError(f"state: 0 (ground) or 1 (first excited orbital) accepted; got {state!r}")
    return int(state)


def ks_state(setup: TDKSSetup, x: np.ndarray, state: int = 0, *, tol: float = 1e-11,
             max_iter: int = 2000, n_levels: int = 4) -> KSOrbital:
    """Self-consistent doubly occupied orbital number ``state`` of ``H₀ + v_Hxc[φ]`` on ``x``.

    Linear density mixing (½ for the ground state, ⅓ for the excited one) until
    the orbital density changes by less than ``tol`` (1/bohr).

    Raises
    ------
    ComputeError
        if the SCF does not converge in ``max_iter`` iterations.
    """
    state = _check_state(state)
    x = np.asarray(x, dtype=float)
    dx = float(x[1] - x[0])
    diag0 = 1.0 / dx**2 + external_potential(setup, x)
    off = np.full(len(x) - 1, -0.5 / dx**2)
    k = max(n_levels, state + 1)

    def solve(diag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, v = eigh_tridiagonal(diag, off, select="i", select_range=(0, k - 1))
        phi = v[:, state] / np.sqrt(np.sum(v[:, state] ** 2) * dx)
        first = int(np.argmax(np.abs(phi) > 0.5 * np.abs(phi).max()))
        return w, (-phi if phi[first] < 0 else phi)

    levels, phi = solve(diag0)
    kernel = hxc_kernel(setup, x)
    rho = phi**2
    mix = 0.5 if state == 0 else 1.0 / 3.0
    change = np.inf
    for it in range(1, max_iter + 1):
        levels, phi = solve(diag0 + kernel @ rho)
        change = float(np.max(np.abs(phi**2 - rho)))
        if change < tol:
            return KSOrbital(state=state, energy=float(levels[state]), orbital=phi,
                             levels=levels, x=x, iterations=it)
        rho = (1 - mix) * rho + mix * phi**2
    raise ComputeError(f"ks_state(state={state}): SCF not converged in {max_iter} iterations "
                       f"(last density change {change:.2e} > tol {tol:.0e})")


@dataclass(frozen=True)
class TDKSSolution:
    """The TDKS orbital on a space-time grid.

    Attributes
    ----------
    x : (n_x,) grid (bohr).
    t : (n_saved,) times (ħ/Eₕ), ``t[0] = 0``.
    phi : (n_saved, n_x) complex orbital (bohr^-1/2).
    field : (n_saved,) ``E₀ sin(ωt)`` (Eₕ/(e·bohr)).
    initial : the :class:`KSOrbital` propagated.
    corrector_iterations : (n_steps,) corrector iterations per step.
    """

    x: np.ndarray
    t: np.ndarray
    phi: np.ndarray
    field: np.ndarray
    initial: KSOrbital
    corrector_iterations: np.ndarray

    @property
    def dx(self) -> float:
        return float(self.x[1] - self.x[0])

    @property
    def density(self) -> np.ndarray:
        """(n_saved, n_x) ``2|φ|²`` (1/bohr)."""
        return 2.0 * np.abs(self.phi) ** 2

    @property
    def norm(self) -> np.ndarray:
        """(n_saved,) ``∫|φ|² dx`` (1 for a normalised orbital)."""
        return (np.abs(self.phi) ** 2).sum(axis=1) * self.dx

    @property
    def dipole(self) -> np.ndarray:
        """(n_saved,) ``∫ x n dx`` (bohr; both electrons; the dipole moment is minus this)."""
        return (self.density * self.x).sum(axis=1) * self.dx


def _check_run(e0: float, omega: float, n_steps: int, n_saved: int) -> None:
    if not np.isfinite(e0):
        raise InputError(f"e0: the field amplitude must be finite; got {e0!r}")
    if not (np.isfinite(omega) and omega >= 0):
        raise InputError(f"omega: the field frequency must be >= 0; got {omega!r}")
    if n_steps < 1 or n_saved < 2 or n_steps % (n_saved - 1):
        raise InputError(f"n_steps: must be a positive multiple of n_saved - 1 = {n_saved - 1}; "
                         f"got n_steps={n_steps}")


def propagate_tdks(setup: TDKSSetup, e0: float, omega: float, *, state: int = 0,
                   n_x: int = 256, n_steps: int = 1000, n_saved: int = 101,
                   phi0: np.ndarray | None = None, tol: float = 1e-12,
                   max_iter: int = 50) -> TDKSSolution:
    """Self-consistent Crank–Nicolson propagation of the TDKS orbital under ``E₀ sin(ωt)``.

    Parameters
    ----------
    setup : TDKSSetup
        The problem (``t_final`` sets the window).
    e0, omega : float
        Field amplitude (Eₕ/(e·bohr)) and angular frequency (Eₕ/ħ).
    state : {0, 1}
        Initial state: self-consistent ground or first-excited orbital.
    n_x : int
        Interior grid points.
    n_steps, n_saved : int
        Time steps over ``[0, t_final]`` and equally spaced times kept
        (``n_steps`` a multiple of ``n_saved - 1``).
    phi0 : (n_x,) complex, optional
        Start from this orbital instead (e.g. a kicked one, ``exp(iκx) φ``).
    tol : float
        Corrector convergence: max ``|Δφ|`` between iterations (bohr^-1/2).
    max_iter : int
        Corrector iterations allowed per step.

    Raises
    ------
    ComputeError
        if a step's corrector does not converge or the orbital becomes NaN.
    """
    _check_run(e0, omega, n_steps, n_saved)
    x = grid(setup.x_max, n_x)
    dx = float(x[1] - x[0])
    initial = ks_state(setup, x, state)
    phi = (initial.orbital if phi0 is None else np.asarray(phi0)).astype(complex)
    if phi.shape != x.shape:
        raise InputError(f"phi0: shape {phi.shape} does not match the grid ({n_x},)")
    dt = setup.t_final / n_steps
    every = n_steps // (n_saved - 1)
    v = external_potential(setup, x)
    kernel = hxc_kernel(setup, x)
    interacting = setup.interaction_strength > 0
    kin_diag, kin_off = 1.0 / dx**2, -0.5 / dx**2
    ab = np.zeros((3, n_x), dtype=complex)
    ab[0, 1:] = 0.5j * dt * kin_off
    ab[2, :-1] = 0.5j * dt * kin_off
    rhs = np.empty(n_x, dtype=complex)

    def cn_step(psi: np.ndarray, h_diag: np.ndarray) -> np.ndarray:
        ab[1] = 1.0 + 0.5j * dt * h_diag
        rhs[:] = (1.0 - 0.5j * dt * h_diag) * psi
        rhs[1:] -= 0.5j * dt * kin_off * psi[:-1]
        rhs[:-1] -= 0.5j * dt * kin_off * psi[1:]
        return solve_banded((1, 1), ab, rhs, check_finite=False)

    out = np.empty((n_saved, n_x), dtype=complex)
    out[0] = phi
    iters = np.zeros(n_steps, dtype=int)
    for step in range(n_steps):
        h_static = kin_diag + v + x * (e0 * np.sin(omega * (step + 0.5) * dt))
        rho = np.abs(phi) ** 2
        new = cn_step(phi, h_static + kernel @ rho)        # predictor
        iters[step] = 1
        if interacting:
            for _ in range(max_iter):                      # corrector to self-consistency
                nxt = cn_step(phi, h_static + kernel @ (0.5 * (rho + np.abs(new) ** 2)))
                change = float(np.max(np.abs(nxt - new)))
                new = nxt
                iters[step] += 1
                if change < tol:
                    break
            else:
                raise ComputeError(f"propagate_tdks: corrector not converged at step {step} "
                                   f"(t = {(step + 1) * dt:.4g}) in {max_iter} iterations; "
                                   f"last change {change:.2e} > tol {tol:.0e}; lower the time step")
        phi = new
        if (step + 1) % every == 0:
            out[(step + 1) // every] = phi
    if not np.all(np.isfinite(out)):
        raise ComputeError(f"propagate_tdks produced NaN/inf (e0={e0}, omega={omega}, dt={dt})")
    t = np.linspace(0.0, setup.t_final, n_saved)
    return TDKSSolution(x=x, t=t, phi=out, field=e0 * np.sin(omega * t), initial=initial,
                        corrector_iterations=iters)


@dataclass(frozen=True)
class PairSolution:
    """Exact two-electron (singlet) propagation.

    Attributes
    ----------
    x : (n_x,) grid (bohr).
    t : (n_saved,) times (ħ/Eₕ).
    density : (n_saved, n_x) ``n(x) = 2 ∫|Ψ(x, x₂)|² dx₂`` (1/bohr).
    energy : ground-state energy of the pair (hartree).
    norm : (n_saved,) ``∫∫|Ψ|²``.
    """

    x: np.ndarray
    t: np.ndarray
    density: np.ndarray
    energy: float
    norm: np.ndarray

    @property
    def dipole(self) -> np.ndarray:
        """(n_saved,) ``∫ x n dx`` (bohr, both electrons)."""
        return (self.density * self.x).sum(axis=1) * float(self.x[1] - self.x[0])


def propagate_exact_pair(setup: TDKSSetup, e0: float, omega: float, *, n_x: int = 96,
                         n_steps: int = 1000, n_saved: int = 101, tol: float = 1e-12
                         ) -> PairSolution:
    """Crank–Nicolson for the exact singlet ground state Ψ(x₁, x₂) under ``E₀ sin(ωt)``.

    The same grid, 3-point kinetic energy, well and interaction as
    :func:`propagate_tdks`, on the ``n_x²`` product grid. ``1 + i dt/2 H₀`` is
    factorised once (sparse LU); the field term ``i dt/2 E(t)(x₁ + x₂)`` is
    handled by a fixed-point iteration to ``tol``. The initial state is the
    lowest eigenvector of ``H₀`` (shift-invert Lanczos), spatially symmetric.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    _check_run(e0, omega, n_steps, n_saved)
    x = grid(setup.x_max, n_x)
    dx = float(x[1] - x[0])
    h1 = sp.diags([np.full(n_x - 1, -0.5 / dx**2), 1.0 / dx**2 + external_potential(setup, x),
                   np.full(n_x - 1, -0.5 / dx**2)], [-1, 0, 1], format="csr")
    eye = sp.identity(n_x, format="csr")
    w = setup.interaction_strength / np.sqrt((x[:, None] - x[None, :]) ** 2
                                             + setup.interaction_softening**2)
    h0 = (sp.kron(h1, eye) + sp.kron(eye, h1) + sp.diags(w.ravel())).tocsc()
    sigma = float(2 * external_potential(setup, x).min()) - 1.0
    try:
        e, vec = spla.eigsh(h0, k=1, sigma=sigma, which="LM", tol=1e-12)
    except (spla.ArpackNoConvergence, RuntimeError) as exc:
        raise ComputeError(f"propagate_exact_pair: ground state not converged: {exc}") from None
    psi = vec[:, 0].astype(complex)
    psi /= np.sqrt(np.sum(np.abs(psi) ** 2) * dx * dx)
    dt = setup.t_final / n_steps
    every = n_steps // (n_saved - 1)
    xs = (x[:, None] + x[None, :]).ravel()
    eye2 = sp.identity(n_x * n_x, format="csc")
    lu = spla.splu((eye2 + 0.5j * dt * h0).tocsc())
    minus = (eye2 - 0.5j * dt * h0).tocsr()

    def density_of(p: np.ndarray) -> np.ndarray:
        return 2.0 * (np.abs(p.reshape(n_x, n_x)) ** 2).sum(axis=1) * dx

    dens = np.empty((n_saved, n_x))
    norms = np.empty(n_saved)
    dens[0], norms[0] = density_of(psi), np.sum(np.abs(psi) ** 2) * dx * dx
    for step in range(n_steps):
        f = 0.5j * dt * e0 * np.sin(omega * (step + 0.5) * dt) * xs
        b = minus @ psi - f * psi
        new = lu.solve(b)
        if e0 != 0:
            for _ in range(100):
                nxt = lu.solve(b - f * new)
                change = float(np.max(np.abs(nxt - new)))
                new = nxt
                if change < tol:
                    break
            else:
                raise ComputeError("propagate_exact_pair: field iteration not converged; "
                                   "lower the time step or the field")
        psi = new
        if (step + 1) % every == 0:
            i = (step + 1) // every
            dens[i], norms[i] = density_of(psi), np.sum(np.abs(psi) ** 2) * dx * dx
    return PairSolution(x=x, t=np.linspace(0.0, setup.t_final, n_saved), density=dens,
                        energy=float(e[0]), norm=norms)


def dipole_spectrum(t: np.ndarray, dipole: np.ndarray, *, pad: int = 32
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``|D(ω)|`` of a dipole history: mean removed, Hann window, zero-padded FFT.

    Returns
    -------
    omega : (m,) angular frequencies (Eₕ/ħ), from 0.
    amplitude : (m,) ``|Σ d(t) w(t) e^{iωt} dt|`` (bohr·ħ/Eₕ).
    """
    t = np.asarray(t, dtype=float)
    d = np.asarray(dipole, dtype=float)
    d = (d - d.mean()) * np.hanning(len(d))
    dt = float(t[1] - t[0])
    n = pad * len(d)
    amp = np.abs(np.fft.rfft(d, n=n)) * dt
    return 2 * np.pi * np.fft.rfftfreq(n, dt), amp


def spectrum_peaks(omega: np.ndarray, amplitude: np.ndarray, *, rel_height: float = 0.2,
                   omega_max: float | None = None) -> np.ndarray:
    """Positions (Eₕ/ħ) of the local maxima above ``rel_height`` × the highest, lowest first.

    Each position is refined by a parabola through the three highest samples.
    """
    keep = np.ones_like(omega, dtype=bool) if omega_max is None else omega <= omega_max
    w, a = omega[keep], amplitude[keep]
    if len(a) < 3 or a.max() <= 0:
        return np.zeros(0)
    i = np.flatnonzero((a[1:-1] > a[:-2]) & (a[1:-1] >= a[2:]) & (a[1:-1] >= rel_height * a.max())) + 1
    peaks = []
    for k in i:
        y0, y1, y2 = a[k - 1], a[k], a[k + 1]
        den = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / den if den != 0 else 0.0
        peaks.append(w[k] + shift * (w[1] - w[0]))
    return np.asarray(peaks)
