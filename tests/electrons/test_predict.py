"""Chunked inference: free-electron reference, chunk independence, extensivity, bad input."""

import numpy as np
import pytest
import torch
from ase.build import bulk

from matterflow.core.errors import InputError
from matterflow.electrons.descriptors import BispectrumParams
from matterflow.electrons.model import FeedForwardLdosModel, LdosSetup
from matterflow.electrons.predict import grid_shape_for, predict_observables

HBAR2_2M = 3.80998212  # ħ²/2mₑ in eV·Å²
ENERGIES = np.arange(-1.0, 16.0, 0.1)
BISP = BispectrumParams(twojmax=2, rcutfac=4.67637, radius={"Al": 0.5}, weight={"Al": 1.0})


def _al(repeat=1):
    return bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)


def _setup(grid=(8, 8, 8), atoms=None):
    atoms = atoms or _al()
    spacing = tuple(np.linalg.norm(atoms.cell[:], axis=1) / np.array(grid))
    return LdosSetup(energy_grid_ev=tuple(ENERGIES), descriptor_kind="bispectrum",
                     descriptor_params=BISP.model_dump(), grid_spacing_ang=spacing,
                     temperature_k=298.0, ldos_smearing_ev=0.0, valence_electrons={"Al": 3.0})


def _free_electron_ldos(e):
    """LDOS of the free-electron gas (both spins), states/(eV Å³): sqrt(E) / (2π²) / (ħ²/2m)^1.5."""
    return np.sqrt(np.clip(e, 0, None)) / (2 * np.pi**2) / HBAR2_2M**1.5


def _model(constant_ldos=None, seed=0):
    """A fitted model; with ``constant_ldos`` its output is exactly that LDOS at every point."""
    from matterflow.electrons.descriptors import bispectrum_descriptors

    x = bispectrum_descriptors(_al(), (6, 6, 6), BISP).reshape(-1, 5)
    rng = np.random.default_rng(seed)
    target = _free_electron_ldos(ENERGIES)[None, :] * (1 + 0.2 * np.tanh(x[:, :1] - x[:, :1].mean()))
    y = target if constant_ldos is None else np.repeat(constant_ldos[None], len(x), 0)
    y = y + 1e-4 * rng.random(y.shape)
    m = FeedForwardLdosModel((8,), "tanh", train={"max_epochs": 2, "batch_size": 64, "seed": seed},
                             setup=_setup()).fit(x, y)
    # output: the free-electron LDOS plus (unless constant) a small descriptor-dependent part
    base = _free_electron_ldos(ENERGIES) if constant_ldos is None else constant_ldos
    last = m.network_[-1]
    with torch.no_grad():
        last.weight.mul_(0.0 if constant_ldos is not None else 0.02)
        last.bias.copy_(torch.from_numpy(m.y_scaler_.transform(base[None])[0]))
    return m


def test_free_electron_gas_fermi_level_and_band_energy():
    """Uniform free-electron LDOS at the Al valence density: E_F = ħ²/2m (3π² n)^(2/3), E_b = 3/5 N E_F."""
    m = _model(constant_ldos=_free_electron_ldos(ENERGIES))
    atoms = _al()
    p = predict_observables(m, atoms, chunk_points=100, scheduler="synchronous")
    n = 12 / atoms.get_volume()
    e_f = HBAR2_2M * (3 * np.pi**2 * n) ** (2 / 3)
    assert p.fermi_ev == pytest.approx(e_f, abs=0.01)                     # 11.65 eV
    assert p.band_energy_ev / 12 == pytest.approx(0.6 * e_f, rel=2e-3)
    np.testing.assert_allclose(p.density, n, rtol=2e-3)                    # uniform gas
    assert abs(p.energy_terms["hartree_double_counting"]) < 1e-6           # no Hartree for a uniform n
    assert p.grid_shape == (8, 8, 8)


def test_chunking_and_supercell():
    m = _model()
    atoms = _al()
    atoms.positions += np.random.default_rng(1).normal(0, 0.05, atoms.positions.shape)
    whole = predict_observables(m, atoms, chunk_points=10**6, scheduler="synchronous", return_ldos=True)
    chunked = predict_observables(m, atoms, chunk_points=97, scheduler="threads")
    # the network runs in float32, and BLAS rounds a 97-row batch differently from a 512-row one:
    # chunking may change results at float32 rounding (~1e-7), never more (a chunk-seam bug is O(1))
    np.testing.assert_allclose(chunked.density, whole.density, rtol=1e-6)
    np.testing.assert_allclose(chunked.dos, whole.dos, rtol=1e-6, atol=1e-9 * np.abs(whole.dos).max())
    assert chunked.total_energy_ev == pytest.approx(whole.total_energy_ev, abs=1e-5)
    assert whole.ldos.shape == (8, 8, 8, len(ENERGIES)) and chunked.ldos is None
    # the same LDOS through the one-shot observables gives the same answers
    from matterflow.electrons.observables import observables_from_ldos

    ref = observables_from_ldos(whole.ldos.astype(float), ENERGIES, atoms, temperature_k=298.0,
                                ldos_smearing_ev=0.0)
    assert ref.fermi_ev == pytest.approx(whole.fermi_ev, abs=1e-5)
    assert ref.total_energy_ev == pytest.approx(whole.total_energy_ev, abs=1e-3)
    # a 2x2x2 supercell on the same grid spacing is the same crystal: per-atom values agree
    big = predict_observables(m, atoms.repeat(2), chunk_points=1000, scheduler="threads")
    assert big.grid_shape == (16, 16, 16) and big.n_atoms == 32
    assert big.fermi_ev == pytest.approx(whole.fermi_ev, abs=1e-6)
    assert big.band_energy_ev / 32 == pytest.approx(whole.band_energy_ev / 4, abs=1e-5)
    assert big.total_energy_ev / 32 == pytest.approx(whole.total_energy_ev / 4, abs=1e-5)
    np.testing.assert_allclose(big.density[:8, :8, :8], whole.density, rtol=1e-6)


def test_bad_inputs():
    m = _model()
    with pytest.raises(InputError, match="species Cu unknown"):
        predict_observables(m, bulk("Cu", "fcc", a=3.6, cubic=True))
    nan = _al()
    nan.positions[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        predict_observables(m, nan)
    with pytest.raises(InputError, match="chunk_points"):
        predict_observables(m, _al(), chunk_points=0)
    # atoms outside the cell are wrapped: same result
    shifted = _al()
    shifted.positions[1] += shifted.cell[0]
    a = predict_observables(m, _al(), scheduler="synchronous", with_total_energy=False)
    b = predict_observables(m, shifted, scheduler="synchronous", with_total_energy=False)
    np.testing.assert_allclose(a.density, b.density, rtol=1e-6)  # float32 network
    assert grid_shape_for(_al(2), (0.5, 0.5, 0.5)) == (16, 16, 16)
