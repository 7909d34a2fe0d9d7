"""Projected atomic potentials per slice from the Lobato & Van Dyck (2014) parametrisation.

I. Lobato and D. Van Dyck, Acta Cryst. A 70 (2014) 636-649, doi:10.1107/S205327331401643X:
``f_e(g) = Σ_i a_i (2 + b_i g²)/(1 + b_i g²)²`` (g in 1/Å, f_e in Å). The table
(``lobato_2014.json``, Z = 1..103) holds the published coefficients; its header names
the citation and the (MIT-licensed) source the numbers were taken from.

The projected potential of a periodic slice is built exactly in Fourier space:
``V_z(k) = (2π a0² E_h / A) Σ_j f_{Z_j}(|k|) exp(−2πi k·r_j)`` (V·Å), each atom's whole
projected potential placed in the slice that holds its centre (abTEM's
"infinite" projection). Frozen phonons: Gaussian displacements of standard
deviation ``sigma`` Å (or a Debye–Waller factor ``exp(−2π² σ² k²)`` for the mean).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import torch

from matterflow.core.errors import InputError
from matterflow.microscopy.optics import spatial_frequencies

__all__ = ["scattering_factor", "slice_potentials", "KAPPA_V_A2", "lobato_table"]

_BOHR = 0.529177210903
_HARTREE = 27.211386245988
KAPPA_V_A2 = 2 * math.pi * _BOHR ** 2 * _HARTREE
"""h²/(2π m0 e) = 2π a0² E_h ≈ 47.88 V·Å²: 2D FT of V_z = KAPPA · f_e."""


@functools.lru_cache(maxsize=1)
def lobato_table() -> dict[str, tuple[list[float], list[float]]]:
    data = json.loads((Path(__file__).with_name("lobato_2014.json")).read_text())
    return {s: (v["a"], v["b"]) for s, v in data["elements"].items()}


def scattering_factor(symbol: str, k: torch.Tensor) -> torch.Tensor:
    """Electron scattering factor f_e in Å at spatial frequency ``k`` (1/Å)."""
    table = lobato_table()
    if symbol not in table:
        raise InputError(f"element {symbol!r} has no Lobato parameters; known: H ... Lr")
    a, b = table[symbol]
    k2 = k ** 2
    out = torch.zeros_like(k)
    for ai, bi in zip(a, b, strict=True):
        out = out + ai * (2 + bi * k2) / (1 + bi * k2) ** 2
    return out


def slice_potentials(positions: np.ndarray | torch.Tensor, symbols: list[str],
                     cell_xy: tuple[float, float], shape: tuple[int, int], slice_index: np.ndarray,
                     n_slices: int, *, debye_waller_sigma: float = 0.0,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Projected potential (V·Å) of each slice, shape ``(n_slices, nx, ny)``.

    ``positions`` (n, 2) in-plane Å (a tensor keeps gradients), ``slice_index`` (n,)
    slice of each atom, ``cell_xy`` the orthogonal periodic cell lengths in Å.
    """
    pos = torch.as_tensor(positions, dtype=dtype)
    sampling = (cell_xy[0] / shape[0], cell_xy[1] / shape[1])
    kx, ky = spatial_frequencies(shape, sampling, dtype=dtype)
    k = torch.sqrt(kx ** 2 + ky ** 2)
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    kxv = torch.fft.fftfreq(shape[0], d=sampling[0], dtype=dtype)
    kyv = torch.fft.fftfreq(shape[1], d=sampling[1], dtype=dtype)
    ex = torch.polar(torch.ones(len(pos), shape[0], dtype=dtype), -2 * math.pi * pos[:, :1] * kxv)
    ey = torch.polar(torch.ones(len(pos), shape[1], dtype=dtype), -2 * math.pi * pos[:, 1:2] * kyv)
    area = cell_xy[0] * cell_xy[1]
    dw = torch.exp(-2 * math.pi ** 2 * debye_waller_sigma ** 2 * k ** 2)
    sl = np.asarray(slice_index)
    sym = np.asarray(symbols)
    out = []
    ff = {s: (KAPPA_V_A2 / area * scattering_factor(s, k) * dw).to(cdt) for s in set(symbols)}
    for s in range(n_slices):
        vk = torch.zeros(shape, dtype=cdt)
        for e in ff:
            idx = np.nonzero((sl == s) & (sym == e))[0]
            if len(idx):
                t = torch.as_tensor(idx)
                vk = vk + ff[e] * (ex[t].T @ ey[t])
        out.append(torch.fft.ifft2(vk).real * (shape[0] * shape[1]))
    return torch.stack(out)
