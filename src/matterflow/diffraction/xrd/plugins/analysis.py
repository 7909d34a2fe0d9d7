"""Plugins of the ``analysis`` stage: measures of the 1D pattern (peak fits)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from matterflow.core.errors import InputError
from matterflow.core.registry import Params
from matterflow.diffraction.xrd.plugins._base import Frame, Plugin, radial_units
from matterflow.diffraction.xrd.plugins.integrate import chain_radial_range, chain_unit

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
    """Fit peaks of the 1D pattern: position, FWHM, height, area with uncertainties.

    ``status`` (n_peaks,) per frame: 0 fitted, else a code of
    :data:`matterflow.diffraction.xrd.fitting.FIT_STATUS` (values NaN; the frame's
    reason says why). A peak centre outside the radial range of ``integrate1d``
    is an InputError when the pipeline is prepared, before any frame is processed.
    """

    name = "fit_peaks"
    stage = "analysis"
    Params = FitPeaksParams

    def runs_in_threads(self) -> bool:
        return True

    def outputs(self, chain: list[Plugin]) -> dict[str, tuple[tuple[int, ...], str]]:
        n = len(self.params.centers)  # type: ignore[attr-defined]
        u = radial_units(chain_unit(chain))
        a = "counts*" + u
        return {"center": ((n,), u), "center_err": ((n,), u), "fwhm": ((n,), u),
                "fwhm_err": ((n,), u), "height": ((n,), "counts"), "height_err": ((n,), "counts"),
                "area": ((n,), a), "area_err": ((n,), a), "eta": ((n,), "dimensionless"),
                "chi2_red": ((n,), "dimensionless"), "status": ((n,), "dimensionless")}

    def missing_value(self, name: str) -> float:
        from matterflow.diffraction.xrd.fitting import FIT_SKIPPED

        return FIT_SKIPPED if name == "status" else float("nan")

    def setup(self, shape: tuple[int, int], ai: Any, chain: list[Plugin]) -> None:
        p: FitPeaksParams = self.params  # type: ignore[assignment]
        lo, hi = chain_radial_range(chain, ai, shape)
        unit = chain_unit(chain)
        bad = [f"centers[{j}] = {c:g}" for j, c in enumerate(p.centers) if not lo <= c <= hi]
        if bad:
            raise InputError(f"plugin {self.id}: {', '.join(bad)} lies outside the radial range "
                             f"{lo:.6g}..{hi:.6g} ({unit}) that integrate1d covers on these "
                             f"frames; the peak cannot be fitted there. Give centres inside "
                             f"that range (or widen integrate1d's radial_range)")

    def process(self, frame: Frame) -> dict[str, np.ndarray] | None:
        from matterflow.diffraction.xrd.fitting import fit_peaks, skipped_fit

        p: FitPeaksParams = self.params  # type: ignore[assignment]
        if frame.suspect:
            fit = skipped_fit(len(p.centers), len(frame.radial), "suspect frame")
        else:
            sig = frame.sigma if frame.sigma is not None and np.isfinite(frame.sigma).any() \
                else None
            fit = fit_peaks(frame.radial, frame.intensity, sig, p.centers, p.window,
                            shape=p.shape, background_order=p.background_order,
                            fwhm_guess=p.fwhm_guess)
            for j in np.flatnonzero(~fit.ok):
                frame.problems.append(f"{self.id}: peak {j} at {p.centers[j]:g}: "
                                      f"{fit.reason[j]}")
        out = {k: getattr(fit, k) for k in ("center", "center_err", "fwhm", "fwhm_err", "height",
                                            "height_err", "area", "area_err", "eta", "chi2_red")}
        return {**out, "status": np.asarray(fit.status, np.int32)}
