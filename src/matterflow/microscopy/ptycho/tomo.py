"""Joint ptychographic tomography and its sequential baseline.

The unknown is one phase volume ``(nz, nx, ny)`` (rad per voxel; potential =
phase / σ, V·Å per voxel). For each tilt the volume is rotated about the y axis
(:func:`~matterflow.microscopy.ptycho.model.rotate_volume`, differentiable), summed
into ``n_slices`` slices along the beam, and propagated by multislice against that
tilt's patterns (amplitude loss). Positivity is a projection after each Adam step,
total variation a penalty. The probe is known (from a prior ptychography run or
the nominal optics).

The sequential baseline does per-tilt single-slice ptychography, then fits the
volume to the phase projections with the same projector (least squares,
positivity, TV).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from matterflow.core.errors import InputError
from matterflow.microscopy.ptycho.model import (
    exit_waves,
    far_field,
    patterns,
    propagator,
    rotate_volume,
    volume_slices,
)
from matterflow.microscopy.ptycho.reconstruct import ncc, reconstruct

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["TomoResult", "simulate_tilts", "joint_tomography", "sequential_tomography",
           "depth_fwhm", "total_variation", "shift_gauge"]


@dataclass
class TomoResult:
    volume: np.ndarray       # (nz, nx, ny) rad per voxel
    losses: np.ndarray       # (iterations,)
    seconds: float
    ncc_history: np.ndarray  # (iterations,) NCC against truth (nan if none)
    times: np.ndarray | None = None  # (iterations,) s since the start at each iteration's end
    shifts_a: np.ndarray | None = None  # (tilts, 2) Å estimated in-plane shift of each tilt


def _check(counts, angles_deg):
    c = np.asarray(counts)
    if c.ndim != 4:
        raise InputError(f"tilt-series patterns must be (tilts, positions, W, W); got {c.shape}")
    if len(angles_deg) != c.shape[0]:
        raise InputError(f"{len(angles_deg)} tilt angles for {c.shape[0]} tilts of patterns "
                         "(axis 0)")
    if not np.isfinite(c).all() or (c < 0).any():
        raise InputError("tilt-series patterns hold NaN, infinite or negative counts")
    return c.astype(np.float32, copy=False)


def _transmissions(vol, angle_rad, n_slices):
    ph = volume_slices(rotate_volume(vol, angle_rad), n_slices)
    return torch.polar(torch.ones_like(ph), ph)


def simulate_tilts(volume: torch.Tensor, angles_deg: Sequence[float] | np.ndarray, probe: torch.Tensor,
                   positions_a: np.ndarray, *,
                   sampling_a: float, energy_ev: float, n_slices: int,
                   shifts_a: np.ndarray | None = None) -> torch.Tensor:
    """Noise-free intensities ``(tilts, positions, W, W)`` of a phase volume; ``shifts_a``
    ``(tilts, 2)`` Å are added to the positions of each tilt (sample drift: the
    probe lights ``positions + shift`` of the tilted volume)."""
    dz = sampling_a * volume.shape[0] / n_slices
    prop = propagator(probe.shape[-1], sampling_a, dz, energy_ev, dtype=volume.dtype)
    pos = torch.as_tensor(np.asarray(positions_a), dtype=volume.dtype)
    sh = (torch.zeros(len(angles_deg), 2, dtype=volume.dtype) if shifts_a is None
          else torch.as_tensor(np.asarray(shifts_a), dtype=volume.dtype))
    with torch.no_grad():
        return torch.stack([patterns(probe, _transmissions(volume, math.radians(a), n_slices),
                                     pos + sh[k], sampling_a, prop)
                            for k, a in enumerate(angles_deg)])


def shift_gauge(shifts_a: np.ndarray | torch.Tensor, angles_deg: Sequence[float] | np.ndarray
                ) -> np.ndarray | torch.Tensor:
    """Per-tilt shifts ``(tilts, 2)`` (Å; x ⟂ tilt axis, y along it) without the part that
    a translation of the volume explains: a translation ``(dz, dx, dy)`` moves tilt θ's
    projection by ``(dx cos θ + dz sin θ, dy)``, so the least-squares fit of
    ``{cos θ, sin θ}`` is removed from the x shifts and the mean from the y shifts. Shifts
    are only defined up to that translation; this is the convention of both the
    simulation (``ptycho.simulate tilt_shift_a``) and the estimate."""
    th = np.radians(np.asarray(angles_deg, float))
    basis = np.stack([np.cos(th), np.sin(th)], 1)                       # (T, 2)
    proj = basis @ np.linalg.pinv(basis)                                 # (T, T)
    if isinstance(shifts_a, torch.Tensor):
        pt = torch.as_tensor(proj, dtype=shifts_a.dtype)
        return torch.stack([shifts_a[:, 0] - pt @ shifts_a[:, 0],
                            shifts_a[:, 1] - shifts_a[:, 1].mean()], 1)
    s = np.asarray(shifts_a, float)
    return np.stack([s[:, 0] - proj @ s[:, 0], s[:, 1] - s[:, 1].mean()], 1)


def _area_per_position(positions_a: np.ndarray) -> float:
    """Median nearest-neighbour distance squared (Å²): the scan step² of a raster."""
    p = np.asarray(positions_a, float)
    if len(p) < 2:
        return 1.0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(p).query(p, k=2)
    return float(max(np.median(d[:, 1]), 1e-6) ** 2)


def total_variation(vol: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Isotropic total variation of a 3D array (sum over voxels)."""
    dz = vol[1:, :-1, :-1] - vol[:-1, :-1, :-1]
    dx = vol[:-1, 1:, :-1] - vol[:-1, :-1, :-1]
    dy = vol[:-1, :-1, 1:] - vol[:-1, :-1, :-1]
    return torch.sqrt(dz ** 2 + dx ** 2 + dy ** 2 + eps).sum()


