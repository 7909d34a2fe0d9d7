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


def _tiny_model():
    from matterflow.electrons.model import FeedForwardLdosModel, LdosSetup

    energies = np.arange(-1.0, 16.0, 0.1)
    params = BispectrumParams(twojmax=2)
    atoms = _displaced((1, 1, 1), seed=2)
    x = bispectrum_descriptors(atoms, (6, 6, 6), params).reshape(-1, 5)
    free = np.sqrt(np.clip(energies, 0, None)) / (2 * np.pi**2) / 3.81**1.5
    y = free[None] * (1 + 0.2 * np.tanh(x[:, :1] - x[:, :1].mean()))
    setup = LdosSetup(energy_grid_ev=tuple(energies), descriptor_kind="bispectrum",
                      descriptor_params=params.model_dump(), grid_spacing_ang=(4.05 / 8,) * 3,
                      temperature_k=298.0, ldos_smearing_ev=0.0, valence_electrons={"Al": 3.0})
    model = FeedForwardLdosModel((8,), "tanh", train={"max_epochs": 2, "batch_size": 64},
                                 setup=setup).fit(x, y)
    import torch

    last = model.network_[-1]   # free-electron LDOS plus a small descriptor-dependent part
    with torch.no_grad():
        last.weight.mul_(0.02)
        last.bias.copy_(torch.from_numpy(model.y_scaler_.transform(free[None])[0]))
    return model, atoms


def test_spooled_ldos_gives_the_recomputed_answer(tmp_path):
    """Pass 2 from the LDOS spooled to disk (float32) = pass 2 recomputing it; files removed."""
    from matterflow.electrons.predict import predict_observables

    model, atoms = _tiny_model()
    ref = predict_observables(model, atoms, chunk_points=97, scheduler="threads")
    spooled = predict_observables(model, atoms, chunk_points=97, scheduler="threads",
                                  spool_dir=tmp_path / "spool")
    np.testing.assert_allclose(spooled.density, ref.density, rtol=1e-6)
    assert spooled.total_energy_ev == pytest.approx(ref.total_energy_ev, abs=1e-5)
    assert spooled.fermi_ev == pytest.approx(ref.fermi_ev, abs=1e-6)
    assert list((tmp_path / "spool").iterdir()) == []


@pytest.mark.slow
def test_large_supercell_per_atom_values_equal_the_cell(tmp_path):
    """A 5x5x5 supercell (500 atoms: PME, chunk-local atoms, spooled LDOS) repeats its cell's per-atom values."""
    from matterflow.electrons.predict import predict_observables

    model, atoms = _tiny_model()
    small = predict_observables(model, atoms, scheduler="synchronous")
    big = predict_observables(model, atoms.repeat(5), chunk_points=4096, scheduler="threads",
                              spool_dir=tmp_path)
    assert big.n_atoms == 500 and big.grid_shape == (40, 40, 40)
    assert big.fermi_ev == pytest.approx(small.fermi_ev, abs=1e-6)
    assert big.band_energy_ev / 500 == pytest.approx(small.band_energy_ev / 4, abs=1e-6)
    assert big.total_energy_ev / 500 == pytest.approx(small.total_energy_ev / 4, abs=1e-5)
