"""`matterflow electrons train / predict / hyperopt` on synthetic snapshots (no DFT needed).

The synthetic LDOS of each grid point is the free-electron LDOS scaled by a
smooth function of the local atomic density (the Gaussian descriptor), so a
network can learn it; the reference observables of each snapshot come from
:func:`observables_from_ldos` on that LDOS.
"""

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.electrons.descriptors import GaussianDescriptorParams, gaussian_descriptors
from matterflow.electrons.observables import observables_from_ldos
from matterflow.electrons.snapshot import Snapshot, save_snapshot
from matterflow.electrons.structures import aluminium_supercell

ENERGIES = np.arange(-1.0, 16.0, 0.1)
GRID = (8, 8, 8)


def _snapshot(seed: int) -> Snapshot:
    atoms = aluminium_supercell((1, 1, 1), temperature_k=298.0, seed=seed)
    g = gaussian_descriptors(atoms, GRID, GaussianDescriptorParams())[..., 0]
    free = np.sqrt(np.clip(ENERGIES, 0, None)) / (2 * np.pi**2) / 3.81**1.5
    shape = 0.6 + 0.8 * np.tanh(g / g.mean())
    ldos = shape[..., None] * free * (1 + 0.05 * np.tanh(g / g.mean())[..., None] * ENERGIES / 16)
    obs = observables_from_ldos(ldos, ENERGIES, atoms, temperature_k=298.0, ldos_smearing_ev=0.0)
    return Snapshot(atoms=atoms, grid_shape=GRID, energy_grid_ev=ENERGIES, ldos=ldos, density=obs.density,
                    eigenvalues_ev=None, kweights=None, fermi_ev=obs.fermi_ev, electronic_temperature_k=298.0,
                    band_energy_ev=obs.band_energy_ev, total_energy_ev=obs.total_energy_ev,
                    ldos_smearing_ev=0.0, meta={"functional": "lda,pz"})


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    d = tmp_path_factory.mktemp("snaps")
    return [save_snapshot(_snapshot(s), d / f"s{s}.h5") for s in range(4)]


