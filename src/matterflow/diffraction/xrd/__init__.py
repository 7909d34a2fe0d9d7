"""matterflow.diffraction.xrd: X-ray diffraction processing on pyFAI.

Input (HDF5/NeXus, Eiger masters, TIFF/CBF/EDF series, lazily), automatic
calibration, plugin chains (dark/flat, masks, 1D/2D/sector integration,
background, peak fitting, user plugins), parallel processing on the core's
Dask executor with batch-level resume, NeXus NXazint1d/NXazint2d output,
figures. See ``docs/xrd.md``.

Python API::

    from matterflow.diffraction import xrd
    cal = xrd.auto_calibrate(image, calibrant="LaB6", energy_kev=20, pixel_size_um=100)
    src = xrd.open_frames("scan_master.h5", first=0, stride=2)
    pipe = xrd.Pipeline(cal.poni, [{"plugin": "integrate1d", "npt": 1000, "unit": "2th_deg"}])
    res = pipe.run(image=src[0])   # res.radial, res.intensity, res.sigma
"""

from matterflow.diffraction.xrd._geometry import (
           get_calibrant,
           load_geometry,
           make_detector,
           poni_text,
)
from matterflow.diffraction.xrd._io import FrameSource, open_frames, read_image
from matterflow.diffraction.xrd.calibrate import Calibration, auto_calibrate
from matterflow.diffraction.xrd.fitting import PeakFit, fit_peaks
from matterflow.diffraction.xrd.pipeline import Pipeline
from matterflow.diffraction.xrd.plugins import Plugin, list_plugins, register_plugin
from matterflow.diffraction.xrd.processing import run_process

__all__ = ["auto_calibrate", "Calibration", "open_frames", "FrameSource", "read_image",
           "Pipeline", "Plugin", "list_plugins", "register_plugin", "fit_peaks", "PeakFit",
           "run_process", "get_calibrant", "load_geometry", "make_detector", "poni_text"]
