"""Reading SEM images through the shared micrograph reader
(:func:`matterflow.microscopy.imageio.read_micrograph`: TIFF with FEI/Thermo or Zeiss pixel
size, DM3/DM4, Velox/Berkeley EMD, SER, MRC, PNG/JPEG, NumPy), in nm and scaled for the models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from matterflow.core.errors import InputError
from matterflow.microscopy.imageio import MICROGRAPH_SUFFIXES, read_micrograph, tiff_pixel_size

if TYPE_CHECKING:
    import tifffile

__all__ = ["read_image", "tiff_pixel_size_nm", "SUFFIXES"]


def tiff_pixel_size_nm(tif: tifffile.TiffFile) -> float | None:
    """Pixel size (nm) from FEI/Thermo (``FEI_HELIOS``/``FEI_SFEG`` [Scan] PixelWidth, m),
    Zeiss (``CZ_SEM`` ap_image_pixel_size / 'Image Pixel Size = 1.2 nm'), ImageJ or our own
    JSON metadata, else None (see :func:`matterflow.microscopy.imageio.tiff_pixel_size`)."""
    px, _ = tiff_pixel_size(tif)
    return None if px is None else px / 10.0


SUFFIXES = MICROGRAPH_SUFFIXES


def read_image(path: str | Path, *, pixel_size_nm: float | None = None, need_pixel_size: bool = False,
               stack: bool = False) -> tuple[np.ndarray, float | None]:
    """(image float32, pixel size nm or None) from any micrograph file
    (:data:`SUFFIXES`: TIFF, DM3/DM4, EMD, SER, MRC, PNG/JPEG, .npy).

    The image is (H, W) (RGB averaged to grey), or with ``stack`` (n, H, W) (a 2D image
    gives n = 1; a 3D .npy, multi-page TIFF or stack keeps its frames). Intensities are scaled
    so the 99.5 % quantile is 0.8, like the synthetic scans. ``pixel_size_nm`` overrides the
    file's metadata; ``need_pixel_size`` makes a missing one an :class:`InputError`.
    """
    p = Path(path)
    if pixel_size_nm is not None and not pixel_size_nm > 0:
        raise InputError(f"{p}: --pixel-size must be a positive number of nm; got {pixel_size_nm}")
    m = read_micrograph(p, pixel_size=None if pixel_size_nm is None else pixel_size_nm * 10.0)
    img = m.data
    if img.dtype.kind not in "buif":
        raise InputError(f"{p}: image values must be real numbers; got dtype {img.dtype}")
    if img.ndim == 3 and not stack:
        if img.shape[0] != 1:
            raise InputError(f"{p}: expected one 2D grey image; got {img.shape[0]} frames of "
                             f"{img.shape[1:]} (give frames to `matterflow sem series`)")
        img = img[0]
    if min(img.shape[-2:]) < 8:
        raise InputError(f"{p}: image of shape {img.shape} is too small (at least 8 × 8 pixels)")
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError(f"{p}: the image holds NaN or infinite values")
    scale = float(np.percentile(img, 99.5)) or 1.0
    img = img / scale * 0.8
    if stack and img.ndim == 2:
        img = img[None]
    size = None if m.pixel_size_A is None else m.pixel_size_A / 10.0
    if need_pixel_size and size is None:
        raise InputError(f"{p}: no pixel size in the file's metadata ({m.format}: e.g. FEI/Thermo "
                         "[Scan] PixelWidth or Zeiss CZ_SEM ap_image_pixel_size TIFF tags, DM or "
                         "EMD calibrations); give it with --pixel-size NM")
    return img, size
