"""Peak fitting of 1D patterns: Gaussian, Lorentzian or pseudo-Voigt on a polynomial background.

Each peak is fitted in its own window ``[center - window, center + window]``;
peaks whose windows overlap are fitted together, on one background, in the
union of their windows. Fits are weighted least squares
(``scipy.optimize.curve_fit``; weights 1/σ when σ is given). Uncertainties are
the square roots of the covariance diagonal, scaled by the reduced χ²
(``absolute_sigma=False``), so they are honest also when σ is only relative.
The area of a pseudo-Voigt of height ``h`` and full width ``w`` is ``h w (η π/2 + (1 - η) sqrt(π / (4 ln 2)))``.

A peak that cannot be fitted is never returned as a number: its values are
NaN and :attr:`PeakFit.status` says why (:data:`FIT_STATUS`), with the reason
in :attr:`PeakFit.reason` -- too few points in the window (it lies outside
the pattern or in masked bins), a flat window (nothing to fit, e.g. a
dropped-out frame), no convergence, or a fitted height not above its own
uncertainty (no peak there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

__all__ = ["PeakFit", "fit_peak", "fit_peaks", "fit_window", "profile", "PROFILES",
           "skipped_fit", "FIT_STATUS", "FIT_OK", "FIT_FEW_POINTS", "FIT_FAILED", "FIT_SKIPPED", "FIT_NO_PEAK"]

FIT_OK, FIT_FEW_POINTS, FIT_FAILED, FIT_SKIPPED, FIT_NO_PEAK = 0, 1, 2, 3, 4
FIT_STATUS = {FIT_OK: "fitted", FIT_FEW_POINTS: "too few points in the window",
              FIT_FAILED: "the fit did not converge", FIT_SKIPPED: "not fitted (suspect frame)",
              FIT_NO_PEAK: "no peak (flat window, or height not above its uncertainty)"}
"""Per-peak fit status codes and what they mean."""

PROFILES = ("gaussian", "lorentzian", "pseudo_voigt")
_GAUSS_AREA = np.sqrt(np.pi / (4 * np.log(2)))


def profile(x: np.ndarray, center: float, height: float, fwhm: float, eta: float) -> np.ndarray:
    """Pseudo-Voigt of ``height`` and ``fwhm``; ``eta`` = 0 Gaussian, 1 Lorentzian."""
    u = (x - center) / (fwhm / 2)
    return height * (eta / (1 + u * u) + (1 - eta) * np.exp(-np.log(2) * u * u))


def _area(height: float, fwhm: float, eta: float) -> float:
    return height * fwhm * (eta * np.pi / 2 + (1 - eta) * _GAUSS_AREA)


@dataclass(frozen=True)
class PeakFit:
    """Fitted parameters of peaks (arrays of shape (n_peaks,)); NaN where a fit failed.

    ``status`` (n_peaks,) int: a :data:`FIT_STATUS` code (0 fitted); ``reason``:
    one string per peak, '' where it was fitted.
    """

    center: np.ndarray
    center_err: np.ndarray
    fwhm: np.ndarray
    fwhm_err: np.ndarray
    height: np.ndarray
    height_err: np.ndarray
    area: np.ndarray
    area_err: np.ndarray
    eta: np.ndarray
    chi2_red: np.ndarray
    model: np.ndarray  # (npt,) fitted curve (peaks + backgrounds in their windows), NaN outside
    status: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    reason: tuple[str, ...] = ()

    @property
    def ok(self) -> np.ndarray:
        """(n_peaks,) bool: True where the peak was fitted."""
        return np.asarray(self.status) == FIT_OK


def fit_peak(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, center: float,
             window: float, *, shape: str = "pseudo_voigt", background_order: int = 1,
             fwhm_guess: float | None = None) -> tuple[dict, np.ndarray, np.ndarray] | None:
    """Fit one peak near ``center`` in ``|x - center| <= window``.

    Returns ``(values dict, x_window, model_window)`` or None if there are too few
    points or the fit fails.
    """
    res = fit_window(x, y, sigma, [center], window, shape=shape,
                     background_order=background_order, fwhm_guess=fwhm_guess)
    return None if res is None else (res[0][0], res[1], res[2])


def fit_window(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, centers: list[float],
               window: float, *, shape: str = "pseudo_voigt", background_order: int = 1,
               fwhm_guess: float | None = None
               ) -> tuple[list[dict], np.ndarray, np.ndarray] | None:
    """Fit peaks near ``centers`` together, on one polynomial background.

    The window is ``[min(centers) - window, max(centers) + window]``; each peak has
    its own position (within ``window`` of its start), height, width and, for
    pseudo-Voigts, mixing η. Returns ``(values per peak, x_window, model_window)``
    or None if there are too few points or the fit fails (:func:`fit_peaks` says why).
    """
    res, _status, _reason = _fit_window(x, y, sigma, centers, window, shape=shape,
                                        background_order=background_order, fwhm_guess=fwhm_guess)
    return res


def _fit_window(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, centers: list[float],
                window: float, *, shape: str = "pseudo_voigt", background_order: int = 1,
                fwhm_guess: float | None = None
                ) -> tuple[tuple[list[dict], np.ndarray, np.ndarray] | None, int, str]:
    """:func:`fit_window`, with a :data:`FIT_STATUS` code and a reason when it gives None."""
    centers = [float(c) for c in centers]
    n_pk = len(centers)
    ref = float(np.mean(centers))
    sel = (x >= min(centers) - window) & (x <= max(centers) + window)
    sel &= np.isfinite(y)
    if sigma is not None:
        sel &= np.isfinite(sigma)
    xs, ys = x[sel], y[sel]
    pv = shape == "pseudo_voigt"
    npp = 4 if pv else 3                       # parameters per peak: dc, h, w (, eta)
    nb = background_order + 1
    n_par = npp * n_pk + nb
    if xs.size < n_par + 2:
        return None, FIT_FEW_POINTS, (
            f"{xs.size} finite points in the window {min(centers) - window:.6g}.."
            f"{max(centers) + window:.6g}; {n_par + 2} needed (window outside the pattern or "
            "masked)")
    if float(np.ptp(ys)) == 0.0:
        return None, FIT_NO_PEAK, f"flat window (every point is {float(ys[0]):.6g}): no peak"
    s = None
    if sigma is not None:
        s = np.asarray(sigma)[sel]
        s = np.where(s > 0, s, np.nan)
        s = np.where(np.isfinite(s), s, np.nanmax(s) if np.isfinite(s).any() else 1.0)
        if not np.isfinite(s).all():
            s = None
    xc = xs - ref
    offsets = np.array(centers) - ref          # start positions relative to ref
    fixed_eta = 0.0 if shape == "gaussian" else 1.0

    def _peak(p: tuple, j: int) -> tuple[float, float, float, float]:
        q = p[npp * j: npp * (j + 1)]
        return offsets[j] + q[0], q[1], q[2], (q[3] if pv else fixed_eta)

    def model(xv: np.ndarray, *p: float) -> np.ndarray:
        out = np.polyval(p[-nb:][::-1], xv)
        for j in range(n_pk):
            out = out + profile(xv, *_peak(p, j))
        return out

    powers = np.vander(xc, nb, increasing=True)  # (n, nb): 1, x, x², ... for the background

    def jacobian(xv: np.ndarray, *p: float) -> np.ndarray:
        # analytic derivatives: one model evaluation per iteration instead of n_par + 1
        cols = []
        for j in range(n_pk):
            c, h, w, eta = _peak(p, j)
            u = (xv - c) / (w / 2)
            lor = 1 / (1 + u * u)
            gau = np.exp(-np.log(2) * u * u)
            df_du = h * (eta * (-2 * u * lor * lor) + (1 - eta) * (-2 * np.log(2) * u * gau))
            cols += [df_du * (-2 / w), eta * lor + (1 - eta) * gau, df_du * (-u / w)]
            if pv:
                cols.append(h * (lor - gau))
        return np.column_stack(cols + [powers[:, k] for k in range(nb)])

    edge = np.concatenate([ys[:3], ys[-3:]])
    b0 = float(np.median(edge))
    step = float(np.median(np.diff(xs)))
    w0 = fwhm_guess or max(window / 5, step * 3)
    p0, lo, hi = [], [], []
    for j, c in enumerate(centers):
        # start at the highest point near this peak (not past half-way to a neighbour)
        gaps = [abs(c - o) / 2 for k, o in enumerate(centers) if k != j]
        reach = min([window] + gaps)
        near = np.abs(xs - c) <= max(reach, step)
        i_max = int(np.flatnonzero(near)[np.argmax(ys[near])]) if near.any() else \
            int(np.argmin(np.abs(xs - c)))
        p0 += [float(xs[i_max] - c), max(float(ys[i_max] - b0), 1e-12), w0] + ([0.5] if pv else [])
        lo += [-window, 0.0, 1e-6 * window] + ([0.0] if pv else [])
        hi += [window, np.inf, 2 * window] + ([1.0] if pv else [])
    p0 += [b0] + [0.0] * (nb - 1)
    lo += [-np.inf] * nb
    hi += [np.inf] * nb
    lo_a, hi_a = np.array(lo, float), np.array(hi, float)
    p0 = list(np.clip(p0, lo_a, hi_a))
    for j in range(n_pk):
        p0[npp * j + 2] = max(p0[npp * j + 2], 2 * lo[2])
    popt = pcov = None
    try:  # unbounded Levenberg–Marquardt (MINPACK) first: several times faster than the
        # bounded trust-region method, and the same optimum whenever that lies inside the bounds
        popt, pcov = optimize.curve_fit(model, xc, ys, p0=p0, sigma=s, absolute_sigma=False,
                                        jac=jacobian, method="lm", maxfev=4000 * n_pk)
        if not (np.all(popt >= lo_a) and np.all(popt <= hi_a) and np.all(np.isfinite(pcov))):
            popt = None
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        popt = None
    if popt is None:
        try:
            popt, pcov = optimize.curve_fit(model, xc, ys, p0=p0, sigma=s, absolute_sigma=False,
                                            bounds=(lo, hi), jac=jacobian, maxfev=4000 * n_pk)
        except (RuntimeError, ValueError, optimize.OptimizeWarning) as exc:
            return None, FIT_FAILED, f"the fit did not converge ({exc})"
    if not np.all(np.isfinite(popt)):
        return None, FIT_FAILED, "the fit gave non-finite parameters"
    perr = np.sqrt(np.clip(np.diag(pcov), 0, np.inf)) if np.all(np.isfinite(pcov)) else \
        np.full(len(popt), np.nan)
    resid = (ys - model(xc, *popt)) / (s if s is not None else 1.0)
    chi2_red = float(np.sum(resid**2) / max(1, xs.size - len(popt)))
    peaks = []
    for j in range(n_pk):
        o = npp * j
        c, h, w, eta = _peak(tuple(popt), j)
        # area error by linear propagation (h, w, eta covariances)
        idx = [o + 1, o + 2] + ([o + 3] if pv else [])
        k = eta * np.pi / 2 + (1 - eta) * _GAUSS_AREA
        grad = np.array([w * k, h * k] + ([h * w * (np.pi / 2 - _GAUSS_AREA)] if pv else []))
        sub = pcov[np.ix_(idx, idx)]
        area_err = float(np.sqrt(max(0.0, float(grad @ sub @ grad)))) \
            if np.all(np.isfinite(sub)) else np.nan
        peaks.append({"center": ref + float(c), "center_err": float(perr[o]),
                      "height": float(h), "height_err": float(perr[o + 1]), "fwhm": float(w),
                      "fwhm_err": float(perr[o + 2]), "area": _area(h, w, eta),
                      "area_err": area_err, "eta": float(eta), "chi2_red": chi2_red})
    return (peaks, xs, model(xc, *popt)), FIT_OK, ""


def overlapping_groups(centers: list[float], window: float) -> list[list[int]]:
    """Indices of ``centers`` grouped where fit windows (± ``window``) overlap, in input order."""
    order = sorted(range(len(centers)), key=lambda i: centers[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and centers[i] - centers[groups[-1][-1]] < 2 * window:
            groups[-1].append(i)
        else:
            groups.append([i])
    return sorted(groups, key=min)


def fit_peaks(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, centers: list[float],
              window: float, *, shape: str = "pseudo_voigt", background_order: int = 1,
              fwhm_guess: float | None = None) -> PeakFit:
    """Fit the peaks of ``centers`` (same unit as ``x``); NaN where a fit fails, with
    ``status``/``reason`` saying why (see :data:`FIT_STATUS`).

    A peak is fitted in ``|x - center| <= window``; peaks whose windows overlap are
    fitted together in the union of their windows (one background, one profile
    each), so a neighbour's tail is modelled instead of biasing the fit.
    """
    n = len(centers)
    keys = ("center", "center_err", "fwhm", "fwhm_err", "height", "height_err", "area",
            "area_err", "eta", "chi2_red")
    out = {k: np.full(n, np.nan) for k in keys}
    model = np.full(np.shape(x), np.nan)
    status = np.zeros(n, np.int32)
    reason = [""] * n
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    for group in overlapping_groups([float(c) for c in centers], window):
        res, code, why = _fit_window(x, y, sigma, [float(centers[i]) for i in group], window,
                                     shape=shape, background_order=background_order,
                                     fwhm_guess=fwhm_guess)
        if res is None:
            for i in group:
                status[i], reason[i] = code, why
            continue
        peaks, xs, ms = res
        for i, vals in zip(group, peaks, strict=True):
            h, herr = vals["height"], vals["height_err"]
            if not h > 0 or (np.isfinite(herr) and h <= herr):
                status[i] = FIT_NO_PEAK
                reason[i] = f"no peak: fitted height {h:.3g} is not above its uncertainty {herr:.3g}"
                continue
            for k in keys:
                out[k][i] = vals[k]
        model[np.isin(x, xs)] = ms
    return PeakFit(model=model, status=status, reason=tuple(reason), **out)


def skipped_fit(n: int, npt: int, why: str) -> PeakFit:
    """A :class:`PeakFit` of ``n`` peaks that were not fitted (status :data:`FIT_SKIPPED`)."""
    nan = np.full(n, np.nan)
    return PeakFit(center=nan, center_err=nan, fwhm=nan, fwhm_err=nan, height=nan,
                   height_err=nan, area=nan, area_err=nan, eta=nan, chi2_red=nan,
                   model=np.full(npt, np.nan), status=np.full(n, FIT_SKIPPED, np.int32),
                   reason=(why,) * n)
