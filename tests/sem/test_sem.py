"""Fast checks of the sem domain: generator, models, planner, series tasks."""

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.microscopy.sem import planning as pl
from matterflow.microscopy.sem.models import (
    TrainConfig,
    align_reference,
    bicubic,
    lanczos,
    model_from_bytes,
    model_to_bytes,
    predict_tiled,
    psnr,
    train,
)
from matterflow.microscopy.sem.synthetic import microstructure, synthetic_set
from matterflow.microscopy.sem.tasks import plan, register, track


def test_events_have_masks_and_same_seed_same_structure():
    a = microstructure("grains", (128, 128), seed=3, event_density_per_mpx=300)
    b = microstructure("grains", (128, 128), seed=3, event_density_per_mpx=300)
    c = microstructure("grains", (128, 128), seed=4, event_density_per_mpx=300)
    assert len(a.events) > 0 and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.material, c.material)
    assert set(np.unique(a.labels)) <= set(range(len(a.events) + 1))


def test_fast_scan_noise_follows_the_dose():
    # Poisson counts: the relative noise of a flat region is 1/sqrt(electrons per pixel)
    from matterflow.microscopy.sem.synthetic import ELECTRONS_PER_PA_US, se_image

    flat = np.zeros((256, 256))
    img = se_image(flat, flat, scale=4, dwell_us=0.5, current_pa=400.0, se_yield=0.15,
                   rng=np.random.default_rng(0))
    mean_e = 0.15 * 0.5 * 400 * ELECTRONS_PER_PA_US * 0.35  # signal of a flat region: 0.35
    assert img.shape == (64, 64)
    assert img.std() / img.mean() == pytest.approx(1 / np.sqrt(mean_e), rel=0.05)


def test_lanczos_and_bicubic_keep_constants():
    c = np.full((8, 8), 0.7, np.float32)
    assert np.allclose(bicubic(c), 0.7, atol=1e-5) and np.allclose(lanczos(c), 0.7, atol=1e-5)


def test_align_reference_recovers_a_known_shift():
    rng = np.random.default_rng(0)
    from scipy import ndimage

    ref = ndimage.gaussian_filter(rng.standard_normal((128, 128)), 3).astype(np.float32)
    moved = np.roll(ref, (8, -4), axis=(0, 1))  # 2 and -1 low-resolution pixels
    lr = moved.reshape(32, 4, 32, 4).mean(axis=(1, 3))
    aligned = align_reference(lr, ref, 4)
    inner = np.s_[16:-16, 16:-16]
    assert np.abs(aligned[inner] - moved[inner]).max() < 0.05 * np.ptp(ref)


def test_checkpoint_round_trip_and_bad_bytes():
    tr = synthetic_set(["grains"], 1, (64, 64), seed=1)
    m, _ = train(tr.fast, tr.clean, tr.labels, cfg=TrainConfig(steps=2, channels=4, patch_lr=8))
    m2, meta, _, _ = model_from_bytes(model_to_bytes(m), source="x.pt")
    assert meta["settings"]["channels"] == 4
    a, _ = predict_tiled(m, tr.fast[0])
    b, _ = predict_tiled(m2, tr.fast[0], tile_lr=20, halo_lr=8)  # tiles agree with one pass
    assert np.allclose(a, b, atol=1e-5)
    with pytest.raises(InputError, match="bad.pt"):
        model_from_bytes(b"not a checkpoint", source="bad.pt")


def test_training_resumes_where_it_stopped():
    tr = synthetic_set(["grains"], 1, (64, 64), seed=1)
    cfg = TrainConfig(steps=6, channels=4, patch_lr=8, batch_size=2)
    saved = {}

    def ckpt(m, o, step, h):
        saved.update(bytes=model_to_bytes(m, optimizer=o.state_dict(), step=step, history=h))
    train(tr.fast, tr.clean, tr.labels, cfg=TrainConfig(**{**cfg.__dict__, "time_limit_s": 1e-9}),
          checkpoint=ckpt, checkpoint_every=1)  # "killed" after its first step
    model, meta, opt, hist = model_from_bytes(saved["bytes"])
    assert meta["step"] == 1 and len(hist) == 1
    _, info = train(tr.fast, tr.clean, tr.labels, cfg=cfg, model=model, optimizer_state=opt,
                    start_step=meta["step"], history=hist)
    assert info["steps_done"] == 6 and len(info["loss_history"]) == 6


