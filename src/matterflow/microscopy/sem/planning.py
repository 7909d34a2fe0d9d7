"""Rescan planning: tile scores, tile choice under an area budget, stage path, acquisition time.

A tile's score is the largest learned event probability under it plus
``uncertainty_weight`` × its largest test-time-augmentation spread (normalised
by the image's 99th percentile), so the planner rescans where events are likely
and where the model is unsure. Tiles are taken best first until the area budget;
their visiting order is a nearest-neighbour tour improved by 2-opt.

Acquisition time (stated overheads): a scan of r × c pixels at dwell τ takes
``r c τ + r t_line``; each rescanned tile adds ``t_settle``; moving between tiles
costs path length / beam-shift speed. Effective speed-up = full-resolution
time / (fast scan + rescans + overheads).
"""

from __future__ import annotations

import numpy as np

__all__ = ["tile_scores", "choose_tiles", "stage_path", "path_length", "acquisition_time", "merge",
           "recall", "threshold_scores", "random_scores", "anomaly_map", "anomaly_scores", "rank_combine"]


def tile_scores(prob_lr: np.ndarray, spread: np.ndarray | None, *, scale: int, tile_px: int,
                uncertainty_weight: float = 0.5) -> np.ndarray:
    """(n_rows, n_cols) scores of full-resolution tiles of ``tile_px``."""
    t = tile_px // scale
    h, w = prob_lr.shape
    nr, nc = h // t, w // t
    p = prob_lr[:nr * t, :nc * t].reshape(nr, t, nc, t).max(axis=(1, 3))
    if spread is None or uncertainty_weight == 0:
        return p
    u = spread[:nr * tile_px, :nc * tile_px].reshape(nr, tile_px, nc, tile_px).max(axis=(1, 3))
    return p + uncertainty_weight * u / (np.quantile(spread, 0.99) + 1e-12) / 10


def choose_tiles(scores: np.ndarray, *, area_fraction: float, threshold: float = 0.5) -> np.ndarray:
    """(n, 2) tile indices (row, col), best first, at most ``area_fraction`` of all tiles."""
    n_max = int(np.floor(area_fraction * scores.size))
    order = np.argsort(scores, axis=None)[::-1][:n_max]
    order = order[scores.ravel()[order] >= threshold]
    return np.stack(np.unravel_index(order, scores.shape), 1) if len(order) else np.zeros((0, 2), int)


def stage_path(tiles: np.ndarray) -> np.ndarray:
    """Visiting order of ``tiles`` (indices into it): nearest neighbour from (0, 0), then 2-opt."""
    n = len(tiles)
    if n < 2:
        return np.arange(n)
    pts = tiles.astype(float)
    left, order = set(range(n)), []
    cur = np.zeros(2)
    while left:
        j = min(left, key=lambda k: np.hypot(*(pts[k] - cur)))
        order.append(j)
        left.remove(j)
        cur = pts[j]
    order = np.array(order)
    improved = True
    while improved:
        improved = False
        for i in range(n - 2):
            for k in range(i + 2, n):
                a, b = pts[order[i]], pts[order[i + 1]]
                c = pts[order[k]]
                d = pts[order[k + 1]] if k + 1 < n else None
                old = np.hypot(*(a - b)) + (np.hypot(*(c - d)) if d is not None else 0)
                new = np.hypot(*(a - c)) + (np.hypot(*(b - d)) if d is not None else 0)
                if new < old - 1e-9:
                    order[i + 1:k + 1] = order[i + 1:k + 1][::-1]
                    improved = True
    return order


def path_length(tiles: np.ndarray, tile_px: int) -> float:
    """Length in full-resolution pixels of the tour from (0, 0) through ``tiles`` in their order."""
    if len(tiles) == 0:
        return 0.0
    pts = np.vstack([[0, 0], tiles]).astype(float) * tile_px
    return float(np.hypot(*np.diff(pts, axis=0).T).sum())


