"""Data layer: the shipped table against independent pandas computations, splits, bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matterflow.basis.baseline import ElementalBaseline
from matterflow.basis.data import (
    DEFAULT_FEATURES,
    TARGET,
    grouped_folds,
    load_csv,
    shipped_csv,
)
from matterflow.basis.evaluate import smape
from matterflow.core.errors import InputError


@pytest.fixture(scope="module")
def raw():
    return pd.read_csv(shipped_csv())


def test_shipped_data_with_licence(raw):
    here = shipped_csv().parent
    assert "MIT" in (here / "LICENSE").read_text()
    assert raw.shape == (910, 68)
    assert raw["chem_formula"].nunique() == 63
    assert (raw.groupby("precision_level").size() == 130).all()


def test_baseline_smape_matches_independent_pandas_value(raw):
    # independent: straight from the CSV with pandas, the published 29.7 %
    r = raw[raw["precision_level"] < 90]
    y, b = r["binary_energy_error"], r["stoich_error_pred"]
    ref = (2 * (y - b).abs() / (y.abs() + b.abs())).mean() * 100
    assert len(r) == 780
    assert ref == pytest.approx(29.7, abs=0.05)
    d = load_csv().nonreference()
    X = d.frame[d.features]
    ours = smape(d.y, ElementalBaseline().fit(X, d.y).predict(X))
    assert ours == pytest.approx(ref, rel=1e-12)


def test_target_is_reference_minus_low_precision_energy(raw):
    # binary_energy_error = E(precision 90) - E(p), per material and series
    key = ["category", "name"]
    ref = raw[raw["precision_level"] == 90].set_index(key)["total_energy"]
    e_ref = raw.set_index(key).index.map(ref)
    np.testing.assert_allclose(raw["binary_energy_error"], e_ref - raw["total_energy"],
                               atol=1e-9)
    # variational: the energy only decreases with the basis, up to a few mHa of noise
    assert raw["binary_energy_error"].max() < 3e-3
    # baseline = stoichiometric sum of the elemental errors
    np.testing.assert_allclose(raw["stoich_error_pred"],
                               raw["A_fraction"] * raw["A_energy_error"]
                               + raw["B_fraction"] * raw["B_energy_error"], atol=1e-12)


def test_categories_are_two_series_of_the_same_materials(raw):
    b = raw[raw.category == "binaries"].sort_values(["name", "precision_level"])
    e = raw[raw.category == "binaries_expanded"].sort_values(["name", "precision_level"])
    assert (b["chem_formula"].to_numpy() == e["chem_formula"].to_numpy()).all()
    np.testing.assert_array_equal(b["rgkmax"].to_numpy(), e["rgkmax"].to_numpy())
    # different total energies: a per-atom offset that no longer changes above precision 60
    shift = (e["total_energy"].to_numpy() - b["total_energy"].to_numpy()) / b["num_atoms"].to_numpy()
    level = b["precision_level"].to_numpy()
    s60, s90 = shift[level == 60], shift[level == 90]
    assert np.abs(s90).max() > 0.01  # up to ~0.47 eV/atom apart at the reference
    assert np.median(np.abs(s60 - s90)) < 0.2 * np.median(np.abs(s90))
    # ... but nearly the same basis-set error: the series are near-duplicates for the target,
    # so folds must group by formula across both series
    yb, ye = b[TARGET].to_numpy(), e[TARGET].to_numpy()
    nz = level < 90
    assert np.median(np.abs(ye[nz] / yb[nz] - 1)) < 0.01


def test_grouped_folds_keep_materials_apart():
    d = load_csv()
    folds = grouped_folds(d.groups, 5, seed=3)
    seen = np.zeros(len(d), dtype=int)
    for tr, te in folds:
        assert not set(d.groups[tr]) & set(d.groups[te])
        seen[te] += 1
    assert (seen == 1).all()
    again = grouped_folds(d.groups[::-1], 5, seed=3)  # independent of row order
    assert {frozenset(d.groups[::-1][te]) for _, te in again} == \
        {frozenset(d.groups[te]) for _, te in folds}


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    p = tmp_path / "calcs.csv"
    frame.to_csv(p, index=False)
    return p


def test_missing_column_lists_expected(tmp_path, raw):
    p = _write(tmp_path, raw.drop(columns=["rgkmax"]))
    with pytest.raises(InputError, match=r"calcs.csv: missing column\(s\) rgkmax; expected "
                                         r"columns: .*precision_level"):
        load_csv(p)


def test_column_map_renames(tmp_path, raw):
    p = _write(tmp_path, raw.rename(columns={TARGET: "dE"}))
    with pytest.raises(InputError, match=TARGET):
        load_csv(p)
    assert len(load_csv(p, column_map={"dE": TARGET})) == 910


def test_non_numeric_value_names_column_and_row(tmp_path, raw):
    bad = raw.copy()
    bad["E_cut"] = bad["E_cut"].astype(object)
    bad.loc[5, "E_cut"] = "high"
    with pytest.raises(InputError, match=r"column 'E_cut', row 7: non-numeric value 'high'"):
        load_csv(_write(tmp_path, bad))


def test_nan_names_column_and_row(tmp_path, raw):
    bad = raw.copy()
    bad.loc[10, "A_rs"] = np.nan
    with pytest.raises(InputError, match=r"column 'A_rs', row 12: missing value"):
        load_csv(_write(tmp_path, bad))


def test_duplicate_row(tmp_path, raw):
    bad = pd.concat([raw, raw.iloc[[3]]], ignore_index=True)
    with pytest.raises(InputError, match=r"row 912 duplicates row 5"):
        load_csv(_write(tmp_path, bad))


def test_single_precision_level(tmp_path, raw):
    mat = raw["chem_formula"].iloc[0]
    bad = raw[(raw["chem_formula"] != mat) | (raw["precision_level"] == 30)]
    with pytest.raises(InputError, match=rf"material '{mat}' has a single precision level"):
        load_csv(_write(tmp_path, bad))


def test_missing_file_and_garbage(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_csv(tmp_path / "nope.csv")
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(InputError, match="not a readable CSV"):
        load_csv(p)


def test_default_features_present():
    d = load_csv()
    assert d.features == DEFAULT_FEATURES
    assert np.isfinite(d.X).all()
