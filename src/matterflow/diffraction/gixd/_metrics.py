"""COCO-style detection metrics (own implementation; pycocotools is not needed).

``average_precision`` follows the COCO definition: per category and IoU threshold,
detections of all images are sorted by score, each is matched greedily to the
unmatched ground-truth box of highest IoU (>= threshold) in its image, precision is
made monotone (running maximum from the right) and sampled at the 101 recall points
0, 0.01, ..., 1; AP is the mean over those points, COCO AP the mean over the IoU
thresholds 0.50:0.05:0.95 and the categories that have ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["box_iou", "average_precision", "APResult", "pr_curve", "best_threshold", "Operating",
           "pr_sampled", "RECALL_POINTS"]

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_POINTS = np.linspace(0, 1, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of boxes x0, y0, x1, y1."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(dets: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray], thr: float
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """(scores, true-positive flags) of all detections sorted by score, and the number of GT."""
    n_gt = int(sum(len(g) for g in gts))
    allscores, tp = [], []
    order = sorted(((s, i, j) for i, (_, sc) in enumerate(dets) for j, s in enumerate(sc)),
                   key=lambda t: -t[0])
    used = [np.zeros(len(g), bool) for g in gts]
    ious = [box_iou(d[0], g) if len(g) and len(d[0]) else np.zeros((len(d[0]), len(g)))
            for d, g in zip(dets, gts, strict=True)]
    for s, i, j in order:
        allscores.append(s)
        row = ious[i][j] if ious[i].shape[1] else np.zeros(0)
        cand = np.where(~used[i] & (row >= thr - 1e-12), row, -1.0)
        if cand.size and cand.max() >= 0:
            k = int(np.argmax(cand))
            used[i][k] = True
            tp.append(True)
        else:
            tp.append(False)
    return np.asarray(allscores), np.asarray(tp, bool), n_gt


def pr_curve(tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) after each detection (sorted by score)."""
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / max(n_gt, 1)
    precision = ctp / np.maximum(ctp + cfp, 1)
    return recall, precision


def _sampled(tp: np.ndarray, n_gt: int) -> np.ndarray:
    """Interpolated precision at :data:`RECALL_POINTS` (NaN without ground truth)."""
    if n_gt == 0:
        return np.full(RECALL_POINTS.size, np.nan)
    if tp.size == 0:
        return np.zeros(RECALL_POINTS.size)
    recall, precision = pr_curve(tp, n_gt)
    prec = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    return np.where(idx < len(prec), prec[np.minimum(idx, len(prec) - 1)], 0.0)


def _ap(tp: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    return float(_sampled(tp, n_gt).mean())


def pr_sampled(det_boxes: list, det_scores: list, det_labels: list, gt_boxes: list,
               gt_labels: list, category: int, iou: float) -> np.ndarray:
    """The interpolated precision-recall curve of one category at one IoU threshold, sampled
    at :data:`RECALL_POINTS` (its mean is that category's AP at ``iou``)."""
    dets = [(np.asarray(b, float).reshape(-1, 4)[np.asarray(lb) == category],
             np.asarray(s, float)[np.asarray(lb) == category])
            for b, s, lb in zip(det_boxes, det_scores, det_labels, strict=True)]
    gts = [np.asarray(b, float).reshape(-1, 4)[np.asarray(lb) == category]
           for b, lb in zip(gt_boxes, gt_labels, strict=True)]
    _, tp, n_gt = _match(dets, gts, float(iou))
    return _sampled(tp, n_gt)


@dataclass(frozen=True)
class APResult:
    ap: float                     # COCO AP, mean over IoU 0.50:0.95 and categories
    ap50: float
    ap75: float
    per_category: dict = field(default_factory=dict)   # id -> (AP, AP50)
    n_gt: int = 0
    n_det: int = 0


def average_precision(det_boxes: list, det_scores: list, det_labels: list,
                      gt_boxes: list, gt_labels: list) -> APResult:
    """COCO AP / AP50 / AP75 of detections against ground truth, one list entry per image."""
    cats = sorted({int(c) for g in gt_labels for c in np.asarray(g).ravel()})
    table = np.full((len(cats), len(IOU_THRESHOLDS)), np.nan)
    for ci, c in enumerate(cats):
        dets = [(np.asarray(b, float).reshape(-1, 4)[np.asarray(lb) == c],
                 np.asarray(s, float)[np.asarray(lb) == c])
                for b, s, lb in zip(det_boxes, det_scores, det_labels, strict=True)]
        gts = [np.asarray(b, float).reshape(-1, 4)[np.asarray(lb) == c]
               for b, lb in zip(gt_boxes, gt_labels, strict=True)]
        for ti, thr in enumerate(IOU_THRESHOLDS):
            _, tp, n_gt = _match(dets, gts, float(thr))
            table[ci, ti] = _ap(tp, n_gt)
    if not cats:
        return APResult(float("nan"), float("nan"), float("nan"))
    per = {c: (float(np.nanmean(table[i])), float(table[i, 0])) for i, c in enumerate(cats)}
    return APResult(ap=float(np.nanmean(table)), ap50=float(np.nanmean(table[:, 0])),
                    ap75=float(np.nanmean(table[:, 5])), per_category=per,
                    n_gt=int(sum(len(np.asarray(g).ravel()) for g in gt_labels)),
                    n_det=int(sum(len(np.asarray(s).ravel()) for s in det_scores)))


@dataclass(frozen=True)
class Operating:
    threshold: float   # detections with score >= threshold are kept
    precision: float
    recall: float
    f1: float


def best_threshold(det_boxes: list, det_scores: list, det_labels: list, gt_boxes: list,
                   gt_labels: list, *, iou: float = 0.5, fixed: float | None = None) -> Operating:
    """The score threshold of best F1 at ``iou`` (detections matched per category), or the
    precision and recall at a ``fixed`` threshold (e.g. one chosen on a validation set)."""
    cats = sorted({int(c) for g in gt_labels for c in np.asarray(g).ravel()})
    scores, tps, n_gt = [], [], 0
    for c in cats:
        dets = [(np.asarray(b, float).reshape(-1, 4)[np.asarray(lb) == c],
                 np.asarray(s, float)[np.asarray(lb) == c])
                for b, s, lb in zip(det_boxes, det_scores, det_labels, strict=True)]
        gts = [np.asarray(b, float).reshape(-1, 4)[np.asarray(lb) == c]
               for b, lb in zip(gt_boxes, gt_labels, strict=True)]
        s, tp, n = _match(dets, gts, iou)
        scores.append(s)
        tps.append(tp)
        n_gt += n
    s = np.concatenate(scores) if scores else np.zeros(0)
    tp = np.concatenate(tps) if tps else np.zeros(0, bool)
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], tp[order]
    recall, precision = pr_curve(tp, n_gt)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    if fixed is not None:
        k = int(np.searchsorted(-s, -fixed, side="right")) - 1   # last detection >= fixed
        if k < 0:
            return Operating(fixed, 1.0, 0.0, 0.0)
        return Operating(fixed, float(precision[k]), float(recall[k]), float(f1[k]))
    if not len(s):
        return Operating(1.0, 1.0, 0.0, 0.0)
    k = int(np.argmax(f1))
    return Operating(float(s[k]), float(precision[k]), float(recall[k]), float(f1[k]))
