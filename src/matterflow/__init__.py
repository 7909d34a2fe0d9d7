"""matterflow: data-driven materials science on one small core.

The core (:mod:`matterflow.core`) stores results in HDF5 with units and
provenance, runs YAML workflows on Dask and writes HTML reports; each domain
(``electrons``, ``dft1d``, ``calphad``, ``basis``, ``diffraction``, ...) adds
tasks to it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("matterflow")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
