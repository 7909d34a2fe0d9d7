"""Global energy reference (energy_reference.py) against analytic results."""

import numpy as np
import pytest
from ase.build import bulk

from matterflow.core.errors import InputError
from matterflow.electrons.energy_reference import (
    fit_energy_reference,
    reference_shift_ev,
    shift_ldos_axis,
)
from matterflow.electrons.model import LdosSetup
from matterflow.electrons.observables import band_energy, fermi_level


def test_fit_recovers_a_linear_fermi_trend_and_is_zero_for_one_density():
    n = np.array([0.0530, 0.0530, 0.0569, 0.0569, 0.0550])
    ref = fit_energy_reference(n, 6.7 + 190.0 * (n - 0.0530))
    assert ref["k_ev_a3"] == pytest.approx(190.0, rel=1e-9)
    assert ref["n0_a3"] == pytest.approx(n.mean())
    assert fit_energy_reference([0.06, 0.06], [7.0, 7.3])["k_ev_a3"] == 0.0
    with pytest.raises(InputError):
        fit_energy_reference([0.06], [7.0, 7.1])


def test_shift_of_a_gaussian_is_exact_and_moves_the_band_energy_by_n_times_s():
    e = np.arange(-5.0, 13.0, 0.05)
    s = 0.3712                                    # not a multiple of the grid step
    g = lambda c: np.exp(-0.5 * ((e - c) / 0.15) ** 2)  # noqa: E731
    shifted = shift_ldos_axis(np.stack([g(3.0), g(5.0)]), e, s)
    # out(E') = ldos(E' + s): the peak moves from c to c - s; cubic spline error on a 0.15 eV Gaussian
    assert np.max(np.abs(shifted - np.stack([g(3.0 - s), g(5.0 - s)]))) < 2e-3
    # a free-electron DOS on E' and on E' + s: Fermi level and band energy move by s and N s
    dos = np.sqrt(np.clip(e + 4.0, 0, None)) * 3.0
    n_el = 96.0
    mu0 = fermi_level(dos, e, n_el, 933.0)
    mu1 = fermi_level(dos, e + s, n_el, 933.0)
    assert mu1 - mu0 == pytest.approx(s, abs=1e-9)
    b0, b1 = band_energy(dos, e, mu0, 933.0), band_energy(dos, e + s, mu1, 933.0)
    assert b1 - b0 == pytest.approx(n_el * s, rel=1e-9)


def test_reference_shift_of_a_cell():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    setup = LdosSetup(energy_grid_ev=(0.0, 0.1), meta={"energy_reference": {"k_ev_a3": 200.0, "n0_a3": 0.05}})
    assert reference_shift_ev(setup, atoms) == pytest.approx(200.0 * (4 / 4.05**3 - 0.05))
    assert reference_shift_ev(LdosSetup(energy_grid_ev=(0.0, 0.1)), atoms) == 0.0
