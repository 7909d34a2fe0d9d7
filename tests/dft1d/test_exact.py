"""Exact solvers against analytic results and against iDEA on the same potential."""

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.dft1d.exact import (
    hartree_potential,
    occupations_for,
    solve_noninteracting,
    solve_one_electron,
    solve_two_electrons,
)
from matterflow.dft1d.grid import as_grid, check_density, make_grid


def test_harmonic_oscillator_levels_and_density():
    omega = 0.5
    g = make_grid(201, 24.0)
    s = solve_one_electron(0.5 * omega**2 * g.x**2, g.x, n_states=4, stencil=7)
    exact = omega * (np.arange(4) + 0.5)
    assert np.allclose(s.energies[:4], exact, atol=1e-6)
    gauss = np.sqrt(omega / np.pi) * np.exp(-omega * g.x**2)
    assert np.max(np.abs(s.density - gauss)) < 1e-6


def test_particle_in_a_box():
    # hard walls one spacing beyond the end points: box width L = (n + 1) dx; the 3-point
    # stencil has the exact sine eigenvectors, eigenvalues converging as (k pi dx / L)^2 / 12
    g = make_grid(1001, 5.0)
    width = (g.n_points + 1) * g.dx
    s = solve_one_electron(np.zeros(g.n_points), g.x, n_states=3, stencil=3)
    exact = (np.arange(1, 4) * np.pi / width) ** 2 / 2
    assert np.allclose(s.energies[:3], exact, rtol=1e-5)
    xi = g.x - g.x[0] + g.dx
    assert np.allclose(s.density, 2 / width * np.sin(np.pi * xi / width) ** 2, atol=1e-6)


def test_two_noninteracting_electrons_are_orbital_sums():
    g = make_grid(60, 16.0)
    v = 0.5 * 0.3**2 * g.x**2 - 0.8 * np.exp(-(g.x - 1) ** 2)
    one = solve_one_electron(v, g.x, n_states=2)
    singlet = solve_two_electrons(v, g.x, spin="singlet", strength=0.0)
    triplet = solve_two_electrons(v, g.x, spin="triplet", strength=0.0)
    assert singlet.energy == pytest.approx(2 * one.energies[0], abs=1e-9)
    assert triplet.energy == pytest.approx(one.energies[0] + one.energies[1], abs=1e-9)
    ks = solve_noninteracting(v, g.x, occupations_for(2))
    assert np.allclose(singlet.density, ks.density, atol=1e-9)


def test_interacting_pair_properties():
    g = make_grid(64, 20.0)
    v = 0.5 * 0.25 * g.x**2
    s = solve_two_electrons(v, g.x)
    t = solve_two_electrons(v, g.x, spin="triplet")
    assert g.integrate(s.density) == pytest.approx(2.0, abs=1e-10)
    assert np.allclose(s.wavefunction, s.wavefunction.T)
    assert np.allclose(t.wavefunction, -t.wavefunction.T)
    assert s.energy < t.energy            # singlet ground state in 1D
    # Hartree potential of a density: positive and below the maximal interaction N/a
    vh = hartree_potential(s.density, g.x)
    assert 0 < vh.min() and vh.max() < 2.0


def test_against_idea_same_potential():
    idea = pytest.importorskip("iDEA")
    from iDEA.methods import interacting
    from iDEA.observables import density

    x = np.linspace(-8, 8, 60)
    v = -2.0 / np.sqrt((x - 1.0) ** 2 + 1) - 1.5 / np.sqrt((x + 1.5) ** 2 + 1)
    # iDEA's own softened_interaction is 1/(|x-x'|+1); give it ours, 1/sqrt((x-x')^2+1)
    w = 1.0 / np.sqrt((x[:, None] - x[None, :]) ** 2 + 1.0)
    sys_ = idea.system.System(x, v, w, electrons="ud", stencil=5)
    state = interacting.solve(sys_, k=0)
    n_idea = density(sys_, state=state)
    ours = solve_two_electrons(v, x, spin="singlet", stencil=5)
    assert ours.energy == pytest.approx(state.energy, abs=1e-6)
    assert np.max(np.abs(ours.density - n_idea)) < 1e-5


def test_bad_inputs_named():
    g = make_grid(32, 10.0)
    with pytest.raises(InputError, match="v_ext"):
        solve_two_electrons(np.zeros(31), g.x)
    with pytest.raises(InputError, match="spin"):
        solve_two_electrons(np.zeros(32), g.x, spin="quartet")
    with pytest.raises(InputError, match="uniform"):
        as_grid(np.r_[0.0, np.cumsum(np.linspace(0.1, 0.2, 20))])
    with pytest.raises(InputError, match="stencil"):
        solve_one_electron(np.zeros(32), g.x, stencil=4)
    n = np.full(32, 1.0)
    with pytest.raises(InputError, match="density: integrates"):
        check_density(n, g, 2)
    with pytest.raises(InputError, match="density: must be non-negative"):
        bad = np.full(32, 2.0 / (32 * g.dx))
        bad[3], bad[4] = bad[3] - 1.0, bad[4] + 1.0
        check_density(bad, g, 2)
    with pytest.raises(InputError, match="density: must be on the grid of 32 points"):
        check_density(np.ones(40), g, 2)
