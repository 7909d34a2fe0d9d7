"""Grid descriptors against LAMMPS (compute sna/grid, gaussian/grid/local) and exact results."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms
from lammps_reference import lammps_available, lammps_gaussian_grid, lammps_sna_grid

from matterflow.core.errors import InputError
from matterflow.electrons.descriptors import (
    BispectrumParams,
    GaussianDescriptorParams,
    bispectrum_descriptors,
    bispectrum_indices,
    gaussian_descriptors,
    grid_coordinates,
    n_features,
)

needs_lammps = pytest.mark.skipif(not lammps_available(),
                                  reason="LAMMPS Python module (PyPI 'lammps') not importable")


def distorted_fcc_al() -> Atoms:
    """4-atom fcc Al cell, sheared (LAMMPS lower-triangular form) with displaced atoms."""
    cell = np.array([[4.05, 0.0, 0.0], [0.21, 3.97, 0.0], [-0.13, 0.17, 4.11]])
    frac = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=float)
    atoms = Atoms("Al4", scaled_positions=frac, cell=cell, pbc=True)
    atoms.positions += np.random.default_rng(3).normal(0, 0.12, (4, 3))
    return atoms


def two_species_triclinic() -> Atoms:
    cell = np.array([[5.0, 0.0, 0.0], [1.2, 4.6, 0.0], [-0.7, 0.9, 5.3]])
    frac = np.random.default_rng(1).random((7, 3))
    return Atoms(["Al", "Al", "Cu", "Al", "Cu", "Al", "Al"], scaled_positions=frac, cell=cell,
                 pbc=True)


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest error of each component relative to that component's scale."""
    scale = np.abs(ref).reshape(-1, ref.shape[-1]).max(axis=0)
    err = np.abs(ours - ref).reshape(-1, ref.shape[-1]).max(axis=0)
    return float((err / np.maximum(scale, 1e-300)).max())


# --------------------------------------------------------------------------- LAMMPS

@needs_lammps
@pytest.mark.parametrize("twojmax", [6, 8])
def test_bispectrum_matches_lammps_distorted_fcc(twojmax):
    atoms = distorted_fcc_al()
    p = dict(twojmax=twojmax, rcutfac=4.67637, rfac0=0.99363, radius={"Al": 0.5},
             weight={"Al": 1.0})
    grid = (5, 6, 7)
    ref = lammps_sna_grid(atoms, grid, **p)
    ours = bispectrum_descriptors(atoms, grid, p)
    assert ours.shape == (*grid, len(bispectrum_indices(twojmax)))
    assert ref.shape[-1] == ours.shape[-1] + 3
    assert rel_err(ours, ref[..., 3:]) < 1e-6
    # LAMMPS's leading columns are the grid coordinates
    np.testing.assert_allclose(grid_coordinates(atoms, grid), ref[..., :3], atol=1e-9)


@needs_lammps
def test_atoms_on_grid_points_match_lammps():
    """Perfect fcc on a 4x4x4 grid: atoms sit on grid points (r = 0 excluded, as LAMMPS)."""
    from ase.build import bulk

    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    p = dict(twojmax=6, rcutfac=4.67637, rfac0=0.99363, radius={"Al": 0.5}, weight={"Al": 1.0})
    ref = lammps_sna_grid(atoms, (4, 4, 4), **p)
    assert rel_err(bispectrum_descriptors(atoms, (4, 4, 4), p), ref[..., 3:]) < 1e-6
    gp = dict(rcutfac=4.67637, radius={"Al": 0.5}, sigma={"Al": 0.3})
    assert rel_err(gaussian_descriptors(atoms, (4, 4, 4), gp),
                   lammps_gaussian_grid(atoms, (4, 4, 4), **gp)) < 1e-6


@needs_lammps
@pytest.mark.parametrize("flags", [
    {},
    {"switchflag": 0},
    {"bzeroflag": 0, "rmin0": 0.3},
    {"quadraticflag": 1},
    {"bnormflag": 1},
    {"chemflag": 1},
    {"chemflag": 1, "bnormflag": 1, "wselfallflag": 1, "bzeroflag": 1},
])
def test_bispectrum_matches_lammps_two_species_triclinic(flags):
    atoms = two_species_triclinic()
    p = dict(twojmax=4 if flags.get("chemflag") else 5, rcutfac=2.9, rfac0=0.99363,
             radius={"Al": 0.5, "Cu": 0.7}, weight={"Al": 1.0, "Cu": 0.6}, **flags)
    grid = (5, 4, 6)
    ref = lammps_sna_grid(atoms, grid, **p)
    ours = bispectrum_descriptors(atoms, grid, p)
    assert ours.shape[-1] == n_features(BispectrumParams(**p)) == ref.shape[-1] - 3
    assert rel_err(ours, ref[..., 3:]) < 1e-6


@needs_lammps
def test_gaussian_matches_lammps():
    atoms = two_species_triclinic()
    p = dict(rcutfac=2.9, radius={"Al": 0.5, "Cu": 0.7}, sigma={"Al": 0.4, "Cu": 0.6})
    ref = lammps_gaussian_grid(atoms, (5, 4, 6), **p)
    ours = gaussian_descriptors(atoms, (5, 4, 6), p)
    assert ours.shape == (5, 4, 6, 2)
    assert rel_err(ours, ref) < 1e-6


# --------------------------------------------------------------------------- exact results

