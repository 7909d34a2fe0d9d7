"""FEI/Thermo TIA series files (.ser): the 2D data elements and their calibration.

Written from the publicly documented TIA series format (FEI's "Series file format"
description, as summarised by C. Boothroyd); all values little-endian:

- header: ByteOrder ``i2`` (0x4949), SeriesID ``i2`` (0x0197), SeriesVersion ``i2``
  (0x0210: 4-byte offsets, 0x0220: 8-byte offsets), DataTypeID ``i4`` (0x4120 1D spectra,
  0x4122 2D images), TagTypeID ``i4``, TotalNumberElements ``i4``, ValidNumberElements
  ``i4``, OffsetArrayOffset (``i4``/``i8``), NumberDimensions ``i4``, then per dimension:
  size ``i4``, calibration offset ``f8``, delta ``f8``, element ``i4``, description and
  units (``i4`` length + text);
- at OffsetArrayOffset: the data offsets, then the tag offsets (``i4``/``i8`` each);
- a 2D element: offset/delta ``f8``, element ``i4`` for x then y, DataType ``i2`` (1 u1,
  2 u2, 3 u4, 4 i1, 5 i2, 6 i4, 7 f4, 8 f8, 9 c8, 10 c16), ArraySizeX ``i4``, ArraySizeY
  ``i4``, then the values, x fastest. Calibration deltas are in metres (1/m in diffraction).

TIA stores the rows bottom-up (y pointing up); they are flipped here so that row 0 is the top
of the image as TIA shows it (ncempy, an independent reader, gives the same orientation).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["read_ser", "SER_DTYPES"]

SER_DTYPES = {1: "<u1", 2: "<u2", 3: "<u4", 4: "<i1", 5: "<i2", 6: "<i4", 7: "<f4", 8: "<f8",
              9: "<c8", 10: "<c16"}
_HEAD2D = struct.Struct("<ddiddihii")  # 50 bytes


def read_ser(f: BinaryIO, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``(data, header)`` of an open .ser file: data (ny, nx) for one element, else
    (n, ny, nx) over the valid elements (rows top-down); header values with the first element's calibration
    (``delta_x``, ``delta_y`` in m or 1/m). InputError naming the byte on bad files."""
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)

    def read(n: int, what: str, at: int | None = None) -> bytes:
        if at is not None:
            if not 0 <= at < size:
                raise InputError(f"{path}: SER {what} is said to start at byte {at}, outside the "
                                 f"file of {size} bytes")
            f.seek(at)
        pos = f.tell()
        b = f.read(n) if 0 <= n <= size - pos else b""
        if len(b) < n or n < 0:
            raise InputError(f"{path}: truncated SER file: {what} needs {n} bytes at byte {pos}, "
                             f"the file ends at byte {size}")
        return b

    order, sid, version = struct.unpack("<HHH", read(6, "the header"))
    if order != 0x4949 or sid != 0x0197:
        raise InputError(f"{path}: not a TIA .ser file (byte order 0x{order:04x}, series id "
                         f"0x{sid:04x}; expected 0x4949, 0x0197)")
    if version not in (0x0210, 0x0220):
        raise InputError(f"{path}: unknown SER version 0x{version:04x} (0x0210 and 0x0220 are read)")
    off = "<q" if version == 0x0220 else "<i"
    data_type, tag_type, total, valid = struct.unpack("<iiii", read(16, "the header"))
    array_offset = struct.unpack(off, read(struct.calcsize(off), "the offset array offset"))[0]
    (ndim,) = struct.unpack("<i", read(4, "the number of dimensions"))
    if data_type == 0x4120:
        raise InputError(f"{path}: not a micrograph: the SER file holds 1D spectra "
                         "(DataTypeID 0x4120); 2D images (0x4122) are read")
    if data_type != 0x4122:
        raise InputError(f"{path}: unknown SER DataTypeID 0x{data_type:x} at byte 6 (0x4122: images)")
    if not 0 < valid <= total or total > size or not 0 <= ndim <= 8:
        raise InputError(f"{path}: SER header with {valid} valid of {total} elements and "
                         f"{ndim} dimensions is not sensible")
    dims = []
    for k in range(ndim):
        n, c_off, c_delta, c_el, ld = struct.unpack("<iddii", read(28, f"dimension {k}"))
        desc = read(ld, f"dimension {k} description").decode("latin-1") if ld > 0 else ""
        (lu,) = struct.unpack("<i", read(4, f"dimension {k} units"))
        units = read(lu, f"dimension {k} units").decode("latin-1") if lu > 0 else ""
        dims.append({"size": n, "offset": c_off, "delta": c_delta, "element": c_el,
                     "description": desc, "units": units})
    width = struct.calcsize(off)
    offsets = np.frombuffer(read(total * width, "the data offset array", array_offset), off)
    frames, head = [], {}
    for i, o in enumerate(offsets[:valid]):
        vals = _HEAD2D.unpack(read(_HEAD2D.size, f"the header of element {i}", int(o)))
        ox, dx, ex, oy, dy, ey, code, nx, ny = vals
        if code not in SER_DTYPES:
            raise InputError(f"{path}: unknown SER data type code {code} in element {i} at byte "
                             f"{int(o) + 40} (accepted: {sorted(SER_DTYPES)})")
        if nx <= 0 or ny <= 0:
            raise InputError(f"{path}: SER element {i} at byte {int(o)} has size {nx} × {ny}")
        dt = np.dtype(SER_DTYPES[code])
        arr = np.frombuffer(read(nx * ny * dt.itemsize, f"the data of element {i}"), dt)
        frames.append(arr.reshape(ny, nx)[::-1].astype(dt.newbyteorder("=")))
        if i == 0:
            head = {"offset_x": ox, "delta_x": dx, "element_x": ex, "offset_y": oy,
                    "delta_y": dy, "element_y": ey, "data_type": code}
        elif frames[-1].shape != frames[0].shape or frames[-1].dtype != frames[0].dtype:
            raise InputError(f"{path}: SER element {i} is {frames[-1].shape} {frames[-1].dtype}; "
                             f"element 0 is {frames[0].shape} {frames[0].dtype}")
    head.update(version=f"0x{version:04x}", tag_type=f"0x{tag_type:04x}", total_elements=total,
                valid_elements=valid, dimensions=dims)
    data = frames[0] if len(frames) == 1 else np.stack(frames)
    return data, head
