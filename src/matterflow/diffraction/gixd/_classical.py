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
    boxes, scores = [], []
    for r, c in zip(*np.nonzero(peaks), strict=True):
        h = d[r, c]
        half = d > 0.5 * h   # half-maximum extent along each axis through the maximum
        row, col = half[:, c], half[r, :]
        r0 = r
        while r0 > 0 and row[r0 - 1]:
            r0 -= 1
        r1 = r
        while r1 < len(row) - 1 and row[r1 + 1]:
            r1 += 1
        c0 = c
        while c0 > 0 and col[c0 - 1]:
            c0 -= 1
        c1 = c
        while c1 < len(col) - 1 and col[c1 + 1]:
            c1 += 1
        # FWHM extent -> ±2σ box (2σ = 1.7 half widths)
        hw_c, hw_r = (c1 - c0 + 1) / 2, (r1 - r0 + 1) / 2
        cc, rc = (c0 + c1 + 1) / 2, (r0 + r1 + 1) / 2
        boxes.append([cc - 1.7 * hw_c, rc - 1.7 * hw_r, cc + 1.7 * hw_c, rc + 1.7 * hw_r])
        scores.append(float(h))
    b = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0,
                [x.shape[1], x.shape[0], x.shape[1], x.shape[0]])
    aspect = (b[:, 3] - b[:, 1]) / np.maximum(b[:, 2] - b[:, 0], 1e-3)
    labels = np.where(aspect > 0.6 * x.shape[0] / np.maximum(b[:, 2] - b[:, 0], 1), 2, 1)
    return {"boxes": b, "scores": np.asarray(scores, np.float32), "labels": labels.astype(np.int64)}
