"""The exact differentiable KS density (physics loss ``density_l1``) for singlet and triplet
pairs, and its gap-clipped gradient, against independent NumPy/SciPy references."""

import numpy as np
import pytest
import torch

from matterflow.core.errors import InputError
from matterflow.dft1d.exact import occupations_for, solve_noninteracting
from matterflow.dft1d.ks_torch import KSDensity, density_l1_loss


def _double_well(x, tilt=0.0):
    return 0.02 * (x**2 - 9.0) ** 2 + tilt * x


def _clipped_response(v, x, occ, floor):
    """χ(x, y) = δn(x)/δv(y) by first-order perturbation theory with |ε_i - ε_j| clipped at
    ``floor`` (sign kept), from ``numpy.linalg.eigh`` of the same Hamiltonian (an independent
    implementation of the formula; floor 0 is the exact static response)."""
    from matterflow.dft1d.grid import as_grid, kinetic_matrix

    g = as_grid(x)
    e, u = np.linalg.eigh(kinetic_matrix(g, 5).toarray() + np.diag(v))
    phi = u / np.sqrt(g.dx)
    k = len(occ)
    f = np.zeros(len(e))
    f[:k] = occ
    chi = np.zeros((len(x), len(x)))
    for i in range(k):
        for j in range(len(e)):
            if j == i:
                continue
            num = 0.5 * (f[i] - f[j]) if j < k else f[i]
            if num == 0:
                continue
            de = e[i] - e[j]
            de = np.sign(de) * max(abs(de), floor)
            a = phi[:, i] * phi[:, j]
            chi += 2.0 * g.dx * num / de * np.outer(a, a)
    return chi


@pytest.mark.parametrize("spin", ["unpolarised", "polarised"])
def test_exact_density_equals_the_numpy_solver_in_float64(spin):
    """Singlet (one orbital, 2 electrons) and triplet (two orbitals, 1 each): the torch density
    of a batch equals ``solve_noninteracting`` (scipy eigh) to 1e-8 /bohr in float64, also for a
    near-degenerate double well; its Jacobian equals the static response."""
    x = np.linspace(-10, 10, 64)
    rng = np.random.default_rng(7)
    occ = occupations_for(2, spin)
    vs = np.stack([_double_well(x, 0.003), 0.05 * x**2 + 0.3 * rng.standard_normal(64),
                   -1.5 / np.sqrt((x - 1) ** 2 + 1)])
    ks = KSDensity(x, occ)
    out = ks(torch.tensor(vs))
    assert out.dtype == torch.float64
    for v, n in zip(vs, out.numpy(), strict=True):
        ref = solve_noninteracting(v, x, occ).density
        assert np.abs(n - ref).max() <= 1e-8
        assert abs(n.sum() * (x[1] - x[0]) - 2.0) < 1e-10
    jac = torch.autograd.functional.jacobian(lambda t: ks(t[None])[0], torch.tensor(vs[1])).numpy()
    chi = _clipped_response(vs[1], x, occ, 0.0)
    assert np.abs(jac - chi).max() <= 1e-8 * np.abs(chi).max()


def test_triplet_density_loss_gradcheck():
    """Finite differences (torch.autograd.gradcheck) of the loss through the eigensolver with
    two singly occupied orbitals."""
    x = np.linspace(-6, 6, 20)
    occ = occupations_for(2, "polarised")
    ks = KSDensity(x, occ)
    target = torch.tensor(solve_noninteracting(0.1 * x**2, x, occ).density)[None]
    rng = np.random.default_rng(3)
    v = torch.tensor(0.1 * x**2 + 0.2 * rng.standard_normal((2, 20)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ((ks(t) - target) ** 2).sum(-1) + density_l1_loss(
        ks(t), target.expand(2, -1)), (v,), eps=1e-6, atol=1e-6)


def test_gap_floor_clips_the_response_of_a_near_degenerate_double_well():
    """A slightly tilted double well (singlet: HOMO–LUMO gap ≈ 0.02 Ha): with the floor below
    the smallest gap the gradient is the exact one; with a floor of 0.2 Ha it equals the
    clipped-gap response of the NumPy reference and is several times smaller, while the forward
    density stays exact."""
    x = np.linspace(-10, 10, 48)
    occ = occupations_for(2, "unpolarised")
    v = _double_well(x, 0.002)
    e = solve_noninteracting(v, x, occ, n_states=2).energies
    gap = e[1] - e[0]
    assert 1e-3 < gap < 0.1
    vt = torch.tensor(v)
    exact = torch.autograd.functional.jacobian(lambda t: KSDensity(x, occ)(t[None])[0], vt).numpy()
    below = torch.autograd.functional.jacobian(
        lambda t: KSDensity(x, occ, gap_floor=0.5 * gap)(t[None])[0], vt).numpy()
    assert np.abs(below - exact).max() <= 1e-10 * np.abs(exact).max()
    ks = KSDensity(x, occ, gap_floor=0.2)
    clipped = torch.autograd.functional.jacobian(lambda t: ks(t[None])[0], vt).numpy()
    ref = _clipped_response(v, x, occ, 0.2)
    assert np.abs(clipped - ref).max() <= 1e-8 * np.abs(ref).max()
    assert np.linalg.norm(clipped, 2) < 0.3 * np.linalg.norm(exact, 2)
    assert np.abs(ks(vt[None])[0].numpy() - solve_noninteracting(v, x, occ).density).max() < 1e-8
    with pytest.raises(InputError, match="gap_floor"):
        KSDensity(x, occ, gap_floor=-1.0)


def test_fno_trains_on_the_exact_density_with_a_gap_floor():
    """``physics_loss='density_l1'`` with ``gap_floor`` (fine-tuning a potential-loss model,
    triplet occupations): the training density residual falls, and the setting is saved."""
    from matterflow.dft1d.fno import DensityToPotentialFNO

    x = np.linspace(-10, 10, 32)
    rng = np.random.default_rng(2)
    occ = occupations_for(2, "polarised")
    v_ext = np.stack([0.02 * a * x**2 + b * x for a, b in rng.uniform([0.5, -0.02], [2, 0.02], (16, 2))])
    dens = np.stack([solve_noninteracting(v, x, occ).density for v in v_ext])
    v_hxc = np.full_like(v_ext, 0.1)  # the exact KS potential is v_ext + const
    m = DensityToPotentialFNO(epochs=2, hidden_channels=8, n_modes=8, batch_size=8, spin="polarised",
                              seed=1)
    m.fit(dens, v_hxc + 0.3 * np.sin(x), v_ext=v_ext, x=x)  # a deliberately wrong start
    ft = DensityToPotentialFNO(epochs=6, hidden_channels=8, n_modes=8, batch_size=8, spin="polarised",
                               density_weight=3.0, physics_loss="density_l1", density_warmup=0.0,
                               gap_floor=0.05, residual_weight=1.0, seed=1)
    ft.model_, ft.n_points_ = m.model_, m.n_points_
    ft.in_mean_, ft.in_std_, ft.out_mean_, ft.out_std_ = m.in_mean_, m.in_std_, m.out_mean_, m.out_std_
    ft.warm_start = True
    ft.fit(dens, v_hxc, v_ext=v_ext, x=x)
    hist = ft.density_loss_history_
    assert np.isfinite(hist).all() and hist[-1] < hist[0]
    with pytest.raises(InputError, match="gap_floor"):
        DensityToPotentialFNO(gap_floor=-0.1, density_weight=1.0).fit(dens, v_hxc, v_ext=v_ext, x=x)