def test_stage_path_is_the_shortest_tour_on_a_line():
    pts = np.array([[0, 0], [0, 3], [0, 1], [0, 2]])
    order = pl.stage_path(pts)
    assert np.hypot(*np.diff(pts[order], axis=0).T).sum() == 3


def test_acquisition_time_matches_hand_count():
    t = pl.acquisition_time((256, 256), scale=4, n_tiles=0, tile_px=16, path_px=0.0,
                            pixel_size_nm=10, fast_dwell_us=0.5, full_dwell_us=2.0)
    full = (256 * 256 * 2.0 + 256 * 5.0) * 1e-6
    fast = (64 * 64 * 0.5 + 64 * 5.0) * 1e-6
    assert t["full_s"] == pytest.approx(full) and t["speedup"] == pytest.approx(full / fast)


def test_plan_with_a_perfect_detector_finds_every_event_in_budget():
    ms = [microstructure("dual_phase", (256, 256), seed=s, event_density_per_mpx=80)
          for s in range(3)]
    labels = np.stack([m.labels for m in ms])
    prob = (labels > 0).reshape(3, 64, 4, 64, 4).any(axis=(2, 4)).astype(np.float32)
    sr = np.zeros((3, 256, 256), np.float32)
    res = plan(prob, np.zeros_like(sr), sr, sr + 1, labels, params={"area_fraction": 0.2})
    assert res.planted.sum() == sum(len(m.events) for m in ms) > 0
    assert res.recall == 1.0
    assert (res.area_fraction <= 0.2).all() and (res.speedup > 1).all()
    # merged: rescanned tiles hold the full-resolution scan (ones), the rest the SR (zeros)
    assert res.merged.sum() == res.n_tiles.sum() * 16 * 16


def test_baseline_planners_have_the_tile_grid():
    fast = np.random.default_rng(0).uniform(size=(64, 64))
    assert pl.threshold_scores(fast, scale=4, tile_px=16).shape == (16, 16)
    assert pl.random_scores((64, 64), scale=4, tile_px=32).shape == (8, 8)


def test_register_and_track_a_moving_feature():
    from scipy import ndimage

    bg = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal((64, 64)), 2, mode="wrap")
    bg = 0.2 * bg / bg.std()
    yy, xx = np.mgrid[0:64, 0:64]
    frames = np.stack([np.roll(bg, (2 * t, -3 * t), axis=(0, 1))
                       + np.exp(-((yy - 20 - 2 * t) ** 2 + (xx - 30 + 3 * t) ** 2) / 8.0)
                       for t in range(3)]).astype(np.float32)
    shifts = register(frames).shifts_px
    assert np.allclose(shifts[2], [4, -6], atol=0.2)
    tr = track(np.clip(frames, 0, 1), shifts, params={"threshold": 0.6})
    assert tr.positions_px.shape == (1, 3, 2)
    assert np.allclose(tr.positions_px[0, 2], [24, 24], atol=0.5)


@pytest.mark.slow
def test_short_training_loss_falls_and_beats_bicubic():
    tr = synthetic_set(["dual_phase", "grains"], 3, (256, 256), seed=0)
    te = synthetic_set(["dual_phase"], 1, (256, 256), seed=90000)
    m, info = train(tr.fast, tr.clean, tr.labels, cfg=TrainConfig(steps=300))
    h = info["loss_history"]
    assert np.mean(h[-20:]) < 0.8 * np.mean(h[:20])
    sr, _ = predict_tiled(m, te.fast[0], tile_lr=20, halo_lr=4)
    assert psnr(sr, te.clean[0]) > psnr(bicubic(te.fast[0]), te.clean[0]) + 0.5
