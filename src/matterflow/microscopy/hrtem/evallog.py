"""The evaluation log of ``hrtem.match``: every evaluation stored as it is made, so that a
run killed mid-way resumes from them.

The log is a JSON-lines file: a header line (what the run is: the image's SHA-256, the
pixel size, the match parameters, the code version), then one line per evaluation
(``x``, ``loss``, ``thickness``, ``stage`` and, for gradient and Hessian steps, the
gradient or Hessian the search used). The header is written atomically; each record is
appended, flushed and fsync'ed, and a torn last line (a kill during the write) is dropped
when the log is read, so the log always holds whole evaluations.

A rerun with the same image and settings *replays* the stored evaluations: the search runs
again with the same seed, and every evaluation it asks for that is stored (the same point,
in the same order) is taken from the log instead of the forward model. The search is
deterministic, so the resumed run's evaluations and result equal an uninterrupted run's
(what it recomputes is only the cheap part: the GP fits and acquisition optimisation).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.core.store import atomic_write_bytes

__all__ = ["EvalLog", "fingerprint"]

FORMAT = "matterflow.hrtem.evaluations/1"


def fingerprint(image: np.ndarray, pixel_size: float | None, params: dict[str, Any],
                version: str) -> dict[str, Any]:
    """What identifies a match run (JSON-ready)."""
    img = np.ascontiguousarray(image, dtype=np.float64)
    h = hashlib.sha256(str(img.shape).encode() + img.tobytes()).hexdigest()
    return {"format": FORMAT, "image_sha256": h, "pixel_size": pixel_size,
            "params": json.loads(json.dumps(params)), "version": version}


class EvalLog:
    """An append-only log of evaluations at ``path`` (see the module doc).

    Opening it with a header that differs from the stored one raises :class:`InputError`
    naming what differs, unless ``force`` (then the log starts over).
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any], *,
                 force: bool = False):
        self.path = Path(path)
        self.header = header
        self.records: list[dict[str, Any]] = []
        if self.path.exists() and not force:
            stored, self.records = _read(self.path)
            if stored != header:
                raise InputError(f"{self.path}: holds the evaluations of another run "
                                 f"({_differences(stored, header)} differ); give --force to "
                                 "start over, or another --out")
            self._rewrite()  # drops a torn last line
        else:
            self._rewrite()

    def _rewrite(self) -> None:
        lines = [json.dumps(self.header)] + [json.dumps(r) for r in self.records]
        atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode())

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` records (the search diverged from the stored ones)."""
        del self.records[n:]
        self._rewrite()


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        raise InputError(f"{path}: not an hrtem evaluation log (line 1 is not JSON); "
                         "give --force to overwrite it") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputError(f"{path}: not an hrtem evaluation log (no {FORMAT!r} header); "
                         "give --force to overwrite it")
    records = []
    for k, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if k < len(lines):  # only the last line can be torn by a kill
                raise InputError(f"{path}: line {k} is not JSON") from None
    return header, records


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    out = [k for k in ("image_sha256", "pixel_size", "version") if a.get(k) != b.get(k)]
    pa, pb = a.get("params") or {}, b.get("params") or {}
    out += [f"params.{k}" for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    return ", ".join(out).replace("image_sha256", "image") or "format"
