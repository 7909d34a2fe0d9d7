"""Inference-only re-implementation of a trained 1D neuraloperator ``FNO`` (same numbers, faster).

The neuraloperator FNO runs its point-wise layers as ``Conv1d`` with kernel size 1
(channels first). On a CPU those go through oneDNN convolutions that are several
times slower than one matrix product over all grid points. :class:`FastFNO1d`
copies the trained weights once and evaluates the same network channels-last:

- grid embedding: the constant coordinate channel enters the first lifting layer
  as a precomputed per-point bias;
- 1x1 convolutions (lifting, skips, channel MLPs, projection): ``h @ W.T + b`` on
  ``(batch, n_points, channels)``;
- spectral convolution: ``rfft`` along the grid, per-mode complex matrix products
  on the kept modes, ``irfft`` back (same FFT normalisation);
- soft gating, exact GELU, post-activation order exactly as neuraloperator's
  ``FNOBlocks.forward_with_postactivation``.

Only the configuration that :class:`matterflow.dft1d.fno.DensityToPotentialFNO`
builds is supported (1D, real data, full precision, no normalisation layers, no
domain padding, linear FNO skips, soft-gating channel-MLP skips);
:func:`fast_fno_from` raises ``InputError`` otherwise. The tests check the output
against the library model.
"""

from __future__ import annotations

from typing import Any

import torch

from matterflow.core.errors import InputError

__all__ = ["FastFNO1d", "fast_fno_from"]


def _lin(conv: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(W.T (in, out), bias (out,) or None) of a kernel-1 Conv1d."""
    w = conv.weight.detach()[..., 0].T.contiguous()
    b = conv.bias.detach().clone() if conv.bias is not None else None
    return w, b


class FastFNO1d(torch.nn.Module):
    """Channels-last evaluation of a trained neuraloperator 1D FNO (inference only).

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
        self.n_points = int(n_points)
        self.n_layers = int(model.n_layers)
        self.act = blocks.non_linearity
        in_ch = int(model.in_channels)
        with torch.no_grad():
            lift = list(model.lifting.fcs)
            w0, b0 = _lin(lift[0])
            if model.positional_embedding is not None:
                grid = model.positional_embedding(torch.zeros(1, in_ch, self.n_points))
                grid = grid[0, in_ch:].T                                  # (n_points, n_grid)
                self.lift0_bias = grid @ w0[in_ch:] + (b0 if b0 is not None else 0.0)
                self.lift0_w = w0[:in_ch].contiguous()
            else:
                self.lift0_bias = b0 if b0 is not None else torch.zeros(w0.shape[1])
                self.lift0_w = w0
            self.lift_rest = [_lin(c) for c in lift[1:]]
            self.proj = [_lin(c) for c in model.projection.fcs]
            self.skip_w = [_lin(s.conv)[0] for s in blocks.fno_skips]
            self.gate = [g.weight.detach().reshape(-1).clone() for g in blocks.channel_mlp_skips]
            self.gate_b = [g.bias.detach().reshape(-1).clone() if g.bias is not None else None
                           for g in blocks.channel_mlp_skips]
            self.mlp = [[_lin(c) for c in mlp.fcs] for mlp in blocks.channel_mlp]
            self.spec_w, self.spec_b, self.norms, self.n_kept = [], [], [], []
            for conv in blocks.convs:
                if conv.separable or conv.fno_block_precision != "full" or \
                        conv.resolution_scaling_factor is not None:
                    raise InputError("model: spectral convolution configuration not supported")
                w = conv.weight.to_tensor().detach() if hasattr(conv.weight, "to_tensor") \
                    else conv.weight.detach()                             # (in, out, modes)
                k = min(w.shape[-1], self.n_points // 2 + 1)
                self.spec_w.append(w[..., :k].permute(2, 0, 1).contiguous())  # (modes, in, out)
                self.spec_b.append(conv.bias.detach().reshape(-1).clone()
                                   if conv.bias is not None else None)
                self.norms.append(conv.fft_norm)
                self.n_kept.append(k)

    def _mlp(self, h: torch.Tensor, layers: list) -> torch.Tensor:
        for i, (w, b) in enumerate(layers):
            h = h @ w if b is None else torch.addmm(b, h.reshape(-1, h.shape[-1]), w
                                                     ).reshape(*h.shape[:-1], w.shape[1])
            if i < len(layers) - 1:
                h = self.act(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, n_points)`` -> ``(batch, out_channels, n_points)``."""
        if x.shape[-1] != self.n_points:
            raise InputError(f"x: FastFNO1d was built for {self.n_points} grid points; got "
                             f"{x.shape[-1]}")
        bsz, p = x.shape[0], self.n_points
        h = x.transpose(1, 2) @ self.lift0_w + self.lift0_bias         # (b, p, 2*hidden)
        if self.lift_rest:
            h = self.act(h)
            h = self._mlp(h, self.lift_rest)
        c = h.shape[-1]
        for i in range(self.n_layers):
            skip_fno = h @ self.skip_w[i]
            skip_mlp = h * self.gate[i] if self.gate_b[i] is None \
                else h * self.gate[i] + self.gate_b[i]
            k = self.n_kept[i]
            f = torch.fft.rfft(h, dim=1, norm=self.norms[i])[:, :k]      # (b, k, c) complex
            g = torch.bmm(f.transpose(0, 1), self.spec_w[i])             # (k, b, out)
            out = torch.zeros(bsz, p // 2 + 1, g.shape[-1], dtype=g.dtype)
            out[:, :k] = g.transpose(0, 1)
            h_fno = torch.fft.irfft(out, n=p, dim=1, norm=self.norms[i])
            if self.spec_b[i] is not None:
                h_fno = h_fno + self.spec_b[i]
            h = h_fno + skip_fno
            if i < self.n_layers - 1:
                h = self.act(h)
            h = self._mlp(h, self.mlp[i]) + skip_mlp
            if i < self.n_layers - 1:
                h = self.act(h)
        assert h.shape[-1] == c
        return self._mlp(h, self.proj).transpose(1, 2)


def fast_fno_from(model: Any, n_points: int) -> FastFNO1d:
    """A :class:`FastFNO1d` with the weights of a trained neuraloperator ``FNO``."""
    return FastFNO1d(model, n_points).eval()