def acquisition_time(shape_full: tuple[int, int], *, scale: int, n_tiles: int, tile_px: int, path_px: float,
                     pixel_size_nm: float, fast_dwell_us: float, full_dwell_us: float,
                     line_overhead_us: float = 5.0, settle_us: float = 200.0,
                     beam_shift_um_per_us: float = 0.01) -> dict:
    """Times in seconds of the full-resolution scan, the fast scan and the rescans."""
    h, w = shape_full
    full = (h * w * full_dwell_us + h * line_overhead_us) * 1e-6
    fast = ((h // scale) * (w // scale) * fast_dwell_us + (h // scale) * line_overhead_us) * 1e-6
    rescan = n_tiles * (tile_px * tile_px * full_dwell_us + tile_px * line_overhead_us) * 1e-6
    overhead = (n_tiles * settle_us + path_px * pixel_size_nm * 1e-3 / beam_shift_um_per_us) * 1e-6
    return {"full_s": full, "fast_s": fast, "rescan_s": rescan, "overhead_s": overhead,
            "speedup": full / (fast + rescan + overhead)}


def merge(sr: np.ndarray, full: np.ndarray, tiles: np.ndarray, tile_px: int) -> np.ndarray:
    """The SR image with the rescanned full-resolution tiles pasted in."""
    out = np.array(sr, np.float32, copy=True)
    for r, c in tiles:
        sl = np.s_[r * tile_px:(r + 1) * tile_px, c * tile_px:(c + 1) * tile_px]
        out[sl] = full[sl]
    return out


def recall(labels: np.ndarray, tiles: np.ndarray, tile_px: int,
           min_fraction: float = 0.5) -> tuple[int, int]:
    """(found, planted): events with at least ``min_fraction`` of their pixels rescanned."""
    covered = np.zeros(labels.shape, bool)
    for r, c in tiles:
        covered[r * tile_px:(r + 1) * tile_px, c * tile_px:(c + 1) * tile_px] = True
    ids = np.unique(labels[labels > 0])
    found = sum(covered[labels == i].mean() >= min_fraction for i in ids)
    return int(found), int(len(ids))


def _per_tile_max(a: np.ndarray, t: int) -> np.ndarray:
    h, w = a.shape
    nr, nc = h // t, w // t
    return a[:nr * t, :nc * t].reshape(nr, t, nc, t).max(axis=(1, 3))


def threshold_scores(fast: np.ndarray, *, scale: int, tile_px: int, window: int = 7) -> np.ndarray:
    """Baseline planner: per tile, the largest deviation of the fast scan from its local median
    (``window`` low-resolution pixels), in units of the image's robust noise (MAD)."""
    from scipy import ndimage

    a = np.asarray(fast, np.float32)
    dev = np.abs(a - ndimage.median_filter(a, size=window, mode="reflect"))
    mad = float(np.median(dev)) / 0.6745 + 1e-12
    return _per_tile_max(dev / mad, tile_px // scale)


def random_scores(shape_lr: tuple[int, int], *, scale: int, tile_px: int, seed: int = 0) -> np.ndarray:
    """Baseline planner: random tile scores (tiles picked uniformly at random)."""
    t = tile_px // scale
    return np.random.default_rng(seed).uniform(size=(shape_lr[0] // t, shape_lr[1] // t))



def anomaly_map(fast: np.ndarray, *, window: int = 9, sigma: float = 0.7) -> np.ndarray:
    """Training-free event score per low-resolution pixel: the fast scan made of constant
    shot-noise variance (square root of the counts, Anscombe-like), minus its local median
    (``window`` px, a robust background that ignores small features), smoothed by a Gaussian
    of ``sigma`` px (a matched filter for events about one fast-scan pixel large), in units
    of its robust spread (MAD) over the image."""
    from scipy import ndimage

    v = np.sqrt(np.clip(np.asarray(fast, np.float64), 0, None))
    r = v - ndimage.median_filter(v, size=window, mode="reflect")
    if sigma > 0:
        r = ndimage.gaussian_filter(r, sigma, mode="reflect")
    r = np.abs(r)
    return (r / (np.median(r) / 0.6745 + 1e-12)).astype(np.float32)


def anomaly_scores(fast: np.ndarray, *, scale: int, tile_px: int, window: int = 9,
                   sigma: float = 0.7) -> np.ndarray:
    """Per tile, the largest :func:`anomaly_map` value under it."""
    return _per_tile_max(anomaly_map(fast, window=window, sigma=sigma), tile_px // scale)


def rank_combine(*scores: np.ndarray, weights: tuple[float, ...] | None = None) -> np.ndarray:
    """Weighted mean of the scores' ranks (each rank / number of tiles, so 0..1): a combination
    of scores on different scales (probabilities, noise units)."""
    from scipy.stats import rankdata

    w = np.ones(len(scores)) if weights is None else np.asarray(weights, float)
    out = sum(wi * rankdata(s.ravel()).reshape(s.shape) / s.size for wi, s in zip(w, scores, strict=True))
    return np.asarray(out / w.sum(), np.float64)
