"""Basis-set error data: load and validate a CSV, choose features and target, split by material.

The shipped data (``data/exciting_prepped.csv``, MIT licence, from
github.com/speckhard/multifidelity-dft-deltas) holds 63 binary solids computed
with the all-electron code exciting (PBE) at 7 precision levels (30..90) in two
series (``category``: ``binaries`` and ``binaries_expanded``), 910 rows.
What the columns mean, checked against the numbers, is in ``docs/basis.md``:

- ``binary_energy_error`` (Hartree per cell) is ``E_ref - E(p)``: the total
  energy at the reference precision 90 minus the energy at precision ``p``;
  it is <= 0 because the energy is variational in the basis (a few rows at
  high precision are +-3 mHa of numerical noise), and exactly 0 at ``p = 90``.
- ``stoich_error_pred`` (Hartree) is the additive elemental-error baseline
  ``A_fraction * A_energy_error + B_fraction * B_energy_error``.

A user CSV may name its columns differently: ``column_map`` maps the user's
names onto the names used here (``{"my_target": "binary_energy_error"}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from matterflow.core.errors import InputError

__all__ = [
    "TARGET",
    "BASELINE",
    "GROUP",
    "PRECISION",
    "REFERENCE_PRECISION",
    "ELEMENTAL_FEATURES",
    "DEFAULT_FEATURES",
    "FORMATION",
    "DERIVED",
    "add_derived_features",
    "BasisData",
    "shipped_csv",
    "load_csv",
    "grouped_folds",
]

TARGET = "binary_energy_error"
BASELINE = "stoich_error_pred"
GROUP = "chem_formula"
PRECISION = "precision_level"
REFERENCE_PRECISION = 90.0

# Properties of the free atoms of the two elements (Hartree / Bohr, from the SISSO
# atomic-feature tables the paper used) and of the elemental solids at the same precision.
ELEMENTAL_FEATURES = [
    f"{s}_{p}" for s in ("A", "B") for p in (
        "atom_num", "EA_half", "IP_half", "HOMO", "LUMO", "rs", "rp", "rd",
        "energy_error", "fraction")
]
FORMATION = "binary_energy_of_formation"
# Derived columns, computed by :func:`add_derived_features` when their inputs are present:
# the formation energy at the same (low) precision per atom and relative to the baseline,
# and element A's share of the baseline (none needs a converged calculation, so all are
# legitimate features of a new calculation). name: (numerator columns multiplied, denominator)
DERIVED = {
    "formation_per_atom": ((FORMATION,), "num_atoms"),
    "formation_over_baseline": ((FORMATION,), BASELINE),
    "A_share_of_baseline": (("A_fraction", "A_energy_error"), BASELINE),
}
DEFAULT_FEATURES = ["precision_level", "rgkmax", "E_cut", "num_atoms", BASELINE,
                    *ELEMENTAL_FEATURES, FORMATION, *DERIVED]


def add_derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the :data:`DERIVED` columns (ratios of existing columns) where their inputs exist."""
    frame = frame.copy()
    for name, (nums, den) in DERIVED.items():
        if name in frame.columns or any(c not in frame.columns for c in (*nums, den)):
            continue
        a = np.prod([pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
                     for c in nums], axis=0)
        b = pd.to_numeric(frame[den], errors="coerce").to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            # a zero baseline (reference rows) gives 0 rather than inf: those rows are never fitted
            frame[name] = np.where(b != 0, a / np.where(b != 0, b, 1.0), 0.0)
    return frame


def shipped_csv() -> Path:
    """Path of the shipped exciting data set (910 rows, 68 columns)."""
    return Path(str(resources.files("matterflow.basis") / "data" / "exciting_prepped.csv"))


@dataclass(frozen=True)
class BasisData:
    """A validated table of low-precision calculations.

    Attributes
    ----------
    frame : pandas.DataFrame
        All rows (reference-precision rows included), canonical column names.
    features : list of str
        Feature columns, in the order of the matrix ``X``.
    source : str
        File the data came from (for messages).
    has_target : bool
        Whether the target column is present (False for a prediction table).
    """

    frame: pd.DataFrame
    features: list[str]
    source: str = "<frame>"
    has_target: bool = True

    def nonreference(self) -> BasisData:
        """Rows below the reference precision (the reference rows have target 0 by construction)."""
        keep = self.frame[PRECISION].to_numpy() < REFERENCE_PRECISION
        return BasisData(self.frame.loc[keep].reset_index(drop=True), self.features,
                         self.source, self.has_target)

    @property
    def X(self) -> np.ndarray:
        """Feature matrix, shape (n_rows, n_features)."""
        return self.frame[self.features].to_numpy(dtype=float)

    @property
    def y(self) -> np.ndarray:
        """Target ``binary_energy_error`` in Hartree, shape (n_rows,)."""
        if not self.has_target:
            raise InputError(f"{self.source}: no target column {TARGET!r} in this table")
        return self.frame[TARGET].to_numpy(dtype=float)

    @property
    def baseline(self) -> np.ndarray:
        """Additive elemental-error prediction in Hartree, shape (n_rows,)."""
        return self.frame[BASELINE].to_numpy(dtype=float)

    @property
    def groups(self) -> np.ndarray:
        """Material label of each row (chemical formula), shape (n_rows,)."""
        return self.frame[GROUP].astype(str).to_numpy()

    def __len__(self) -> int:
        return len(self.frame)


