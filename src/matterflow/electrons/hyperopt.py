"""Hyper-parameter search of the LDOS network with Optuna, resumable from SQLite.

:func:`run_study` opens (or creates) the study ``study_name`` in ``storage``
(``sqlite:///path/study.db``, ``load_if_exists=True``) and runs trials until
the study holds ``n_trials`` finished trials (complete or pruned): rerunning
the same command after a kill continues the same study, it does not start
again. Trials left ``RUNNING`` by a killed process are marked failed and their
parameters are queued to be tried again.

Each trial samples the number of hidden layers, their widths, the activation,
the learning rate and the batch size, trains with the normal training loop and
reports the validation loss after every epoch; Optuna's median pruner stops
unpromising trials early (:class:`optuna.pruners.MedianPruner`).

With ``naswot_prefilter=k`` a trial first draws ``k`` architectures and keeps
the one with the best NASWOT score (:mod:`~matterflow.electrons.naswot`), a
training-free way to spend training time on better candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from matterflow.core.errors import InputError
from matterflow.core.registry import Params
from matterflow.electrons.training import TrainParams, build_feedforward, train_network

__all__ = ["HyperoptParams", "StudyResult", "run_study", "trial_architecture"]


class HyperoptParams(Params):
    """Search space and budget of a hyper-parameter study."""

    n_trials: int = Field(20, ge=1, le=100_000, description="finished trials the study should hold")
    min_layers: int = Field(1, ge=1, le=16, description="fewest hidden layers")
    max_layers: int = Field(4, ge=1, le=16, description="most hidden layers")
    widths: tuple[int, ...] = Field((16, 32, 64, 128, 256), min_length=1, description="choices of layer width")
    activations: tuple[Literal["relu", "leaky_relu", "tanh", "sigmoid", "silu", "gelu"], ...] = Field(
        ("relu", "leaky_relu", "tanh"), min_length=1, description="choices of activation")
    lr_min: float = Field(1e-4, gt=0, description="smallest learning rate (log-uniform)")
    lr_max: float = Field(1e-2, gt=0, le=1, description="largest learning rate")
    batch_sizes: tuple[int, ...] = Field((64, 128, 256), min_length=1, description="choices of batch size")
    epochs: int = Field(30, ge=1, le=100_000, description="max epochs per trial")
    patience: int = Field(8, ge=1, description="early stopping patience per trial")
    pruner: Literal["median", "none"] = Field("median", description="Optuna pruner")
    pruner_warmup_epochs: int = Field(3, ge=0, description="epochs before a trial may be pruned")
    pruner_startup_trials: int = Field(3, ge=0, description="trials before pruning starts")
    naswot_prefilter: int = Field(
        0, ge=0, le=1000,
        description="draw this many architectures per trial, keep the best NASWOT score (0: off)")
    seed: int = Field(0, ge=0, description="seed of the sampler and of the training")


@dataclass(frozen=True)
class StudyResult:
    """Summary of a study after :func:`run_study`."""

    study_name: str
    storage: str
    best_params: dict[str, Any]
    best_value: float
    n_complete: int
    n_pruned: int
    n_failed: int
    n_run_now: int
    trials: list[dict[str, Any]]


def trial_architecture(params: dict[str, Any]) -> dict[str, Any]:
    """``{"hidden": [...], "activation": ...}`` of a trial's parameters."""
    hidden = [int(params[f"width_{i}"]) for i in range(int(params["n_layers"]))]
    return {"hidden": hidden, "activation": params["activation"]}


