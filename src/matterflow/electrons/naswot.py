"""NASWOT: score a network architecture without training it (Mellor et al., ICML 2021).

For a minibatch of N inputs, every rectified unit of the untrained network is
on or off; input ``i`` gets the binary code ``c_i`` (one bit per unit of all
hidden layers, N_A bits). Two inputs with similar codes are hard to tell apart
for the network, so the score is the log-determinant of the kernel

.. math::  K_{ij} = N_A - d_H(c_i, c_j) = c_i\\cdot c_j + (1-c_i)\\cdot(1-c_j),

(plus ε on the diagonal, see :func:`naswot_score`), large when the codes of
different inputs are far apart (Mellor, Turner,
Storkey, Crowley, "Neural Architecture Search without Training", ICML 2021,
eq. 2). For smooth activations (tanh, sigmoid, SiLU, GELU) a unit is "on"
when its input is positive. The score is averaged over a few random
initialisations (``repeats``).

:func:`naswot_vs_training` samples architectures, scores them, trains each
briefly, and gives the Spearman rank correlation between score and validation
loss (a good training-free score has ρ < 0: a higher score, a lower loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.electrons.training import ACTIVATIONS, TrainParams, build_feedforward, train_network

__all__ = ["naswot_score", "sample_architectures", "naswot_vs_training", "NaswotComparison"]


def _activation_codes(net: Any, x: Any) -> np.ndarray:
    """Binary on/off codes (N, N_A) of every activation input for the batch ``x``."""
    import torch

    codes: list[Any] = []
    acts = (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.SiLU,
            torch.nn.GELU)
    hooks = [m.register_forward_hook(lambda mod, inp, out: codes.append((inp[0] > 0).reshape(inp[0].shape[0], -1)))
             for m in net.modules() if isinstance(m, acts)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    if not codes:
        raise InputError("NASWOT needs a network with at least one hidden activation layer")
    return torch.cat(codes, dim=1).to(torch.float64).numpy()


def naswot_score(net: Any, x: np.ndarray, regularization: float = 1.0) -> float:
    """log|K + εI| of the activation-pattern kernel of ``net`` on the batch ``x`` (N, n_in).

    Parameters
    ----------
    net : torch.nn.Module
        Untrained network (its current weights are used).
    x : ndarray, shape (N, n_in)
        A minibatch of (scaled) inputs; N of 64-256 is typical.
    regularization : float
        ε added to the diagonal. With ε = 0 (Mellor et al. exactly) a network
        whose codes repeat, or with fewer units than inputs, scores ``-inf``
        and such networks cannot be ranked among themselves; ε = 1 (one
        unit's worth, K's entries are 0..N_A) keeps them finite and ranked by
        how degenerate their codes are, and barely changes full-rank scores.

    Returns
    -------
    float
        ``slogdet(K + εI)``; ``-inf`` when that is singular.
    """
    import torch

    c = _activation_codes(net, torch.as_tensor(np.asarray(x, dtype=np.float32)))
    k = c @ c.T + (1.0 - c) @ (1.0 - c).T + regularization * np.eye(c.shape[0])
    sign, logdet = np.linalg.slogdet(k)
    return float(logdet) if sign > 0 else float("-inf")


def sample_architectures(n: int, *, max_layers: int = 4, widths: tuple[int, ...] = (8, 16, 32, 64, 128, 256),
                         activations: tuple[str, ...] = ("relu", "leaky_relu", "tanh"),
                         seed: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct random architectures ``{"hidden": [...], "activation": ...}``."""
    for a in activations:
        if a not in ACTIVATIONS:
            raise InputError(f"activations: each of {', '.join(ACTIVATIONS)} is accepted; got {a!r}")
    rng = np.random.default_rng(seed)
    seen: set[tuple] = set()
    out: list[dict[str, Any]] = []
    for _ in range(100 * n):
        depth = int(rng.integers(1, max_layers + 1))
        hidden = [int(w) for w in rng.choice(widths, size=depth)]
        act = str(rng.choice(list(activations)))
        key = (tuple(hidden), act)
        if key not in seen:
            seen.add(key)
            out.append({"hidden": hidden, "activation": act})
        if len(out) == n:
            return out
    raise InputError(f"only {len(out)} distinct architectures exist in this search space; asked for {n}")


@dataclass(frozen=True)
class NaswotComparison:
    """Scores and trained losses of sampled architectures, and their rank correlation."""

    architectures: list[dict[str, Any]]
    scores: np.ndarray
    val_losses: np.ndarray
    spearman_rho: float
    spearman_p: float
    score_seconds: float
    train_seconds: float


def naswot_vs_training(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       architectures: list[dict[str, Any]], train: TrainParams, *,
                       batch: int = 128, repeats: int = 3, seed: int = 0) -> NaswotComparison:
    """Score every architecture without training, train it, and correlate (Spearman ρ).

    Inputs are *scaled* arrays (see :class:`~matterflow.electrons.scaling.Scaler`).
    ``ρ`` is between the NASWOT score and the best validation loss; negative
    is good (higher score, lower loss).
    """
    import time

    import torch
    from scipy.stats import spearmanr

    if len(architectures) < 3:
        raise InputError(f"architectures: at least 3 are needed for a rank correlation; got {len(architectures)}")
    rng = np.random.default_rng(seed)
    n_in, n_out = x_train.shape[1], y_train.shape[1]
    scores, losses = [], []
    t_score = t_train = 0.0
    for arch in architectures:
        t0 = time.perf_counter()
        s = []
        for r in range(repeats):
            torch.manual_seed(seed + r)
            idx = rng.choice(x_train.shape[0], size=min(batch, x_train.shape[0]), replace=False)
            s.append(naswot_score(build_feedforward(n_in, n_out, **arch), x_train[idx]))
        scores.append(float(np.mean(s)))
        t1 = time.perf_counter()
        res = train_network(build_feedforward, {"n_in": n_in, "n_out": n_out, **arch},
                            x_train, y_train, x_val, y_val, train)
        losses.append(res.best_val_loss)
        t_score += t1 - t0
        t_train += time.perf_counter() - t1
    rho, p = spearmanr(scores, losses)
    return NaswotComparison(architectures=list(architectures), scores=np.array(scores),
                            val_losses=np.array(losses), spearman_rho=float(rho), spearman_p=float(p),
                            score_seconds=t_score, train_seconds=t_train)
