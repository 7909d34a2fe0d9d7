"""Classical baseline: background subtraction + local maxima with fitted boxes."""

from __future__ import annotations

import numpy as np

from matterflow.diffraction.gixd._model import prepare

__all__ = ["classical_detect"]


def classical_detect(polar: np.ndarray, *, threshold: float = 0.15, min_distance: int = 3
                     ) -> dict[str, np.ndarray]:
    """Boxes of bright blobs of a polar image (scores = peak height above background)."""
    from scipy import ndimage

    x = prepare(polar)
    bg = ndimage.median_filter(x, size=15)
    d = ndimage.gaussian_filter(x - bg, 1.0)
    peaks = (d == ndimage.maximum_filter(d, size=2 * min_distance + 1)) & (d > threshold)
    # widths on the linear counts: log scaling flattens a peak's top and widens its half maximum
    lin = np.clip(np.asarray(polar, np.float32), 0, None)
    dl = ndimage.gaussian_filter(lin - ndimage.median_filter(lin, size=15), 1.0)
    boxes, scores = [], []
    smooth_var = 1.0   # variance (px²) the Gaussian filter of σ = 1 px adds to every feature
    for r, c in zip(*np.nonzero(peaks), strict=True):
        h, hl = d[r, c], dl[r, c]
        # half-maximum crossings through the maximum, interpolated between pixels; the
        # smoothing is removed in quadrature, and the box is ±2σ like the labels
        c0, c1 = _crossings(dl[r, :], c, 0.5 * hl)
        r0, r1 = _crossings(dl[:, c], r, 0.5 * hl)
        boxes_rc = []
        for lo, hi in ((c0, c1), (r0, r1)):
            sigma_obs = (hi - lo) / 2 / 1.1774
            sigma = np.sqrt(max(sigma_obs**2 - smooth_var, 0.25))
            mid = (lo + hi) / 2 + 0.5
            boxes_rc.append((mid - 2 * sigma, mid + 2 * sigma))
        (x0, x1), (y0, y1) = boxes_rc
        boxes.append([x0, y0, x1, y1])
        scores.append(float(h))
    b = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0,
                [x.shape[1], x.shape[0], x.shape[1], x.shape[0]])
    aspect = (b[:, 3] - b[:, 1]) / np.maximum(b[:, 2] - b[:, 0], 1e-3)
    labels = np.where(aspect > 0.6 * x.shape[0] / np.maximum(b[:, 2] - b[:, 0], 1), 2, 1)
    return {"boxes": b, "scores": np.asarray(scores, np.float32), "labels": labels.astype(np.int64)}


def _crossings(profile: np.ndarray, i: int, level: float) -> tuple[float, float]:
    """Sub-pixel positions left and right of ``i`` where ``profile`` falls below ``level``
    (the ends of the array where it does not)."""
    n = len(profile)
    lo = i
    while lo > 0 and profile[lo - 1] > level:
        lo -= 1
    left = float(lo)
    if lo > 0:
        a, b = profile[lo - 1], profile[lo]
        left = lo - (b - level) / max(b - a, 1e-12)
    hi = i
    while hi < n - 1 and profile[hi + 1] > level:
        hi += 1
    right = float(hi)
    if hi < n - 1:
        a, b = profile[hi], profile[hi + 1]
        right = hi + (a - level) / max(a - b, 1e-12)
    return left, right
