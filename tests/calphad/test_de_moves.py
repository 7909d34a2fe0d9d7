"""Differential-evolution moves sample a known posterior (issue 25, item 3 speed-up)."""
import numpy as np
import pytest

from matterflow.calphad.mcmc import run_emcee

COV = np.array([[4.0, 3.8], [3.8, 4.0]])  # strongly correlated
MEAN = np.array([1.0, -2.0])
PREC = np.linalg.inv(COV)


def log_gauss(x):
    d = np.asarray(x) - MEAN
    return -0.5 * d @ PREC @ d


@pytest.mark.parametrize("moves", ["de", "de-stretch"])
def test_de_moves_recover_a_correlated_gaussian(moves, tmp_path):
    res = run_emcee(log_gauss, np.zeros(2), np.ones(2), n_walkers=16, n_steps=1500, seed=2,
                    moves=moves)
    kept = res.chain[300:].reshape(-1, 2)
    np.testing.assert_allclose(kept.mean(axis=0), MEAN, atol=0.25)
    np.testing.assert_allclose(np.cov(kept.T), COV, rtol=0.15, atol=0.2)
    assert 0.2 < res.acceptance.mean() < 0.9
    # the checkpoint of a DE run resumes to the same chain, and refuses a stretch run
    ck = tmp_path / "c.ckpt"
    first = run_emcee(log_gauss, np.zeros(2), np.ones(2), n_walkers=16, n_steps=10, seed=2,
                      moves=moves, checkpoint=ck)
    again = run_emcee(log_gauss, np.zeros(2), np.ones(2), n_walkers=16, n_steps=20, seed=2,
                      moves=moves, checkpoint=ck)
    assert again.resumed_from == 10
    np.testing.assert_array_equal(again.chain[:10], first.chain)
    np.testing.assert_array_equal(again.chain, res.chain[:20])
    from matterflow.core.errors import InputError

    with pytest.raises(InputError, match="different run"):
        run_emcee(log_gauss, np.zeros(2), np.ones(2), n_walkers=16, n_steps=20, seed=2,
                  checkpoint=ck)
