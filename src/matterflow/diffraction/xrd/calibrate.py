"""Automatic geometry calibration from one calibrant image (no hand-picked points).

Steps (all on the image alone, given calibrant, energy and pixel size):

1. **Beam centre.** A coarse-to-fine search for the point about which the
   azimuthally averaged profile is sharpest (rings are concentric circles
   about the beam for small tilts): the variance of the radial profile of a
   binned image is maximised on a grid, then with Nelder-Mead.
2. **Distance.** Peaks of the radial profile (pixels) are matched with the
   calibrant's 2θ: for each trial distance the predicted ring radii
   ``D tan 2θ / pixel`` are compared with the detected peaks; the distance
   matching most rings (and predicting fewest missing ones) wins, then a
   least-squares fit over the matched rings refines it.
3. **Refinement.** pyFAI's ``SingleGeometry.extract_cp`` collects control
   points on the rings expected from the current geometry (``Massif`` peak
   search) and ``GeometryRefinement.refine3`` fits distance, PONI and the
   two tilts (wavelength fixed). This is repeated with more rings as the
   geometry improves.

Result: a :class:`Calibration` with the refined geometry (PONI text), the
control points, and the rms 2θ residual.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, signal

from matterflow.core.errors import ComputeError, InputError, MatterflowWarning
from matterflow.diffraction.xrd._geometry import (
    get_calibrant,
    make_detector,
    poni_text,
    wavelength_m,
)

__all__ = ["auto_calibrate", "Calibration", "find_beam_centre", "guess_distance",
           "tilt_uncertainty", "DEGENERATE_TILT_DEG"]

log = logging.getLogger(__name__)


@dataclass
class Calibration:
    """A refined geometry.

    Attributes
    ----------
    ai : pyFAI AzimuthalIntegrator
        The refined geometry (detector, wavelength included).
    poni : str
        PONI file text.
    distance_mm : float
        Sample–detector distance (PONI distance) in mm.
    centre_px : (float, float)
        Beam centre (x = column, y = row) in pixels (direct beam on the detector).
    rot_deg : (float, float, float)
        rot1, rot2, rot3 in degrees.
    control_points : ndarray of shape (n, 3)
        (row, column, ring index) of the points used in the last refinement.
    rms_tth_deg : float
        rms 2θ residual of the control points in degrees.
    initial : dict
        The automatic first guess (centre_px, distance_mm).
    """

    ai: Any
    poni: str
    distance_mm: float
    centre_px: tuple[float, float]
    rot_deg: tuple[float, float, float]
    control_points: np.ndarray
    rms_tth_deg: float
    initial: dict = field(default_factory=dict)


def _bin(img: np.ndarray, mask: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    r, c = (img.shape[0] // b) * b, (img.shape[1] // b) * b
    w = (~mask[:r, :c]).astype(np.float64)
    s = (img[:r, :c] * w).reshape(r // b, b, c // b, b).sum(axis=(1, 3))
    n = w.reshape(r // b, b, c // b, b).sum(axis=(1, 3))
    return s, n


def _radial_profile(s: np.ndarray, n: np.ndarray, cx: float, cy: float, step: float = 1.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.indices(s.shape, dtype=np.float64)
    r = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) / step
    idx = r.astype(np.int64).ravel()
    tot = np.bincount(idx, weights=s.ravel())
    cnt = np.bincount(idx, weights=n.ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = tot / cnt
    return prof, cnt


def _sharpness(s: np.ndarray, n: np.ndarray, cx: float, cy: float) -> float:
    """F statistic of the radial profile: between-ring over within-ring variance.

    Large when pixels at equal distance from (cx, cy) have equal intensity,
    i.e. when (cx, cy) is the centre of the rings; robust to noise and to the
    number of radial bins (unlike the plain profile variance).
    """
    yy, xx = np.indices(s.shape, dtype=np.float64)
    idx = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy).astype(np.int64).ravel()
    w = n.ravel()
    v = s.ravel() / np.maximum(w, 1)
    ok = w > 0
    idx, w, v = idx[ok], w[ok], v[ok]
    cnt = np.bincount(idx)
    k = int(np.count_nonzero(cnt))
    npx = idx.size
    if k < 5 or npx <= k:
        return 0.0
    tot = np.bincount(idx, weights=v)
    mean_k = tot / np.maximum(cnt, 1)
    m = v.mean()
    ssb = float(np.sum(cnt * (mean_k - m) ** 2))
    sst = float(np.sum((v - m) ** 2))
    ssw = max(sst - ssb, 1e-12)
    return (ssb / (k - 1)) / (ssw / (npx - k))


def find_beam_centre(image: np.ndarray, mask: np.ndarray | None = None,
                     search: tuple[float, float] | None = None) -> tuple[float, float]:
    """Beam centre (x = column, y = row, pixels) where rings are sharpest.

    ``search``: a rough (x, y) to search around; default: the whole frame
    (the centre may lie up to a quarter frame outside the detector).
    """
    img = np.asarray(image, dtype=np.float64)
    mask = np.zeros(img.shape, bool) if mask is None else mask
    mask = mask | ~np.isfinite(img) | (img < 0)
    img = np.where(mask, 0.0, img)
    # clip hot pixels so the profile is not dominated by them
    hi = np.percentile(img[~mask], 99.9) if (~mask).any() else 1.0
    img = np.minimum(img, hi)
    best = None
    for b in (8, 4, 2):
        s, n = _bin(img, mask, b)
        h, w = s.shape
        if best is None:
            if search is None:
                xs = np.linspace(-0.25 * w, 1.25 * w, 31)
                ys = np.linspace(-0.25 * h, 1.25 * h, 31)
            else:
                xs = search[0] / b + np.linspace(-0.15 * w, 0.15 * w, 21)
                ys = search[1] / b + np.linspace(-0.15 * h, 0.15 * h, 21)
        else:
            bx, by = best[0] / b, best[1] / b
            xs = bx + np.linspace(-4, 4, 9)
            ys = by + np.linspace(-4, 4, 9)
        scores = np.array([[_sharpness(s, n, x, y) for x in xs] for y in ys])
        iy, ix = np.unravel_index(np.argmax(scores), scores.shape)
        x0, y0 = xs[ix], ys[iy]
        res = optimize.minimize(lambda p, s=s, n=n: -_sharpness(s, n, p[0], p[1]), [x0, y0],
                                method="Nelder-Mead",
                                options={"xatol": 0.05, "fatol": 1e-9, "maxiter": 200})
        x, y = res.x if -res.fun >= scores.max() else (x0, y0)
        best = (float(x) * b, float(y) * b)
    return best


def _detect_peaks(image: np.ndarray, mask: np.ndarray, centre: tuple[float, float]
                  ) -> np.ndarray:
    """Radii (pixels) of ring peaks in the profile about ``centre``."""
    img = np.where(mask, 0.0, np.asarray(image, dtype=np.float64))
    prof, cnt = _radial_profile(img, (~mask).astype(np.float64), centre[0], centre[1])
    ok = cnt > 10
    r = np.arange(prof.size)[ok] + 0.5
    p = prof[ok]
    # remove a smooth background (running minimum + smoothing)
    base = signal.medfilt(p, 51) if p.size > 51 else np.full_like(p, np.median(p))
    q = p - base
    noise = np.median(np.abs(np.diff(q))) + 1e-9
    idx, props = signal.find_peaks(q, prominence=6 * noise, distance=3)
    return r[idx]


def guess_distance(peaks_px: np.ndarray, tth_rad: np.ndarray, pixel_m: float,
                   guess_m: float | None = None) -> tuple[float, int]:
    """Distance (m) whose predicted ring radii best match the detected peaks; and #matched."""
    if peaks_px.size == 0:
        raise ComputeError("calibration: no ring found in the image's radial profile; check "
                           "the image, the mask and that the beam centre is near the detector")
    if guess_m:
        trials = np.geomspace(guess_m * 0.7, guess_m * 1.4, 1500)
    else:
        trials = np.geomspace(0.02, 5.0, 6000)
    rmax = peaks_px.max() * 1.05
    best = (-np.inf, None, 0)
    tan = np.tan(tth_rad)
    for d in trials:
        pred = d * tan / pixel_m
        pred = pred[(pred < rmax) & (pred > peaks_px.min() * 0.9)]
        if pred.size < 2:
            continue
        dist = np.abs(peaks_px[:, None] - pred[None, :])
        tol = np.maximum(2.0, 0.004 * pred)
        hit = dist <= tol[None, :]
        matched_pred = hit.any(axis=0).sum()
        matched_peaks = hit.any(axis=1).sum()
        score = matched_peaks - 0.5 * (pred.size - matched_pred)
        resid = np.sum(np.min(dist, axis=0)[hit.any(axis=0)])
        key = score - 1e-4 * resid
        if key > best[0]:
            best = (key, d, int(matched_peaks))
    if best[1] is None:
        raise ComputeError("calibration: could not match the detected rings with the calibrant; "
                           "give --guess-distance")
    d = best[1]
    # least-squares refinement over matched pairs: r = d tan(2θ)/px
    pred = d * tan / pixel_m
    pairs = []
    for r in peaks_px:
        j = int(np.argmin(np.abs(pred - r)))
        if abs(pred[j] - r) <= max(2.0, 0.004 * pred[j]):
            pairs.append((r, tan[j]))
    if len(pairs) >= 2:
        rr, tt = np.array(pairs).T
        d = float(np.sum(rr * tt) / np.sum(tt * tt)) * pixel_m
    return d, best[2]


