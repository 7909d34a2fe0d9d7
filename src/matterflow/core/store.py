"""HDF5 result files: datasets with units, one group per step, provenance at the root.

Layout of a results file::

    /                         NX_class=NXroot, provenance attributes (JSON where nested)
    /<step_id>                NX_class=NXentry; task, task_version, key, params, status
    /<step_id>/<output>       dataset, attribute ``units``
    /<step_id>/<group>/<...>  nested outputs (dicts, nested dataclasses)

Every write is atomic: the file is written under a temporary name in the same
folder, flushed to disk and renamed into place with :func:`os.replace`. A
process killed at any moment leaves the previous complete file, or none, but
never one that h5py cannot open.

A failed write (full disk, read-only or forbidden folder) is a
:class:`~matterflow.core.errors.StorageError` naming the file and what to do,
and leaves no temporary file. HDF5 itself never sees the failure: it writes
through :class:`_GuardedFile`, which records the first ``OSError`` and keeps
HDF5's later writes in memory, so the library closes its file normally (HDF5
1.14 crashes the process when it closes a file whose writes failed).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import getpass
import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from matterflow.core.errors import InputError, StorageError

__all__ = [
    "atomic_h5",
    "atomic_write_bytes",
    "write_outputs",
    "read_group",
    "read_output",
    "stack_groups",
    "read_results",
    "Results",
    "sha256_file",
    "base_provenance",
    "now_iso",
    "storage_error",
]

# the core's own libraries; each domain declares its own (Domain.libraries)
_CORE_LIBRARIES = ("numpy", "scipy", "h5py", "dask", "distributed", "pydantic")
_STRING = h5py.string_dtype("utf-8")


def now_iso() -> str:
    """The current time, ISO 8601 with time zone."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def storage_error(path: str | os.PathLike, exc: OSError) -> StorageError:
    """The :class:`StorageError` of a failed write of ``path``: what happened and what to do."""
    what = {_errno.ENOSPC: "the disk is full", _errno.EDQUOT: "the disk quota is exceeded",
            _errno.EROFS: "the file system is read-only",
            _errno.EACCES: "permission denied", _errno.EPERM: "permission denied",
            _errno.EISDIR: "it is a folder", _errno.ENOTDIR: "a part of the path is not a folder",
            }.get(exc.errno, exc.strerror or str(exc))
    todo = {_errno.ENOSPC: "free some space there or choose another output folder",
            _errno.EDQUOT: "free some space there or choose another output folder",
            _errno.EISDIR: "give a file name, not a folder"}.get(
        exc.errno, "make the folder writable or choose another output folder")
    return StorageError(f"{path}: cannot write: {what} ({exc.strerror or exc}); {todo}. "
                        "Work already stored is kept: rerun the same command to resume")


