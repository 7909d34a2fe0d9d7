"""GIXD tasks: simulate, train, detect (mapped over frames), evaluate, track.

A workflow (the demo, ``gixd.yaml``)::

    steps:
      - {id: train_set, task: gixd.simulate, params: {n_images: 64}}
      - {id: train, task: gixd.train, inputs: {images: train_set.polar, boxes: train_set.boxes,
                                               labels: train_set.labels, n_boxes: train_set.n_boxes}}
      - {id: test_set, task: gixd.simulate, params: {n_images: 16, seed: 1}}
      - {id: detect, task: gixd.detect, inputs: {frame: test_set.polar, model: train.checkpoint}}
      - {id: evaluate, task: gixd.evaluate, inputs: {...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from matterflow.core.blob import bytes_field, from_bytes_array, to_bytes_array
from matterflow.core.errors import InputError
from matterflow.core.registry import Params, quantity, task
from matterflow.diffraction.xrd.tasks import SourceParams

__all__ = ["TASKS", "simulate", "train", "detect", "detect_batch", "evaluate", "track"]

MAX_BOXES = 64
MAX_DET = 100


class SimulateParams(Params):
    n_images: int = Field(32, ge=1, le=100_000, description="frames to simulate")
    mode: Literal["random", "unseen", "series"] = Field(
        "random", description="random films of the training structures, films of a structure "
        "never trained on (pentacene), or an in-situ series (precursor -> perovskite)")
    n_q: int = Field(128, ge=16, le=2048, description="polar bins along |q|")
    n_chi: int = Field(128, ge=16, le=2048, description="polar bins along χ")
    q_min: float = Field(3.0, ge=0, description="lowest |q|", json_schema_extra={"units": "1/nm"})
    q_max: float = Field(25.0, gt=0, description="highest |q|", json_schema_extra={"units": "1/nm"})
    detector_px: int = Field(512, ge=32, le=4096, description="detector rows = columns")
    incidence_deg: float = Field(0.2, gt=0, lt=10, description="grazing incidence angle",
                                 json_schema_extra={"units": "deg"})
    energy_kev: float = Field(10.0, gt=1, le=100, description="X-ray energy",
                              json_schema_extra={"units": "keV"})
    keep_detector: bool = Field(False, description="also return the detector images")
    seed: int = Field(0, ge=0, description="random seed")


@dataclass(frozen=True)
class Simulated:
    polar: np.ndarray = quantity("counts", "(n, n_chi, n_q) polar images")
    detector: np.ndarray = quantity("counts", "(n, rows, cols) detector images (empty unless kept)")
    boxes: np.ndarray = quantity("pixel", "(n, 64, 4) x0, y0, x1, y1 polar pixels, NaN padded")
    labels: np.ndarray = quantity("dimensionless", "(n, 64) 1 peak, 2 ring, 0 padding")
    n_boxes: np.ndarray = quantity("dimensionless", "(n,) labelled features per frame")
    q_inv_nm: np.ndarray = quantity("1/nm", "(n, 64) |q| of the labelled features")
    chi_deg: np.ndarray = quantity("deg", "(n, 64) χ of the labelled features (NaN for rings)")
    feature_id: np.ndarray = quantity("dimensionless", "(n, 64) id of each labelled feature "
                                      "(structure, hkl, category; the same in every frame of a "
                                      "series), -1 padding")
    q_axis: np.ndarray = quantity("1/nm", "(n_q,) polar bin centres")
    chi_axis: np.ndarray = quantity("deg", "(n_chi,) polar bin centres")
    poni: str = quantity("", "PONI text of the detector geometry")


def _grid(p: Any) -> Any:
    from matterflow.diffraction.gixd._geometry import PolarGrid

    if p.q_max <= p.q_min:
        raise InputError(f"gixd.simulate params.q_max must exceed q_min; got {p.q_max} <= {p.q_min}")
    return PolarGrid(p.n_q, p.n_chi, p.q_min, p.q_max, 0.0, 90.0)


def series_phases(i: int, n: int) -> list[Any]:
    """The in-situ series: a precursor fades, a perovskite appears at frame n/4, grows and
    relaxes its strain (+1.5 % -> 0), PbI2 appears late."""
    from matterflow.diffraction.gixd._sim import Phase

    t = i / max(n - 1, 1)
    out = [Phase("intermediate", (0, 1, 0), 2.0, 0.1, 30.0, 0.0, 1500.0 * max(0.05, 1 - t))]
    if t >= 0.25:
        g = (t - 0.25) / 0.75
        out.append(Phase("perovskite", (1, 0, 0), 3.0, 0.2, 40.0, 0.015 * (1 - g), 200 + 1800 * g))
    if t >= 0.6:
        out.append(Phase("pbi2", (0, 0, 1), 1.5, 0.0, 50.0, 0.0, 100 + 900 * (t - 0.6) / 0.4))
    return out


def _feature_id(structure: str, category: int, hkl: tuple) -> int:
    import zlib

    return zlib.crc32(f"{structure}|{category}|{hkl}".encode()) & 0x7FFFFFFF


@task("gixd.simulate", params=SimulateParams, version="3")
def simulate(*, params: SimulateParams) -> Simulated:
    """Simulated GIXD frames (detector through pyFAI fibre geometry -> polar) with box labels."""
    from matterflow.diffraction.gixd._geometry import PolarConverter, make_poni
    from matterflow.diffraction.gixd._sim import (
        TRAIN_STRUCTURES,
        UNSEEN_STRUCTURES,
        load_structure,
        random_phases,
        simulate_pattern,
    )

    grid = _grid(params)
    poni = make_poni(shape=(params.detector_px,) * 2, pixel_um=172.0 * 512 / params.detector_px,
                     energy_kev=params.energy_kev)
    conv = PolarConverter(poni, params.incidence_deg, grid)
    rng = np.random.default_rng(params.seed)
    structs = {n: load_structure(n) for n in (*TRAIN_STRUCTURES, *UNSEEN_STRUCTURES)}
    n = params.n_images
    polar = np.zeros((n, *grid.shape), np.float32)
    det = np.zeros((n, params.detector_px, params.detector_px) if params.keep_detector else (0, 1, 1),
                   np.float32)
    boxes = np.full((n, MAX_BOXES, 4), np.nan, np.float32)
    labels = np.zeros((n, MAX_BOXES), np.int64)
    nb = np.zeros(n, np.int64)
    qs = np.full((n, MAX_BOXES), np.nan)
    chis = np.full((n, MAX_BOXES), np.nan)
    fid = np.full((n, MAX_BOXES), -1, np.int64)
    for i in range(n):
        if params.mode == "series":
            phases = series_phases(i, n)
        else:
            phases = random_phases(rng, UNSEEN_STRUCTURES if params.mode == "unseen"
                                   else TRAIN_STRUCTURES)
        pat = simulate_pattern(phases, conv, rng=rng, structures=structs)
        k = min(len(pat.boxes), MAX_BOXES)
        polar[i] = pat.polar
        if params.keep_detector:
            det[i] = pat.detector
        boxes[i, :k], labels[i, :k], nb[i] = pat.boxes[:k], pat.labels[:k], k
        qs[i, :k], chis[i, :k] = pat.q[:k], pat.chi[:k]
        fid[i, :k] = [_feature_id(phases[int(ph)].structure, int(c), tuple(h))
                      for ph, c, h in zip(pat.phase[:k], pat.labels[:k], pat.extra["hkl"][:k],
                                          strict=True)]
    return Simulated(polar=polar, detector=det, boxes=boxes, labels=labels, n_boxes=nb,
                     q_inv_nm=qs, chi_deg=chis, feature_id=fid, q_axis=grid.q_axis, chi_axis=grid.chi_axis,
                     poni=poni)


# --------------------------------------------------------------------------- train

class TrainParams(Params):
    steps: int = Field(200, ge=1, le=10_000_000, description="optimiser steps in total")
    batch_size: int = Field(4, ge=1, le=256, description="images per step")
    lr: float = Field(1e-3, gt=0, le=1, description="AdamW learning rate")
    width: int = Field(32, ge=8, le=256, description="channels of the first layers (multiple of 8)")
    arch: int = Field(2, ge=1, le=2, description="backbone: 2 |q| strides 4x finer than chi, "
                      "anchors fitted to the labels, chi-stretching RoI align (the measured "
                      "model of docs/gixd.md); 1 the first, isotropic strides (read its models)")
    max_minutes: float | None = Field(None, gt=0, description="stop after this wall time",
                                      json_schema_extra={"units": "min"})
    checkpoint_path: str | None = Field(None, description="file saved every 50 steps and at the "
                                        "end; a run finds it and resumes")
    seed: int = Field(0, ge=0, description="random seed")


@dataclass(frozen=True)
class Trained:
    checkpoint: np.ndarray = bytes_field("torch checkpoint (state dict + JSON)")
    losses: np.ndarray = quantity("dimensionless", "(steps,) training loss per step")
    steps_done: int = quantity("dimensionless", "optimiser steps done")
    seconds: float = quantity("s", "training wall time of this call")
    score_threshold: float = quantity("dimensionless", "best-F1 score threshold on the "
                                      "validation set (NaN without one)")


def _check_dataset(images: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                   n_boxes: np.ndarray, where: str = "gixd.train") -> None:
    from matterflow.diffraction.gixd._sim import CATEGORIES

    if images.ndim != 3:
        raise InputError(f"{where}: images must be (n, n_chi, n_q); got shape {images.shape}")
    n, h, w = images.shape
    if boxes.shape[:1] != (n,) or labels.shape[:1] != (n,) or n_boxes.shape != (n,):
        raise InputError(f"{where}: boxes, labels, n_boxes must have {n} entries like images")
    for i in range(n):
        k = int(n_boxes[i])
        b, lab = boxes[i, :k], labels[i, :k]
        bad = set(np.unique(lab).tolist()) - set(CATEGORIES)
        if bad:
            raise InputError(f"{where}: labels of image {i} hold unknown categories {sorted(bad)}; "
                             f"known: {CATEGORIES}")
        if k and ((b[:, 0] < 0).any() or (b[:, 1] < 0).any() or (b[:, 2] > w).any()
                  or (b[:, 3] > h).any() or (b[:, 2] <= b[:, 0]).any() or (b[:, 3] <= b[:, 1]).any()):
            raise InputError(f"{where}: boxes of image {i} lie outside the {w} x {h} image or are "
                             "empty")


@task("gixd.train", params=TrainParams, version="4")
def train(images: np.ndarray, boxes: np.ndarray, labels: np.ndarray, n_boxes: np.ndarray,
          val_images: np.ndarray | None = None, val_boxes: np.ndarray | None = None,
          val_labels: np.ndarray | None = None, val_n_boxes: np.ndarray | None = None, *,
          params: TrainParams) -> Trained:
    """Train the Faster R-CNN from scratch on labelled polar images (resumes a checkpoint).

    With a validation set (``val_*``), the score threshold of best F1 at IoU 0.5 on it is
    stored in the model and used by ``gixd.detect`` unless its params give one.
    """
    import time

    import torch

    from matterflow.core.store import atomic_write_bytes
    from matterflow.diffraction.gixd._model import save_checkpoint, train_model

    images, boxes = np.asarray(images, np.float32), np.asarray(boxes, np.float32)
    labels, n_boxes = np.asarray(labels), np.asarray(n_boxes)
    _check_dataset(images, boxes, labels, n_boxes)
    if params.width % 8:
        raise InputError(f"gixd.train params.width must be a multiple of 8; got {params.width}")
    meta = {"shape": list(images.shape[1:]), "width": params.width, "arch": params.arch,
            "categories": {1: "peak", 2: "ring"}}
    state = None
    ck = Path(params.checkpoint_path) if params.checkpoint_path else None
    if ck is not None and ck.exists():
        state = torch.load(ck, weights_only=True, map_location="cpu")
        import json

        old = json.loads(state["meta"])
        if (old["shape"] != meta["shape"] or old["width"] != meta["width"]
                or old.get("arch", 1) != meta["arch"]):
            raise InputError(f"{ck}: checkpoint of input {old['shape']} width {old['width']} "
                             f"arch {old.get('arch', 1)}; the training set is {meta['shape']} "
                             f"width {meta['width']} arch {meta['arch']}")

    def on_step(step: int, loss: float, model: Any, opt: Any, losses: list) -> None:
        if ck is not None and (step % 50 == 0 or step == params.steps):
            import io

            buf = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                        "losses": losses, "meta": __import__("json").dumps(meta)}, buf)
            atomic_write_bytes(ck, buf.getvalue())

    t0 = time.time()
    model, info = train_model(images, boxes, labels, n_boxes, steps=params.steps,
                              batch_size=params.batch_size, lr=params.lr, width=params.width,
                              arch=params.arch, seed=params.seed, state=state, on_step=on_step,
                              max_seconds=params.max_minutes * 60 if params.max_minutes else None)
    meta["steps"] = info["step"]
    thr = np.nan
    if val_images is not None:
        from matterflow.diffraction.gixd._metrics import best_threshold
        from matterflow.diffraction.gixd._model import predict

        vb, vl, vn = (np.asarray(val_boxes, np.float32), np.asarray(val_labels),
                      np.asarray(val_n_boxes))
        vi = np.asarray(val_images, np.float32)
        _check_dataset(vi, vb, vl, vn, where="gixd.train (validation set)")
        if vi.shape[1:] != images.shape[1:]:
            raise InputError(f"gixd.train: validation images are {vi.shape[1:]}; the training "
                             f"images {images.shape[1:]}")
        model.eval()
        det = [d for i in range(0, len(vi), 8) for d in predict(model, list(vi[i:i + 8]))]
        op = best_threshold([d["boxes"] for d in det], [d["scores"] for d in det],
                            [d["labels"] for d in det], [vb[i, :vn[i]] for i in range(len(vi))],
                            [vl[i, :vn[i]] for i in range(len(vi))])
        thr = meta["score_threshold"] = round(op.threshold, 4)
    data = to_bytes_array(save_checkpoint(model, meta))
    return Trained(checkpoint=data, losses=np.asarray(info["losses"], float),
                   steps_done=int(info["step"]), seconds=time.time() - t0,
                   score_threshold=float(thr))


# --------------------------------------------------------------------------- detect

class DetectParams(SourceParams):
    """Detection settings; ``dataset``, ``first``, ``last``, ``stride``, ``pattern`` select the
    frames of a ``source`` file (the XRD readers: HDF5/NeXus, Eiger, EDF, TIFF, CBF)."""

    method: Literal["model", "classical"] = Field("model", description="Faster R-CNN or the "
                                                  "classical baseline")
    score_threshold: float | None = Field(
        None, ge=0, le=1, description="detections kept at or above this score (None: the one "
        "chosen on validation data at training, stored in the model; else 0.05)")
    incidence_deg: float | None = Field(None, gt=0, lt=10, description="incidence angle (needed "
                                        "when frames are detector images)",
                                        json_schema_extra={"units": "deg"})
    q_min: float = Field(3.0, ge=0, description="polar grid (detector frames)",
                         json_schema_extra={"units": "1/nm"})
    q_max: float = Field(25.0, gt=0, description="polar grid (detector frames)",
                         json_schema_extra={"units": "1/nm"})
    n_q: int = Field(128, ge=16, description="polar bins along |q| (classical, detector frames)")
    n_chi: int = Field(128, ge=16, description="polar bins along χ (classical, detector frames)")


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray = quantity("pixel", "(100, 4) x0, y0, x1, y1 polar pixels, NaN padded")
    scores: np.ndarray = quantity("dimensionless", "(100,) scores, NaN padded")
    labels: np.ndarray = quantity("dimensionless", "(100,) 1 peak, 2 ring, 0 padding")
    q_inv_nm: np.ndarray = quantity("1/nm", "(100,) |q| of the box centres")
    chi_deg: np.ndarray = quantity("deg", "(100,) χ of the box centres")
    q_xy_inv_nm: np.ndarray = quantity("1/nm", "(100,) in-plane q of the box centres")
    q_z_inv_nm: np.ndarray = quantity("1/nm", "(100,) out-of-plane q of the box centres")
    width_q_inv_nm: np.ndarray = quantity("1/nm", "(100,) box extent along |q|")
    width_chi_deg: np.ndarray = quantity("deg", "(100,) box extent along χ")
    n: int = quantity("dimensionless", "detections kept")
    status: int = quantity("dimensionless", "0 done, 1 failed (see reason)")
    reason: str = quantity("", "why the frame failed")


_MODELS: dict[str, Any] = {}


def _model(model: Any) -> tuple[Any, dict]:
    import hashlib

    if isinstance(model, (str, Path)):
        p = Path(model)
        if not p.exists():
            raise InputError(f"gixd.detect: model file {str(p)!r} not found")
        st = p.stat()
        key = f"{p.resolve()}:{st.st_mtime_ns}:{st.st_size}"   # no re-read per frame
        if key in _MODELS:
            return _MODELS[key]
        data = p.read_bytes()
    else:
        data = from_bytes_array(model, field="gixd.detect model",
                                accepted="a model file or the checkpoint of gixd.train")
        key = hashlib.sha256(data).hexdigest()
    if key not in _MODELS:
        from matterflow.diffraction.gixd._model import load_checkpoint

        _MODELS[key] = load_checkpoint(data, where=str(model) if isinstance(model, (str, Path))
                                       else "gixd.detect model")
    return _MODELS[key]


_SOURCES: dict[tuple, Any] = {}


def _source(source: Path, params: DetectParams) -> Any:
    """The frame source of this process (opened once, read lazily)."""
    from matterflow.diffraction.xrd._io import open_frames

    key = (str(source), tuple(sorted(params.source_options().items())))
    if key not in _SOURCES:
        _SOURCES[key] = open_frames(source, **params.source_options())
    return _SOURCES[key]


def check_detect_inputs(model: Any, frame_shape: tuple[int, ...], *, geometry: Any = None,
                        params: DetectParams, where: str = "frames") -> None:
    """Every error that would stop ``gixd.detect``, raised before any frame is processed:
    the model file, the incidence angle, the frame shape against the PONI's detector or
    against the model's input size."""
    if params.method == "model" and model is None:
        raise InputError("gixd.detect: method 'model' needs a model input (checkpoint)")
    meta = {} if params.method == "classical" else _model(model)[1]
    shape = tuple(meta.get("shape", (params.n_chi, params.n_q)))
    if geometry is not None:
        if params.incidence_deg is None:
            raise InputError(f"gixd.detect params.incidence_deg: the grazing incidence angle "
                             f"(deg) is needed to convert the detector frames of {where} with "
                             f"the geometry {_name(geometry)} to (|q|, χ); got none")
        from matterflow.diffraction.gixd._geometry import PolarGrid, get_converter

        grid = PolarGrid(shape[1], shape[0], params.q_min, params.q_max, 0.0, 90.0)
        get_converter(str(geometry), params.incidence_deg, grid,
                      where=_name(geometry)).check_shape(frame_shape, what=where)
    elif tuple(frame_shape) != shape:
        what = (f"the model {_name(model)} takes {shape}" if params.method == "model"
                else f"params n_chi, n_q are {shape}")
        raise InputError(f"{where}: polar frames of shape {tuple(frame_shape)} (n_chi, n_q); "
                         f"{what} (n_chi, n_q)")


