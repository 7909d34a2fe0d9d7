"""Re-broadening an LDOS to a wider Gaussian: against the analytic sum of Gaussians."""

import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.electrons.broadening import rebroaden_ldos
from matterflow.electrons.snapshot import Snapshot, load_snapshot, save_snapshot
from matterflow.electrons.structures import aluminium_supercell

ENERGIES = np.round(np.arange(-5.0, 12.0 + 1e-9, 0.05), 6)
LEVELS = np.array([-2.0, 0.3, 0.35, 4.1, 7.77])      # eV, far from the window ends


def _gaussian_ldos(sigma: float, weights: np.ndarray) -> np.ndarray:
    """(n_points, ne) sum of normalised Gaussians of width sigma at LEVELS (the exact broadened LDOS)."""
    g = np.exp(-0.5 * ((ENERGIES[None, :] - LEVELS[:, None]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    return weights @ g


def test_rebroaden_matches_analytic_gaussians():
    w = np.random.default_rng(0).random((3, len(LEVELS)))
    for s0, s1 in ((0.1, 0.15), (0.1, 0.3), (0.05, 0.1)):
        got = rebroaden_ldos(_gaussian_ldos(s0, w), ENERGIES, s0, s1)
        ref = _gaussian_ldos(s1, w)
        assert np.abs(got - ref).max() < 2e-3 * ref.max(), (s0, s1, np.abs(got - ref).max() / ref.max())
        # states are conserved
        np.testing.assert_allclose(got.sum(axis=1), ref.sum(axis=1), rtol=1e-4)
    same = _gaussian_ldos(0.1, w)
    np.testing.assert_array_equal(rebroaden_ldos(same, ENERGIES, 0.1, 0.1), same)


def test_rebroaden_bad_input():
    ldos = np.ones((2, len(ENERGIES)))
    with pytest.raises(InputError, match="narrower"):
        rebroaden_ldos(ldos, ENERGIES, 0.2, 0.1)
    with pytest.raises(InputError, match="uniform"):
        rebroaden_ldos(ldos, ENERGIES**3, 0.1, 0.2)
    with pytest.raises(InputError, match="matching"):
        rebroaden_ldos(ldos[:, :-1], ENERGIES, 0.1, 0.2)


def test_broaden_command(tmp_path):
    atoms = aluminium_supercell((1, 1, 1), temperature_k=298.0, seed=0)
    grid = (2, 2, 2)
    w = np.random.default_rng(1).random((8, len(LEVELS)))
    ldos = _gaussian_ldos(0.1, w).reshape(*grid, -1)
    snap = Snapshot(atoms=atoms, grid_shape=grid, energy_grid_ev=ENERGIES, ldos=ldos, density=None,
                    eigenvalues_ev=None, kweights=None, fermi_ev=8.2, electronic_temperature_k=298.0,
                    band_energy_ev=1.0, total_energy_ev=-2.0, ldos_smearing_ev=0.1, meta={})
    src = save_snapshot(snap, tmp_path / "in" / "s0.h5")
    res = CliRunner().invoke(app, ["electrons", "broaden", str(src), "--sigma", "0.15",
                                   "--out", str(tmp_path / "wide"), "-q"])
    assert res.exit_code == 0, res.output
    wide = load_snapshot(tmp_path / "wide" / "s0.h5")
    assert wide.ldos_smearing_ev == 0.15 and wide.total_energy_ev == -2.0
    ref = _gaussian_ldos(0.15, w).reshape(*grid, -1)
    assert np.abs(wide.ldos - ref).max() < 2e-3 * ref.max()
    res = CliRunner().invoke(app, ["electrons", "broaden", str(src), "--sigma", "0.05",
                                   "--out", str(tmp_path / "narrow")])
    assert res.exit_code != 0 and "s0.h5" in res.output and "narrower" in res.output
