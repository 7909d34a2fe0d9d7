"""Plugins of the ``analysis`` stage: measures of the 1D pattern (peak fits)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from matterflow.core.registry import Params
from matterflow.diffraction.xrd.plugins._base import Plugin, radial_units
from matterflow.diffraction.xrd.plugins.integrate import chain_unit

__all__ = ["FitPeaksParams", "FitPeaks"]


class FitPeaksParams(Params):
    centers: list[float] = Field(..., min_length=1, description="approximate peak positions, "
                                 "in the radial unit of integrate1d")
    window: float = Field(..., gt=0, description="half-width of each peak's fit window, radial "
                          "unit; peaks whose windows overlap are fitted together")
    shape: Literal["gaussian", "lorentzian", "pseudo_voigt"] = Field("pseudo_voigt")
    background_order: int = Field(1, ge=0, le=4, description="polynomial background order")
    fwhm_guess: float | None = Field(None, gt=0, description="starting FWHM, radial unit")


class FitPeaks(Plugin):
    """Fit peaks of the 1D pattern: position, FWHM, height, area with uncertainties."""

    name = "fit_peaks"
    stage = "analysis"
    Params = FitPeaksParams

    def runs_in_threads(self) -> bool:
        return True

    def outputs(self, chain):
        n = len(self.params.centers)  # type: ignore[attr-defined]
        u = radial_units(chain_unit(chain))
        a = "counts*" + u
        return {"center": ((n,), u), "center_err": ((n,), u), "fwhm": ((n,), u),
                "fwhm_err": ((n,), u), "height": ((n,), "counts"), "height_err": ((n,), "counts"),
                "area": ((n,), a), "area_err": ((n,), a), "eta": ((n,), "dimensionless"),
                "chi2_red": ((n,), "dimensionless")}

    def process(self, frame):
        from matterflow.diffraction.xrd.fitting import fit_peaks

        p: FitPeaksParams = self.params  # type: ignore[assignment]
        sig = frame.sigma if frame.sigma is not None and np.isfinite(frame.sigma).any() else None
        fit = fit_peaks(frame.radial, frame.intensity, sig, p.centers, p.window, shape=p.shape,
                        background_order=p.background_order, fwhm_guess=p.fwhm_guess)
        return {k: getattr(fit, k) for k in ("center", "center_err", "fwhm", "fwhm_err", "height",
                                             "height_err", "area", "area_err", "eta", "chi2_red")}
