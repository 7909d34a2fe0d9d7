"""COCO JSON for GIXD labels and detections (boxes in polar pixels, [x, y, width, height]).

``to_coco`` writes the padded arrays of ``gixd.simulate`` / ``gixd.detect`` as a COCO
document (categories 1 ``peak``, 2 ``ring``); ``read_coco`` reads one back, checking
every field and naming it (``annotations[3].bbox``) when it is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError

__all__ = ["CATEGORIES", "to_coco", "write_coco", "read_coco"]

CATEGORIES = {1: "peak", 2: "ring"}


def to_coco(boxes: np.ndarray, labels: np.ndarray, n: np.ndarray, shape: tuple[int, int], *,
            scores: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None
            ) -> dict[str, Any]:
    """COCO document of ``n[i]`` boxes (x0, y0, x1, y1) per image of ``shape`` (rows, cols).

    ``extra``: per-box arrays (n_images, max) written into each annotation (q, χ, ...).
    """
    h, w = int(shape[0]), int(shape[1])
    images, anns = [], []
    for i in range(len(n)):
        images.append({"id": i, "file_name": f"frame_{i:06d}", "width": w, "height": h})
        for j in range(int(n[i])):
            x0, y0, x1, y1 = (float(v) for v in boxes[i, j])
            a = {"id": len(anns) + 1, "image_id": i, "category_id": int(labels[i, j]),
                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                 "iscrowd": 0}
            if scores is not None:
                a["score"] = float(scores[i, j])
            for k, v in (extra or {}).items():
                a[k] = float(v[i, j])
            anns.append(a)
    return {"images": images, "annotations": anns,
            "categories": [{"id": k, "name": v} for k, v in CATEGORIES.items()]}


def write_coco(path: str | Path, doc: dict[str, Any]) -> Path:
    """Write a COCO document atomically."""
    from matterflow.core.store import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, json.dumps(doc, indent=1).encode())
    return path


def read_coco(path: str | Path, *, max_boxes: int = 64) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray, tuple[int, int]]:
    """(boxes (n, max_boxes, 4) x0 y0 x1 y1 NaN padded, labels (n, max_boxes), n_boxes (n,),
    image shape (rows, cols)) of a COCO file; images are taken in the order of their ``id``.

    Raises :class:`InputError` naming the file and the field for an unreadable file,
    missing keys, unknown categories, boxes outside their image and images of
    different sizes.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: COCO file not found")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable COCO JSON file ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: a COCO file is a JSON object; got {type(doc).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(doc.get(key), list):
            raise InputError(f"{path}: field {key!r} (a list) is missing")
    cats = doc.get("categories")
    if cats is not None:
        for k, c in enumerate(cats):
            cid, name = c.get("id"), c.get("name")
            if CATEGORIES.get(cid) != name:
                raise InputError(f"{path}: categories[{k}] is {{id: {cid!r}, name: {name!r}}}; "
                                 f"known: {_known()}")
    ids: dict[Any, int] = {}
    shape = None
    for k, im in enumerate(sorted(doc["images"], key=lambda im: im.get("id", 0))):
        try:
            hw = (int(im["height"]), int(im["width"]))
            ids[im["id"]] = k
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: images[{k}] needs id, width and height; got {im!r}") from None
        if shape is not None and hw != shape:
            raise InputError(f"{path}: images[{k}] is {hw[1]} x {hw[0]}; the first image is "
                             f"{shape[1]} x {shape[0]} (all frames must have one size)")
        shape = hw
    n = len(ids)
    boxes = np.full((n, max_boxes, 4), np.nan, np.float32)
    labels = np.zeros((n, max_boxes), np.int64)
    nb = np.zeros(n, np.int64)
    for k, a in enumerate(doc["annotations"]):
        where = f"{path}: annotations[{k}]"
        if a.get("image_id") not in ids:
            raise InputError(f"{where}.image_id {a.get('image_id')!r} is not an id of images")
        if a.get("category_id") not in CATEGORIES:
            raise InputError(f"{where}.category_id {a.get('category_id')!r} is unknown; "
                             f"known: {_known()}")
        try:
            x, y, bw, bh = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{where}.bbox must be [x, y, width, height]; got "
                             f"{a.get('bbox')!r}") from None
        assert shape is not None
        if not (bw > 0 and bh > 0 and x >= 0 and y >= 0 and x + bw <= shape[1] + 1e-3
                and y + bh <= shape[0] + 1e-3):
            raise InputError(f"{where}.bbox {[x, y, bw, bh]} lies outside its image "
                             f"(0 <= x, x + width <= {shape[1]}, 0 <= y, y + height <= "
                             f"{shape[0]}, width and height > 0)")
        i = ids[a["image_id"]]
        if nb[i] >= max_boxes:
            raise InputError(f"{where}: image {a['image_id']!r} has more than {max_boxes} boxes")
        boxes[i, nb[i]] = (x, y, x + bw, y + bh)
        labels[i, nb[i]] = int(a["category_id"])
        nb[i] += 1
    return boxes, labels, nb, shape if shape is not None else (0, 0)


def _known() -> str:
    return ", ".join(f"{k} ({v})" for k, v in CATEGORIES.items())
