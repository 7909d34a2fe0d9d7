"""The detector: a torchvision Faster R-CNN on polar (|q|, χ) images, trained from scratch.

A small convolutional body with torchvision's FPN and no pretrained weights (nothing is
downloaded). The default (``arch`` 2) samples |q| four times finer than χ inside the network,
because GIXD features are narrow along |q| (boxes 1.4-5 px wide) and long along χ (arcs, rings
spanning the whole χ range); its anchors were chosen on the label statistics
(:data:`ANCHORS_V2`). ``arch`` 1 is the first, isotropic model (strides
4-32 both ways, sqrt-area anchor sizes 4-32 px, aspect ratios h/w 1-32), kept so that older
model files load. Checkpoints are a state dict plus JSON metadata, read with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import math
import time
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.core.safeload import load_torch, not_readable

__all__ = ["build_model", "prepare", "train_model", "save_checkpoint", "load_checkpoint",
           "predict"]


def prepare(polar: np.ndarray) -> np.ndarray:
    """Network input of a polar image: log(1 + counts) scaled by its 99.5th percentile."""
    x = np.log1p(np.clip(np.asarray(polar, np.float32), 0, None))
    top = float(np.percentile(x, 99.5)) or 1.0
    return np.clip(x / top, 0, 1.5).astype(np.float32)


#: anchors of the anisotropic model (arch 2), per FPN level: sqrt-area sizes (px) x aspect
#: ratios h/w. Chosen on the labels (128^2 polar, boxes ±2σ): best-anchor IoU median 0.60
#: (spots) and 0.58 (rings), >= 0.5 for 76 % / 72 % of the boxes; the isotropic arch 1 gave
#: 0.33 / 0.22 and 19 % / 5 % (a 1.4-5 px wide box between anchor centres 4-32 px apart).
ANCHORS_V2 = (((3, 6), (1.0, 2.0, 4.0, 8.0)), ((10, 16), (4.0, 8.0, 16.0, 32.0)),
              ((20, 32), (4.0, 8.0, 16.0, 32.0)), ((48, 64), (4.0, 8.0, 16.0, 32.0)))
#: strides (along χ, along |q|) of the FPN levels of arch 2: |q| is sampled 4x finer than χ
STRIDES_V2 = ((4, 1), (8, 2), (16, 4), (32, 8))


def build_model(shape: tuple[int, int], width: int = 32, num_classes: int = 3,
                arch: int = 2) -> Any:
    """The detector for polar images of ``shape`` (n_chi, n_q).

    ``arch`` 2 (default): strides along |q| four times finer than along χ (the features are
    1.4-6 px wide along |q| and 4-120 px tall along χ), anchors :data:`ANCHORS_V2`, FPN of
    ``width`` channels. ``arch`` 1: the first, isotropic model (strides 4-32 both ways), kept
    to read its checkpoints.
    """
    import torch.nn as nn
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    def block(cin: int, cout: int, stride: int | tuple[int, int]) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(8, cout),
                             nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                             nn.GroupNorm(8, cout), nn.ReLU(inplace=True))

    w = width
    h, wd = shape
    if arch == 1:
        strides: list[Any] = [2, 2, 2, 2]
        out = 64
        # labelled features at 128^2: widths along |q| 1.4-5.4 px, heights along χ 4-117 px,
        # h/w 1.2-65 (5-95 %): sqrt-area sizes 4-32 px and h/w up to 32
        ratios = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
        anchors = AnchorGenerator(sizes=((4,), (8,), (16,), (32,)), aspect_ratios=(ratios,) * 4)
        roi: Any = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7,
                                      sampling_ratio=2)
        extra: dict[str, Any] = {}
    elif arch == 2:
        strides = [(2, 1), (2, 1), (2, 2), (2, 2)]
        out = w
        anchors = AnchorGenerator(sizes=tuple(s for s, _ in ANCHORS_V2),
                                  aspect_ratios=tuple(r for _, r in ANCHORS_V2))
        roi = _aniso_roi_align(STRIDES_V2[0][0] // STRIDES_V2[0][1])
        # thin boxes rarely reach IoU 0.7 with any anchor: positives from IoU 0.5
        extra = {"rpn_fg_iou_thresh": 0.5, "rpn_bg_iou_thresh": 0.3}
    else:
        raise InputError(f"model arch {arch!r} is unknown; known: 1, 2")
    body = nn.Sequential()
    body.add_module("stem", block(1, w, strides[0]))
    body.add_module("layer1", block(w, w, strides[1]))          # stride 4 (arch 2: 4 x 1)
    body.add_module("layer2", block(w, 2 * w, strides[2]))      # stride 8 (8 x 2)
    body.add_module("layer3", block(2 * w, 2 * w, strides[3]))  # stride 16 (16 x 4)
    backbone = BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2"},
                               [w, 2 * w, 2 * w], out)
    return FasterRCNN(backbone, num_classes=None, min_size=min(h, wd), max_size=max(h, wd),
                      image_mean=[0.0], image_std=[1.0], rpn_anchor_generator=anchors,
                      box_roi_pool=roi, box_head=TwoMLPHead(out * 49, 256),
                      box_predictor=FastRCNNPredictor(256, num_classes),
                      rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                      rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150,
                      box_batch_size_per_image=128, box_score_thresh=0.01,
                      box_detections_per_img=100, **extra)


def _aniso_roi_align(ratio: int) -> Any:
    from torchvision.ops import MultiScaleRoIAlign

    class AnisoRoIAlign(MultiScaleRoIAlign):
        """torchvision's MultiScaleRoIAlign for feature maps whose stride along x is ``ratio``
        times finer than along y: it infers one scale per level from the heights, so the
        boxes' x (and the image widths) are stretched by ``ratio`` before pooling."""

        def forward(self, x: Any, boxes: Any, image_shapes: Any) -> Any:
            import torch

            k = torch.tensor([ratio, 1.0, ratio, 1.0])
            props = [p * k.to(p.dtype) for p in boxes]
            shapes = [(int(hh), int(ww) * ratio) for hh, ww in image_shapes]
            return super().forward(x, props, shapes)

    return AnisoRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)


