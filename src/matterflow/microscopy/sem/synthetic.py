"""Synthetic SEM micrographs: microstructures, rare events with masks, SE image formation.

A :class:`Microstructure` holds two fields on the full-resolution pixel grid:
``material`` (channelling/phase contrast, 0..1) and ``height`` (topography, in
pixels of the full-resolution grid), plus a list of planted rare events
(inclusions, precipitates, voids, micro-cracks) with their label mask.

:func:`se_image` turns the fields into a secondary-electron image: material
contrast, the tilt (1/cos θ) and edge-brightening terms of the topography,
a Gaussian probe, line jitter and drift, optional charging streaks, and shot
noise set by the dwell time and beam current (electrons per pixel =
dwell × current / e). :func:`acquire_pair` gives the fast scan (×``scale``
coarser pixels, short dwell) and the slow full-resolution scan of the same
region; :func:`insitu_series` a deformation series (strain, stage drift,
cracks growing, voids opening).

Families: ``grains`` (single phase, channelling contrast per grain, grooved
boundaries), ``lamellar`` (pearlite-like colonies of lamellae),
``dual_phase`` (ferrite grains with bright, raised martensite islands with
lath texture).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["FAMILIES", "EVENT_TYPES", "Event", "Microstructure", "microstructure", "synthetic_set", "SyntheticSet",
           "se_image", "acquire_pair", "insitu_series", "AcquiredPair", "ELECTRONS_PER_PA_US"]

FAMILIES = ("grains", "lamellar", "dual_phase")
EVENT_TYPES = ("inclusion", "precipitate", "void", "crack")
ELECTRONS_PER_PA_US = 6.241509  # electrons in 1 pA x 1 µs


@dataclass(frozen=True)
class Event:
    """One planted rare event: type, centre (row, col in full-resolution px), size, shape."""

    kind: str
    row: float
    col: float
    size_px: float
    angle_rad: float = 0.0
    path: np.ndarray | None = field(default=None, compare=False)
    """(n, 2) polyline of a crack (row, col), full-resolution px."""


@dataclass(frozen=True)
class Microstructure:
    """Fields on the full-resolution grid.

    material : (H, W) float, 0..1 channelling/phase contrast
    height : (H, W) float, topography in full-resolution pixels
    labels : (H, W) int, 0 background, i+1 for ``events[i]``
    """

    family: str
    material: np.ndarray
    height: np.ndarray
    labels: np.ndarray
    events: tuple[Event, ...]


def _voronoi(shape, n_cells, rng, anisotropy=1.0):
    h, w = shape
    pts = rng.uniform(0, 1, size=(n_cells, 2)) * (h, w)
    rr, cc = np.mgrid[0:h, 0:w]
    tree = cKDTree(pts * (1.0, 1.0 / anisotropy))
    _, lab = tree.query(np.stack([rr.ravel(), cc.ravel() / anisotropy], 1), workers=1)
    return lab.reshape(shape), pts


def _boundaries(lab):
    b = np.zeros(lab.shape, bool)
    b[:-1] |= lab[:-1] != lab[1:]
    b[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return b


def _smooth_noise(shape, sigma, rng):
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return n / (n.std() + 1e-12)


def _grains(shape, rng, grain_px, groove_depth=1.5):
    n = max(4, int(shape[0] * shape[1] / grain_px ** 2))
    lab, _ = _voronoi(shape, n, rng, anisotropy=rng.uniform(1.0, 1.6))
    level = rng.uniform(0.15, 0.85, n)[lab]
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    gx, gy = rng.normal(0, 0.15, (2, n))
    level = level + gx[lab] * rr + gy[lab] * cc  # bend contours inside grains
    b = ndimage.binary_dilation(_boundaries(lab), iterations=1)
    height = -groove_depth * ndimage.gaussian_filter(b.astype(float), 1.0)  # etched grooves
    material = level - 0.25 * b
    return material, height


def _lamellar(shape, rng, grain_px, spacing_px=(8.0, 16.0)):
    n = max(3, int(shape[0] * shape[1] / (1.8 * grain_px) ** 2))
    lab, _ = _voronoi(shape, n, rng)
    theta = rng.uniform(0, np.pi, n)[lab]
    spacing = rng.uniform(spacing_px[0], spacing_px[1], n)[lab]
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    warp = 3.0 * _smooth_noise(shape, 12, rng)
    phase = (rr * np.cos(theta) + cc * np.sin(theta) + warp) / spacing
    frac = 0.3
    s = np.cos(2 * np.pi * phase)
    cementite = 1 / (1 + np.exp(-(s - np.cos(np.pi * frac)) * 6))
    material = 0.25 + 0.5 * cementite + 0.05 * rng.uniform(-1, 1, n)[lab]
    height = 1.2 * cementite  # ferrite etched away between the lamellae
    b = _boundaries(lab)
    material = material - 0.15 * ndimage.binary_dilation(b)
    return material, height


def _dual_phase(shape, rng, grain_px, martensite_fraction=0.3):
    n = max(6, int(shape[0] * shape[1] / grain_px ** 2))
    lab, _ = _voronoi(shape, n, rng, anisotropy=rng.uniform(1.0, 1.4))
    is_m = rng.uniform(size=n) < martensite_fraction
    m = is_m[lab]
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    theta = rng.uniform(0, np.pi, n)[lab]
    laths = np.cos(2 * np.pi * (rr * np.cos(theta) + cc * np.sin(theta)) / rng.uniform(3, 5))
    speck = _smooth_noise(shape, 0.8, rng)
    ferrite = rng.uniform(0.18, 0.35, n)[lab]
    material = np.where(m, 0.72 + 0.1 * laths + 0.06 * speck, ferrite)
    b = ndimage.binary_dilation(_boundaries(lab))
    material = material - 0.12 * (b & ~m)
    height = ndimage.gaussian_filter(np.where(m, 2.0 + 0.4 * laths, 0.0), 0.8) - 0.8 * b
    return material, height


def _crack_path(row, col, length, angle, rng):
    n = max(3, int(length))
    steps = np.cumsum(rng.normal(0, 0.35, n))
    t = np.arange(n) - n / 2
    r = row + t * np.sin(angle) + steps * np.cos(angle)
    c = col + t * np.cos(angle) - steps * np.sin(angle)
    return np.stack([r, c], 1)


def _plant_events(shape, rng, density_per_mpx, kinds):
    h, w = shape
    n = rng.poisson(density_per_mpx * h * w / 1e6)
    margin = 12
    events = []
    for _ in range(n):
        kind = kinds[rng.integers(len(kinds))]
        row, col = rng.uniform(margin, h - margin), rng.uniform(margin, w - margin)
        angle = rng.uniform(0, np.pi)
        # sizes in full-resolution pixels: every event spans at least about one fast-scan
        # pixel (an event smaller than that leaves no trace in the fast scan to find it by)
        if kind == "inclusion":  # MnS stringer: elongated along the rolling direction
            ev = Event(kind, row, col, rng.uniform(8, 18), rng.normal(0, 0.15))
        elif kind == "precipitate":
            ev = Event(kind, row, col, rng.uniform(2.0, 3.5), 0.0)
        elif kind == "void":
            ev = Event(kind, row, col, rng.uniform(3.0, 6.0), 0.0)
        else:
            length = rng.uniform(14, 30)
            ev = Event(kind, row, col, length, angle, _crack_path(row, col, length, angle, rng))
        events.append(ev)
    return tuple(events)


def _stamp(material, height, labels, events, growth=1.0):
    """Draw events into copies of the fields; ``growth`` scales cracks and voids (in-situ)."""
    material, height, labels = material.copy(), height.copy(), labels.copy()
    h, w = material.shape
    rr, cc = np.mgrid[0:h, 0:w].astype(float)
    for i, ev in enumerate(events, start=1):
        r0, r1 = int(max(0, ev.row - 40)), int(min(h, ev.row + 41))
        c0, c1 = int(max(0, ev.col - 40)), int(min(w, ev.col + 41))
        dr, dc = rr[r0:r1, c0:c1] - ev.row, cc[r0:r1, c0:c1] - ev.col
        m = material[r0:r1, c0:c1]
        z = height[r0:r1, c0:c1]
        if ev.kind == "inclusion":
            a, b = ev.size_px, max(2.5, ev.size_px / 4)
            u = dc * np.cos(ev.angle_rad) + dr * np.sin(ev.angle_rad)
            v = -dc * np.sin(ev.angle_rad) + dr * np.cos(ev.angle_rad)
            mask = (u / a) ** 2 + (v / b) ** 2 <= 1
            m[mask] = 0.02  # dark (low SE yield), nearly flush with the matrix
            z[mask] -= 0.3
        elif ev.kind == "precipitate":
            mask = dr ** 2 + dc ** 2 <= ev.size_px ** 2
            m[mask] = 0.95
            z[mask] += 1.5
        elif ev.kind == "void":
            rad = ev.size_px * growth
            mask = dr ** 2 + dc ** 2 <= rad ** 2
            m[mask] = 0.0
            z[mask] -= 4.0  # a deep hole: dark inside, bright rim from the edge effect
        else:
            path = ev.path
            k = max(2, int(round(len(path) * min(1.0, growth))))
            start = (len(path) - k) // 2
            pts = path[start:start + k]
            mask = np.zeros(dr.shape, bool)
            for pr, pc in pts:
                mask |= (rr[r0:r1, c0:c1] - pr) ** 2 + (cc[r0:r1, c0:c1] - pc) ** 2 <= 0.8 ** 2
            m[mask] = 0.02
            z[mask] -= 3.0
        labels[r0:r1, c0:c1][mask] = i
    return material, height, labels


def microstructure(family: str, shape: tuple[int, int] = (256, 256), *, seed: int = 0,
                   grain_px: float = 40.0, event_density_per_mpx: float = 40.0,
                   event_kinds: tuple[str, ...] = EVENT_TYPES,
                   family_params: dict | None = None) -> Microstructure:
    """A synthetic microstructure of ``family`` with planted rare events.

    Parameters
    ----------
    family : {"grains", "lamellar", "dual_phase"}
    shape : (H, W) full-resolution pixels
    seed : random seed
    grain_px : mean grain (cell) diameter, full-resolution pixels
    event_density_per_mpx : mean number of rare events per megapixel (Poisson)
    family_params : settings of the family's generator: ``groove_depth`` (grains),
        ``spacing_px`` (lamellar, (min, max)), ``martensite_fraction`` (dual_phase)
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    rng = np.random.default_rng(seed)
    make = {"grains": _grains, "lamellar": _lamellar, "dual_phase": _dual_phase}[family]
    material, height = make(tuple(shape), rng, grain_px, **(family_params or {}))
    events = _plant_events(shape, rng, event_density_per_mpx, event_kinds)
    base = Microstructure(family, material, height, np.zeros(shape, np.int32), events)
    m, z, lab = _stamp(material, height, base.labels, events)
    return replace(base, material=m, height=z, labels=lab)


