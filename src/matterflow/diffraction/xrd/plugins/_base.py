"""What every plugin shares: the :class:`Frame` that flows through a chain, the
:class:`Plugin` base class, the stages and the radial units."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from matterflow.core.registry import Params

__all__ = ["Frame", "Plugin", "STAGES", "ENTRY_POINT_GROUP", "RadialUnit", "radial_units"]

ENTRY_POINT_GROUP = "matterflow.xrd_plugins"
STAGES = ("image", "integrate", "pattern", "analysis")
RadialUnit = Literal["q_nm^-1", "q_A^-1", "2th_deg", "2th_rad", "r_mm", "d*2_A^-2"]
_UNIT_LABEL = {"q_nm^-1": "1/nm", "q_A^-1": "1/Å", "2th_deg": "deg", "2th_rad": "rad",
               "r_mm": "mm", "d*2_A^-2": "1/Å^2"}


def radial_units(unit: str) -> str:
    """Units (for the results file) of a pyFAI radial unit name."""
    return _UNIT_LABEL.get(unit, unit)


class Frame:
    """What flows through a chain for one frame.

    image : (rows, cols) counts (the file's numeric dtype);
    low, high : value thresholds of this frame (counts; pixels outside are ignored);
    mask : (rows, cols) bool, True = ignored in this frame: non-finite values,
    values outside [low, high] and whatever plugins add (static masks -- file,
    gaps, ROI -- are in ``ai.detector.mask``); built on first use, so a chain
    whose only per-frame masks are thresholds never builds it;
    dark, flat : optional (rows, cols) handed to pyFAI; radial, intensity,
    sigma : (npt,) after ``integrate1d``; outputs: per-plugin extra arrays.
    """

    def __init__(self, image: np.ndarray, ai: Any = None, *, dark: np.ndarray | None = None,
                 flat: np.ndarray | None = None, low: float = -np.inf, high: float = np.inf):
        self._image, self.ai, self.dark, self.flat = image, ai, dark, flat
        self.low, self.high = float(low), float(high)
        self._mask: np.ndarray | None = None
        self.radial: np.ndarray | None = None
        self.intensity: np.ndarray | None = None
        self.sigma: np.ndarray | None = None
        self.unit = ""
        self.outputs: dict[str, dict[str, np.ndarray]] = {}

    @property
    def image(self) -> np.ndarray:
        return self._image

    @image.setter
    def image(self, value: np.ndarray) -> None:
        if self._mask is None and (self.low > -np.inf or self.high < np.inf):
            _ = self.mask  # thresholds apply to the values they were set on
        self._image = value

    @property
    def mask(self) -> np.ndarray:
        if self._mask is None:
            img = self.image
            m = ~np.isfinite(img) if img.dtype.kind == "f" else np.zeros(img.shape, bool)
            if self.low > -np.inf:
                m |= img < self.low
            if self.high < np.inf:
                m |= img > self.high
            self._mask = m
        return self._mask

    @mask.setter
    def mask(self, value: np.ndarray) -> None:
        self._mask = np.asarray(value, dtype=bool)

    @property
    def mask_is_thresholds_only(self) -> bool:
        """True while no plugin has read or set ``mask`` (it is then non-finite + thresholds)."""
        return self._mask is None

    def restrict(self, low: float | None = None, high: float | None = None) -> None:
        """Ignore pixels below ``low`` / above ``high`` (counts) in this frame."""
        if low is not None:
            self.low = max(self.low, float(low))
            if self._mask is not None:
                self._mask |= self.image < low
        if high is not None:
            self.high = min(self.high, float(high))
            if self._mask is not None:
                self._mask |= self.image > high


class Plugin:
    """Base class of processing plugins (see the module docstring)."""

    name: ClassVar[str] = ""
    stage: ClassVar[str] = "image"
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params, *, pid: str | None = None, base_dir: Path | None = None):
        self.params = params
        self.id = pid or self.name
        self.base_dir = base_dir or Path.cwd()

    # -- called once per worker, before frames
    def setup(self, shape: tuple[int, int], ai: Any, chain: list[Plugin]) -> None:
        """Load files, check shapes against the frame ``shape``; raise InputError."""

    def outputs(self, chain: list[Plugin]) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per-frame arrays this plugin adds: ``{name: (shape, units)}``."""
        return {}

    def process(self, frame: Frame) -> dict[str, np.ndarray] | None:
        """Work on ``frame`` in place; return the arrays declared in :meth:`outputs`."""
        raise NotImplementedError

    def runs_in_threads(self) -> bool:
        """True if frames may go through this plugin on threads of one process.

        That is, the plugin is thread-safe and its heavy work releases the GIL
        (NumPy, compiled kernels). ``xrd process`` runs on threads (no worker
        start-up, one integration matrix) when every plugin of the chain says so,
        and on worker processes otherwise. Third-party plugins default to False.
        """
        return False

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else (self.base_dir / p)
