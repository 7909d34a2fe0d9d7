"""A fitted basis-error predictor: conformal QRF + SISSO formula, saved to and loaded from a file.

``BasisPredictor.fit(data)`` trains on every row below the reference
precision; ``predict(table)`` gives, per calculation, the predicted error
``E_ref - E(p)`` (Hartree, <= 0), the extrapolated converged energy
``E(p) + error`` (if ``total_energy`` is given), the conformal interval of
both, and whether the calculation is trustworthy at a tolerance: the
interval's largest |error| per atom is below ``tolerance`` (meV/atom) and no
feature lies outside the range seen in training (``extrapolating``).

Model files are skops archives (a zip of JSON and ``.npy`` arrays) of the
fitted objects; :meth:`BasisPredictor.load` reads them with an explicit list of
trusted types (:data:`TRUSTED_TYPES`), so a file cannot make it build any other
object or call any function. Older model files (Python pickles)
load only with ``trust_pickle=True`` (``--trust-pickle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matterflow.core.errors import InputError, NotFittedError

from .data import PRECISION, REFERENCE_PRECISION, BasisData
from .qrf import ConformalQuantileForest
from .sisso import SissoModel

__all__ = ["BasisPredictor", "PredictionTable", "HARTREE_MEV"]

HARTREE_MEV = 27211.386245988  # meV per Hartree (CODATA 2018)
_MAGIC = "matterflow.basis.BasisPredictor/2"
_OLD_MAGIC = "matterflow.basis.BasisPredictor/1"  # a pickle of {"magic": ..., "model": ...}
_WHAT = "a matterflow basis model file"
#: the only classes a model file may hold (besides numpy arrays, builtins and the scikit-learn
#: objects skops trusts by default)
TRUSTED_TYPES = (
    "matterflow.basis.model.BasisPredictor",
    "matterflow.basis.qrf.ConformalQuantileForest",
    "matterflow.basis.sisso.SissoModel",
    "matterflow.basis.sisso.SissoRegressor",
    "quantile_forest._quantile_forest.RandomForestQuantileRegressor",
    "quantile_forest._quantile_forest_fast.QuantileForest",
    "sklearn.tree._tree.Tree",
)


@dataclass(frozen=True)
class PredictionTable:
    """Per-row predictions, each array shape (n,)."""

    material: list[str]
    precision_level: np.ndarray
    error_ha: np.ndarray
    lower_ha: np.ndarray
    upper_ha: np.ndarray
    converged_energy_ha: np.ndarray
    converged_lower_ha: np.ndarray
    converged_upper_ha: np.ndarray
    max_abs_error_mev_per_atom: np.ndarray
    trustworthy: np.ndarray
    sisso_error_ha: np.ndarray
    extrapolating: np.ndarray


class BasisPredictor:
    """Conformalised QRF (point, interval) plus a SISSO formula for reading.

    Parameters
    ----------
    n_estimators, seed, coverage : forest size, seed, nominal interval coverage.
    sisso_dim : int
        Terms of the SISSO formula.
    """

    def __init__(self, n_estimators: int = 300, seed: int = 0, coverage: float = 0.9,
                 sisso_dim: int = 3, n_jobs: int = 1):
        self.n_estimators = n_estimators
        self.seed = seed
        self.coverage = coverage
        self.sisso_dim = sisso_dim
        self.n_jobs = n_jobs

    def fit(self, data: BasisData) -> BasisPredictor:
        d = data.nonreference()
        X, y = d.frame[d.features], d.y
        self.qrf_ = ConformalQuantileForest(n_estimators=self.n_estimators,
                                            random_state=self.seed, coverage=self.coverage,
                                            n_jobs=self.n_jobs).fit(X, y, groups=d.groups)
        self.sisso_ = SissoModel(max_dim=self.sisso_dim).fit(X, y)
        self.features_ = list(d.features)
        values = X.to_numpy(dtype=float)
        self.feature_min_, self.feature_max_ = values.min(axis=0), values.max(axis=0)
        self.n_rows_ = len(y)
        self.n_materials_ = len(np.unique(d.groups))
        self.source_ = data.source
        return self

    def _check(self) -> None:
        if not hasattr(self, "qrf_"):
            raise NotFittedError("BasisPredictor: call fit before predict")

    def predict(self, data: BasisData, tolerance_mev_per_atom: float = 1.0) -> PredictionTable:
        """Predictions for every row of ``data`` (rows at the reference precision get 0)."""
        self._check()
        missing = [c for c in self.features_ if c not in data.frame.columns]
        if missing:
            raise InputError(f"{data.source}: missing feature column(s) {', '.join(missing)} "
                             f"the model was trained on; expected: {', '.join(self.features_)}")
        X = data.frame[self.features_]
        try:
            err = self.qrf_.predict(X)
            lo, hi = self.qrf_.predict_interval(X, self.coverage)
            sis = self.sisso_.predict(X)
        except InputError as exc:
            raise InputError(f"{data.source}: {exc}") from None
        ref = data.frame[PRECISION].to_numpy(dtype=float) >= REFERENCE_PRECISION
        err, lo, hi, sis = (np.where(ref, 0.0, a) for a in (err, lo, hi, sis))
        if "total_energy" in data.frame.columns:
            e = data.frame["total_energy"].to_numpy(dtype=float)
        else:
            e = np.full(len(err), np.nan)
        natoms = (data.frame["num_atoms"].to_numpy(dtype=float) if "num_atoms" in data.frame
                  else np.ones(len(err)))
        worst = np.maximum(np.abs(lo), np.abs(hi)) / natoms * HARTREE_MEV
        values = X.to_numpy(dtype=float)
        span = self.feature_max_ - self.feature_min_
        slack = 1e-9 * np.maximum(span, 1.0)
        outside = ((values < self.feature_min_ - slack) | (values > self.feature_max_ + slack))
        extrapolating = outside.any(axis=1) & ~ref
        return PredictionTable(
            material=[str(g) for g in data.groups],
            precision_level=data.frame[PRECISION].to_numpy(dtype=float),
            error_ha=err, lower_ha=lo, upper_ha=hi,
            converged_energy_ha=e + err, converged_lower_ha=e + lo, converged_upper_ha=e + hi,
            max_abs_error_mev_per_atom=worst,
            trustworthy=(worst <= tolerance_mev_per_atom) & ~extrapolating,
            sisso_error_ha=sis, extrapolating=extrapolating)

    # ------------------------------------------------------------------ files
    def to_bytes(self) -> bytes:
        """The model file (a skops archive) as bytes."""
        import skops.io as sio

        self._check()
        return sio.dumps({"format": _MAGIC, "model": self})

    @classmethod
    def from_bytes(cls, blob: bytes, source: str = "<bytes>", *,
                   trust_pickle: bool = False) -> BasisPredictor:
        """Rebuild a model from :meth:`to_bytes` output; ``source`` names it in errors.

        An old model file (a pickle) is refused unless ``trust_pickle``.
        """
        from matterflow.core.safeload import check_kind, load_trusted_pickle

        kind = check_kind(blob, ("zip", "pickle") if trust_pickle else ("zip",),
                          source=source, what=_WHAT)
        hint = "write one with `matterflow basis fit DATA.csv --out MODEL`"
        if kind == "pickle":
            obj = load_trusted_pickle(blob, source=source, what=_WHAT, hint=hint)
            if not isinstance(obj, dict) or obj.get("magic") != _OLD_MAGIC:
                raise InputError(f"{source}: not {_WHAT} ({hint})")
            model = obj["model"]
        else:
            import skops.io as sio

            try:
                found = sio.get_untrusted_types(data=blob)
            except Exception as exc:
                raise InputError(f"{source}: not {_WHAT} (not a skops archive: "
                                 f"{type(exc).__name__}: {exc}); {hint}") from None
            foreign = sorted(set(found) - set(TRUSTED_TYPES))
            if foreign:
                raise InputError(f"{source}: not loaded: the file names types a basis model "
                                 f"does not hold ({', '.join(foreign[:5])}); accepted: "
                                 f"{_WHAT} written by `matterflow basis fit`")
            try:
                obj = sio.loads(blob, trusted=list(found))
            except Exception as exc:
                raise InputError(f"{source}: not {_WHAT} (damaged archive: "
                                 f"{type(exc).__name__}: {exc}); {hint}") from None
            if not isinstance(obj, dict) or obj.get("format") != _MAGIC:
                raise InputError(f"{source}: not {_WHAT} (format tag missing); {hint}")
            model = obj["model"]
        if not isinstance(model, cls) or not hasattr(model, "qrf_"):
            raise InputError(f"{source}: not {_WHAT} (no fitted BasisPredictor inside); {hint}")
        return model

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` (appears only when complete); returns the path."""
        from matterflow.core.store import atomic_write_bytes

        return atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path, *, trust_pickle: bool = False) -> BasisPredictor:
        """Read a model file written by :meth:`save` (old pickles only with ``trust_pickle``)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: model file not found")
        return cls.from_bytes(path.read_bytes(), str(path), trust_pickle=trust_pickle)
