"""One reader for micrographs: TIFF, DM3/DM4, EMD, SER, MRC, PNG/JPEG and NumPy files.

:func:`read_micrograph` returns a :class:`Micrograph`: the pixels as stored (2D ``(h, w)``, or a
stack ``(n, h, w)`` with the frames first), the pixel size in Å with the place in the file it
came from, the file's metadata and the format. The format is recognised from the first bytes
(the suffix only for MRC files without the ``MAP`` stamp); every bad file is an
:class:`~matterflow.core.errors.InputError` naming the file and what was wrong. Nothing pickled
is ever loaded (``np.load(allow_pickle=False)``).

=========  ===========================================================  ==========================
format     reader                                                       pixel size from
=========  ===========================================================  ==========================
TIFF       tifffile (pages/series; RGB averaged to grey)                our JSON description
                                                                        ``pixel_size_A``; FEI/Thermo
                                                                        ``[Scan] PixelWidth``; Zeiss
                                                                        ``CZ_SEM ap_image_pixel_size``;
                                                                        ImageJ unit + XResolution
DM3/DM4    :mod:`._dm` (own parser of the tag-group format)             ``ImageData.Calibrations.
                                                                        Dimension.0.Scale/Units``
EMD        h5py: Thermo Velox ``Data/Image/<id>/Data`` and Berkeley      Velox JSON ``PixelSize``;
           EMD groups with ``emd_group_type = 1``                       Berkeley ``dim`` vectors
SER        :mod:`._ser` (own parser of TIA series files)                element calibration delta (m)
MRC/MRCS   own parser of the 1024-byte MRC2014 header                   ``cella.x / mx``
PNG/JPEG   Pillow (RGB averaged to grey)                                never (screen dpi only)
NPY        ``np.load(allow_pickle=False)``                              never
=========  ===========================================================  ==========================

Reciprocal calibrations (1/nm: diffraction patterns) give no real-space pixel size; they are
kept in ``metadata["calibration"]``. ``python -m matterflow.microscopy.imageio FILE`` prints
what is read.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["Micrograph", "read_micrograph", "length_to_angstrom", "tiff_pixel_size",
           "MICROGRAPH_SUFFIXES"]

MICROGRAPH_SUFFIXES = (".tif", ".tiff", ".dm3", ".dm4", ".emd", ".ser", ".mrc", ".mrcs",
                       ".png", ".jpg", ".jpeg", ".npy")
_BY_SUFFIX = {".tif": "tiff", ".tiff": "tiff", ".dm3": "dm", ".dm4": "dm", ".emd": "hdf5",
              ".ser": "ser", ".mrc": "mrc", ".mrcs": "mrc", ".png": "png", ".jpg": "jpeg",
              ".jpeg": "jpeg", ".npy": "npy"}
_TO_A = {"m": 1e10, "mm": 1e7, "um": 1e4, "µm": 1e4, "μm": 1e4, "micron": 1e4, "microns": 1e4,
         "micrometer": 1e4, "nm": 10.0, "nanometer": 10.0, "pm": 0.01, "a": 1.0, "å": 1.0,
         "angstrom": 1.0, "angstroms": 1.0}


@dataclass(frozen=True)
class Micrograph:
    """A micrograph as read from its file.

    Attributes
    ----------
    data : ndarray of shape (h, w) or (n, h, w)
        The pixels in the file's own dtype (native byte order); a stack has its frames on
        axis 0. Rows are the file's rows (y), columns its fastest axis (x).
    pixel_size_A : float or None
        Real-space pixel size along x, Å; None when the file has none (or only a
        reciprocal calibration) and none was given.
    pixel_size_source : str or None
        Where ``pixel_size_A`` came from ("DM4 tag ImageList.1.ImageData.Calibrations.
        Dimension.0.Scale (0.05 nm)", "given (pixel_size=...)").
    format : str
        "tiff", "dm3", "dm4", "emd-velox", "emd-berkeley", "ser", "mrc", "png", "jpeg", "npy".
    metadata : dict
        The file's metadata (flattened tags, header values), ``calibration``.
    path : str
        The file read.
    """

    data: np.ndarray
    pixel_size_A: float | None
    pixel_size_source: str | None
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def n_frames(self) -> int:
        """Number of frames (1 for a 2D image)."""
        return 1 if self.data.ndim == 2 else int(self.data.shape[0])

    def summary(self) -> str:
        """A few lines saying what was read."""
        d = self.data
        px = (f"{self.pixel_size_A:.6g} Å from {self.pixel_size_source}"
              if self.pixel_size_A is not None else "unknown")
        lines = [f"{self.path}: {self.format}, {'×'.join(map(str, d.shape))} {d.dtype}"
                 f"{' (frames first)' if d.ndim == 3 else ''}",
                 f"pixel size: {px}"]
        cal = self.metadata.get("calibration")
        if cal and self.pixel_size_A is None:
            lines.append(f"calibration: {cal}")
        if d.size and d.dtype.kind in "biuf":
            lines.append(f"values: min {float(d.min()):.6g}, max {float(d.max()):.6g}, "
                         f"mean {float(d.mean()):.6g}")
        return "\n".join(lines)


def _unit(u: Any) -> str:
    s = u.decode("latin-1") if isinstance(u, bytes) else str(u)
    s = s.strip().strip("[]").replace("_", "").replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    return s.replace("\u212b", "Å").strip().lower()


def length_to_angstrom(value: float, unit: Any) -> float | None:
    """``value`` in ``unit`` (m, mm, µm/um/micron, nm, pm, Å/A/angstrom; Berkeley EMD's
    ``[n_m]`` too) converted to Å; None for an unknown, empty or reciprocal unit."""
    f = _TO_A.get(_unit(unit))
    return None if f is None else float(value) * f


def _calibrate(scale: float, unit: Any, source: str, meta: dict[str, Any]) -> tuple[float | None, str | None]:
    """(pixel size Å, source) from a calibration ``scale`` ``unit``; reciprocal or unknown
    units are noted in ``meta["calibration"]`` and give (None, None)."""
    u = _unit(unit)
    raw = unit.decode("latin-1") if isinstance(unit, bytes) else str(unit)
    meta["calibration"] = {"scale": float(scale), "unit": raw, "source": source}
    if not (math.isfinite(scale) and scale != 0):
        return None, None
    if scale < 0:
        meta["calibration"]["note"] = "negative scale (a reversed axis): its magnitude is used"
        scale = -scale
    px = length_to_angstrom(scale, unit)
    if px is not None:
        return px, f"{source} ({scale:.6g} {raw})"
    m = re.fullmatch(r"1/(.+)|(.+?)\^?-1", u)
    base = (m.group(1) or m.group(2)) if m else None
    if base in _TO_A:
        meta["calibration"]["reciprocal_per_A"] = float(scale) / _TO_A[base]
        meta["calibration"]["note"] = "reciprocal-space calibration (a diffraction pattern): " \
                                      "no real-space pixel size"
    return None, None


# ----------------------------------------------------------------------------------- TIFF

def tiff_pixel_size(tif: Any) -> tuple[float | None, str | None]:
    """(pixel size Å, source) of an open ``tifffile.TiffFile``, from (in this order) our JSON
    description ``pixel_size_A``, FEI/Thermo ``FEI_HELIOS``/``FEI_SFEG`` ``[Scan] PixelWidth``
    (m), Zeiss ``CZ_SEM`` ``ap_image_pixel_size``, the same two as text, ImageJ's unit with
    XResolution, or XResolution with a mm/µm ResolutionUnit; (None, None) otherwise
    (inch/cm resolutions are printing dpi, not pixel sizes)."""
    page = tif.pages[0]
    desc = page.description or ""
    if desc.startswith("{"):
        try:
            v = json.loads(desc).get("pixel_size_A")
            if v is not None and float(v) > 0:
                return float(v), "TIFF ImageDescription JSON pixel_size_A"
        except (ValueError, TypeError, AttributeError):
            pass
    tags = page.tags
    fei = getattr(tif, "fei_metadata", None)
    if fei and isinstance(fei.get("Scan"), dict) and "PixelWidth" in fei["Scan"]:
        name = "FEI_HELIOS" if "FEI_HELIOS" in tags else "FEI_SFEG"
        return float(fei["Scan"]["PixelWidth"]) * 1e10, f"TIFF {name} tag [Scan] PixelWidth (m)"
    sem = getattr(tif, "sem_metadata", None)
    if sem and "ap_image_pixel_size" in sem:
        v = sem["ap_image_pixel_size"]
        if isinstance(v, (tuple, list)) and len(v) >= 3:
            px = length_to_angstrom(float(v[1]), v[2])
            if px is not None:
                return px, f"TIFF CZ_SEM tag ap_image_pixel_size ({v[1]} {v[2]})"
    for tag in tags.values():
        if isinstance(tag.value, str):
            m = re.search(r"PixelWidth=([0-9.eE+-]+)", tag.value)
            if m:
                return float(m.group(1)) * 1e10, f"TIFF tag {tag.name} text PixelWidth= (m)"
            m = re.search(r"Image Pixel Size = ([0-9.eE+-]+) ?(pm|nm|µm|um|mm)", tag.value)
            if m:
                px = length_to_angstrom(float(m.group(1)), m.group(2))
                return px, f"TIFF tag {tag.name} text 'Image Pixel Size = {m.group(1)} {m.group(2)}'"
    xres = tags.get("XResolution")
    if xres is not None:
        num, den = (xres.value if isinstance(xres.value, tuple) else (xres.value, 1))
        per_unit = float(num) / float(den) if den else 0.0
        ij = getattr(tif, "imagej_metadata", None) or {}
        if per_unit > 0 and ij.get("unit"):
            px = length_to_angstrom(1.0 / per_unit, ij["unit"])
            if px is not None:
                return px, f"TIFF ImageJ unit '{ij['unit']}' and XResolution ({per_unit:.6g} px/unit)"
        ru = tags.get("ResolutionUnit")
        code = int(ru.value) if ru is not None else 2
        if per_unit > 0 and code in (4, 5):
            unit = {4: "mm", 5: "µm"}[code]
            return length_to_angstrom(1.0 / per_unit, unit), \
                f"TIFF XResolution ({per_unit:.6g} px/{unit}) and ResolutionUnit {code}"
    return None, None


def _tiff(p: Path, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    import tifffile

    with tifffile.TiffFile(p) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
        px, src = tiff_pixel_size(tif)
        meta.update(axes=axes, pages=len(tif.pages))
        for name in ("fei_metadata", "sem_metadata", "imagej_metadata"):
            md = getattr(tif, name, None)
            if md:
                meta[name] = md
        desc = tif.pages[0].description
        if desc:
            meta["description"] = desc[:4000]
    if "S" in axes and data.ndim >= 3:  # samples (RGB): grey
        data = _grey(np.moveaxis(data, axes.index("S"), -1), meta)
        axes = axes.replace("S", "")
    if data.ndim > 3:
        meta["note"] = f"axes {axes} flattened to frames (n, h, w)"
        data = data.reshape(-1, *data.shape[-2:])
    return data, px, src, "tiff"


def _grey(rgb: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    c = rgb[..., :3]
    if c.shape[-1] == 1 or all(np.array_equal(c[..., 0], c[..., k]) for k in range(1, c.shape[-1])):
        meta["colour"] = "grey stored as colour: first channel kept"
        return np.ascontiguousarray(c[..., 0])
    meta["colour"] = "RGB averaged to grey (R + G + B) / 3"
    return c.astype(np.float32).mean(-1)


# ----------------------------------------------------------------------------------- DM

def _dm(p: Path, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    from matterflow.microscopy._dm import dm_image, dm_string, flatten_tags, read_dm_tags

    with open(p, "rb") as f:
        head, tags = read_dm_tags(f, p)
        data, where, idata = dm_image(f, p, tags, head["little_endian"])
    fmt = f"dm{head['version']}"
    meta.update(dm_version=head["version"], little_endian=head["little_endian"], image=where,
                tags=flatten_tags(tags))
    dims = idata.get("Calibrations", {}).get("Dimension", {})
    cal = dims.get("0") if isinstance(dims, dict) else None
    if not isinstance(cal, dict) or not isinstance(cal.get("Scale"), (int, float)):
        return data, None, None, fmt
    source = f"{fmt.upper()} tag {where}.Calibrations.Dimension.0.Scale"
    px, src = _calibrate(float(cal["Scale"]), dm_string(cal.get("Units", "")), source, meta)
    cy = dims.get("1")
    if px is not None and isinstance(cy, dict) and isinstance(cy.get("Scale"), (int, float)):
        py = length_to_angstrom(float(cy["Scale"]), dm_string(cy.get("Units", "")))
        if py is not None and not math.isclose(py, px, rel_tol=1e-6):
            meta["pixel_size_y_A"] = py
    return data, px, src, fmt


# ----------------------------------------------------------------------------------- SER

def _ser(p: Path, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    from matterflow.microscopy._ser import read_ser

    with open(p, "rb") as f:
        data, head = read_ser(f, p)
    meta.update(ser=head)
    dx = float(head["delta_x"])
    # TIA writes SI units: metres in images, 1/m in diffraction (deltas ~1e7..1e9 1/m)
    unit = "m" if 0 < dx < 1e-2 else "1/m"
    px, src = _calibrate(dx, unit, "SER element 0 CalibrationDeltaX", meta)
    return data, px, src, "ser"


# ----------------------------------------------------------------------------------- MRC

_MRC_MODES = {0: "i1", 1: "i2", 2: "f4", 4: "c8", 6: "u2", 12: "f2"}


def _mrc(p: Path, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(1024)
        if len(head) < 1024:
            raise InputError(f"{p}: truncated MRC file: the header needs 1024 bytes, the file "
                             f"has {size}")
        stamp = head[212]
        orders = {0x44: "<", 0x11: ">"}.get(stamp)
        e = None
        for cand in ([orders] if orders else ["<", ">"]):
            nx, ny, nz, mode = np.frombuffer(head[:16], cand + "i4")
            if 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**24:
                e = cand
                break
        if e is None:
            raise InputError(f"{p}: not an MRC file (header nx, ny, nz = {nx}, {ny}, {nz})")
        ints = np.frombuffer(head[:224], e + "i4")
        flts = np.frombuffer(head[:224], e + "f4")
        nx, ny, nz, mode = (int(v) for v in ints[:4])
        if mode not in _MRC_MODES:
            raise InputError(f"{p}: MRC mode {mode} is not read (accepted: {sorted(_MRC_MODES)}: "
                             "int8, int16, float32, complex64, uint16, float16)")
        mx, my = int(ints[7]), int(ints[8])
        cella = [float(v) for v in flts[10:13]]
        nsymbt = int(ints[23])
        dt = np.dtype(e + _MRC_MODES[mode])
        if mode == 0 and int(ints[38]) == 1146047817 and not int(ints[39]) & 1:
            dt = np.dtype("u1")  # IMOD's stamp without its 'signed bytes' flag: unsigned bytes
        start = 1024 + nsymbt
        need = nx * ny * nz * dt.itemsize
        if nsymbt < 0 or start + need > size:
            raise InputError(f"{p}: truncated MRC file: {nx}×{ny}×{nz} values of mode {mode} need "
                             f"{need} bytes from byte {start}, the file has {size}")
        f.seek(start)
        data = np.fromfile(f, dtype=dt, count=nx * ny * nz).reshape(nz, ny, nx)
    data = data.astype(dt.newbyteorder("="), copy=False)
    nlabl = max(0, min(10, int(ints[55])))
    labels = [head[224 + 80 * i:304 + 80 * i].decode("latin-1").strip("\0 ") for i in range(nlabl)]
    meta.update(mrc={"nx": nx, "ny": ny, "nz": nz, "mode": mode, "mx": mx, "my": my,
                     "mz": int(ints[9]), "cella_A": cella, "mapcrs": [int(v) for v in ints[16:19]],
                     "ispg": int(ints[22]), "nsymbt": nsymbt, "exttyp": head[104:108].decode("latin-1"),
                     "labels": labels, "big_endian": e == ">"})
    if nz == 1:
        data = data[0]
    px = src = None
    if mx > 0 and cella[0] > 0:
        px = cella[0] / mx
        src = f"MRC header cella.x / mx ({cella[0]:.6g} Å / {mx})"
        if my > 0 and cella[1] > 0 and not math.isclose(cella[1] / my, px, rel_tol=1e-6):
            meta["pixel_size_y_A"] = cella[1] / my
    return data, px, src, "mrc"


# ----------------------------------------------------------------------------------- EMD

def _emd(p: Path, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise InputError(f"{p}: not a readable HDF5/EMD file ({exc})") from None
    with f:
        if isinstance(f.get("Data/Image"), h5py.Group):
            return _velox(p, f["Data/Image"], meta)
        found: list[str] = []

        def visit(name: str, obj: Any) -> None:
            t = obj.attrs.get("emd_group_type") if isinstance(obj, h5py.Group) else None
            if t is not None and int(np.asarray(t).ravel()[0]) == 1 and "data" in obj:
                found.append(name)

        f.visititems(visit)
        if not found:
            raise InputError(f"{p}: no image found in the EMD file (expected /Data/Image/<id>/Data "
                             "of Velox or a group with emd_group_type = 1 holding 'data')")
        name = max(found, key=lambda n: f[n]["data"].size)  # the first of the largest
        return _berkeley(p, f[name], name, found, meta)


def _velox(p: Path, images: Any, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    groups = [(k, g) for k, g in images.items() if "Data" in g]
    if not groups:
        raise InputError(f"{p}: Velox EMD without image data (/Data/Image/<id>/Data)")
    key, g = max(groups, key=lambda kg: kg[1]["Data"].size)
    d = g["Data"]
    if d.ndim not in (2, 3):
        raise InputError(f"{p}: not a micrograph: /Data/Image/{key}/Data has shape {d.shape}")
    data = np.asarray(d[()])
    if data.ndim == 3:  # Velox: (h, w, frames)
        data = data[..., 0] if data.shape[-1] == 1 else np.moveaxis(data, -1, 0)
    meta.update(image=f"/Data/Image/{key}", images={k: list(g["Data"].shape) for k, g in groups})
    if "Metadata" not in g:
        return data, None, None, "emd-velox"
    raw = np.asarray(g["Metadata"][:, 0] if g["Metadata"].ndim == 2 else g["Metadata"][()])
    try:
        md = json.loads(raw.tobytes().rstrip(b"\0").decode("utf-8", "replace"))
    except ValueError as exc:
        raise InputError(f"{p}: /Data/Image/{key}/Metadata is not JSON ({exc})") from None
    meta["velox"] = md
    br = md.get("BinaryResult", {}) if isinstance(md, dict) else {}
    try:
        width = float(br["PixelSize"]["width"])
    except (KeyError, TypeError, ValueError):
        return data, None, None, "emd-velox"
    unit = br.get("PixelUnitX", "m")
    px, src = _calibrate(width, unit, f"Velox /Data/Image/{key}/Metadata BinaryResult.PixelSize.width",
                         meta)
    return data, px, src, "emd-velox"


def _berkeley(p: Path, g: Any, name: str, found: list[str], meta: dict[str, Any]
              ) -> tuple[np.ndarray, float | None, str | None, str]:
    data = np.asarray(g["data"][()])
    if data.ndim not in (2, 3):
        raise InputError(f"{p}: not a micrograph: {name}/data has shape {data.shape} (a 2D image "
                         "or a 3D stack is read)")
    dims: list[tuple[float | None, Any, Any]] = []
    for k in range(data.ndim):
        dv = g.get(f"dim{k + 1}")
        if dv is None:
            dims.append((None, "", ""))
            continue
        vec = np.asarray(dv[()], dtype=float).ravel()
        step = float(vec[1] - vec[0]) if vec.size >= 2 else None
        dims.append((step, dv.attrs.get("units", ""), dv.attrs.get("name", "")))

    def s(v: Any) -> str:
        return v.decode("latin-1") if isinstance(v, bytes) else str(v)

    meta.update(group=name, groups=found,
                dims=[{"step": st, "units": s(u), "name": s(n)} for st, u, n in dims])
    spatial = [k for k, (st, u, _) in enumerate(dims) if length_to_angstrom(1.0, u) is not None]
    order = list(range(data.ndim))
    if data.ndim == 3:
        other = [k for k in range(3) if k not in spatial]
        axis = other[0] if len(other) == 1 else 0
        order = [axis] + [k for k in range(3) if k != axis]
        data = np.moveaxis(data, axis, 0)
        meta["frames_axis_in_file"] = axis
    step, unit, _ = dims[order[-1]]
    if step is None:
        return data, None, None, "emd-berkeley"
    px, src = _calibrate(abs(step), s(unit), f"Berkeley EMD {name}/dim{order[-1] + 1} spacing", meta)
    return data, px, src, "emd-berkeley"


# ----------------------------------------------------------------------------------- others

def _pillow(p: Path, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    from PIL import Image

    with Image.open(p) as im:
        fmt = (im.format or p.suffix[1:]).lower()
        mode = im.mode
        if mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
            im = im.convert("RGB")
        arr = np.asarray(im)
    meta.update(mode=mode)
    if arr.ndim == 3:
        arr = arr[..., 0] if arr.shape[-1] == 2 else _grey(arr, meta)  # LA: the grey channel
    return arr, None, None, "jpeg" if fmt in ("jpeg", "jpg", "mpo") else fmt


def _npy(p: Path, meta: dict[str, Any]) -> tuple[np.ndarray, float | None, str | None, str]:
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"{p}: the .npy file holds Python objects; pickled data is never "
                             "loaded (save a numeric array)") from None
        raise
    return arr, None, None, "npy"


_READERS = {"tiff": _tiff, "dm": _dm, "ser": _ser, "mrc": _mrc, "hdf5": _emd, "png": _pillow,
            "jpeg": _pillow, "npy": _npy}


def _sniff(head: bytes) -> str | None:
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[:4] in (b"\0\0\0\x03", b"\0\0\0\x04"):
        return "dm"
    if head[:4] == b"II\x97\x01":
        return "ser"
    if head[208:212] == b"MAP ":
        return "mrc"
    return None


def read_micrograph(path: str | Path, *, pixel_size: float | None = None) -> Micrograph:
    """Read a micrograph file (see the module docstring for the formats).

    Parameters
    ----------
    path : str or Path
        The file; its format is found from its first bytes (MRC without the ``MAP`` stamp:
        from the suffix ``.mrc``/``.mrcs``).
    pixel_size : float, optional
        Pixel size in Å; overrides the file's (kept in ``metadata["file_pixel_size_A"]``).

    Returns
    -------
    Micrograph
        ``data`` (h, w) or (n, h, w), ``pixel_size_A`` (Å or None) and its source.

    Raises
    ------
    InputError
        A missing, truncated, corrupt or unknown file, or one that holds no 2D image or 3D
        stack; the message names the file and what was wrong.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: image file not found" if not p.exists() else f"{p}: not a file")
    if pixel_size is not None and not (math.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"{p}: the given pixel size must be a positive number of Å; got {pixel_size}")
    with open(p, "rb") as f:
        head = f.read(1024)
    suffix = p.suffix.lower()
    kind = _sniff(head)
    if kind is None and _BY_SUFFIX.get(suffix) == "mrc" and len(head) >= 1024:
        kind = "mrc"
    if kind is None:
        if not head:
            raise InputError(f"{p}: the file is empty")
        if head[:2] == b"PK":
            raise InputError(f"{p}: a zip (.npz?) archive is not read; save one array as .npy")
        if suffix in _BY_SUFFIX:
            raise InputError(f"{p}: not a valid {suffix} file (its first bytes {head[:8]!r} match "
                             "no micrograph format)")
        raise InputError(f"{p}: unknown micrograph format (suffix {suffix!r}, first bytes "
                         f"{head[:8]!r}); accepted: {', '.join(MICROGRAPH_SUFFIXES)}")
    meta: dict[str, Any] = {}
    if _BY_SUFFIX.get(suffix, kind) != kind:
        meta["suffix_mismatch"] = f"suffix {suffix} but the content is {kind}"
    try:
        data, px, src, fmt = _READERS[kind](p, meta)
    except InputError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt file surfaces as any library error
        raise InputError(f"{p}: cannot read the {kind} file ({type(exc).__name__}: {exc})") from None
    data = np.asarray(data)
    if data.dtype.kind not in "biufc":
        raise InputError(f"{p}: not a micrograph: values of dtype {data.dtype} (numbers are read)")
    if data.ndim not in (2, 3) or data.size == 0:
        raise InputError(f"{p}: not a micrograph: data of shape {data.shape} (a 2D image (h, w) "
                         "or a stack (n, h, w) is read)")
    if pixel_size is not None:
        if px is not None:
            meta["file_pixel_size_A"] = px
        px, src = float(pixel_size), f"given (pixel_size={pixel_size:g} Å)"
    return Micrograph(data=data, pixel_size_A=px, pixel_size_source=src, format=fmt,
                      metadata=meta, path=str(p))


def _main(argv: list[str]) -> int:
    from matterflow.core.errors import MatterflowError

    if not argv:
        print("usage: python -m matterflow.microscopy.imageio FILE...", file=sys.stderr)
        return 2
    code = 0
    for a in argv:
        try:
            print(read_micrograph(a).summary())
        except MatterflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = exc.exit_code
    return code


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
