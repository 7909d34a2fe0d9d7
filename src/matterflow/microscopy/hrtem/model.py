"""HRTEM of a periodic crystal: a thickness series from one multislice, images by one CTF pass.

A perfect crystal under a plane wave gives a periodic exit wave, so one unit cell
(``SlicedCell``, beam along c) is simulated on a grid of ``grid`` points (exact, no
tiling error); the exit waves after 1..n repeats come from one pass. An image
follows from the stored waves by one CTF application per optics (milliseconds),
the matcher's inner loop. :func:`render` draws the periodic image on any pixel grid
(pixel size, rotation, shift), :func:`lattice_average` does the reverse for a
measured image, and :func:`shift_ncc` compares the two, shift-invariant.

Arrays: waves and cell images ``(n_thickness, nx, ny)`` on the cell grid (pixel
``cell_xy / grid`` Å); measured images ``(rows, cols)``, row = x, column = y.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from matterflow.microscopy.multislice import multislice, plane_wave
from matterflow.microscopy.optics import ctf, spatial_frequencies, wavelength
from matterflow.microscopy.potentials import slice_potentials
from matterflow.microscopy.structures import SlicedCell

__all__ = ["cell_grid", "exit_waves", "images", "render", "lattice_coefficients",
           "register_lattice", "lattice_average", "shift_ncc"]


def cell_grid(cell_xy: tuple[float, float], sampling: float = 0.08) -> tuple[int, int]:
    """Even grid points per cell side for a pixel of at most ``sampling`` Å."""
    return tuple(2 * math.ceil(c / sampling / 2) for c in cell_xy)  # type: ignore[return-value]


def exit_waves(cell: SlicedCell, n_repeats: int, *, energy_ev: float = 300e3,
               sampling: float = 0.08, debye_waller_sigma: float = 0.0,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, tuple[float, float]]:
    """Exit waves after 1..``n_repeats`` repeats of ``cell``, ``(n_repeats, nx, ny)`` complex,
    and the cell-grid pixel ``(dx, dy)`` in Å. ``debye_waller_sigma``: rms displacement (Å)."""
    grid = cell_grid(cell.cell_xy, sampling)
    v = slice_potentials(cell.positions_xy, cell.symbols, cell.cell_xy, grid, cell.slice_index,
                         cell.n_slices, debye_waller_sigma=debye_waller_sigma, dtype=dtype)
    px = (cell.cell_xy[0] / grid[0], cell.cell_xy[1] / grid[1])
    waves = multislice(plane_wave(grid, dtype=dtype), v.repeat(n_repeats, 1, 1), px,
                       cell.slice_thickness, energy_ev, save_every=cell.n_slices)
    return waves, px


def images(waves: torch.Tensor, pixel: tuple[float, float], *, energy_ev: float = 300e3,
           defocus: float | torch.Tensor = 0.0, cs: float | torch.Tensor = 0.0,
           focal_spread: float | torch.Tensor = 0.0, astigmatism: float | torch.Tensor = 0.0,
           astigmatism_angle: float | torch.Tensor = 0.0,
           divergence_mrad: float = 0.0) -> torch.Tensor:
    """Intensities ``|ψ ⊛ PSF|²`` of ``waves`` (..., nx, ny) for one optics (Å, rad, mrad);
    tensors keep gradients. Coherent CTF times the quasi-coherent envelopes."""
    kx, ky = spatial_frequencies(tuple(waves.shape[-2:]), pixel, dtype=waves.real.dtype)
    if isinstance(focal_spread, torch.Tensor) and focal_spread.requires_grad:
        # a fitted focal spread: the temporal envelope multiplied onto the coherent CTF here,
        # since torch.polar's second derivative is NaN where the envelope underflows to 0
        t = ctf(kx, ky, energy_ev, defocus=defocus, cs=cs, astigmatism=astigmatism,
                astigmatism_angle=astigmatism_angle, divergence_mrad=divergence_mrad)
        lam = wavelength(energy_ev)
        t = t * torch.exp(-0.5 * (math.pi * lam * focal_spread.to(kx.dtype)
                                  * (kx ** 2 + ky ** 2)) ** 2)
    else:
        t = ctf(kx, ky, energy_ev, defocus=defocus, cs=cs, focal_spread=focal_spread,
                astigmatism=astigmatism, astigmatism_angle=astigmatism_angle,
                divergence_mrad=divergence_mrad)
    return torch.fft.ifft2(torch.fft.fft2(waves) * t).abs() ** 2


def _reflections(grid, cell_xy, g_max):
    """(h, k) FFT indices of the cell grid and their crystal-frame g (1/Å) with |g| < g_max."""
    h = np.fft.fftfreq(grid[0], 1 / grid[0]).round().astype(int)
    k = np.fft.fftfreq(grid[1], 1 / grid[1]).round().astype(int)
    hh, kk = np.meshgrid(h, k, indexing="ij")
    g = np.stack([hh / cell_xy[0], kk / cell_xy[1]], -1)
    keep = np.hypot(g[..., 0], g[..., 1]) < g_max
    return np.argwhere(keep), g[keep]


def _to_image_frame(g, rotation_deg, scale):
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    return g @ np.array([[c, s], [-s, c]]) / scale  # rows: R(θ) g / scale


def render(cell_image: np.ndarray, cell_xy: tuple[float, float], shape: tuple[int, int],
           pixel: float, *, rotation_deg: float = 0.0,
           shift: tuple[float, float] = (0.0, 0.0), scale: float = 1.0,
           g_max: float | None = None) -> np.ndarray:
    """The periodic ``cell_image`` (nx, ny) on a ``shape`` grid of square ``pixel`` Å, the
    lattice rotated by ``rotation_deg`` and scaled by ``scale``, origin at ``shift`` Å; the
    Fourier series summed exactly, cut at ``g_max`` 1/Å (default: the output's Nyquist, at most 2.5)."""
    grid = cell_image.shape
    coef = np.fft.fft2(cell_image) / (grid[0] * grid[1])
    idx, g = _reflections(grid, cell_xy, g_max or min(0.5 / pixel, 2.5))
    c = coef[idx[:, 0], idx[:, 1]]
    gi = _to_image_frame(g, rotation_deg, scale)
    c = c * np.exp(-2j * np.pi * gi @ np.asarray(shift, dtype=float))
    x = np.arange(shape[0]) * pixel
    y = np.arange(shape[1]) * pixel
    out = np.empty(shape)
    for r0 in range(0, shape[0], 64):  # rows in chunks: (rows·cols, n_g) phases
        xx, yy = np.meshgrid(x[r0:r0 + 64], y, indexing="ij")
        ph = np.exp(2j * np.pi * (xx[..., None] * gi[:, 0] + yy[..., None] * gi[:, 1]))
        out[r0:r0 + 64] = (ph @ c).real
    return out


def lattice_coefficients(image: np.ndarray, pixel: float, g_image: np.ndarray) -> np.ndarray:
    """Fourier coefficients (per pixel, complex ``(n_g,)``) of the Hann-windowed ``image`` at
    the image-frame frequencies ``g_image`` (n_g, 2) in 1/Å; the mean is subtracted."""
    img = np.asarray(image, dtype=float)
    wx, wy = np.hanning(img.shape[0]), np.hanning(img.shape[1])
    w = wx[:, None] * wy[None, :]
    img = (img - (img * w).sum() / w.sum()) * w / w.sum()
    x = np.arange(img.shape[0]) * pixel
    y = np.arange(img.shape[1]) * pixel
    ex = np.exp(-2j * np.pi * np.outer(g_image[:, 0], x))  # (n_g, rows)
    ey = np.exp(-2j * np.pi * np.outer(g_image[:, 1], y))  # (n_g, cols)
    return ((ex @ img) * ey).sum(1)


def register_lattice(image: np.ndarray, pixel: float, cell_xy: tuple[float, float], *,
                     rotation_bounds: tuple[float, float] = (-5.0, 5.0),
                     scale_bounds: tuple[float, float] = (0.97, 1.03),
                     g_max: float = 1.2) -> tuple[float, float]:
    """In-plane rotation (°) and scale of the lattice in ``image`` that maximise the power at
    its reflections with |g| < ``g_max`` 1/Å: a coarse search on the padded power spectrum,
    then a Nelder–Mead refinement on the exact DFT."""
    from scipy.optimize import minimize

    img = np.asarray(image, dtype=float)
    w = np.hanning(img.shape[0])[:, None] * np.hanning(img.shape[1])[None, :]
    pad = [2 * s for s in img.shape]
    ps = np.abs(np.fft.fft2((img - img.mean()) * w, s=pad)) ** 2
    _, g = _reflections((64, 64), cell_xy, g_max)
    g = g[np.hypot(g[:, 0], g[:, 1]) > 0]

    def coarse(rot, sc):
        gi = _to_image_frame(g, rot, sc)
        fi = np.round(gi[:, 0] * pixel * pad[0]).astype(int) % pad[0]
        fj = np.round(gi[:, 1] * pixel * pad[1]).astype(int) % pad[1]
        return ps[fi, fj].sum()

    rots = np.arange(rotation_bounds[0], rotation_bounds[1] + 1e-9, 0.25)
    scs = np.arange(scale_bounds[0], scale_bounds[1] + 1e-9, 0.0025)
    best = max((coarse(r, s), r, s) for r in rots for s in scs)

    def neg(p):
        if not (rotation_bounds[0] <= p[0] <= rotation_bounds[1]
                and scale_bounds[0] <= p[1] <= scale_bounds[1]):
            return 0.0
        return -float(np.sum(np.abs(lattice_coefficients(img, pixel,
                                                         _to_image_frame(g, p[0], p[1]))) ** 2))

    res = minimize(neg, [best[1], best[2]], method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-12, "initial_simplex":
                            [[best[1], best[2]], [best[1] + 0.2, best[2]],
                             [best[1], best[2] + 0.002]], "maxiter": 200})
    return float(res.x[0]), float(res.x[1])


