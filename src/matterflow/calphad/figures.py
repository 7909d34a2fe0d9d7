"""Figures of the calphad tasks, drawn from stored outputs (dicts of arrays)."""

from __future__ import annotations

import numpy as np

__all__ = ["fit_figures", "trace_figures", "ensemble_figures", "proposal_figures"]


def fit_figures(outputs: dict) -> dict:
    import matplotlib.pyplot as plt

    names = list(outputs["parameter_names"])
    vals = np.asarray(outputs["parameter_values"], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(vals)), vals)
    ax.set_xticks(range(len(vals)), names, rotation=90, fontsize=7)
    ax.set_ylabel("value (J/mol or J/(mol K))")
    ax.set_title("ESPEI-generated parameters")
    fig.tight_layout()
    return {"Fitted parameters": fig}


def trace_figures(outputs: dict) -> dict:
    import matplotlib.pyplot as plt

    chain = np.asarray(outputs["chain"], dtype=float)
    names = list(outputs["parameter_names"])
    rhat = np.asarray(outputs["rhat"], dtype=float)
    ess = np.asarray(outputs["ess"], dtype=float)
    n = chain.shape[2]
    fig, axes = plt.subplots(n + 1, 2, figsize=(9, 2.0 * (n + 1)), squeeze=False)
    for i in range(n):
        axes[i, 0].plot(chain[:, :, i], lw=0.6, alpha=0.7)
        axes[i, 0].set_ylabel(f"{names[i]} (J/mol)")
        axes[i, 0].set_title(f"R-hat {rhat[i]:.3f}, ESS {ess[i]:.0f}", fontsize=8)
        half = chain[len(chain) // 2:, :, i].ravel()
        axes[i, 1].hist(half, bins=30, color="C0", alpha=0.7)
        axes[i, 1].set_xlabel(f"{names[i]} (J/mol), second half")
    lp = np.asarray(outputs["lnprob"], dtype=float)
    axes[n, 0].plot(np.where(np.isfinite(lp), lp, np.nan), lw=0.6, alpha=0.7)
    axes[n, 0].set_ylabel("log posterior")
    axes[n, 0].set_xlabel("step")
    axes[n, 1].axis("off")
    fig.tight_layout()
    return {"MCMC traces and marginals": fig}


def ensemble_figures(outputs: dict, truth: dict | None = None) -> dict:
    """Ensemble phase diagram: boundary bands (2.5-97.5 %) and invariant intervals."""
    import matplotlib.pyplot as plt

    temps = np.asarray(outputs["temperatures_k"], dtype=float)
    bnd = np.asarray(outputs["boundary_x"], dtype=float)  # (n_draws, n_pairs, n_T, 2)
    it = np.asarray(outputs["invariant_temperature_k"], dtype=float)
    ix = np.asarray(outputs["invariant_x"], dtype=float)
    labels = list(outputs["labels"])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for d in range(bnd.shape[0]):
        for p in range(bnd.shape[1]):
            for side in range(2):
                ax.plot(bnd[d, p, :, side], temps, color="0.3", lw=0.4, alpha=0.25)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lo = np.nanpercentile(bnd, 2.5, axis=0)
        hi = np.nanpercentile(bnd, 97.5, axis=0)
    for p in range(bnd.shape[1]):
        for side in range(2):
            ok = np.isfinite(lo[p, :, side]) & np.isfinite(hi[p, :, side])
            if ok.sum() > 1:
                ax.fill_betweenx(temps, lo[p, :, side], hi[p, :, side], where=ok,
                                 color="C0", alpha=0.35, lw=0)
    for k, lab in enumerate(labels):
        t = it[:, k]
        ok = np.isfinite(t)
        if not ok.any():
            continue
        xm = np.nanmean(ix[ok, k, 1])
        tl, tm, th = np.percentile(t[ok], [2.5, 50, 97.5])
        ax.errorbar([xm], [tm], yerr=[[tm - tl], [th - tm]], fmt="o", color="C3", ms=4,
                    capsize=3)
        ax.annotate(f"{lab.split(':')[0]} {tm:.0f} K", (xm, tm), fontsize=7,
                    xytext=(3, 4), textcoords="offset points")
    if truth:
        for x, t in truth.get("points", []):
            ax.plot(x, t, "k+", ms=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("x (mole fraction of component 2)")
    ax.set_ylabel("T (K)")
    ax.set_title(f"Posterior phase diagram ({bnd.shape[0]} draws; bands 95 %)")
    fig.tight_layout()
    return {"Ensemble phase diagram": fig}


def proposal_figures(outputs: dict) -> dict:
    import matplotlib.pyplot as plt

    h = np.asarray(outputs["entropy_map"], dtype=float)
    temps = np.asarray(outputs["temperatures_k"], dtype=float)
    xg = np.asarray(outputs["x_grid"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    im = ax.pcolormesh(xg, temps, h, shading="nearest", cmap="magma")
    fig.colorbar(im, ax=ax, label="entropy of predicted phase set (nat)")
    tx, tt = np.asarray(outputs["x"]), np.asarray(outputs["temperature_k"])
    ax.plot(tx, tt, "c*", ms=11, mec="k")
    for r, (x, t) in enumerate(zip(tx, tt, strict=False), 1):
        ax.annotate(str(r), (x, t), color="c", xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("x (mole fraction of component 2)")
    ax.set_ylabel("T (K)")
    ax.set_title("Proposed experiments (stars, ranked)")
    fig.tight_layout()
    return {"Proposed experiments": fig}
