"""Frames processed as they are appended: a growing SWMR HDF5 file or a folder filling with files.

:class:`FollowSource` is the reader (shared by ``xrd process --follow`` and
``gixd detect --follow``): ``poll()`` says how many frames are complete now,
``src[i]`` reads frame ``i``.

- An HDF5 file written by another process in SWMR mode (``h5py`` ``swmr_mode``):
  opened with ``swmr=True`` and the dataset's shape reread with ``refresh()``
  at each poll. A frame counts as written once the shape that holds it has been
  seen for ``settle_s`` (a writer resizes, writes, then flushes). A file written
  without SWMR is reopened at every poll (the writer must close or flush it). The
  file may not exist yet when following starts.
- A folder (with ``pattern``, default every file the XRD readers accept) or a
  glob pattern: files are taken in natural (numeric) order, a file only when it
  is complete: its size and modification time unchanged for ``settle_s`` and
  readable to its last frame. A file that stays unreadable for ``give_up_s`` is
  taken as one failed frame (with the reason) and the rest go on. Hidden files
  and other suffixes (``.tmp``, ``.part``) are ignored, so writers that rename
  finished files work too.

:func:`follow_run` drives the processing: batches of up to ``batch_size``
frames, each written atomically to its own file in a batch folder (a kill loses
at most the batch being processed; a rerun with the same settings resumes after
the last batch), until SIGINT/SIGTERM (the current batch is finished and
written), ``idle_timeout`` seconds without a new frame, or the source's
``last`` frame. :func:`combine_batches` stacks the batch files into one group.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matterflow.core.errors import InputError
from matterflow.diffraction.xrd._io import _FABIO, _H5, FrameError, FrameSource, _natural_key

__all__ = ["FollowSource", "follow_run", "FollowSummary", "combine_batches", "batch_files",
           "follow_process", "settings_key"]


class FollowSource:
    """Frames of a growing input (see the module docstring).

    ``first``, ``last`` (exclusive) and ``stride`` select raw frames as in
    :class:`~matterflow.diffraction.xrd._io.FrameSource`; logical frame ``i`` is
    raw frame ``first + i * stride``. With ``last`` the source is :attr:`finished`
    once that many raw frames have arrived.
    """

    def __init__(self, path: str | Path, *, dataset: str | None = None,
                 pattern: str | None = None, first: int = 0, last: int | None = None,
                 stride: int = 1, settle_s: float = 0.5, give_up_s: float = 10.0):
        if stride < 1 or first < 0:
            raise InputError(f"follow {path}: first must be >= 0 and stride >= 1; got first="
                             f"{first}, stride={stride}")
        self.path = Path(path)
        self.dataset, self.first, self.last, self.stride = dataset, first, last, stride
        self.settle_s, self.give_up_s = settle_s, give_up_s
        text = str(path)
        self.shape: tuple[int, int] | None = None
        self.waiting_for = ""  # why no (more) frame is available, for messages
        if pattern is not None or self.path.is_dir() or any(c in text for c in "*?["):
            self.kind = "files"
            if pattern is None and any(c in text for c in "*?["):
                self._glob = text
            else:
                if self.path.exists() and not self.path.is_dir():
                    raise InputError(f"follow {text!r}: with pattern={pattern!r} the input must "
                                     "be a folder")
                self._glob = str(self.path / (pattern or "*"))
            self._any_suffix = pattern is None and not any(c in text for c in "*?[")
            self._frames: list[tuple[Path, int, FrameSource | None, str]] = []
            self._taken: set[str] = set()
            self._seen: dict[str, tuple[tuple[int, int], float, float]] = {}
        elif self.path.suffix.lower() in _H5:
            self.kind = "h5"
            self._file: Any = None
            self._ds: Any = None
            self._reopen = False
            self._history: list[tuple[float, int]] = []
            self._raw = 0
        else:
            raise InputError(f"follow {text!r}: give an HDF5 file ({', '.join(sorted(_H5))}), a "
                             "folder that fills with frame files, or a glob pattern")

    # -- how many frames
    def raw_available(self) -> int:
        return len(self._frames) if self.kind == "files" else self._raw

    def _logical(self, raw: int) -> int:
        stop = raw if self.last is None else min(raw, self.last)
        return max(0, math.ceil((stop - self.first) / self.stride))

    def raw_index(self, i: int) -> int:
        return self.first + int(i) * self.stride

    def poll(self) -> int:
        """Frames complete now (logical count, after first/last/stride)."""
        if self.kind == "h5":
            self._poll_h5()
        else:
            self._poll_files()
        return self._logical(self.raw_available())

    def __len__(self) -> int:
        return self._logical(self.raw_available())

    @property
    def finished(self) -> bool:
        """True when ``last`` raw frames have arrived (nothing more will be taken)."""
        return self.last is not None and self.raw_available() >= self.last

    def _poll_h5(self) -> None:
        from matterflow.diffraction.xrd._io import _find_h5_dataset, _h5py

        h5py = _h5py()
        now = time.monotonic()
        if self._reopen and self._file is not None:
            self._close_h5()
        if self._file is None:
            if not self.path.exists():
                self.waiting_for = f"{self.path} does not exist yet"
                return
            try:
                self._file = h5py.File(self.path, "r", libver="latest", swmr=True)
                self._reopen = False
            except OSError:
                try:  # not an SWMR file: reopened at every poll
                    self._file = h5py.File(self.path, "r")
                    self._reopen = True
                except OSError as exc:
                    self.waiting_for = f"{self.path} cannot be opened yet ({exc})"
                    return
            try:
                parts = _find_h5_dataset(self._file, self.dataset, self.path)
            except InputError as exc:  # the writer may not have made the dataset yet
                self.waiting_for = str(exc)
                self._close_h5()
                return
            ds = parts[0]
            if ds.ndim not in (2, 3):
                self._close_h5()
                raise InputError(f"{self.path}: dataset {ds.name!r} has shape {ds.shape}; "
                                 "frames need 2 or 3 dimensions")
            self._ds = ds
        else:
            self._ds.refresh()
        ds = self._ds
        shape = tuple(int(s) for s in ds.shape[-2:])
        if self.shape is None:
            self.shape = shape  # type: ignore[assignment]
        elif shape != self.shape:
            raise InputError(f"{self.path}: dataset {ds.name!r} now holds frames of {shape}; "
                             f"it held {self.shape}")
        n = 1 if ds.ndim == 2 else int(ds.shape[0])
        self._history.append((now, n))
        settled = [k for t, k in self._history if t <= now - self.settle_s]
        if settled:
            self._raw = max(self._raw, min(n, max(settled)))
            # keep the newest settled entry and the ones still settling
            last_t = max(t for t, _k in self._history if t <= now - self.settle_s)
            self._history = [(t, k) for t, k in self._history if t >= last_t]
        self.waiting_for = f"{self.path}:{ds.name} holds {n} frames"

    def _close_h5(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        self._file = self._ds = None

    def _accept(self, p: str) -> bool:
        name = Path(p).name
        if name.startswith("."):
            return False
        if self._any_suffix:
            return Path(p).suffix.lower() in _H5 | _FABIO | {".npy"}
        return True

    def _poll_files(self) -> None:
        now = time.monotonic()
        self.waiting_for = ""
        names = [p for p in sorted(glob.glob(self._glob), key=_natural_key)
                 if p not in self._taken and self._accept(p) and Path(p).is_file()]
        for p in names:
            try:
                st = Path(p).stat()
            except OSError:  # removed or renamed meanwhile
                break
            sig = (st.st_size, st.st_mtime_ns)
            old = self._seen.get(p)
            if old is None or old[0] != sig:
                self._seen[p] = (sig, now, old[2] if old else now)
                self.waiting_for = f"{Path(p).name} is still being written"
                break
            _sig, stable_since, first_seen = old
            if now - stable_since < self.settle_s or st.st_size == 0:
                self.waiting_for = f"{Path(p).name} is still being written"
                break
            reason = ""
            src = None
            try:
                src = FrameSource(p, dataset=self.dataset)
                src[len(src) - 1]  # readable to its last frame
                src.close()
            except (InputError, FrameError) as exc:
                reason = str(exc)
                if src is not None:
                    src.close()
                src = None
            if src is None and now - stable_since < self.give_up_s:
                self.waiting_for = f"{Path(p).name} is not readable yet ({reason})"
                break
            self._taken.add(p)
            self._seen.pop(p, None)
            if src is None:  # stable but unreadable: one failed frame, the rest go on
                self._frames.append((Path(p), 0, None, reason))
                continue
            if self.shape is None:
                self.shape = src.shape
            for j in range(len(src)):
                self._frames.append((Path(p), j, src, ""))
        self.waiting_for = self.waiting_for or f"{self._glob}: no new file"

    # -- reading
    def __getitem__(self, i: int) -> np.ndarray:
        r = self.raw_index(i)
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} is not available yet ({len(self)} are)")
        if self.kind == "h5":
            try:
                data = np.asarray(self._ds[()] if self._ds.ndim == 2 else self._ds[r])
            except Exception as exc:
                raise FrameError(f"{self.path}: frame {r} cannot be read: "
                                 f"{type(exc).__name__}: {exc}") from exc
            if data.dtype.kind not in "iuf":
                data = data.astype(np.float32)
            return data
        path, j, src, reason = self._frames[r]
        if src is None:
            raise FrameError(f"{path}: cannot be read: {reason}")
        try:
            data = src[j]
        finally:
            src.close()
        if self.shape is not None and data.shape != self.shape:
            raise FrameError(f"{path}: frame {j} has shape {data.shape}, expected {self.shape}")
        return data

    def describe(self, i: int) -> str:
        r = self.raw_index(i)
        if self.kind == "h5":
            return f"{self.path.name}[{r}]"
        path, j, _src, _why = self._frames[r]
        return f"{path.name}[{j}]"

    def close(self) -> None:
        if self.kind == "h5":
            self._close_h5()


@dataclass
class FollowSummary:
    """How a follow run ended."""

    n_frames: int = 0          # frames in the batch folder (all runs)
    n_new: int = 0             # frames processed by this run
    n_resumed: int = 0         # frames found done from an earlier run
    seconds: float = 0.0       # wall time of this run, the final idle wait included
    active_s: float = 0.0      # from the start to the last batch written
    stopped_by: str = ""       # "signal", "idle", "last"
    waiting_for: str = ""
    batches: list[Path] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Frames per second of this run (wall time up to the last batch)."""
        return self.n_new / self.active_s if self.active_s > 0 else 0.0


