"""Shared synthetic data for the xrd tests (generated, seeded; nothing downloaded)."""

from __future__ import annotations

import pytest

from matterflow.diffraction.xrd.synthetic import heating_series, make_geometry


@pytest.fixture(scope="session")
def geometry():
    """A tilted 256x256 detector, 150 µm pixels, 25 keV."""
    return make_geometry(distance_mm=60.0, centre_px=(131.2, 123.9), rot1_deg=1.0,
                         rot2_deg=-0.7, pixel_size_um=150.0, shape=(256, 256), energy_kev=25.0)


@pytest.fixture(scope="session")
def series(geometry):
    return heating_series(geometry, 8, seed=3)


@pytest.fixture(scope="session")
def poni_file(geometry, tmp_path_factory):
    from matterflow.diffraction.xrd._geometry import poni_text

    p = tmp_path_factory.mktemp("geo") / "geometry.poni"
    p.write_text(poni_text(geometry))
    return p
