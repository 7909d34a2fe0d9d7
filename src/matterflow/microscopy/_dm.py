"""Gatan DigitalMicrograph DM3/DM4 files: the tag tree and the image it holds.

Written from the publicly documented tag-group format (C. Boothroyd's and B. Heymann's
descriptions of DM3/DM4, Gatan's DigitalMicrograph scripting manual); no other reader's code
was used. Layout (header and tag structure big-endian, tag *values* in the byte order of the
header's flag):

- header: version ``>i4`` (3 or 4), root length (``>i4`` in DM3, ``>u8`` in DM4), byte order
  ``>i4`` (1: little-endian values, 0: big-endian);
- a tag group: ``sorted u1``, ``open u1``, number of tags (``>i4`` / ``>u8``), then the tags;
- a tag: kind ``u1`` (20 group, 21 data, 0 end of file), label length ``>u2``, label, in DM4
  the tag's size ``>u8``; a group then follows as above, a data tag has ``%%%%``, the length
  of its type description (``>i4`` / ``>u8``), that many integers of the same width, and the
  value: a simple type (2 i2, 3 i4, 4 u2, 5 u4, 6 f4, 7 f8, 8 bool, 9 i1, 10 u1, 11 i8,
  12 u8), a string (18, length), a struct (15, name length, n fields, (name length, type) per
  field) or an array (20, element type or a struct description, length).

Unnamed tags (the entries of ``ImageList``, of ``Dimensions``, ...) are keyed by their index
in the group, from 0: ``ImageList.1.ImageData.Calibrations.Dimension.0.Scale``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["DMArray", "read_dm_tags", "dm_image", "dm_string", "flatten_tags", "DM_IMAGE_DTYPES"]

_SIMPLE = {2: "i2", 3: "i4", 4: "u2", 5: "u4", 6: "f4", 7: "f8", 8: "?", 9: "i1", 10: "u1",
           11: "i8", 12: "u8"}
#: ImageData.DataType codes -> numpy dtype (little/big-endian set by the file)
DM_IMAGE_DTYPES = {1: "i2", 2: "f4", 3: "c8", 6: "u1", 7: "i4", 9: "i1", 10: "u2", 11: "u4",
                   12: "f8", 13: "c16", 14: "u1", 39: "i8", 40: "u8"}
_INLINE = 4096  # arrays up to this many elements are read; longer ones are kept as DMArray


@dataclass(frozen=True)
class DMArray:
    """A long array tag left in the file: ``count`` values of ``dtype`` at byte ``offset``."""

    offset: int
    dtype: str
    count: int


class _UnknownType(InputError):
    """A type code this parser does not read (skipped in DM4, where the tag's size is known)."""


class _Reader:
    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size = f, path, size

    def err(self, what: str, pos: int | None = None) -> InputError:
        at = self.f.tell() if pos is None else pos
        return InputError(f"{self.path}: {what} at byte {at} (not a valid DM3/DM4 file)")

    def read(self, n: int, what: str) -> bytes:
        pos = self.f.tell()
        b = self.f.read(n) if 0 <= n <= self.size - pos else b""
        if len(b) < n or n < 0:
            raise InputError(f"{self.path}: truncated DM file: {what} needs {n} bytes at byte "
                             f"{pos}, the file ends at byte {self.size}")
        return b

    def unpack(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]


def read_dm_tags(f: BinaryIO, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(header, tags)`` of an open DM3/DM4 file: header ``{"version", "little_endian"}``;
    tags a nested dict (groups are dicts, long arrays :class:`DMArray`). InputError on any
    malformed or truncated part, naming the byte."""
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    r = _Reader(f, path, size)
    version = r.unpack(">i", "the version")
    if version not in (3, 4):
        raise InputError(f"{path}: not a DM3/DM4 file (version field {version}, expected 3 or 4)")
    wide = ">Q" if version == 4 else ">i"
    r.unpack(wide, "the root length")
    order = r.unpack(">i", "the byte-order flag")
    if order not in (0, 1):
        raise r.err(f"byte-order flag {order} (expected 0 or 1)", 8 if version == 3 else 12)
    p = _Parser(r, version, "<" if order == 1 else ">")
    tags = p.group("")
    return {"version": version, "little_endian": order == 1}, tags


class _Parser:
    def __init__(self, r: _Reader, version: int, endian: str) -> None:
        self.r, self.v4, self.e = r, version == 4, endian
        self.wide = ">Q" if self.v4 else ">i"
        self.depth = 0

    def group(self, where: str) -> dict[str, Any]:
        r = self.r
        r.read(2, "a tag group's flags")
        pos = r.f.tell()
        n = r.unpack(self.wide, "a tag group's tag count")
        if n < 0 or n > r.size:
            raise r.err(f"tag group '{where}' claims {n} tags", pos)
        self.depth += 1
        if self.depth > 64:
            raise r.err(f"tag groups nested deeper than 64 ('{where}')")
        out: dict[str, Any] = {}
        for i in range(n):
            pos = r.f.tell()
            kind = r.unpack(">B", f"tag {i} of '{where}'")
            if kind == 0:  # end-of-file marker
                break
            length = r.unpack(">H", "a tag label length")
            label = r.read(length, "a tag label").decode("latin-1") or str(i)
            end = None
            if self.v4:
                size = r.unpack(">Q", "a DM4 tag size")
                end = r.f.tell() + size
            name = f"{where}.{label}" if where else label
            if kind == 20:
                out[label] = self.group(name)
            elif kind == 21:
                out[label] = self.data(name, end)
            else:
                raise r.err(f"unknown tag kind {kind} (expected 20 group or 21 data) in '{where}'", pos)
        self.depth -= 1
        return out

    def data(self, name: str, end: int | None = None) -> Any:
        """A data tag's value; in DM4 (``end``: where the tag ends) a type this parser does not
        know is skipped and noted, in DM3 it is an error (its size cannot be known)."""
        r = self.r
        pos = r.f.tell()
        if r.read(4, f"the '%%%%' of tag '{name}'") != b"%%%%":
            raise r.err(f"tag '{name}' lacks its '%%%%' delimiter", pos)
        pos = r.f.tell()
        n = r.unpack(self.wide, f"the type length of tag '{name}'")
        if not 1 <= n <= 1_000_000:
            raise r.err(f"tag '{name}' has a type description of {n} integers", pos)
        width = 8 if self.v4 else 4
        info = [int(v) for v in np.frombuffer(r.read(n * width, f"the type of tag '{name}'"),
                                              ">u8" if self.v4 else ">i4").tolist()]
        try:
            return self.value(name, info, pos)
        except _UnknownType:
            if end is None or not pos < end <= r.size:
                raise
            r.f.seek(end)
            return f"<DM type {info} not read>"

    def _simple(self, code: int, name: str, pos: int) -> np.dtype[Any]:
        if code not in _SIMPLE:
            raise _UnknownType(self.r.err(f"unknown DM data type code {code} in tag '{name}'", pos))
        return np.dtype(self.e + _SIMPLE[code])

    def _struct(self, name: str, fields: list[int], pos: int) -> np.dtype[Any]:
        return np.dtype([(f"f{k}", self._simple(int(c), name, pos)) for k, c in enumerate(fields)])

    def value(self, name: str, info: list[int], pos: int) -> Any:
        r = self.r
        code = int(info[0])
        bad = self.r.err(f"malformed type description {info} of tag '{name}'", pos)
        if code in _SIMPLE:
            if len(info) != 1:
                raise bad
            dt = self._simple(code, name, pos)
            v = np.frombuffer(r.read(dt.itemsize, f"the value of tag '{name}'"), dt)[0]
            # a float32 as its shortest decimal (a Scale of 0.05, not 0.0500000007)
            return float(str(v)) if code == 6 and np.isfinite(v) else v.item()
        if code == 18:  # string: (18, length)
            if len(info) != 2:
                raise bad
            return r.read(int(info[1]), f"the string of tag '{name}'").decode("latin-1")
        if code == 15:  # struct: (15, name length, n, (name length, type) * n)
            if len(info) < 3 or len(info) != 3 + 2 * int(info[2]):
                raise bad
            dt = self._struct(name, [int(c) for c in info[4::2]], pos)
            rec = np.frombuffer(r.read(dt.itemsize, f"the struct of tag '{name}'"), dt)[0]
            return tuple(x.item() for x in rec)
        if code == 20:  # array: (20, type, length) or (20, 15, name length, n, pairs..., length)
            if len(info) < 3:
                raise bad
            elem = int(info[1])
            if elem == 15:
                nf = int(info[3]) if len(info) > 3 else -1
                if nf < 0 or len(info) != 5 + 2 * nf:
                    raise bad
                dt = self._struct(name, [int(c) for c in info[5:5 + 2 * nf:2]], pos)
            elif elem in _SIMPLE:
                if len(info) != 3:
                    raise bad
                dt = self._simple(elem, name, pos)
            else:
                raise _UnknownType(r.err(f"unknown DM data type code {elem} (array element) in tag "
                                         f"'{name}'", pos))
            count = int(info[-1])
            nbytes = count * dt.itemsize
            start = r.f.tell()
            if count < 0 or start + nbytes > r.size:
                raise InputError(f"{r.path}: truncated DM file: array tag '{name}' needs {nbytes} "
                                 f"bytes at byte {start}, the file ends at byte {r.size}")
            if count > _INLINE and elem != 15:
                r.f.seek(nbytes, 1)
                return DMArray(start, dt.str, count)
            arr = np.frombuffer(r.read(nbytes, f"array tag '{name}'"), dt)
            return arr
        raise _UnknownType(r.err(f"unknown DM data type code {code} in tag '{name}'", pos))


def dm_string(v: Any) -> str:
    """A DM text value: uint16 arrays are UTF-16 code units."""
    if isinstance(v, str):
        return v
    if isinstance(v, np.ndarray) and v.dtype.kind in "ui" and v.ndim == 1:
        return "".join(chr(int(c)) for c in v if c).strip()
    return str(v)


def dm_image(f: BinaryIO, path: Path, tags: dict[str, Any], little: bool
             ) -> tuple[np.ndarray, str, dict[str, Any]]:
    """``(data, tag path of the image, its ImageData dict)``: the largest image of the
    ``ImageList`` (the last of equal ones; the first entry is usually the thumbnail).
    ``data`` is (ny, nx) or (nz, ny, nx): the file's x (``Dimensions.0``) varies fastest."""
    images = tags.get("ImageList")
    if not isinstance(images, dict) or not images:
        raise InputError(f"{path}: DM file without an ImageList (no image in it)")
    best: tuple[int, str, dict[str, Any], list[int], Any] | None = None
    skipped = []
    for key, entry in images.items():
        idata = entry.get("ImageData") if isinstance(entry, dict) else None
        if not isinstance(idata, dict) or "Data" not in idata:
            continue
        dims_g = idata.get("Dimensions", {})
        vals = list(dims_g.values()) if isinstance(dims_g, dict) else [dims_g]
        if not all(isinstance(v, int) and v > 0 for v in vals):
            raise InputError(f"{path}: ImageList.{key}.ImageData.Dimensions must hold positive "
                             f"integers; got {vals}")
        dims = [int(v) for v in vals]
        code = idata.get("DataType")
        if not isinstance(idata["Data"], (np.ndarray, DMArray)):
            raise InputError(f"{path}: ImageList.{key}.ImageData.Data is not an array")
        if code not in DM_IMAGE_DTYPES:
            skipped.append(f"ImageList.{key} (DataType {code})")
            continue
        n = int(np.prod(dims)) if dims else 0
        if best is None or n >= best[0]:
            best = (n, key, idata, dims, code)
    if best is None:
        extra = f"; not read: {', '.join(skipped)} (accepted DataType codes: " \
                f"{sorted(DM_IMAGE_DTYPES)})" if skipped else ""
        raise InputError(f"{path}: no image data in the DM ImageList{extra}")
    n, key, idata, dims, code = best
    where = f"ImageList.{key}.ImageData"
    if len(dims) not in (2, 3):
        what = {1: "a 1D spectrum", 4: "4D data (e.g. 4D-STEM)"}.get(len(dims), f"{len(dims)}D data")
        raise InputError(f"{path}: not a micrograph: {where} holds {what} of dimensions {dims} "
                         "(a 2D image or a 3D stack is read)")
    dt = np.dtype(("<" if little else ">") + DM_IMAGE_DTYPES[code])
    raw = idata["Data"]
    nbytes = raw.count * np.dtype(raw.dtype).itemsize if isinstance(raw, DMArray) else raw.nbytes
    if nbytes != n * dt.itemsize:
        raise InputError(f"{path}: {where}.Data holds {nbytes} bytes; dimensions {dims} of "
                         f"DataType {code} ({dt.name}) need {n * dt.itemsize}")
    if isinstance(raw, DMArray):
        f.seek(raw.offset)
        data = np.fromfile(f, dtype=dt, count=n)
        if data.size != n:
            raise InputError(f"{path}: truncated DM file: {where}.Data at byte {raw.offset}")
    else:
        data = np.frombuffer(raw.tobytes(), dt).copy()
    data = data.reshape(dims[::-1]).astype(dt.newbyteorder("="), copy=False)
    return (data.astype(bool) if code == 14 else data), where, idata


def flatten_tags(tags: dict[str, Any], prefix: str = "", limit: int = 20000) -> dict[str, Any]:
    """``{"A.B.C": value}`` of scalar/text tags (uint16 arrays as text, short arrays as
    lists, long arrays as a note) for the metadata of a :class:`Micrograph`."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], pre: str) -> None:
        for k, v in d.items():
            if len(out) >= limit:
                return
            name = f"{pre}.{k}" if pre else k
            if isinstance(v, dict):
                walk(v, name)
            elif isinstance(v, DMArray):
                out[name] = f"<{v.count} values of {np.dtype(v.dtype).name} at byte {v.offset}>"
            elif isinstance(v, np.ndarray):
                if v.dtype == np.dtype("<u2") or v.dtype == np.dtype(">u2"):
                    out[name] = dm_string(v)
                elif v.dtype.names is None and v.size <= 64:
                    out[name] = v.tolist()
                else:
                    out[name] = f"<{v.size} values of {v.dtype}>"
            else:
                out[name] = v

    walk(tags, prefix)
    return out
