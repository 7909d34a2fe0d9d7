"""``matterflow electrons dft | observables | import-mala`` end to end on a tiny cell."""

import numpy as np
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.electrons.snapshot import load_snapshot

runner = CliRunner()


def test_dft_then_observables(tmp_path):
    out = tmp_path / "snaps"
    res = runner.invoke(app, ["electrons", "dft", "--out", str(out), "--snapshots", "1",
                              "--kpts", "1,1,1", "--mesh", "8,8,8",
                              "--temperature", "933", "--energy-min", "-6", "--energy-max", "14",
                              "--quiet"])
    assert res.exit_code == 0, res.output
    snap = load_snapshot(out / "snapshot_000.h5")
    assert snap.ldos.shape[:3] == (8, 8, 8) and snap.electronic_temperature_k == 933
    res = runner.invoke(app, ["electrons", "observables", str(out / "snapshot_000.h5")])
    assert res.exit_code == 0, res.output
    assert "total energy" in res.output and "meV/atom" in res.output and "ewald" in res.output
    # rerun keeps the existing snapshot
    res = runner.invoke(app, ["electrons", "dft", "--out", str(out), "--snapshots", "1", "--quiet"])
    assert res.exit_code == 0 and "already present" in res.output


def test_import_mala_and_bad_input(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ldos.npy", rng.random((4, 4, 4, 30)))
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-10.0)
    atoms.write(tmp_path / "out.extxyz")
    res = runner.invoke(app, ["electrons", "import-mala", str(tmp_path / "ldos.npy"),
                              str(tmp_path / "out.extxyz"), "--offset", "-5", "--spacing", "0.1",
                              "--temperature", "298", "--out", str(tmp_path / "s.h5")])
    assert res.exit_code == 0, res.output
    assert load_snapshot(tmp_path / "s.h5").total_energy_ev == -10.0
    res = runner.invoke(app, ["electrons", "observables", str(tmp_path / "missing.h5")])
    assert res.exit_code == 2 and "missing.h5" in res.output
    res = runner.invoke(app, ["electrons", "dft", "--out", str(tmp_path), "--energy-step", "0"])
    assert res.exit_code == 2 and "energy_step_ev" in res.output
