"""Frame sources: HDF5/NeXus (Eiger master files too), TIFF/CBF/EDF series, NumPy.

:func:`open_frames` returns a :class:`FrameSource`: ``len(src)`` frames of
shape ``src.shape`` (rows, columns), read one at a time with ``src[i]`` so a
scan of 10^4 frames never sits in memory. Ranges and strides select frames
(``first``, ``last`` inclusive-exclusive, ``stride``); the logical index ``i``
maps to a file and a frame inside it.

Accepted inputs
---------------
- ``scan.h5`` / ``.nxs`` / ``*_master.h5``: a 2D or 3D dataset (``dataset``,
  default: the NeXus ``/entry/data/data`` or the first 3D dataset found). Eiger
  master files hold ``/entry/data/data_000001 ...`` as external links; these
  are followed and concatenated. Bitshuffle/LZ4 and other filters are read
  through ``hdf5plugin``. Frames stored the Eiger way (one chunk per frame,
  bitshuffle/LZ4 only) are read as raw chunks and decompressed by the
  ``bitshuffle`` package outside HDF5 when it is installed: about 5x faster,
  and without the HDF5 library lock, so threads decompress frames in parallel.
- ``frame.tif`` / ``.cbf`` / ``.edf`` (any format ``fabio`` reads), one or many
  frames per file.
- A series: a glob pattern (``scan_*.cbf``) or a folder with ``pattern``; files
  are taken in natural (numeric) order.
- ``.npy`` (2D or 3D array, memory-mapped).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import ComputeError, InputError

__all__ = ["FrameSource", "open_frames", "read_image", "FrameError"]

_H5 = {".h5", ".hdf5", ".nxs", ".nx5", ".hdf", ".nx"}
_FABIO = {".tif", ".tiff", ".cbf", ".edf", ".img", ".mccd", ".sfrm", ".mar3450", ".gfrm"}


class FrameError(ComputeError):
    """One frame could not be read (truncated or corrupt); other frames go on."""


def _natural_key(path: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _expand(path: str | Path, pattern: str | None) -> list[Path]:
    text = str(path)
    if pattern:
        base = Path(text)
        if not base.is_dir():
            raise InputError(f"input {text!r}: with pattern={pattern!r} the input must be a folder")
        files = sorted((str(p) for p in base.glob(pattern)), key=_natural_key)
        if not files:
            raise InputError(f"input {text!r}: no file matches pattern {pattern!r}")
        return [Path(f) for f in files]
    if any(c in text for c in "*?["):
        files = sorted(glob.glob(text), key=_natural_key)
        if not files:
            raise InputError(f"input {text!r}: no file matches this pattern")
        return [Path(f) for f in files]
    p = Path(text)
    if not p.exists():
        raise InputError(f"input {text!r}: no such file")
    if p.is_dir():
        raise InputError(f"input {text!r} is a folder; give a file, a glob pattern "
                         "('scan_*.cbf') or the folder with a 'pattern' parameter")
    return [p]


_BSHUF_FILTER = 32008   # the HDF5 filter id of bitshuffle
_BSHUF_LZ4 = 2          # its compression option: LZ4


def _bitshuffle() -> Any:
    try:
        import bitshuffle
    except ImportError:
        return None
    return bitshuffle


def _whole_frame_bitshuffle_lz4(ds: Any) -> bool:
    """True if ``ds`` (3D) has one chunk per frame and bitshuffle/LZ4 as its only filter."""
    if ds.ndim != 3 or ds.chunks != (1,) + tuple(ds.shape[1:]) or ds.dtype.kind not in "iuf":
        return False
    filters = ds._filters
    if list(filters) != [str(_BSHUF_FILTER)]:
        return False
    opts = tuple(filters[str(_BSHUF_FILTER)])
    return len(opts) >= 5 and opts[4] == _BSHUF_LZ4 and _bitshuffle() is not None


def _decompress_bitshuffle_lz4(raw: bytes, shape: tuple, dtype: Any) -> np.ndarray:
    """One chunk of the HDF5 bitshuffle filter (header: total bytes uint64 BE, block bytes
    uint32 BE; then LZ4 blocks) -> array. Releases the GIL while it works."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size < 12:
        raise ValueError("bitshuffle chunk shorter than its header")
    total = int.from_bytes(raw[:8], "big")
    block = int.from_bytes(raw[8:12], "big")
    dtype = np.dtype(dtype)
    if total != int(np.prod(shape)) * dtype.itemsize or block % dtype.itemsize:
        raise ValueError(f"bitshuffle header says {total} bytes in blocks of {block}; the frame "
                         f"has {int(np.prod(shape)) * dtype.itemsize}")
    return _bitshuffle().decompress_lz4(buf[12:], tuple(shape), dtype, block // dtype.itemsize)


def _h5py() -> Any:
    import h5py
    import hdf5plugin  # noqa: F401  (registers bitshuffle, LZ4, ... filters)

    return h5py


def _find_h5_dataset(f: Any, dataset: str | None, path: Path) -> list[Any]:
    """The dataset(s) holding frames; Eiger masters give data_000001, data_000002, ..."""
    h5py = _h5py()
    if dataset:
        if dataset not in f:
            found: list[str] = []
            f.visititems(lambda n, o: found.append("/" + n) if isinstance(o, h5py.Dataset)
                         and o.ndim >= 2 else None)
            raise InputError(f"{path}: dataset {dataset!r} does not exist; datasets with 2 or "
                             f"more dimensions: {', '.join(found[:20]) or '(none)'}")
        obj = f[dataset]
        if isinstance(obj, h5py.Group):
            keys = sorted(k for k in obj if re.fullmatch(r"data_\d+", k))
            if not keys:
                raise InputError(f"{path}: {dataset!r} is a group without data_NNNNNN datasets")
            return [obj[k] for k in keys]
        return [obj]
    if "entry/data" in f:
        grp = f["entry/data"]
        keys = sorted(k for k in grp if re.fullmatch(r"data_\d+", k))
        if keys:  # Eiger/Dectris master: external links data_000001 ...
            out = []
            for k in keys:
                try:
                    out.append(grp[k])
                except KeyError:  # dangling external link: data file missing
                    raise InputError(f"{path}: external link /entry/data/{k} points to a "
                                     "missing data file") from None
            return out
        if "data" in grp and isinstance(grp["data"], h5py.Dataset):
            return [grp["data"]]
    found = []
    f.visititems(lambda n, o: found.append(o) if isinstance(o, h5py.Dataset)
                 and o.ndim in (2, 3) else None)
    if not found:
        raise InputError(f"{path}: no 2D or 3D dataset found; give 'dataset'")
    return [found[0]]


@dataclass(frozen=True)
class _Part:
    path: Path
    kind: str          # "h5", "fabio", "npy"
    dataset: str       # h5 dataset name inside the file ("" otherwise)
    n: int             # frames in this part


class FrameSource:
    """Lazy, indexable frames of one file or a series.

    Parameters
    ----------
    path : str or Path
        A file, a glob pattern, or a folder (with ``pattern``).
    dataset : str, optional
        HDF5 dataset path (default: ``/entry/data/data`` or Eiger ``data_NNNNNN``).
    first, last, stride : int
        Frames ``first, first+stride, ... < last`` (``last=None``: to the end).
    pattern : str, optional
        Glob of file names inside a folder ``path``.

    ``src[i]`` is frame ``i`` (after range/stride), ``(rows, cols)`` in the file's
    numeric dtype (integers stay integers: pyFAI converts them, no extra copy).
    """

    def __init__(self, path: str | Path, *, dataset: str | None = None, first: int = 0,
                 last: int | None = None, stride: int = 1, pattern: str | None = None):
        if stride < 1:
            raise InputError(f"stride must be >= 1; got {stride}")
        if first < 0:
            raise InputError(f"first must be >= 0; got {first}")
        self.path = str(path)
        self.files = _expand(path, pattern)
        self.parts: list[_Part] = []
        self.shape: tuple[int, int] | None = None
        fabio_series = len(self.files) > 1 and all(
            p.suffix.lower() not in _H5 | {".npy"} for p in self.files)
        if fabio_series:
            # a series of image files: open only the first (10^4 files stay cheap); the
            # others are assumed alike and checked when read (a bad one fails alone)
            first_part = self._scan(self.files[0], dataset)[0]
            self.parts = [_Part(p, "fabio", "", first_part.n) for p in self.files]
        else:
            for p in self.files:
                self.parts.extend(self._scan(p, dataset))
        total = sum(p.n for p in self.parts)
        stop = total if last is None else min(int(last), total)
        self.indices = np.arange(first, stop, stride, dtype=np.int64)
        if self.indices.size == 0:
            raise InputError(f"input {self.path!r}: the range first={first}, last={last}, "
                             f"stride={stride} selects no frame out of {total}")
        self._offsets = np.cumsum([0] + [p.n for p in self.parts])
        # open dataset or array -> (handle, read raw bitshuffle chunks? see the module doc)
        self._handles: OrderedDict[str, tuple[Any, bool]] = OrderedDict()
        self._lock = threading.Lock()  # threads share the open files

    # -- discovery
    def _scan(self, path: Path, dataset: str | None) -> list[_Part]:
        suffix = path.suffix.lower()
        if suffix in _H5:
            h5py = _h5py()
            try:
                f = h5py.File(path, "r")
            except OSError as exc:
                raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
            with f:
                parts = []
                for ds in _find_h5_dataset(f, dataset, path):
                    if ds.ndim not in (2, 3):
                        raise InputError(f"{path}: dataset {ds.name!r} has shape {ds.shape}; "
                                         "frames need 2 (one frame) or 3 dimensions")
                    self._check_shape(ds.shape[-2:], path)
                    # external links resolve to a dataset in another file
                    real = Path(ds.file.filename)
                    parts.append(_Part(real, "h5", ds.name, 1 if ds.ndim == 2 else ds.shape[0]))
                return parts
        if suffix == ".npy":
            arr = load_npy(path, mmap_mode="r")
            if arr.ndim not in (2, 3):
                raise InputError(f"{path}: array of shape {arr.shape}; frames need 2 or 3 dims")
            self._check_shape(arr.shape[-2:], path)
            return [_Part(path, "npy", "", 1 if arr.ndim == 2 else arr.shape[0])]
        accepted = f"accepted: HDF5 {sorted(_H5)}, {sorted(_FABIO)}, .npy"
        try:
            import fabio

            with _quiet_fabio():  # it logs every reader it tried at ERROR level
                img = fabio.open(str(path))
        except Exception as exc:  # fabio raises many kinds
            raise InputError(f"{path}: cannot read as an image (fabio: {exc}); {accepted}"
                             ) from None
        try:
            if len(img.shape) < 2 or min(img.shape[-2:]) < 1:
                raise InputError(f"{path}: cannot read as an image (no reader understood it: "
                                 f"damaged or not an image file); {accepted}")
            self._check_shape(img.shape[-2:], path)
            return [_Part(path, "fabio", "", int(getattr(img, "nframes", 1) or 1))]
        finally:
            img.close()

    def _check_shape(self, shape: tuple, path: Path) -> None:
        shape = tuple(int(s) for s in shape)
        if self.shape is None:
            self.shape = shape  # type: ignore[assignment]
        elif shape != self.shape:
            raise InputError(f"{path}: frames of shape {shape} differ from the series' "
                             f"{self.shape}")

    # -- reading
    def __len__(self) -> int:
        return int(self.indices.size)

    def locate(self, i: int) -> tuple[_Part, int]:
        """The part and the frame inside it for logical frame ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range 0..{len(self) - 1}")
        g = int(self.indices[i])
        k = int(np.searchsorted(self._offsets, g, side="right") - 1)
        return self.parts[k], g - int(self._offsets[k])

    def _handle(self, part: _Part) -> tuple[Any, bool]:
        """The open dataset (or memory-mapped array) of ``part``, and whether its frames are
        read as raw bitshuffle chunks."""
        key = f"{part.path}::{part.dataset}"
        if key in self._handles:
            self._handles.move_to_end(key)
            return self._handles[key]
        if part.kind == "h5":
            h = _h5py().File(part.path, "r")[part.dataset]
            self._handles[key] = (h, _whole_frame_bitshuffle_lz4(h))
        else:  # npy (fabio files are opened per frame)
            self._handles[key] = (np.load(part.path, mmap_mode="r"), False)
        while len(self._handles) > 8:
            _, (old, _fast) = self._handles.popitem(last=False)
            if hasattr(old, "file"):
                old.file.close()
        return self._handles[key]

    def __getitem__(self, i: int) -> np.ndarray:
        part, j = self.locate(int(i))
        try:
            if part.kind == "fabio":
                import fabio

                with _quiet_fabio(), fabio.open(str(part.path)) as img:
                    frm = img if j == 0 else img.getframe(j)
                    if getattr(img, "incomplete_file", False) or getattr(frm, "incomplete_data", False):
                        raise OSError("the file is truncated (incomplete data)")
                    data = frm.data
            else:
                raw = None
                with self._lock:  # h5py reads one at a time anyway
                    h, fast = self._handle(part)
                    if fast:
                        mask, raw = h.id.read_direct_chunk((j, 0, 0))
                        if mask:  # a filter was skipped for this chunk: let HDF5 read it
                            raw = None
                    if raw is None:
                        data = h[()] if h.ndim == 2 else h[j]
                if raw is not None:  # decompressed outside the lock, in parallel
                    data = _decompress_bitshuffle_lz4(raw, h.shape[1:], h.dtype)
            data = np.asarray(data)
            if data.dtype.kind not in "iuf":
                data = data.astype(np.float32)
        except Exception as exc:
            raise FrameError(f"{part.path}: frame {j} cannot be read: "
                             f"{type(exc).__name__}: {exc}") from exc
        if data.shape != self.shape:
            raise FrameError(f"{part.path}: frame {j} has shape {data.shape}, expected {self.shape}")
        return data

    def describe(self, i: int) -> str:
        part, j = self.locate(i)
        return f"{part.path.name}[{j}]"

    def close(self) -> None:
        with self._lock:
            for h, _fast in self._handles.values():
                if hasattr(h, "file"):
                    h.file.close()
            self._handles.clear()


def open_frames(path: str | Path, **options: Any) -> FrameSource:
    """Open frames lazily (see :class:`FrameSource` for the options)."""
    return FrameSource(path, **options)


def load_npy(path: str | Path, **kwargs: Any) -> np.ndarray:
    """``np.load`` of a .npy file (no pickles), or InputError naming the file."""
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from None


@contextlib.contextmanager
def _quiet_fabio() -> Iterator[None]:
    log = logging.getLogger("fabio")
    old = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(old)


def read_image(path: str | Path, *, dataset: str | None = None, what: str = "image") -> np.ndarray:
    """One 2D image (dark, flat, mask, calibrant) from any supported file, float32.

    A 3D stack is averaged over its first axis (several dark frames).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} file {str(p)!r} not found")
    if p.suffix.lower() == ".npy":
        arr = load_npy(p)
    else:
        src = FrameSource(p, dataset=dataset)
        try:
            if len(src) == 1:
                arr = src[0]
            else:
                arr = np.mean([src[i] for i in range(len(src))], axis=0)
        except FrameError as exc:
            raise InputError(f"{what} file {str(p)!r}: {exc}") from None
        finally:
            src.close()
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr.mean(axis=0)
    if arr.ndim != 2:
        raise InputError(f"{what} file {str(p)!r}: expected a 2D image; got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)
