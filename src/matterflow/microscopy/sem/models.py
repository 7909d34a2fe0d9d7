"""×4 super-resolution networks for SEM, trained from scratch, and the interpolation baselines.

- :class:`FastSR` (ESPCN-like): every convolution runs on the low-resolution
  grid; one PixelShuffle(×scale) makes the residual added to the bicubic
  upsampling of the input. A separate small network at low resolution (on the scan
  and its local contrast) gives the logit of a rare event (inclusion, precipitate, void, crack) under each
  low-resolution pixel — the learned point-of-interest detector.
- :class:`RefSR` (TTSR's texture transfer, at low resolution): the reference is
  first aligned to the fast scan (phase correlation, :func:`align_reference`); a
  small feature extractor (trained here, no VGG) embeds the fast scan and the
  downsampled reference; soft attention over the reference positions transfers
  the reference's high-frequency detail (space-to-depth of ``ref - up(down(ref))``,
  ``scale²`` values per low-resolution pixel) and the attention confidence into the
  same body, beside the aligned detail right under each pixel (the body learns
  where the two frames disagree: grown cracks, moved features).

Checkpoints (:func:`save_checkpoint`) are a ``torch.save`` dict of tensors and a
JSON metadata string, read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from matterflow.core.errors import InputError
from matterflow.core.safeload import load_torch, not_readable

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence

__all__ = ["FastSR", "RefSR", "build_model", "bicubic", "lanczos", "psnr", "ssim",
           "TrainConfig", "train", "validate", "predict", "align_reference", "predict_tiled", "tta_predict",
           "save_checkpoint", "load_checkpoint", "model_to_bytes", "model_from_bytes"]


class FastSR(nn.Module):
    """Single-image ×scale SR: low-resolution body, one PixelShuffle, bicubic skip."""

    kind = "fast"

    def __init__(self, scale: int = 4, channels: int = 32, layers: int = 4):
        super().__init__()
        self.scale, self.channels, self.layers = scale, channels, layers
        self.head = nn.Conv2d(1, channels, 5, padding=2)
        self.body = nn.Sequential(*[m for _ in range(layers - 1) for m in
                                    (nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels))])
        self.up = nn.Conv2d(channels, scale * scale, 3, padding=1)
        d = 24  # the event detector: its own small network at low resolution
        self.det = nn.Sequential(nn.Conv2d(2, d, 5, padding=2), nn.PReLU(d),
                                 nn.Conv2d(d, d, 3, padding=1), nn.PReLU(d),
                                 nn.Conv2d(d, d, 3, padding=2, dilation=2), nn.PReLU(d),
                                 nn.Conv2d(d, 1, 1))
        self.shuffle = nn.PixelShuffle(scale)

    def features(self, lr: torch.Tensor) -> torch.Tensor:
        return self.body(F.prelu(self.head(lr), torch.tensor([0.1])))

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """lr: (B, 1, h, w) → (sr (B, 1, h·s, w·s), event logit (B, 1, h, w))."""
        f = self.features(lr)
        return self._out(lr, f)

    with_detection = True
    """False: the event head is skipped (logit of zeros), for SR-only inference."""

    def _out(self, lr, f):
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        if self.with_detection:  # input: the scan and its local contrast (9 × 9 mean removed)
            local = lr - F.avg_pool2d(F.pad(lr, (4, 4, 4, 4), mode="replicate"), 9, stride=1)
            det = self.det(torch.cat([lr, local], 1))
        else:
            det = f.new_zeros((f.shape[0], 1, *f.shape[2:]))
        return base + self.shuffle(self.up(f)), det

    def settings(self) -> dict:
        return {"kind": self.kind, "scale": self.scale, "channels": self.channels,
                "layers": self.layers}


class RefSR(FastSR):
    """Reference-based ×scale SR: soft texture transfer from a full-resolution reference."""

    kind = "ref"

    def __init__(self, scale: int = 4, channels: int = 32, layers: int = 4, embed: int = 16,
                 window: int = 5):
        super().__init__(scale, channels, layers)
        self.embed, self.window = embed, window
        self.extract = nn.Sequential(nn.Conv2d(1, embed, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(embed, embed, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(embed, embed, 3, padding=1))
        self.temperature = nn.Parameter(torch.tensor(10.0))
        self.fuse = nn.Conv2d(channels + 2 * scale * scale + 1, channels, 3, padding=1)

    def _crop(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """The part of ``ref`` over ``lr``'s region (the reference may carry a margin)."""
        s = self.scale
        h, w = lr.shape[-2:]
        mr, mc = (ref.shape[-2] - h * s) // 2, (ref.shape[-1] - w * s) // 2
        return ref[..., mr:mr + h * s, mc:mc + w * s]

    def transfer(self, lr: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Texture (B, s², h, w) and confidence (B, 1, h, w) taken from ``ref``.

        Soft attention of each low-resolution pixel over the ``window`` × ``window``
        neighbourhood of the (aligned) reference, in the learned feature space; the values
        are the reference's detail ``ref - up(down(ref))`` as s² channels per pixel.
        """
        s, kk = self.scale, self.window
        r = self._crop(lr, ref)
        ref_lr = F.avg_pool2d(r, s)
        detail = r - F.interpolate(ref_lr, scale_factor=s, mode="bicubic", align_corners=False)
        v = F.pixel_unshuffle(detail, s)  # (B, s², h, w)
        b, _, h, w = lr.shape
        q = F.normalize(self.extract(lr), dim=1).flatten(2)  # (B, C, hw)
        k = F.unfold(F.normalize(self.extract(ref_lr), dim=1), kk, padding=kk // 2)
        k = k.view(b, self.embed, kk * kk, h * w)
        sim = torch.einsum("bcq,bckq->bkq", q, k)  # (B, K², hw)
        att = torch.softmax(self.temperature * sim, dim=1)
        vu = F.unfold(v, kk, padding=kk // 2).view(b, s * s, kk * kk, h * w)
        t = torch.einsum("bkq,bvkq->bvq", att, vu).view(b, s * s, h, w)
        c = sim.max(dim=1).values.view(b, 1, h, w)
        return t, c

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if ref is None:
            raise InputError("the reference-based model needs a reference image (--reference)")
        f = self.features(lr)
        t, c = self.transfer(lr, ref)
        f = f + self.fuse(torch.cat([f, t, c, self.direct(lr, ref)], 1))
        return self._out(lr, f)

    def direct(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """The detail of the (aligned) reference right under each low-resolution pixel,
        (B, s², h, w)."""
        s = self.scale
        r = self._crop(lr, ref)
        detail = r - F.interpolate(F.avg_pool2d(r, s), scale_factor=s, mode="bicubic",
                                   align_corners=False)
        return F.pixel_unshuffle(detail, s)

    def settings(self) -> dict:
        return {**super().settings(), "embed": self.embed, "window": self.window}


def build_model(settings: dict) -> FastSR:
    kw = {k: v for k, v in settings.items() if k != "kind"}
    return (RefSR if settings.get("kind") == "ref" else FastSR)(**kw)


def align_reference(lr: np.ndarray, ref: np.ndarray, scale: int) -> np.ndarray:
    """``ref`` (full resolution) shifted onto the grid of ``lr`` (×``scale`` coarser): the
    shift is the phase correlation of the box-downsampled reference against ``lr``
    (1/10 low-resolution pixel), applied with linear interpolation (edges reflected).
    The texture search of :class:`RefSR` then needs to look only nearby."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    ref = np.asarray(ref, np.float32)
    h, w = ref.shape[0] // scale * scale, ref.shape[1] // scale * scale
    small = ref[:h, :w].reshape(h // scale, scale, w // scale, scale).mean(axis=(1, 3))
    a = np.asarray(lr, np.float32)
    n0, n1 = min(a.shape[0], small.shape[0]), min(a.shape[1], small.shape[1])
    shift, _, _ = phase_cross_correlation(a[:n0, :n1], small[:n0, :n1], upsample_factor=10)
    return ndimage.shift(ref, np.asarray(shift) * scale, order=1, mode="reflect").astype(np.float32)


# --------------------------------------------------------------------------- baselines, metrics

def bicubic(lr: np.ndarray, scale: int = 4) -> np.ndarray:
    """Bicubic upsampling (torch, a = -0.75), (h, w) → (h·s, w·s)."""
    t = torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None, None]
    with torch.no_grad():
        return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0].numpy()