DEGENERATE_TILT_DEG = 0.02
"""Standard error of a refined tilt (deg) above which -- and above a tenth of the larger
tilt, i.e. the tilts are not known to 10 % -- the geometry is called degenerate."""


def tilt_uncertainty(ai: Any, control_points: np.ndarray, rms_tth_deg: float
                     ) -> tuple[np.ndarray, float]:
    """Standard errors (deg) of rot1, rot2 from the control points, and the larger of the
    tilt-centre correlations (rot1-poni2, rot2-poni1).

    Linearised least squares: the Jacobian of each control point's 2θ with respect to
    (dist, poni1, poni2, rot1, rot2) by central differences, covariance
    ``(JᵀJ)⁻¹ σ²`` with σ the rms 2θ residual.
    """
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    cp = np.asarray(control_points, float)
    if cp.shape[0] < 6 or not np.isfinite(rms_tth_deg):
        return np.array([np.nan, np.nan]), float("nan")
    d1, d2 = cp[:, 0], cp[:, 1]
    base = np.array([ai.dist, ai.poni1, ai.poni2, ai.rot1, ai.rot2], float)
    steps = np.array([1e-6, 1e-7, 1e-7, 1e-6, 1e-6])

    def tth(p: np.ndarray) -> np.ndarray:
        a = AzimuthalIntegrator(dist=p[0], poni1=p[1], poni2=p[2], rot1=p[3], rot2=p[4],
                                rot3=ai.rot3, detector=ai.detector, wavelength=ai.wavelength)
        return np.asarray(a.tth(d1, d2))

    cols = []
    for k in range(5):
        e = np.zeros(5)
        e[k] = steps[k]
        cols.append((tth(base + e) - tth(base - e)) / (2 * steps[k]))
    jac = np.column_stack(cols)
    cov = np.linalg.pinv(jac.T @ jac) * np.radians(rms_tth_deg) ** 2
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    c = float(np.nanmax(np.abs([corr[3, 2], corr[4, 1]])))
    return np.degrees(sd[3:5]), c


