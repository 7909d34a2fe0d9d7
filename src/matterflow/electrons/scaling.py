"""Input and output scaling of the LDOS network (NumPy only, saved with the model).

Descriptors have components that differ by orders of magnitude, and LDOS
values are small numbers; the network sees both scaled to order one:

- ``"standard"``: per feature (column) ``(x - mean) / std``;
- ``"feature-minmax"``: per feature to ``[0, 1]``;
- ``"max"``: one global factor, ``x / max|x|`` (keeps zeros at zero and the
  relative size of LDOS energy channels, MALA's ``normal`` for outputs);
- ``"none"``: unchanged.

Statistics are accumulated batch by batch (:meth:`Scaler.partial_fit`), so a
training set larger than memory can be scaled from a generator.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from matterflow.core.errors import InputError, NotFittedError

__all__ = ["Scaler", "ScalingMode"]

ScalingMode = Literal["standard", "feature-minmax", "max", "none"]
_MODES = ("standard", "feature-minmax", "max", "none")
_TINY = 1e-12


class Scaler:
    """Affine scaling ``(x - shift_) / scale_`` per column, fitted on training data.

    Parameters
    ----------
    mode : {"standard", "feature-minmax", "max", "none"}
        How the shift and scale are chosen (see the module docstring).
    """

    def __init__(self, mode: ScalingMode = "standard"):
        self.mode = mode

    # ------------------------------------------------------------------ fitting
    def _check(self, x: np.ndarray, what: str = "x") -> np.ndarray:
        if self.mode not in _MODES:
            raise InputError(f"scaling mode: one of {', '.join(_MODES)} is accepted; got {self.mode!r}")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise InputError(f"{what}: a 2-D array (n_samples, n_columns) is needed; got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise InputError(f"{what}: contains NaN or infinite values")
        return x

    def partial_fit(self, x: np.ndarray) -> Scaler:
        """Accumulate statistics of one batch ``x`` (n_samples, n_columns)."""
        x = self._check(x)
        if not hasattr(self, "_n"):
            self._n = 0
            self._sum = np.zeros(x.shape[1])
            self._sumsq = np.zeros(x.shape[1])
            self._min = np.full(x.shape[1], np.inf)
            self._max = np.full(x.shape[1], -np.inf)
        if x.shape[1] != self._sum.shape[0]:
            raise InputError(f"x: {self._sum.shape[0]} columns expected; got {x.shape[1]}")
        self._n += x.shape[0]
        self._sum += x.sum(axis=0)
        self._sumsq += (x * x).sum(axis=0)
        self._min = np.minimum(self._min, x.min(axis=0))
        self._max = np.maximum(self._max, x.max(axis=0))
        self._finish()
        return self

    def fit(self, x: np.ndarray) -> Scaler:
        """Fit the shift and scale on ``x`` (n_samples, n_columns); returns self."""
        for attr in ("_n", "_sum", "_sumsq", "_min", "_max"):
            self.__dict__.pop(attr, None)
        return self.partial_fit(x)

    def _finish(self) -> None:
        n_cols = self._sum.shape[0]
        mean = self._sum / self._n
        if self.mode == "standard":
            var = np.maximum(self._sumsq / self._n - mean**2, 0.0)
            self.shift_, self.scale_ = mean, np.sqrt(var)
        elif self.mode == "feature-minmax":
            self.shift_, self.scale_ = self._min.copy(), self._max - self._min
        elif self.mode == "max":
            big = float(max(np.max(np.abs(self._min)), np.max(np.abs(self._max))))
            self.shift_, self.scale_ = np.zeros(n_cols), np.full(n_cols, big)
        else:
            self.shift_, self.scale_ = np.zeros(n_cols), np.ones(n_cols)
        # constant columns are left unscaled (scale 1) instead of divided by zero
        self.scale_ = np.where(self.scale_ > _TINY, self.scale_, 1.0)

    # ------------------------------------------------------------------ use
    def _fitted(self) -> None:
        if not hasattr(self, "scale_"):
            raise NotFittedError("Scaler: call fit(x) before transform")

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled copy of ``x`` (n_samples, n_columns), float32."""
        self._fitted()
        x = np.asarray(x)
        if x.shape[-1] != self.scale_.shape[0]:
            raise InputError(f"x: {self.scale_.shape[0]} columns expected; got {x.shape[-1]}")
        return ((x - self.shift_) / self.scale_).astype(np.float32)

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`, float64."""
        self._fitted()
        return np.asarray(y, dtype=np.float64) * self.scale_ + self.shift_

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain data (mode, shift, scale) for saving with a model."""
        self._fitted()
        return {"mode": self.mode, "shift": self.shift_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        """Inverse of :meth:`to_dict`."""
        out = cls(data["mode"])
        out.shift_ = np.asarray(data["shift"], dtype=np.float64)
        out.scale_ = np.asarray(data["scale"], dtype=np.float64)
        return out
