"""Tasks electrons.train -> electrons.predict -> electrons.evaluate on synthetic snapshots."""

import numpy as np
import pytest
from test_training_cli import _snapshot

from matterflow.core.errors import InputError
from matterflow.electrons.ml_tasks import evaluate, predict, train


@pytest.fixture(scope="module")
def stacked():
    snaps = [_snapshot(s) for s in range(3)]
    return {"ldos": np.stack([s.ldos for s in snaps]), "energy_grid_ev": np.stack([snaps[0].energy_grid_ev] * 3),
            "positions": np.stack([s.atoms.positions for s in snaps]),
            "cell": np.stack([s.atoms.cell[:] for s in snaps]),
            "numbers": np.stack([s.atoms.numbers for s in snaps]),
            "grid_shape": np.array([s.grid_shape for s in snaps]), "snaps": snaps}


def test_train_predict_evaluate(stacked):
    s = stacked
    params = {"hidden_layers": [32, 32], "descriptors": {"kind": "gaussian"}, "ldos_smearing_ev": 0.0,
              "train": {"max_epochs": 60, "batch_size": 64, "learning_rate": 3e-3}}
    tm = train(s["ldos"], s["energy_grid_ev"], s["positions"], s["cell"], s["numbers"], params=params)
    assert tm.model.dtype == np.uint8 and tm.n_train_points == 2 * 512
    assert tm.val_loss[tm.best_epoch] < 0.2 * tm.val_loss[0]
    p = predict(tm.model, s["positions"], s["cell"], s["numbers"], s["grid_shape"], params={"snapshot": -1})
    ref = s["snaps"][-1]
    ev = evaluate(p.dos, p.density, p.fermi_ev, p.band_energy_ev, p.total_energy_ev, p.energy_grid_ev,
                  ref.ldos.sum(axis=(0, 1, 2))[None] * ref.voxel_volume_a3, ref.density[None],
                  [ref.fermi_ev], [ref.band_energy_ev], [ref.total_energy_ev], ref.atoms.positions[None],
                  params={"snapshot": -1})
    # the synthetic LDOS is a smooth function of the Gaussian descriptor: learned within a few %
    assert ev.density_mrae_percent < 5
    assert abs(ev.band_energy_error_mev_per_atom) < 100
    assert len(ev.table) == 5 and "MRAE" in ev.table[-1]


def test_train_bad_input(stacked):
    s = stacked
    with pytest.raises(InputError, match="at least two stacked"):
        train(s["ldos"][:1], s["energy_grid_ev"], s["positions"][:1], s["cell"], s["numbers"],
              params={"descriptors": {"kind": "gaussian"}})
    with pytest.raises(InputError, match="test_snapshots"):
        train(s["ldos"], s["energy_grid_ev"], s["positions"], s["cell"], s["numbers"],
              params={"descriptors": {"kind": "gaussian"}, "test_snapshots": [7]})
    with pytest.raises(InputError, match="features"):
        train(s["ldos"], s["energy_grid_ev"], s["positions"], s["cell"], s["numbers"],
              descriptors=np.zeros((*s["ldos"].shape[:4], 3)), params={"descriptors": {"kind": "gaussian"}})
    with pytest.raises(InputError, match="model"):
        predict(np.zeros(4), s["positions"], s["cell"], s["numbers"])


def test_train_task_fits_the_energy_correction():
    """params.energy_correction: the task stores a correction fitted on its training snapshots (as the CLI)."""
    from matterflow.electrons.energy_correction import EnergyCorrection
    from matterflow.electrons.model import model_from_bytes

    snaps = [_snapshot(s) for s in range(5)]
    arrays = (np.stack([s.ldos for s in snaps]), snaps[0].energy_grid_ev,
              np.stack([s.atoms.positions for s in snaps]), snaps[0].atoms.cell[:],
              np.stack([s.atoms.numbers for s in snaps]))
    params = {"hidden_layers": [8], "descriptors": {"kind": "gaussian"}, "ldos_smearing_ev": 0.0,
              "train": {"max_epochs": 3, "batch_size": 64}, "test_snapshots": [-1], "energy_correction": True}
    band = np.array([s.band_energy_ev for s in snaps])
    total = np.array([s.total_energy_ev for s in snaps])
    tm = train(*arrays, band_energy_ev=band, total_energy_ev=total, params=params)
    corr = EnergyCorrection.from_dict(model_from_bytes(tm.model.tobytes()).setup.meta["energy_correction"])
    assert corr.n_snapshots == 4 and np.isfinite(corr.total_loo_mev_per_atom)
    with pytest.raises(InputError, match="total_energy_ev: params.energy_correction needs"):
        train(*arrays, band_energy_ev=band, params=params)
    with pytest.raises(InputError, match="band_energy_ev: one value per snapshot"):
        train(*arrays, band_energy_ev=band[:2], total_energy_ev=total, params=params)
