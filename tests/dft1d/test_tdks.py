"""Crank–Nicolson TDKS reference (two-electron singlet, adiabatic EXX) against independent checks."""

import numpy as np
import pytest
from scipy.linalg import eigh_tridiagonal

from matterflow.core.errors import InputError
from matterflow.dft1d.tdks import (
    TDKSSetup,
    dipole_spectrum,
    external_potential,
    grid,
    ks_state,
    propagate_exact_pair,
    propagate_tdks,
    spectrum_peaks,
)
from matterflow.dft1d.tdse import TDSESetup, harmonic_centre


def test_norm_is_conserved_under_a_strong_field():
    setup = TDKSSetup(t_final=4.0)
    sol = propagate_tdks(setup, 0.3, 0.8, n_x=200, n_steps=400, n_saved=41)
    assert np.ptp(sol.norm) < 1e-12 and sol.norm[0] == pytest.approx(1.0, abs=1e-12)
    assert np.abs(sol.dipole).max() > 0.5          # the field did move the electrons
    assert sol.corrector_iterations.max() > 2       # the non-linear corrector was needed


@pytest.mark.parametrize("state", [0, 1])
def test_field_free_self_consistent_states_are_stationary(state):
    setup = TDKSSetup(t_final=5.0)
    sol = propagate_tdks(setup, 0.0, 0.5, state=state, n_x=200, n_steps=500, n_saved=11)
    assert np.max(np.abs(sol.density - sol.density[0])) < 1e-9
    overlap = (np.conj(sol.phi[0]) * sol.phi).sum(axis=1) * sol.dx
    assert np.allclose(overlap, np.exp(-1j * sol.initial.energy * sol.t), atol=1e-4)
    # the excited state has one node, the ground state none; both bound
    phi = sol.initial.orbital
    nodes = np.sum(np.diff(np.sign(phi[np.abs(phi) > 1e-6])) != 0)
    assert nodes == state and sol.initial.energy < 0
    assert sol.initial.energy == pytest.approx(sol.initial.levels[state])


def test_not_self_consistent_orbital_is_not_stationary():
    """The first excited orbital of the *ground-state* KS potential moves: the SCF matters."""
    setup = TDKSSetup(t_final=3.0)
    x = grid(setup.x_max, 200)
    ground = ks_state(setup, x, 0)
    dx = x[1] - x[0]
    diag = 1 / dx**2 + external_potential(setup, x)
    from matterflow.dft1d.tdks import hxc_kernel
    w, v = eigh_tridiagonal(diag + hxc_kernel(setup, x) @ ground.orbital**2,
                            np.full(len(x) - 1, -0.5 / dx**2), select="i", select_range=(1, 1))
    phi1 = v[:, 0] / np.sqrt(np.sum(v[:, 0] ** 2) * dx)
    sol = propagate_tdks(setup, 0.0, 0.5, n_x=200, n_steps=300, n_saved=4, phi0=phi1)
    assert np.max(np.abs(sol.density - sol.density[0])) > 1e-2


def test_non_interacting_limit_matches_the_eigen_expansion():
    """λ = 0, no field, a kicked orbital: CN against Σ cₖ e^{-iεₖt} φₖ of the same grid H."""
    setup = TDKSSetup(interaction_strength=0.0, t_final=4.0)
    x = grid(setup.x_max, 160)
    dx = x[1] - x[0]
    e, vecs = eigh_tridiagonal(1 / dx**2 + external_potential(setup, x),
                               np.full(len(x) - 1, -0.5 / dx**2))
    phi0 = np.exp(0.7j * x) * ks_state(setup, x, 0).orbital
    c = vecs.T @ phi0
    errors = []
    for n_steps in (400, 800):
        sol = propagate_tdks(setup, 0.0, 0.0, n_x=160, n_steps=n_steps, n_saved=5, phi0=phi0)
        exact = (vecs @ (c[:, None] * np.exp(-1j * e[:, None] * sol.t[None, :]))).T
        errors.append(np.max(np.abs(sol.phi - exact)))
    assert errors[1] < 2e-3
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.15)     # second order in dt


def test_interacting_harmonic_well_obeys_the_harmonic_potential_theorem():
    """In ½ω₀²x² the TDKS dipole follows the driven classical oscillator, interaction or not."""
    setup = TDKSSetup(potential="harmonic", omega0=1.0, x_max=8.0, t_final=6.0)
    sol = propagate_tdks(setup, 0.2, 0.6, n_x=240, n_steps=1200, n_saved=61)
    exact = 2 * harmonic_centre(TDSESetup(potential="harmonic", omega0=1.0, omega=0.6), 0.2, sol.t)
    assert np.abs(exact).max() > 0.3
    assert np.max(np.abs(sol.dipole - exact)) < 2e-3 * np.abs(exact).max()


def test_exact_pair_propagation_without_interaction_is_two_orbitals():
    """λ = 0: the exact pair density equals 2|φ|² of TDKS, up to each method's O(dt²)."""
    setup = TDKSSetup(interaction_strength=0.0, t_final=3.0, x_max=8.0)
    diffs = []
    for n_steps in (150, 300):
        pair = propagate_exact_pair(setup, 0.1, 0.7, n_x=40, n_steps=n_steps, n_saved=4)
        ks = propagate_tdks(setup, 0.1, 0.7, n_x=40, n_steps=n_steps, n_saved=4)
        diffs.append(np.max(np.abs(pair.density - ks.density)))
        assert np.ptp(pair.norm) < 1e-10
    assert diffs[1] < 2e-4 and diffs[0] / diffs[1] > 3.0
    assert pair.energy == pytest.approx(2 * ks.initial.energy, abs=1e-8)


def test_spectrum_peak_of_a_known_oscillation():
    t = np.linspace(0, 60, 601)
    d = 0.3 * np.sin(0.7 * t) + 0.1 * np.sin(1.9 * t)
    w, amp = dipole_spectrum(t, d)
    peaks = spectrum_peaks(w, amp, rel_height=0.15, omega_max=3.0)
    assert len(peaks) == 2
    assert peaks[0] == pytest.approx(0.7, rel=5e-3) and peaks[1] == pytest.approx(1.9, rel=5e-3)


def test_bad_input_is_reported():
    with pytest.raises(InputError, match="state"):
        ks_state(TDKSSetup(), grid(10.0, 64), state=2)
    with pytest.raises(InputError, match="potential"):
        TDKSSetup(potential="box")
    with pytest.raises(InputError, match="n_steps"):
        propagate_tdks(TDKSSetup(), 0.1, 0.5, n_steps=101, n_saved=11)
    with pytest.raises(InputError, match="interaction_strength"):
        TDKSSetup(interaction_strength=-1.0)
