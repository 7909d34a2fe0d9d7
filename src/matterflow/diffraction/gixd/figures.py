"""GIXD figures: detections over the polar and detector images, precision-recall curves, AP
against |q| (``evaluation_figures``, drawn from the stored outputs of ``gixd.evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["detection_figures", "evaluation_figures", "draw_boxes"]

_COLOURS = {1: ("#00d0ff", "peak"), 2: ("#ff40c0", "ring")}


def draw_boxes(ax: Any, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray | None,
               grid: Any) -> None:
    """Boxes (x0, y0, x1, y1 polar px) as rectangles in (|q|, χ) axes, coloured by category."""
    from matplotlib.patches import Rectangle

    seen: set[int] = set()
    for k, b in enumerate(np.asarray(boxes, float).reshape(-1, 4)):
        if not np.isfinite(b).all():
            continue
        q0, c0 = grid.from_px(b[0], b[1])
        q1, c1 = grid.from_px(b[2], b[3])
        lab = int(labels[k])
        colour, name = _COLOURS.get(lab, ("#ffff00", str(lab)))
        ax.add_patch(Rectangle((float(q0), float(c0)), float(q1 - q0), float(c1 - c0),
                               fill=False, ec=colour, lw=0.9,
                               label=name if lab not in seen else None))
        seen.add(lab)
        if scores is not None and np.isfinite(scores[k]):
            ax.text(float(q0), float(c1), f"{scores[k]:.2f}", color=colour, fontsize=5,
                    va="bottom")
    if seen:
        ax.legend(loc="upper right", fontsize=7)


def _show(ax: Any, image: np.ndarray, **kw: Any) -> Any:
    img = np.asarray(image, float)
    lo = np.nanpercentile(img, 1) if np.isfinite(img).any() else 0.0
    return ax.imshow(np.log1p(np.clip(img - lo, 0, None)), cmap="gray_r", **kw)


def detection_figures(data: Path, values: dict[str, Any], *, dataset: str | None,
                      geometry: Path | None, params: Any, polar_shape: tuple[int, int],
                      max_frames: int = 3) -> dict[str, Any]:
    """Detections of a peak table over up to ``max_frames`` frames (first, middle, last): the
    polar (|q|, χ) image and, with a PONI ``geometry``, the detector image with each box's
    region outlined (its pixels of |q| and χ inside the box). ``polar_shape`` is the polar
    grid (n_chi, n_q) the detector frames were converted to (the model's input size)."""
    import matplotlib.pyplot as plt

    from matterflow.diffraction.gixd._geometry import PolarGrid, get_converter
    from matterflow.diffraction.xrd._io import FrameError, open_frames

    shape = tuple(polar_shape)
    src = open_frames(data, dataset=dataset, pattern=params.pattern)
    n = min(len(src), len(values["n"]))
    picks = sorted({0, n // 2, n - 1})[:max_frames]
    conv = None
    if geometry is not None:
        grid = PolarGrid(shape[1], shape[0], params.q_min, params.q_max, 0.0, 90.0)
        conv = get_converter(str(geometry), params.incidence_deg, grid, where=str(geometry))
    figs: dict[str, Any] = {}
    try:
        for i in picks:
            try:
                img = np.asarray(src[i], np.float32)
            except FrameError:
                continue
            if conv is None:
                polar = img
                grid = PolarGrid(img.shape[1], img.shape[0], params.q_min, params.q_max, 0.0, 90.0)
            else:
                polar = conv(img)
            k = int(values["n"][i])
            b, lab, s = (np.asarray(values[x][i])[:k] for x in ("boxes", "labels", "scores"))
            ncol = 2 if conv is not None else 1
            fig, axes = plt.subplots(1, ncol, figsize=(5.5 * ncol, 4.5), squeeze=False)
            ax = axes[0, 0]
            _show(ax, polar, origin="lower", aspect="auto",
                  extent=(grid.q_min, grid.q_max, grid.chi_min, grid.chi_max))
            draw_boxes(ax, b, lab, s if k <= 30 else None, grid)
            ax.set(xlabel="|q| (1/nm)", ylabel="χ (deg)", title=f"frame {i}: {k} detections")
            if conv is not None:
                ax = axes[0, 1]
                _show(ax, img, origin="upper")
                q, chi, _qz = conv.pixel_q_chi
                for kk, bb in enumerate(b):
                    q0, c0 = grid.from_px(bb[0], bb[1])
                    q1, c1 = grid.from_px(bb[2], bb[3])
                    inside = (q >= q0) & (q <= q1) & (chi >= c0) & (chi <= c1)
                    if inside.any():
                        ax.contour(inside.astype(float), levels=[0.5], linewidths=0.8,
                                   colors=[_COLOURS.get(int(lab[kk]), ("#ffff00", ""))[0]])
                ax.set(xlabel="column (px)", ylabel="row (px)", title="detector image")
            fig.tight_layout()
            figs[f"Detections, frame {i}"] = fig
    finally:
        src.close()
    return figs


def evaluation_figures(outputs: dict, params: Any) -> dict[str, Any]:
    """Precision-recall curves (peak, ring; IoU 0.5 and 0.75) and AP50 against |q|, from the
    stored outputs of ``gixd.evaluate``."""
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    prec = np.asarray(outputs.get("pr_precision", np.zeros((0,))), float)
    rec = np.asarray(outputs.get("pr_recall", np.zeros((0,))), float)
    if prec.ndim == 3 and rec.size:
        fig, ax = plt.subplots(figsize=(5, 4))
        for ci, (cat, (colour, name)) in enumerate(_COLOURS.items()):
            del cat
            for ti, (thr, style) in enumerate(((0.5, "-"), (0.75, "--"))):
                if np.isfinite(prec[ci, ti]).any():
                    ax.plot(rec, prec[ci, ti], style, color=colour, label=f"{name}, IoU {thr}")
        ax.set(xlabel="recall", ylabel="precision (interpolated)", xlim=(0, 1), ylim=(0, 1.02),
               title=f"AP {float(outputs['ap']):.3f}, AP50 {float(outputs['ap50']):.3f}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        figs["Precision-recall"] = fig
    edges = np.asarray(outputs.get("q_bin_edges", np.zeros(0)), float)
    ap_q = np.asarray(outputs.get("ap50_vs_q", np.zeros(0)), float)
    if edges.size > 1 and np.isfinite(edges).all() and ap_q.size == edges.size - 1:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        centres = (edges[:-1] + edges[1:]) / 2
        ax.bar(centres, np.nan_to_num(ap_q), width=np.diff(edges) * 0.9, color="#4477aa")
        ngt = np.asarray(outputs.get("n_gt_vs_q", np.zeros_like(ap_q)))
        for x, y, m in zip(centres, np.nan_to_num(ap_q), ngt, strict=True):
            ax.text(x, y + 0.01, str(int(m)), ha="center", fontsize=6)
        ax.set(xlabel="|q| of the box centre (1/nm)", ylabel="AP50", ylim=(0, 1.05),
               title="AP50 against |q| (labels: boxes per bin)")
        fig.tight_layout()
        figs["AP50 against q"] = fig
    return figs
