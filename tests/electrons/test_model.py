"""Feed-forward LDOS model: fit, predict, save/load, scaling, bad input."""

import numpy as np
import pytest
from ml_synthetic import synthetic_ldos

from matterflow.core.errors import InputError, NotFittedError
from matterflow.electrons.model import FeedForwardLdosModel, LdosSetup, load_model
from matterflow.electrons.scaling import Scaler

FAST = {"max_epochs": 60, "batch_size": 64, "learning_rate": 3e-3, "patience": 15, "seed": 1}


def test_scaler_standard_and_inverse():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, [1e-3, 1.0, 1e3], size=(500, 3))
    s = Scaler("standard").fit(x)
    z = s.transform(x)
    assert np.allclose(z.mean(axis=0), 0, atol=1e-5) and np.allclose(z.std(axis=0), 1, atol=1e-4)
    assert np.allclose(s.inverse_transform(z), x, rtol=1e-5)
    # batch-wise statistics equal one-shot statistics
    p = Scaler("standard")
    for part in np.array_split(x, 7):
        p.partial_fit(part)
    assert np.allclose(p.shift_, s.shift_) and np.allclose(p.scale_, s.scale_)
    m = Scaler("max").fit(x)
    assert np.isclose(np.abs(m.transform(x)).max(), 1.0)
    with pytest.raises(NotFittedError):
        Scaler().transform(x)
    with pytest.raises(InputError, match="NaN"):
        Scaler().fit(np.array([[np.nan, 1.0]]))


def test_fit_learns_known_map_and_roundtrips(tmp_path):
    x, y, e = synthetic_ldos(1500)
    xt, yt, _ = synthetic_ldos(300, seed=5)
    setup = LdosSetup(energy_grid_ev=tuple(e), descriptor_kind="gaussian",
                      descriptor_params={"sigma": 0.4}, grid_spacing_ang=(0.2, 0.2, 0.2),
                      valence_electrons={"Al": 3})
    m = FeedForwardLdosModel((32, 32), train=FAST, setup=setup).fit(x, y)
    pred = m.predict(xt)
    rel = np.abs(pred - yt).mean() / np.abs(yt).mean()
    assert rel < 0.1, rel
    # a constant (mean) predictor is far worse: the network learned the map
    assert rel < 0.3 * np.abs(yt - y.mean(axis=0)).mean() / np.abs(yt).mean()
    path = m.save(tmp_path / "m.pt")
    back = load_model(path)
    assert np.array_equal(back.predict(xt), pred)
    assert back.setup == setup and back.setup.valence_electrons == {"Al": 3}


def test_bad_inputs(tmp_path):
    m = FeedForwardLdosModel((4,), train={"max_epochs": 1})
    with pytest.raises(NotFittedError):
        m.predict(np.zeros((2, 3)))
    x, y, _ = synthetic_ldos(50)
    with pytest.raises(InputError, match="same number of grid points"):
        m.fit(x, y[:-1])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        m.fit(bad, y)
    m.fit(x, y)
    with pytest.raises(InputError, match="components per grid point"):
        m.predict(np.zeros((2, 3)))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_ensemble_averages_members_and_roundtrips(tmp_path):
    from matterflow.electrons.model import EnsembleLdosModel

    x, y, e = synthetic_ldos(400)
    members = [FeedForwardLdosModel((16,), train={**FAST, "max_epochs": 5, "seed": s}) for s in (0, 1)]
    ens = EnsembleLdosModel(members, setup=LdosSetup(energy_grid_ev=tuple(e))).fit(x, y,
                                                                                  checkpoint_dir=tmp_path / "ck")
    assert (tmp_path / "ck" / "member-1" / "checkpoint.pt").exists()
    np.testing.assert_allclose(ens.predict(x[:7]), (members[0].predict(x[:7]) + members[1].predict(x[:7])) / 2)
    assert ens.predict_std(x[:7]).shape == (7, len(e))
    back = load_model(ens.save(tmp_path / "e.pt"))
    np.testing.assert_allclose(back.predict(x[:7]), ens.predict(x[:7]))
    with pytest.raises(NotFittedError):
        EnsembleLdosModel(members).predict(x)


def test_refit_output_layer_is_the_least_squares_solution(tmp_path):
    """The refitted output layer equals NumPy's lstsq on the hidden features; residual mean is zero."""
    import torch

    x, y, e = synthetic_ldos(600)
    kw = {"train": {**FAST, "max_epochs": 3}}
    plain = FeedForwardLdosModel((16,), **kw).fit(x, y)
    m = FeedForwardLdosModel((16,), refit_output=True, **kw).fit(x, y)
    # same training run (same seed), then the exact solve: compare with an independent solver
    n_val = int(round(0.1 * len(x)))
    fit_idx = np.random.default_rng(FAST["seed"]).permutation(len(x))[n_val:]
    xs, ys = m.x_scaler_.transform(x[fit_idx]), m.y_scaler_.transform(y[fit_idx])
    with torch.no_grad():
        h = m.network_[:-1](torch.from_numpy(xs.astype(np.float32))).double().numpy()
    a = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    ref, *_ = np.linalg.lstsq(a, ys, rcond=None)
    np.testing.assert_allclose(m.network_[-1].weight.detach().numpy().T, ref[:-1], atol=2e-4)
    np.testing.assert_allclose(m.network_[-1].bias.detach().numpy(), ref[-1], atol=2e-4)
    # zero mean residual per energy on the training points: their summed LDOS (the DOS) is exact
    res = m.predict(x[fit_idx]) - y[fit_idx]
    assert np.abs(res.mean(axis=0)).max() < 1e-4 * np.abs(y).max()
    assert np.mean(res**2) <= np.mean((plain.predict(x[fit_idx]) - y[fit_idx]) ** 2)
    back = load_model(m.save(tmp_path / "r.pt"))
    assert back.refit_output and np.array_equal(back.predict(x[:5]), m.predict(x[:5]))