def lanczos(lr: np.ndarray, scale: int = 4) -> np.ndarray:
    """Lanczos-3 upsampling (separable, reflected edges), (h, w) → (h·s, w·s)."""
    def kernel(n_in):
        x = (np.arange(n_in * scale) + 0.5) / scale - 0.5
        j = np.arange(n_in)
        d = x[:, None] - j[None, :]
        k = np.sinc(d) * np.sinc(d / 3) * (np.abs(d) < 3)
        return k / k.sum(1, keepdims=True)
    a = np.asarray(lr, np.float64)
    return (kernel(a.shape[0]) @ a @ kernel(a.shape[1]).T).astype(np.float32)


def psnr(x: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """PSNR in dB against ``ref``; the data range defaults to ref's max - min."""
    rng = float(np.ptp(ref)) if data_range is None else data_range
    mse = float(np.mean((np.asarray(x, np.float64) - ref) ** 2))
    return float(10 * np.log10(rng ** 2 / max(mse, 1e-20)))


def ssim(x: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """SSIM (scikit-image, Gaussian window as in Wang et al. 2004)."""
    from skimage.metrics import structural_similarity

    rng = float(np.ptp(ref)) if data_range is None else data_range
    return float(structural_similarity(np.asarray(x, np.float64), np.asarray(ref, np.float64),
                                       data_range=rng, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


# --------------------------------------------------------------------------- training

@dataclass
class TrainConfig:
    """Training settings (patch sizes in low-resolution pixels)."""

    kind: str = "fast"
    scale: int = 4
    channels: int = 32
    layers: int = 4
    steps: int = 600
    batch_size: int = 16
    patch_lr: int = 24
    ref_margin_lr: int = 6
    learning_rate: float = 2e-3
    det_weight: float = 0.5
    event_patch_fraction: float = 0.5
    pos_weight: float = 3.0
    seed: int = 0
    threads: int = 1
    time_limit_s: float = 0.0
    val_every: int = 0
    extra: dict = field(default_factory=dict)


def _norm(images):
    return [np.asarray(a, np.float32) for a in images]


def _event_pixels(labels, scale):
    """Low-resolution (row, col) of the pixels over a planted event, per image."""
    out = []
    for lab in labels:
        lab = np.asarray(lab)
        h, w = lab.shape[0] // scale, lab.shape[1] // scale
        det = (lab[:h * scale, :w * scale] > 0).reshape(h, scale, w, scale).any(axis=(1, 3))
        out.append(np.argwhere(det))
    return out


def _batch(rng, fast, clean, labels, refs, cfg: TrainConfig, events=None):
    """A batch of patches; a share ``cfg.event_patch_fraction`` holds a planted event, so the
    detection head sees enough rare events."""
    s, p = cfg.scale, cfg.patch_lr
    lrs, hrs, dets, rfs = [], [], [], []
    m = cfg.ref_margin_lr
    for _ in range(cfg.batch_size):
        i = rng.integers(len(fast))
        h, w = fast[i].shape
        lo_r, hi_r = (m, h - p - m) if h - p - 2 * m > 0 else (0, 0)
        lo_c, hi_c = (m, w - p - m) if w - p - 2 * m > 0 else (0, 0)
        r = rng.integers(lo_r, hi_r + 1)
        c = rng.integers(lo_c, hi_c + 1)
        if events is not None and len(events[i]) and rng.uniform() < cfg.event_patch_fraction:
            er, ec = events[i][rng.integers(len(events[i]))]
            r = int(np.clip(er - rng.integers(p), lo_r, hi_r))
            c = int(np.clip(ec - rng.integers(p), lo_c, hi_c))
        lr = fast[i][r:r + p, c:c + p]
        hr = clean[i][r * s:(r + p) * s, c * s:(c + p) * s]
        lab = labels[i][r * s:(r + p) * s, c * s:(c + p) * s] > 0
        det = lab.reshape(p, s, p, s).any(axis=(1, 3))
        k = rng.integers(8)  # dihedral augmentation
        items = [lr, hr, det]
        if refs is not None:
            r0, c0 = max(0, r - m), max(0, c - m)
            items.append(refs[i][r0 * s:(r0 + p + 2 * m) * s, c0 * s:(c0 + p + 2 * m) * s])
        items = [np.rot90(a, k % 4) for a in items]
        if k >= 4:
            items = [a[:, ::-1] for a in items]
        lrs.append(items[0])
        hrs.append(items[1])
        dets.append(items[2])
        if refs is not None:
            rfs.append(items[3])
    t = lambda xs: torch.from_numpy(np.ascontiguousarray(np.stack(xs), np.float32))[:, None]  # noqa: E731
    return t(lrs), t(hrs), t(dets), (t(rfs) if refs is not None else None)


def validate(model: FastSR, fast: Sequence[np.ndarray], clean: Sequence[np.ndarray],
             refs: Sequence[np.ndarray] | None = None) -> dict:
    """Mean PSNR (dB) and SSIM of the model and of bicubic on validation images."""
    rows = []
    for i, lr in enumerate(fast):
        ref = None if refs is None or model.kind != "ref" else refs[i]
        sr, _ = predict_tiled(model, lr, ref)
        b = bicubic(lr, model.scale)
        rows.append((psnr(sr, clean[i]), ssim(sr, clean[i]), psnr(b, clean[i]), ssim(b, clean[i])))
    m = np.mean(rows, axis=0)
    return {"psnr_db": float(m[0]), "ssim": float(m[1]), "bicubic_psnr_db": float(m[2]),
            "bicubic_ssim": float(m[3])}


def train(fast: Sequence[np.ndarray], clean: Sequence[np.ndarray], labels: Sequence[np.ndarray], *,
          refs: Sequence[np.ndarray] | None = None, cfg: TrainConfig, model: FastSR | None = None,
          optimizer_state: dict | None = None, start_step: int = 0,
          history: Sequence[float] | None = None,
          checkpoint: Callable[[FastSR, torch.optim.Optimizer, int, list[float]], None] | None = None,
          checkpoint_every: int = 0, progress: Callable[[int, int, float], None] | None = None,
          validation: tuple[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[np.ndarray] | None]
          | None = None) -> tuple[FastSR, dict]:
    """Train (or resume training of) a model on fast scans and clean full-resolution images.

    fast : list of (h, w) fast scans; clean : list of (h·s, w·s) targets; labels : list of
    (h·s, w·s) event label masks; refs : list of full-resolution reference images of the same
    regions (``kind="ref"``). Returns ``(model, info)`` with the loss history and timing.
    ``checkpoint(model, opt, step, history)`` is called every ``checkpoint_every`` steps.
    ``validation``: ``(fast, clean, refs)`` of held-out images, scored by :func:`validate`
    every ``cfg.val_every`` steps and at the end (``info["validation"]``: one dict per check).
    """
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    fast, clean, labels = _norm(fast), _norm(clean), list(labels)
    refs = _norm(refs) if refs is not None else None
    if cfg.kind == "ref" and refs is None:
        raise InputError("a reference-based model needs reference images to train on")
    if cfg.kind == "ref":
        refs = [align_reference(f, r, cfg.scale) for f, r in zip(fast, refs, strict=True)]
    model = model or build_model({"kind": cfg.kind, "scale": cfg.scale, "channels": cfg.channels,
                                  "layers": cfg.layers})
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    if optimizer_state:
        opt.load_state_dict(optimizer_state)
    rng = np.random.default_rng(cfg.seed + 7919 * start_step)
    history = list(history or [])
    pos_weight = torch.tensor(cfg.pos_weight)
    events = _event_pixels(labels, cfg.scale)
    t0 = time.perf_counter()
    model.train()
    step = start_step
    checks = []

    def check(k):
        if validation is not None:
            model.eval()
            checks.append({"step": k, **validate(model, *validation)})
            model.train()

    for step in range(start_step, cfg.steps):
        lr, hr, det, rf = _batch(rng, fast, clean, labels, refs if cfg.kind == "ref" else None, cfg,
                                 events)
        sr, logit = model(lr, rf)
        loss_sr = F.l1_loss(sr, hr)
        loss_det = F.binary_cross_entropy_with_logits(logit, det, pos_weight=pos_weight)
        loss = loss_sr + cfg.det_weight * loss_det
        # cosine decay over the steps, or over the time limit if that comes first
        frac = (step + 1) / max(1, cfg.steps)
        if cfg.time_limit_s:
            frac = max(frac, (time.perf_counter() - t0) / cfg.time_limit_s)
        for g in opt.param_groups:
            g["lr"] = float(cfg.learning_rate * 0.5 * (1 + np.cos(np.pi * min(1.0, frac))))
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss_sr.detach()))
        if progress:
            progress(step + 1, cfg.steps, history[-1])
        if cfg.val_every and (step + 1) % cfg.val_every == 0 and step + 1 < cfg.steps:
            check(step + 1)
        if checkpoint and checkpoint_every and (step + 1) % checkpoint_every == 0:
            checkpoint(model, opt, step + 1, history)
        if cfg.time_limit_s and time.perf_counter() - t0 > cfg.time_limit_s:
            step += 1
            break
    else:
        step = cfg.steps
    train_time = time.perf_counter() - t0
    check(step)
    model.eval()
    return model, {"loss_history": history, "train_time_s": train_time,
                   "steps_done": step, "optimizer": opt.state_dict(), "validation": checks}


# --------------------------------------------------------------------------- inference

def _tensor(a):
    return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]


def predict(model: FastSR, lr: np.ndarray, ref: np.ndarray | None = None, *,
            detect: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(sr (H, W), event probability (h, w)) for one low-resolution image."""
    with torch.no_grad():
        model.with_detection = detect
        try:
            sr, logit = model(_tensor(lr), None if ref is None else _tensor(ref))
        finally:
            model.with_detection = True
    return sr[0, 0].numpy(), torch.sigmoid(logit)[0, 0].numpy()


_MODELS: dict = {}


def _predict_bytes(model_bytes: bytes, lr: np.ndarray, ref: np.ndarray | None):
    """:func:`predict` with the model given as checkpoint bytes (cached per process), so tile
    calls can go to the executor's workers."""
    import hashlib

    key = hashlib.sha1(model_bytes).hexdigest()
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = model_from_bytes(model_bytes)[0]
    return predict(_MODELS[key], lr, ref)


def predict_tiled(model: FastSR, lr: np.ndarray, ref: np.ndarray | None = None, *,
                  tile_lr: int = 256, halo_lr: int = 8, model_bytes: bytes | None = None,
                  detect: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predict` tile by tile with a halo, so memory stays bounded for large mosaics.

    For the reference-based model the reference (same pixel grid as the output) is cropped
    around each tile with the halo, so the texture search is local. With ``model_bytes``
    (the model's checkpoint) the tiles go through :func:`matterflow.core.execute.map_calls`:
    on the executor's workers inside a run, one after another elsewhere.
    """
    s = model.scale
    h, w = lr.shape
    if ref is not None and model.kind == "ref":
        ref = align_reference(lr, ref, s)
    boxes, calls = [], []
    for r in range(0, h, tile_lr):
        for c in range(0, w, tile_lr):
            r0, c0 = max(0, r - halo_lr), max(0, c - halo_lr)
            r1, c1 = min(h, r + tile_lr + halo_lr), min(w, c + tile_lr + halo_lr)
            rf = None if ref is None else np.ascontiguousarray(ref[r0 * s:r1 * s, c0 * s:c1 * s])
            boxes.append((r, c, r0, c0, min(h, r + tile_lr), min(w, c + tile_lr)))
            calls.append((np.ascontiguousarray(lr[r0:r1, c0:c1]), rf))
    if model_bytes is not None and len(calls) > 1:
        from matterflow.core.execute import map_calls

        outs = map_calls(_predict_bytes, [(model_bytes, a, b) for a, b in calls])
    else:
        outs = [predict(model, a, b, detect=detect) for a, b in calls]
    sr = np.empty((h * s, w * s), np.float32)
    prob = np.empty((h, w), np.float32)
    for (r, c, r0, c0, rr, cc), (out, p) in zip(boxes, outs, strict=True):
        sr[r * s:rr * s, c * s:cc * s] = out[(r - r0) * s:(rr - r0) * s, (c - c0) * s:(cc - c0) * s]
        prob[r:rr, c:cc] = p[r - r0:rr - r0, c - c0:cc - c0]
    return sr, prob


def tta_predict(model: FastSR, lr: np.ndarray, ref: np.ndarray | None = None, n: int = 8, *,
                tile_lr: int = 256, halo_lr: int = 8,
                model_bytes: bytes | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean SR, per-pixel std over ``n`` dihedral test-time augmentations, mean event probability."""
    srs, probs = [], []
    for k in range(n):
        def fwd(a, k=k):
            a = np.rot90(a, k % 4)
            return a[:, ::-1] if k >= 4 else a

        def inv(a, k=k):
            a = a[:, ::-1] if k >= 4 else a
            return np.rot90(a, -(k % 4))
        sr, p = predict_tiled(model, fwd(lr), None if ref is None else fwd(ref), tile_lr=tile_lr,
                              halo_lr=halo_lr, model_bytes=model_bytes)
        srs.append(inv(sr))
        probs.append(inv(p))
    srs = np.stack(srs)
    return srs.mean(0), srs.std(0), np.mean(probs, 0)


# --------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: str | os.PathLike[str], model: FastSR, *, metadata: dict | None = None,
                    optimizer: dict | None = None, step: int = 0,
                    history: Sequence[float] | None = None) -> None:
    """Write state dict + JSON metadata (+ optimizer state for resuming) atomically."""
    from matterflow.core.store import atomic_write_bytes

    atomic_write_bytes(path, model_to_bytes(model, metadata=metadata, optimizer=optimizer,
                                            step=step, history=history))


def model_to_bytes(model: FastSR, *, metadata: dict | None = None, optimizer: dict | None = None,
                   step: int = 0, history: Sequence[float] | None = None) -> bytes:
    meta = {"settings": model.settings(), "step": int(step), **(metadata or {})}
    obj = {"state_dict": model.state_dict(), "metadata_json": json.dumps(meta, default=str),
           "history": torch.tensor(list(history or []), dtype=torch.float32)}
    if optimizer is not None:
        obj["optimizer"] = optimizer
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def model_from_bytes(data: bytes, *, source: str = "model") -> tuple[FastSR, dict, dict | None, list[float]]:
    """(model, metadata, optimizer state or None, loss history) from checkpoint bytes."""
    what = "a matterflow sem model checkpoint"
    obj = load_torch(bytes(data), source=source, what=what)
    try:
        meta = json.loads(obj["metadata_json"])
        model = build_model(meta["settings"])
        model.load_state_dict(obj["state_dict"])
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a missing key, a wrong shape: a foreign file
        raise not_readable(source, what, exc) from None
    model.eval()
    return model, meta, obj.get("optimizer"), obj["history"].tolist()


def load_checkpoint(path: str | os.PathLike[str], *,
                    source: str | None = None) -> tuple[FastSR, dict, dict | None, list[float]]:
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: model file not found")
    return model_from_bytes(p.read_bytes(), source=source or str(p))
