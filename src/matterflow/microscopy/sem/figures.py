"""Figures of the sem domain (matplotlib), drawn from stored outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["comparison_figure", "metrics_table_figure", "plan_figure", "speedup_recall_figure"]


def _zoom_box(img: np.ndarray, side: int) -> tuple[int, int, int]:
    side = min(side, *img.shape)
    r, c = (np.asarray(img.shape) - side) // 2
    return int(r), int(c), int(side)


def comparison_figure(images: dict, *, zoom_px: int = 64, truth: np.ndarray | None = None) -> Figure:
    """Images side by side (first row) and a zoom of their centre (second row); with ``truth``
    a third row shows each image's absolute error."""
    import matplotlib.pyplot as plt

    names = list(images)
    big = max(images.values(), key=lambda a: a.size)
    r, c, side = _zoom_box(big, zoom_px)
    rows = 3 if truth is not None else 2
    fig, axes = plt.subplots(rows, len(names), figsize=(2.6 * len(names), 2.6 * rows), squeeze=False)
    lo, hi = np.percentile(big, [0.5, 99.5])
    for j, name in enumerate(names):
        a = np.asarray(images[name], np.float32)
        f = big.shape[0] // a.shape[0]
        axes[0, j].imshow(a, cmap="gray", vmin=lo, vmax=hi)
        axes[0, j].add_patch(plt.Rectangle((c / f, r / f), side / f, side / f, fill=False,
                                           ec="yellow", lw=1))
        axes[0, j].set_title(name)
        zr = slice(r // f, (r + side) // f)
        zc = slice(c // f, (c + side) // f)
        axes[1, j].imshow(a[zr, zc], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        if truth is not None:
            if a.shape == truth.shape:
                axes[2, j].imshow(np.abs(a - truth), cmap="magma", vmin=0, vmax=0.3 * (hi - lo))
            axes[2, j].set_title("|error|" if a.shape == truth.shape else "")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def metrics_table_figure(outputs: dict) -> Figure:
    """Mean PSNR/SSIM of SR, bicubic and Lanczos as a table."""
    import matplotlib.pyplot as plt

    rows = []
    for name, key in (("SR", ""), ("bicubic", "bicubic_"), ("Lanczos-3", "lanczos_")):
        rows.append([name, f"{np.mean(outputs[key + 'psnr_db']):.2f}",
                     f"{np.mean(outputs[key + 'ssim']):.3f}"])
    fig, ax = plt.subplots(figsize=(4, 1.4))
    ax.axis("off")
    ax.table(cellText=rows, colLabels=["method", "PSNR (dB)", "SSIM"], loc="center")
    ax.set_title(f"{len(np.atleast_1d(outputs['psnr_db']))} images; gain "
                 f"{float(np.asarray(outputs['gain_db'])):+.2f} dB over bicubic")
    fig.tight_layout()
    return fig


def plan_figure(outputs: dict, tile_px: int, *, labels: np.ndarray | None = None, image: int = 0) -> Figure:
    """The merged image of ``image`` with its planned tiles (yellow) and path, and the planted
    events (cyan contours) when ``labels`` are given."""
    import matplotlib.pyplot as plt

    merged = np.asarray(outputs["merged"])[image]
    tiles = np.asarray(outputs["tiles"]).reshape(-1, 3)
    tiles = tiles[tiles[:, 0] == image][:, 1:]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(merged, cmap="gray")
    for r, c in tiles:
        ax.add_patch(plt.Rectangle((c * tile_px, r * tile_px), tile_px, tile_px, fill=False,
                                   ec="yellow", lw=1))
    if len(tiles):
        ctr = (tiles + 0.5) * tile_px
        ax.plot(ctr[:, 1], ctr[:, 0], "-", color="orange", lw=0.8)
    if labels is not None:
        ax.contour(np.asarray(labels)[image] > 0, levels=[0.5], colors="cyan", linewidths=0.8)
    ax.set_title(f"{len(tiles)} rescan tiles of {tile_px} px "
                 f"({float(np.asarray(outputs['area_fraction'])[image]):.1%} of the area)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def speedup_recall_figure(outputs: dict, baselines: dict | None = None) -> Figure:
    """Recall of planted events and effective speed-up against the rescanned area fraction."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(outputs["curve_speedup"], outputs["curve_recall"], "o-", label="planner")
    for name, (sp, rec) in (baselines or {}).items():
        ax.plot(sp, rec, "s--", label=name)
    for a, sp, rec in zip(outputs["curve_area_fraction"], outputs["curve_speedup"],
                          outputs["curve_recall"], strict=True):
        ax.annotate(f"{a:.1%}", (sp, rec), fontsize=7, xytext=(3, -8), textcoords="offset points")
    ax.set(xlabel="effective speed-up (×)", ylabel="recall of planted events", ylim=(0, 1.05))
    ax.axhline(0.95, color="gray", lw=0.6, ls=":")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