def test_empty_neighbourhood_and_single_neighbour_exact():
    """No neighbour: B = 0 (bzero) or (j+1); one neighbour: B_000 = (1 + f w)^3 - 1."""
    atoms = Atoms("Al", positions=[[1.0, 0.0, 0.0]], cell=np.eye(3) * 20.0, pbc=True)
    rc = 2 * 0.5 * 3.0
    p = {"twojmax": 4, "rcutfac": 3.0, "weight": {"Al": 0.7}}
    b = bispectrum_descriptors(atoms, (2, 2, 2), p)
    idx = bispectrum_indices(4)
    far = b[1, 1, 1]                       # (10, 10, 10) Å: no atom within 3 Å
    np.testing.assert_allclose(far, 0.0, atol=1e-12)
    raw = bispectrum_descriptors(atoms, (2, 2, 2), {**p, "bzeroflag": False})[1, 1, 1]
    np.testing.assert_allclose(raw, idx[:, 2] + 1.0, rtol=1e-12)
    f = 0.5 * (math.cos(1.0 * math.pi / rc) + 1.0)          # switching function at r = 1 Å
    assert b[0, 0, 0, 0] == pytest.approx((1 + 0.7 * f) ** 3 - 1, rel=1e-12)


def test_rotation_and_supercell_invariance():
    atoms = two_species_triclinic()
    p = BispectrumParams(twojmax=4, rcutfac=2.9, radius={"Al": 0.5, "Cu": 0.7},
                         weight={"Al": 1.0, "Cu": 0.6})
    grid = (4, 3, 5)
    b = bispectrum_descriptors(atoms, grid, p)
    rot = atoms.copy()
    rot.rotate(37, (1, 2, 3), rotate_cell=True)
    np.testing.assert_allclose(bispectrum_descriptors(rot, grid, p), b, rtol=1e-9, atol=1e-9)
    sup = atoms * (2, 1, 1)
    bs = bispectrum_descriptors(sup, (8, 3, 5), p)
    np.testing.assert_allclose(bs[:4], b, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bs[4:], b, rtol=1e-9, atol=1e-9)
    moved = atoms.copy()                  # atoms outside the cell are wrapped
    moved.positions += atoms.cell[0] * 2 - atoms.cell[2]
    np.testing.assert_allclose(bispectrum_descriptors(moved, grid, p), b, rtol=1e-9, atol=1e-9)


def test_points_chunks_equal_full_grid():
    atoms = distorted_fcc_al()
    p = {"twojmax": 4}
    full = bispectrum_descriptors(atoms, (4, 4, 4), p).reshape(64, -1)
    pts = np.array([63, 0, 17, 17, 40])
    np.testing.assert_array_equal(bispectrum_descriptors(atoms, (4, 4, 4), p, points=pts), full[pts])
    np.testing.assert_array_equal(bispectrum_descriptors(atoms, (4, 4, 4), p, points=slice(10, 30)),
                                  full[10:30])
    g = gaussian_descriptors(atoms, (4, 4, 4)).reshape(64, -1)
    np.testing.assert_array_equal(gaussian_descriptors(atoms, (4, 4, 4), points=pts), g[pts])


def test_gaussian_integrates_to_atom_count():
    """A resolved Gaussian density integrates to the number of atoms of each species."""
    atoms = two_species_triclinic()
    p = GaussianDescriptorParams(rcutfac=3.0, radius={"Al": 1.0, "Cu": 1.0},
                                 sigma={"Al": 0.5, "Cu": 0.6})
    g = gaussian_descriptors(atoms, (40, 40, 40), p)
    voxel = atoms.get_volume() / 40**3
    np.testing.assert_allclose(g.sum(axis=(0, 1, 2)) * voxel, [5, 2], rtol=1e-3)


# --------------------------------------------------------------------------- bad input

def test_bad_inputs_name_the_field():
    atoms = two_species_triclinic()
    with pytest.raises(InputError, match=r"params\.radius.*Cu"):
        bispectrum_descriptors(atoms, (2, 2, 2))              # default: Al only
    with pytest.raises(InputError, match=r"params\.weight.*Cu"):
        bispectrum_descriptors(atoms, (2, 2, 2), {"radius": {"Al": 0.5, "Cu": 0.5}})
    with pytest.raises(InputError, match=r"params\.sigma.*Cu"):
        gaussian_descriptors(atoms, (2, 2, 2), {"radius": {"Al": 0.5, "Cu": 0.5}})
    with pytest.raises(InputError, match=r"params\.radius.*Cu"):
        gaussian_descriptors(atoms, (2, 2, 2))
    bad = atoms.copy()
    bad.positions[2, 1] = np.nan
    with pytest.raises(InputError, match=r"atoms\.positions.*\[2\]"):
        bispectrum_descriptors(bad, (2, 2, 2), {"radius": {"Al": 0.5, "Cu": 0.5},
                                                "weight": {"Al": 1, "Cu": 1}})
    al = distorted_fcc_al()
    with pytest.raises(InputError, match="grid_shape"):
        bispectrum_descriptors(al, (2, 0, 2))
    with pytest.raises(InputError, match="points"):
        bispectrum_descriptors(al, (2, 2, 2), points=np.array([8]))
    with pytest.raises(InputError, match=r"params\.twojmax"):
        bispectrum_descriptors(al, (2, 2, 2), {"twojmax": -1})
    with pytest.raises(InputError, match=r"params\.radius"):
        bispectrum_descriptors(al, (2, 2, 2), {"radius": {"Al": -0.5}})
    with pytest.raises(InputError, match=r"params\.rfac0"):
        bispectrum_descriptors(al, (2, 2, 2), {"rfac0": 1.5})
    with pytest.raises(InputError, match="atoms"):
        bispectrum_descriptors(np.zeros((3, 3)), (2, 2, 2))
