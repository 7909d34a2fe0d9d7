"""KS inversion: accuracy on exact densities, independent limits, bad inputs, non-convergence."""

import time
import warnings

import numpy as np
import pytest

from matterflow.core.errors import ComputeError, InputError, MatterflowWarning
from matterflow.dft1d.exact import solve_one_electron, solve_two_electrons
from matterflow.dft1d.grid import make_grid
from matterflow.dft1d.inversion import invert_density
from matterflow.dft1d.potentials import sample_potentials

G = make_grid(64, 20.0)


@pytest.fixture(scope="module")
def exact_cases():
    v, fam = sample_potentials(["gaussian_wells", "harmonic", "double_well", "coulomb_chain"],
                               8, G.x, seed=3)
    return [(vi, f, solve_two_electrons(vi, G.x)) for vi, f in zip(v, fam, strict=True)]


@pytest.mark.parametrize("guess", ["auto", "reference"])
def test_exact_singlet_densities_inverted_to_1e6(exact_cases, guess):
    for v, fam, st in exact_cases:
        t0 = time.perf_counter()
        r = invert_density(st.density, v, G.x, n_electrons=2, guess=guess)
        assert r.converged, fam
        assert r.max_density_error <= 1e-6, fam
        assert time.perf_counter() - t0 < 10.0   # about 0.01-0.5 s here; loose on a loaded machine
        # the stated gauge: v_KS - v_ext - v_FA averages to zero at the two ends
        assert np.isfinite(r.v_hxc).all()


def test_exact_triplet_density_needs_two_orbitals(exact_cases):
    v = exact_cases[0][0]
    st = solve_two_electrons(v, G.x, spin="triplet")
    r = invert_density(st.density, v, G.x, n_electrons=2, spin="polarised")
    assert r.max_density_error <= 1e-6 and r.n_iterations >= 1


def test_noninteracting_density_gives_constant_hxc():
    # two non-interacting electrons: the KS potential is v_ext itself, up to a constant
    v = 0.5 * 0.3**2 * G.x**2 - np.exp(-(G.x - 1.5) ** 2)
    st = solve_two_electrons(v, G.x, strength=0.0)
    r = invert_density(st.density, v, G.x, n_electrons=2, guess="reference")
    core = st.density > 1e-3
    assert np.ptp(r.v_hxc[core]) < 1e-4


def test_one_electron_has_no_hxc():
    v = -1.5 / np.sqrt((G.x - 0.7) ** 2 + 1)
    st = solve_one_electron(v, G.x)
    r = invert_density(st.density, v, G.x, n_electrons=1)
    core = st.density > 1e-3
    assert np.ptp(r.v_hxc[core]) < 1e-4
    assert r.eigenvalues[0] - (r.v_hxc[core].mean()) == pytest.approx(st.energies[0], abs=1e-4)


def test_bad_densities_named(exact_cases):
    v, _, st = exact_cases[0]
    neg = st.density.copy()
    neg[10], neg[11] = -0.05, neg[11] + 0.05
    with pytest.raises(InputError, match="density: must be non-negative"):
        invert_density(neg, v, G.x, n_electrons=2)
    with pytest.raises(InputError, match="density: integrates to 2.*n_electrons is 3"):
        invert_density(st.density, v, G.x, n_electrons=3)
    with pytest.raises(InputError, match="density: must be on the grid of 64 points"):
        invert_density(st.density[:-1], v[:-1], G.x, n_electrons=2)
    with pytest.raises(InputError, match="v_ext"):
        invert_density(st.density, v[:-2], G.x, n_electrons=2)


def test_non_convergence_reports_the_residual(exact_cases):
    v, _, _ = exact_cases[2]
    st = solve_two_electrons(v, G.x, spin="triplet")
    with pytest.raises(ComputeError, match=r"did not converge: max \|n_KS - n_target\| = "):
        invert_density(st.density, v, G.x, spin="polarised", max_iter=1, tol=1e-15)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = invert_density(st.density, v, G.x, spin="polarised", max_iter=1, tol=1e-15,
                           on_failure="warn")
    assert not r.converged and any(issubclass(x.category, MatterflowWarning) for x in w)
    assert r.max_density_error > 0
