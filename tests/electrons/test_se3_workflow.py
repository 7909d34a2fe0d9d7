"""The se3 route through the workflow: `electrons dft --system hydrogen` and `electrons.train`
with ``architecture: se3`` (what examples/electrons_se3.yaml runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("pyscf")
pytest.importorskip("e3nn")

from matterflow.cli import app  # noqa: E402


@pytest.fixture(scope="module")
def h2_snapshots(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("h2")
    res = CliRunner().invoke(app, ["electrons", "dft", "--system", "hydrogen", "--snapshots", "2",
                                   "--repeat", "1,1,1", "--density", "0.6", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    return sorted(out.glob("snapshot_*.h5"))


def test_hydrogen_snapshots_have_the_density_and_their_ldos_gives_pyscfs_energy(h2_snapshots):
    from matterflow.electrons.observables import observables_from_ldos
    from matterflow.electrons.snapshot import load_snapshot

    assert len(h2_snapshots) == 2
    for path in h2_snapshots:
        snap = load_snapshot(path)
        a = snap.atoms
        assert a.get_chemical_symbols() == ["H"] * 4
        # mass density from ASE's masses and the cell volume (1 amu = 1.66053906660e-24 g)
        rho = a.get_masses().sum() * 1.66053906660e-24 / (a.get_volume() * 1e-24)
        assert rho == pytest.approx(0.6, rel=1e-3)
        assert snap.electronic_temperature_k == pytest.approx(3000.0)   # the hydrogen default
        obs = observables_from_ldos(snap.ldos, snap.energy_grid_ev, a,
                                    temperature_k=snap.electronic_temperature_k,
                                    ldos_smearing_ev=snap.ldos_smearing_ev)
        assert abs(obs.total_energy_ev - snap.total_energy_ev) / len(a) * 1000 < 5.0   # PySCF's value
    first, second = (load_snapshot(p).atoms.positions for p in h2_snapshots)
    assert not np.allclose(first, second)   # seed + i: different configurations


def test_train_task_trains_se3_that_beats_the_mean_ldos(h2_snapshots):
    from pydantic import ValidationError

    from matterflow.core.blob import from_bytes_array
    from matterflow.electrons.equivariant import Se3LdosModel
    from matterflow.electrons.ml_tasks import TrainTaskParams, train
    from matterflow.electrons.model import model_from_bytes
    from matterflow.electrons.snapshot import load_snapshot

    with pytest.raises(ValidationError, match="neighbours"):
        TrainTaskParams(architecture="se3")
    snaps = [load_snapshot(p) for p in h2_snapshots]
    params = TrainTaskParams(architecture="se3", test_snapshots=(-1,),
                             descriptors={"kind": "neighbours",
                                          "neighbours": {"cutoff": 2.5, "max_neighbours": 8}},
                             se3={"n_scalars": 8, "hidden_irreps": "8x0e+4x1o+2x2e"},
                             train={"max_epochs": 4, "batch_size": 64, "learning_rate": 5e-3})
    res = train(np.stack([s.ldos for s in snaps]), snaps[0].energy_grid_ev,
                np.stack([s.atoms.positions for s in snaps]), snaps[0].atoms.cell[:],
                snaps[0].atoms.numbers, electronic_temperature_k=3000.0, ldos_smearing_ev=0.2,
                params=params)
    model = model_from_bytes(from_bytes_array(res.model))
    assert isinstance(model, Se3LdosModel) and model.setup.descriptor_kind == "neighbours"
    # the held-out snapshot's density (through the predict path): closer to PySCF's than the
    # sum of atomic densities
    from matterflow.electrons.hydrogen import atomic_density_sum
    from matterflow.electrons.predict import predict_observables

    test = snaps[1]
    shape = tuple(test.grid_shape)
    pred = predict_observables(model, test.atoms, grid_shape=shape, scheduler=None)
    ref = np.asarray(test.density)
    nmae = float(np.mean(np.abs(pred.density - ref)) / ref.mean())
    sad = float(np.mean(np.abs(atomic_density_sum(test.atoms, shape) - ref)) / ref.mean())
    assert nmae < 0.85 * sad, (nmae, sad)
