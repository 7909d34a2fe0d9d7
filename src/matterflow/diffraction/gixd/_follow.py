"""``gixd detect --follow``: detections of frames as they are appended (the XRD follow reader)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["follow_detect"]


def follow_detect(data: Path, out: Path, *, model: Path | None, geometry: Path | None,
                  params: dict[str, Any], batch_size: int = 8, idle_timeout: float | None = None,
                  poll_s: float = 0.2, settle_s: float = 0.5, force: bool = False,
                  report: Callable[[str], None] | None = None,
                  stop: threading.Event | None = None) -> tuple[dict, dict, Any, Any]:
    """Run ``gixd.detect`` on the frames of ``data`` as they arrive; batches in ``out/follow``.

    Returns ``(values, units, summary, shape)``: the stacked per-frame detections of every batch so
    far (the layout of the ``detect`` step of a run without ``--follow``) and the
    :class:`~matterflow.diffraction.xrd.follow.FollowSummary`, and the frames' shape.
    With ``method`` classical on polar frames, ``n_chi, n_q`` are taken from the first frame.
    """
    import h5py

    from matterflow.core.store import read_group
    from matterflow.diffraction.gixd.tasks import DetectParams, check_detect_inputs, detect
    from matterflow.diffraction.xrd.follow import (
        FollowSource,
        combine_batches,
        follow_run,
        settings_key,
    )

    p = DetectParams(**params)
    src = FollowSource(data, dataset=p.dataset, pattern=p.pattern, first=p.first, last=p.last,
                       stride=p.stride, settle_s=settle_s)
    key = settings_key("gixd.detect", p.model_dump(), model, geometry,
                       str(Path(data).resolve()))
    checked: list[tuple] = []

    def process_batch(idx: list[int], images: list[Any], reasons: list[str]) -> list[Any]:
        from matterflow.diffraction.gixd.tasks import Detections, _empty

        res = []
        for img, why in zip(images, reasons, strict=True):
            if img is None:
                res.append(Detections(**{**_empty(), "status": 1, "reason": why}))
                continue
            if not checked:  # model input size / PONI detector against the first frame
                nonlocal p
                if p.method == "classical" and geometry is None:
                    p = DetectParams(**{**params, "n_chi": int(img.shape[0]),
                                        "n_q": int(img.shape[1])})
                check_detect_inputs(model, tuple(img.shape), geometry=geometry, params=p,
                                    where=str(data))
                checked.append(tuple(img.shape))
            res.append(detect(img, model=model if p.method == "model" else None,
                              geometry=geometry, params=p))
        return res

    summary = follow_run(src, process_batch, Path(out) / "follow", key=key,
                         batch_size=batch_size, poll_s=poll_s, idle_timeout=idle_timeout,
                         force=force, report=report, stop=stop)
    values: dict[str, Any] = {}
    units: dict[str, str] = {}
    if summary.batches:
        with h5py.File("in-memory.h5", "w", driver="core", backing_store=False) as f:
            g = f.create_group("detect")
            combine_batches(g, summary.batches)
            values, units = read_group(g)
    values = {k: (np.asarray(v) if not isinstance(v, list) else v) for k, v in values.items()}
    return values, units, summary, (checked[0] if checked else src.shape)
