"""Figures of the basis-error evaluation, drawn from stored outputs (arrays).

``evaluation_figures(outputs, params)`` expects the fields of
:class:`matterflow.basis.tasks.Evaluation`: ``models``, ``y_ha``,
``pred_ha``, ``lower_ha``, ``upper_ha``, ``precision_level``, ``nominal``,
``coverage_curve``, ``levels``, ``smape_by_level_pct``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["parity_figure", "coverage_figure", "level_figure", "evaluation_figures"]


def _names(models) -> list[str]:
    return [m.decode() if isinstance(m, bytes) else str(m) for m in np.atleast_1d(models)]


def parity_figure(outputs: dict[str, Any]) -> Figure:
    """Parity plot |y| vs |prediction| (log-log) with the 90 % intervals, one panel per model."""
    import matplotlib.pyplot as plt

    names = _names(outputs["models"])
    y = -np.asarray(outputs["y_ha"], float)
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False)
    floor = 1e-5
    for k, (ax, m) in enumerate(zip(axes[0], names, strict=True)):
        p = -np.asarray(outputs["pred_ha"], float)[k]
        lo = -np.asarray(outputs["upper_ha"], float)[k]
        hi = -np.asarray(outputs["lower_ha"], float)[k]
        yy, pp = np.maximum(y, floor), np.maximum(p, floor)
        err = np.vstack([np.maximum(pp - np.maximum(lo, floor), 0),
                         np.maximum(np.maximum(hi, floor) - pp, 0)])
        ax.errorbar(yy, pp, yerr=err, fmt="o", ms=2, lw=0.4, alpha=0.5, capsize=0)
        lim = [floor, max(yy.max(), pp.max()) * 2]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_xlabel("|true error| (Ha)")
        ax.set_title(m)
    axes[0][0].set_ylabel("|predicted error| (Ha), 90 % interval")
    fig.tight_layout()
    return fig


def coverage_figure(outputs: dict[str, Any]) -> Figure:
    """Empirical vs nominal coverage of the intervals on held-out materials."""
    import matplotlib.pyplot as plt

    names = _names(outputs["models"])
    nominal = np.asarray(outputs["nominal"], float)
    curve = np.asarray(outputs["coverage_curve"], float)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    for k, m in enumerate(names):
        ax.plot(nominal, curve[k], "o-", ms=3, label=m)
    ax.plot([0.45, 1], [0.45, 1], "k--", lw=0.8, label="ideal")
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("empirical coverage (held-out materials)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def level_figure(outputs: dict[str, Any]) -> Figure:
    """sMAPE of each model at each precision level."""
    import matplotlib.pyplot as plt

    names = _names(outputs["models"])
    levels = np.asarray(outputs["levels"], float)
    table = np.asarray(outputs["smape_by_level_pct"], float)
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    width = 8.0 / max(len(names), 1)
    for k, m in enumerate(names):
        ax.bar(levels + (k - (len(names) - 1) / 2) * width, table[k], width, label=m)
    ax.set_xlabel("precision level")
    ax.set_ylabel("sMAPE (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def evaluation_figures(outputs: dict[str, Any], params: Any = None) -> dict[str, Figure]:
    """All evaluation figures by title."""
    return {"Parity with 90 % intervals": parity_figure(outputs),
            "Coverage vs nominal": coverage_figure(outputs),
            "Error by precision level": level_figure(outputs)}
