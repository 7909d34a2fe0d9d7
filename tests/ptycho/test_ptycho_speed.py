"""ptycho fast engine: hand-derived gradients against autograd, engines agree, memory, stability."""

import numpy as np
import pytest
import torch

from matterflow.microscopy.probe import probe_wave
from matterflow.microscopy.ptycho import analytic, model
from matterflow.microscopy.ptycho.reconstruct import _autograd_loss

E = 200e3


@pytest.mark.parametrize("n_slices", [1, 3])
@pytest.mark.parametrize("loss", ["amplitude", "poisson"])
@pytest.mark.parametrize("jitter", [False, True])
def test_analytic_gradients_equal_autograd(n_slices, loss, jitter):
    torch.manual_seed(1)
    w, dx, shape = 16, 0.25, (20, 22)
    dt = torch.float64
    probe = probe_wave((w, w), (dx, dx), E, semiangle_mrad=25, defocus=20, dtype=dt) * 7
    # corners wrap around the periodic object; whole pixels or sub-pixel positions
    pos = np.array([[2.03, 2.61], [3.0, 1.77], [6.52, 5.25], [1.1, 4.0]])
    if not jitter:
        pos = np.round(pos / dx) * dx
    prop = model.propagator(w, dx, 1.5, E, dtype=dt) if n_slices > 1 else None
    counts = torch.poisson(torch.rand(len(pos), w, w, dtype=dt) * 3)
    meas = torch.sqrt(counts) if loss == "amplitude" else counts
    phase = (0.3 * torch.rand(n_slices, *shape, dtype=dt)).requires_grad_(True)
    absorb = (0.05 * torch.rand(n_slices, *shape, dtype=dt)).requires_grad_(True)
    pr = probe.real.clone().requires_grad_(True)
    pi = probe.imag.clone().requires_grad_(True)
    trans = torch.polar(torch.exp(-absorb), phase)
    m = model.far_field(model.exit_waves(torch.complex(pr, pi), trans,
                                         torch.tensor(pos, dtype=dt), dx, prop))
    ref = _autograd_loss(m, meas, loss)
    ref.backward()

    corner, frac = analytic.split_positions(pos, dx, w)
    batch = analytic.Batch(corner, frac, shape, w, dt)
    assert batch.shifted == jitter
    with torch.no_grad():
        val, g_obj, g_p = analytic.loss_and_gradients(torch.complex(pr, pi), trans.detach(), batch,
                                                      analytic.unshift(meas), prop, loss=loss)
        g_phi, g_mu = analytic.transmission_grads(trans.detach(), g_obj)
    assert abs(val - ref.item()) < 1e-9 * abs(ref.item())
    for mine, theirs in ((g_phi, phase.grad), (g_mu, absorb.grad), (g_p.real, pr.grad),
                         (g_p.imag, pi.grad)):
        scale = theirs.abs().max().item()
        assert scale > 0 and (mine - theirs).abs().max().item() < 1e-9 * scale
