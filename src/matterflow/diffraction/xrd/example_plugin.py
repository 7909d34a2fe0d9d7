"""An example user plugin: the ratio of integrated intensities in two radial ranges.

Copy this file into your own package and declare it in its ``pyproject.toml``::

    [project.entry-points."matterflow.xrd_plugins"]
    peak_ratio = "mypkg.xrd_plugins:PeakRatio"

Then ``matterflow xrd plugins`` lists it, and a process file uses it::

    plugins:
      - {plugin: integrate1d, npt: 1000, unit: 2th_deg}
      - {plugin: peak_ratio, range_a: [12.0, 12.4], range_b: [8.6, 8.9]}

What a plugin declares (everything is checked before a frame is read):

- ``name`` (used in process files) and ``stage`` (``image``, ``integrate``,
  ``pattern`` or ``analysis``: when in the chain it may run);
- ``Params``: a pydantic model (``matterflow.core.Params``: frozen, unknown
  names rejected) with types, bounds and units;
- ``outputs(chain)``: the arrays it adds per frame, ``{name: (shape, units)}``;
- ``process(frame)``: reads/changes the :class:`~matterflow.diffraction.xrd.plugins.Frame`
  (``image``, ``mask``, ``radial``, ``intensity``, ``sigma``) and returns the
  declared arrays. Raise an exception for a bad frame: that frame is recorded
  as failed with the message, the others go on.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from matterflow.core.registry import Params
from matterflow.diffraction.xrd.plugins import Frame, Plugin

__all__ = ["PeakRatio", "PeakRatioParams"]


class PeakRatioParams(Params):
    range_a: tuple[float, float] = Field(..., description="radial range of the numerator",
                                         json_schema_extra={"units": "radial unit"})
    range_b: tuple[float, float] = Field(..., description="radial range of the denominator",
                                         json_schema_extra={"units": "radial unit"})

    @model_validator(mode="after")
    def _ordered(self) -> PeakRatioParams:
        for name in ("range_a", "range_b"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"{name} must be (low, high) with low < high; got ({lo}, {hi})")
        return self


class PeakRatio(Plugin):
    """Ratio of the summed intensity in range_a to that in range_b (with its error)."""

    name = "peak_ratio"
    stage = "analysis"
    Params = PeakRatioParams

    def outputs(self, chain: list[Plugin]) -> dict[str, tuple[tuple[int, ...], str]]:
        return {"ratio": ((), "dimensionless"), "ratio_err": ((), "dimensionless")}

    def process(self, frame: Frame) -> dict[str, np.ndarray] | None:
        p: PeakRatioParams = self.params  # type: ignore[assignment]
        r, y = frame.radial, frame.intensity
        s = frame.sigma if frame.sigma is not None else np.zeros_like(y)
        a = (r >= p.range_a[0]) & (r <= p.range_a[1])
        b = (r >= p.range_b[0]) & (r <= p.range_b[1])
        sa, sb = float(np.nansum(y[a])), float(np.nansum(y[b]))
        ea, eb = float(np.sqrt(np.nansum(s[a] ** 2))), float(np.sqrt(np.nansum(s[b] ** 2)))
        if sb == 0:
            raise ZeroDivisionError(f"peak_ratio: no intensity in range_b {p.range_b}")
        ratio = sa / sb
        err = abs(ratio) * np.hypot(ea / sa if sa else 0.0, eb / sb)
        return {"ratio": np.array(ratio), "ratio_err": np.array(err)}
