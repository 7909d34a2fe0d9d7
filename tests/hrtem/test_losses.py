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


def test_stagewise_search_judges_the_optimum_by_the_refinement_loss():
    """search_loss="power" for the Sobol/BO stage, refine_loss="ncc" after: the reported
    optimum is a stage-2 point and its loss is 1 − NCC recomputed there."""
    from matterflow.microscopy.hrtem import matching
    from matterflow.microscopy.hrtem.tasks import _STAGES, MatchParams, match_image, simulate

    sim = simulate(params={"defocus": 80, "cs_um": -15, "thickness_cells": 4, "seed": 3,
                           "size": 160})
    p = MatchParams(method="bo", budget=16, n_init=6, max_cells=6, focal_spread=30.0,
                    defocus_bounds=(60.0, 100.0),
                    cs_bounds_um=(-25.0, -5.0), search_loss="power", refine_loss="ncc")
    res, tr, waves = match_image(sim.image, sim.pixel_size, p)
    i = int(np.flatnonzero(res.losses == res.best_loss)[0])
    assert _STAGES[res.stage[i]] in ("hessian", "valley", "refine")
    obj = matching.Objective(waves, (3.905 / waves.shape[-2], 3.905 / waves.shape[-1]),
                             res.target, energy_ev=3e5, focal_spread=30.0)
    loss, t = matching.evaluate_point(obj, res.best_params[:2])
    assert loss == pytest.approx(res.best_loss, rel=1e-5) and t == res.best_params[2]
    # the stage-1 losses are power-spectrum losses, not NCC ones
    j = int(np.flatnonzero(res.stage == _STAGES.index("sobol"))[0])
    assert abs(matching.evaluate_point(obj, res.evaluated[j, :2])[0] - res.losses[j]) > 1e-4