class _GuardedFile(io.RawIOBase):
    """A file for ``h5py.File(fileobj)`` whose writes never fail: the first ``OSError`` is kept
    in :attr:`error`, and HDF5's later writes go to memory (small ones, which is where its
    metadata lives; large data writes are dropped, the file is deleted anyway)."""

    _KEEP = 1 << 20

    def __init__(self, path: Path, mode: str = "w+b"):
        super().__init__()
        self._fh = open(path, mode)  # noqa: SIM115 - closed in close()
        self._fh.seek(0, os.SEEK_END)
        self.size = self._fh.tell()
        self.pos = 0
        self.error: OSError | None = None
        self._memory: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        if self.error is None:
            try:
                self._fh.seek(self.pos)
                self._fh.write(data)
            except OSError as exc:
                self.error = exc
        if self.error is not None and len(data) <= self._KEEP:
            self._memory[self.pos] = data
        self.pos += len(data)
        self.size = max(self.size, self.pos)
        return len(data)

    def readinto(self, buf) -> int:  # type: ignore[override]
        n = len(buf)
        self._fh.seek(self.pos)
        data = bytearray(self._fh.read(n))
        data += bytes(n - len(data))
        for off, b in self._memory.items():
            lo, hi = max(off, self.pos), min(off + len(b), self.pos + n)
            if lo < hi:
                data[lo - self.pos:hi - self.pos] = b[lo - off:hi - off]
        k = min(n, max(0, self.size - self.pos))
        buf[:k] = data[:k]
        self.pos += k
        return k

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                self._fh.truncate(size)
            except OSError as exc:
                self.error = exc
        self.size = size
        return size

    def flush(self) -> None:
        if self.error is None and not self._fh.closed:
            try:
                self._fh.flush()
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            with contextlib.suppress(OSError):
                self._fh.close()
        super().close()


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, mode: str = "w") -> Iterator[h5py.File]:
    """Open an HDF5 file for writing such that it appears only when complete.

    ``mode="w"`` starts an empty file; ``mode="a"`` starts from a copy of the
    existing file (if any). On an exception the temporary file is removed and
    the existing file is left untouched; a failed write (full disk, read-only
    folder) is a :class:`~matterflow.core.errors.StorageError`.
    """
    if mode not in ("w", "a"):
        raise ValueError(f"mode must be 'w' or 'a'; got {mode!r}")
    with _replacing(path) as tmp:
        try:
            if mode == "a" and Path(path).exists():
                with open(path, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 24):
                        dst.write(chunk)
            guard = _GuardedFile(tmp, "r+b" if tmp.exists() else "w+b")
        except OSError as exc:
            raise storage_error(path, exc) from None
        try:
            with h5py.File(guard, "a" if mode == "a" else "w", track_order=True) as f:
                yield f
        finally:
            guard.close()
        if guard.error is not None:
            raise storage_error(path, guard.error)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` such that the file appears only when complete; the path."""
    with _replacing(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise storage_error(path, exc) from None
    return Path(path)


@contextlib.contextmanager
def _replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` that replaces it, durably, if the block succeeds,
    and is removed if it fails (``path`` is then left as it was)."""
    path = Path(path)
    if path.is_dir():
        raise storage_error(path, IsADirectoryError(_errno.EISDIR, os.strerror(_errno.EISDIR)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(path.parent, exc) from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        try:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise storage_error(path, exc) from None
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _as_storable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=object)
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"cannot store a value of type {type(value).__name__} in HDF5")
    return arr


def _layout(n_elements: int) -> dict[str, Any]:
    """Storage of a numeric dataset: big ones chunked and LZF-compressed."""
    big = n_elements > 65536
    return {"compression": "lzf" if big else None, "chunks": True if big else None}


def write_outputs(group: h5py.Group, values: Mapping[str, Any], units: Mapping[str, str],
                  *, _prefix: str = "") -> None:
    """Write ``values`` into ``group``: arrays as datasets with a ``units`` attribute.

    ``units`` is keyed by output name (``"a/b"`` for nested entries). Nested
    mappings become sub-groups. ``None`` values are skipped.
    """
    for name, value in values.items():
        key = f"{_prefix}{name}"
        if value is None:
            continue
        if isinstance(value, Mapping):
            sub = group.require_group(name)
            if key in units:
                sub.attrs["units"] = units[key]
            write_outputs(sub, value, units, _prefix=f"{key}/")
            continue
        data = _as_storable(value)
        if isinstance(data, str):
            ds = group.create_dataset(name, data=data, dtype=_STRING)
        elif isinstance(data, np.ndarray) and data.dtype == object:
            ds = group.create_dataset(name, data=data, dtype=_STRING)
        else:
            ds = group.create_dataset(name, data=data, **_layout(data.size))
        ds.attrs["units"] = units.get(key, units.get(_prefix.rstrip("/"), "dimensionless"))


def _read_value(ds: h5py.Dataset) -> Any:
    if h5py.check_string_dtype(ds.dtype) is not None:
        data = ds.asstr()[()]
        return data if isinstance(data, str) else [str(s) for s in np.ravel(data)]
    return ds[()]


def read_group(group: h5py.Group) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a group back into ``(values, units)``, the inverse of :func:`write_outputs`."""
    values: dict[str, Any] = {}
    units: dict[str, str] = {}

    def visit(g: h5py.Group, out: dict[str, Any], prefix: str) -> None:
        for name, obj in g.items():
            if isinstance(obj, h5py.Group):
                out[name] = {}
                visit(obj, out[name], f"{prefix}{name}/")
            else:
                out[name] = _read_value(obj)
                units[f"{prefix}{name}"] = str(obj.attrs.get("units", ""))

    visit(group, values, "")
    return values, units


def read_output(group: h5py.Group, output: str) -> Any:
    """One output (``"name"`` or ``"sub/name"``) of a stored group: an array, or a dict for a
    sub-group; KeyError if there is no such output."""
    obj = group[output]
    return read_group(obj)[0] if isinstance(obj, h5py.Group) else _read_value(obj)


