"""Parametric TDKS PINN (singlet pair, adiabatic EXX): ansatz, training, persistence."""

import numpy as np
import pytest

from matterflow.core.errors import InputError, NotFittedError
from matterflow.dft1d.pinn_tdks import TDKSPINN, break_even_queries, compare_tdks, evaluate_tdks
from matterflow.dft1d.tdks import TDKSSetup, grid, ks_state, propagate_tdks

TINY = dict(t_final=2.0, e0_max=0.1, omega_min=0.4, omega_max=0.9, width=24, depth=2,
            n_fourier=2, n_blocks=8, n_quad=32, n_time_bins=4, n_threads=1, causal_eps=0.0)


@pytest.fixture(scope="module")
def tiny_model():
    return TDKSPINN(adam_steps=150, learning_rate=5e-3, seed=1, **TINY).fit()


def test_training_reduces_the_residual_and_the_density_error(tiny_model):
    untrained = TDKSPINN(adam_steps=0, seed=1, **TINY).fit()
    assert tiny_model.residual_loss() < 0.3 * untrained.residual_loss()
    assert len(tiny_model.loss_history_) == 150 and tiny_model.fit_time_s_ > 0
    # against the Crank–Nicolson reference: the trained net beats the untrained one
    before = compare_tdks(untrained, 0.1, 0.9, 0, n_x=128, n_steps=200, n_saved=21)
    after = compare_tdks(tiny_model, 0.1, 0.9, 0, n_x=128, n_steps=200, n_saved=21)
    assert after["induced_error"] < 0.7 * before["induced_error"]


@pytest.mark.parametrize("state", [0, 1])
def test_initial_condition_and_field_free_limit_are_exact(tiny_model, state):
    setup = TDKSSetup(t_final=2.0)
    x = grid(setup.x_max, 300)
    orb = ks_state(setup, x, state)
    phi = tiny_model.predict_phi(x, np.array([0.0]), 0.07, 0.5, state)[0]
    assert np.max(np.abs(phi - orb.orbital)) < 2e-3
    # E₀ = 0: the self-consistent state is stationary, φ = exp(-iεt) φ_s (the CN reference agrees)
    t = np.linspace(0, 2, 5)
    phi_t = tiny_model.predict_phi(x, t, 0.0, 0.5, state)
    assert np.allclose(phi_t, np.exp(-1j * orb.energy * t)[:, None] * orb.orbital, atol=2e-3)
    ref = propagate_tdks(setup, 0.0, 0.5, state=state, n_x=300, n_steps=200, n_saved=5)
    assert np.allclose(2 * np.abs(phi_t) ** 2, ref.density, atol=5e-3)


def test_save_and_load_give_the_same_predictions(tiny_model, tmp_path):
    again = TDKSPINN.load(tiny_model.save(tmp_path / "m.pt"))
    x, t = np.linspace(-9, 9, 33), np.linspace(0, 2, 9)
    assert np.array_equal(again.predict_phi(x, t, 0.04, 0.6, 1),
                          tiny_model.predict_phi(x, t, 0.04, 0.6, 1))
    assert again.get_params() == tiny_model.get_params()


def test_evaluation_summary_and_break_even(tiny_model):
    ev = evaluate_tdks(tiny_model, [(0.1, 0.4, 0), (0.05, 0.9, 1)], n_x=96, n_steps=100, n_saved=21)
    assert ev["worst_density_error"] == max(r["density_error"] for r in ev["rows"])
    assert ev["worst_case"] in [(0.1, 0.4, 0), (0.05, 0.9, 1)]
    assert break_even_queries(100.0, 0.01, 0.11) == 1000
    assert break_even_queries(100.0, 0.2, 0.1) == float("inf")


def test_bad_use_is_reported(tiny_model):
    with pytest.raises(NotFittedError):
        TDKSPINN().predict_density(np.zeros(3), np.zeros(2), 0.01, 0.5)
    with pytest.raises(InputError, match="states"):
        TDKSPINN(states=(0, 2), adam_steps=0).fit()
    with pytest.raises(InputError, match="omega_min"):
        TDKSPINN(omega_min=1.0, omega_max=0.5, adam_steps=0).fit()
    with pytest.raises(InputError, match="omega"):
        tiny_model.predict_phi(np.zeros(3), np.zeros(2), 0.05, 2.0)
    with pytest.raises(InputError, match="e0"):
        tiny_model.predict_phi(np.zeros(3), np.zeros(2), 0.5, 0.5)
    with pytest.raises(InputError, match="not a saved TDKSPINN"):
        TDKSPINN.from_bytes(b"garbage")


def test_cli_trains_compares_and_writes_nexus(tmp_path):
    import h5py
    from typer.testing import CliRunner

    from matterflow.cli import app

    runner = CliRunner()
    model, out, fig = tmp_path / "m.pt", tmp_path / "r.h5", tmp_path / "f.png"
    common = ["--n-x", "64", "--n-steps", "100", "--n-saved", "11", "--test-e0", "0.05",
              "--test-omega", "0.5", "--test-state", "1"]
    r = runner.invoke(app, ["dft1d", "pinn-tdks", "--adam-steps", "5", "--width", "8",
                            "--depth", "1", "--t-final", "2", "--save", str(model), "-o", str(out),
                            "--figure", str(fig), "--json", *common])
    assert r.exit_code == 0, r.output
    summary = __import__("json").loads(r.output.strip().splitlines()[-1])
    assert summary["cases"] == [[0.05, 0.5, 1]] and model.is_file() and fig.stat().st_size > 0
    with h5py.File(out) as f:
        assert f["entry"].attrs["NX_class"] == "NXentry"
        d = f["entry/case_0"]
        assert d.attrs["NX_class"] == "NXdata" and d["density_pinn"].shape == (11, 64)
        assert d["density_reference"].attrs["units"] == "1/bohr"
        assert f["entry/summary/worst_density_error"][()] == pytest.approx(
            summary["worst_density_error"])
    r = runner.invoke(app, ["dft1d", "pinn-tdks", "--load", str(model), "-o", str(out), *common])
    assert r.exit_code == 0 and "worst case" in r.output, r.output
    r = runner.invoke(app, ["dft1d", "pinn-tdks", "--load", str(model), "--test-omega", "3"])
    assert r.exit_code == 2 and "outside the trained range" in r.output
    r = runner.invoke(app, ["dft1d", "pinn-tdks", "--help"])
    assert r.exit_code == 0 and "E₀" in r.output
