"""Large cells: particle-mesh Ewald against the direct sum, chunk-local atom subsets."""

import numpy as np
import pytest
from ase.build import bulk

from matterflow.core.errors import InputError
from matterflow.electrons.descriptors import BispectrumParams, bispectrum_descriptors
from matterflow.electrons.ewald import DIRECT_EWALD_MAX_ATOMS, ewald_energy_pme
from matterflow.electrons.large_cell import atoms_near_points, descriptor_cutoff
from matterflow.electrons.observables import ewald_energy


def _displaced(repeat, seed=0, primitive=False):
    base = bulk("Al", "fcc", a=4.05) if primitive else bulk("Al", "fcc", a=4.05, cubic=True)
    atoms = base.repeat(repeat)
    atoms.positions += np.random.default_rng(seed).normal(0, 0.1, atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("repeat, primitive", [((2, 2, 2), False), ((3, 2, 2), True), ((1, 1, 1), True)])
def test_pme_equals_direct_ewald(repeat, primitive):
    """Smooth PME at the default settings agrees with the direct Ewald sum to 1e-5 eV/atom."""
    atoms = _displaced(repeat, primitive=primitive)
    z = np.full(len(atoms), 3.0)
    direct = ewald_energy(atoms, z)
    pme = ewald_energy_pme(atoms, z)
    assert abs(pme - direct) / len(atoms) < 1e-5
    # a different split (cut-off) moves only the numerical error, not the answer
    assert abs(ewald_energy_pme(atoms, z, r_cut_bohr=20.0) - direct) / len(atoms) < 1e-5


def test_pme_is_extensive_and_used_for_big_cells():
    """A 4x4x4 supercell (2048 atoms) of a displaced 32-atom cell has 64 x its direct Ewald energy."""
    small = _displaced((2, 2, 2), seed=3)
    ref = ewald_energy(small, np.full(32, 3.0)) / 32
    big = small.repeat(4)
    assert len(big) > DIRECT_EWALD_MAX_ATOMS
    per_atom = ewald_energy(big, np.full(len(big), 3.0)) / len(big)   # dispatches to PME
    assert per_atom == pytest.approx(ref, abs=1e-5)


def test_pme_bad_input():
    atoms = _displaced((1, 1, 1))
    with pytest.raises(InputError, match="charges"):
        ewald_energy_pme(atoms, np.ones(3))
    with pytest.raises(InputError, match="order"):
        ewald_energy_pme(atoms, np.ones(4), order=5)


def test_chunk_atom_subset_gives_identical_descriptors():
    """Descriptors of a chunk from the atoms near it equal those from the whole (triclinic) cell."""
    atoms = _displaced((5, 4, 3), seed=1)
    atoms.set_cell(atoms.cell[:] + np.array([[0, 0, 0], [1.0, 0, 0], [0.5, 0.3, 0]]), scale_atoms=False)
    params = BispectrumParams(twojmax=4)
    grid = (30, 24, 18)
    n = int(np.prod(grid))
    for start in (0, 5000, n - 700):
        pts = np.arange(start, min(start + 700, n))
        sub = atoms_near_points(atoms, grid, pts, descriptor_cutoff(params))
        assert len(sub) < len(atoms)
        np.testing.assert_array_equal(bispectrum_descriptors(sub, grid, params, points=pts),
                                      bispectrum_descriptors(atoms, grid, params, points=pts))
