"""Fast checks of the sem domain: generator, models (loss falls, beats bicubic), I/O errors."""

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.microscopy.sem.models import (
    TrainConfig,
    bicubic,
    lanczos,
    model_from_bytes,
    model_to_bytes,
    predict_tiled,
    psnr,
    train,
)
from matterflow.microscopy.sem.planning import choose_tiles, recall, stage_path
from matterflow.microscopy.sem.synthetic import microstructure, synthetic_set


def test_events_have_masks_and_same_seed_same_structure():
    a = microstructure("grains", (128, 128), seed=3, event_density_per_mpx=300)
    b = microstructure("grains", (128, 128), seed=3, event_density_per_mpx=300)
    assert len(a.events) > 0 and np.array_equal(a.labels, b.labels)
    assert set(np.unique(a.labels)) <= set(range(len(a.events) + 1))


def test_lanczos_and_bicubic_keep_constants():
    c = np.full((8, 8), 0.7, np.float32)
    assert np.allclose(bicubic(c), 0.7, atol=1e-5) and np.allclose(lanczos(c), 0.7, atol=1e-5)


@pytest.mark.slow
def test_short_training_loss_falls_and_beats_bicubic():
    tr = synthetic_set(["dual_phase", "grains"], 3, (256, 256), seed=0)
    te = synthetic_set(["dual_phase"], 1, (256, 256), seed=90000)
    m, info = train(tr.fast, tr.clean, tr.labels, cfg=TrainConfig(steps=300))
    h = info["loss_history"]
    assert np.mean(h[-20:]) < 0.8 * np.mean(h[:20])
    sr, _ = predict_tiled(m, te.fast[0], tile_lr=20, halo_lr=4)
    assert psnr(sr, te.clean[0]) > psnr(bicubic(te.fast[0]), te.clean[0])


def test_checkpoint_round_trip_and_bad_bytes():
    tr = synthetic_set(["grains"], 1, (64, 64), seed=1)
    m, _ = train(tr.fast, tr.clean, tr.labels, cfg=TrainConfig(steps=2, channels=4, patch_lr=8))
    m2, meta, _, _ = model_from_bytes(model_to_bytes(m), source="x.pt")
    assert meta["settings"]["channels"] == 4
    with pytest.raises(InputError, match="bad.pt"):
        model_from_bytes(b"not a checkpoint", source="bad.pt")


def test_planner_recall_and_path():
    labels = np.zeros((64, 64), int)
    labels[5:8, 40:44] = 1
    scores = np.zeros((4, 4))
    scores[0, 2] = 0.9
    tiles = choose_tiles(scores, area_fraction=0.1, threshold=0.5)
    assert recall(labels, tiles, 16) == (1, 1)
    pts = np.array([[0, 0], [0, 3], [0, 1], [0, 2]])
    order = stage_path(pts)
    assert np.hypot(*np.diff(pts[order], axis=0).T).sum() == 3


def test_read_image_errors_name_file(tmp_path):
    from matterflow.microscopy.sem.io import read_image

    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="corrupt.tif"):
        read_image(bad)
    good = tmp_path / "scan.npy"
    np.save(good, np.ones((8, 8)))
    with pytest.raises(InputError, match="scan.npy.*--pixel-size"):
        read_image(good, need_pixel_size=True)


def test_tiff_pixel_size_from_fei_tag(tmp_path):
    import tifffile

    from matterflow.microscopy.sem.io import read_image

    p = tmp_path / "fei.tif"
    tifffile.imwrite(p, np.ones((8, 8), np.uint8),
                     extratags=[(34682, "s", 0, "[Scan]\nPixelWidth=2.5e-09\n", True)])
    _, size = read_image(p)
    assert size == pytest.approx(2.5)