def stack_groups(dst: h5py.Group, parts: Sequence[str | os.PathLike], group: str = "batch"
                 ) -> None:
    """Write the outputs stored in group ``group`` of the files ``parts`` (same layout, items
    along axis 0) into ``dst``, concatenated along axis 0.

    The streaming counterpart of stacking the parts in memory and calling
    :func:`write_outputs`: each file is opened twice (layout, then data) and memory
    stays at one part's dataset, whatever the number of parts.
    """
    if not parts:
        return
    groups: dict[str, dict] = {}           # sub-group path -> attrs
    datasets: dict[str, dict] = {}         # dataset path -> dtype, shape, rows, attrs, texts
    for path in parts:
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Group):
                    groups.setdefault(name, dict(obj.attrs))
                    return
                d = datasets.setdefault(name, {"dtype": obj.dtype, "shape": obj.shape[1:],
                                               "rows": 0, "attrs": dict(obj.attrs), "texts": None})
                if h5py.check_string_dtype(obj.dtype) is not None:
                    d["texts"] = d["texts"] or []
                    d["texts"].extend(str(t) for t in np.ravel(obj.asstr()[()]))
                else:
                    d["rows"] += obj.shape[0]
            f[group].visititems(visit)
    for name, attrs in groups.items():
        dst.require_group(name).attrs.update(attrs)
    for name, d in datasets.items():
        if d["texts"] is not None:
            ds = dst.create_dataset(name, data=np.array(d["texts"], dtype=object), dtype=_STRING)
        else:
            shape = (d["rows"],) + tuple(d["shape"])
            ds = dst.create_dataset(name, shape=shape, dtype=d["dtype"],
                                    **_layout(int(np.prod(shape))))
        ds.attrs.update(d["attrs"])
    offsets = dict.fromkeys(datasets, 0)
    for path in parts:
        with h5py.File(path, "r") as f:
            for name, d in datasets.items():
                if d["texts"] is None:
                    data = f[group][name][()]
                    dst[name][offsets[name]:offsets[name] + data.shape[0]] = data
                    offsets[name] += data.shape[0]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file's bytes (or of all files below a folder, in order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    if out.returncode != 0:
        return ""
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Versions of the core's libraries and of those every domain declares, where installed."""
    from matterflow.core.domain import list_domains

    names = dict.fromkeys(_CORE_LIBRARIES)
    for dom in list_domains().values():
        names.update(dict.fromkeys(dom.libraries))
    found = {}
    for name in names:
        try:
            found[name] = _pkg_version(name)
        except PackageNotFoundError:
            continue
    return found


def base_provenance() -> dict[str, Any]:
    """Provenance that does not depend on the workflow: versions, host, user, commit."""
    from matterflow import __version__

    return {
        "matterflow_version": __version__,
        "git_commit": _git_commit(),
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "user": _safe_user(),
        "library_versions": library_versions(),
        "command": " ".join(sys.argv),
    }


def _safe_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def write_provenance(f: h5py.File, provenance: Mapping[str, Any]) -> None:
    """Write provenance as root attributes; nested values as JSON text."""
    f.attrs["NX_class"] = "NXroot"
    f.attrs["creator"] = "matterflow"
    for key, value in provenance.items():
        if isinstance(value, (dict, list, tuple)):
            f.attrs[key] = json.dumps(value, sort_keys=True, default=str)
        elif value is None:
            continue
        else:
            f.attrs[key] = value


class Results:
    """Read access to a results file.

    ``Results(path)["step"]["output"]`` is a NumPy array (loaded on access);
    :attr:`provenance` is the root provenance with JSON decoded.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such results file")
        try:
            with h5py.File(self.path, "r") as f:
                self.provenance = {k: _decode_attr(v) for k, v in f.attrs.items()}
                self.steps = {name: {k: _decode_attr(v) for k, v in g.attrs.items()}
                              for name, g in f.items() if isinstance(g, h5py.Group)}
        except OSError as exc:
            raise InputError(f"{self.path}: not a readable HDF5 file ({exc})") from None

    def __getitem__(self, step: str) -> dict[str, Any]:
        return self.read(step)[0]

    def __contains__(self, step: str) -> bool:
        return step in self.steps

    def read(self, step: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``(values, units)`` of one step."""
        if step not in self.steps:
            raise InputError(f"{self.path}: no step {step!r}; steps: {', '.join(self.steps)}")
        with h5py.File(self.path, "r") as f:
            return read_group(f[step])


def read_results(path: str | os.PathLike) -> Results:
    """Open a results file for reading (see :class:`Results`)."""
    return Results(path)


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe(path: str | os.PathLike) -> list[tuple[str, str, str, str]]:
    """Rows ``(name, shape, dtype, units)`` for every dataset and group in a file."""
    rows: list[tuple[str, str, str, str]] = []
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            depth = name.count("/")
            label = "  " * depth + name.rsplit("/", 1)[-1]
            if isinstance(obj, h5py.Dataset):
                rows.append((label, str(obj.shape), str(obj.dtype if h5py.check_string_dtype(obj.dtype) is None else "str"),
                             str(obj.attrs.get("units", ""))))
            else:
                rows.append((label + "/", "", "", str(obj.attrs.get("units", ""))))
        f.visititems(visit)
    return rows
