"""FNO-started refinement, the FNO's reliability flag, reproducible training, the mirror
symmetrised FNO and the added potential families."""

import json

import numpy as np
import pytest
import torch
from fno_stand_in import FixedFNO
from typer.testing import CliRunner

from matterflow.core.errors import InputError
from matterflow.dft1d.exact import solve_two_electrons
from matterflow.dft1d.grid import make_grid
from matterflow.dft1d.inversion import invert_density
from matterflow.dft1d.potentials import (
    DEFAULT_FAMILIES,
    FAMILIES,
    sample_potential,
    sample_potentials,
)
from matterflow.dft1d.refine import fno_reliability, refine_inversion


@pytest.fixture(scope="module")
def triplets():
    """Exact triplet densities (independent 2-electron solver) of three potentials."""
    g = make_grid(48, 16.0)
    v, _ = sample_potentials(["poschl_teller", "morse", "step_barrier"], 3, g.x, seed=2)
    dens = np.stack([solve_two_electrons(vi, g.x, spin="triplet").density for vi in v])
    ks = [invert_density(n, vi, g.x, spin="polarised", tol=1e-8) for n, vi in zip(dens, v, strict=True)]
    return g.x, v, dens, np.stack([r.v_hxc for r in ks])


def test_refinement_reaches_the_tolerance_on_the_exact_density_and_saves_iterations(triplets):
    """Started from a slightly wrong potential (1 % noise on v_Hxc, as from a good FNO) the
    refinement reproduces the exact two-electron density to 1e-6 with fewer Newton steps than
    the cold start; started from a wildly wrong one (the density in the wrong place) it still
    converges (the Wu–Yang functional is concave), so the answer never depends on the network."""
    x, v, dens, vhxc = triplets
    rng = np.random.default_rng(0)
    near = vhxc + 0.01 * np.abs(vhxc).max() * rng.standard_normal(vhxc.shape)
    r = refine_inversion(FixedFNO(near), dens, v, x, tol=1e-6, compare_cold=True)
    assert r.converged.all() and r.max_density_error.max() <= 1e-6
    assert np.abs(r.density - dens).max() <= 1e-6      # against the exact solver's density
    assert (r.n_iterations < r.cold_n_iterations).all()
    assert r.cold_max_density_error.max() <= 1e-6 and np.isfinite(r.speedup)
    assert (r.start_max_density_error > 1e-6).all()    # there was something to refine
    far = vhxc + 0.8 * np.sin(3 * x)
    r2 = refine_inversion(FixedFNO(far), dens, v, x, tol=1e-6)
    assert r2.converged.all() and np.abs(r2.density - dens).max() <= 1e-6
    awful = refine_inversion(FixedFNO(vhxc + 3.0 * np.sin(3 * x)), dens, v, x, tol=1e-6)
    assert awful.n_fallbacks == 3 and np.abs(awful.density - dens).max() <= 1e-6  # robust path
    for k in range(len(dens)):  # the same potential where there is charge (up to a constant)
        m = dens[k] > 0.02
        a_, b_ = r2.v_hxc[k][m], vhxc[k][m]
        assert np.abs((a_ - a_.mean()) - (b_ - b_.mean())).max() < 5e-3


def test_reliability_flags_bad_starts_and_reports_the_gap(triplets):
    """Residual of the exact KS potential ~0 (not flagged); a perturbed one flagged. The gap
    of a harmonic KS potential ½ω²x² is ω (levels (k + ½)ω) for both occupations."""
    x, v, dens, vhxc = triplets
    bad = vhxc.copy()
    bad[1] += 0.5 * np.exp(-((x - 1.0) ** 2))
    rel = fno_reliability(FixedFNO(bad), dens, v, x, threshold=0.02)
    assert rel.density_residual[0] < 1e-6 and rel.density_residual[2] < 1e-6
    assert rel.density_residual[1] > 0.02 and rel.flagged.tolist() == [False, True, False]
    omega = 0.5
    harm = 0.5 * omega**2 * x**2
    for spin in ("unpolarised", "polarised"):
        h = fno_reliability(FixedFNO((harm - v)[:1], spin=spin), dens[:1], v[:1], x)
        assert h.gap[0] == pytest.approx(omega, rel=2e-3)
    gap_flag = fno_reliability(FixedFNO(vhxc), dens, v, x, gap_threshold=10.0)
    assert gap_flag.flagged.all() and not fno_reliability(FixedFNO(vhxc), dens, v, x).flagged.any()
    with pytest.raises(InputError, match="threshold"):
        fno_reliability(FixedFNO(vhxc), dens, v, x, threshold=0)


