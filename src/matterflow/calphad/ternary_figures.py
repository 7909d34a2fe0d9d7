"""Gibbs-triangle figures of the ternary tasks, drawn from stored outputs (dicts of arrays)."""

from __future__ import annotations

import numpy as np

from matterflow.calphad.ternary import to_triangle

__all__ = ["section_figures", "liquidus_figures", "ensemble_figures", "proposal_figures"]


def _frame(ax, components) -> None:
    """Triangle outline, corner names, ticks every 0.2 along the edges."""
    ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="k", lw=1)
    a, b, c = (list(components) + ["A", "B", "C"])[:3] if len(components) >= 3 else ("A", "B", "C")
    ax.annotate(a, (0, 0), xytext=(-14, -10), textcoords="offset points")
    ax.annotate(b, (1, 0), xytext=(4, -10), textcoords="offset points")
    ax.annotate(c, (0.5, np.sqrt(3) / 2), xytext=(-5, 5), textcoords="offset points")
    for t in np.arange(0.2, 1.0, 0.2):
        x, y = to_triangle([t], [0.0])
        ax.annotate(f"{t:.1f}", (x[0], y[0]), xytext=(-6, -12), textcoords="offset points",
                    fontsize=6)
    ax.set_aspect("equal")
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.08, 0.95)
    ax.axis("off")
    ax.text(0.5, -0.07, f"x({b}) along the base, x({c}) towards the top", ha="center", fontsize=7)


def _colors(labels):
    import matplotlib.pyplot as plt

    names = sorted(set(labels))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    return names, {n: cmap(k) for k, n in enumerate(names)}


def section_figures(outputs: dict) -> dict:
    import matplotlib.pyplot as plt

    x = np.asarray(outputs["x"], dtype=float)
    labels = [str(v) for v in outputs["labels"]]
    comps = [str(c) for c in outputs.get("components", [])]
    fig, ax = plt.subplots(figsize=(9.5, 6))
    tl = np.asarray(outputs.get("tie_lines", np.zeros((0, 2, 2))), dtype=float).reshape(-1, 2, 2)
    step = max(1, len(tl) // 150)
    for a, b in tl[::step]:
        px, py = to_triangle([a[0], b[0]], [a[1], b[1]])
        ax.plot(px, py, color="0.55", lw=0.4)
    tri = np.asarray(outputs.get("tie_triangles", np.zeros((0, 3, 2))), dtype=float).reshape(-1, 3, 2)
    for corners in tri:
        px, py = to_triangle(corners[:, 0], corners[:, 1])
        ax.fill(px, py, color="0.8", alpha=0.6, lw=0.6, ec="k")
    names, col = _colors(labels)
    px, py = to_triangle(x[:, 0], x[:, 1])
    for n in names:
        sel = np.array([lab == n for lab in labels])
        ax.scatter(px[sel], py[sel], s=10, color=col[n], label=n.replace("+", " + "))
    _frame(ax, comps)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.97, 1.0), frameon=False)
    t = float(outputs.get("temperature_k", float("nan")))
    agree = float(outputs.get("agreement", float("nan")))
    extra = f"; same as pycalphad on {100 * agree:.1f} % of the grid" if np.isfinite(agree) else ""
    ax.set_title(f"{'-'.join(comps)} at {t:g} K (tie-lines grey, tie-triangles shaded){extra}",
                 fontsize=9)
    fig.tight_layout()
    return {"Isothermal section": fig}