def se_image(material: np.ndarray, height: np.ndarray, *, scale: int = 1,
             probe_sigma_px: float = 0.7, dwell_us: float = 1.0, current_pa: float = 100.0,
             se_yield: float = 0.15, line_jitter_px: float = 0.0, drift_px: tuple[float, float] = (0, 0),
             charging: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Secondary-electron image of the fields, scanned with pixels ``scale`` × coarser.

    The signal per full-resolution point is ``0.35 + 0.55 material + 0.35 (1/cosθ - 1)
    + 0.25 edge`` (θ the local tilt from ``height``, edge the high-pass of the
    tilt term), blurred by the Gaussian probe (σ = ``probe_sigma_px`` full-res
    pixels), shifted per line by jitter and by a linear drift over the frame,
    averaged over each coarse pixel, and drawn as Poisson electron counts:
    mean = signal × se_yield × dwell_us × current_pa × 6.24 e/(pA µs).

    Returns
    -------
    (H // scale, W // scale) float32 image in units of the mean count of a
    signal-1 pixel (so 1.0 is the brightness of a flat 'signal 1' region).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    gy, gx = np.gradient(height)
    tilt = np.sqrt(1 + gx ** 2 + gy ** 2) - 1
    edge = np.clip(tilt - ndimage.gaussian_filter(tilt, 2.0), 0, None)
    signal = 0.35 + 0.55 * material + 0.35 * np.minimum(tilt, 3) + 0.25 * np.minimum(edge, 3)
    signal = ndimage.gaussian_filter(signal, probe_sigma_px * max(1.0, scale / 2.0), mode="reflect")
    h, w = signal.shape
    hs, ws = h // scale, w // scale
    if line_jitter_px or any(drift_px):
        rows = np.arange(h, dtype=float)
        shift_c = rng.normal(0, line_jitter_px, hs).repeat(scale) + drift_px[1] * rows / h
        shift_r = drift_px[0] * rows / h
        rr, cc = np.mgrid[0:h, 0:w].astype(float)
        signal = ndimage.map_coordinates(signal, [rr + shift_r[:, None], cc + shift_c[:, None]],
                                         order=1, mode="reflect")
    coarse = signal[:hs * scale, :ws * scale].reshape(hs, scale, ws, scale).mean(axis=(1, 3))
    if charging > 0:  # bright streaks trailing bright features along the scan line
        excess = np.clip(coarse - np.quantile(coarse, 0.98), 0, None)
        trail = ndimage.uniform_filter1d(excess, size=max(3, 24 // scale), axis=1, origin=-1)
        coarse = coarse + charging * trail
    mean_e = se_yield * dwell_us * current_pa * ELECTRONS_PER_PA_US
    counts = rng.poisson(np.clip(coarse, 0, None) * mean_e)
    return (counts / mean_e).astype(np.float32)


@dataclass(frozen=True)
class AcquiredPair:
    """The fast coarse scan and the slow full-resolution scan of one region."""

    fast: np.ndarray
    """(H/scale, W/scale) float32 fast scan"""
    full: np.ndarray
    """(H, W) float32 full-resolution scan"""
    clean: np.ndarray
    """(H, W) float32 noise-free full-resolution image (the target of super-resolution)"""
    structure: Microstructure


def acquire_pair(ms: Microstructure, *, scale: int = 4, fast_dwell_us: float = 0.5,
                 full_dwell_us: float = 2.0, current_pa: float = 400.0, probe_sigma_px: float = 0.7,
                 line_jitter_px: float = 0.3, drift_px: tuple[float, float] = (0.0, 0.0),
                 seed: int = 0) -> AcquiredPair:
    """Fast ×``scale`` scan (short dwell) and full-resolution scan (long dwell) of ``ms``."""
    rng = np.random.default_rng(seed)
    fast = se_image(ms.material, ms.height, scale=scale, dwell_us=fast_dwell_us,
                    current_pa=current_pa, probe_sigma_px=probe_sigma_px,
                    line_jitter_px=line_jitter_px, drift_px=drift_px, rng=rng)
    full = se_image(ms.material, ms.height, scale=1, dwell_us=full_dwell_us,
                    current_pa=current_pa, probe_sigma_px=probe_sigma_px,
                    line_jitter_px=line_jitter_px / 2, rng=rng)
    clean = se_image(ms.material, ms.height, scale=1, dwell_us=1e6, current_pa=current_pa,
                     probe_sigma_px=probe_sigma_px, rng=rng)
    return AcquiredPair(fast, full, clean, ms)


def _warp(field_, strain, shift, order=1):
    h, w = field_.shape
    rr, cc = np.mgrid[0:h, 0:w].astype(float)
    # frame coordinates -> material coordinates: uniaxial strain along x about the centre, drift
    src_c = (cc - w / 2 - shift[1]) / (1 + strain) + w / 2
    src_r = (rr - h / 2 - shift[0]) / (1 - 0.3 * strain) + h / 2
    return ndimage.map_coordinates(field_, [src_r, src_c], order=order, mode="reflect")


def insitu_series(family: str, shape: tuple[int, int] = (256, 256), *, n_frames: int = 4,
                  max_strain: float = 0.04, drift_px_per_frame: tuple[float, float] = (1.5, -2.0),
                  seed: int = 0, **kwargs: Any) -> list[Microstructure]:
    """A deformation series of one region: strain along x, stage drift, cracks and voids growing.

    Frame ``t`` (0..n_frames-1) carries strain ``max_strain t/(n-1)``, a drift of
    ``t × drift_px_per_frame`` and crack length / void radius grown by
    ``0.5 + 0.5 t/(n-1)``. Events keep their index (label) over the series.
    """
    base = microstructure(family, shape, seed=seed, event_density_per_mpx=0.0,
                          **{k: v for k, v in kwargs.items() if k != "event_density_per_mpx"})
    planted = microstructure(family, shape, seed=seed, **kwargs).events
    frames = []
    for t in range(n_frames):
        f = t / max(1, n_frames - 1)
        strain = max_strain * f
        shift = (drift_px_per_frame[0] * t, drift_px_per_frame[1] * t)
        m = _warp(base.material, strain, shift)
        z = _warp(base.height, strain, shift)
        h, w = shape

        def move(r, c, strain=strain, shift=shift, h=h, w=w):
            return ((r - h / 2) * (1 - 0.3 * strain) + h / 2 + shift[0],
                    (c - w / 2) * (1 + strain) + w / 2 + shift[1])

        moved = []
        for ev in planted:
            r, c = move(ev.row, ev.col)
            path = None if ev.path is None else np.stack(move(ev.path[:, 0], ev.path[:, 1]), 1)
            moved.append(replace(ev, row=float(r), col=float(c), path=path))
        mm, zz, lab = _stamp(m, z, np.zeros(shape, np.int32), moved, growth=0.5 + 0.5 * f)
        frames.append(Microstructure(family, mm, zz, lab, tuple(moved)))
    return frames


@dataclass(frozen=True)
class SyntheticSet:
    """Images for training or evaluation (lists over images)."""

    fast: list
    """(h, w) fast scans"""
    full: list
    """(H, W) full-resolution scans (noisy, long dwell)"""
    clean: list
    """(H, W) noise-free full-resolution images"""
    labels: list
    """(H, W) event labels"""
    reference: list
    """(H, W) full-resolution scan of the same region one in-situ step earlier (strained, drifted)"""
    events: list
    family: list


def synthetic_set(families: Sequence[str], n_images: int, shape: tuple[int, int] = (256, 256), *,
                  seed: int = 0, scale: int = 4,
                  strain_step: float = 0.01, drift_px: tuple[float, float] = (3.0, -4.0),
                  structure: dict | None = None, **acq: Any) -> SyntheticSet:
    """``n_images`` per family: the fast/full pair of frame 1 of a two-frame in-situ series
    and, as the reference, the full-resolution scan of frame 0 (seeds ``seed, seed+1, ...``).

    ``structure`` holds keyword arguments of :func:`microstructure` (``grain_px``,
    ``event_density_per_mpx``, ``family_params``); the rest go to :func:`acquire_pair`."""
    out = {k: [] for k in ("fast", "full", "clean", "labels", "reference", "events", "family")}
    k = 0
    for fam in families:
        for i in range(n_images):
            s = seed + 1000 * k + i
            f0, f1 = insitu_series(fam, shape, n_frames=2, max_strain=strain_step,
                                   drift_px_per_frame=drift_px, seed=s, **(structure or {}))
            pair = acquire_pair(f1, scale=scale, seed=s, **acq)
            ref = acquire_pair(f0, scale=scale, seed=s + 500, **acq).full
            for key, val in (("fast", pair.fast), ("full", pair.full), ("clean", pair.clean),
                             ("labels", f1.labels), ("reference", ref), ("events", f1.events),
                             ("family", fam)):
                out[key].append(val)
        k += 1
    return SyntheticSet(**out)
