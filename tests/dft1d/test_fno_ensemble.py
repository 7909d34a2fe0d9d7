"""The seed ensemble of FNOs: mean prediction, members' spread, checks of the members."""

import numpy as np
import pytest

from matterflow.core.errors import InputError
from matterflow.dft1d.exact import solve_two_electrons
from matterflow.dft1d.fno_ensemble import FNOEnsemble
from matterflow.dft1d.grid import make_grid
from matterflow.dft1d.inversion import invert_density
from matterflow.dft1d.potentials import sample_potentials
from matterflow.dft1d.refine import fno_reliability


class _Member:
    """A stand-in for a fitted FNO returning given potentials (v_Hxc, Ha)."""

    target, n_electrons = "v_hxc", 2

    def __init__(self, v_hxc: np.ndarray, spin: str = "polarised"):
        self.v_hxc, self.spin, self.n_points_ = v_hxc, spin, v_hxc.shape[1]

    def _check_fitted(self) -> None:
        pass

    def predict(self, density: np.ndarray) -> np.ndarray:
        return self.v_hxc[: len(density)]


@pytest.fixture(scope="module")
def triplets():
    """Exact triplet densities (independent 2-electron solver) and their KS potentials."""
    g = make_grid(48, 16.0)
    v, _ = sample_potentials(["poschl_teller", "morse"], 2, g.x, seed=3)
    dens = np.stack([solve_two_electrons(vi, g.x, spin="triplet").density for vi in v])
    ks = [invert_density(n, vi, g.x, spin="polarised", tol=1e-8)
          for n, vi in zip(dens, v, strict=True)]
    return g.x, v, dens, np.stack([r.v_hxc for r in ks])


def test_errors_of_opposite_sign_cancel_in_the_ensemble(triplets):
    """Two members off by ±δ(x) (each moves the density by several per cent) average to the
    exact KS potential: the ensemble's density residual is that of the exact inversion
    (≤ 1e-5), the spread is the maximum of |δ|."""
    x, v, dens, vhxc = triplets
    delta = 0.3 * np.exp(-((x - 1.0) ** 2))
    a, b = _Member(vhxc + delta), _Member(vhxc - delta)
    ra = fno_reliability(a, dens, v, x, threshold=0.02)
    assert (ra.density_residual > 0.02).all() and ra.flagged.all()
    ens = FNOEnsemble([a, b])
    r = fno_reliability(ens, dens, v, x, threshold=0.02)
    assert r.density_residual.max() < 1e-5 and not r.flagged.any()
    assert np.allclose(ens.spread(dens), np.abs(delta).max(), rtol=1e-6)


def test_members_must_agree():
    v = np.zeros((2, 8))
    with pytest.raises(InputError, match="spin"):
        FNOEnsemble([_Member(v, "polarised"), _Member(v, "unpolarised")])
    with pytest.raises(InputError, match="n_points_"):
        FNOEnsemble([_Member(v), _Member(np.zeros((2, 9)))])
    with pytest.raises(InputError, match="at least one"):
        FNOEnsemble([])