def liquidus_figures(outputs: dict) -> dict:
    import matplotlib.pyplot as plt
    from matplotlib.tri import Triangulation

    x = np.asarray(outputs["x"], dtype=float)
    tl = np.asarray(outputs["liquidus_k"], dtype=float)
    prim = [str(v) for v in outputs["primary_phase"]]
    comps = [str(c) for c in outputs.get("components", [])]
    px, py = to_triangle(x[:, 0], x[:, 1])
    fig, ax = plt.subplots(figsize=(7, 6))
    ok = np.isfinite(tl)
    if ok.sum() >= 3:
        tr = Triangulation(px[ok], py[ok])
        cs = ax.tricontourf(tr, tl[ok], levels=14, cmap="inferno")
        ax.tricontour(tr, tl[ok], levels=14, colors="k", linewidths=0.3)
        fig.colorbar(cs, ax=ax, label="liquidus temperature (K)", shrink=0.8)
    names, col = _colors([p for p in prim if p])
    if len(names) > 1:
        for n in names:
            sel = np.array([p == n for p in prim])
            ax.scatter(px[sel], py[sel], s=6, color=col[n], label=f"primary {n}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(-0.05, 1.0), frameon=False)
    _frame(ax, comps)
    only = f" (primary phase everywhere: {names[0]})" if len(names) == 1 else ""
    ax.set_title(f"Liquidus projection of {'-'.join(comps)}{only}", fontsize=9)
    fig.tight_layout()
    return {"Liquidus projection": fig}


def ensemble_figures(outputs: dict) -> dict:
    import matplotlib.pyplot as plt

    x = np.asarray(outputs["x"], dtype=float)
    h = np.asarray(outputs["entropy"], dtype=float)
    mode = np.asarray(outputs["modal_code"], dtype=int)
    pmax = np.asarray(outputs["modal_probability"], dtype=float)
    names = [str(v) for v in outputs["label_names"]]
    comps = [str(c) for c in outputs.get("components", [])]
    px, py = to_triangle(x[:, 0], x[:, 1])
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    sc = axes[0].scatter(px, py, c=h, s=14, cmap="magma")
    fig.colorbar(sc, ax=axes[0], label="entropy of the predicted assemblage (nat)", shrink=0.8)
    _, col = _colors(names)
    for k, n in enumerate(names):
        sel = mode == k
        if sel.any():
            axes[1].scatter(px[sel], py[sel], s=14, color=col[n], label=n.replace("+", " + "))
    low = pmax < 0.9
    axes[1].scatter(px[low], py[low], s=30, facecolors="none", edgecolors="k", lw=0.5,
                    label="P(modal) < 0.9")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.97, 1.0), frameon=False)
    t = float(outputs.get("temperature_k", float("nan")))
    n_draws = np.asarray(outputs["codes"]).shape[0]
    axes[0].set_title(f"Uncertainty of the section at {t:g} K ({n_draws} draws)", fontsize=9)
    axes[1].set_title("Most probable assemblage", fontsize=9)
    for ax in axes:
        _frame(ax, comps)
    fig.tight_layout()
    return {"Phase-region probability": fig}


def proposal_figures(outputs: dict) -> dict:
    import matplotlib.pyplot as plt

    xg = np.asarray(outputs["x_grid"], dtype=float)
    h = np.asarray(outputs["entropy_map"], dtype=float)
    comps = [str(c) for c in outputs.get("components", [])]
    px, py = to_triangle(xg[:, 0], xg[:, 1])
    fig, ax = plt.subplots(figsize=(7, 6))
    sc = ax.scatter(px, py, c=h, s=14, cmap="magma")
    fig.colorbar(sc, ax=ax, label="entropy (nat)", shrink=0.8)
    xp = np.asarray(outputs["x"], dtype=float).reshape(-1, 2)
    qx, qy = to_triangle(xp[:, 0], xp[:, 1])
    ax.plot(qx, qy, "c*", ms=13, mec="k")
    for r, (a, b) in enumerate(zip(qx, qy, strict=True), 1):
        ax.annotate(str(r), (a, b), color="c", xytext=(5, 5), textcoords="offset points")
    _frame(ax, comps)
    t = float(outputs.get("temperature_k", float("nan")))
    ax.set_title(f"Proposed experiments at {t:g} K (stars, ranked)", fontsize=9)
    fig.tight_layout()
    return {"Proposed compositions": fig}
