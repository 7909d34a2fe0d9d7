"""Crank–Nicolson reference propagator against analytic results (atomic units)."""

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.dft1d.tdse import (
    TDSESetup,
    binding_potential,
    density_rel_l2,
    grid,
    ground_state,
    harmonic_centre,
    propagate,
)


def test_harmonic_ground_state_energy():
    setup = TDSESetup(potential="harmonic", omega0=1.3, x_max=6.0)
    energy, psi0 = ground_state(setup, grid(6.0, 600))
    assert energy == pytest.approx(0.5 * 1.3, rel=1e-4)   # ħω₀/2
    x = grid(6.0, 600)
    exact = (1.3 / np.pi) ** 0.25 * np.exp(-1.3 * x**2 / 2)
    assert np.max(np.abs(psi0 - exact)) < 1e-3


def test_norm_is_conserved_under_strong_field():
    setup = TDSESetup(potential="soft_coulomb", t_final=3.0, x_max=15.0)
    sol = propagate(setup, 0.8, n_x=300, n_steps=300, n_saved=31)
    assert np.ptp(sol.norm) < 1e-11
    assert sol.norm[0] == pytest.approx(1.0, abs=1e-12)


def test_field_free_ground_state_only_turns_its_phase():
    setup = TDSESetup(potential="soft_coulomb", t_final=5.0, x_max=15.0)
    sol = propagate(setup, 0.0, n_x=300, n_steps=500, n_saved=11)
    assert sol.ground_energy < -0.5                      # a bound state of the softened well
    overlap = (np.conj(sol.psi[0]) * sol.psi).sum(axis=1) * sol.dx
    assert np.allclose(np.abs(overlap), 1.0, atol=1e-10)
    # CN turns the phase by 2 atan(E dt/2) per step: exp(-i E t) up to O(dt²)
    dt = setup.t_final / 500
    phase_per_step = -2 * np.arctan(sol.ground_energy * dt / 2)
    expected = np.exp(1j * phase_per_step * np.arange(11) * 50)
    assert np.allclose(overlap, expected, atol=1e-9)
    assert np.allclose(overlap, np.exp(-1j * sol.ground_energy * sol.t), atol=1e-4)


@pytest.mark.parametrize("omega", [1.0, 0.6])   # resonant and off-resonant drive
def test_driven_harmonic_well_follows_the_classical_trajectory(omega):
    setup = TDSESetup(potential="harmonic", omega=omega, t_final=4.0, x_max=8.0)
    sol = propagate(setup, 0.7, n_x=511, n_steps=800, n_saved=81)
    xc = harmonic_centre(setup, 0.7, sol.t)
    assert np.max(np.abs(sol.dipole - xc)) < 2e-3
    # the exact density is the ground state shifted to x_c(t) (coherent state)
    exact = np.exp(-(sol.x[None, :] - xc[:, None]) ** 2) / np.sqrt(np.pi)
    assert density_rel_l2(sol.density, exact) < 1e-3


def test_second_order_in_time():
    setup = TDSESetup(potential="harmonic", t_final=2.0, x_max=8.0)
    xc = harmonic_centre(setup, 1.0, np.array([2.0]))[0]
    errs = [abs(propagate(setup, 1.0, n_x=1023, n_steps=n, n_saved=2).dipole[-1] - xc)
            for n in (50, 100)]
    assert 3.0 < errs[0] / errs[1] < 5.0


def test_ehrenfest_theorem_in_a_softened_coulomb_well():
    setup = TDSESetup(potential="soft_coulomb", omega=0.5, t_final=4.0, x_max=20.0)
    e0 = 0.3
    sol = propagate(setup, e0, n_x=800, n_steps=4000, n_saved=401)
    dt = sol.t[1] - sol.t[0]
    x_dot = np.gradient(sol.dipole, dt)
    p = sol.momentum
    assert np.max(np.abs(x_dot[2:-2] - p[2:-2])) < 2e-3 * np.max(np.abs(p))
    dv = np.gradient(binding_potential(setup, sol.x), sol.dx)
    force = -(sol.density * dv).sum(axis=1) * sol.dx - setup.field(sol.t, e0)
    p_dot = np.gradient(p, dt)
    assert np.max(np.abs(p_dot[2:-2] - force[2:-2])) < 1e-2 * np.max(np.abs(force))


def test_bad_inputs_name_the_field():
    with pytest.raises(InputError, match="potential"):
        TDSESetup(potential="square")
    with pytest.raises(InputError, match="x_max"):
        TDSESetup(x_max=-1.0)
    with pytest.raises(InputError, match="n_steps"):
        propagate(TDSESetup(), 0.1, n_steps=100, n_saved=7)
    with pytest.raises(InputError, match="e0"):
        propagate(TDSESetup(), float("nan"))
    with pytest.raises(InputError, match="psi0"):
        propagate(TDSESetup(), 0.1, n_x=64, psi0=np.ones(10))


@pytest.mark.parametrize("omega", [1.0, 0.6])
def test_two_electron_tdks_obeys_the_harmonic_potential_theorem(omega):
    # interacting electrons in a harmonic well: the centre of mass moves like one classical
    # particle whatever the interaction (Dobson 1994); TD exact exchange keeps this exactly
    setup = TDSESetup(potential="harmonic", n_electrons=2, omega=omega, t_final=4.0, x_max=8.0)
    sol = propagate(setup, 0.7, n_x=511, n_steps=800, n_saved=81)
    assert np.max(np.abs(sol.dipole - harmonic_centre(setup, 0.7, sol.t))) < 2e-3
    assert np.ptp(sol.norm) < 1e-11
    assert sol.density.sum(axis=1)[0] * sol.dx == pytest.approx(2.0)
    # the interaction pushes the orbital energy above ħω₀/2 and widens the density
    assert sol.ground_energy > 0.5 + 0.3
    one = propagate(TDSESetup(potential="harmonic", x_max=8.0), 0.0, n_x=511, n_steps=10,
                    n_saved=2)
    width = lambda s: np.sqrt(np.sum(s.density[0] * s.x**2) / np.sum(s.density[0]))  # noqa: E731
    assert width(sol) > 1.03 * width(one)


def test_two_electron_ground_state_is_stationary_and_self_consistent():
    setup = TDSESetup(potential="soft_coulomb", charge=2.0, n_electrons=2, x_max=12.0,
                      t_final=3.0)
    sol = propagate(setup, 0.0, n_x=255, n_steps=300, n_saved=11)
    assert np.max(np.abs(sol.density - sol.density[0])) < 1e-9
    # the orbital solves (H0 + v_Hx[phi]) phi = eps phi on the grid
    x, phi = sol.x, sol.psi[0].real
    from matterflow.dft1d.tdse import hx_kernel
    lap = (np.roll(phi, 1) - 2 * phi + np.roll(phi, -1)) / sol.dx**2
    lap[0] = (phi[1] - 2 * phi[0]) / sol.dx**2
    lap[-1] = (phi[-2] - 2 * phi[-1]) / sol.dx**2
    h_phi = -0.5 * lap + (binding_potential(setup, x) + hx_kernel(setup, x) @ phi**2) * phi
    assert np.max(np.abs(h_phi - sol.ground_energy * phi)) < 1e-6
    with pytest.raises(InputError, match="n_electrons"):
        TDSESetup(n_electrons=3)