def joint_tomography(counts: np.ndarray, angles_deg: Sequence[float] | np.ndarray, probe: torch.Tensor,
                     positions_a: np.ndarray, *,
                     shape: tuple[int, int, int], sampling_a: float, energy_ev: float,
                     n_slices: int, iterations: int = 20, batch_size: int = 64,
                     lr: float = 5e-4, tv_weight: float = 2.5e-4, seed: int = 0,
                     truth: torch.Tensor | None = None,
                     progress: Callable[[int, float], None] | None = None,
                     lr_floor: float = 0.05, align: bool = False, shift_lr: float = 0.3,
                     align_start: int = 2) -> TomoResult:
    """Volume optimised directly from every tilt's patterns (amplitude loss + TV, ≥ 0).

    One Adam step per tilt: the gradient of that tilt's whole scan is accumulated over
    mini-batches of ``batch_size`` positions (memory ∝ batch; the rotation is done once
    per tilt), so the number and size of the steps do not depend on the number of
    positions. The data term is ``Σ_positions Σ_pixels (√I_model − √I)² / N̄`` with
    ``N̄`` the mean counts per pattern (dose-independent), the TV term
    ``tv_weight · TV(volume)``. The rate decays by a cosine to ``lr_floor · lr``.

    ``align``: each tilt's in-plane shift (Å, added to its positions: sample drift between
    tilts) is a parameter too, from iteration ``align_start`` on (once the volume holds
    structure): its gradient comes through the probe's sub-pixel Fourier shift, one Adam
    step of ``shift_lr`` Å per tilt visit (cosine-decayed with the volume's rate), and the
    shifts are kept in :func:`shift_gauge` after every pass. Returned in ``shifts_a``.
    """
    c = _check(counts, angles_deg)
    t_n, n, w, _ = c.shape
    meas = torch.sqrt(torch.tensor(c))
    # counts per pattern over the area per position (the areal dose): Σ (√I_m − √I)² / dose
    # is then an integral over the scanned area, independent of dose and position density
    norm = max(float(c.sum((2, 3)).mean()), 1e-30) / _area_per_position(positions_a)
    dz = sampling_a * shape[0] / n_slices
    prop = propagator(w, sampling_a, dz, energy_ev)
    pos = torch.as_tensor(np.asarray(positions_a), dtype=torch.float32)
    vol = torch.zeros(shape, requires_grad=True)
    opt = torch.optim.Adam([vol], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    angles = [math.radians(a) for a in angles_deg]
    # one (2,) parameter per tilt: Adam skips the tilts whose gradient is None
    shifts = [torch.zeros(2, requires_grad=True) for _ in range(t_n)]
    opt_s = torch.optim.Adam(shifts, lr=shift_lr)
    losses, nccs, times = [], [], []
    t0 = time.perf_counter()
    for it in range(iterations):
        # cosine decay: per-tilt steps pull different ways, a constant rate oscillates
        decay = lr_floor + (1 - lr_floor) * 0.5 * (1 + math.cos(math.pi * it / max(iterations, 1)))
        opt.param_groups[0]["lr"] = lr * decay
        opt_s.param_groups[0]["lr"] = shift_lr * decay
        move = align and it >= align_start
        total = 0.0
        for ti in torch.randperm(t_n, generator=gen).tolist():
            opt.zero_grad()
            opt_s.zero_grad()
            ph = volume_slices(rotate_volume(vol, angles[ti]), n_slices)
            leaf = ph.detach().requires_grad_(True)
            trans = torch.polar(torch.ones_like(leaf), leaf)
            sh = shifts[ti] if move else shifts[ti].detach()
            for i in range(0, n, batch_size):
                model = far_field(exit_waves(probe, trans, pos[i:i + batch_size] + sh,
                                             sampling_a, prop))
                data = ((torch.sqrt(model + 1e-10) - meas[ti, i:i + batch_size]) ** 2).sum() / norm
                data.backward(retain_graph=i + batch_size < n)
                total += float(data.detach())
            ph.backward(leaf.grad)
            (tv_weight * total_variation(vol)).backward()
            opt.step()
            if move:
                opt_s.step()
            with torch.no_grad():
                vol.clamp_(min=0)
        if move:
            with torch.no_grad():
                fixed = shift_gauge(torch.stack([s.detach() for s in shifts]), angles_deg)
                for k, s in enumerate(shifts):
                    s.copy_(fixed[k])
        losses.append(total * norm / (t_n * n))
        times.append(time.perf_counter() - t0)
        nccs.append(ncc(vol.detach().numpy(), truth.numpy()) if truth is not None else math.nan)
        if progress is not None:
            progress(len(losses), losses[-1])
    return TomoResult(vol.detach().numpy(), np.array(losses), time.perf_counter() - t0,
                      np.array(nccs), np.array(times),
                      torch.stack([s.detach() for s in shifts]).numpy().astype(float))


def sequential_tomography(counts: np.ndarray, angles_deg: Sequence[float] | np.ndarray, probe: torch.Tensor,
                          positions_a: np.ndarray, *,
                          shape: tuple[int, int, int], sampling_a: float, energy_ev: float,
                          semiangle_mrad: float, defocus: float, ptycho_iterations: int = 10,
                          tomo_iterations: int = 300, lr: float = 2e-3, tv_weight: float = 1e-2,
                          truth: torch.Tensor | None = None) -> TomoResult:
    """Per-tilt single-slice ptychography (known probe), then a tomographic fit of the
    phase projections by the same rotate-and-sum projector (least squares, ≥ 0, TV)."""
    c = _check(counts, angles_deg)
    t0 = time.perf_counter()
    proj = []
    for k in range(len(angles_deg)):
        r = reconstruct(c[k], positions_a, sampling_a=sampling_a, energy_ev=energy_ev,
                        semiangle_mrad=semiangle_mrad, defocus=defocus, iterations=ptycho_iterations,
                        retrieve_probe=False, object_shape=shape[1:], lr_object=0.01)
        proj.append(r.phase[0])
    proj_t = torch.tensor(np.array(proj))
    # only the scanned area is measured: fit the projections there
    p_px = np.asarray(positions_a) / sampling_a
    lo, hi = np.floor(p_px.min(0)).astype(int), np.ceil(p_px.max(0)).astype(int) + 1
    mask = torch.zeros(shape[1:])
    mask[lo[0]:hi[0], lo[1]:hi[1]] = 1
    vol = torch.zeros(shape, requires_grad=True)
    opt = torch.optim.Adam([vol], lr=lr)
    angles = [math.radians(a) for a in angles_deg]
    # the ptychographic phase has a free offset: fit it per tilt with the volume
    offset = torch.zeros(len(angles), requires_grad=True)
    opt.add_param_group({"params": [offset], "lr": lr * 10})
    losses, nccs, times = [], [], []
    for _ in range(tomo_iterations):
        opt.zero_grad()
        loss = sum((mask * (rotate_volume(vol, a).sum(0) + offset[k] - proj_t[k]) ** 2).sum()
                   for k, a in enumerate(angles)) / len(angles)
        (loss + tv_weight * total_variation(vol)).backward()
        opt.step()
        with torch.no_grad():
            vol.clamp_(min=0)
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - t0)
        nccs.append(ncc(vol.detach().numpy(), truth.numpy()) if truth is not None else math.nan)
    return TomoResult(vol.detach().numpy(), np.array(losses), time.perf_counter() - t0,
                      np.array(nccs), np.array(times))


