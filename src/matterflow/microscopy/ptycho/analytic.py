"""Hand-derived gradients of the ptychography loss (no autograd): the fast engine.

The forward model is that of :mod:`matterflow.microscopy.ptycho.model` (probe shifted by a
Fourier phase ramp, windows of the transmission slices, ``ψ ← IFFT[P · FFT(t_s ψ)]``,
far field ``|FFT_ortho ψ|²``), evaluated batch-wise, and the gradients are written out:

- amplitude loss ``L = Σ (√(|Ψ|² + ε) − √I)²``: ``∂L/∂Ψ* = (1 − √I / √(|Ψ|²+ε)) Ψ``
  (the exit-wave correction of the modulus constraint, as in ePIE);
- Poisson loss (the deviance ``L = Σ (|Ψ|² − I − I ln((|Ψ|² + ε) / I))`` ≥ 0, the negative
  log-likelihood up to a constant): ``∂L/∂Ψ* = (1 − I / (|Ψ|² + ε)) Ψ``;
- back through the (unitary) far-field FFT, each propagator ``P`` (adjoint ``P*``) and each
  transmission product ``χ = ψ t`` (``∂/∂t* = ψ* ∂/∂χ*``, ``∂/∂ψ* = t* ∂/∂χ*``), the windows
  (scatter-add into the object) and the probe shift (adjoint: the shift by ``−s``).

Returned gradients follow torch's convention for real losses of complex tensors
(``2 ∂L/∂z*``), so they can be set as ``.grad`` of the real parameters and stepped by
any torch optimiser; ``tests/ptycho/test_ptycho_speed.py`` checks them against autograd.

Two savings over autograd besides the bookkeeping: the propagation after the last slice
and the far-field FFT fuse (``FFT_ortho(IFFT(FFT(χ) P)) = FFT_ortho(χ) P``), and
measurements are compared unshifted (the data are ``ifftshift``-ed once). Positions on
whole pixels (fraction < 1e-6 px) skip the probe-shift FFTs (the shift is the identity).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Batch", "split_positions", "loss_and_gradients", "loss_only", "unshift",
           "transmission_grads"]

EPS = 1e-10


def unshift(data: torch.Tensor) -> torch.Tensor:
    """Measured patterns (zero frequency at ``W // 2``) in FFT order (zero at index 0)."""
    return torch.fft.ifftshift(data, dim=(-2, -1))


def split_positions(positions_a: np.ndarray, sampling: float, window: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Integer window corners ``(n, 2)`` and sub-pixel fractions ``(n, 2)`` (float64)."""
    p = np.asarray(positions_a, np.float64) / float(sampling) - window // 2
    corner = np.floor(p)
    frac = p - corner
    whole = frac > 1 - 1e-6          # 2.9999999 px is 3 px
    corner[whole] += 1
    frac[whole] = 0.0
    frac[frac < 1e-6] = 0.0
    return corner.astype(np.int64), frac


class Batch:
    """Index and shift bookkeeping of one mini-batch of positions."""

    def __init__(self, corner: np.ndarray, frac: np.ndarray, obj_shape: tuple[int, int],
                 window: int, dtype: torch.dtype):
        nx, ny = obj_shape
        self.corner = np.stack([corner[:, 0] % nx, corner[:, 1] % ny], 1)
        self.b = len(corner)
        self.window = window
        self.obj_shape = (nx, ny)
        # the periodic object padded by one window: every window is a plain slice of it
        self.wrap = (torch.arange(nx + window) % nx, torch.arange(ny + window) % ny)
        self.shifted = bool(np.any(frac != 0))
        if self.shifted:
            f = np.fft.fftfreq(window)
            rx = np.exp(-2j * np.pi * frac[:, 0, None] * f)     # (B, W), separable ramp
            ry = np.exp(-2j * np.pi * frac[:, 1, None] * f)
            cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
            self.ramp = (torch.from_numpy(rx).to(cdt)[:, :, None]
                         * torch.from_numpy(ry).to(cdt)[:, None, :])

    def windows(self, obj: torch.Tensor) -> torch.Tensor:
        """``(S, B, W, W)`` windows of ``obj`` ``(S, nx, ny)``."""
        w = self.window
        pad = obj[:, self.wrap[0]][:, :, self.wrap[1]]
        out = torch.empty((obj.shape[0], self.b, w, w), dtype=obj.dtype)
        for b, (i, j) in enumerate(self.corner.tolist()):
            out[:, b] = pad[:, i:i + w, j:j + w]
        return out

    def scatter(self, g_win: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`windows`: sum ``g_win`` ``(S, B, W, W)`` into ``(S, nx, ny)``."""
        s, w = g_win.shape[0], self.window
        nx, ny = self.obj_shape
        pad = torch.zeros((s, nx + w, ny + w), dtype=g_win.dtype)
        for b, (i, j) in enumerate(self.corner.tolist()):
            pad[:, i:i + w, j:j + w] += g_win[:, b]
        t = torch.zeros((s, nx, ny + w), dtype=g_win.dtype).index_add_(1, self.wrap[0], pad)
        return torch.zeros((s, nx, ny), dtype=g_win.dtype).index_add_(2, self.wrap[1], t)

    def shifted_probe(self, probe: torch.Tensor, probe_k: torch.Tensor | None) -> torch.Tensor:
        """``(B, W, W)`` shifted probes (or the ``(1, W, W)`` probe when no shift)."""
        if not self.shifted:
            return probe[None]
        return torch.fft.ifft2(probe_k * self.ramp)

    def probe_adjoint(self, g_ps: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`shifted_probe`: ``(W, W)``."""
        if not self.shifted:
            return g_ps.sum(0)
        return torch.fft.ifft2((torch.fft.fft2(g_ps) * self.ramp.conj()).sum(0))


def _factor(psi_k: torch.Tensor, meas: torch.Tensor, loss: str) -> tuple[float, torch.Tensor]:
    """Loss of the batch and the real factor ``f`` with ``2 ∂L/∂Ψ* = f Ψ``."""
    m = psi_k.real * psi_k.real + psi_k.imag * psi_k.imag
    if loss == "amplitude":
        s = torch.sqrt(m + EPS)
        d = s - meas
        val = float((d * d).sum())
        f = 2.0 - 2.0 * meas / s
    else:
        me = m + EPS
        val = float((m - meas - meas * torch.log(me) + torch.xlogy(meas, meas)).sum())
        f = 2.0 - 2.0 * meas / me
    return val, f


def _forward(probe_s: torch.Tensor, win: torch.Tensor, prop: torch.Tensor | None,
             keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Far-field ``Ψ`` (FFT order, ortho) and the incident waves of every slice."""
    psi = probe_s
    incident = []
    n = win.shape[0]
    for s in range(n):
        if keep:
            incident.append(psi)
        chi = psi * win[s]
        if s < n - 1:
            k = torch.fft.fft2(chi)
            psi = torch.fft.ifft2(k.mul_(prop))
        else:
            psi = torch.fft.fft2(chi, norm="ortho")
            if prop is not None:
                psi.mul_(prop)
    return psi, incident


def loss_only(probe: torch.Tensor, obj: torch.Tensor, batch: Batch, meas: torch.Tensor,
              prop: torch.Tensor | None, loss: str = "amplitude") -> float:
    """The loss of one batch (``meas``: √counts for amplitude, counts for Poisson, FFT order)."""
    probe_k = torch.fft.fft2(probe) if batch.shifted else None
    psi_k, _ = _forward(batch.shifted_probe(probe, probe_k), batch.windows(obj), prop, False)
    return _factor(psi_k, meas, loss)[0]


def loss_and_gradients(probe: torch.Tensor, obj: torch.Tensor, batch: Batch, meas: torch.Tensor,
                       prop: torch.Tensor | None, *, loss: str = "amplitude",
                       probe_grad: bool = True
                       ) -> tuple[float, torch.Tensor, torch.Tensor | None]:
    """Loss of one batch, ``2 ∂L/∂obj*`` ``(S, nx, ny)`` and ``2 ∂L/∂probe*`` ``(W, W)``.

    ``probe`` ``(W, W)`` complex, ``obj`` ``(S, nx, ny)`` complex transmission slices,
    ``meas`` ``(B, W, W)`` in FFT order (√counts for ``amplitude``, counts for ``poisson``),
    ``prop`` the inter-slice propagator (None for one slice).
    """
    probe_k = torch.fft.fft2(probe) if batch.shifted else None
    probe_s = batch.shifted_probe(probe, probe_k)
    win = batch.windows(obj)
    psi_k, incident = _forward(probe_s, win, prop, True)
    val, f = _factor(psi_k, meas, loss)
    g = psi_k.mul_(f)
    n = win.shape[0]
    prop_c = prop.conj_physical() if prop is not None else None
    if prop_c is not None:
        g.mul_(prop_c)
    g = torch.fft.ifft2(g, norm="ortho")          # 2 ∂L/∂χ* of the last slice
    g_win = torch.empty((n, batch.b, batch.window, batch.window), dtype=g.dtype)
    for s in range(n - 1, -1, -1):
        torch.mul(g, incident[s].conj(), out=g_win[s])
        if s == 0 and not probe_grad:
            break
        g = g.mul_(win[s].conj())                  # 2 ∂L/∂ψ* incident on slice s
        if s > 0:
            g = torch.fft.ifft2(torch.fft.fft2(g).mul_(prop_c))
    g_obj = batch.scatter(g_win)
    g_probe = batch.probe_adjoint(g) if probe_grad else None
    return val, g_obj, g_probe


def transmission_grads(trans: torch.Tensor, g_obj: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. phase φ and absorption μ of ``t = exp(iφ − μ)`` from ``2 ∂L/∂t*``."""
    h = g_obj * trans.conj()
    return h.imag.contiguous(), (-h.real).contiguous()
