"""The pipeline's integration equals a direct pyFAI call with the same options (1e-6 rel.)."""

from __future__ import annotations

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.diffraction.xrd import Pipeline
from matterflow.diffraction.xrd._geometry import load_geometry


def rel_err(a, b):
    """Largest relative difference over finite, non-negligible reference values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b) & (np.abs(b) > 1e-9 * np.nanmax(np.abs(b)))
    assert ok.sum() > 0.5 * b.size
    return float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok])))


@pytest.mark.parametrize("unit, pol, err, method", [
    ("2th_deg", None, "poisson", ("bbox", "csr", "cython")),
    ("q_nm^-1", 0.95, "azimuthal", ("full", "csr", "cython")),
    ("2th_deg", 0.99, None, ("no", "histogram", "cython")),
    # these two go through matterflow's fused kernel (engine auto), the first one too
    ("q_nm^-1", 0.95, "poisson", ("full", "csr", "cython")),
    ("2th_deg", None, None, ("no", "csc", "cython")),
])
def test_1d_matches_direct_pyfai(series, poni_file, tmp_path, unit, pol, err, method):
    img = series.frames[2].astype(np.float32)
    img[50, 60:70] = 1e8            # hot pixels: masked by the threshold in this frame only
    img[200, 10] = np.nan           # a non-finite pixel: always ignored
    rng = np.random.default_rng(0)
    dark = rng.uniform(0, 3, img.shape).astype(np.float32)
    flat = rng.uniform(0.9, 1.1, img.shape).astype(np.float32)
    mask = np.zeros(img.shape, np.int8)
    mask[100:110, :] = 1
    for name, arr in (("dark", dark), ("flat", flat), ("mask", mask)):
        np.save(tmp_path / f"{name}.npy", arr)
    chain = [{"plugin": "dark_flat", "dark": str(tmp_path / "dark.npy"),
              "flat": str(tmp_path / "flat.npy")},
             {"plugin": "mask", "file": str(tmp_path / "mask.npy"), "high": 1e7},
             {"plugin": "integrate1d", "npt": 700, "unit": unit, "polarization_factor": pol,
              "error_model": err, "method": list(method)}]
    res = Pipeline(str(poni_file), chain).run(image=img)
    assert res.status == 0, res.reason
    ai = load_geometry(poni_file)  # a separate integrator: nothing shared with the pipeline
    ref = ai.integrate1d(img, 700, unit=unit, polarization_factor=pol, error_model=err,
                         method=method, mask=mask | (img > 1e7) | ~np.isfinite(img), dark=dark,
                         flat=flat, correctSolidAngle=True)
    assert rel_err(res.radial, ref.radial) < 1e-6
    assert rel_err(res.intensity, ref.intensity) < 1e-6
    if err is not None:
        assert rel_err(res.sigma, ref.sigma) < 1e-6


def test_sector_and_cake_match_pyfai(series, poni_file):
    img = series.frames[0]
    chain = [{"plugin": "integrate1d", "npt": 300},
             {"plugin": "sector", "npt": 300, "azimuth_range": [-60, 30]},
             {"plugin": "integrate2d", "npt": 200, "npt_azim": 90}]
    res = Pipeline(str(poni_file), chain).run(image=img)
    ai = load_geometry(poni_file)
    ref = ai.integrate1d(img, 300, unit="2th_deg", azimuth_range=(-60, 30), error_model="poisson")
    assert rel_err(res.sector.intensity, ref.intensity) < 1e-6
    cake = ai.integrate2d(img, 200, 90, unit="2th_deg")
    assert res.integrate2d.intensity.shape == (90, 200)
    assert rel_err(res.integrate2d.intensity, cake.intensity) < 1e-6


def test_bad_inputs_before_any_frame(poni_file, tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((10, 10)))
    p = Pipeline(str(poni_file), [{"plugin": "mask", "file": str(tmp_path / "m.npy")},
                                  {"plugin": "integrate1d"}])
    with pytest.raises(InputError, match=r"mask.file: .*m.npy has shape \(10, 10\); the frames have \(256, 256\)"):
        p.prepare((256, 256))
    with pytest.raises(InputError, match=r"plugins\[0\] \(integrate1d\)\.npt"):
        Pipeline(str(poni_file), [{"plugin": "integrate1d", "npt": 0}])
    with pytest.raises(InputError, match=r"unknown plugin 'integrate3d'; known: .*integrate1d"):
        Pipeline(str(poni_file), [{"plugin": "integrate3d"}])
    with pytest.raises(InputError, match="exactly one integrate1d"):
        Pipeline(str(poni_file), [{"plugin": "mask"}])
    with pytest.raises(InputError, match="cannot come after"):
        Pipeline(str(poni_file), [{"plugin": "integrate1d"}, {"plugin": "mask"}])
    bad = tmp_path / "bad.poni"
    bad.write_text("this is not a poni file\n")
    with pytest.raises(InputError, match=r"bad.poni.* does not parse as a PONI file"):
        Pipeline(str(bad), [{"plugin": "integrate1d"}])
    nowl = tmp_path / "nowl.poni"
    nowl.write_text("\n".join(line for line in poni_file.read_text().splitlines()
                              if not line.startswith("Wavelength")))
    with pytest.raises(InputError, match="has no Wavelength"):
        Pipeline(str(nowl), [{"plugin": "integrate1d"}])


def test_corrupt_frame_is_recorded_not_fatal(poni_file):
    p = Pipeline(str(poni_file), [{"plugin": "integrate1d", "npt": 100}])
    img = np.random.default_rng(0).poisson(50, (256, 256)).astype(np.float32)
    good = p.run(image=img, index=0)  # (a constant frame would be flagged suspect)
    assert good.status == 0
    bad = p.run(image=np.ones((256, 200), np.float32), index=1)
    assert bad.status == 1 and "shape" in bad.reason
    assert bad.intensity.shape == (100,) and np.isnan(bad.intensity).all()


def test_chi_profile_and_image_subtraction_match_pyfai(series, poni_file, tmp_path):
    img = series.frames[1].astype(np.float32)
    bg = np.full(img.shape, 4.0, np.float32)
    np.save(tmp_path / "bg.npy", bg)
    t0 = float(series.tth_a_deg[1][0])
    chain = [{"plugin": "subtract_image", "file": str(tmp_path / "bg.npy"), "scale": 0.5},
             {"plugin": "integrate1d", "npt": 300, "error_model": None},
             {"plugin": "chi_profile", "npt": 72, "radial_range": [t0 - 0.2, t0 + 0.2]}]
    res = Pipeline(str(poni_file), chain).run(image=img)
    assert res.status == 0, res.reason
    ai = load_geometry(poni_file)
    ref1 = ai.integrate1d(img - 2.0, 300, unit="2th_deg")
    assert rel_err(res.intensity, ref1.intensity) < 1e-6
    ref = ai.integrate_radial(img - 2.0, 72, 100, radial_range=(t0 - 0.2, t0 + 0.2),
                              radial_unit="2th_deg", unit="chi_deg")
    assert rel_err(res.chi_profile.chi, ref.radial) < 1e-6
    assert rel_err(res.chi_profile.intensity, ref.intensity) < 1e-6


def test_fused_kernel_equals_pyfai_engine_with_ranges(series, poni_file):
    """engine auto (fused kernel on pyFAI's matrix) vs engine pyfai, with radial and chi ranges."""
    img = series.frames[1]
    opts = {"plugin": "integrate1d", "npt": 400, "unit": "q_nm^-1", "radial_range": [5.0, 40.0],
            "azimuth_range": [-120.0, 45.0], "polarization_factor": 0.99}
    fast = Pipeline(str(poni_file), [opts]).run(image=img)
    slow = Pipeline(str(poni_file), [{**opts, "engine": "pyfai"}]).run(image=img)
    assert rel_err(fast.radial, slow.radial) < 1e-9
    assert rel_err(fast.intensity, slow.intensity) < 1e-6
    assert rel_err(fast.sigma, slow.sigma) < 1e-6


def test_fused_kernel_rejects_other_shapes_and_methods(poni_file):
    from matterflow.diffraction.xrd.fast_integrator import FastIntegrator1d

    ai = load_geometry(poni_file)
    shape = ai.detector.max_shape
    with pytest.raises(ValueError, match="azimuthal"):
        FastIntegrator1d(ai, shape, 100, {"method": ("bbox", "csr", "cython"),
                                          "error_model": "azimuthal", "unit": "2th_deg"})
    fi = FastIntegrator1d(ai, shape, 100, {"method": ("bbox", "csr", "cython"),
                                           "error_model": "poisson", "unit": "2th_deg"})
    with pytest.raises(ValueError, match="shape"):
        fi.integrate(np.zeros((shape[0] + 1, shape[1])))


def test_frame_thresholds_apply_to_the_values_they_were_set_on():
    from matterflow.diffraction.xrd.plugins import Frame

    img = np.array([[1.0, 50.0], [np.nan, 5.0]], np.float32)
    fr = Frame(img)
    fr.restrict(high=10.0)
    assert fr.mask_is_thresholds_only  # nothing built yet: the kernel applies the threshold
    fr.image = img - 45.0  # e.g. subtract_image after mask: 50 -> 5 stays masked
    assert fr.mask.tolist() == [[False, True], [True, False]]
    fr.mask[0, 0] = True  # a plugin adding a pixel; later thresholds still combine
    fr.restrict(low=-40.5)  # the image is now [[-44, 5], [nan, -40]]
    assert fr.mask.tolist() == [[True, True], [True, False]]


def test_plugin_mask_additions_reach_the_fused_kernel(series, poni_file):
    """A chain plugin that masks pixels through frame.mask changes the pattern as in pyFAI."""
    from matterflow.diffraction.xrd.plugins import Plugin, register_plugin

    @register_plugin
    class MaskColumns(Plugin):
        """Mask the first 40 columns (test)."""

        name = "test_mask_columns"
        stage = "image"

        def process(self, frame):
            frame.mask[:, :40] = True

    img = series.frames[0]
    res = Pipeline(str(poni_file), [{"plugin": "test_mask_columns"},
                                    {"plugin": "integrate1d", "npt": 300}]).run(image=img)
    ai = load_geometry(poni_file)
    m = np.zeros(img.shape, bool)
    m[:, :40] = True
    ref = ai.integrate1d(img, 300, unit="2th_deg", error_model="poisson", mask=m)
    assert rel_err(res.intensity, ref.intensity) < 1e-6
    assert rel_err(res.sigma, ref.sigma) < 1e-6


def test_integrator_cache_reused_keyed_and_repaired(series, poni_file, tmp_path, monkeypatch):
    """The cached matrix gives the same pattern; another mask is another file; a broken file
    is rebuilt; MATTERFLOW_CACHE_DIR=off writes nothing."""
    from matterflow.diffraction.xrd.fast_integrator import FastIntegrator1d

    monkeypatch.setenv("MATTERFLOW_CACHE_DIR", str(tmp_path / "c"))
    img = series.frames[3]
    opts = {"method": ("bbox", "csr", "cython"), "error_model": "poisson", "unit": "2th_deg"}
    ai = load_geometry(poni_file)
    built = FastIntegrator1d(ai, img.shape, 200, opts)
    assert built.cache_file is not None and built.cache_file.exists()
    loaded = FastIntegrator1d(load_geometry(poni_file), img.shape, 200, opts)
    assert loaded.cache_file == built.cache_file
    a, b = built.integrate(img), loaded.integrate(img)
    assert np.array_equal(a.intensity, b.intensity) and np.array_equal(a.sigma, b.sigma)
    ref = ai.integrate1d(img, 200, **opts)
    assert rel_err(b.intensity, ref.intensity) < 1e-6

    ai2 = load_geometry(poni_file)
    m = np.zeros(img.shape, np.int8)
    m[:20] = 1
    ai2.detector.mask = m
    other = FastIntegrator1d(ai2, img.shape, 200, opts)
    assert other.cache_file != built.cache_file
    ref2 = ai2.integrate1d(img, 200, **opts)
    assert rel_err(other.integrate(img).intensity, ref2.intensity) < 1e-6

    built.cache_file.write_bytes(b"not an npz")
    again = FastIntegrator1d(load_geometry(poni_file), img.shape, 200, opts)
    assert np.array_equal(again.integrate(img).intensity, a.intensity)

    monkeypatch.setenv("MATTERFLOW_CACHE_DIR", "off")
    assert FastIntegrator1d(ai, img.shape, 200, opts).cache_file is None
