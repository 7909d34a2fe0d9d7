"""Inference-only re-implementation of a trained 1D neuraloperator ``FNO`` (same numbers, faster).

The neuraloperator FNO runs its point-wise layers as ``Conv1d`` with kernel size 1
and its spectral layers as FFT -> complex per-mode products -> inverse FFT, with
layout changes in between. On a CPU, for the short grids of 1D density functional
problems (tens to a few hundred points), the time goes into those layout copies,
oneDNN convolution set-up and many tiny FFTs, not into arithmetic.
:class:`FastFNO1d` copies the trained weights once and evaluates the same network
on activations laid out ``(n_points, channels, batch)``, where every step is one
dense matrix product without a copy:

- spectral convolution: the truncated real DFT is a ``(2 k, n_points)`` matrix
  (rows: mode, real/imaginary part; built by applying ``torch.fft.rfft`` to the
  identity, so normalisation and mode order are the library's), the per-mode
  complex channel mixing one batched product with real ``(2 out, 2 in)`` blocks,
  and the inverse DFT a ``(n_points, 2 k)`` matrix (``irfft`` of unit modes);
- point-wise layers (lifting, skips, channel MLPs, projection): ``W @ h`` per grid
  point with the weights shared, plus bias;
- grid embedding: the constant coordinate channel enters the first lifting layer
  as a precomputed per-point bias;
- soft gating, exact GELU, post-activation order exactly as neuraloperator's
  ``FNOBlocks.forward_with_postactivation``.

A DFT as a matrix costs ``O(n_points · k)`` per channel instead of
``O(n_points log n_points)``; for the grids it is built for it is still the faster
choice (about 2x over the FFT form, 64 points, 32 modes). Only the configuration
that :class:`matterflow.dft1d.fno.DensityToPotentialFNO` builds is supported (1D,
real data, full precision, no normalisation layers, no domain padding, linear FNO
skips, soft-gating channel-MLP skips); :func:`fast_fno_from` raises ``InputError``
otherwise. The tests check the output against the library model.
"""

from __future__ import annotations

from typing import Any

import torch

from matterflow.core.errors import InputError

__all__ = ["FastFNO1d", "fast_fno_from"]


