"""The training-free anomaly score against planted ground truth."""

import numpy as np

from matterflow.microscopy.sem import planning as pl


def _scan(rng, planted):
    """A 64² fast scan: two flat 'grains' (step edge) with Poisson noise of 150 electrons per
    unit signal, and, if ``planted``, a bright disc of radius 1.2 px in the darker grain."""
    signal = np.full((64, 64), 0.5)
    signal[:, 32:] = 0.9
    rr, cc = np.mgrid[0:64, 0:64]
    if planted:
        signal[(rr - 20) ** 2 + (cc - 12) ** 2 <= 1.2 ** 2] = 0.8
    return rng.poisson(signal * 150) / 150


def test_anomaly_score_ranks_a_planted_event_above_the_background():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(10):
        s = pl.anomaly_scores(_scan(rng, True), scale=4, tile_px=16)  # 4 × 4 lr px per tile
        assert s.shape == (16, 16)
        hits += np.unravel_index(np.argmax(s), s.shape) == (20 // 4, 12 // 4)
    assert hits >= 9  # the event's tile is the best one (the grain edge is not an event)
    m = pl.anomaly_map(_scan(rng, False))
    assert 0.5 < np.median(m) / 0.6745 < 1.5  # background in units of its robust spread


def test_rank_combine_keeps_a_tile_both_scores_agree_on():
    a = np.array([[0.1, 0.9], [0.2, 0.3]])
    b = np.array([[5.0, 40.0], [1.0, 2.0]])
    c = pl.rank_combine(a, b)
    assert np.unravel_index(np.argmax(c), c.shape) == (0, 1)
    assert np.isclose(c.max(), 1.0) and c.min() > 0
    assert np.allclose(pl.rank_combine(a, b, weights=(1, 0)), pl.rank_combine(a))