def test_train_predict_commands(snapshots, tmp_path):
    runner = CliRunner()
    model = tmp_path / "model.pt"
    args = ["electrons", "train", *map(str, snapshots), "--kind", "gaussian", "--hidden", "32,32",
            "--epochs", "40", "--lr", "3e-3", "--batch-size", "64", "--out", str(model), "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert model.exists() and "held-out" in res.output and "s3.h5" in res.output
    # rerun: the finished checkpoint is found, nothing is trained again
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resumed after epoch" in again.output
    out = tmp_path / "pred.h5"
    res = runner.invoke(app, ["electrons", "predict", str(model), str(snapshots[-1]), "--repeat", "2,1,1",
                              "--chunk-points", "300", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    with h5py.File(out) as f:
        assert f["density"].shape == (16, 8, 8)
        # 8 atoms, same crystal repeated: per-atom band energy as for the 4-atom cell (within model error)
        ref = _snapshot(3)
        assert f["band_energy_ev"][()] / 8 == pytest.approx(ref.band_energy_ev / 4, rel=0.02)


def test_train_ensemble_command(snapshots, tmp_path):
    from matterflow.electrons.model import EnsembleLdosModel, load_model

    res = CliRunner().invoke(app, ["electrons", "train", *map(str, snapshots), "--kind", "gaussian",
                                   "--hidden", "8", "--epochs", "3", "--members", "2", "--no-refit-output",
                                   "--weight-decay", "1e-5", "--out", str(tmp_path / "e.pt"), "-q"])
    assert res.exit_code == 0, res.output
    assert "ensemble of 2 networks" in res.output
    m = load_model(tmp_path / "e.pt")
    assert isinstance(m, EnsembleLdosModel) and len(m.members_) == 2 and m.setup is not None
    assert not any(x.refit_output for x in m.members_)
    assert m.members_[0].train.weight_decay == 1e-5


def test_evaluate_command(snapshots, tmp_path):
    """`electrons evaluate` gives the same errors as the train command's table, and a floor."""
    import json
    import re

    runner = CliRunner()
    model = tmp_path / "model.pt"
    res = runner.invoke(app, ["electrons", "train", *map(str, snapshots), "--test", "2", "--kind", "gaussian",
                              "--hidden", "16", "--epochs", "5", "--out", str(model), "-q"])
    assert res.exit_code == 0, res.output
    trained = re.findall(r"│ (s[23]\.h5)\s+│ ([-+\d.]+)\s+│ ([-+\d.]+)", res.output)
    assert [t[0] for t in trained] == ["s2.h5", "s3.h5"]
    assert re.search(r"within ±10 meV/atom: band \d/2", res.output)
    out = tmp_path / "errors.json"
    res = runner.invoke(app, ["electrons", "evaluate", str(model), *map(str, snapshots[2:]), "--tolerance", "1e6",
                              "--json", str(out), "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    rows = doc["snapshots"]
    assert [r["snapshot"] for r in rows] == [str(p) for p in snapshots[2:]]
    for r, (_, band, total) in zip(rows, trained, strict=True):
        # same model, same snapshot: the numbers of the train command's table (2 decimals)
        assert r["band_energy_mev_per_atom"] == pytest.approx(float(band), abs=0.006)
        assert r["total_energy_mev_per_atom"] == pytest.approx(float(total), abs=0.006)
        # the synthetic references are the observables of the stored LDOS (width 0): floor zero
        assert abs(r["floor"]["band_energy_mev_per_atom"]) < 1e-6
        assert abs(r["floor"]["total_energy_mev_per_atom"]) < 1e-6
        assert r["floor"]["density_mrae_percent"] < 1e-6
    s = doc["summary"]
    assert s["n"] == 2 and s["band_within"] == 2 and s["total_within"] == 2   # tolerance 1e6
    worst = max((r["total_energy_mev_per_atom"] for r in rows), key=abs)
    assert s["worst_total"] == worst and "floor" in res.output and "total 2/2" in res.output
    band_err = [r["band_energy_mev_per_atom"] for r in rows]
    assert s["mae_band"] == pytest.approx(sum(map(abs, band_err)) / 2)
    assert s["rms_band"] == pytest.approx((sum(b * b for b in band_err) / 2) ** 0.5)
    assert s["mean_band"] == pytest.approx(sum(band_err) / 2) and "MAE band" in " ".join(res.output.split())
    res = runner.invoke(app, ["electrons", "evaluate", str(model), str(snapshots[3]), "--tolerance", "0",
                              "--no-floor", "-q"])
    assert res.exit_code == 0 and "floor" not in res.output and "band 0/1" in res.output
    res = runner.invoke(app, ["electrons", "evaluate", str(tmp_path / "none.pt"), str(snapshots[0])])
    assert res.exit_code == 2 and "none.pt" in res.output
    res = runner.invoke(app, ["electrons", "evaluate", str(model), str(tmp_path / "none.h5")])
    assert res.exit_code == 2 and "none.h5" in res.output


def test_bad_command_input(snapshots, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["electrons", "train", str(snapshots[0]), "--test", "1", "--kind", "gaussian"])
    assert res.exit_code == 2 and "leave none" in res.output
    res = runner.invoke(app, ["electrons", "train", str(tmp_path / "nope.h5")])
    assert res.exit_code == 2 and "nope.h5" in res.output
    res = runner.invoke(app, ["electrons", "predict", str(tmp_path / "m.pt"), str(snapshots[0])])
    assert res.exit_code == 2 and "m.pt" in res.output


def test_hyperopt_command_resumes(snapshots, tmp_path):
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'study.db'}"
    base = ["electrons", "hyperopt", *map(str, snapshots[:3]), "--kind", "gaussian", "--storage", db,
            "--epochs", "3", "-q"]
    res = runner.invoke(app, [*base, "--trials", "2"])
    assert res.exit_code == 0, res.output
    assert "2 complete" in res.output or "pruned" in res.output
    res = runner.invoke(app, [*base, "--trials", "3"])
    assert res.exit_code == 0 and "(1 run now)" in res.output


@pytest.mark.slow
def test_killed_training_resumes(snapshots, tmp_path):
    """SIGKILL `matterflow electrons train` after a few epochs; the same command resumes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    model = tmp_path / "model.pt"
    ckpt = tmp_path / "model.pt.ckpt" / "checkpoint.pt"
    cmd = [sys.executable, "-m", "matterflow.cli", "electrons", "train", *map(str, snapshots),
           "--kind", "gaussian", "--hidden", "256,256,256", "--epochs", "400", "--patience", "400",
           "--batch-size", "16", "--out", str(model), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 300:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = torch.load(ckpt, weights_only=True)["epoch"]
    assert not model.exists() and done >= 2
    res = CliRunner().invoke(app, [*cmd[3:-1], "--epochs", str(done + 3)])
    assert res.exit_code == 0, res.output
    assert f"resumed after epoch {done + 1}" in res.output and model.exists()
    # (a model trained for a few epochs may be too poor to evaluate: a warning, not a failure)
