"""Diffraction patterns of the ptycho forward model against abTEM (GPL, test reference only)."""

import numpy as np
import pytest
import torch

from matterflow.microscopy.potentials import slice_potentials
from matterflow.microscopy.probe import probe_wave
from matterflow.microscopy.ptycho.model import exit_waves, far_field, propagator, transmission

abtem = pytest.importorskip("abtem")


def test_cbed_patterns_match_abtem_on_srtio3():
    from ase import Atoms

    abtem.config.set({"precision": "float64"})
    a = 3.905
    cell = Atoms("SrTiO3", scaled_positions=[(0, 0, 0), (.5, .5, .5), (.5, .5, 0), (.5, 0, .5),
                                             (0, .5, .5)], cell=(a, a, a), pbc=True)
    atoms = cell * (2, 2, 2)
    energy, g, dz, length = 200e3, 64, a / 2, 2 * a
    dx = length / g
    pot = abtem.Potential(atoms, gpts=(g, g), slice_thickness=dz, parametrization="lobato",
                          projection="infinite")
    v_ab = pot.build().compute().array
    pos = np.array([[1.0, 2.0], [3.3, 4.1]])
    probe = abtem.Probe(energy=energy, semiangle_cutoff=20, defocus=30, Cs=1e4, gpts=(g, g),
                        extent=(length, length), soft=False)
    ref = probe.multislice(pot, scan=abtem.CustomScan(pos)).diffraction_patterns(
        max_angle=None, block_direct=False, fftshift=True).compute().array
    p = probe_wave((g, g), (dx, dx), energy, semiangle_mrad=20, defocus=30, cs=1e4,
                   dtype=torch.float64)
    prop = propagator(g, dx, dz, energy, dtype=torch.float64)

    def ours(v):
        t = transmission(torch.as_tensor(v), energy, dx)
        return far_field(exit_waves(p, t, torch.tensor(pos), dx, prop)).numpy()

    rel = np.linalg.norm(ours(v_ab) - ref) / np.linalg.norm(ref)
    # our own Lobato potentials (atoms in the slice of their centre, as abTEM "infinite")
    sl = np.minimum((atoms.positions[:, 2] / dz + 1e-6).astype(int), 3)
    v_ours = slice_potentials(atoms.positions[:, :2], list(atoms.get_chemical_symbols()),
                              (length, length), (g, g), sl, 4, dtype=torch.float64)
    rel_own = np.linalg.norm(ours(v_ours) - ref) / np.linalg.norm(ref)
    print(f"ptycho vs abTEM 1.0.11: CBED relative difference {rel:.2e} (abTEM potential), "
          f"{rel_own:.2e} (own Lobato potential)")
    assert rel < 1e-3
    assert rel_own < 1e-3