def test_invert_density_v_start(triplets):
    """Starting from the converged KS potential (any constant shift: gauge) needs no
    Newton step; a v_start on another grid is an InputError naming it."""
    x, v, dens, vhxc = triplets
    r = invert_density(dens[0], v[0], x, spin="polarised", tol=1e-7, v_start=v[0] + vhxc[0] + 0.3)
    assert r.n_iterations == 0 and r.max_density_error <= 1e-7
    with pytest.raises(InputError, match="v_start"):
        invert_density(dens[0], v[0], x, spin="polarised", v_start=vhxc[0][:-1])


def _small_fit(x, v, dens, vhxc, **kw):
    from matterflow.dft1d.fno import DensityToPotentialFNO

    return DensityToPotentialFNO(epochs=2, n_modes=8, hidden_channels=8, batch_size=2,
                                 density_weight=1.0, physics_loss="wu_yang", exact_hx=True,
                                 spin="polarised", density_warmup=0.0, **kw).fit(
        dens, vhxc, v_ext=v, x=x)


def test_training_is_reproducible_with_the_same_seed(triplets):
    """Same data, settings and seed -> the same weights, whatever the global torch RNG and
    deterministic setting were before; another seed gives other weights."""
    x, v, dens, vhxc = triplets
    kw = {"symmetrise": True, "residual_weight": 1.0}
    a = _small_fit(x, v, dens, vhxc, **kw)
    torch.rand(17)                                   # global RNG state moved on
    prev = torch.are_deterministic_algorithms_enabled()
    b = _small_fit(x, v, dens, vhxc, **kw)
    assert torch.are_deterministic_algorithms_enabled() == prev   # restored
    c = _small_fit(x, v, dens, vhxc, seed=1, **kw)
    sa, sb, sc = (m.model_.state_dict() for m in (a, b, c))
    keys = [k for k in sa if isinstance(sa[k], torch.Tensor)]
    for k in keys:
        assert torch.allclose(sa[k], sb[k], rtol=1e-6, atol=1e-7), k
    assert any(not torch.allclose(sa[k], sc[k]) for k in keys)
    assert a.loss_history_ == pytest.approx(b.loss_history_, rel=1e-6)


def test_symmetrised_fno_is_mirror_equivariant(triplets):
    """v[n(-x)](x) = v[n](-x) exactly (to float32 rounding) with symmetrise, fast and library
    paths alike; without it the (grid-position-aware) network is not."""
    x, v, dens, vhxc = triplets
    m = _small_fit(x, v, dens, vhxc, symmetrise=True)
    p, q = m.predict(dens), m.predict(dens[:, ::-1].copy())
    assert np.abs(q - p[:, ::-1]).max() <= 1e-5 * np.abs(p).max()
    assert np.allclose(m.predict(dens, fast=False), p, atol=1e-5)
    m0 = _small_fit(x, v, dens, vhxc)
    p0, q0 = m0.predict(dens), m0.predict(dens[:, ::-1].copy())
    assert np.abs(q0 - p0[:, ::-1]).max() > 1e-4 * np.abs(p0).max()
    with pytest.raises(InputError, match="residual_weight"):
        _small_fit(x, v, dens, vhxc, residual_weight=-1.0)


def test_added_families_have_their_shapes():
    """Pöschl–Teller: one well of depth V0 in [0.5, 2] Ha; Morse: a minimum of -D (D in
    [0.5, 2.5]) and a steep wall; linear field: slope |E| in [0.05, 0.3] far from the well;
    the default families stay the original four."""
    x = np.linspace(-10, 10, 201)
    rng = np.random.default_rng(5)
    for _ in range(20):
        pt = sample_potential("poschl_teller", x, rng)
        assert -2.4 <= pt.min() <= -0.2 and abs(pt[0] + pt[-1]) < 0.1
        mo = sample_potential("morse", x, rng)
        assert -2.5 <= mo.min() <= -0.5 and mo.max() == pytest.approx(3.0)
        lf = sample_potential("linear_field", x, rng)
        assert 0.05 <= abs(lf[-1] - lf[-2]) / (x[1] - x[0]) <= 0.3 + 1e-9 or \
            0.05 <= abs(lf[1] - lf[0]) / (x[1] - x[0]) <= 0.3 + 1e-9
        sb = sample_potential("step_barrier", x, rng)
        assert abs(sb[0]) < 1e-3 and abs(sb[-1]) < 1e-3 and sb.min() < -0.1
        assert sample_potential("sum", x, rng).max() <= 5.0
    assert DEFAULT_FAMILIES == tuple(FAMILIES)[:4] and len(FAMILIES) == 9


