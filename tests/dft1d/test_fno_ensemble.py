"""The seed ensemble of FNOs: mean prediction, members' spread, checks of the members."""

import numpy as np
import pytest
from fno_stand_in import FixedFNO

from matterflow.core.errors import InputError
from matterflow.dft1d.exact import solve_two_electrons
from matterflow.dft1d.fno_ensemble import FNOEnsemble
from matterflow.dft1d.grid import make_grid
from matterflow.dft1d.inversion import invert_density
from matterflow.dft1d.potentials import sample_potentials
from matterflow.dft1d.refine import fno_reliability


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
    a, b = FixedFNO(vhxc + delta), FixedFNO(vhxc - delta)
    ra = fno_reliability(a, dens, v, x, threshold=0.02)
    assert (ra.density_residual > 0.02).all() and ra.flagged.all()
    ens = FNOEnsemble([a, b])
    r = fno_reliability(ens, dens, v, x, threshold=0.02)
    assert r.density_residual.max() < 1e-5 and not r.flagged.any()
    assert np.allclose(ens.spread(dens), np.abs(delta).max(), rtol=1e-6)


def test_members_must_agree():
    v = np.zeros((2, 8))
    with pytest.raises(InputError, match="spin"):
        FNOEnsemble([FixedFNO(v, "polarised"), FixedFNO(v, "unpolarised")])
    with pytest.raises(InputError, match="n_points_"):
        FNOEnsemble([FixedFNO(v), FixedFNO(np.zeros((2, 9)))])
    with pytest.raises(InputError, match="at least one"):
        FNOEnsemble([])


def test_cli_invert_with_an_ensemble_of_saved_models(triplets, tmp_path):
    """`invert --model a.pt --model b.pt`: the FNO alone reports the ensemble's residual (the
    density of the mean of the two models' potentials, against the exact two-electron density),
    and fno+refine started from the ensemble is exact to 1e-6."""
    from typer.testing import CliRunner

    from matterflow.cli import app
    from matterflow.dft1d.exact import solve_noninteracting
    from matterflow.dft1d.fno import DensityToPotentialFNO

    x, v, dens, vhxc = triplets
    paths = []
    for seed in (0, 1):
        m = DensityToPotentialFNO(epochs=2, n_modes=8, hidden_channels=8, batch_size=2,
                                  density_weight=1.0, physics_loss="wu_yang", exact_hx=True,
                                  spin="polarised", density_warmup=0.0, seed=seed).fit(
            dens, vhxc, v_ext=v, x=x)
        paths.append(tmp_path / f"m{seed}.pt")
        m.save(paths[-1])
    mean_v = 0.5 * sum(DensityToPotentialFNO.load(p).predict(dens) for p in paths)
    occ = np.array([1.0, 1.0])
    resid = np.array([np.abs(solve_noninteracting(v[k] + mean_v[k], x, occ).density - dens[k]).sum()
                      * (x[1] - x[0]) / 2 for k in range(len(dens))])
    np.savez(tmp_path / "d.npz", x=x, density=dens, v_ext=v)
    run = CliRunner().invoke
    models = ["--model", str(paths[0]), "--model", str(paths[1])]
    r = run(app, ["dft1d", "invert", str(tmp_path / "d.npz"), "--method", "fno", *models,
                  "--spin", "polarised", "-o", str(tmp_path / "f.npz")])
    assert r.exit_code == 0, r.output
    f = np.load(tmp_path / "f.npz")
    assert np.allclose(f["density_residual"], resid, rtol=1e-4, atol=1e-7)
    r = run(app, ["dft1d", "invert", str(tmp_path / "d.npz"), "--method", "fno+refine", *models,
                  "--spin", "polarised", "--tol", "1e-6", "-o", str(tmp_path / "r.npz")])
    assert r.exit_code == 0, r.output
    assert np.abs(np.load(tmp_path / "r.npz")["density"] - dens).max() <= 1e-6
