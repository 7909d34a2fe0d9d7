"""hrtem losses: SSIM and the radially averaged power spectrum are minimised at the truth."""

import numpy as np
import pytest
import torch

from matterflow.microscopy.hrtem.losses import ncc_loss, power_spectrum_loss, ssim_loss
from matterflow.microscopy.hrtem.model import (
    exit_waves,
    images,
    lattice_average,
    register_lattice,
    render,
)
from matterflow.microscopy.structures import builtin, slices


@pytest.fixture(scope="module")
def case():
    """A noise-free SrTiO3 [001] image (80 Å, Cs −15 µm, 6 cells, σ 30 Å) drawn at 0.1 Å,
    rotated 1.5° and shifted, reduced to its lattice average on the cell grid."""
    cell = slices(builtin("SrTiO3"))
    w, px = exit_waves(cell, 10)
    ci = images(w[5], px, defocus=80.0, cs=-15e4, focal_spread=30.0).numpy()
    img = render(ci, cell.cell_xy, (256, 256), 0.1, rotation_deg=1.5, shift=(0.7, 1.9))
    rot, sc = register_lattice(img, 0.1, cell.cell_xy)
    tgt = lattice_average(img, 0.1, cell.cell_xy, tuple(ci.shape), rotation_deg=rot, scale=sc)
    return w, px, torch.tensor(tgt, dtype=torch.float32)


@pytest.mark.parametrize("loss", [ssim_loss, power_spectrum_loss, ncc_loss])
def test_loss_is_minimised_at_the_true_parameters(case, loss):
    w, px, tgt = case

    def f(defocus=80.0, cs=-15.0, t=6):
        return float(loss(images(w[t - 1], px, defocus=defocus, cs=cs * 1e4,
                                 focal_spread=30.0), tgt))

    defocus = np.arange(40.0, 121.0, 5.0)
    cs = np.arange(-25.0, -4.0, 1.0)
    assert defocus[np.argmin([f(defocus=d) for d in defocus])] == 80
    assert cs[np.argmin([f(cs=c) for c in cs])] == -15
    assert np.argmin([f(t=t) for t in range(1, 11)]) + 1 == 6
