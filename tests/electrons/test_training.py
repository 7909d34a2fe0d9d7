"""Training loop: early stopping, LR schedule, checkpoint resume, DistributedDataParallel."""

import numpy as np
import pytest
import torch
from ml_synthetic import synthetic_ldos

from matterflow.core.errors import InputError
from matterflow.electrons.scaling import Scaler
from matterflow.electrons.training import TrainParams, build_feedforward, train_network

NET = {"n_in": 6, "n_out": 24, "hidden": [16, 16], "activation": "tanh"}


def _data(n=600):
    x, y, _ = synthetic_ldos(n)
    sx, sy = Scaler("standard").fit(x), Scaler("max").fit(y)
    k = int(0.8 * n)
    return sx.transform(x[:k]), sy.transform(y[:k]), sx.transform(x[k:]), sy.transform(y[k:])


class Killed(Exception):
    pass


def test_resume_after_kill_repeats_uninterrupted_run(tmp_path):
    data = _data()
    params = TrainParams(max_epochs=8, batch_size=32, learning_rate=3e-3, patience=50, seed=3)
    full = train_network(build_feedforward, NET, *data, params)

    def kill_after_epoch_4(epoch, loss):
        if epoch == 4:
            raise Killed  # the process dies after the checkpoint of epoch 4 was written

    with pytest.raises(Killed):
        train_network(build_feedforward, NET, *data, params, checkpoint_dir=tmp_path,
                      on_epoch=kill_after_epoch_4)
    resumed = train_network(build_feedforward, NET, *data, params, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_epoch == 4
    assert resumed.epochs_run == full.epochs_run == 8
    np.testing.assert_allclose(resumed.val_loss, full.val_loss, rtol=1e-6)
    for k, v in full.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[k], v)
    # a finished run is not trained again
    again = train_network(build_feedforward, NET, *data, params, checkpoint_dir=tmp_path)
    assert again.resumed_from_epoch == 7 and again.val_loss == resumed.val_loss
    # a checkpoint of another run (other seed) is not resumed
    other = train_network(build_feedforward, NET, *data, params.model_copy(update={"seed": 4,
                          "max_epochs": 2}), checkpoint_dir=tmp_path)
    assert other.resumed_from_epoch is None


def test_early_stopping_and_lr_schedule():
    data = _data(200)
    # a learning rate so small that nothing improves by min_delta: stops after `patience`
    p = TrainParams(max_epochs=100, batch_size=50, learning_rate=1e-7, patience=4, lr_patience=1,
                    lr_factor=0.5, min_delta=0.01)
    res = train_network(build_feedforward, NET, *data, p)
    assert res.stopped_early and res.epochs_run == res.best_epoch + 1 + 4 < 100
    lrs = np.array(res.learning_rate)
    assert lrs[-1] < lrs[0] and np.all(np.diff(lrs) <= 0)


def test_ddp_two_processes_learns(tmp_path):
    data = _data()
    p = TrainParams(max_epochs=25, batch_size=32, learning_rate=3e-3, patience=50, seed=0, nproc=2)
    res = train_network(build_feedforward, NET, *data, p, checkpoint_dir=tmp_path)
    single = train_network(build_feedforward, NET, *data, p.model_copy(update={"nproc": 1}))
    assert res.epochs_run == 25
    # both learn the map; DDP (same effective batch) reaches a comparable loss
    assert res.best_val_loss < 0.2 * res.val_loss[0]
    assert res.best_val_loss < 3 * single.best_val_loss
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["finished"]


def test_bad_training_input():
    x, y, xv, yv = _data(100)
    with pytest.raises(InputError, match="y_train"):
        train_network(build_feedforward, NET, x, y[:, :, None], xv, yv, TrainParams())
    with pytest.raises(InputError, match="activation"):
        train_network(build_feedforward, {**NET, "activation": "swish2"}, x, y, xv, yv,
                      TrainParams(max_epochs=1))
