"""The differentiable KS density (physics loss of the FNO) and the fast FNO inference path."""

import numpy as np
import pytest
import torch

from matterflow.core.errors import InputError
from matterflow.dft1d.exact import solve_noninteracting, solve_two_electrons
from matterflow.dft1d.inversion import invert_density, ks_response
from matterflow.dft1d.ks_torch import KSDensity, density_l1_loss


def test_ks_density_matches_the_scipy_solver_and_the_analytic_response():
    """Forward = dense scipy diagonalisation; Jacobian = first-order perturbation theory
    (``ks_response``, a separate numpy implementation) for mixed occupations."""
    x = np.linspace(-8, 8, 40)
    rng = np.random.default_rng(1)
    occ = np.array([2.0, 1.0])
    v = 0.05 * x**2 + 0.3 * rng.standard_normal(40)
    ks = KSDensity(x, occ)
    ref = solve_noninteracting(v, x, occ)
    assert np.allclose(ks(torch.tensor(v)[None])[0].numpy(), ref.density, atol=1e-12)
    jac = torch.autograd.functional.jacobian(lambda t: ks(t[None])[0], torch.tensor(v)).numpy()
    chi = ks_response(ref.energies, ref.orbitals, occ, x[1] - x[0])
    assert np.abs(jac - chi).max() <= 1e-9 * np.abs(chi).max()


def test_density_loss_gradient_vs_finite_differences():
    """torch.autograd.gradcheck (central finite differences) of the loss through the
    eigensolver, including a symmetric double well with two equally occupied, nearly
    degenerate orbitals (the pair terms must cancel, not divide by ~0)."""
    x = np.linspace(-6, 6, 24)
    rng = np.random.default_rng(0)
    target = torch.tensor(solve_noninteracting(0.1 * x**2, x, np.array([2.0])).density)[None]
    ks = KSDensity(x)
    v = torch.tensor(0.1 * x**2 + 0.2 * rng.standard_normal((2, 24)), requires_grad=True)

    def loss(t):  # smooth away from n_pred = n: compare the squared error too
        return density_l1_loss(ks(t), target.expand(2, -1)) + ((ks(t) - target) ** 2).sum(-1)

    assert torch.autograd.gradcheck(loss, (v,), eps=1e-6, atol=1e-6)
    ks2 = KSDensity(x, np.array([2.0, 2.0]))
    dw = torch.tensor((0.02 * (x**2 - 9) ** 2)[None], requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ks2(t), (dw,), eps=1e-6, atol=1e-5)


def test_exact_ks_potential_gives_zero_density_loss():
    """The KS potential inverted from an exact two-electron density has ~zero density
    loss; a shifted copy too (gauge), a perturbed one does not."""
    x = np.linspace(-10, 10, 64)
    v_ext = -1.2 * np.exp(-((x - 1.5) ** 2) / 2) - 0.9 * np.exp(-((x + 2) ** 2) / 3)
    n = solve_two_electrons(v_ext, x).density
    inv = invert_density(n, v_ext, x, n_electrons=2, tol=1e-9)
    ks = KSDensity(x)
    target = torch.tensor(n)[None]
    for shift in (0.0, 0.7):
        assert density_l1_loss(ks(torch.tensor(inv.v_ks + shift)[None]), target).item() < 1e-7
    bumped = inv.v_ks + 0.05 * np.exp(-((x - 1.5) ** 2))
    assert density_l1_loss(ks(torch.tensor(bumped)[None]), target).item() > 1e-3


def test_fno_fit_with_density_loss_and_bad_settings():
    from matterflow.dft1d.fno import DensityToPotentialFNO

    x = np.linspace(-10, 10, 32)
    rng = np.random.default_rng(2)
    v_ext = np.stack([0.02 * a * x**2 for a in rng.uniform(0.5, 2.0, 12)])
    dens = np.stack([solve_noninteracting(v, x, np.array([2.0])).density for v in v_ext])
    v_hxc = np.zeros_like(v_ext) + 0.1
    m = DensityToPotentialFNO(epochs=3, hidden_channels=8, n_modes=8, batch_size=6,
                              density_weight=1.0, density_warmup=0.34)
    with pytest.raises(InputError, match="v_ext"):
        m.fit(dens, v_hxc, x=x)
    with pytest.raises(InputError, match="x: the grid"):
        m.fit(dens, v_hxc, v_ext=v_ext)
    m.fit(dens, v_hxc, v_ext=v_ext, x=x)
    assert np.isnan(m.density_loss_history_[0]) and np.isfinite(m.density_loss_history_[1:]).all()
    with pytest.raises(InputError, match="density_weight"):
        DensityToPotentialFNO(density_weight=-1).fit(dens, v_hxc, v_ext=v_ext, x=x)
    # warm start continues from the fitted weights (and their normalisation)
    m.warm_start, m.epochs = True, 1
    before = m.in_mean_.copy()
    m.fit(dens, v_hxc, v_ext=v_ext, x=x)
    assert np.array_equal(m.in_mean_, before) and len(m.loss_history_) == 1


