"""ptycho: forward-model invariants, gradients, reconstruction accuracy, bad input, resume."""

import math

import numpy as np
import pytest
import torch

from matterflow.core.errors import InputError
from matterflow.microscopy.optics import wavelength
from matterflow.microscopy.probe import fourier_shift, probe_wave, raster_positions
from matterflow.microscopy.ptycho import model
from matterflow.microscopy.ptycho.reconstruct import check_dataset, ncc, reconstruct
from matterflow.microscopy.ptycho.tasks import load_patterns
from matterflow.microscopy.ptycho.tasks import reconstruct as reconstruct_task

E = 200e3


def test_probe_far_field_is_the_aperture_disk():
    w, dx, alpha = 64, 0.1, 20.0
    p = probe_wave((w, w), (dx, dx), E, semiangle_mrad=alpha, defocus=80, cs=1e5)
    assert abs((p.abs() ** 2).sum().item() - 1) < 1e-5
    inten = model.far_field(p[None])[0].numpy()
    k = (np.arange(w) - w // 2) / (w * dx)
    disk = (np.hypot(k[:, None], k[None, :]) * wavelength(E) <= alpha * 1e-3)
    # uniform inside the aperture, zero outside (|exp(-iχ)| = 1)
    assert np.allclose(inten[disk], 1 / disk.sum(), rtol=1e-4) and inten[~disk].max() < 1e-9
    # centred in its window: the (circular) intensity-weighted centre is W // 2
    r = p.abs().numpy() ** 2
    for prof in (r.sum(1), r.sum(0)):
        c = np.angle((prof * np.exp(2j * np.pi * np.arange(w) / w)).sum()) * w / (2 * np.pi)
        assert abs(c % w - w // 2) < 1e-3


def test_fourier_shift_by_whole_pixels_is_a_roll():
    x = torch.randn(2, 16, 16, dtype=torch.complex128)
    y = fourier_shift(x, torch.tensor([[3.0, -2.0], [0.0, 5.0]], dtype=torch.float64))
    assert torch.allclose(y[0], torch.roll(x[0], (3, -2), (0, 1)), atol=1e-12)
    assert torch.allclose(y[1], torch.roll(x[1], (0, 5), (0, 1)), atol=1e-12)


def test_rotation_identity_and_quarter_turn_match_numpy():
    v = torch.rand(12, 12, 12, dtype=torch.float64)
    assert torch.allclose(model.rotate_volume(v, 0.0), v, atol=1e-12)
    r = model.rotate_volume(v, math.pi / 2).numpy()
    ref = np.rot90(v.numpy(), k=1, axes=(1, 0))  # (z, x) plane, about y
    alt = np.rot90(v.numpy(), k=1, axes=(0, 1))
    err = min(np.abs(r - ref).max(), np.abs(r - alt).max())
    assert err < 1e-9


def test_raster_jitter_is_seeded():
    a = raster_positions(3, 4, 1.5, jitter_a=0.1, seed=3)
    assert a.shape == (12, 2) and np.allclose(a, raster_positions(3, 4, 1.5, jitter_a=0.1, seed=3))
    assert np.abs(a - raster_positions(3, 4, 1.5)).max() < 0.6


@pytest.mark.parametrize("n_slices", [1, 3])
def test_gradient_matches_finite_differences(n_slices):
    torch.manual_seed(0)
    w, dx = 16, 0.25
    p = probe_wave((w, w), (dx, dx), E, semiangle_mrad=25, defocus=20, dtype=torch.float64)
    pos = torch.tensor([[2.0, 2.5], [3.1, 1.7]], dtype=torch.float64)
    prop = model.propagator(w, dx, 1.5, E, dtype=torch.float64) if n_slices > 1 else None
    meas = torch.rand(2, w, w, dtype=torch.float64) * 1e-2
    phase = (0.3 * torch.rand(n_slices, 24, 24, dtype=torch.float64)).requires_grad_(True)
    angle = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)

    def loss(ph, a):
        vol = model.rotate_volume(ph.repeat_interleave(2, 0)[:, :, :] if n_slices > 1
                                  else ph.expand(2, -1, -1), a)
        sl = model.volume_slices(vol, n_slices)
        t = torch.polar(torch.ones_like(sl), sl)
        m = model.far_field(model.exit_waves(p, t, pos, dx, prop))
        return ((torch.sqrt(m + 1e-12) - torch.sqrt(meas)) ** 2).sum()

    loss(phase, angle).backward()
    h = 1e-6
    for idx in [(0, 9, 11), (n_slices - 1, 12, 8)]:
        e = torch.zeros_like(phase)
        e[idx] = h
        fd = (loss(phase.detach() + e, angle) - loss(phase.detach() - e, angle)) / (2 * h)
        assert abs(fd.item() - phase.grad[idx].item()) < 1e-6 * max(1.0, abs(fd.item()))
    fd = (loss(phase.detach(), angle.detach() + h) - loss(phase.detach(), angle.detach() - h)) / (2 * h)
    assert abs(fd.item() - angle.grad.item()) < 1e-5 * max(1.0, abs(fd.item()))


def _small_sto(dose=1e6, scan=12, thickness=1):
    from matterflow.microscopy.optics import interaction_constant
    from matterflow.microscopy.ptycho.samples import band_limit, srtio3_slices

    v, dx, dz = srtio3_slices(2, 12, thickness)
    w = 32
    step = 2 * 3.905 / scan
    pos = raster_positions(scan, scan, step)
    p = probe_wave((w, w), (dx, dx), E, semiangle_mrad=25, defocus=60)
    inten = model.patterns(p, model.transmission(v, E, dx), torch.tensor(pos, dtype=torch.float32),
                           dx, model.propagator(w, dx, dz, E))
    counts = model.poisson_counts(inten, dose * step ** 2, seed=0)
    truth = interaction_constant(E) * band_limit(v.sum(0), dx).numpy()
    return counts, pos, dx, truth


def test_single_slice_srtio3_phase_correlates_with_projected_potential():
    counts, pos, dx, truth = _small_sto()
    r = reconstruct(counts, pos, sampling_a=dx, energy_ev=E, semiangle_mrad=25, defocus=60,
                    iterations=12, batch_size=48, object_shape=truth.shape)
    assert np.isfinite(r.phase).all()
    score = ncc(r.phase[0], truth)
    print("small SrTiO3 single-slice phase NCC:", round(score, 4))
    assert score > 0.9
    assert r.losses[-1] < r.losses[0]


def test_checkpoint_resume_equals_an_uninterrupted_run(tmp_path):
    counts, pos, dx, truth = _small_sto(scan=8)
    kw = dict(sampling_a=dx, energy_ev=E, semiangle_mrad=25, defocus=60, batch_size=16,
              object_shape=truth.shape, checkpoint_every=1)
    full = reconstruct(counts, pos, iterations=4, **kw)
    ck = tmp_path / "ck.pt"
    reconstruct(counts, pos, iterations=2, checkpoint=ck, **kw)      # "killed" after 2
    resumed = reconstruct(counts, pos, iterations=4, checkpoint=ck, **kw)
    assert resumed.resumed_from == 2
    assert np.allclose(resumed.losses, full.losses, rtol=1e-5)
    assert np.allclose(resumed.phase, full.phase, atol=1e-5)


def test_a_diverging_step_is_retried_smaller_and_reported():
    counts, pos, dx, truth = _small_sto(scan=8)
    r = reconstruct(counts, pos, sampling_a=dx, energy_ev=E, semiangle_mrad=25, defocus=60,
                    iterations=5, batch_size=64, lr_object=1.0, object_shape=truth.shape)
    assert r.retries and all(s < 1 for _, s in r.retries)
    assert np.isfinite(r.phase).all() and np.isfinite(r.losses).all()
    assert len(r.losses) == 5


def test_bad_input_is_named_before_any_iteration(tmp_path):
    good = np.ones((4, 8, 8), np.float32)
    pos = np.zeros((4, 2))
    with pytest.raises(InputError, match="3 scan positions"):
        check_dataset(good, pos[:3])
    with pytest.raises(InputError, match="square"):
        check_dataset(np.ones((4, 8, 6)), pos)
    bad = good.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        check_dataset(bad, pos, source="scan.npy")
    with pytest.raises(InputError, match="negative"):
        check_dataset(good - 2, pos)
    with pytest.raises(InputError, match=r"axes \(2, 2\).*\(2, 3\)"):
        check_dataset(np.ones((2, 2, 8, 8)), pos, scan_shape=(2, 3))
    np.save(tmp_path / "d.npy", good)
    with pytest.raises(InputError, match="energy_ev"):
        reconstruct_task(tmp_path / "d.npy", pos, params={"semiangle_mrad": 20, "sampling_a": 0.2})
    with pytest.raises(InputError, match="do not fill a 3×3 scan"):
        reconstruct_task(tmp_path / "d.npy", params={"energy_ev": 2e5, "semiangle_mrad": 20,
                                                      "sampling_a": 0.2, "scan_step_a": 0.5,
                                                      "scan_shape": (3, 3)})
    import h5py

    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["data/frames"] = good
    with pytest.raises(InputError, match=r"d.h5: dataset path 'data/counts' not in the file.*"
                                         "data/frames"):
        load_patterns(tmp_path / "d.h5", "data/counts")
    with pytest.raises(InputError, match="not found"):
        load_patterns(tmp_path / "absent.npy")


def test_hdf5_attributes_give_the_calibration(tmp_path):
    import h5py

    counts, pos, dx, truth = _small_sto(scan=8)
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        ds = f.create_dataset("entry/data", data=counts.reshape(8, 8, 32, 32))
        ds.attrs.update({"energy_ev": E, "semiangle_mrad": 25.0, "sampling_a": dx,
                         "scan_step_a": 2 * 3.905 / 8})
    r = reconstruct_task(tmp_path / "scan.h5", params={"dataset": "entry/data", "iterations": 2,
                                                       "defocus": 60})
    assert r.phase.shape[0] == 1 and np.isfinite(r.phase).all() and len(r.loss) == 2