def batch_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob("batch-*.h5"))


def _done_batches(folder: Path, key: str, force: bool) -> tuple[list[Path], int]:
    import h5py

    files = batch_files(folder)
    if force:
        for p in files:
            p.unlink()
        return [], 0
    done = 0
    for p in files:
        try:
            with h5py.File(p, "r") as f:
                k, start, stop = str(f.attrs["key"]), int(f.attrs["start"]), int(f.attrs["stop"])
        except (OSError, KeyError) as exc:
            raise InputError(f"{p}: not a batch file of a follow run ({exc}); remove it or give "
                             "--force") from None
        if k != key:
            raise InputError(f"{folder}: batches of a follow run with other settings (input, "
                             "geometry, model or parameters); give --force to start again or "
                             "another --out")
        if start != done:
            raise InputError(f"{p}: frames {start}..{stop - 1}, but the batches before end at "
                             f"{done}; remove the batch files after it or give --force")
        done = stop
    return files, done


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the returned event (a second SIGINT interrupts at once)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def follow_run(source: FollowSource,
               process_batch: Callable[[list[int], list[np.ndarray | None], list[str]], list[Any]],
               folder: str | Path, *, key: str, batch_size: int = 8, poll_s: float = 0.2,
               idle_timeout: float | None = None, force: bool = False,
               report: Callable[[str], None] | None = None,
               stop: threading.Event | None = None) -> FollowSummary:
    """Process the frames of ``source`` as they arrive; returns how it ended.

    ``process_batch(indices, images, reasons)`` gets the logical frame indices,
    the images (``None`` where a frame could not be read, its reason in
    ``reasons``) and returns one result dataclass per frame; each batch's results
    are written to ``folder/batch-<first frame>.h5`` (group ``batch``, attributes
    ``key``, ``start``, ``stop``). ``key`` identifies the settings: batches of
    another key are refused (``force`` removes them).
    """
    from matterflow.core.registry import stack_results
    from matterflow.core.store import atomic_h5, write_outputs

    if batch_size < 1:
        raise InputError(f"batch size must be >= 1; got {batch_size}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, done = _done_batches(folder, key, force)
    summary = FollowSummary(n_frames=done, n_resumed=done, batches=list(files))
    say = report or (lambda _m: None)
    if done:
        say(f"resuming after {done} frames done by an earlier run")
    t0 = time.monotonic()
    last_new = t0
    waiting_said = False
    with _stop_on_signals() as sig_stop:
        stop_evt = stop or sig_stop
        while True:
            if stop_evt.is_set() or sig_stop.is_set():
                summary.stopped_by = "signal"
                break
            avail = source.poll()
            if avail <= done:
                if source.finished:
                    summary.stopped_by = "last"
                    break
                now = time.monotonic()
                if idle_timeout is not None and now - last_new >= idle_timeout:
                    summary.stopped_by = "idle"
                    break
                if not waiting_said:
                    say(f"{done} frames done; waiting for more ({source.waiting_for})")
                    waiting_said = True
                time.sleep(poll_s)
                continue
            waiting_said = False
            idx = list(range(done, min(avail, done + batch_size)))
            images: list[np.ndarray | None] = []
            reasons: list[str] = []
            for i in idx:
                try:
                    images.append(source[i])
                    reasons.append("")
                except FrameError as exc:
                    images.append(None)
                    reasons.append(str(exc))
            results = process_batch(idx, images, reasons)
            values, units = stack_results(results)
            path = folder / f"batch-{idx[0]:09d}.h5"
            with atomic_h5(path) as f:
                g = f.create_group("batch")
                write_outputs(g, values, units)
                f.attrs.update({"key": key, "start": idx[0], "stop": idx[-1] + 1})
            summary.batches.append(path)
            done = idx[-1] + 1
            summary.n_frames = done
            summary.n_new += len(idx)
            last_new = time.monotonic()
            elapsed = summary.active_s = last_new - t0
            say(f"{done} frames done ({summary.n_new} this run), "
                f"{summary.n_new / max(elapsed, 1e-9):.1f} frames/s")
    summary.seconds = time.monotonic() - t0
    summary.waiting_for = source.waiting_for
    source.close()
    return summary


def combine_batches(dst: Any, batches: Sequence[Path]) -> None:
    """Stack the batch files' outputs into the HDF5 group ``dst`` (frames in order)."""
    from matterflow.core.store import stack_groups

    stack_groups(dst, list(batches), "batch")


def settings_key(*parts: Any) -> str:
    """A hash of the settings of a follow run (JSON of ``parts``; files by their bytes)."""
    import hashlib

    def norm(x: Any) -> Any:
        if isinstance(x, Path) and x.is_file():
            return hashlib.sha256(x.read_bytes()).hexdigest()
        return x

    blob = json.dumps([norm(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def follow_process(path: str | Path, out: str | Path, *, batch_size: int = 8,
                   idle_timeout: float | None = None, poll_s: float = 0.2, settle_s: float = 0.5,
                   force: bool = False, report: Callable[[str], None] | None = None,
                   stop: threading.Event | None = None) -> tuple[Any, FollowSummary]:
    """``xrd process --follow``: the process file's chain over frames as they arrive.

    Batches go to ``out/follow/``; at the end ``out/results.h5`` (steps ``process`` and
    ``reduce``, as a run without ``--follow`` writes them), ``azint.nxs`` and ``fits.csv``
    are written from all batches so far. Returns (the
    :class:`~matterflow.diffraction.xrd.processing.ProcessOutcome`, the summary).
    """
    import dataclasses

    import h5py

    from matterflow.core.store import atomic_h5, base_provenance, write_outputs, write_provenance
    from matterflow.diffraction.xrd.pipeline import STATUS_FAILED, Pipeline
    from matterflow.diffraction.xrd.plugins import chain_spec, validate_chain
    from matterflow.diffraction.xrd.processing import ProcessOutcome, _Reduce, read_process_spec

    spec, base = read_process_spec(path)
    src_path = spec.input.path if Path(spec.input.path).is_absolute() else str(base / spec.input.path)
    geo = Path(spec.geometry) if Path(spec.geometry).is_absolute() else base / spec.geometry
    if not geo.is_file():
        raise InputError(f"{path}: geometry {str(geo)!r}: PONI file not found")
    try:
        chain = chain_spec(validate_chain(spec.plugins, base_dir=base))
        pipe = Pipeline(str(geo), chain, base_dir=base)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    src = FollowSource(src_path, dataset=spec.input.dataset, pattern=spec.input.pattern,
                       first=spec.input.first, last=spec.input.last, stride=spec.input.stride,
                       settle_s=settle_s)
    out = Path(out)
    key = settings_key("xrd.process", spec.model_dump(exclude={"export", "reduce", "name",
                                                               "description", "batch_size"}),
                       geo, str(Path(src_path).resolve()))

    def process_batch(idx: list[int], images: list[Any], reasons: list[str]) -> list[Any]:
        res = []
        for i, img, why in zip(idx, images, reasons, strict=True):
            if img is None:
                r = pipe._result(i, STATUS_FAILED, why, None, time.perf_counter())
            else:
                r = pipe.run(image=img, index=i)
            res.append(dataclasses.replace(r, frame_index=i, source_frame=src.raw_index(i)))
        return res

    summary = follow_run(src, process_batch, out / "follow", key=key,
                         batch_size=spec.batch_size or batch_size, poll_s=poll_s,
                         idle_timeout=idle_timeout, force=force, report=report, stop=stop)
    results = out / "results.h5"
    outcome = ProcessOutcome(results=results, seconds=summary.seconds)
    if not summary.batches:
        return outcome, summary
    red = spec.reduce or _Reduce()
    red_params = {**red.model_dump(), "unit": pipe.unit}
    with atomic_h5(results) as f:
        write_provenance(f, {**base_provenance(), "workflow_name": spec.name, "follow": True,
                             "frames": summary.n_frames})
        g = f.create_group("process")
        combine_batches(g, summary.batches)
        g.attrs.update({"task": "xrd.process", "params": json.dumps(
            {**spec.input.model_dump(exclude={"path"}), "plugins": chain,
             "base_dir": str(base)}, default=str), "n_items": summary.n_frames})
        st = g["status"][()]
        reasons = [str(s) for s in g["reason"].asstr()[()]]
        from matterflow.diffraction.xrd.tasks import reduce as reduce_task

        r = reduce_task(g["radial"][()], g["intensity"][()], g["sigma"][()], st, reasons,
                        params=red_params)
        from matterflow.core.registry import result_to_dict

        values, units = result_to_dict(r)
        rg = f.create_group("reduce")
        write_outputs(rg, values, units)
        rg.attrs.update({"task": "xrd.reduce", "params": json.dumps(red_params)})
        idx = g["frame_index"][()]
        st_all = rg["frame_status"][()]
        reasons_all = [str(s) for s in rg["frame_reason"].asstr()[()]]
    outcome.n_frames = int(st.size)
    for code, name in ((1, "failed"), (3, "fit_failed")):
        rows = np.nonzero(st == code)[0]
        setattr(outcome, f"n_{name}", int(rows.size))
        setattr(outcome, name, [(int(idx[k]), reasons[k]) for k in rows])
    sus = np.nonzero(st_all == 2)[0]
    outcome.n_suspect = int(sus.size)
    outcome.suspect = [(int(idx[k]), reasons_all[k]) for k in sus]
    from matterflow.diffraction.xrd.export import export_fit_csv, export_nexus

    if spec.export.nexus:
        outcome.nexus = export_nexus(results, out / "azint.nxs", geometry_text=geo.read_text())
        outcome.files.append(outcome.nexus)
    if spec.export.csv:
        p = export_fit_csv(results, out / "fits.csv")
        if p:
            outcome.files.append(p)
    del h5py
    return outcome, summary
