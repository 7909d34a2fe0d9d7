"""Tasks of the sem domain: simulate, train, upscale, plan (rescans)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task

__all__ = ["simulate", "train_model", "upscale", "plan", "TASKS"]

_NM = {"units": "nm"}
_US = {"units": "µs"}


class SimulateParams(Params):
    family: Literal["grains", "lamellar", "dual_phase"] = Field("dual_phase",
                                                                description="microstructure family")
    n_images: int = Field(4, ge=1, le=1000, description="images (each a 2-frame in-situ step)")
    size_px: int = Field(256, ge=64, le=4096, description="full-resolution image side (multiple of 16)")
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
                      fast_dwell_us=params.fast_dwell_us, full_dwell_us=params.full_dwell_us)
    return Simulated(np.stack(s.fast), np.stack(s.full), np.stack(s.clean), np.stack(s.reference),
                     np.stack(s.labels).astype(np.int32), params.pixel_size_nm)


class TrainParams(Params):
    kind: Literal["fast", "ref"] = Field("fast", description="single-image or reference-based model")
    steps: int = Field(600, ge=1, le=1_000_000, description="optimiser steps")
    batch_size: int = Field(16, ge=1, le=1024, description="patches per step")
    channels: int = Field(32, ge=4, le=256, description="feature channels")
    layers: int = Field(4, ge=2, le=32, description="convolution layers of the body")
    learning_rate: float = Field(2e-3, gt=0, le=1, description="Adam step size")
    seed: int = Field(0, ge=0, description="random seed")


@dataclass(frozen=True)
class Trained:
    model: np.ndarray = quantity("bytes", "checkpoint (uint8 bytes of torch.save)")
    loss_history: np.ndarray = quantity("dimensionless", "(steps,) L1 loss")
    train_time_s: float = quantity("s", "training wall time")


@task("sem.train", params=TrainParams)
def train_model(fast, clean, labels, reference=None, *, params: TrainParams) -> Trained:
    """Train a ×4 SR model (with its event-detection head) from scratch on fast/clean pairs."""
    from matterflow.microscopy.sem.models import TrainConfig, model_to_bytes, train

    cfg = TrainConfig(kind=params.kind, steps=params.steps, batch_size=params.batch_size,
                      channels=params.channels, layers=params.layers,
                      learning_rate=params.learning_rate, seed=params.seed)
    model, info = train(list(fast), list(clean), list(labels),
                        refs=None if reference is None else list(reference), cfg=cfg)
    data = model_to_bytes(model, metadata={"params": params.model_dump()}, step=info["steps_done"],
                          history=info["loss_history"])
    return Trained(np.frombuffer(data, np.uint8), np.asarray(info["loss_history"]),
                   info["train_time_s"])


class UpscaleParams(Params):
    tta: int = Field(8, ge=1, le=8, description="test-time augmentations (1: none)")


@dataclass(frozen=True)
class Upscaled:
    sr: np.ndarray = quantity("dimensionless", "(H, W) super-resolved image")
    spread: np.ndarray = quantity("dimensionless", "(H, W) TTA standard deviation")
    event_probability: np.ndarray = quantity("dimensionless", "(h, w) event probability")
    bicubic: np.ndarray = quantity("dimensionless", "(H, W) bicubic baseline")


@task("sem.upscale", params=UpscaleParams, map_over="image")
def upscale(image, model, reference=None, *, params: UpscaleParams) -> Upscaled:
    """Super-resolve one fast scan ×4 (tiled) with TTA spread and event probability."""
    from matterflow.microscopy.sem.models import bicubic, model_from_bytes, tta_predict

    m, _, _, _ = model_from_bytes(np.asarray(model, np.uint8).tobytes())
    ref = None
    if m.kind == "ref":
        if reference is None:
            raise InputError("sem.upscale: the reference-based model needs input 'reference'")
        ref = np.asarray(reference)[0] if np.ndim(reference) == 3 else np.asarray(reference)
    sr, spread, prob = tta_predict(m, np.asarray(image, np.float32), ref, n=params.tta)
    return Upscaled(sr, spread, prob, bicubic(np.asarray(image, np.float32), m.scale))


class PlanParams(Params):
    tile_px: int = Field(32, ge=4, le=1024, description="rescan tile side, full-res pixels")
    area_fraction: float = Field(0.05, gt=0, le=1, description="largest rescanned area fraction")
    threshold: float = Field(0.3, ge=0, le=1, description="smallest tile score rescanned")
    uncertainty_weight: float = Field(0.5, ge=0, description="weight of the TTA spread")
    pixel_size_nm: float = Field(10.0, gt=0, description="full-res pixel size", json_schema_extra=_NM)
    fast_dwell_us: float = Field(0.5, gt=0, description="fast-scan dwell", json_schema_extra=_US)
    full_dwell_us: float = Field(2.0, gt=0, description="full-res dwell", json_schema_extra=_US)


@dataclass(frozen=True)
class Plan:
    n_tiles: np.ndarray = quantity("dimensionless", "(n,) rescanned tiles per image")
    area_fraction: np.ndarray = quantity("dimensionless", "(n,) rescanned fraction of each image")
    found: np.ndarray = quantity("dimensionless", "(n,) events rescanned (>= 50 % of their pixels)")
    planted: np.ndarray = quantity("dimensionless", "(n,) planted events")
    speedup: np.ndarray = quantity("dimensionless", "(n,) full-res time / (fast + rescans + overheads)")
    recall: float = quantity("dimensionless", "found / planted over all images")
    merged: np.ndarray = quantity("dimensionless", "(n, H, W) SR with the rescanned tiles pasted in")


@task("sem.plan", params=PlanParams)
def plan(event_probability, spread, sr, full, labels, *, params: PlanParams) -> Plan:
    """Plan full-resolution rescan tiles per image (shortest path), recall and speed-up."""
    from matterflow.microscopy.sem import planning as pl

    arrs = [np.asarray(a) for a in (event_probability, spread, sr, full, labels)]
    if arrs[0].ndim == 2:
        arrs = [a[None] for a in arrs]
    rows = []
    for prob, spr, img, fl, lab in zip(*arrs, strict=True):
        scale = img.shape[0] // prob.shape[0]
        scores = pl.tile_scores(prob, spr, scale=scale, tile_px=params.tile_px,
                                uncertainty_weight=params.uncertainty_weight)
        tiles = pl.choose_tiles(scores, area_fraction=params.area_fraction,
                                threshold=params.threshold)
        tiles = tiles[pl.stage_path(tiles)]
        found, planted = pl.recall(lab, tiles, params.tile_px)
        t = pl.acquisition_time(img.shape, scale=scale, n_tiles=len(tiles), tile_px=params.tile_px,
                                path_px=pl.path_length(tiles, np.arange(len(tiles)), params.tile_px),
                                pixel_size_nm=params.pixel_size_nm,
                                fast_dwell_us=params.fast_dwell_us, full_dwell_us=params.full_dwell_us)
        rows.append((len(tiles), len(tiles) / scores.size, found, planted, t["speedup"],
                     pl.merge(img, fl, tiles, params.tile_px)))
    cols = list(zip(*rows, strict=True))
    found, planted = np.array(cols[2]), np.array(cols[3])
    return Plan(np.array(cols[0]), np.array(cols[1]), found, planted, np.array(cols[4]),
                float(found.sum() / max(1, planted.sum())), np.stack(cols[5]))


TASKS = [simulate, train_model, upscale, plan]