def _name(x: Any) -> str:
    if isinstance(x, Path) or (isinstance(x, str) and "\n" not in x):
        return str(x)
    return "(in memory)"


@task("gixd.detect", params=DetectParams, map_over="frame", version="4")
def detect(frame: Any, model: Any = None, geometry: Any = None, source: Path | None = None, *,
           params: DetectParams) -> Detections:
    """Detect Bragg features in one frame: a polar (n_chi, n_q) image, a detector image with a
    PONI ``geometry`` and ``params.incidence_deg``, or a frame index into ``source``.

    A frame that cannot be read or converted is returned with ``status`` 1 and its
    ``reason``; the other frames go on.
    """
    from matterflow.diffraction.gixd._geometry import PolarGrid, get_converter

    if params.method == "model" and model is None:
        raise InputError("gixd.detect: method 'model' needs a model input (checkpoint)")
    net, meta = (None, {}) if params.method == "classical" else _model(model)
    shape = tuple(meta.get("shape", (params.n_chi, params.n_q)))
    grid = PolarGrid(shape[1], shape[0], params.q_min, params.q_max, 0.0, 90.0)
    if geometry is not None and params.incidence_deg is None:
        raise InputError(f"gixd.detect params.incidence_deg: the grazing incidence angle (deg) "
                         f"is needed with the geometry {_name(geometry)}; got none")
    empty = _empty()
    arr = np.asarray(frame)
    where = "frame"
    if arr.ndim == 0:  # an index into the source
        if source is None:
            raise InputError("gixd.detect: frame indices need a source file")
        where = f"{source} frame {int(arr)}"
    try:
        if arr.ndim == 0:
            arr = _source(Path(source), params)[int(arr)]
        arr = np.asarray(arr, np.float32)
        if arr.ndim != 2:
            raise ValueError(f"a frame must be 2D; got shape {arr.shape}")
        if geometry is not None:
            conv = get_converter(str(geometry), params.incidence_deg, grid, where=_name(geometry))
            conv.check_shape(arr.shape, what=where)
            polar = conv(arr)
        else:
            polar = arr
            if polar.shape != shape:
                what = (f"the model {_name(model)} takes {shape}" if net is not None
                        else f"params n_chi, n_q are {shape}")
                raise InputError(f"gixd.detect: {where}: polar frame of shape {polar.shape}; "
                                 f"{what} (n_chi, n_q)")
        if not np.isfinite(polar).all():
            raise ValueError("the frame holds NaN or infinite values")
        if params.method == "classical":
            from matterflow.diffraction.gixd._classical import classical_detect

            out = classical_detect(polar)
        else:
            from matterflow.diffraction.gixd._model import predict

            out = predict(net, [polar])[0]
    except InputError:
        raise
    except Exception as exc:  # a corrupt frame fails alone
        return Detections(**{**empty, "status": 1, "reason": f"{type(exc).__name__}: {exc}"})
    thr = params.score_threshold
    if thr is None:
        thr = float(meta.get("score_threshold", 0.05))
    keep = out["scores"] >= thr
    b, s, lab = out["boxes"][keep][:MAX_DET], out["scores"][keep][:MAX_DET], out["labels"][keep][:MAX_DET]
    k = len(s)
    q, chi = grid.from_px((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)
    res = dict(empty)
    res["boxes"][:k], res["scores"][:k], res["labels"][:k] = b, s, lab
    res["q_inv_nm"][:k], res["chi_deg"][:k] = q, chi
    res["q_xy_inv_nm"][:k] = q * np.sin(np.radians(chi))
    res["q_z_inv_nm"][:k] = q * np.cos(np.radians(chi))
    res["width_q_inv_nm"][:k] = (b[:, 2] - b[:, 0]) * grid.dq
    res["width_chi_deg"][:k] = (b[:, 3] - b[:, 1]) * grid.dchi
    res["n"] = k
    return Detections(**res)


def detect_batch(polars: Any, model: Any = None, *, method: str = "model",
                 batch_size: int = 8) -> list[dict[str, np.ndarray]]:
    """Detections (``boxes`` xyxy polar px, ``scores``, ``labels``) of in-memory polar images,
    ``batch_size`` images per forward pass: the Python API for many frames at once."""
    if method == "classical":
        from matterflow.diffraction.gixd._classical import classical_detect

        return [classical_detect(np.asarray(p, np.float32)) for p in polars]
    from matterflow.diffraction.gixd._model import predict

    net, meta = _model(model)
    shape = tuple(meta["shape"])
    out: list[dict[str, np.ndarray]] = []
    for i in range(0, len(polars), batch_size):
        chunk = [np.asarray(p, np.float32) for p in polars[i:i + batch_size]]
        for p in chunk:
            if p.shape != shape:
                raise InputError(f"gixd.detect: polar frame of shape {p.shape}; the model "
                                 f"takes {shape} (n_chi, n_q)")
        out.extend(predict(net, chunk))
    return out


def _empty() -> dict[str, Any]:
    nan = np.full(MAX_DET, np.nan)
    return {"boxes": np.full((MAX_DET, 4), np.nan, np.float32), "scores": nan.copy(),
            "labels": np.zeros(MAX_DET, np.int64), "q_inv_nm": nan.copy(), "chi_deg": nan.copy(),
            "q_xy_inv_nm": nan.copy(), "q_z_inv_nm": nan.copy(), "width_q_inv_nm": nan.copy(),
            "width_chi_deg": nan.copy(), "n": 0, "status": 0, "reason": ""}


# --------------------------------------------------------------------------- evaluate

class EvaluateParams(Params):
    min_score: float = Field(0.0, ge=0, le=1, description="detections below are ignored")
    n_q_bins: int = Field(8, ge=1, le=100, description="|q| bins of AP50 against |q| (needs "
                          "the q_axis input)")


@dataclass(frozen=True)
class Evaluation:
    ap: float = quantity("dimensionless", "COCO AP (IoU 0.50:0.95, mean over categories)")
    ap50: float = quantity("dimensionless", "AP at IoU 0.5")
    ap75: float = quantity("dimensionless", "AP at IoU 0.75")
    ap_per_category: np.ndarray = quantity("dimensionless", "(2, 2) AP, AP50 of peak and ring")
    n_gt: int = quantity("dimensionless", "ground-truth boxes")
    n_det: int = quantity("dimensionless", "detections scored")
    pr_recall: np.ndarray = quantity("dimensionless", "(101,) recall points of the curves")
    pr_precision: np.ndarray = quantity("dimensionless", "(2, 2, 101) interpolated precision of "
                                        "peak, ring at IoU 0.5, 0.75 (NaN: no such box)")
    q_bin_edges: np.ndarray = quantity("1/nm", "(n_q_bins + 1,) |q| bins (NaN without q_axis)")
    ap50_vs_q: np.ndarray = quantity("dimensionless", "(n_q_bins,) AP50 of the boxes and "
                                     "detections whose centre lies in each |q| bin")
    n_gt_vs_q: np.ndarray = quantity("dimensionless", "(n_q_bins,) ground-truth boxes per bin")


def evaluation_figures(outputs: dict, params: Any) -> dict:
    """Precision-recall curves and AP50 against |q| (see :mod:`.figures`)."""
    from matterflow.diffraction.gixd.figures import evaluation_figures as draw

    return draw(outputs, params)


@task("gixd.evaluate", params=EvaluateParams, figures=evaluation_figures, version="2")
def evaluate(det_boxes: np.ndarray, det_scores: np.ndarray, det_labels: np.ndarray,
             det_n: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray,
             gt_n: np.ndarray, q_axis: np.ndarray | None = None, *,
             params: EvaluateParams) -> Evaluation:
    """COCO AP / AP50 / AP75 of detections against the labelled boxes, the precision-recall
    curves, and (with ``q_axis``, the |q| of each polar column in 1/nm) AP50 against |q|."""
    from matterflow.diffraction.gixd._metrics import RECALL_POINTS, average_precision, pr_sampled

    det_n, gt_n = np.asarray(det_n).astype(int), np.asarray(gt_n).astype(int)
    if len(det_n) != len(gt_n):
        raise InputError(f"gixd.evaluate: {len(det_n)} frames of detections, {len(gt_n)} of labels")
    db, ds, dl, gb, gl = [], [], [], [], []
    for i in range(len(gt_n)):
        s = np.asarray(det_scores[i][:det_n[i]])
        ok = s >= params.min_score
        db.append(np.asarray(det_boxes[i][:det_n[i]])[ok])
        ds.append(s[ok])
        dl.append(np.asarray(det_labels[i][:det_n[i]])[ok])
        gb.append(np.asarray(gt_boxes[i][:gt_n[i]]))
        gl.append(np.asarray(gt_labels[i][:gt_n[i]]))
    r = average_precision(db, ds, dl, gb, gl)
    per = np.array([r.per_category.get(c, (np.nan, np.nan)) for c in (1, 2)], float)
    pr = np.array([[pr_sampled(db, ds, dl, gb, gl, c, t) for t in (0.5, 0.75)] for c in (1, 2)])
    nb = params.n_q_bins
    edges, ap_q, n_q = np.full(nb + 1, np.nan), np.full(nb, np.nan), np.zeros(nb, np.int64)
    if q_axis is not None and len(np.ravel(q_axis)) > 1:
        qa = np.asarray(q_axis, float).ravel()
        dq = (qa[-1] - qa[0]) / (len(qa) - 1)
        edges = np.linspace(qa[0] - dq / 2, qa[-1] + dq / 2, nb + 1)

        def q_of(b: np.ndarray) -> np.ndarray:  # box centre column (edges at 0) -> |q|
            return qa[0] + ((b[:, 0] + b[:, 2]) / 2 - 0.5) * dq

        for k in range(nb):
            def inside(b: np.ndarray, k: int = k) -> np.ndarray:
                q = q_of(np.asarray(b, float).reshape(-1, 4))
                last = k == nb - 1
                return (q >= edges[k]) & ((q <= edges[k + 1]) if last else (q < edges[k + 1]))
            gin = [inside(b) for b in gb]
            din = [inside(b) for b in db]
            n_q[k] = int(sum(m.sum() for m in gin))
            if n_q[k]:
                ap_q[k] = average_precision([b[m] for b, m in zip(db, din, strict=True)],
                                            [s[m] for s, m in zip(ds, din, strict=True)],
                                            [lb[m] for lb, m in zip(dl, din, strict=True)],
                                            [b[m] for b, m in zip(gb, gin, strict=True)],
                                            [lb[m] for lb, m in zip(gl, gin, strict=True)]).ap50
    return Evaluation(ap=r.ap, ap50=r.ap50, ap75=r.ap75, ap_per_category=per, n_gt=r.n_gt,
                      n_det=r.n_det, pr_recall=RECALL_POINTS.copy(), pr_precision=pr,
                      q_bin_edges=edges, ap50_vs_q=ap_q, n_gt_vs_q=n_q)


# --------------------------------------------------------------------------- track

class TrackParams(Params):
    max_dq: float = Field(0.5, gt=0, description="largest |q| step between frames",
                          json_schema_extra={"units": "1/nm"})
    max_dchi: float = Field(5.0, gt=0, description="largest χ step between frames",
                            json_schema_extra={"units": "deg"})
    max_gap: int = Field(2, ge=0, description="frames a feature may be missed")
    min_score: float = Field(0.3, ge=0, le=1, description="detections below are not tracked")
    merge_iou: float = Field(0.3, gt=0, le=1, description="of detections overlapping by more "
                             "(boxes in |q|, χ, any category) only the best scored is tracked")
    keep_category: bool = Field(True, description="with the detections' labels: a track keeps "
                                "its category (a spot is not linked to a ring at its |q|)")
    max_width_ratio: float = Field(0.0, ge=0, description="a detection whose χ extent differs "
                                   "from the track's by more than this factor is not linked "
                                   "(0: off)")
    close_gap: int = Field(8, ge=0, description="join track fragments: an end and a start of the "
                           "same category up to this many frames apart within the gates "
                           "(0: off)")
    history: int = Field(5, ge=1, description="a track's gates sit at the position predicted "
                         "from its last this many detections (robust line against frame; 1: "
                         "its last detection)")
    merge_tracks: float = Field(1.0, ge=0, description="merge two tracks of one category seen "
                                "together in >= 3 frames at a median distance up to this, in "
                                "units of the gates (one feature detected twice; 0: off)")


@dataclass(frozen=True)
class Tracks:
    track_id: np.ndarray = quantity("dimensionless", "(n_frames, 100) track of each detection, -1 none")
    n_tracks: int = quantity("dimensionless", "tracks found")
    length: np.ndarray = quantity("dimensionless", "(n_tracks,) frames each track is seen in")
    mean_q_inv_nm: np.ndarray = quantity("1/nm", "(n_tracks,) mean |q| of each track")


def _merge(idx: np.ndarray, score: np.ndarray, q: np.ndarray, chi: np.ndarray, wq: np.ndarray,
           wc: np.ndarray, iou: float) -> np.ndarray:
    """Detections ``idx`` less those overlapping a better-scored one by IoU > ``iou``
    (class-agnostic non-maximum suppression on boxes in (|q|, χ))."""
    from matterflow.diffraction.gixd._metrics import box_iou

    b = np.stack([q[idx] - wq[idx] / 2, chi[idx] - wc[idx] / 2, q[idx] + wq[idx] / 2,
                  chi[idx] + wc[idx] / 2], axis=1)
    order = np.argsort(-score[idx], kind="stable")
    kept: list[int] = []
    for k in order:
        if not kept or box_iou(b[[k]], b[kept]).max() <= iou:
            kept.append(int(k))
    return np.sort(idx[kept])


def track_figures(outputs: dict, params: Any) -> dict:
    """Tracked |q| against frame (one colour per track), drawn from the stored outputs (plus the
    detections' ``q_inv_nm`` when given)."""
    import matplotlib.pyplot as plt

    ids = np.asarray(outputs["track_id"])
    q = outputs.get("q_inv_nm")
    chi = outputs.get("chi_deg")
    if q is not None and chi is not None:  # |q| and χ of each track against frame
        q, chi = np.asarray(q), np.asarray(chi)
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
        for t in range(int(outputs["n_tracks"])):
            f, j = np.nonzero(ids == t)
            line, = ax.plot(f, q[f, j], ".-", ms=3, lw=0.8)
            ax2.plot(f, chi[f, j], ".-", ms=3, lw=0.8, color=line.get_color())
        ax.set(ylabel="|q| (1/nm)")
        ax2.set(xlabel="frame", ylabel="χ (deg)")
        ax.set_title(f"{int(outputs['n_tracks'])} tracks")
        fig.tight_layout()
        return {"Tracked peak positions": fig}
    fig, ax = plt.subplots(figsize=(6, 4))
    if q is not None:
        q = np.asarray(q)
        for t in range(int(outputs["n_tracks"])):
            f, j = np.nonzero(ids == t)
            ax.plot(f, q[f, j], ".-", ms=3, lw=0.8)
        ax.set(xlabel="frame", ylabel="|q| (1/nm)")
    else:
        ax.plot(np.asarray(outputs["mean_q_inv_nm"]), np.asarray(outputs["length"]), "o")
        ax.set(xlabel="mean |q| of the track (1/nm)", ylabel="frames followed")
    ax.set_title(f"{int(outputs['n_tracks'])} tracks")
    fig.tight_layout()
    return {"Tracked peak positions": fig}


@task("gixd.track", params=TrackParams, figures=track_figures, version="3")
def track(q_inv_nm: np.ndarray, chi_deg: np.ndarray, scores: np.ndarray, n: np.ndarray,
          width_q_inv_nm: np.ndarray | None = None, width_chi_deg: np.ndarray | None = None,
          labels: np.ndarray | None = None, *, params: TrackParams) -> Tracks:
    """Link detections across the frames of a series (Hungarian matching in |q|, χ; with the
    box extents, the gates widen to half a feature's extent)."""
    from matterflow.diffraction.gixd._track import link_tracks

    n = np.asarray(n).astype(int)
    qs, cs, wqs, wcs, sel, labs, scs = [], [], [], [], [], [], []
    for i in range(len(n)):
        sc = np.asarray(scores[i][:n[i]])
        ok = np.flatnonzero(sc >= params.min_score)
        if width_q_inv_nm is not None and width_chi_deg is not None and len(ok) > 1:
            ok = _merge(ok, sc, np.asarray(q_inv_nm[i]), np.nan_to_num(np.asarray(chi_deg[i])),
                        np.asarray(width_q_inv_nm[i]), np.asarray(width_chi_deg[i]),
                        params.merge_iou)
        sel.append(ok)
        scs.append(sc[ok])
        qs.append(np.asarray(q_inv_nm[i])[ok])
        cs.append(np.asarray(chi_deg[i])[ok])
        if width_q_inv_nm is not None and width_chi_deg is not None:
            wqs.append(np.asarray(width_q_inv_nm[i])[ok])
            wcs.append(np.asarray(width_chi_deg[i])[ok])
        if labels is not None:
            labs.append(np.asarray(labels[i])[ok])
    ids = link_tracks(qs, cs, max_dq=params.max_dq, max_dchi=params.max_dchi,
                      max_gap=params.max_gap, width_q=wqs or None, width_chi=wcs or None,
                      labels=labs if labels is not None and params.keep_category else None,
                      max_width_ratio=params.max_width_ratio, close_gap=params.close_gap,
                      history=params.history, merge_tracks=params.merge_tracks,
                      scores=scs)
    out = np.full((len(n), MAX_DET), -1, np.int64)
    for i, (ok, t) in enumerate(zip(sel, ids, strict=True)):
        out[i, ok] = t
    nt = int(out.max() + 1) if out.size else 0
    length = np.array([(out == t).any(axis=1).sum() for t in range(nt)], np.int64)
    mq = np.array([np.nanmean(np.asarray(q_inv_nm)[out == t]) for t in range(nt)], float)
    return Tracks(track_id=out, n_tracks=nt, length=length, mean_q_inv_nm=mq)


TASKS = [simulate, train, detect, evaluate, track]
