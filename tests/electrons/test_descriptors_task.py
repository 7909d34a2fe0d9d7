"""The electrons.descriptors task and the `matterflow electrons descriptors` command."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from typer.testing import CliRunner

from matterflow.core.errors import InputError
from matterflow.electrons.descriptor_tasks import descriptors, structure_descriptors
from matterflow.electrons.descriptors import bispectrum_descriptors, gaussian_descriptors


@pytest.fixture
def al8():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 1)
    atoms.positions += np.random.default_rng(7).normal(0, 0.05, atoms.positions.shape)
    return atoms


def test_structure_task_on_atoms_file_and_snapshot(al8, tmp_path):
    params = {"grid_shape": [6, 3, 3], "bispectrum": {"twojmax": 4}}
    direct = bispectrum_descriptors(al8, (6, 3, 3), {"twojmax": 4})
    res = structure_descriptors(al8, params=params)
    np.testing.assert_array_equal(res.descriptors, direct)
    assert res.n_atoms == 8 and tuple(res.grid_shape) == (6, 3, 3)
    path = tmp_path / "POSCAR"
    ase.io.write(path, al8, format="vasp")
    np.testing.assert_allclose(structure_descriptors(path, params=params).descriptors, direct,
                               atol=1e-9)
    g = structure_descriptors(al8, params={"grid_shape": [6, 3, 3], "kind": "gaussian"})
    np.testing.assert_array_equal(g.descriptors, gaussian_descriptors(al8, (6, 3, 3)))

    from matterflow.electrons.snapshot import Snapshot, save_snapshot

    snap = Snapshot(atoms=al8, grid_shape=(6, 3, 3), energy_grid_ev=np.linspace(-5, 5, 11),
                    ldos=None, density=None, eigenvalues_ev=None, kweights=None, fermi_ev=0.0,
                    electronic_temperature_k=298.0, band_energy_ev=0.0, total_energy_ev=0.0,
                    ldos_smearing_ev=0.1)
    h5 = save_snapshot(snap, tmp_path / "snap.h5")
    from_snap = structure_descriptors(h5, params={"bispectrum": {"twojmax": 4}})  # its own grid
    np.testing.assert_allclose(from_snap.descriptors, direct, atol=1e-9)


def test_task_figures_from_stacked_outputs(al8):
    from matterflow.electrons.descriptor_tasks import DescriptorTaskParams, _figures

    res = structure_descriptors(al8, params={"grid_shape": [6, 3, 3],
                                             "bispectrum": {"twojmax": 2}})
    figs = _figures({"descriptors": res.descriptors[None]}, DescriptorTaskParams())
    assert len(figs) == 2
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)


def test_array_task_shared_or_stacked_inputs(al8):
    p = {"bispectrum": {"twojmax": 2}}
    direct = bispectrum_descriptors(al8, (6, 3, 3), p["bispectrum"])
    pos, cell, num = al8.positions, al8.cell[:], al8.numbers
    shared = descriptors(pos, cell, num, params={**p, "grid_shape": [6, 3, 3]})
    np.testing.assert_array_equal(shared.descriptors, direct)
    stacked = descriptors(pos, np.stack([cell, cell]), np.stack([num, num]),
                          np.array([[6, 3, 3], [6, 3, 3]]), params=p)
    np.testing.assert_array_equal(stacked.descriptors, direct)
    with pytest.raises(InputError, match="cell: differs between snapshots"):
        descriptors(pos, np.stack([cell, cell * 1.01]), num, params={**p, "grid_shape": [2, 2, 2]})
    with pytest.raises(InputError, match="numbers"):
        descriptors(pos, cell, num[:3], params={**p, "grid_shape": [2, 2, 2]})
    bad = pos.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="positions"):
        descriptors(bad, cell, num, params={**p, "grid_shape": [2, 2, 2]})


def test_workflow_structures_to_descriptors(tmp_path):
    """electrons.structures -> electrons.descriptors mapped over snapshots on Dask."""
    import h5py

    from matterflow.core.execute import run_workflow
    from matterflow.core.workflow import parse_workflow
    from matterflow.electrons.dft_tasks import structures

    text = """
