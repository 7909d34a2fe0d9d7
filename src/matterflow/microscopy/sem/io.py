"""Reading SEM images: TIFF (pixel size from FEI/Thermo or Zeiss tags), PNG, NumPy, Velox EMD."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from matterflow.core.errors import InputError

if TYPE_CHECKING:
    import tifffile

__all__ = ["read_image", "tiff_pixel_size_nm", "SUFFIXES"]


def tiff_pixel_size_nm(tif: tifffile.TiffFile) -> float | None:
    """Pixel size (nm) from FEI/Thermo (``FEI_HELIOS``/``FEI_SFEG`` [Scan] PixelWidth, m) or
    Zeiss (``CZ_SEM`` ap_image_pixel_size / 'Image Pixel Size = 1.2 nm') metadata, else None."""
    for name in ("fei_metadata", "sem_metadata"):
        md = getattr(tif, name, None)
        if md:
            if name == "fei_metadata" and "Scan" in md and "PixelWidth" in md["Scan"]:
                return float(md["Scan"]["PixelWidth"]) * 1e9
            if name == "sem_metadata" and "ap_image_pixel_size" in md:
                v = md["ap_image_pixel_size"]
                if isinstance(v, (tuple, list)) and len(v) >= 3:
                    factor = {"pm": 1e-3, "nm": 1.0, "µm": 1e3, "um": 1e3, "mm": 1e6}.get(v[2], 1.0)
                    return float(v[1]) * factor
    page = tif.pages[0]
    for tag in page.tags.values():
        if isinstance(tag.value, str):
            m = re.search(r"PixelWidth=([0-9.eE+-]+)", tag.value)
            if m:
                return float(m.group(1)) * 1e9
            m = re.search(r"Image Pixel Size = ([0-9.]+) (pm|nm|µm|um)", tag.value)
            if m:
                return float(m.group(1)) * {"pm": 1e-3, "nm": 1.0, "µm": 1e3, "um": 1e3}[m.group(2)]
    return None


SUFFIXES = (".tif", ".tiff", ".png", ".npy", ".emd")
_UNSUPPORTED = {".dm3": "Gatan DigitalMicrograph", ".dm4": "Gatan DigitalMicrograph",
                ".mrc": "MRC", ".ser": "FEI TIA"}


def _emd(p: Path):
    """First image of a Velox/Berkeley EMD (HDF5) file and its pixel size (nm) or None."""
    import json

    import h5py

    with h5py.File(p, "r") as f:
        if "Data/Image" in f:  # Velox: /Data/Image/<uuid>/Data (h, w, frames), Metadata (uint8 JSON)
            g = next(iter(f["Data/Image"].values()))
            img = np.asarray(g["Data"][..., 0] if g["Data"].ndim == 3 else g["Data"][()])
            size = None
            if "Metadata" in g:
                raw = np.asarray(g["Metadata"][:, 0]).tobytes().rstrip(b"\0").decode("utf-8", "ignore")
                try:
                    px = json.loads(raw)["BinaryResult"]["PixelSize"]["width"]
                    size = float(px) * 1e9
                except (KeyError, ValueError, TypeError):
                    size = None
            return img, size
        for grp in f.values():  # Berkeley EMD: a group with emd_group_type = 1 holding 'data'
            if isinstance(grp, h5py.Group):
                for sub in grp.values():
                    if isinstance(sub, h5py.Group) and sub.attrs.get("emd_group_type") == 1:
                        return np.asarray(sub["data"][()]), None
    raise InputError(f"{p}: no image found in the EMD file (expected /Data/Image/<id>/Data of "
                     "Velox or a group with emd_group_type = 1)")


def read_image(path: str | Path, *, pixel_size_nm: float | None = None, need_pixel_size: bool = False,
               stack: bool = False) -> tuple[np.ndarray, float | None]:
    """(image float32, pixel size nm or None) from a TIFF, PNG, .npy or EMD file.

    The image is (H, W) (RGB averaged to grey), or with ``stack`` (n, H, W) (a 2D image
    gives n = 1; a 3D .npy or multi-page TIFF keeps its frames). Intensities are scaled so
    the 99.5 % quantile is 0.8, like the synthetic scans. ``pixel_size_nm`` overrides the
    file's metadata; ``need_pixel_size`` makes a missing one an :class:`InputError`.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: image file not found")
    suffix = p.suffix.lower()
    if suffix in _UNSUPPORTED:
        raise InputError(f"{p}: {_UNSUPPORTED[suffix]} files ({suffix}) are not read here; "
                         f"accepted: {', '.join(SUFFIXES)} (export the image as TIFF)")
    if suffix not in SUFFIXES:
        raise InputError(f"{p}: unsupported image type {suffix!r}; accepted: {', '.join(SUFFIXES)}")
    size = None
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(p) as tif:
                img = tif.asarray()
                size = tiff_pixel_size_nm(tif)
        elif suffix == ".npy":
            img = np.load(p, allow_pickle=False)
        elif suffix == ".emd":
            img, size = _emd(p)
        else:
            from skimage.io import imread

            img = imread(p)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt file
        raise InputError(f"{p}: cannot read the image ({type(exc).__name__}: {exc})") from None
    img = np.asarray(img)
    if img.dtype.kind not in "uif":
        raise InputError(f"{p}: image values must be numbers; got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[-1] in (3, 4) and suffix in (".png", ".tif", ".tiff"):
        img = img[..., :3].mean(-1)
    if img.ndim == 3 and not stack:
        if img.shape[0] != 1:
            raise InputError(f"{p}: expected one 2D grey image; got {img.shape[0]} frames of "
                             f"{img.shape[1:]} (give frames to `matterflow sem series`)")
        img = img[0]
    if img.ndim not in ((2, 3) if stack else (2,)):
        raise InputError(f"{p}: expected a 2D grey image{' or (n, h, w) frames' if stack else ''}; "
                         f"got shape {img.shape}")
    if min(img.shape[-2:]) < 8:
        raise InputError(f"{p}: image of shape {img.shape} is too small (at least 8 × 8 pixels)")
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError(f"{p}: the image holds NaN or infinite values")
    scale = float(np.percentile(img, 99.5)) or 1.0
    img = img / scale * 0.8
    if stack and img.ndim == 2:
        img = img[None]
    if pixel_size_nm is not None:
        size = pixel_size_nm
    if need_pixel_size and size is None:
        raise InputError(f"{p}: no pixel size in the file's metadata (FEI/Thermo [Scan] "
                         "PixelWidth or Zeiss CZ_SEM ap_image_pixel_size TIFF tags); give it "
                         "with --pixel-size NM")
    return img, size
