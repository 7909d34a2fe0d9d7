"""Potential families, tasks, the dataset workflow on the core executor, the FNO model and the CLI."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from matterflow.core.errors import InputError, NotFittedError
from matterflow.dft1d.potentials import (
    DEFAULT_FAMILIES,
    FAMILIES,
    sample_potential,
    sample_potentials,
)


def test_families_are_bound_and_reproducible():
    x = np.linspace(-10, 10, 64)
    a, fa = sample_potentials(list(FAMILIES), 12, x, seed=4)
    b, _ = sample_potentials(list(FAMILIES), 12, x, seed=4)
    c, _ = sample_potentials(list(FAMILIES), 12, x, seed=5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert fa[:9] == list(FAMILIES) and np.isfinite(a).all() and a.max() <= 5.5
    # a double well has two minima, a harmonic well grows at the edges
    dw = sample_potential("double_well", x, np.random.default_rng(0))
    assert ((dw[1:-1] < dw[:-2]) & (dw[1:-1] < dw[2:])).sum() == 2


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown potential family 'square'.*gaussian_wells"):
        sample_potential("square", np.linspace(0, 1, 10), np.random.default_rng(0))
    from matterflow.dft1d.inversion_tasks import potentials

    with pytest.raises(InputError, match="families"):
        potentials(params={"families": ["harmonic", "nope"]})


def test_potentials_task_splits_and_holdout():
    from matterflow.dft1d.inversion_tasks import potentials

    p = potentials(params={"n_samples": 40, "holdout_family": "harmonic", "seed": 2})
    assert p.v_ext.shape == (40, 64)
    assert {s for s, f in zip(p.split, p.family, strict=True) if f == "harmonic"} == {"ood"}
    assert "ood" not in {s for s, f in zip(p.split, p.family, strict=True) if f != "harmonic"}


def test_exact_invert_task_one_sample():
    from matterflow.dft1d.inversion_tasks import exact_invert, potentials

    p = potentials(params={"n_samples": 2, "n_points": 48, "seed": 1})
    r = exact_invert(p.v_ext[1], p.x)
    assert r.max_density_error <= 1e-6
    assert np.sum(r.density) * (p.x[1] - p.x[0]) == pytest.approx(2.0)
    assert np.allclose(r.v_ks - p.v_ext[1], r.v_hxc)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from matterflow.dft1d.datasets import generate_dataset, load_dataset

    out = tmp_path_factory.mktemp("ds")
    path = generate_dataset(out, n_samples=24, n_points=48, workers=1, seed=3)
    return path, load_dataset(path)


def test_dataset_through_the_executor(small_dataset):
    from matterflow.dft1d.datasets import load_dataset

    path, ds = small_dataset
    assert len(ds) == 24 and ds.density.shape == (24, 48)
    assert set(ds.split) <= {"train", "val", "test"} and set(ds.family) == set(DEFAULT_FAMILIES)
    assert ds.max_density_error.max() <= 1e-6
    # the executor's results file reads back to the same arrays
    again = load_dataset(path.parent / "results.h5")
    assert np.array_equal(again.v_hxc, ds.v_hxc) and again.family == ds.family
    # ... and so does the folder that `generate --out` made
    assert np.array_equal(load_dataset(path.parent).density, ds.density)


def test_load_dataset_bad_files(tmp_path):
    from matterflow.dft1d.datasets import load_dataset

    with pytest.raises(InputError, match="no such dataset"):
        load_dataset(tmp_path / "missing.h5")
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5"):
        load_dataset(tmp_path / "x.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder without dataset.h5"):
        load_dataset(tmp_path / "empty")


def test_fno_api(small_dataset, tmp_path):
    from matterflow.dft1d.fno import DensityToPotentialFNO, evaluate_fno

    _, ds = small_dataset
    m = DensityToPotentialFNO(epochs=2, hidden_channels=8, n_modes=8, batch_size=8)
    with pytest.raises(NotFittedError):
        m.predict(ds.density)
    with pytest.raises(InputError, match="potential: shape"):
        m.fit(ds.density, ds.v_hxc[:, :-1])
    assert m.fit(ds.density, ds.v_hxc) is m
    pred = m.predict(ds.density)
    assert pred.shape == ds.v_hxc.shape and len(m.loss_history_) == 2
    with pytest.raises(InputError, match="trained on 48 grid points"):
        m.predict(ds.density[:, :40])
    m2 = DensityToPotentialFNO.load(m.save(tmp_path / "m.pt"))
    assert np.allclose(m2.predict(ds.density), pred, atol=1e-6)
    ev = evaluate_fno(m, ds.x, ds.density[:3], ds.v_ext[:3], ds.v_hxc[:3])
    assert ev.density_rel_l1.shape == (3,) and np.all(ev.density_rel_l1 >= 0)


def test_cli_commands(small_dataset, tmp_path):
    from matterflow.cli import app

    path, _ = small_dataset
    run = CliRunner().invoke
    r = run(app, ["dft1d", "invert", str(path), "-i", "1", "-o", str(tmp_path / "inv.npz")])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "inv.npz")["max_density_error"][0] <= 1e-6
    r = run(app, ["dft1d", "train-fno", str(path), "--epochs", "1", "--hidden-channels", "8",
                  "--holdout-family", "harmonic", "-q", "-o", str(tmp_path / "fno")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "fno" / "fno.pt").exists() and (tmp_path / "fno" / "metrics.json").exists()
    # physics loss, warm-started from the model just written
    r = run(app, ["dft1d", "train-fno", str(path), "--epochs", "1", "--density-weight", "0.5",
                  "--density-warmup", "0", "--init-model", str(tmp_path / "fno" / "fno.pt"),
                  "-q", "-o", str(tmp_path / "fno2")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "fno2" / "metrics.json").read_text())
    assert m["density_weight"] == 0.5 and np.isfinite(m["final_train_density_loss"])
    r = run(app, ["dft1d", "train-fno", "--help"])
    assert "--density-weight" in r.output and "--init-model" in r.output
    r = run(app, ["dft1d", "generate", "--families", "harmonic,square", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "square" in r.output
    r = run(app, ["dft1d", "train-fno", str(path), "--holdout-family", "square"])
    assert r.exit_code == 2 and "square" in r.output


def test_triplet_dataset_is_scored_with_two_singly_occupied_orbitals(tmp_path):
    """A triplet's KS system fills two orbitals with one electron each, not one with two:
    train-fno, train_and_evaluate and evaluate_fno must use the dataset's occupations."""
    from matterflow.cli import app
    from matterflow.dft1d.datasets import generate_dataset, load_dataset
    from matterflow.dft1d.fno import DensityToPotentialFNO, evaluate_fno, train_and_evaluate

    path = generate_dataset(tmp_path / "ds", n_samples=16, n_points=48, families=["harmonic",
                            "double_well"], spin="triplet", workers=1, seed=1)
    ds = load_dataset(path)
    assert ds.attrs["spin"] == "triplet"

    class Exact:  # the inverted potentials themselves: the density check must give them back
        def predict(self, density):
            return ds.v_hxc[: len(density)]

    args = (ds.x, ds.density[:4], ds.v_ext[:4], ds.v_hxc[:4])
    assert evaluate_fno(Exact(), *args, spin="polarised").density_rel_l1.max() < 1e-5
    assert evaluate_fno(Exact(), *args, spin="unpolarised").density_rel_l1.min() > 1e-2
    model, rep = train_and_evaluate(ds.x, ds.v_ext, ds.density, ds.v_hxc, ds.split, ds.family,
                                    spin="triplet", epochs=1, hidden_channels=4, n_timing=1)
    assert model.spin == "polarised"
    te = rep.test_index
    again = evaluate_fno(model, ds.x, ds.density[te], ds.v_ext[te], ds.v_hxc[te], spin="polarised")
    np.testing.assert_allclose(rep.test_density_rel_l1, again.density_rel_l1, rtol=1e-6)
    with pytest.raises(InputError, match="spin: accepted singlet, triplet"):
        train_and_evaluate(ds.x, ds.v_ext, ds.density, ds.v_hxc, ds.split, ds.family, spin="quartet")
    r = CliRunner().invoke(app, ["dft1d", "train-fno", str(path), "--epochs", "1", "--hidden-channels",
                                 "4", "-q", "-o", str(tmp_path / "fno")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "fno" / "metrics.json").read_text())["spin"] == "triplet"
    assert DensityToPotentialFNO.load(tmp_path / "fno" / "fno.pt").spin == "polarised"


