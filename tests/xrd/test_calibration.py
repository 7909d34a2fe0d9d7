"""Automatic calibration recovers a known (tilted) geometry from noisy synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.diffraction.xrd import auto_calibrate
from matterflow.diffraction.xrd.synthetic import calibrant_image, make_geometry


def _truth(ai):
    f = ai.getFit2D()
    return ai.dist * 1e3, (f["centerX"], f["centerY"])


@pytest.mark.parametrize("calibrant, energy, dist, centre, rot1, rot2, guess", [
    ("LaB6", 20.0, 150.0, (530.3, 495.7), 2.0, -1.5, None),
    ("CeO2", 30.0, 250.0, (470.8, 560.2), -1.2, 2.5, 230.0),
    ("Si", 17.0, 150.0, (512.0, 512.0), 5.0, -4.0, None),        # strong tilt
    ("CeO2", 30.0, 150.0, (-80.0, 520.0), 3.0, 1.0, None),       # beam off the detector
])
def test_recovers_distance_and_centre(calibrant, energy, dist, centre, rot1, rot2, guess):
    ai = make_geometry(distance_mm=dist, centre_px=centre, rot1_deg=rot1, rot2_deg=rot2,
                       pixel_size_um=100.0, shape=(1024, 1024), energy_kev=energy)
    img = calibrant_image(ai, calibrant, max_counts=1500, background=30, seed=11)
    cal = auto_calibrate(img, calibrant=calibrant, energy_kev=energy, pixel_size_um=100.0,
                         guess_distance_mm=guess)
    d_true, c_true = _truth(ai)
    assert abs(cal.distance_mm / d_true - 1) < 1e-3          # 0.1 %
    assert abs(cal.centre_px[0] - c_true[0]) < 0.5           # 0.5 pixel
    assert abs(cal.centre_px[1] - c_true[1]) < 0.5
    assert abs(cal.rot_deg[0] - rot1) < 0.1 and abs(cal.rot_deg[1] - rot2) < 0.1
    assert cal.rms_tth_deg < 0.02


def test_detector_with_gaps():
    """A Pilatus 1M (gaps masked by the detector definition), no distance guess."""
    ai = make_geometry(distance_mm=300.0, centre_px=(500.0, 520.0), rot1_deg=0.8, rot2_deg=0.5,
                       detector="Pilatus1M", energy_kev=15.0)
    img = calibrant_image(ai, "LaB6", seed=2)
    img[ai.detector.mask.astype(bool)] = -1
    cal = auto_calibrate(img, calibrant="LaB6", energy_kev=15.0, detector="Pilatus1M")
    d_true, c_true = _truth(ai)
    assert abs(cal.distance_mm / d_true - 1) < 1e-3
    assert np.hypot(cal.centre_px[0] - c_true[0], cal.centre_px[1] - c_true[1]) < 0.5
    assert "Detector: Pilatus1M" in cal.poni


def test_unknown_calibrant_lists_known():
    with pytest.raises(InputError, match=r"unknown calibrant 'LaB7'.*LaB6"):
        auto_calibrate(np.ones((64, 64)), calibrant="LaB7", energy_kev=20, pixel_size_um=100)


def test_missing_energy_and_pixel_size():
    with pytest.raises(InputError, match="energy"):
        auto_calibrate(np.ones((64, 64)), calibrant="LaB6", energy_kev=None, pixel_size_um=100)
    with pytest.raises(InputError, match="pixel size"):
        auto_calibrate(np.ones((64, 64)), calibrant="LaB6", energy_kev=20)


def test_mask_shape_mismatch():
    with pytest.raises(InputError, match=r"mask: shape \(10, 10\) differs"):
        auto_calibrate(np.ones((64, 64)), calibrant="LaB6", energy_kev=20, pixel_size_um=100,
                       mask=np.zeros((10, 10), bool))
