"""Optuna study in SQLite (resume, stale trials, pruning) and the NASWOT score."""

import itertools

import numpy as np
import optuna
import pytest
import torch
from ml_synthetic import synthetic_ldos

from matterflow.core.errors import InputError
from matterflow.electrons.hyperopt import HyperoptParams, run_study
from matterflow.electrons.naswot import naswot_score, naswot_vs_training, sample_architectures
from matterflow.electrons.scaling import Scaler
from matterflow.electrons.training import TrainParams, build_feedforward


def _data(n=400, seed=0):
    x, y, _ = synthetic_ldos(n, seed=seed)
    sx, sy = Scaler("standard").fit(x), Scaler("max").fit(y)
    k = int(0.75 * n)
    return sx.transform(x[:k]), sy.transform(y[:k]), sx.transform(x[k:]), sy.transform(y[k:])


SMALL = {"widths": (8, 16), "max_layers": 2, "epochs": 6, "patience": 3, "batch_sizes": (64,),
         "pruner_startup_trials": 1, "pruner_warmup_epochs": 1}


def test_study_resumes_from_sqlite(tmp_path):
    data = _data()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = run_study(*data, HyperoptParams(n_trials=3, **SMALL), storage=url, study_name="s")
    assert first.n_run_now == 3 and first.n_complete + first.n_pruned == 3
    # a process killed during a trial leaves it RUNNING: the rerun fails it and retries its params
    study = optuna.load_study(study_name="s", storage=url)
    stale = study.ask({"n_layers": optuna.distributions.IntDistribution(1, 2)})
    again = run_study(*data, HyperoptParams(n_trials=5, **SMALL), storage=url, study_name="s")
    assert again.n_complete + again.n_pruned == 5 and again.n_failed == 1
    assert again.n_run_now == 2          # the first three trials are not run again
    assert again.trials[stale.number]["state"] == "FAIL"
    assert np.isfinite(again.best_value) and again.best_value <= first.best_value
    assert again.best_params["hidden"] and again.best_params["activation"] in SMALL_ACTS


SMALL_ACTS = ("relu", "leaky_relu", "tanh")


def test_pruning_stops_bad_trials(tmp_path):
    data = _data()
    p = HyperoptParams(n_trials=8, lr_min=1e-7, lr_max=1e-2, seed=2,
                       **{**SMALL, "epochs": 8, "patience": 8})
    res = run_study(*data, p, storage=f"sqlite:///{tmp_path / 'p.db'}")
    assert res.n_pruned >= 1
    pruned = [t for t in res.trials if t["state"] == "PRUNED"]
    # what was pruned was worse than the best finished trial at the time it stopped
    assert all(t["value"] > res.best_value for t in pruned)


def test_bad_study_input(tmp_path):
    data = _data(40)
    with pytest.raises(InputError, match="storage"):
        run_study(*data, HyperoptParams(n_trials=1), storage=str(tmp_path / "x.db"))
    with pytest.raises(InputError, match="max_layers"):
        run_study(*data, HyperoptParams(min_layers=3, max_layers=2), storage="sqlite:///:memory:")


def test_naswot_kernel_is_hamming_kernel():
    """log|K| equals a brute-force K_ij = N_A - Hamming(c_i, c_j) from the ReLU patterns."""
    torch.manual_seed(0)
    net = build_feedforward(3, 2, [40, 30], "relu")
    x = np.random.default_rng(1).normal(size=(12, 3)).astype(np.float32)
    # independent evaluation: the layers by hand
    lin1, lin2 = net[0], net[2]
    with torch.no_grad():
        h1 = torch.from_numpy(x) @ lin1.weight.T + lin1.bias
        h2 = torch.relu(h1) @ lin2.weight.T + lin2.bias
    codes = np.concatenate([(h1 > 0).numpy(), (h2 > 0).numpy()], axis=1).astype(int)
    n_a = codes.shape[1]
    k = np.array([[n_a - np.sum(a != b) for b in codes] for a in codes], dtype=float)
    assert naswot_score(net, x, regularization=0.0) == pytest.approx(np.linalg.slogdet(k)[1], rel=1e-10)
    assert naswot_score(net, x) == pytest.approx(np.linalg.slogdet(k + np.eye(12))[1], rel=1e-10)
    # duplicated inputs share a code: singular kernel
    dup = np.concatenate([x, x[:1]])
    assert naswot_score(net, dup, regularization=0.0) == float("-inf")
    assert np.isfinite(naswot_score(net, dup)) and naswot_score(net, dup) < naswot_score(net, x) + 1


def test_sample_architectures_distinct():
    arch = sample_architectures(20, seed=3)
    keys = {(tuple(a["hidden"]), a["activation"]) for a in arch}
    assert len(keys) == 20
    with pytest.raises(InputError, match="distinct"):
        sample_architectures(5, max_layers=1, widths=(8,), activations=("relu",))
    assert list(itertools.islice(arch, 1))


@pytest.mark.slow
def test_naswot_rank_correlation_20_architectures():
    data = _data(1200)
    archs = sample_architectures(20, seed=0)
    cmp = naswot_vs_training(*data, archs, TrainParams(max_epochs=15, batch_size=64, patience=5,
                                                       learning_rate=3e-3))
    assert len(cmp.scores) == 20 and np.all(np.isfinite(cmp.val_losses))
    print("spearman rho", cmp.spearman_rho)
