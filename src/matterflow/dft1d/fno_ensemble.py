"""An ensemble of trained density-to-potential FNOs: the mean of their predicted potentials.

``FNOEnsemble([m1, m2, m3])`` behaves like one :class:`~matterflow.dft1d.fno.DensityToPotentialFNO`
for prediction, :func:`~matterflow.dft1d.fno.evaluate_fno`,
:func:`~matterflow.dft1d.refine.fno_reliability` and
:func:`~matterflow.dft1d.refine.refine_inversion`: ``predict`` returns the mean of the members'
potentials (Ha). The members must agree on the grid size, the target and the occupations;
different seeds (or trainings) of the same settings are the intended use. ``spread`` gives the
members' disagreement per sample (max over the grid of the standard deviation, Ha).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError


class FNOEnsemble:
    """Mean prediction of several fitted FNOs (same grid, target, electrons and spin)."""

    def __init__(self, members: Sequence[Any]):
        members = list(members)
        if not members:
            raise InputError("members: an ensemble needs at least one fitted FNO; got none")
        for m in members:
            m._check_fitted()
        first = members[0]
        for i, m in enumerate(members[1:], start=1):
            for attr in ("n_points_", "target", "n_electrons", "spin"):
                if getattr(m, attr) != getattr(first, attr):
                    raise InputError(f"members[{i}].{attr}: {getattr(m, attr)!r} differs from "
                                     f"members[0].{attr} = {getattr(first, attr)!r}; an ensemble "
                                     f"needs members with the same {attr}")
        self.members = members
        self.n_points_ = first.n_points_
        self.target = first.target
        self.n_electrons = first.n_electrons
        self.spin = first.spin

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> FNOEnsemble:
        """Read the members from ``fno.pt`` files written by ``DensityToPotentialFNO.save``."""
        from matterflow.dft1d.fno import DensityToPotentialFNO

        return cls([DensityToPotentialFNO.load(p) for p in paths])

    def _check_fitted(self) -> None:
        for m in self.members:
            m._check_fitted()

    def member_predictions(self, density: np.ndarray) -> np.ndarray:
        """Each member's potentials, shape (n_members, n_samples, n_points), Ha."""
        return np.stack([m.predict(density) for m in self.members])

    def predict(self, density: np.ndarray) -> np.ndarray:
        """The members' mean potential (n_samples, n_points), Ha."""
        return self.member_predictions(density).mean(axis=0)

    def spread(self, density: np.ndarray) -> np.ndarray:
        """Max over the grid of the members' standard deviation, per sample (Ha)."""
        p = self.member_predictions(density)
        return p.std(axis=0).max(axis=-1)