@pytest.mark.parametrize("n_points, n_modes", [(48, 10), (64, 32), (33, 16)])
def test_fast_inference_path_equals_the_library_model(n_points, n_modes):
    """Truncated modes, all modes but Nyquist, odd grid: same output as neuraloperator's FNO."""
    from matterflow.dft1d.fno import DensityToPotentialFNO
    from matterflow.dft1d.fno_fast import fast_fno_from

    rng = np.random.default_rng(3)
    dens = np.abs(rng.standard_normal((10, n_points))) + 0.01
    dens *= 2 / (dens.sum(1, keepdims=True) * 0.4)
    m = DensityToPotentialFNO(epochs=1, hidden_channels=12, n_modes=n_modes, batch_size=5)
    m.fit(dens, rng.standard_normal((10, n_points)))
    xin = m._inputs(dens)
    with torch.inference_mode():
        ref = m.model_(xin)
        fast = fast_fno_from(m.model_, n_points)(xin)
    assert torch.allclose(fast, ref, atol=1e-5 * float(ref.abs().max()))
    assert np.allclose(m.predict(dens), m.predict(dens, fast=False), atol=1e-5)


def test_wu_yang_loss_is_zero_at_the_ks_potential_and_its_gradient_is_the_residual():
    """W[v] is maximal at the inverted KS potential (any constant shift), smaller for
    perturbed potentials; dW/dv = (n[v] - n) dx (Hellmann–Feynman) vs autograd and
    finite differences."""
    from matterflow.dft1d.ks_torch import wu_yang_functional

    x = np.linspace(-10, 10, 64)
    v_ext = -1.0 * np.exp(-((x - 2.5) ** 2) / 2) - 1.1 * np.exp(-((x + 2.5) ** 2) / 2)
    n = solve_two_electrons(v_ext, x).density
    inv = invert_density(n, v_ext, x, n_electrons=2, tol=1e-9)
    ks = KSDensity(x)
    nt = torch.tensor(n)[None]
    w0 = ks.wu_yang(torch.tensor(inv.v_ks)[None], nt).item()
    assert abs(ks.wu_yang(torch.tensor(inv.v_ks + 0.3)[None], nt).item() - w0) < 1e-10
    rng = np.random.default_rng(5)
    for _ in range(5):
        dv = 0.05 * rng.standard_normal(64)
        assert ks.wu_yang(torch.tensor(inv.v_ks + dv)[None], nt).item() < w0
    v = torch.tensor((inv.v_ks + 0.05 * rng.standard_normal(64))[None], requires_grad=True)
    ks.wu_yang(v, nt).sum().backward()
    resid = (ks(v.detach()) - nt) * ks.dx
    assert torch.allclose(v.grad, resid, atol=1e-10)
    small = KSDensity(x[::3])
    vs = torch.tensor(v_ext[::3][None] + 0.1, requires_grad=True)
    ns = torch.tensor(n[::3][None] * 3 / 3)
    assert torch.autograd.gradcheck(
        lambda t: wu_yang_functional(t, ns, small.kin, small.occ, small.dx), (vs,), eps=1e-6,
        atol=1e-7)


def test_exact_hx_target_round_trip(tmp_path):
    """With ``exact_hx`` the network learns v_Hxc - ½ v_H[n]; predictions add the exact term
    back (also after save/load); the term is the Hartree potential of the input density."""
    from matterflow.dft1d.exact import hartree_potential
    from matterflow.dft1d.fno import DensityToPotentialFNO

    x = np.linspace(-10, 10, 32)
    rng = np.random.default_rng(4)
    v_ext = np.stack([0.02 * a * x**2 for a in rng.uniform(0.5, 2.0, 8)])
    dens = np.stack([solve_noninteracting(v, x, np.array([2.0])).density for v in v_ext])
    m = DensityToPotentialFNO(epochs=1, hidden_channels=8, n_modes=8, batch_size=4,
                              exact_hx=True)
    with pytest.raises(InputError, match="x: the grid"):
        m.fit(dens, v_ext)
    m.fit(dens, v_ext, x=x)
    assert np.allclose(m._hx(dens[:1])[0], 0.5 * hartree_potential(dens[0], x))
    m2 = DensityToPotentialFNO.load(m.save(tmp_path / "hx.pt"))
    assert np.allclose(m2.predict(dens), m.predict(dens), atol=1e-6)
