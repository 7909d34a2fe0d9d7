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
