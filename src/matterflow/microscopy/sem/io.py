"""Reading SEM images: TIFF (pixel size from FEI/Thermo or Zeiss tags), PNG, NumPy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["read_image", "tiff_pixel_size_nm"]


def tiff_pixel_size_nm(tif) -> float | None:
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


def read_image(path, *, pixel_size_nm: float | None = None, need_pixel_size: bool = False):
    """(image float32 (H, W), pixel size nm or None) from a TIFF, PNG or .npy file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: image file not found")
    suffix = p.suffix.lower()
    size = None
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(p) as tif:
                img = tif.asarray()
                size = tiff_pixel_size_nm(tif)
        elif suffix == ".npy":
            img = np.load(p, allow_pickle=False)
        elif suffix == ".png":
            from skimage.io import imread

            img = imread(p)
        else:
            raise InputError(f"{p}: unsupported image type {suffix!r}; accepted: .tif, .tiff, .png, .npy")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt file
        raise InputError(f"{p}: cannot read the image ({type(exc).__name__}: {exc})") from None
    img = np.asarray(img)
    if img.ndim == 3:
        img = img[..., :3].mean(-1) if img.shape[-1] in (3, 4) else img[0]
    if img.ndim != 2:
        raise InputError(f"{p}: expected a 2D grey image; got shape {img.shape}")
    img = img.astype(np.float32)
    scale = float(np.percentile(img, 99.5)) or 1.0
    img = img / scale * 0.8
    if pixel_size_nm is not None:
        size = pixel_size_nm
    if need_pixel_size and size is None:
        raise InputError(f"{p}: no pixel size in the file's metadata (FEI/Thermo or Zeiss TIFF "
                         "tags); give it with --pixel-size NM")
    return img, size