def _fail_stale(study: Any) -> int:
    """Mark trials left RUNNING by a killed process failed, and queue their parameters again."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, skip_if_exists=True)
    return len(stale)


def run_study(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              params: HyperoptParams, *, storage: str, study_name: str = "ldos",
              callback: Any = None) -> StudyResult:
    """Run (or resume) an Optuna study on scaled arrays; the objective is the best validation MSE.

    Parameters
    ----------
    x_train, y_train, x_val, y_val : ndarray
        Scaled descriptors (n, n_features) and LDOS (n, n_energies).
    params : HyperoptParams
    storage : str
        Optuna storage URL, e.g. ``sqlite:///study.db``.
    study_name : str
    callback : callable, optional
        ``callback(n_finished, n_target)`` after each trial (progress bars).
    """
    import optuna
    import torch

    if params.max_layers < params.min_layers:
        raise InputError(f"max_layers ({params.max_layers}) must be >= min_layers ({params.min_layers})")
    if params.lr_max < params.lr_min:
        raise InputError(f"lr_max ({params.lr_max}) must be >= lr_min ({params.lr_min})")
    if not storage.startswith(("sqlite:///", "postgresql", "mysql")):
        raise InputError(f"storage: a database URL such as sqlite:///study.db is needed; got {storage!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=params.pruner_startup_trials,
                                          n_warmup_steps=params.pruner_warmup_epochs)
              if params.pruner == "median" else optuna.pruners.NopPruner())
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize",
                                    load_if_exists=True, pruner=pruner,
                                    sampler=optuna.samplers.TPESampler(seed=params.seed))
    except Exception as exc:
        raise InputError(f"storage {storage!r}: cannot open the Optuna study ({exc})") from None
    _fail_stale(study)
    n_in, n_out = x_train.shape[1], y_train.shape[1]
    rng = np.random.default_rng(params.seed)

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        n_layers = trial.suggest_int("n_layers", params.min_layers, params.max_layers)
        for i in range(n_layers):
            trial.suggest_categorical(f"width_{i}", list(params.widths))
        trial.suggest_categorical("activation", list(params.activations))
        return trial_architecture(trial.params)

    def objective(trial: optuna.Trial) -> float:
        arch = suggest(trial)
        if params.naswot_prefilter > 1:
            from matterflow.electrons.naswot import naswot_score, sample_architectures

            cands = [arch, *sample_architectures(params.naswot_prefilter - 1, max_layers=params.max_layers,
                                                 widths=params.widths, activations=params.activations,
                                                 seed=int(rng.integers(1 << 31)))]
            batch = x_train[rng.choice(x_train.shape[0], size=min(128, x_train.shape[0]), replace=False)]
            scores = [naswot_score(build_feedforward(n_in, n_out, **c), batch) for c in cands]
            arch = cands[int(np.argmax(scores))]
            trial.set_user_attr("naswot_architecture", arch)
        lr = trial.suggest_float("learning_rate", params.lr_min, params.lr_max, log=True)
        bs = trial.suggest_categorical("batch_size", list(params.batch_sizes))
        tp = TrainParams(learning_rate=lr, batch_size=bs, max_epochs=params.epochs, patience=params.patience,
                         seed=params.seed)

        def report(epoch: int, loss: float) -> None:
            trial.report(loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        torch.manual_seed(params.seed)
        res = train_network(build_feedforward, {"n_in": n_in, "n_out": n_out, **arch},
                            x_train, y_train, x_val, y_val, tp, on_epoch=report)
        trial.set_user_attr("architecture", arch)
        trial.set_user_attr("epochs", res.epochs_run)
        return res.best_val_loss

    def finished() -> int:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        return len(study.get_trials(deepcopy=False, states=states))

    n_before = len(study.trials)
    while finished() < params.n_trials:
        study.optimize(objective, n_trials=1, catch=(RuntimeError,))
        if callback is not None:
            callback(finished(), params.n_trials)
    S = optuna.trial.TrialState
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, **t.params,
               "architecture": t.user_attrs.get("architecture"),
               "epochs": len(t.intermediate_values)}
              for t in study.trials]
    done = [t for t in study.trials if t.state == S.COMPLETE]
    best = study.best_trial if done else None
    return StudyResult(study_name=study_name, storage=storage,
                       best_params={**best.params, **best.user_attrs.get("architecture", {})} if best else {},
                       best_value=float(best.value) if best else float("nan"),
                       n_complete=len(done), n_pruned=sum(t.state == S.PRUNED for t in study.trials),
                       n_failed=sum(t.state == S.FAIL for t in study.trials),
                       n_run_now=len(study.trials) - n_before, trials=trials)