def _row_label(idx: int) -> str:
    # CSV line number: header is line 1, first data row line 2
    return f"row {idx + 2}"


def load_csv(path: str | Path | None = None, *, features: list[str] | None = None,
             column_map: dict[str, str] | None = None, require_target: bool = True,
             require_levels: bool = True, frame: pd.DataFrame | None = None) -> BasisData:
    """Read and validate a table of calculations.

    Parameters
    ----------
    path : path or None
        CSV file; None reads the shipped exciting data set.
    features : list of str or None
        Feature columns (default :data:`DEFAULT_FEATURES`).
    column_map : dict or None
        ``{name in the file: canonical name}``, applied before validation.
    require_target : bool
        If True the target column must be present (training/evaluation); a
        prediction table may leave it out.
    require_levels : bool
        If True every material must have at least two precision levels
        (a single level cannot give an error relative to the converged value).
    frame : DataFrame or None
        Use this table instead of reading ``path`` (``path`` then only names it).

    Raises
    ------
    InputError
        Missing columns (lists the expected ones), non-numeric or NaN values
        (names column and CSV row), duplicate rows, a material with a single
        precision level.
    """
    features = list(features or DEFAULT_FEATURES)
    src = str(path) if path is not None else str(shipped_csv())
    if frame is None:
        p = Path(src)
        if not p.exists():
            raise InputError(f"{src}: file not found (expected a CSV of calculations)")
        try:
            frame = pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"{src}: not a readable CSV file ({exc})") from None
    frame = frame.copy()
    if column_map:
        frame = frame.rename(columns=dict(column_map))
    frame = add_derived_features(frame)
    needed = [GROUP, PRECISION, *features] + ([TARGET] if require_target else [])
    needed = list(dict.fromkeys(needed))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(
            f"{src}: missing column(s) {', '.join(missing)}; expected columns: "
            f"{', '.join(needed)} (map other names with column_map / --map OLD=NEW)")
    if len(frame) == 0:
        raise InputError(f"{src}: the table has no rows")
    numeric = [c for c in needed if c != GROUP]
    for c in numeric:
        values = pd.to_numeric(frame[c], errors="coerce")
        bad = values.isna() & frame[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{src}: column {c!r}, {_row_label(i)}: non-numeric value "
                             f"{frame[c].iloc[i]!r}; a number is expected")
        if values.isna().any():
            i = int(np.flatnonzero(values.isna().to_numpy())[0])
            what = ("the target must be given in every row" if c == TARGET else
                    f"feature {c!r} must be given in every row" if c in features else
                    f"{c!r} must be given in every row")
            raise InputError(f"{src}: column {c!r}, {_row_label(i)}: missing value (NaN); "
                             f"{what}")
        if not np.isfinite(values.to_numpy(dtype=float)).all():
            i = int(np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))[0])
            raise InputError(f"{src}: column {c!r}, {_row_label(i)}: infinite value")
        frame[c] = values.astype(float)
    if frame[GROUP].isna().any():
        i = int(np.flatnonzero(frame[GROUP].isna().to_numpy())[0])
        raise InputError(f"{src}: column {GROUP!r}, {_row_label(i)}: missing material name")
    dup = frame.duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        h = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        first = int(np.flatnonzero(h == h[i])[0])
        raise InputError(f"{src}: {_row_label(i)} duplicates {_row_label(first)}; "
                         "remove duplicate rows")
    if require_levels:
        levels = frame.groupby(GROUP)[PRECISION].nunique()
        single = levels[levels < 2]
        if len(single):
            mat = single.index[0]
            i = int(np.flatnonzero((frame[GROUP] == mat).to_numpy())[0])
            raise InputError(
                f"{src}: column {PRECISION!r}, {_row_label(i)}: material {mat!r} has a "
                f"single precision level; at least two (one of them the reference "
                f"{REFERENCE_PRECISION:g}) are needed")
    return BasisData(frame.reset_index(drop=True), features, src, TARGET in frame.columns)


def grouped_folds(groups: np.ndarray, n_splits: int = 5, seed: int = 0
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped K-fold: every material's rows fall in exactly one test fold.

    Materials are shuffled with ``seed`` and dealt round-robin into folds,
    so the split is reproducible and independent of the row order.

    Parameters
    ----------
    groups : array of str, shape (n_rows,)
    n_splits : int
    seed : int

    Returns
    -------
    list of (train_index, test_index) integer arrays
    """
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    if len(uniq) < n_splits:
        raise InputError(f"n_splits={n_splits} needs at least that many materials; "
                         f"got {len(uniq)}")
    order = np.random.default_rng(seed).permutation(uniq)
    fold_of = {g: k % n_splits for k, g in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]
