"""Plugins of the ``pattern`` stage: work on the 1D pattern (background subtraction)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from matterflow.core.registry import Params
from matterflow.diffraction.xrd.plugins._base import Plugin
from matterflow.diffraction.xrd.plugins.integrate import chain_npt

__all__ = ["BackgroundParams", "Background", "snip"]


class BackgroundParams(Params):
    method: Literal["snip", "polynomial", "constant"] = Field(
        "snip", description="snip: clipping filter; polynomial: iterative fit below the peaks; "
        "constant: subtract `value`")
    iterations: int = Field(40, ge=1, le=10_000, description="SNIP half-width in bins / "
                            "polynomial iterations")
    order: int = Field(3, ge=0, le=12, description="polynomial order")
    value: float = Field(0.0, description="constant background", json_schema_extra={"units": "counts"})


def snip(y: np.ndarray, iterations: int) -> np.ndarray:
    """SNIP background (Ryan et al. 1988) with the LLS transform, on a 1D array."""
    yy = np.where(np.isfinite(y), y, np.nanmin(y) if np.isfinite(y).any() else 0.0)
    v = np.log(np.log(np.sqrt(np.clip(yy, 0, None) + 1) + 1) + 1)
    n = v.size
    for k in range(1, iterations + 1):
        if 2 * k >= n:
            break
        mid = 0.5 * (v[:-2 * k] + v[2 * k:])
        v[k:n - k] = np.minimum(v[k:n - k], mid)
    return (np.exp(np.exp(v) - 1) - 1) ** 2 - 1


class Background(Plugin):
    """Subtract a background from the 1D pattern (SNIP, iterative polynomial, constant)."""

    name = "background"
    stage = "pattern"
    Params = BackgroundParams

    def runs_in_threads(self) -> bool:
        return True

    def outputs(self, chain):
        return {"background": ((chain_npt(chain),), "counts")}

    def process(self, frame):
        p: BackgroundParams = self.params  # type: ignore[assignment]
        y = frame.intensity
        if p.method == "constant":
            bg = np.full_like(y, p.value)
        elif p.method == "snip":
            bg = snip(y, p.iterations)
        else:
            x = frame.radial
            ok = np.isfinite(y)
            xs = (x - x.mean()) / (np.ptp(x) or 1.0)
            yy = y.copy()
            for _ in range(p.iterations):
                coef = np.polyfit(xs[ok], yy[ok], p.order)
                bg = np.polyval(coef, xs)
                yy = np.minimum(yy, bg)
            bg = np.polyval(coef, xs)
        frame.intensity = y - bg
        return {"background": bg}
