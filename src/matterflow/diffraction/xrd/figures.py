"""Figures of XRD results, drawn from stored outputs (the report and ``matterflow xrd show``)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["process_figures", "reduce_figures", "calibrate_figures"]


def _ok(outputs: dict) -> np.ndarray:
    """Frames whose pattern is good: processed (0) or with a failed fit only (3)."""
    st = np.asarray(outputs.get("status", []))
    return np.isin(st, (0, 3))


def process_figures(outputs: dict, params: Any = None) -> dict:
    """Heat map of patterns vs frame, peak parameters vs frame, a cake (if any)."""
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    inten = np.asarray(outputs.get("intensity", np.zeros((0, 0))), dtype=float)
    if inten.ndim != 2 or inten.shape[0] == 0:
        return figs
    radial = np.asarray(outputs["radial"], dtype=float)
    ok = _ok(outputs)
    r = radial[ok][0] if ok.any() else np.arange(inten.shape[1])
    unit = _unit_label(params)
    frames = np.asarray(outputs.get("frame_index", np.arange(inten.shape[0])))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    data = np.where(ok[:, None], inten, np.nan)
    pos = data[np.isfinite(data) & (data > 0)]
    vmin, vmax = (np.percentile(pos, 1), np.percentile(pos, 99.5)) if pos.size else (None, None)
    im = ax.imshow(data, aspect="auto", origin="lower", interpolation="nearest",
                   extent=(r[0], r[-1], -0.5, len(frames) - 0.5), vmin=vmin, vmax=vmax,
                   cmap="viridis")
    fig.colorbar(im, ax=ax, label="intensity (counts)")
    ax.set_xlabel(unit)
    ax.set_ylabel("frame")
    n_bad = int((~ok).sum())
    ax.set_title(f"integrated patterns ({len(frames)} frames" +
                 (f", {n_bad} failed or suspect" if n_bad else "") + ")")
    fig.tight_layout()
    figs["Patterns against frame (heat map)"] = fig

    good = np.nonzero(ok)[0]
    if good.size:
        pick = good[np.unique(np.linspace(0, good.size - 1, min(30, good.size)).astype(int))]
        fig, ax = plt.subplots(figsize=(6.5, 5))
        span = np.nanpercentile(data[pick], 99.5) - np.nanpercentile(data[pick], 1)
        step = 0.25 * span if np.isfinite(span) and span > 0 else 1.0
        cmap = plt.get_cmap("viridis")
        for k, i in enumerate(pick):
            ax.plot(radial[i], data[i] + k * step, lw=0.8, color=cmap(k / max(1, len(pick) - 1)))
        ax.set_xlabel(unit)
        ax.set_ylabel("intensity + offset (counts)")
        ax.set_title(f"waterfall: {len(pick)} of {len(frames)} frames, first at the bottom")
        fig.tight_layout()
        figs["Patterns against frame (waterfall)"] = fig

    for pid, sub in outputs.items():
        if isinstance(sub, dict) and "center" in sub and "center_err" in sub:
            c, ce = np.asarray(sub["center"], float), np.asarray(sub["center_err"], float)
            w, we = np.asarray(sub["fwhm"], float), np.asarray(sub["fwhm_err"], float)
            a, ae = np.asarray(sub["area"], float), np.asarray(sub["area_err"], float)
            fig, axs = plt.subplots(3, 1, figsize=(6.5, 7), sharex=True)
            x = np.arange(c.shape[0])
            # positions as shifts from the first good frame, so small shifts show
            first = np.array([col[np.isfinite(col)][0] if np.isfinite(col).any() else 0.0
                              for col in c.T])
            for j in range(c.shape[1]):
                for axx, v, e in ((axs[0], c - first, ce), (axs[1], w, we), (axs[2], a, ae)):
                    axx.errorbar(x, v[:, j], yerr=e[:, j], fmt=".-", ms=3, capsize=2,
                                 label=f"peak {j + 1}")
            axs[0].set_ylabel(f"shift ({unit})")
            axs[0].legend([f"peak {j + 1} at {first[j]:.3f}" for j in range(c.shape[1])],
                          fontsize=7, ncol=3)
            axs[1].set_ylabel(f"FWHM ({unit})")
            axs[2].set_ylabel("area")
            axs[2].set_xlabel("frame")
            fig.suptitle(f"{pid}: fitted peaks against frame (±1σ)")
            fig.tight_layout()
            figs[f"Peak parameters against frame ({pid})"] = fig
        if isinstance(sub, dict) and "azimuthal" in sub and np.ndim(sub.get("intensity")) == 3:
            cake = np.asarray(sub["intensity"], float)
            good = np.where(ok)[0]
            if good.size:
                k = int(good[0])
                fig, ax = plt.subplots(figsize=(6.5, 4))
                rr, az = np.asarray(sub["radial"])[k], np.asarray(sub["azimuthal"])[k]
                c = cake[k]
                pos = c[c > 0]
                ax.imshow(c, aspect="auto", origin="lower", extent=(rr[0], rr[-1], az[0], az[-1]),
                          vmin=np.percentile(pos, 1) if pos.size else None,
                          vmax=np.percentile(pos, 99.5) if pos.size else None, cmap="magma")
                ax.set_xlabel(unit)
                ax.set_ylabel("azimuth χ (deg)")
                ax.set_title(f"cake of frame {int(frames[k])} ({pid})")
                fig.tight_layout()
                figs[f"Cake ({pid})"] = fig
    return figs


def reduce_figures(outputs: dict, params: Any = None) -> dict:
    """Mean (or summed) pattern with the fitted peaks."""
    import matplotlib.pyplot as plt

    r = np.asarray(outputs.get("radial", []), float)
    y = np.asarray(outputs.get("intensity", []), float)
    if r.size == 0:
        return {}
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(r, y, lw=1, label=f"{getattr(params, 'operation', 'mean')} of "
            f"{int(outputs.get('n_frames', 0))} frames")
    model = np.asarray(outputs.get("fit_model", []), float)
    if model.size == r.size and np.isfinite(model).any():
        ax.plot(r, model, "r-", lw=1.2, label="fitted peaks")
        for c in np.asarray(outputs.get("fit_center", []), float):
            if np.isfinite(c):
                ax.axvline(c, color="r", lw=0.5, ls=":")
    ax.set_xlabel(_unit_label(params))
    ax.set_ylabel("intensity (counts)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"Mean pattern with fitted peaks": fig}


def calibrate_figures(outputs: dict, params: Any = None) -> dict:
    """The calibrant image with the rings of the refined geometry drawn over it."""
    import matplotlib.pyplot as plt

    img = np.asarray(outputs.get("image", []), float)
    if img.ndim != 2:
        return {}
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    pos = img[img > 0]
    ax.imshow(np.log1p(np.clip(img, 0, None)), origin="lower", cmap="gray",
              vmax=np.log1p(np.percentile(pos, 99.8)) if pos.size else None)
    rings = np.asarray(outputs.get("ring_tth_map", []), float)
    tths = np.asarray(outputs.get("ring_tth_deg", []), float)
    if rings.shape == img.shape and tths.size:
        ax.contour(rings, levels=np.sort(tths), colors="r", linewidths=0.6)
    cp = np.asarray(outputs.get("control_points", np.zeros((0, 3))), float)
    b = float(outputs.get("image_binning", 1))
    if cp.size:
        ax.plot(cp[:, 1] / b, cp[:, 0] / b, ".", ms=1.5, color="c", alpha=0.6)
    c = np.asarray(outputs.get("centre_px", [np.nan, np.nan]), float)
    ax.plot([c[0] / b], [c[1] / b], "y+", ms=12)
    ax.set_title(f"d = {float(outputs.get('distance_mm', np.nan)):.3f} mm, rms 2θ "
                 f"{float(outputs.get('rms_tth_deg', np.nan)):.2g}°")
    ax.set_xlabel(f"column (pixel / {int(b)})")
    ax.set_ylabel(f"row (pixel / {int(b)})")
    fig.tight_layout()
    return {"Calibrant image with refined rings": fig}


def _unit_label(params: Any) -> str:
    unit = "2th_deg"
    plugins = getattr(params, "plugins", None)
    if plugins:
        for p in plugins:
            if p.get("plugin") == "integrate1d":
                unit = p.get("unit", unit)
    elif getattr(params, "unit", None):
        unit = params.unit
    return {"2th_deg": "2θ (deg)", "2th_rad": "2θ (rad)", "q_nm^-1": "q (1/nm)",
            "q_A^-1": "q (1/Å)", "r_mm": "r (mm)", "d*2_A^-2": "1/d² (1/Å²)"}.get(unit, unit)
