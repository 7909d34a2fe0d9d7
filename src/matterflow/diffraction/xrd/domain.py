"""Declaration of the xrd domain (see :mod:`matterflow.core.domain`)."""

from matterflow.core.domain import Domain

DOMAIN = Domain(
    name="xrd",
    summary="X-ray diffraction processing on pyFAI: calibrate, process, show.",
    tasks="matterflow.diffraction.xrd.tasks:TASKS",
    cli="matterflow.diffraction.xrd.cli:app",
    demos=("xrd.yaml",),
    libraries=("pyFAI", "fabio", "hdf5plugin", "numba"),
    file_suffixes=(".poni", ".cbf", ".edf", ".tif", ".tiff", ".xy", ".nx5", ".nxs", ".img"),
    docs="xrd.md",
    headline="xrd.reduce:intensity, xrd.calibrate:rms_tth_deg",
)
