"""A stand-in for a fitted FNO, shared by the dft1d tests of refinement and ensembles."""

from __future__ import annotations

import numpy as np


class FixedFNO:
    """Returns given potentials (v_Hxc, Ha) for the densities, in order: an FNO whose
    predictions the test chooses (exact, or off by a known amount)."""

    target, n_electrons = "v_hxc", 2

    def __init__(self, v_hxc: np.ndarray, spin: str = "polarised"):
        self.v_hxc, self.spin, self.n_points_ = v_hxc, spin, v_hxc.shape[1]

    def _check_fitted(self) -> None:
        pass

    def predict(self, density: np.ndarray) -> np.ndarray:
        return self.v_hxc[: len(density)]
