"""Energy correction (local ridge model of the band/total residual): fit, leave-one-out, extensivity, CLI."""

import dataclasses
import json
import warnings

import numpy as np
import pytest
from test_training_cli import _snapshot
from typer.testing import CliRunner

from matterflow.cli import app
from matterflow.core.errors import InputError
from matterflow.electrons.descriptors import GaussianDescriptorParams, gaussian_descriptors
from matterflow.electrons.energy_correction import (
    EnergyCorrection,
    cell_features,
    feature_domain,
    fit_ridge_loo,
)
from matterflow.electrons.structures import aluminium_supercell


def test_ridge_recovers_an_exact_linear_law():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(40, 6)) * [1, 2, 3, 4, 5, 6] + 10.0
    v = np.full(40, 120.0)
    w_true = np.array([0.3, -0.2, 0.1, 0.05, -0.01, 0.02])
    y = p @ w_true + 0.004 * v
    coef, per_volume, lam, loo = fit_ridge_loo(p, v, y, lambdas=(1e-10,))
    np.testing.assert_allclose(coef, w_true, rtol=1e-6)
    assert per_volume == pytest.approx(0.004, rel=1e-6)
    assert loo < 1e-6


def test_closed_form_leave_one_out_equals_refitting():
    """The hat-matrix LOO error equals refitting without each cell (brute force, same ridge)."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(15, 4))
    v = np.full(15, 50.0)
    y = p @ [1.0, -0.5, 0.2, 0.0] + rng.normal(scale=0.3, size=15)
    lam = 0.7
    _, _, _, loo = fit_ridge_loo(p, v, y, lambdas=(lam,))
    errs = []
    for i in range(15):
        m = np.arange(15) != i
        coef, per_v, _, _ = fit_ridge_loo(p[m], v[m], y[m], lambdas=(lam,))
        # the ridge acts on features standardised over the *fitted* cells: refit reproduces that
        errs.append(p[i] @ coef + per_v * v[i] - y[i])
    assert loo == pytest.approx(np.sqrt(np.mean(np.square(errs))), rel=0.15)


def test_cell_features_are_extensive():
    """A 2x1x1 supercell on the doubled grid has twice the cell integrals of the descriptors."""
    params = GaussianDescriptorParams()
    atoms = aluminium_supercell((1, 1, 1), temperature_k=298.0, seed=3)
    big = atoms.repeat((2, 1, 1))
    f1 = cell_features(gaussian_descriptors(atoms, (8, 8, 8), params), atoms.get_volume() / 512)
    f2 = cell_features(gaussian_descriptors(big, (16, 8, 8), params), big.get_volume() / 1024)
    np.testing.assert_allclose(f2, 2 * f1, rtol=1e-9)
    corr = EnergyCorrection(band_coef=tuple(np.linspace(-1, 1, len(f1))), total_coef=tuple(np.ones(len(f1))),
                            band_per_volume_ev=0.01, total_per_volume_ev=-0.02, band_lambda=1.0, total_lambda=1.0,
                            band_loo_mev_per_atom=0.0, total_loo_mev_per_atom=0.0, n_snapshots=3)
    np.testing.assert_allclose(corr.apply(f2, big.get_volume()), 2 * np.array(corr.apply(f1, atoms.get_volume())),
                               rtol=1e-9)
    assert EnergyCorrection.from_dict(corr.to_dict()) == corr


def test_leverage_is_the_ridge_hat_diagonal_and_flags_extrapolation():
    """On the training cells the domain's leverage is the diagonal of the ridge hat matrix
    A (AᵀA + λP)⁻¹ Aᵀ (written out here); it is intensive (a supercell of a cell has the same);
    a cell beyond the training cells extrapolates; JSON keeps it; old corrections skip it."""
    rng = np.random.default_rng(2)
    n, nf, lam = 30, 5, 0.3
    p = rng.normal(size=(n, nf)) + 10.0
    p[:, -1] = 7.0                                   # a constant feature drops out
    v = np.full(n, 100.0)
    dom = feature_domain(p, v, lam)
    q = p[:, :-1] / v[:, None]
    a = np.c_[(q - q.mean(0)) / q.std(0), np.ones(n)]
    hat = a @ np.linalg.solve(a.T @ a + lam * np.diag([1.0] * (nf - 1) + [0.0]), a.T)
    corr = EnergyCorrection((0.0,) * nf, (0.0,) * nf, 0.0, 0.0, lam, lam, 0.0, 0.0, n, domain=dom)
    h = np.array([corr.leverage(p[i], v[i]) for i in range(n)])
    np.testing.assert_allclose(h, np.diag(hat), rtol=1e-8)
    assert dom["max_training_leverage"] == pytest.approx(np.diag(hat).max())
    assert corr.leverage(2 * p[3], 2 * v[3]) == pytest.approx(h[3])
    assert not any(corr.extrapolates(p[i], v[i]) for i in range(n))
    far = p[0] + 4 * p.std(0)
    assert corr.extrapolates(far, v[0])
    again = EnergyCorrection.from_dict(json.loads(json.dumps(corr.to_dict())))
    assert again.leverage(far, v[0]) == pytest.approx(corr.leverage(far, v[0]))
    old = EnergyCorrection((0.0,) * nf, (0.0,) * nf, 0.0, 0.0, lam, lam, 0.0, 0.0, n)
    assert old.leverage(far, v[0]) is None and not old.extrapolates(far, v[0])


def test_caveats_name_an_interpolating_or_useless_fit():
    """Fewer cells than features, or a leave-one-out error not below the uncorrected one, is said
    in words (and warned by attach_energy_correction); old saved corrections still load."""
    rng = np.random.default_rng(3)
    nf = 6
    p, v = rng.normal(size=(40, nf)) + 10.0, np.full(40, 100.0)
    args = ((0.0,) * nf, (0.0,) * nf, 0.0, 0.0, 1.0, 1.0)
    good = EnergyCorrection(*args, 3.0, 3.5, 40, domain=feature_domain(p, v, 1.0),
                            band_uncorrected_rms_mev_per_atom=6.0, total_uncorrected_rms_mev_per_atom=7.0)
    assert good.caveats() == []
    assert "(uncorrected 6.00, 7.00)" in good.summary()
    few = EnergyCorrection(*args, 3.0, 3.5, 5, domain=feature_domain(p[:5], v[:5], 1.0))
    assert any("5 cells with 6 varying features" in c for c in few.caveats())
    useless = EnergyCorrection(*args, 5.8, 3.5, 40, band_uncorrected_rms_mev_per_atom=6.0,
                               total_uncorrected_rms_mev_per_atom=7.0)
    (text,) = useless.caveats()
    assert text.startswith("band energy") and "5.80" in text and "6.00" in text
    d = good.to_dict()
    del d["band_uncorrected_rms_mev_per_atom"], d["total_uncorrected_rms_mev_per_atom"]
    old = EnergyCorrection.from_dict(d)
    assert old.band_uncorrected_rms_mev_per_atom is None and old.caveats() == []
    again = EnergyCorrection.from_dict(json.loads(json.dumps(good.to_dict())))
    assert again.summary() == good.summary() and again.caveats() == []


def test_bad_input():
    with pytest.raises(InputError, match="at least 3"):
        fit_ridge_loo(np.ones((2, 3)), np.ones(2), np.ones(2))
    with pytest.raises(InputError, match="NaN"):
        fit_ridge_loo(np.full((4, 3), np.nan), np.ones(4), np.ones(4))
    with pytest.raises(InputError, match="features"):
        fit_ridge_loo(np.ones((4, 3)), np.ones(5), np.ones(4))
    corr = EnergyCorrection((0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 3)
    with pytest.raises(InputError, match="2 cell features"):
        corr.apply(np.ones(3), 1.0)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    from matterflow.electrons.snapshot import save_snapshot

    d = tmp_path_factory.mktemp("snaps_corr")
    return [save_snapshot(_snapshot(s), d / f"s{s}.h5") for s in range(5)]


def test_correct_and_evaluate_commands(snapshots, tmp_path):
    runner = CliRunner()
    model = tmp_path / "m.pt"
    res = runner.invoke(app, ["electrons", "train", *map(str, snapshots), "--test", "0", "--kind", "gaussian",
                              "--hidden", "16", "--epochs", "5", "--out", str(model), "-q"])
    assert res.exit_code == 0, res.output
    raw_json, cor_json = tmp_path / "raw.json", tmp_path / "cor.json"
    res = runner.invoke(app, ["electrons", "evaluate", str(model), *map(str, snapshots), "--json", str(raw_json), "-q"])
    assert res.exit_code == 0 and "without it" not in res.output
    corrected = tmp_path / "mc.pt"
    res = runner.invoke(app, ["electrons", "correct", str(model), *map(str, snapshots), "--out", str(corrected), "-q"])
    assert res.exit_code == 0, res.output
    assert "fitted on 5 snapshots" in res.output and "(uncorrected " in res.output
    res = runner.invoke(app, ["electrons", "evaluate", str(corrected), *map(str, snapshots), "--json", str(cor_json),
                              "-q"])
    assert res.exit_code == 0 and "without it" in res.output
    assert "extrapolates (leverage above" in res.output and "on 0/5 snapshots" in res.output
    raw, cor = json.loads(raw_json.read_text()), json.loads(cor_json.read_text())
    for r0, r1 in zip(raw["snapshots"], cor["snapshots"], strict=True):
        # "uncorrected" of the corrected model = the model before `correct`
        for key in ("band_energy_mev_per_atom", "total_energy_mev_per_atom"):
            assert r1["uncorrected"][key] == pytest.approx(r0[key], abs=1e-6)
        assert r1["density_mrae_percent"] == pytest.approx(r0["density_mrae_percent"])
    # in-sample, a ridge fit with a free constant never increases the squared error
    for key in ("band_energy_mev_per_atom", "total_energy_mev_per_atom"):
        rms0 = np.sqrt(np.mean([r[key] ** 2 for r in raw["snapshots"]]))
        rms1 = np.sqrt(np.mean([r[key] ** 2 for r in cor["snapshots"]]))
        assert rms1 <= rms0 + 1e-9
    res = runner.invoke(app, ["electrons", "correct", str(tmp_path / "none.pt"), str(snapshots[0])])
    assert res.exit_code == 2 and "none.pt" in res.output
    res = runner.invoke(app, ["electrons", "correct", str(model), *map(str, snapshots[:2]), "--out",
                              str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "at least 3" in res.output


def test_train_with_energy_correction(snapshots, tmp_path):
    from matterflow.electrons.model import load_model
    from matterflow.electrons.predict import predict_observables
    from matterflow.electrons.snapshot import load_snapshot

    out = tmp_path / "m.pt"
    res = CliRunner().invoke(app, ["electrons", "train", *map(str, snapshots), "--test", "1", "--kind", "gaussian",
                                   "--hidden", "8", "--epochs", "3", "--energy-correction", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "energy correction fitted on 4 snapshots" in res.output
    m = load_model(out)
    corr = EnergyCorrection.from_dict(m.setup.meta["energy_correction"])
    assert corr.n_snapshots == 4
    snap = load_snapshot(snapshots[-1])
    on = predict_observables(m, snap.atoms, grid_shape=snap.grid_shape, scheduler="synchronous")
    off = predict_observables(m, snap.atoms, grid_shape=snap.grid_shape, scheduler="synchronous",
                              energy_correction=False)
    db, dt = corr.apply(off.cell_features, snap.atoms.get_volume())
    assert on.band_energy_ev == pytest.approx(off.band_energy_ev + db, abs=1e-9)
    assert on.total_energy_ev == pytest.approx(off.total_energy_ev + dt, abs=1e-9)
    assert on.energy_correction_ev == pytest.approx({"band": db, "total": dt})
    assert 0 < on.energy_correction_leverage and off.energy_correction_leverage is None
    # A cell outside the training cells gets a warning. Which cell is outside depends on the
    # ridge strength the leave-one-out fit picks (it moves with library versions), so pick a
    # stretch that lies outside the domain at *every* strength the fit can choose: then the
    # warning must come, whatever strength was chosen.
    from matterflow.electrons.energy_correction import LAMBDAS, feature_domain

    train = [load_snapshot(s) for s in snapshots[:4]]

    def features(atoms):
        return predict_observables(m, atoms, grid_shape=snap.grid_shape, scheduler="synchronous",
                                   energy_correction=False).cell_features

    P = np.array([features(s.atoms) for s in train])
    V = np.array([s.atoms.get_volume() for s in train])
    domains = [feature_domain(P, V, lam) for lam in LAMBDAS]

    def outside_at_every_strength(atoms):
        f = features(atoms)
        return all(dataclasses.replace(corr, domain=dom).extrapolates(f, atoms.get_volume())
                   for dom in domains)

    stretched = None
    for factor in (1.06, 1.2, 1.5, 2.0):
        candidate = snap.atoms.copy()
        candidate.set_cell(candidate.cell * factor, scale_atoms=True)
        if outside_at_every_strength(candidate):
            stretched = candidate
            break
    assert stretched is not None, "no stretch of up to 2x leaves the training cells' domain"
    with pytest.warns(UserWarning, match="energy correction: this cell lies outside its 4 training cells"):
        predict_observables(m, stretched, grid_shape=snap.grid_shape, scheduler="synchronous")
    # a training cell is inside by definition (its leverage is at most the largest): no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        predict_observables(m, train[0].atoms, grid_shape=snap.grid_shape, scheduler="synchronous")
    np.testing.assert_allclose(on.density, off.density)
