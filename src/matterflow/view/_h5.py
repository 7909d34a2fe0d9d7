"""HDF5 content in the shape of h5grove's endpoints: ``meta``, ``attr``, ``data``.

The same three calls as silx-kit/h5grove (``/meta/?file=&path=``,
``/attr/?file=&path=&attr_keys=``, ``/data/?file=&path=&selection=&format=``),
so an h5web front end could talk to it; written here on h5py alone. A
``selection`` is NumPy-like text, one entry per leading axis: ``"5"``,
``"5,:,0:100"``, ``"::4"``; only the selected part is read, so one frame of a
large stack costs one frame's chunks. Out-of-range selections raise
:class:`BadSelection`, whose message gives the valid range.
"""

from __future__ import annotations

import json
import math
from typing import Any

import h5py
import numpy as np

__all__ = ["BadSelection", "Unreadable", "open_file", "meta", "attrs", "parse_selection",
           "read_selection", "encode_json", "MAX_JSON_ELEMENTS"]

MAX_JSON_ELEMENTS = 4_000_000
"""Largest selection sent as JSON (a 2048 x 2048 frame); larger ones must use format=bin."""


class BadSelection(ValueError):
    """A selection that does not fit the dataset (HTTP 400, message gives the valid range)."""


class Unreadable(Exception):
    """A file h5py cannot open (corrupt, truncated, not HDF5); the message says why."""


def open_file(path: Any) -> h5py.File:
    """Open read-only; :class:`Unreadable` with h5py's reason when that fails."""
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise Unreadable(f"not a readable HDF5 file: {exc}") from None


def _dtype(dt: np.dtype) -> str:
    if h5py.check_string_dtype(dt) is not None:
        return "str"
    return dt.str


def _attr_meta(obj: Any) -> list[dict[str, Any]]:
    out = []
    for name in obj.attrs:
        try:
            a = obj.attrs.get_id(name)
            out.append({"name": name, "dtype": _dtype(a.dtype), "shape": list(a.shape or ())})
        except (OSError, KeyError, TypeError):
            out.append({"name": name, "dtype": "?", "shape": []})
    return out


def _entity(obj: Any, name: str, *, children: bool) -> dict[str, Any]:
    if isinstance(obj, h5py.Dataset):
        filters = ([{"name": str(obj.compression), "options": obj.compression_opts}]
                   if obj.compression else [])
        filters += [{"name": k} for k in ("shuffle", "fletcher32") if getattr(obj, k)]
        return {"name": name, "kind": "dataset", "shape": list(obj.shape),
                "dtype": _dtype(obj.dtype), "chunks": list(obj.chunks) if obj.chunks else None,
                "filters": filters, "attributes": _attr_meta(obj),
                "units": _units(obj)}
    out: dict[str, Any] = {"name": name, "kind": "group", "attributes": _attr_meta(obj)}
    if children:
        out["children"] = []
        for child in obj:
            link = obj.get(child, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                out["children"].append({"name": child, "kind": "link"})  # not followed
                continue
            out["children"].append(_entity(obj[child], child, children=False))
    return out


def _units(obj: Any) -> str:
    u = obj.attrs.get("units", "")
    return u.decode() if isinstance(u, bytes) else str(u)


def _get(f: h5py.File, path: str) -> Any:
    path = path or "/"
    link = f.get(path, getlink=True) if path != "/" else None
    if isinstance(link, h5py.ExternalLink):
        raise KeyError(f"{path}: external links are not followed")
    obj = f.get(path)
    if obj is None:
        raise KeyError(f"no entity {path!r} in the file")
    return obj


def meta(f: h5py.File, path: str) -> dict[str, Any]:
    """h5grove ``/meta``: kind, shape, dtype, chunks, filters, attributes (and children)."""
    obj = _get(f, path)
    return _entity(obj, path.rstrip("/").rsplit("/", 1)[-1] or "/", children=True)


def attrs(f: h5py.File, path: str, keys: list[str] | None = None) -> dict[str, Any]:
    """h5grove ``/attr``: attribute values (JSON text attributes stay text)."""
    obj = _get(f, path)
    names = keys or list(obj.attrs)
    missing = [k for k in names if k not in obj.attrs]
    if missing:
        raise KeyError(f"{path}: no attribute {', '.join(map(repr, missing))}; "
                       f"attributes: {', '.join(obj.attrs) or '(none)'}")
    return {k: _plain(obj.attrs[k]) for k in names}


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()] if v.dtype.kind in "OSU" else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def parse_selection(text: str | None, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """NumPy-like selection text -> an index tuple, checked against ``shape``."""
    if text is None or text.strip() == "":
        return ()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > len(shape):
        raise BadSelection(f"selection {text!r} has {len(parts)} entries; the dataset has "
                           f"{len(shape)} axes (shape {tuple(shape)})")
    out: list[Any] = []
    for axis, (p, n) in enumerate(zip(parts, shape[:len(parts)], strict=True)):
        valid = f"valid indices on axis {axis} are 0..{n - 1} (shape {tuple(shape)})"
        try:
            if ":" not in p:
                i = int(p)
            else:
                bits = p.split(":")
                if len(bits) > 3:
                    raise ValueError(p)
                start, stop, step = (int(b) if b.strip() else None
                                     for b in bits + [""] * (3 - len(bits)))
        except ValueError:
            raise BadSelection(f"selection {text!r}: {p!r} is not an index or a start:stop:step "
                               f"slice of integers") from None
        if ":" not in p:
            if not -n <= i < n:
                raise BadSelection(f"selection {text!r}: index {i} is out of range; {valid}")
            out.append(i)
            continue
        if step is not None and step <= 0:
            raise BadSelection(f"selection {text!r}: slice steps must be >= 1; got {step}")
        for b in (start, stop):
            if b is not None and not -n <= b <= n:
                raise BadSelection(f"selection {text!r}: bound {b} is out of range; {valid}")
        out.append(slice(start, stop, step))
    return tuple(out)


def read_selection(ds: h5py.Dataset, selection: str | None) -> np.ndarray:
    """The selected part of a dataset (strings as a list-compatible object array)."""
    if not isinstance(ds, h5py.Dataset):
        raise BadSelection("data can only be read from a dataset, not a group")
    index = parse_selection(selection, ds.shape)
    if h5py.check_string_dtype(ds.dtype) is not None:
        data = ds.asstr()[index] if index else ds.asstr()[()]
        return np.asarray(data, dtype=object)
    return np.asarray(ds[index] if index else ds[()])


def n_selected(ds: h5py.Dataset, selection: str | None) -> int:
    """How many elements ``selection`` picks (without reading them)."""
    index = parse_selection(selection, ds.shape)
    n = 1
    for sel, size in zip(index + (slice(None),) * (ds.ndim - len(index)), ds.shape, strict=True):
        if isinstance(sel, slice):
            n *= len(range(*sel.indices(size)))
    return n


def encode_json(value: Any) -> str:
    """JSON with NaN/inf as null (what browsers can parse)."""
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            value = clean(value.tolist())
        elif value.dtype.kind == "c":
            value = [[float(z.real), float(z.imag)] for z in value.ravel()]
        else:
            value = value.tolist()
    return json.dumps(value, separators=(",", ":"))