def auto_calibrate(image: np.ndarray, *, calibrant: str, energy_kev: float,
                   detector: str | None = None, pixel_size_um: float | None = None,
                   guess_distance_mm: float | None = None,
                   guess_centre_px: tuple[float, float] | None = None,
                   mask: np.ndarray | None = None, max_rings: int | None = None,
                   fix: tuple[str, ...] = ("wavelength", "rot3")) -> Calibration:
    """Find rings and refine the geometry of ``image`` (rows, cols) with pyFAI.

    Parameters
    ----------
    image : ndarray (rows, cols)
        Calibrant image in counts.
    calibrant : str
        pyFAI calibrant name (``LaB6``, ``CeO2``, ``Si``, ...).
    energy_kev : float
        X-ray energy in keV (fixes the wavelength).
    detector, pixel_size_um
        A pyFAI detector name, or a square pixel size in µm.
    guess_distance_mm : float, optional
        Rough distance; without it 20 mm–5 m is searched.
    guess_centre_px : (x, y), optional
        Rough beam centre in pixels; without it the whole frame is searched.
    mask : bool ndarray, optional
        True = pixel ignored.
    """
    from pyFAI.goniometer import SingleGeometry
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"calibration image: expected 2D (rows, cols); got shape {img.shape}")
    wavelength_m(energy_kev)  # a clear error if the energy is missing
    cal = get_calibrant(calibrant, energy_kev)
    det = make_detector(detector, pixel_size_um, img.shape)
    if detector and tuple(det.max_shape) != img.shape:
        raise InputError(f"detector {detector!r} has shape {tuple(det.max_shape)}; the image has "
                         f"{img.shape}")
    m = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != img.shape:
        raise InputError(f"mask: shape {m.shape} differs from the image's {img.shape}")
    if det.mask is not None:
        m = m | det.mask.astype(bool)
    m = m | ~np.isfinite(img) | (img < 0)

    centre = find_beam_centre(img, m, guess_centre_px)
    tth = np.array([t for t in cal.get_2th() if t is not None])
    pixel = float(det.pixel1)
    peaks = _detect_peaks(img, m, centre)
    d, n_match = guess_distance(peaks, tth, pixel,
                                guess_distance_mm * 1e-3 if guess_distance_mm else None)
    initial = {"centre_px": centre, "distance_mm": d * 1e3, "rings_matched": n_match}
    log.info("calibration first guess: centre %s px, distance %.2f mm", centre, d * 1e3)

    ai = AzimuthalIntegrator(dist=d, poni1=centre[1] * det.pixel1, poni2=centre[0] * det.pixel2,
                             detector=det, wavelength=wavelength_m(energy_kev))
    det.mask = m.astype(np.int8)
    n_rings_all = int(np.sum(np.unique(tth) < np.nanmax(ai.center_array(img.shape, unit="2th_rad"))))
    # (rings used, tilts refined): the first pass keeps the detector flat so few
    # rings cannot trade distance against tilt; later passes free the tilts
    schedule = ([(3, False), (3, True), (6, True), (10, True), (None, True)]
                if max_rings is None else [(min(3, max_rings), False), (max_rings, True)])
    work = np.where(m, 0, img)
    rms = np.nan
    cp = np.zeros((0, 3))
    for rings, tilts in schedule:
        sg = SingleGeometry("calib", work, calibrant=cal, detector=det, geometry=ai)
        sg.extract_cp(max_rings=rings if rings is None else min(rings, n_rings_all),
                      pts_per_deg=1.0)
        data = np.asarray(sg.geometry_refinement.data)
        if data.shape[0] < 6:
            raise ComputeError(f"calibration: only {data.shape[0]} control points found on the "
                               "rings; check calibrant, energy and pixel size (or give "
                               "--guess-distance)")
        gr = sg.geometry_refinement
        gr.refine3(fix=list(fix) if tilts else list(fix) + ["rot1", "rot2", "rot3"])
        ai = gr if isinstance(gr, AzimuthalIntegrator) else sg.get_ai()
        cp = data
        tth_calc = gr.tth(data[:, 0], data[:, 1])
        tth_ref = np.asarray(cal.get_2th())[data[:, 2].astype(int)]
        rms = float(np.degrees(np.sqrt(np.mean((tth_calc - tth_ref) ** 2))))
    ai = AzimuthalIntegrator(dist=gr.dist, poni1=gr.poni1, poni2=gr.poni2, rot1=gr.rot1,
                             rot2=gr.rot2, rot3=gr.rot3, detector=make_detector(detector,
                             pixel_size_um, img.shape), wavelength=gr.wavelength)
    px_deg = float(np.degrees(pixel / ai.dist))
    if not np.isfinite(rms) or rms > px_deg:
        warnings.warn(f"calibration: rms 2θ residual {rms:.3g}° exceeds one pixel ({px_deg:.3g}°); "
                      "the rings may be mis-assigned: check the figure, give --guess-distance",
                      MatterflowWarning, stacklevel=2)
    tilt_sd, corr = tilt_uncertainty(ai, cp, rms)
    tilt = max(abs(np.degrees(ai.rot1)), abs(np.degrees(ai.rot2)))
    if ("rot1" not in fix and "rot2" not in fix and np.nanmax(tilt_sd) > DEGENERATE_TILT_DEG
            and np.nanmax(tilt_sd) > 0.1 * tilt):
        warnings.warn(
            f"calibration: the geometry is degenerate: the tilts rot1, rot2 = "
            f"{np.degrees(ai.rot1):.3f}°, {np.degrees(ai.rot2):.3f}° are only known to "
            f"±{tilt_sd[0]:.2f}°, ±{tilt_sd[1]:.2f}° because tilt and beam centre compensate each "
            f"other on these rings (correlation {corr:.4f}); the centre is uncertain by as much. "
            "Use an image with rings at larger 2θ (shorter distance, higher-angle calibrant), "
            "or refine with the tilts fixed if the detector is known to be flat",
            MatterflowWarning, stacklevel=2)
    f2d = ai.getFit2D()
    return Calibration(ai=ai, poni=poni_text(ai), distance_mm=ai.dist * 1e3,
                       centre_px=(float(f2d["centerX"]), float(f2d["centerY"])),
                       rot_deg=tuple(float(np.degrees(v)) for v in (ai.rot1, ai.rot2, ai.rot3)),
                       control_points=cp, rms_tth_deg=rms, initial=initial)
