"""A model (or any file) stored as bytes in a results file: one field, one unit, one reader.

A task that returns a trained model declares the output with :func:`bytes_field`
and fills it with :func:`to_bytes_array`; the results file then holds a 1-D
``uint8`` dataset with ``units = "bytes"``. The task that takes the model back
reads it with :func:`from_bytes_array`, which accepts what a workflow can hand
over: that array (read back from HDF5), raw ``bytes``, or the path of a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.core.registry import quantity

__all__ = ["BYTES_UNITS", "bytes_field", "to_bytes_array", "from_bytes_array"]

BYTES_UNITS = "bytes"


def bytes_field(doc: str) -> Any:
    """A result field holding a file's bytes: ``(n_bytes,) uint8``, units ``bytes``."""
    return quantity(BYTES_UNITS, f"(n_bytes,) uint8: {doc}")


def to_bytes_array(data: bytes) -> np.ndarray:
    """``data`` as a writable 1-D ``uint8`` array (what :func:`bytes_field` outputs hold)."""
    return np.frombuffer(bytes(data), dtype=np.uint8).copy()


def from_bytes_array(value: Any, *, field: str = "model", accepted: str = "") -> bytes:
    """The bytes of ``value``: a 1-D ``uint8`` array, ``bytes``, or a file path.

    Raises :class:`InputError` naming ``field`` (and ``accepted``, a phrase
    listing what else the caller takes) for anything else.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise InputError(f"{field}: {path}: file not found")
        return path.read_bytes()
    arr = np.asarray(value)
    if arr.dtype == np.uint8 and arr.ndim == 1:
        return arr.tobytes()
    what = f"{arr.dtype} array of shape {arr.shape}" if arr.dtype != object else type(value).__name__
    also = f", {accepted}" if accepted else ""
    raise InputError(f"{field}: the (n_bytes,) uint8 array of a stored model{also} or a file path "
                     f"is needed; got {what}")
