"""Snapshot HDF5 round trip, MALA .npy reader and Gaussian cube reader."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from matterflow.core.errors import InputError
from matterflow.electrons.io_formats import (
    BOHR_A,
    RYDBERG_EV,
    load_mala,
    load_mala_descriptors,
    read_cube,
    read_ldos_cubes,
    write_cube,
)
from matterflow.electrons.snapshot import Snapshot, load_snapshot, save_snapshot


def _snapshot(shape=(4, 3, 2), ne=20):
    rng = np.random.default_rng(0)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    return Snapshot(atoms=atoms, grid_shape=shape, energy_grid_ev=np.linspace(-1, 1, ne),
                    ldos=rng.random((*shape, ne)), density=rng.random(shape),
                    eigenvalues_ev=rng.random((2, 5)), kweights=np.array([0.5, 0.5]), fermi_ev=0.1,
                    electronic_temperature_k=298.0, band_energy_ev=-3.0, total_energy_ev=-200.0,
                    ldos_smearing_ev=0.05, meta={"code": "test", "kpts": [1, 1, 2],
                                                 "n_electrons": 12.0})


def test_snapshot_round_trip(tmp_path):
    snap = _snapshot()
    path = save_snapshot(snap, tmp_path / "s.h5")
    back = load_snapshot(path)
    np.testing.assert_array_equal(back.ldos, snap.ldos)
    np.testing.assert_array_equal(back.atoms.positions, snap.atoms.positions)
    assert back.grid_shape == snap.grid_shape and back.meta == snap.meta
    assert back.total_energy_ev == snap.total_energy_ev and back.n_electrons == 12.0
    import h5py
    with h5py.File(path) as f:
        assert f["ldos"].attrs["units"] == "1/(eV*Å^3)" and f["fermi_ev"].attrs["units"] == "eV"
    assert load_snapshot(path, with_ldos=False).ldos is None


def test_snapshot_bad_inputs(tmp_path):
    snap = _snapshot()
    with pytest.raises(InputError, match="ldos has shape"):
        save_snapshot(snap.with_(grid_shape=(4, 3, 3)), tmp_path / "x.h5")
    bad = snap.ldos.copy()
    bad[1, 1, 1, 1] = np.nan
    with pytest.raises(InputError, match="ldos contains NaN"):
        save_snapshot(snap.with_(ldos=bad), tmp_path / "x.h5")
    with pytest.raises(InputError, match="no such snapshot"):
        load_snapshot(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="junk.h5: not an HDF5"):
        load_snapshot(tmp_path / "junk.h5")


def test_mala_reader_converts_units_and_reads_dft_output(tmp_path):
    rng = np.random.default_rng(1)
    ldos = rng.random((6, 5, 4, 11)).astype(np.float32)
    np.save(tmp_path / "Al_ldos_0.npy", ldos)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.positions[0] -= 0.5  # outside the cell: wrapped
    atoms.calc = SinglePointCalculator(atoms, energy=-123.4)
    atoms.write(tmp_path / "Al.extxyz")
    snap = load_mala(tmp_path / "Al_ldos_0.npy", tmp_path / "Al.extxyz", energy_offset_ev=-5,
                     energy_spacing_ev=0.1, electronic_temperature_k=298,
                     ldos_units="1/(Ry*Bohr^3)")
    np.testing.assert_allclose(snap.ldos, ldos / (RYDBERG_EV * BOHR_A**3), rtol=1e-6)
    np.testing.assert_allclose(snap.energy_grid_ev, -5 + 0.1 * np.arange(11))
    assert snap.total_energy_ev == pytest.approx(-123.4)
    assert snap.grid_shape == (6, 5, 4)
    frac = snap.atoms.get_scaled_positions(wrap=False)
    assert np.all((frac >= 0) & (frac < 1))
    desc = rng.random((6, 5, 4, 8))
    np.save(tmp_path / "Al_bispectrum_0.npy", desc)
    got = load_mala_descriptors(tmp_path / "Al_bispectrum_0.npy", contains_xyz=True,
                                grid_shape=snap.grid_shape)
    np.testing.assert_array_equal(got, desc[..., 3:])
    with pytest.raises(InputError, match="Al_bispectrum_0.npy: descriptor grid"):
        load_mala_descriptors(tmp_path / "Al_bispectrum_0.npy", grid_shape=(6, 5, 5))
    np.save(tmp_path / "flat.npy", ldos.reshape(-1, 11))
    with pytest.raises(InputError, match=r"flat.npy: LDOS must have shape \(nx, ny, nz"):
        load_mala(tmp_path / "flat.npy", atoms, energy_offset_ev=0, energy_spacing_ev=0.1,
                  electronic_temperature_k=298)
    ldos[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", ldos)
    with pytest.raises(InputError, match="nan.npy: ldos contains NaN"):
        load_mala(tmp_path / "nan.npy", atoms, energy_offset_ev=0, energy_spacing_ev=0.1,
                  electronic_temperature_k=298)


def test_cube_reader_matches_ase_and_round_trips(tmp_path):
    from ase.io.cube import read_cube_data
    from ase.io.cube import write_cube as ase_write_cube

    rng = np.random.default_rng(2)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    data = rng.random((5, 6, 7))
    with open(tmp_path / "ase.cube", "w") as fh:
        ase_write_cube(fh, atoms, data=data)
    got, got_atoms, info = read_cube(tmp_path / "ase.cube")
    ref, ref_atoms = read_cube_data(str(tmp_path / "ase.cube"))
    np.testing.assert_allclose(got, ref)
    np.testing.assert_allclose(got_atoms.positions, ref_atoms.positions, atol=1e-5)
    np.testing.assert_allclose(got_atoms.cell[:], atoms.cell[:], atol=1e-5)
    assert info["grid_shape"] == (5, 6, 7)
    write_cube(tmp_path / "ours.cube", data, atoms)
    back, back_atoms, _ = read_cube(tmp_path / "ours.cube")
    np.testing.assert_allclose(back, data, rtol=1e-7)
    np.testing.assert_allclose(back_atoms.positions, atoms.positions, atol=1e-5)


def test_cube_bad_inputs(tmp_path):
    p = tmp_path / "short.cube"
    p.write_text("c\nc\n1 0 0 0\n2 0.5 0 0\n2 0 0.5 0\n2 0 0 0.5\n13 13.0 0 0 0\n1 2 3\n")
    with pytest.raises(InputError, match="short.cube: 3 data values; the grid"):
        read_cube(p)
    p.write_text("c\nc\n1 0 0 0\n2 0.5 0 0\n2 0 0.5 0\n2 0 0 0.5\n13 13.0 0 0 0\n1 2 3 4 5 6 7 nan\n")
    with pytest.raises(InputError, match="NaN"):
        read_cube(p)
    with pytest.raises(InputError, match="not found"):
        read_cube(tmp_path / "nope.cube")


def test_ldos_from_one_cube_per_energy(tmp_path):
    rng = np.random.default_rng(3)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    ldos = rng.random((4, 5, 6, 3))
    paths = [write_cube(tmp_path / f"ldos{i}.cube", ldos[..., i], atoms) for i in range(3)]
    got, got_atoms = read_ldos_cubes(paths)
    np.testing.assert_allclose(got, ldos / (RYDBERG_EV * BOHR_A**3), rtol=1e-7)
    assert len(got_atoms) == 4
    write_cube(tmp_path / "other.cube", rng.random((4, 5, 5)), atoms)
    with pytest.raises(InputError, match="other.cube: grid"):
        read_ldos_cubes([paths[0], tmp_path / "other.cube"])
