"""Tasks of the sem domain: simulate, train, load, upscale, evaluate, plan, register, track.

The same functions are the Python API and the workflow steps of ``matterflow sem`` and of
the demo ``sem.yaml``. Images are NumPy arrays in units of the mean SE count of a
signal-1 pixel (``dimensionless``); pixel sizes are in nm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

__all__ = ["simulate", "train_model", "load", "upscale", "evaluate", "plan", "register",
           "track", "TASKS"]

_NM = {"units": "nm"}
_US = {"units": "µs"}
_S = {"units": "s"}


# =========================================================================== simulate

class SimulateParams(Params):
    family: Literal["grains", "lamellar", "dual_phase"] = Field(
        "dual_phase", description="microstructure family")
    n_images: int = Field(4, ge=1, le=1000, description="images (each a 2-frame in-situ step)")
    size_px: int = Field(256, ge=64, le=4096, description="full-resolution image side (multiple of 16)")
    grain_px: float = Field(40.0, ge=8, le=1000, description="mean grain diameter, full-res pixels")
    event_density_per_mpx: float = Field(40.0, ge=0, le=10_000,
                                         description="mean rare events per megapixel")
    pixel_size_nm: float = Field(10.0, gt=0, description="full-resolution pixel size",
                                 json_schema_extra=_NM)
    fast_dwell_us: float = Field(0.5, gt=0, description="dwell per fast-scan pixel", json_schema_extra=_US)
    full_dwell_us: float = Field(2.0, gt=0, description="dwell per full-resolution pixel",
                                 json_schema_extra=_US)
    seed: int = Field(0, ge=0, description="random seed")


@dataclass(frozen=True)
class Simulated:
    fast: np.ndarray = quantity("dimensionless", "(n, h, w) fast ×4 scans")
    full: np.ndarray = quantity("dimensionless", "(n, H, W) full-resolution scans")
    clean: np.ndarray = quantity("dimensionless", "(n, H, W) noise-free images")
    reference: np.ndarray = quantity("dimensionless", "(n, H, W) full-res scans one step earlier")
    labels: np.ndarray = quantity("dimensionless", "(n, H, W) event labels")
    pixel_size_nm: float = quantity("nm", "full-resolution pixel size")


@task("sem.simulate", params=SimulateParams)
def simulate(*, params: SimulateParams) -> Simulated:
    """Synthetic fast/full SEM scan pairs of one microstructure family with planted rare events."""
    from matterflow.microscopy.sem.synthetic import synthetic_set

    if params.size_px % 16:
        raise InputError(f"sem.simulate params.size_px must be a multiple of 16; got {params.size_px}")
    s = synthetic_set([params.family], params.n_images, (params.size_px,) * 2, seed=params.seed,
                      structure={"grain_px": params.grain_px,
                                 "event_density_per_mpx": params.event_density_per_mpx},
                      fast_dwell_us=params.fast_dwell_us, full_dwell_us=params.full_dwell_us)
    return Simulated(np.stack(s.fast), np.stack(s.full), np.stack(s.clean), np.stack(s.reference),
                     np.stack(s.labels).astype(np.int32), params.pixel_size_nm)


# =========================================================================== train

class TrainParams(Params):
    kind: Literal["fast", "ref"] = Field("fast", description="single-image or reference-based model")
    steps: int = Field(1500, ge=1, le=1_000_000, description="optimiser steps")
    batch_size: int = Field(16, ge=1, le=1024, description="patches per step")
    channels: int = Field(32, ge=4, le=256, description="feature channels")
    layers: int = Field(4, ge=2, le=32, description="convolution layers of the body")
    learning_rate: float = Field(2e-3, gt=0, le=1, description="Adam step size")
    time_limit_s: float = Field(0.0, ge=0, description="stop after this wall time (0: none)",
                                json_schema_extra=_S)
    seed: int = Field(0, ge=0, description="random seed")


@dataclass(frozen=True)
class Trained:
    model: np.ndarray = quantity("bytes", "checkpoint (uint8 bytes of torch.save)")
    loss_history: np.ndarray = quantity("dimensionless", "(steps,) L1 loss")
    train_time_s: float = quantity("s", "training wall time")
    val_psnr_db: float = quantity("dB", "validation PSNR of the model (NaN: no validation set)")
    val_ssim: float = quantity("dimensionless", "validation SSIM of the model")
    val_bicubic_psnr_db: float = quantity("dB", "validation PSNR of bicubic upsampling")
    val_bicubic_ssim: float = quantity("dimensionless", "validation SSIM of bicubic upsampling")


def _scale_of(fast, clean, where: str) -> int:
    fs, cs = np.shape(fast)[-2:], np.shape(clean)[-2:]
    if len(fs) != 2 or cs[0] % fs[0] or cs[0] // fs[0] != cs[1] // max(1, fs[1]):
        raise InputError(f"{where}: the full-resolution images {tuple(cs)} must be an integer "
                         f"multiple of the fast scans {tuple(fs)} along both axes")
    return cs[0] // fs[0]


def _train_figures(outputs: dict, params: TrainParams) -> dict:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    h = np.asarray(outputs["loss_history"])
    ax.semilogy(h, lw=0.6, alpha=0.5)
    if len(h) > 20:
        k = max(5, len(h) // 50)
        ax.semilogy(np.arange(k - 1, len(h)), np.convolve(h, np.ones(k) / k, "valid"), lw=1.5)
    ax.set(xlabel="step", ylabel="L1 loss", title=f"sem.train ({params.kind})")
    fig.tight_layout()
    return {"Training loss": fig}


@task("sem.train", params=TrainParams, figures=_train_figures)
def train_model(fast: np.ndarray | Sequence[np.ndarray], clean: np.ndarray | Sequence[np.ndarray],
                labels: np.ndarray | Sequence[np.ndarray],
                reference: np.ndarray | Sequence[np.ndarray] | None = None,
                val_fast: np.ndarray | Sequence[np.ndarray] | None = None,
                val_clean: np.ndarray | Sequence[np.ndarray] | None = None,
                val_reference: np.ndarray | Sequence[np.ndarray] | None = None, *,
                params: TrainParams) -> Trained:
    """Train a ×s SR model (with its event-detection head) from scratch on fast/clean pairs."""
    from matterflow.microscopy.sem.models import TrainConfig, model_to_bytes, train

    scale = _scale_of(fast, clean, "sem.train inputs fast/clean")
    if params.kind == "ref" and reference is None:
        raise InputError("sem.train: kind 'ref' needs input 'reference' (full-resolution scans "
                         "of the same regions)")
    cfg = TrainConfig(kind=params.kind, scale=scale, steps=params.steps,
                      batch_size=params.batch_size, channels=params.channels, layers=params.layers,
                      learning_rate=params.learning_rate, seed=params.seed,
                      time_limit_s=params.time_limit_s)
    val = None
    if val_fast is not None and val_clean is not None:
        val = (list(val_fast), list(val_clean), None if val_reference is None else list(val_reference))
    model, info = train(list(fast), list(clean), list(labels),
                        refs=None if reference is None else list(reference), cfg=cfg,
                        validation=val)
    data = model_to_bytes(model, metadata={"params": params.model_dump()}, step=info["steps_done"],
                          history=info["loss_history"])
    v = info["validation"][-1] if info["validation"] else {}
    nan = float("nan")
    return Trained(np.frombuffer(data, np.uint8), np.asarray(info["loss_history"]),
                   info["train_time_s"], v.get("psnr_db", nan), v.get("ssim", nan),
                   v.get("bicubic_psnr_db", nan), v.get("bicubic_ssim", nan))


# =========================================================================== load

class LoadParams(Params):
    pixel_size_nm: float | None = Field(None, gt=0, description="pixel size, overrides the file's",
                                        json_schema_extra=_NM)
    need_pixel_size: bool = Field(False, description="fail if no pixel size is known")


@dataclass(frozen=True)
class Loaded:
    images: np.ndarray = quantity("dimensionless", "(n, h, w) images, scaled so the 99.5 % "
                                  "quantile is 0.8")
    pixel_size_nm: float = quantity("nm", "pixel size (NaN: unknown)")


@task("sem.load", params=LoadParams)
def load(path: Path, *, params: LoadParams) -> Loaded:
    """Read an SEM image (TIFF with FEI/Thermo or Zeiss pixel size, DM3/DM4, EMD, SER, MRC,
    PNG/JPEG, .npy: the shared :func:`matterflow.microscopy.imageio.read_micrograph`)."""
    from matterflow.microscopy.sem.io import read_image

    img, size = read_image(path, pixel_size_nm=params.pixel_size_nm,
                           need_pixel_size=params.need_pixel_size, stack=True)
    return Loaded(img, float("nan") if size is None else float(size))


# =========================================================================== upscale

class UpscaleParams(Params):
    tta: int = Field(8, ge=1, le=8, description="test-time augmentations (1: none)")
    scale: int = Field(0, ge=0, le=16, description="expected scale factor (0: the model's)")
    tile_lr: int = Field(256, ge=16, le=4096, description="tile side, low-resolution pixels")
    halo_lr: int = Field(8, ge=0, le=256, description="tile overlap, low-resolution pixels")


@dataclass(frozen=True)
class Upscaled:
    sr: np.ndarray = quantity("dimensionless", "(H, W) super-resolved image")
    spread: np.ndarray = quantity("dimensionless", "(H, W) TTA standard deviation")
    event_probability: np.ndarray = quantity("dimensionless", "(h, w) event probability")
    bicubic: np.ndarray = quantity("dimensionless", "(H, W) bicubic baseline")


def _upscale_figures(outputs: dict, params: UpscaleParams) -> dict:
    from matterflow.microscopy.sem.figures import comparison_figure

    sr, bic = np.asarray(outputs["sr"]), np.asarray(outputs["bicubic"])
    if sr.ndim == 3:
        sr, bic = sr[0], bic[0]
    return {"Bicubic | SR (zoom)": comparison_figure({"bicubic": bic, "SR": sr})}


def _check_reference(model, reference, pixel_size_nm, reference_pixel_size_nm):
    if model.kind != "ref":
        return None
    if reference is None:
        raise InputError("sem.upscale: the reference-based model needs input 'reference' "
                         "(a full-resolution scan of the same region, --reference)")
    ref = np.asarray(reference, np.float32)
    ref = ref[0] if ref.ndim == 3 else ref
    if pixel_size_nm is not None and reference_pixel_size_nm is not None:
        a, b = float(np.ravel(pixel_size_nm)[0]), float(np.ravel(reference_pixel_size_nm)[0])
        if np.isfinite(a) and np.isfinite(b) and abs(b - a / model.scale) > 1e-3 * a:
            raise InputError(f"sem.upscale: reference pixel size {b:g} nm must be the image's "
                             f"{a:g} nm / {model.scale} = {a / model.scale:g} nm")
    return ref


@task("sem.upscale", params=UpscaleParams, map_over="image", figures=_upscale_figures)
def upscale(image: np.ndarray, model: np.ndarray | bytes | str | Path, reference: np.ndarray | None = None,
            pixel_size_nm: float | np.ndarray | None = None,
            reference_pixel_size_nm: float | np.ndarray | None = None, *,
            params: UpscaleParams) -> Upscaled:
    """Super-resolve one fast scan (tiles on the executor) with TTA spread and event probability."""
    from matterflow.microscopy.sem.models import bicubic, model_from_bytes, tta_predict

    if isinstance(model, (str, Path)):
        if not Path(model).is_file():
            raise InputError(f"{model}: model file not found")
        data, source = Path(model).read_bytes(), str(model)
    else:
        data, source = np.asarray(model, np.uint8).tobytes(), "sem.upscale input 'model'"
    m, _, _, _ = model_from_bytes(data, source=source)
    if params.scale and params.scale != m.scale:
        raise InputError(f"sem.upscale: the model was trained for ×{m.scale}, not for the "
                         f"requested ×{params.scale} (params.scale)")
    img = np.asarray(image, np.float32)
    if img.ndim != 2:
        raise InputError(f"sem.upscale: input image must be one 2D image per item; got shape "
                         f"{img.shape}")
    ref = _check_reference(m, reference, pixel_size_nm, reference_pixel_size_nm)
    if ref is not None and ref.shape != (img.shape[0] * m.scale, img.shape[1] * m.scale):
        raise InputError(f"sem.upscale: reference shape {ref.shape} must be the image's "
                         f"{img.shape} × {m.scale}")
    sr, spread, prob = tta_predict(m, img, ref, n=params.tta, tile_lr=params.tile_lr,
                                   halo_lr=params.halo_lr, model_bytes=data)
    return Upscaled(sr, spread, prob, bicubic(img, m.scale))


# =========================================================================== evaluate

class EvaluateParams(Params):
    zoom_px: int = Field(64, ge=8, le=4096, description="side of the zoomed region, full-res pixels")


@dataclass(frozen=True)
class Evaluation:
    psnr_db: np.ndarray = quantity("dB", "(n,) PSNR of SR against the clean image")
    ssim: np.ndarray = quantity("dimensionless", "(n,) SSIM of SR")
    bicubic_psnr_db: np.ndarray = quantity("dB", "(n,) PSNR of bicubic")
    bicubic_ssim: np.ndarray = quantity("dimensionless", "(n,) SSIM of bicubic")
    lanczos_psnr_db: np.ndarray = quantity("dB", "(n,) PSNR of Lanczos-3")
    lanczos_ssim: np.ndarray = quantity("dimensionless", "(n,) SSIM of Lanczos-3")
    gain_db: float = quantity("dB", "mean PSNR gain of SR over bicubic")


def _evaluate_figures(outputs: dict, params: EvaluateParams) -> dict:
    from matterflow.microscopy.sem.figures import metrics_table_figure

    return {"PSNR / SSIM": metrics_table_figure(outputs)}


@task("sem.evaluate", params=EvaluateParams, figures=_evaluate_figures)
def evaluate(fast: np.ndarray, sr: np.ndarray, clean: np.ndarray, *, params: EvaluateParams) -> Evaluation:
    """PSNR/SSIM of SR, bicubic and Lanczos against the noise-free full-resolution images."""
    from matterflow.microscopy.sem.models import bicubic, lanczos, psnr, ssim

    fast, sr, clean = (np.asarray(a, np.float32) for a in (fast, sr, clean))
    if fast.ndim == 2:
        fast, sr, clean = fast[None], sr[None], clean[None]
    if sr.shape != clean.shape:
        raise InputError(f"sem.evaluate: sr {sr.shape} and clean {clean.shape} must have one shape")
    scale = _scale_of(fast, clean, "sem.evaluate inputs fast/clean")
    rows = []
    for lr, s, c in zip(fast, sr, clean, strict=True):
        b, lz = bicubic(lr, scale), lanczos(lr, scale)
        rows.append((psnr(s, c), ssim(s, c), psnr(b, c), ssim(b, c), psnr(lz, c), ssim(lz, c)))
    a = np.array(rows).T
    return Evaluation(*a, float(np.mean(a[0] - a[2])))


# =========================================================================== plan

class PlanParams(Params):
    tile_px: int = Field(16, ge=4, le=1024, description="rescan tile side, full-res pixels")
    area_fraction: float = Field(0.05, gt=0, le=1, description="largest rescanned area fraction")
    threshold: float = Field(0.02, ge=0, le=1, description="smallest tile score rescanned")
    uncertainty_weight: float = Field(0.3, ge=0, description="weight of the TTA spread")
    pixel_size_nm: float = Field(10.0, gt=0, description="full-res pixel size", json_schema_extra=_NM)
    fast_dwell_us: float = Field(0.5, gt=0, description="fast-scan dwell", json_schema_extra=_US)
    full_dwell_us: float = Field(2.0, gt=0, description="full-res dwell", json_schema_extra=_US)
    settle_us: float = Field(200.0, ge=0, description="settling time per rescanned tile",
                             json_schema_extra=_US)
    line_overhead_us: float = Field(5.0, ge=0, description="flyback time per scan line",
                                    json_schema_extra=_US)


@dataclass(frozen=True)
class Plan:
    tiles: np.ndarray = quantity("dimensionless", "(m, 3) image, tile row, tile col, in visiting order")
    n_tiles: np.ndarray = quantity("dimensionless", "(n,) rescanned tiles per image")
    area_fraction: np.ndarray = quantity("dimensionless", "(n,) rescanned fraction of each image")
    found: np.ndarray = quantity("dimensionless", "(n,) events rescanned (>= 50 % of their pixels)")
    planted: np.ndarray = quantity("dimensionless", "(n,) planted events (0 without labels)")
    speedup: np.ndarray = quantity("dimensionless", "(n,) full-res time / (fast + rescans + overheads)")
    full_time_s: np.ndarray = quantity("s", "(n,) time of a full-resolution scan")
    planned_time_s: np.ndarray = quantity("s", "(n,) fast scan + rescans + overheads")
    recall: float = quantity("dimensionless", "found / planted over all images (NaN: no labels)")
    curve_area_fraction: np.ndarray = quantity("dimensionless", "(k,) area budgets of the curve")
    curve_recall: np.ndarray = quantity("dimensionless", "(k,) recall at each budget")
    curve_speedup: np.ndarray = quantity("dimensionless", "(k,) mean speed-up at each budget")
    merged: np.ndarray = quantity("dimensionless", "(n, H, W) SR with the rescanned tiles pasted "
                                  "in (SR alone without full)")


def _plan_figures(outputs: dict, params: PlanParams) -> dict:
    from matterflow.microscopy.sem.figures import plan_figure, speedup_recall_figure

    figs = {"Planned rescan tiles": plan_figure(outputs, params.tile_px)}
    if np.isfinite(np.asarray(outputs["curve_recall"], float)).all():
        figs["Speed-up against recall"] = speedup_recall_figure(outputs)
    return figs


@task("sem.plan", params=PlanParams, figures=_plan_figures)
def plan(event_probability: np.ndarray, spread: np.ndarray, sr: np.ndarray, full: np.ndarray | None = None,
         labels: np.ndarray | None = None, *, params: PlanParams) -> Plan:
    """Plan full-resolution rescan tiles per image (short stage path), recall and speed-up."""
    from matterflow.microscopy.sem import planning as pl

    prob, spr, img = (np.asarray(a, np.float32) for a in (event_probability, spread, sr))
    if prob.ndim == 2:
        prob, spr, img = prob[None], spr[None], img[None]
    n = len(img)
    fl = None if full is None else np.asarray(full, np.float32).reshape(img.shape)
    lab = None if labels is None else np.asarray(labels).reshape(img.shape)
    if img.shape[1] % prob.shape[1]:
        raise InputError(f"sem.plan: sr {img.shape[1:]} must be an integer multiple of "
                         f"event_probability {prob.shape[1:]}")
    scale = img.shape[1] // prob.shape[1]
    if params.tile_px % scale:
        raise InputError(f"sem.plan params.tile_px must be a multiple of the scale {scale}; "
                         f"got {params.tile_px}")
    timing = {k: getattr(params, k) for k in ("pixel_size_nm", "fast_dwell_us", "full_dwell_us",
                                              "settle_us", "line_overhead_us")}
    scores = [pl.tile_scores(prob[i], spr[i], scale=scale, tile_px=params.tile_px,
                             uncertainty_weight=params.uncertainty_weight) for i in range(n)]
    rows, all_tiles, merged = [], [], []
    for i in range(n):
        tiles = pl.choose_tiles(scores[i], area_fraction=params.area_fraction,
                                threshold=params.threshold)
        tiles = tiles[pl.stage_path(tiles)]
        found, planted = pl.recall(lab[i], tiles, params.tile_px) if lab is not None else (0, 0)
        t = pl.acquisition_time(img.shape[1:], scale=scale, n_tiles=len(tiles),
                                tile_px=params.tile_px, path_px=pl.path_length(tiles, params.tile_px),
                                **timing)
        rows.append((len(tiles), len(tiles) / scores[i].size, found, planted, t["speedup"],
                     t["full_s"], t["full_s"] / t["speedup"]))
        all_tiles += [(i, r, c) for r, c in tiles]
        merged.append(img[i] if fl is None else pl.merge(img[i], fl[i], tiles, params.tile_px))
    cols = [np.array(c) for c in zip(*rows, strict=True)]
    budgets = np.array([0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2])
    c_rec, c_sp = [], []
    for a in budgets:
        f_p = np.zeros(2)
        sp = []
        for i in range(n):
            tiles = pl.choose_tiles(scores[i], area_fraction=a, threshold=0.0)
            if lab is not None:
                f_p += pl.recall(lab[i], tiles, params.tile_px)
            sp.append(pl.acquisition_time(img.shape[1:], scale=scale, n_tiles=len(tiles),
                                          tile_px=params.tile_px,
                                          path_px=pl.path_length(tiles[pl.stage_path(tiles)],
                                                                 params.tile_px),
                                          **timing)["speedup"])
        c_rec.append(f_p[0] / f_p[1] if f_p[1] else np.nan)
        c_sp.append(float(np.mean(sp)))
    recall = float(cols[2].sum() / cols[3].sum()) if lab is not None and cols[3].sum() else np.nan
    return Plan(np.array(all_tiles, np.int64).reshape(-1, 3), *cols, recall, budgets,
                np.array(c_rec), np.array(c_sp), np.stack(merged))


# =========================================================================== series

class RegisterParams(Params):
    upsample: int = Field(10, ge=1, le=100, description="sub-pixel precision 1/upsample of the shifts")


@dataclass(frozen=True)
class Registered:
    shifts_px: np.ndarray = quantity("px", "(n, 2) (row, col) shift of each frame from frame 0, "
                                     "low-resolution pixels")


@task("sem.register", params=RegisterParams)
def register(images: np.ndarray, *, params: RegisterParams) -> Registered:
    """Drift between consecutive frames (phase correlation), accumulated from the first frame."""
    from skimage.registration import phase_cross_correlation

    frames = np.asarray(images, np.float32)
    if frames.ndim != 3 or len(frames) < 1:
        raise InputError(f"sem.register: images must be (n, h, w) with n >= 1; got {frames.shape}")
    shifts = [np.zeros(2)]
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        s, _, _ = phase_cross_correlation(a, b, upsample_factor=params.upsample)
        shifts.append(shifts[-1] - s)  # how far the content moved from a to b
    return Registered(np.array(shifts))


class TrackParams(Params):
    threshold: float = Field(0.5, gt=0, lt=1, description="event probability of a detection")
    max_distance_px: float = Field(4.0, gt=0, description="largest jump of a track between frames "
                                   "after drift correction, low-resolution pixels")
    min_area_px: int = Field(1, ge=1, description="smallest detection, low-resolution pixels")


@dataclass(frozen=True)
class Tracks:
    positions_px: np.ndarray = quantity("px", "(k, n, 2) (row, col) of each track in each frame, "
                                        "low-resolution pixels of that frame (NaN: not seen)")
    areas_px: np.ndarray = quantity("px^2", "(k, n) area of each tracked detection (0: not seen)")


def _track_figures(outputs: dict, params: TrackParams) -> dict:
    import matplotlib.pyplot as plt

    a = np.asarray(outputs["areas_px"], float)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for row in a:
        ax.plot(np.where(row > 0, row, np.nan), marker="o", lw=1)
    ax.set(xlabel="frame", ylabel="area (low-res px²)", title=f"{len(a)} tracked features")
    fig.tight_layout()
    return {"Tracked features": fig}


@task("sem.track", params=TrackParams, figures=_track_figures)
def track(event_probability: np.ndarray, shifts_px: np.ndarray, *, params: TrackParams) -> Tracks:
    """Detections (thresholded event probability) linked frame to frame after drift correction."""
    from scipy import ndimage
    from scipy.optimize import linear_sum_assignment

    prob = np.asarray(event_probability, np.float32)
    shifts = np.asarray(shifts_px, float)
    if prob.ndim != 3 or shifts.shape != (len(prob), 2):
        raise InputError(f"sem.track: event_probability (n, h, w) and shifts_px (n, 2) must agree; "
                         f"got {prob.shape} and {shifts.shape}")
    dets = []
    for p in prob:
        lab, k = ndimage.label(p >= params.threshold)
        idx = np.arange(1, k + 1)
        areas = ndimage.sum_labels(np.ones_like(p), lab, idx) if k else np.zeros(0)
        cen = np.array(ndimage.center_of_mass(p, lab, idx)).reshape(-1, 2) if k else np.zeros((0, 2))
        keep = areas >= params.min_area_px
        dets.append((cen[keep], areas[keep]))
    n = len(prob)
    tracks: list[dict] = []
    for t, (cen, area) in enumerate(dets):
        open_ = [tr for tr in tracks if t - 1 in tr]
        used = set()
        if open_ and len(cen):
            prev = np.array([tr[t - 1][0] - shifts[t - 1] for tr in open_])
            d = np.linalg.norm(prev[:, None] - (cen - shifts[t])[None], axis=2)
            r, c = linear_sum_assignment(d)
            for i, j in zip(r, c, strict=True):
                if d[i, j] <= params.max_distance_px:
                    open_[i][t] = (cen[j], area[j])
                    used.add(j)
        for j in range(len(cen)):
            if j not in used:
                tracks.append({t: (cen[j], area[j])})
    pos = np.full((len(tracks), n, 2), np.nan)
    areas = np.zeros((len(tracks), n))
    for k, tr in enumerate(tracks):
        for t, (c, a) in tr.items():
            pos[k, t], areas[k, t] = c, a
    return Tracks(pos, areas)


TASKS = [simulate, train_model, load, upscale, evaluate, plan, register, track]