def _targets(boxes: np.ndarray, labels: np.ndarray, n: int) -> dict[str, Any]:
    import torch

    return {"boxes": torch.as_tensor(np.asarray(boxes[:n], np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(labels[:n], np.int64))}


def train_model(images: np.ndarray, boxes: np.ndarray, labels: np.ndarray, n_boxes: np.ndarray,
                *, steps: int, batch_size: int, lr: float, width: int, seed: int, arch: int = 2,
                state: dict[str, Any] | None = None, max_seconds: float | None = None,
                on_step: Any = None) -> tuple[Any, dict[str, Any]]:
    """Train (or resume from ``state``: model, optimiser, step) for ``steps`` steps in total."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(images.shape[1:], width=width, arch=arch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    step0, losses = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step0 = int(state["step"])
        losses = list(state.get("losses", []))
    x_all = np.stack([prepare(im) for im in images])
    model.train()
    t0 = time.time()
    step = step0
    for step in range(step0, steps):
        idx = rng.integers(0, len(images), batch_size)
        xs, ts = [], []
        for i in idx:
            x = x_all[i]
            # augmentation: contrast (gamma) and extra noise
            x = np.clip(x, 0, None) ** rng.uniform(0.7, 1.4)
            x = x + rng.normal(0, rng.uniform(0, 0.05), x.shape).astype(np.float32)
            xs.append(torch.as_tensor(x[None].astype(np.float32)))
            ts.append(_targets(boxes[i], labels[i], int(n_boxes[i])))
        # linear warm-up over 50 steps, then cosine decay to 5 % over the steps or the
        # wall-time budget, whichever runs out first
        warm = min(1.0, (step + 1) / 50)
        frac = step / max(steps, 1)
        if max_seconds is not None:
            frac = max(frac, (time.time() - t0) / max_seconds)
        decay = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr * warm * decay
        loss_dict = model(xs, ts)
        loss = sum(loss_dict.values())
        opt.zero_grad()
        if torch.isfinite(loss):   # a degenerate batch (non-finite loss) is skipped
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, losses[-1], model, opt, losses)
        if max_seconds is not None and time.time() - t0 > max_seconds:
            step += 1
            break
    else:
        step = steps
    return model, {"step": step, "losses": losses, "optimizer": opt}


def save_checkpoint(model: Any, meta: dict[str, Any]) -> bytes:
    """Checkpoint bytes: ``{"model": state_dict, "meta": JSON text}`` (torch.save)."""
    import torch

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "meta": json.dumps(meta)}, buf)
    return buf.getvalue()


def load_checkpoint(data: bytes | str, where: str = "model") -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, metadata) from checkpoint bytes or a file path."""

    if isinstance(data, (str,)):
        from pathlib import Path

        p = Path(data)
        if not p.exists():
            raise InputError(f"{where}: model file {data!r} not found")
        data = p.read_bytes()
    what = "a gixd model checkpoint"
    ck = load_torch(bytes(data), source=where, what=what)
    try:
        meta = json.loads(ck["meta"])
        model = build_model(tuple(meta["shape"]), width=int(meta["width"]),
                            arch=int(meta.get("arch", 1)))
        model.load_state_dict(ck["model"])
    except InputError:
        raise
    except Exception as exc:  # a missing key, a wrong shape: a foreign file
        raise not_readable(where, what, exc) from None
    model.eval()
    return model, meta


def predict(model: Any, polars: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Detections (boxes xyxy polar px, scores, labels) of polar images, one dict each."""
    import torch

    with torch.inference_mode():
        out = model([torch.as_tensor(prepare(p)[None]) for p in polars])
    return [{k: v.numpy() for k, v in o.items()} for o in out]