@pytest.mark.slow
def test_fno_accuracy_in_distribution(tmp_path):
    """Issue goal: rel. L2 <= 3 % on held-out samples (a few minutes of training).

    The speed ratio to the numerical inversion depends on the systems and the machine load
    (the benchmark benchmarks/dft1d_fno.py reports it); it is not asserted here."""
    from matterflow.dft1d.datasets import generate_dataset, load_dataset
    from matterflow.dft1d.fno import train_and_evaluate

    ds = load_dataset(generate_dataset(tmp_path, n_samples=1000, families=["harmonic",
                                       "gaussian_wells"], workers=2))
    _, rep = train_and_evaluate(ds.x, ds.v_ext, ds.density, ds.v_hxc, ds.split, ds.family,
                                epochs=60)
    assert rep.test_rel_l2.mean() <= 0.03
    assert rep.fno_seconds_per_sample < rep.wu_yang_seconds_per_sample


@pytest.mark.slow
def test_fno_density_goal_for_triplet_pairs(tmp_path):
    """Issue goal on triplet pairs (no closed-form inversion): potential rel. L2 <= 3 % and the
    density of the predicted potential within 1 % relative L1 on average over the test split
    (8,000 samples, the small 12,721-parameter model; about 6 minutes on 2 cores).

    Singlet pairs do not meet the density goal on average; see docs/dft1d.md."""
    from matterflow.dft1d.datasets import generate_dataset, load_dataset
    from matterflow.dft1d.fno import train_and_evaluate

    ds = load_dataset(generate_dataset(tmp_path, n_samples=8000, spin="triplet", seed=11,
                                       workers=2))
    model, rep = train_and_evaluate(ds.x, ds.v_ext, ds.density, ds.v_hxc, ds.split, ds.family,
                                    spin="triplet", epochs=60, n_modes=16, hidden_channels=16,
                                    batch_size=32, density_weight=1.0, physics_loss="wu_yang",
                                    exact_hx=True, n_timing=5)
    assert model.n_parameters_ < 20_000
    assert rep.test_rel_l2.mean() <= 0.03
    assert rep.test_density_rel_l1.mean() <= 0.01
