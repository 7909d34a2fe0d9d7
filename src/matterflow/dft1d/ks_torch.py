"""Differentiable Kohn–Sham density in torch: ``v(x) -> n[v](x)`` for batches of potentials.

Used as a physics loss when training the FNO: the density that a predicted
potential produces (non-interacting electrons, same grid and stencil as
:func:`matterflow.dft1d.exact.solve_noninteracting`) is compared with the target density.

Forward: the dense KS Hamiltonian ``H = T + diag(v)`` of each potential is
diagonalised in float64 (``torch.linalg.eigh``, batched) and
``n(x) = Σ_i f_i |φ_i(x)|²`` with ``Σ_x |φ_i(x)|² dx = 1``.

Backward: the exact static response (first-order perturbation theory), applied
to the incoming gradient ``g = ∂L/∂n`` without forming ``χ``:

    ∂L/∂v(y) = (2/dx) Σ_i f_i Σ_{j≠i} u_i(y) u_j(y) [Σ_x g(x) u_i(x) u_j(x)] / (ε_i - ε_j)

(``u`` unit-norm eigenvectors). Pairs of occupied orbitals enter with
``(f_i - f_j)/(ε_i - ε_j)``, so equally occupied degenerate pairs cancel exactly
instead of dividing by zero; only gaps between occupied and other levels remain
(their size is the physics: a near-degenerate double well responds strongly).
torch's generic ``eigh`` backward divides by every eigenvalue gap, empty ones included,
which can give NaN for degenerate unoccupied levels; this one does not.

A second, better-conditioned physics loss is the Wu–Yang functional itself
(:func:`wu_yang_functional`), ``W[v] = Σ_i f_i ε_i[v] - ∫ v n dx``: concave in ``v``,
maximal exactly at the KS potential of ``n`` (any constant shift: it is gauge free), with
gradient ``(n[v] - n) dx``, i.e. no ``1/(ε_i - ε_j)`` factors. The loss
``(W[v_KS] - W[v_pred]) / N >= 0`` weights potential errors by the density response
(``≈ ½ δv χ δv``): errors that move charge cost more, whatever the gap.

Units: bohr, Ha, electrons/bohr.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from matterflow.core.errors import InputError
from matterflow.dft1d.grid import as_grid, kinetic_matrix

__all__ = ["KSDensity", "ks_density", "density_l1_loss", "wu_yang_functional"]


class _KSDensityFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, kin: torch.Tensor, occ: torch.Tensor,
                dx: float, gap_floor: float = 0.0) -> torch.Tensor:
        h = kin + torch.diag_embed(v)
        e, u = torch.linalg.eigh(h)                       # (b, n), (b, n, n) columns
        k = occ.shape[0]
        dens = (u[..., :k] ** 2 * occ).sum(-1) / dx       # (b, n)
        ctx.save_for_backward(e, u, occ)
        ctx.dx = dx
        ctx.gap_floor = float(gap_floor)
        return dens

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        e, u, occ = ctx.saved_tensors
        k = occ.shape[0]
        n_states = e.shape[-1]
        grad = torch.zeros_like(g)
        f_all = torch.zeros(n_states, dtype=e.dtype, device=e.device)
        f_all[:k] = occ
        for i in range(k):
            ui = u[..., i]                                             # (b, n)
            a = torch.einsum("bx,bxj->bj", g * ui, u)                  # Σ_x g u_i u_j
            de = e[..., i:i + 1] - e                                   # (b, n_states)
            # occupied pairs: (f_i - f_j)/2 from each side (sum gives (f_i - f_j)/(e_i - e_j))
            num = torch.where(torch.arange(n_states, device=e.device) < k,
                              0.5 * (occ[i] - f_all), occ[i])
            num = num.expand_as(de).clone()
            num[..., i] = 0.0
            safe = torch.where(num != 0, de, torch.ones_like(de))
            if ctx.gap_floor > 0:  # |ε_i - ε_j| clipped at the floor (sign kept)
                safe = torch.where(safe < 0, -1.0, 1.0) * safe.abs().clamp(min=ctx.gap_floor)
            c = num / safe                                             # (b, n_states)
            grad = grad + ui * torch.einsum("bxj,bj->bx", u, c * a)
        return grad * (2.0 / ctx.dx), None, None, None, None


class KSDensity:
    """Batched, differentiable KS density on a fixed grid.

    Parameters
    ----------
    x : (n_points,) uniform grid, bohr
    occupations : (n_occ,) electrons per orbital, lowest first (default: two electrons, one
        doubly occupied orbital)
    stencil : finite-difference stencil of the kinetic energy (as the exact solvers)
    gap_floor : Ha; 0 (default): the exact gradient. > 0: in the backward pass every level
        difference ``|ε_i - ε_j|`` below the floor is replaced by the floor (sign kept), so the
        gradient of a near-degenerate sample is bounded by ~1/gap_floor instead of 1/gap (the
        forward density stays exact). The exact gradient is ill-conditioned exactly where the
        density is hypersensitive (double wells, small HOMO–LUMO gaps).
    """

    def __init__(self, x: np.ndarray, occupations: np.ndarray | None = None, stencil: int = 5,
                 gap_floor: float = 0.0):
        grid = as_grid(x)
        self.dx = grid.dx
        self.kin = torch.as_tensor(kinetic_matrix(grid, stencil).toarray(), dtype=torch.float64)
        occ = np.array([2.0]) if occupations is None else np.asarray(occupations, float)
        self.occ = torch.as_tensor(occ, dtype=torch.float64)
        if not gap_floor >= 0:
            raise InputError(f"gap_floor: a level spacing >= 0 Ha; got {gap_floor!r}")
        self.gap_floor = float(gap_floor)

    def wu_yang(self, v: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        """:func:`wu_yang_functional` on this grid, (batch,) Ha."""
        return wu_yang_functional(v, density, self.kin, self.occ, self.dx)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """Densities (batch, n_points), electrons/bohr, of potentials ``v`` (batch, n_points), Ha.

        Computed in float64 whatever the dtype of ``v``; returned in float64.
        """
        return ks_density(v, self.kin, self.occ, self.dx, gap_floor=self.gap_floor)


def ks_density(v: torch.Tensor, kin: torch.Tensor, occ: torch.Tensor, dx: float, *,
               gap_floor: float = 0.0) -> torch.Tensor:
    """Functional form of :class:`KSDensity` (``kin`` (n, n) Ha, ``occ`` (n_occ,))."""
    return _KSDensityFn.apply(v.to(torch.float64), kin, occ, float(dx), float(gap_floor))


def density_l1_loss(pred_density: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Per-sample relative L1 error ``∫|n_pred - n| dx / ∫ n dx``, shape (batch,)."""
    return (pred_density - density).abs().sum(-1) / density.sum(-1)


def wu_yang_functional(v: torch.Tensor, density: torch.Tensor, kin: torch.Tensor,
                       occ: torch.Tensor, dx: float) -> torch.Tensor:
    """``W[v] = Σ_i f_i ε_i[v] - Σ_x v(x) n(x) dx`` (Ha) per sample, shape (batch,).

    ``v`` (batch, n_points) Ha, ``density`` (batch, n_points) electrons/bohr, ``kin``
    (n_points, n_points) Ha, ``occ`` (n_occ,). Differentiable (float64): the gradient
    with respect to ``v`` is ``(n[v] - n) dx`` (Hellmann–Feynman), bounded whatever the gaps.
    """
    v = v.to(torch.float64)
    e = torch.linalg.eigvalsh(kin + torch.diag_embed(v))
    return (e[..., : occ.shape[0]] * occ).sum(-1) - (v * density).sum(-1) * dx
