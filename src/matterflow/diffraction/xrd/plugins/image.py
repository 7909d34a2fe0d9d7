"""Plugins of the ``image`` stage: corrections and masks of the 2D frame."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from matterflow.core.errors import InputError
from matterflow.core.registry import Params
from matterflow.diffraction.xrd.plugins._base import Plugin

__all__ = ["DarkFlatParams", "DarkFlat", "MaskParams", "Mask", "SubtractImageParams", "SubtractImage"]


class DarkFlatParams(Params):
    dark: str | None = Field(None, description="dark image file (a stack is averaged)")
    flat: str | None = Field(None, description="flat-field image file (relative response)")
    dataset: str | None = Field(None, description="HDF5 dataset of the dark/flat files")


class DarkFlat(Plugin):
    """Dark-current subtraction and flat-field division (done by pyFAI in the integration)."""

    name = "dark_flat"
    stage = "image"
    Params = DarkFlatParams

    def runs_in_threads(self) -> bool:
        return True

    def setup(self, shape, ai, chain):
        from matterflow.diffraction.xrd._io import read_image

        p: DarkFlatParams = self.params  # type: ignore[assignment]
        self.dark = self.flat = None
        for what in ("dark", "flat"):
            fp = self.path(getattr(p, what))
            if fp is None:
                continue
            img = read_image(fp, dataset=p.dataset, what=f"dark_flat.{what}")
            if img.shape != shape:
                raise InputError(f"dark_flat.{what}: {fp} has shape {img.shape}; the frames have "
                                 f"{shape}")
            setattr(self, what, img)

    def process(self, frame):
        frame.dark, frame.flat = self.dark, self.flat
        return None


class MaskParams(Params):
    file: str | None = Field(None, description="mask file; non-zero = masked (.npy, .edf, .tif, .h5)")
    dataset: str | None = Field(None, description="HDF5 dataset of the mask file")
    low: float | None = Field(None, description="mask pixels below this value",
                              json_schema_extra={"units": "counts"})
    high: float | None = Field(None, description="mask pixels above this value (hot pixels)",
                               json_schema_extra={"units": "counts"})
    detector_gaps: bool = Field(True, description="mask the detector's gaps (pyFAI detector mask)")
    roi: tuple[int, int, int, int] | None = Field(
        None, description="keep only rows r0:r1, columns c0:c1 (r0, r1, c0, c1)",
        json_schema_extra={"units": "pixel"})


class Mask(Plugin):
    """Static mask from a file, detector gaps, a rectangular ROI, and per-frame thresholds."""

    name = "mask"
    stage = "image"
    Params = MaskParams

    def runs_in_threads(self) -> bool:
        return True

    def setup(self, shape, ai, chain):
        from matterflow.diffraction.xrd._io import read_image

        p: MaskParams = self.params  # type: ignore[assignment]
        m = np.zeros(shape, bool)
        fp = self.path(p.file)
        if fp is not None:
            mk = read_image(fp, dataset=p.dataset, what="mask.file")
            if mk.shape != shape:
                raise InputError(f"mask.file: {fp} has shape {mk.shape}; the frames have {shape}")
            m |= mk != 0
        if p.detector_gaps and ai is not None and ai.detector.mask is not None:
            dm = np.asarray(ai.detector.mask, bool)
            if dm.shape == shape:
                m |= dm
        if p.roi is not None:
            r0, r1, c0, c1 = p.roi
            if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
                raise InputError(f"mask.roi: {p.roi} is not inside the frame of shape {shape}")
            keep = np.zeros(shape, bool)
            keep[r0:r1, c0:c1] = True
            m |= ~keep
        self.static = m
        if ai is not None:  # pyFAI leaves these pixels out of its engine (built once)
            ai.detector.mask = m.astype(np.int8)

    def process(self, frame):
        # the static part is in the integrator's detector mask; frame.mask gets the
        # pixels masked in this frame only (thresholds)
        p: MaskParams = self.params  # type: ignore[assignment]
        frame.restrict(p.low, p.high)
        return None


class SubtractImageParams(Params):
    file: str = Field(..., description="background image file (empty cell, air scatter); a "
                      "stack is averaged")
    dataset: str | None = Field(None, description="HDF5 dataset of the file")
    scale: float = Field(1.0, description="factor applied to the background image "
                         "(e.g. exposure or monitor ratio)", json_schema_extra={"units": "dimensionless"})


class SubtractImage(Plugin):
    """Subtract a scaled background image from each frame (before integration)."""

    name = "subtract_image"
    stage = "image"
    Params = SubtractImageParams

    def runs_in_threads(self) -> bool:
        return True

    def setup(self, shape, ai, chain):
        from matterflow.diffraction.xrd._io import read_image

        p: SubtractImageParams = self.params  # type: ignore[assignment]
        fp = self.path(p.file)
        img = read_image(fp, dataset=p.dataset, what="subtract_image.file")
        if img.shape != shape:
            raise InputError(f"subtract_image.file: {fp} has shape {img.shape}; the frames have "
                             f"{shape}")
        self.bg = (p.scale * img).astype(np.float32)

    def process(self, frame):
        frame.image = np.asarray(frame.image, dtype=np.float32) - self.bg
        return None
