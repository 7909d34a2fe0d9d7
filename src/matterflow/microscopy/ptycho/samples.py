"""Test objects: a SrTiO3 [001] slab (Lobato potentials) and a nanocube of point-like atoms."""

from __future__ import annotations

import numpy as np
import torch

from matterflow.microscopy.multislice import antialias_aperture
from matterflow.microscopy.potentials import slice_potentials

__all__ = ["srtio3_slices", "nanocube_volume", "block_sum", "bilayer_slices",
           "layer_ncc_profile", "A_SRTIO3"]

A_SRTIO3 = 3.905
_BASIS = [("Sr", 0, 0, 0), ("Ti", .5, .5, .5), ("O", .5, .5, 0), ("O", .5, 0, .5), ("O", 0, .5, .5)]


def srtio3_slices(cells: int, px_per_cell: int, thickness_cells: int = 1, *,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, float, float]:
    """Projected potentials (V·Å) of a periodic ``cells × cells`` SrTiO3 [001] slab,
    two slices per unit cell (SrO and TiO2 planes): ``(2 t, n, n)``; sampling Å, dz Å."""
    a = A_SRTIO3
    pos, sym, sl = [], [], []
    for i in range(cells):
        for j in range(cells):
            for s, x, y, z in _BASIS:
                pos.append(((i + x) * a, (j + y) * a))
                sym.append(s)
                sl.append(int(round(2 * z)))
    n = cells * px_per_cell
    v = slice_potentials(np.array(pos), sym, (cells * a, cells * a), (n, n), np.array(sl), 2,
                         dtype=dtype)
    return v.repeat(thickness_cells, 1, 1), a / px_per_cell, a / 2


def band_limit(img: torch.Tensor, sampling: float) -> torch.Tensor:
    """``img`` (…, n, n) low-passed to 2/3 Nyquist (what the forward model transmits)."""
    aa = antialias_aperture(tuple(img.shape[-2:]), (sampling, sampling), dtype=img.dtype)
    return torch.fft.ifft2(torch.fft.fft2(img) * aa).real


def nanocube_volume(n: int, *, atoms_per_edge: int = 3, spacing_vox: float = 4.0,
                    sigma_vox: float = 0.8, phase_per_atom: float = 0.6, isolated: bool = True,
                    jitter_vox: float = 0.0, seed: int = 0,
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, np.ndarray]:
    """Phase volume ``(n, n, n)`` (rad per voxel) of a cubic cluster of Gaussian atoms
    (integrated phase ``phase_per_atom`` rad each), centred; with ``isolated`` one more
    atom sits alone above the cube, off its columns; ``jitter_vox`` displaces the cube's
    atoms by seeded Gaussian offsets (std, voxels). Returns the volume and the atom
    centres ``(m, 3)`` in voxels (z, x, y)."""
    c = (n - 1) / 2
    k = (np.arange(atoms_per_edge) - (atoms_per_edge - 1) / 2) * spacing_vox
    zz, xx, yy = np.meshgrid(k, k, k, indexing="ij")
    centres = np.stack([zz.ravel(), xx.ravel(), yy.ravel()], 1) + c
    if jitter_vox:
        centres = centres + np.random.default_rng(seed).normal(0, jitter_vox, centres.shape)
    if isolated:
        # above the cube and beside its columns, so its own column holds only it
        half = (atoms_per_edge - 1) / 2 * spacing_vox
        top = c - half - spacing_vox * 1.5
        centres = np.vstack([centres, [[top, c + half + spacing_vox, c]]])
    g = np.arange(n, dtype=float)
    vol = np.zeros((n, n, n))
    norm = phase_per_atom / ((2 * np.pi) ** 1.5 * sigma_vox ** 3)
    for z0, x0, y0 in centres:
        vol += norm * (np.exp(-(g - z0) ** 2 / (2 * sigma_vox ** 2))[:, None, None]
                       * np.exp(-(g - x0) ** 2 / (2 * sigma_vox ** 2))[None, :, None]
                       * np.exp(-(g - y0) ** 2 / (2 * sigma_vox ** 2))[None, None, :])
    return torch.tensor(vol, dtype=dtype), centres


def block_sum(vol: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum ``factor³`` blocks of a ``(nz, nx, ny)`` volume (phase per voxel is additive)."""
    if factor == 1:
        return vol
    nz, nx, ny = (s // factor for s in vol.shape)
    return vol.reshape(nz, factor, nx, factor, ny, factor).sum((1, 3, 5))


def bilayer_slices(n_px: int = 96, cell_a: float = 15.36, *, gap_a: float = 12.0,
                   slice_a: float = 2.0, margin_a: float = 4.0,
                   species: tuple[str, str] = ("Pt", "Pt"), periods: tuple[int, int] = (4, 5),
                   dtype: torch.dtype = torch.float32
                   ) -> tuple[torch.Tensor, float, float, tuple[int, int], torch.Tensor]:
    """Two single-atom-layer sheets ``gap_a`` Å apart along the beam in a periodic
    ``cell_a``² cell: the upper (entrance) one a square lattice of ``periods[0]²`` atoms of
    ``species[0]`` per cell, the lower one ``periods[1]²`` atoms of ``species[1]`` offset
    by half its period (no atom above another), vacuum ``margin_a`` Å before and after.

    Returns the projected potentials of the ``slice_a``-thick slices ``(S, n, n)`` (V·Å),
    the pixel (Å), the slice thickness (Å), the two layers' slice indices and the layers'
    own projected potentials ``(2, n, n)`` (V·Å)."""
    m = int(round(margin_a / slice_a))
    g = int(round(gap_a / slice_a))
    if g < 1 or m < 0:
        raise ValueError(f"bilayer: gap {gap_a} Å must be at least one slice ({slice_a} Å)")
    n_slices = 2 * m + g + 1
    idx = (m, m + g)
    layers = []
    for layer, (sym, per) in enumerate(zip(species, periods, strict=True)):
        a = cell_a / per
        off = 0.0 if layer == 0 else a / 2
        i, j = np.meshgrid(np.arange(per), np.arange(per), indexing="ij")
        pos = np.stack([i.ravel(), j.ravel()], 1) * a + off
        layers.append(slice_potentials(pos, [sym] * len(pos), (cell_a, cell_a), (n_px, n_px),
                                       np.zeros(len(pos), int), 1, dtype=dtype)[0])
    lay = torch.stack(layers)
    v = torch.zeros(n_slices, n_px, n_px, dtype=dtype)
    v[idx[0]] = lay[0]
    v[idx[1]] = lay[1]
    return v, cell_a / n_px, slice_a, idx, lay


def layer_ncc_profile(phase_slices: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """NCC (Pearson) of each reconstructed slice ``(S, n, n)`` with each layer's own
    in-plane pattern ``(L, n, n)``: the depth profile ``(S, L)`` of every layer."""
    a = np.asarray(phase_slices, float).reshape(len(phase_slices), -1)
    b = np.asarray(layers, float).reshape(len(layers), -1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1))[:, None] * np.sqrt((b * b).sum(1))[None, :]
    return (a @ b.T) / np.where(den > 0, den, np.inf)
