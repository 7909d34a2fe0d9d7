"""Shared test settings: headless plotting, quiet Dask, small thread pools."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DDE_BACKEND", "pytorch")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "MATTERFLOW_CACHE_DIR" not in os.environ:  # caches of a test run stay out of ~/.cache
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="matterflow-test-cache-")
    os.environ["MATTERFLOW_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


import pytest  # noqa: E402

# ---------------------------------------------------------------- xrd data (tests/xrd, tests/reliability)

@pytest.fixture(scope="session")
def geometry():
    """A tilted 256x256 detector, 150 µm pixels, 25 keV (generated, nothing downloaded)."""
    from matterflow.diffraction.xrd.synthetic import make_geometry

    return make_geometry(distance_mm=60.0, centre_px=(131.2, 123.9), rot1_deg=1.0,
                         rot2_deg=-0.7, pixel_size_um=150.0, shape=(256, 256), energy_kev=25.0)


@pytest.fixture(scope="session")
def series(geometry):
    """Eight frames of a seeded heating series on :func:`geometry`."""
    from matterflow.diffraction.xrd.synthetic import heating_series

    return heating_series(geometry, 8, seed=3)


@pytest.fixture(scope="session")
def poni_file(geometry, tmp_path_factory):
    """:func:`geometry` written as a PONI file."""
    from matterflow.diffraction.xrd._geometry import poni_text

    p = tmp_path_factory.mktemp("geo") / "geometry.poni"
    p.write_text(poni_text(geometry))
    return p
