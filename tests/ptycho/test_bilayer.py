"""Multislice ptychography separates two atom layers closer than the depth of field.

Two Pt sheets with different in-plane lattices (4 × 4 and 5 × 5 per 15.36 Å cell), 12 Å
apart along the beam, probe 30 mrad at 200 keV (depth of field λ/α² = 27.9 Å): each
layer's pattern must peak in a reconstructed slice on its own side of the sample, and in
that slice it must dominate the other layer's pattern. The layers are then swapped: the
reconstruction must follow the truth, not favour one lattice for the entrance side.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matterflow.microscopy.optics import interaction_constant, wavelength
from matterflow.microscopy.probe import probe_wave, raster_positions
from matterflow.microscopy.ptycho import model
from matterflow.microscopy.ptycho.reconstruct import reconstruct
from matterflow.microscopy.ptycho.samples import band_limit, bilayer_slices, layer_ncc_profile

E, ALPHA, GAP, W, SCAN, SLICES = 200e3, 30.0, 12.0, 40, 16, 8


@pytest.mark.parametrize("periods", [(4, 5), (5, 4)])
def test_two_layers_within_the_depth_of_field_go_to_different_slices(periods):
    torch.manual_seed(0)
    assert GAP < wavelength(E) / (ALPHA * 1e-3) ** 2 / 2  # well under the depth of field
    v, dx, dz, idx, lay = bilayer_slices(gap_a=GAP, periods=periods)
    step = v.shape[-1] * dx / SCAN
    pos = raster_positions(SCAN, SCAN, step)
    probe = probe_wave((W, W), (dx, dx), E, semiangle_mrad=ALPHA, defocus=40.0)
    inten = model.patterns(probe, model.transmission(v, E, dx),
                           torch.tensor(pos, dtype=torch.float32), dx,
                           model.propagator(W, dx, dz, E))
    counts = model.poisson_counts(inten, model.dose_to_electrons(1e6, step), seed=1)
    thick = v.shape[0] * dz
    r = reconstruct(np.asarray(counts), pos, sampling_a=dx, energy_ev=E, semiangle_mrad=ALPHA,
                    defocus=40.0, n_slices=SLICES, slice_thickness_a=thick / SLICES,
                    iterations=30, batch_size=32, lr_object=0.05, retrieve_probe=False,
                    object_shape=tuple(v.shape[-2:]))
    truth = band_limit(interaction_constant(E) * lay, dx).numpy()
    prof = layer_ncc_profile(r.phase, truth)  # (slices, 2)
    z = (np.arange(SLICES) + 0.5) * thick / SLICES
    z_true = (np.array(idx) + 0.5) * dz
    up, low = prof.argmax(0)
    # each layer peaks within one reconstructed slice of its true depth ...
    assert abs(z[up] - z_true[0]) <= thick / SLICES + 1e-6, (z[up], prof[:, 0])
    assert abs(z[low] - z_true[1]) <= thick / SLICES + 1e-6, (z[low], prof[:, 1])
    # ... and dominates the other layer there
    assert prof[up, 0] > 0.55 and prof[up, 0] - prof[up, 1] > 0.3, prof
    assert prof[low, 1] > 0.55 and prof[low, 1] - prof[low, 0] > 0.3, prof