def _lin(conv: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(W (out, in), bias (out, 1) or None) of a kernel-1 Conv1d."""
    w = conv.weight.detach()[..., 0].contiguous()
    b = conv.bias.detach().reshape(-1, 1).clone() if conv.bias is not None else None
    return w, b


def _dft_matrices(n_points: int, n_modes: int, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated real DFT ``(2 k, n)`` and its inverse ``(n, 2 k)`` (rows/cols: mode, re/im)."""
    eye = torch.eye(n_points, dtype=torch.float64)
    f = torch.fft.rfft(eye, dim=0, norm=norm)[:n_modes]                       # (k, n)
    forward = torch.stack([f.real, f.imag], 1).reshape(2 * n_modes, n_points)
    unit = torch.zeros(n_points // 2 + 1, 2 * n_modes, dtype=torch.complex128)
    modes = torch.arange(n_modes)
    unit[modes, 2 * modes] = 1.0
    unit[modes, 2 * modes + 1] = 1.0j
    inverse = torch.fft.irfft(unit, n=n_points, dim=0, norm=norm)              # (n, 2k)
    return forward.float().contiguous(), inverse.float().contiguous()


def _affine(w: torch.Tensor, b: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """``W h + b`` at every grid point: h (n_points, in, batch) -> (n_points, out, batch)."""
    y = torch.matmul(w, h)
    return y if b is None else y.add_(b)


class FastFNO1d(torch.nn.Module):
    """Evaluation of a trained neuraloperator 1D FNO by dense products (inference only).

    Call with ``(batch, in_channels, n_points)`` like the original; returns
    ``(batch, out_channels, n_points)``. Only for the ``n_points`` it was built for.
    """

    def __init__(self, model: Any, n_points: int):
        super().__init__()
        blocks = model.fno_blocks
        ok = (blocks.norm is None and not blocks.preactivation and blocks.stabilizer is None
              and not blocks.complex_data and model.domain_padding is None
              and blocks.use_channel_mlp and blocks.channel_mlp_skips is not None
              and blocks.fno_skips is not None and len(model.fno_blocks.convs[0].n_modes) == 1)
        if not ok:
            raise InputError("model: FastFNO1d supports the 1D FNO configuration of "
                             "DensityToPotentialFNO only (no norm, no padding, post-activation)")
        self.n_points = p = int(n_points)
        self.n_layers = int(model.n_layers)
        self.act = blocks.non_linearity
        in_ch = int(model.in_channels)
        with torch.no_grad():
            lift = list(model.lifting.fcs)
            w0, b0 = _lin(lift[0])
            bias0 = b0[:, 0] if b0 is not None else torch.zeros(w0.shape[0])
            if model.positional_embedding is not None:
                grid = model.positional_embedding(torch.zeros(1, in_ch, p))[0, in_ch:]  # (g, p)
                self.lift0_bias = (w0[:, in_ch:] @ grid).T + bias0                  # (p, out)
                self.lift0_w = w0[:, :in_ch].contiguous()
            else:
                self.lift0_bias = bias0.expand(p, -1)
                self.lift0_w = w0
            self.lift0_bias = self.lift0_bias[:, :, None].contiguous()             # (p, out, 1)
            self.lift_rest = [_lin(c) for c in lift[1:]]
            self.proj = [_lin(c) for c in model.projection.fcs]
            self.skip_w = [_lin(s.conv)[0] for s in blocks.fno_skips]
            self.gate = [g.weight.detach().reshape(-1, 1).clone() for g in blocks.channel_mlp_skips]
            self.gate_b = [g.bias.detach().reshape(-1, 1).clone() if g.bias is not None else None
                           for g in blocks.channel_mlp_skips]
            self.mlp = [[_lin(c) for c in mlp.fcs] for mlp in blocks.channel_mlp]
            self.dft, self.idft, self.mix, self.spec_b, self.n_kept = [], [], [], [], []
            for conv in blocks.convs:
                if conv.separable or conv.fno_block_precision != "full" or \
                        conv.resolution_scaling_factor is not None:
                    raise InputError("model: spectral convolution configuration not supported")
                w = conv.weight.to_tensor().detach() if hasattr(conv.weight, "to_tensor") \
                    else conv.weight.detach()                             # (in, out, modes)
                k = min(w.shape[-1], p // 2 + 1)
                forward, inverse = _dft_matrices(p, k, conv.fft_norm)
                self.dft.append(forward)
                self.idft.append(inverse)
                wr = w.real[..., :k].permute(2, 1, 0)                     # (k, out, in)
                wi = w.imag[..., :k].permute(2, 1, 0)
                # [re; im] of sum_in W x per mode, with x stacked [re; im]
                self.mix.append(torch.cat([torch.cat([wr, -wi], 2), torch.cat([wi, wr], 2)], 1
                                          ).contiguous())                 # (k, 2 out, 2 in)
                self.spec_b.append(conv.bias.detach().reshape(-1, 1).clone()
                                   if conv.bias is not None else None)
                self.n_kept.append(k)

    def _mlp(self, h: torch.Tensor, layers: list, add: torch.Tensor | None = None) -> torch.Tensor:
        for i, (w, b) in enumerate(layers):
            h = _affine(w, b, h)
            if i < len(layers) - 1:
                h = self.act(h)
        return h if add is None else h.add_(add)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_points)`` -> ``(batch, out_channels, n_points)``."""
        if x.shape[-1] != self.n_points:
            raise InputError(f"x: FastFNO1d was built for {self.n_points} grid points; got "
                             f"{x.shape[-1]}")
        bsz, p = x.shape[0], self.n_points
        h = torch.matmul(self.lift0_w, x.permute(2, 1, 0)).add_(self.lift0_bias)  # (p, c, b)
        if self.lift_rest:
            h = self._mlp(self.act(h), self.lift_rest)
        for i in range(self.n_layers):
            c, k = h.shape[1], self.n_kept[i]
            spec = (self.dft[i] @ h.reshape(p, c * bsz)).view(k, 2 * c, bsz)    # modes [re; im]
            spec = torch.bmm(self.mix[i], spec)                                   # (k, 2 out, b)
            out = spec.shape[1] // 2
            h_new = torch.matmul(self.skip_w[i], h)                               # FNO skip
            h_new = torch.addmm(h_new.view(p, out * bsz), self.idft[i],
                                spec.view(2 * k, out * bsz)).view(p, out, bsz)
            if self.spec_b[i] is not None:
                h_new.add_(self.spec_b[i])
            skip_mlp = h * self.gate[i] if self.gate_b[i] is None \
                else torch.addcmul(self.gate_b[i], h, self.gate[i])
            if i < self.n_layers - 1:
                h_new = self.act(h_new)
            h = self._mlp(h_new, self.mlp[i], add=skip_mlp)
            if i < self.n_layers - 1:
                h = self.act(h)
        return self._mlp(h, self.proj).permute(2, 1, 0)


def fast_fno_from(model: Any, n_points: int) -> FastFNO1d:
    """A :class:`FastFNO1d` with the weights of a trained neuraloperator ``FNO``."""
    return FastFNO1d(model, n_points).eval()
