"""Thermal samplers of the Al supercells, checked against EMT energies and equipartition."""

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT

from matterflow.core.errors import InputError
from matterflow.electrons.structures import aluminium_supercell, emt_force_constants


def _unwrapped_displacements(atoms, ideal):
    d = atoms.positions - ideal.positions
    return d - np.round(d @ np.linalg.inv(atoms.cell[:])) @ atoms.cell[:]


def _emt_excess_energy_per_atom(repeat, temperature, seeds, thermal):
    ideal = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    ideal.calc = EMT()
    e0 = ideal.get_potential_energy()
    out = []
    for seed in seeds:
        atoms = aluminium_supercell(repeat, temperature, seed, thermal=thermal)
        atoms.calc = EMT()
        out.append((atoms.get_potential_energy() - e0) / len(atoms))
    return np.array(out)


def test_phonon_sampler_obeys_equipartition_in_emt():
    """Harmonic crystal: <E_pot> = (3N - 3)/2 kT (classical, centre of mass fixed).

    The EMT energy of each snapshot is computed directly (not from the force
    constants), so this also checks the force constants and the mode amplitudes.
    At 30 K anharmonic corrections are ~1 %.
    """
    n, temperature, m = 8, 30.0, 300
    e = _emt_excess_energy_per_atom((2, 1, 1), temperature, range(m), "phonons")
    kt = units.kB * temperature
    expected = 1.5 * kt * (n - 1) / n
    # per-snapshot std of a sum of 3N-3 independent kT/2 * chi^2_1 terms
    std_expected = kt * np.sqrt((3 * n - 3) / 2) / n
    assert e.mean() == pytest.approx(expected, abs=4 * std_expected / np.sqrt(m))
    assert e.std() == pytest.approx(std_expected, rel=0.2)


def test_force_constants_of_emt_are_symmetric_and_translation_invariant():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    fc = emt_force_constants(atoms)
    assert fc.shape == (12, 12)
    np.testing.assert_allclose(fc, fc.T, atol=1e-10)
    # acoustic sum rule: a rigid translation costs no energy
    np.testing.assert_allclose(fc.reshape(12, 4, 3).sum(axis=1), 0.0, atol=1e-3)
    assert np.linalg.eigvalsh(fc)[3:].min() > 0.1


def test_phonon_displacements_are_reproducible_and_keep_centre_of_mass():
    ideal = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    a = aluminium_supercell((2, 1, 1), 298.0, 3)
    b = aluminium_supercell((2, 1, 1), 298.0, 3)
    c = aluminium_supercell((2, 1, 1), 298.0, 4)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)
    d = _unwrapped_displacements(a, ideal)
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=1e-12)
    # classical 298 K r.m.s. displacement of Al is ~0.09 Å per direction
    assert 0.03 < np.sqrt(np.mean(d**2)) < 0.2
    # 0 K classical: the ideal lattice
    np.testing.assert_allclose(_unwrapped_displacements(aluminium_supercell((2, 1, 1), 0.0, 1), ideal),
                               0.0, atol=1e-12)


def test_bad_sampler_inputs():
    with pytest.raises(InputError, match="thermal"):
        aluminium_supercell(1, 298.0, thermal="md")
    with pytest.raises(InputError, match="temperature"):
        aluminium_supercell(1, -1.0)
    with pytest.raises(InputError, match="at least 2 atoms"):
        aluminium_supercell(1, 298.0, cubic=False)