def depth_fwhm(volume: np.ndarray, centre_zxy: Sequence[float] | np.ndarray, voxel_a: float) -> float:
    """FWHM (Å) of the depth profile ``volume[:, x, y]`` through an atom centre (linear
    interpolation of the half-maximum crossings around the peak near ``centre_zxy[0]``),
    above the profile's minimum (a phase offset is free in ptychography); a flat profile
    gives the whole depth."""
    z0, x0, y0 = (int(round(float(v))) for v in centre_zxy)
    prof = np.asarray(volume, float)[:, x0, y0]
    prof = prof - prof.min()
    lo, hi = max(z0 - 3, 0), min(z0 + 4, len(prof))
    k = lo + int(np.argmax(prof[lo:hi]))
    half = prof[k] / 2
    if half <= 0:
        return float(len(prof) * voxel_a)
    i = k
    while i > 0 and prof[i - 1] > half:
        i -= 1
    j = k
    while j < len(prof) - 1 and prof[j + 1] > half:
        j += 1
    left = i - 1 + (half - prof[i - 1]) / (prof[i] - prof[i - 1]) if i > 0 else 0.0
    right = j + (prof[j] - half) / (prof[j] - prof[j + 1]) if j < len(prof) - 1 else len(prof) - 1.0
    return float((right - left) * voxel_a)