def test_cli_invert_fno_methods(triplets, tmp_path):
    x, v, dens, vhxc = triplets
    m = _small_fit(x, v, dens, vhxc, symmetrise=True)
    m.save(tmp_path / "fno.pt")
    np.savez(tmp_path / "d.npz", x=x, density=dens, v_ext=v)
    from matterflow.cli import app

    run = CliRunner().invoke
    r = run(app, ["dft1d", "invert", str(tmp_path / "d.npz"), "--method", "fno+refine", "--model",
                  str(tmp_path / "fno.pt"), "--spin", "polarised", "--tol", "1e-6",
                  "-o", str(tmp_path / "r.npz")])
    assert r.exit_code == 0, r.output
    out = np.load(tmp_path / "r.npz")
    assert out["max_density_error"].max() <= 1e-6 and "cold start" in r.output
    assert np.abs(out["density"] - dens).max() <= 1e-6
    r = run(app, ["dft1d", "invert", str(tmp_path / "d.npz"), "--method", "fno", "--model",
                  str(tmp_path / "fno.pt"), "--spin", "polarised", "-o", str(tmp_path / "f.npz")])
    assert r.exit_code == 0, r.output
    f = np.load(tmp_path / "f.npz")
    assert f["flagged"].shape == (3,) and (f["gap"] > 0).all() and "flagged" in r.output
    r = run(app, ["dft1d", "invert", str(tmp_path / "d.npz"), "--method", "fno"])
    assert r.exit_code == 2 and "--model" in r.output
    r = run(app, ["dft1d", "invert", str(tmp_path / "d.npz"), "--method", "magic"])
    assert r.exit_code == 2 and "fno+refine" in r.output


def test_cli_train_fno_twice_gives_the_same_model(triplets, tmp_path):
    """The same `train-fno` command, same seed, run twice -> the same weights and metrics."""
    from matterflow.dft1d.datasets import Dataset, write_dataset

    x, v, dens, vhxc = triplets
    k = 8
    vv, dd, hh = (np.tile(a, (3, 1))[:k] for a in (v, dens, vhxc))
    ds = Dataset(x=x, v_ext=vv, density=dd, v_ks=vv + hh, v_hxc=hh, energy=np.zeros(k),
                 family=["poschl_teller"] * k, split=["train"] * 5 + ["val", "test", "test"],
                 max_density_error=np.zeros(k), seconds_inversion=np.zeros(k),
                 attrs={"spin": "triplet"})
    path = write_dataset(ds, tmp_path / "ds.h5")
    from matterflow.cli import app

    outs = []
    for name in ("a", "b"):
        r = CliRunner().invoke(app, ["dft1d", "train-fno", str(path), "--epochs", "2", "--hidden-channels",
                                     "8", "--n-modes", "8", "--batch-size", "2", "--density-weight", "1",
                                     "--physics-loss", "wu_yang", "--exact-hx", "--symmetrise",
                                     "--residual-weight", "1", "--density-warmup", "0", "-q",
                                     "-o", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        outs.append(tmp_path / name)
    from matterflow.dft1d.fno import DensityToPotentialFNO

    ma, mb = (DensityToPotentialFNO.load(o / "fno.pt") for o in outs)
    assert ma.symmetrise and ma.residual_weight == 1.0
    sa, sb = ma.model_.state_dict(), mb.model_.state_dict()
    for key, t in sa.items():
        if isinstance(t, torch.Tensor):
            assert torch.allclose(t, sb[key], rtol=1e-6, atol=1e-7), key
    ja, jb = (json.loads((o / "metrics.json").read_text()) for o in outs)
    assert ja["test_rel_l2_mean"] == pytest.approx(jb["test_rel_l2_mean"], rel=1e-6)


def test_exact_solver_is_bit_reproducible_whatever_the_call_order():
    """The two-electron eigensolver starts from a fixed vector: the same potential gives the
    same density to the last bit, whatever was solved before (ARPACK's own random start
    advanced per call and moved densities by ~1e-14, so regenerated datasets differed)."""
    x = np.linspace(-8, 8, 40)
    v = -1.5 / np.cosh(x / 1.2) ** 2
    a = solve_two_electrons(v, x, spin="triplet").density
    solve_two_electrons(0.1 * x**2, x, spin="singlet")
    b = solve_two_electrons(v, x, spin="triplet").density
    assert np.array_equal(a, b)