def lattice_average(image: np.ndarray, pixel: float, cell_xy: tuple[float, float],
                    grid: tuple[int, int], *, rotation_deg: float = 0.0, scale: float = 1.0,
                    g_max: float = 2.5) -> np.ndarray:
    """The periodic part of ``image`` on the cell grid ``grid``, ``(nx, ny)``: its lattice
    Fourier coefficients (|g| < ``g_max`` 1/Å) placed on the cell's FFT grid, zero mean."""
    idx, g = _reflections(grid, cell_xy, min(g_max, 0.5 / pixel))
    coef = lattice_coefficients(image, pixel, _to_image_frame(g, rotation_deg, scale))
    full = np.zeros(grid, dtype=complex)
    full[idx[:, 0], idx[:, 1]] = coef
    full[0, 0] = 0
    return np.fft.ifft2(full).real * grid[0] * grid[1]


def shift_ncc(sim: torch.Tensor, target: torch.Tensor, *, upsample: int = 2,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised cross-correlation of periodic images, maximised over circular shifts on an
    ``upsample``-times finer grid: ``(...)`` for ``sim`` (..., nx, ny), ``target`` (nx, ny).
    Invariant to an affine contrast change (offset and gain > 0); differentiable. ``mask``
    (nx, ny) in FFT order: the Fourier components compared (e.g. a low-pass band)."""
    fs = torch.fft.fft2(sim)
    ft = torch.fft.fft2(target)
    if mask is not None:
        fs, ft = fs * mask, ft * mask
    fs = fs.clone()
    fs[..., 0, 0] = 0
    ft = ft.clone()
    ft[0, 0] = 0
    cross = fs * torch.conj(ft)
    nx, ny = sim.shape[-2:]
    if upsample > 1:
        padded = torch.zeros((*cross.shape[:-2], nx * upsample, ny * upsample), dtype=cross.dtype)
        hx, hy = nx // 2, ny // 2
        padded[..., :hx, :hy] = cross[..., :hx, :hy]
        padded[..., :hx, -hy:] = cross[..., :hx, -hy:]
        padded[..., -hx:, :hy] = cross[..., -hx:, :hy]
        padded[..., -hx:, -hy:] = cross[..., -hx:, -hy:]
        cross = padded
    cc = torch.fft.ifft2(cross).real * cross.shape[-1] * cross.shape[-2]
    norm = torch.sqrt((fs.abs() ** 2).sum((-2, -1)) * (ft.abs() ** 2).sum())
    return cc.amax((-2, -1)) / norm
