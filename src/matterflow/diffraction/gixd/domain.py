"""Declaration of the gixd domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="gixd",
    summary="GIXD simulation and Bragg-feature detection with a Faster R-CNN trained in-package.",
    tasks="matterflow.diffraction.gixd.tasks:TASKS",
    cli="matterflow.diffraction.gixd.cli:app",
    demos=("gixd.yaml",),
    libraries=("torch", "torchvision", "pyFAI", "fabio", "hdf5plugin"),
    file_suffixes=(".poni", ".pt", ".h5", ".cbf", ".edf", ".tif", ".tiff", ".nxs"),
    docs="gixd.md",
    headline="gixd.detect:n, gixd.evaluate:ap",
)
