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

import importlib
from typing import Any

# names -> defining module; imported on first use, so a Dask worker that only
# processes frames does not pay for calibration's imports (scipy.signal, ...)
_API = {
    "auto_calibrate": "calibrate", "Calibration": "calibrate",
    "open_frames": "_io", "FrameSource": "_io", "read_image": "_io",
    "Pipeline": "pipeline", "Plugin": "plugins", "list_plugins": "plugins",
    "register_plugin": "plugins", "fit_peaks": "fitting", "PeakFit": "fitting",
    "run_process": "processing", "get_calibrant": "_geometry", "load_geometry": "_geometry",
    "make_detector": "_geometry", "poni_text": "_geometry",
}
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