steps:
  - id: s
    task: electrons.structures
    params: {n_snapshots: 3, seed: 1}
  - id: d
    task: electrons.descriptors
    inputs: {positions: s.positions, cell: s.cell, numbers: s.numbers}
    params: {grid_shape: [4, 4, 4], bispectrum: {twojmax: 2}}
"""
    run_workflow(parse_workflow(text), tmp_path, workers=1)
    ref = structures(params={"n_snapshots": 3, "seed": 1})
    with h5py.File(tmp_path / "results.h5") as f:
        keys = []
        f.visit(keys.append)
        name = next(k for k in keys if k.endswith("descriptors") and k.split("/")[-2] == "d")
        got = f[name][()]
    assert got.shape == (3, 4, 4, 4, 5)
    from ase import Atoms

    for i in range(3):
        atoms = Atoms(numbers=ref.numbers, positions=ref.positions[i], cell=ref.cell, pbc=True)
        np.testing.assert_allclose(got[i], bispectrum_descriptors(atoms, (4, 4, 4), {"twojmax": 2}),
                                   atol=1e-12)


def test_task_bad_inputs(al8, tmp_path):
    with pytest.raises(InputError, match="grid_shape"):
        structure_descriptors(al8, params={"bispectrum": {"twojmax": 2}})
    with pytest.raises(InputError, match="not found"):
        structure_descriptors(tmp_path / "missing.vasp", params={"grid_shape": [2, 2, 2]})
    with pytest.raises(InputError, match=r"grid_shape"):
        structure_descriptors(al8, params={"grid_shape": [2, 0, 2]})
    with pytest.raises(InputError, match=r"kind"):
        structure_descriptors(al8, params={"grid_shape": [2, 2, 2], "kind": "soap"})


def test_cli_descriptors(al8, tmp_path):
    from matterflow.cli import app

    path = tmp_path / "al.vasp"
    ase.io.write(path, al8, format="vasp")
    runner = CliRunner()
    out = tmp_path / "d.npy"
    r = runner.invoke(app, ["electrons", "descriptors", str(path), "--grid", "6,3,3",
                            "--twojmax", "4", "--chunk", "20", "-q", "-o", str(out),
                            "--with-coordinates"])
    assert r.exit_code == 0, r.output
    arr = np.load(out)
    direct = bispectrum_descriptors(al8, (6, 3, 3), {"twojmax": 4})
    np.testing.assert_allclose(arr[..., 3:], direct, atol=1e-9)
    assert arr.shape == (6, 3, 3, direct.shape[-1] + 3)
    h5 = tmp_path / "g.h5"
    r = runner.invoke(app, ["electrons", "descriptors", str(path), "--grid", "6x3x3", "--kind",
                            "gaussian", "--sigma", "Al=0.3", "-q", "-o", str(h5)])
    assert r.exit_code == 0, r.output
    import h5py

    with h5py.File(h5) as f:
        np.testing.assert_allclose(f["descriptors"][()],
                                   gaussian_descriptors(al8, (6, 3, 3), {"sigma": {"Al": 0.3}}),
                                   atol=1e-12)
        assert f["descriptors"].attrs["units"] == "1/Å^3"
    r = runner.invoke(app, ["electrons", "descriptors", str(path), "--grid", "6,3,3",
                            "--radius", "Cu=0.5", "--weight", "Cu=1", "-q", "-o", str(out)])
    assert r.exit_code == 2 and "params.radius" in r.output
    r = runner.invoke(app, ["electrons", "descriptors", str(path), "-q", "-o", str(out)])
    assert r.exit_code == 2 and "--grid" in r.output
    r = runner.invoke(app, ["electrons", "descriptors", str(path), "--grid", "6,3,3", "-q",
                            "-o", str(tmp_path / "d.txt")])
    assert r.exit_code == 2 and "--out" in r.output and not (tmp_path / "d.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["al.vasp", "d.npy", "g.h5"]
