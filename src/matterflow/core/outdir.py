"""The output folder of a run: checked before any work starts, and held by one run at a time.

:func:`check_out_dir` makes the folder (if missing) and proves, before anything
is computed, that a file can be created in it and that it has room: a
read-only, forbidden or full folder is an
:class:`~matterflow.core.errors.InputError` (exit 2) instead of a failure after
the first step was computed.

:class:`RunLock` is a lock file ``OUT/.matterflow.lock`` holding the PID, host
and start time of the run that owns the folder. A second run on the same folder
stops at once with a message naming the owner (or, with ``wait=True``, waits
until it is free); a lock left by a process that no longer exists on this host
is stale and taken over. Creation is ``O_CREAT | O_EXCL``: of two runs starting
at the same moment, exactly one gets the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from matterflow.core.errors import InputError

__all__ = ["check_out_dir", "RunLock", "LOCK_NAME", "MIN_FREE_BYTES"]

LOCK_NAME = ".matterflow.lock"
MIN_FREE_BYTES = 16 << 20   # a run needs at least this much room besides what it stored before


def check_out_dir(out: str | os.PathLike, *, need_bytes: int | None = None) -> Path:
    """Make ``out`` if missing and check it is a writable folder with room; the path.

    ``need_bytes`` is the room the run is expected to need (default: 16 MiB, or the
    size of an earlier ``results.h5`` in it if larger). Raises InputError naming the
    folder and what to do.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; give a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror}); "
                         "choose a folder you can write to") from None
    probe = out / f".matterflow-probe.{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"matterflow")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write there ({exc.strerror}); make it writable "
                         "or choose another folder") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    if need_bytes is None:
        earlier = out / "results.h5"
        need_bytes = max(MIN_FREE_BYTES, earlier.stat().st_size if earlier.exists() else 0)
    free = shutil.disk_usage(out).free
    if free < need_bytes:
        raise InputError(f"--out {out}: only {_size(free)} free, a run there needs at least "
                         f"{_size(need_bytes)}; free some space or choose another folder")
    return out


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``OUT/.matterflow.lock``, held while a run writes into ``OUT`` (a context manager).

    Parameters
    ----------
    out : path
        The output folder (must exist).
    wait : bool
        If another live run holds the folder, wait until it is free (default: stop at once).
    timeout_s : float, optional
        With ``wait``, give up after this many seconds (default: wait forever).
    poll_s : float
        Seconds between two looks at the lock while waiting.
    """

    def __init__(self, out: str | os.PathLike, *, wait: bool = False,
                 timeout_s: float | None = None, poll_s: float = 0.5):
        self.path = Path(out) / LOCK_NAME
        self.wait = wait
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}   # being written, or garbage: judged by its age below
        return data if isinstance(data, dict) else {}

    def _stale(self, info: dict[str, Any]) -> bool:
        if not info:    # unreadable: stale once it is older than a few seconds
            try:
                return time.time() - self.path.stat().st_mtime > 5
            except FileNotFoundError:
                return True
        if info.get("host") != self.owner["host"]:
            return False    # another machine's process: cannot be checked, so it is held
        pid = info.get("pid")
        return not isinstance(pid, int) or not _alive(pid)

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise InputError(f"{self.path}: cannot create the run lock ({exc.strerror}); "
                             "make the output folder writable or choose another") from None
        with os.fdopen(fd, "w") as fh:
            json.dump({**self.owner, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, fh)
        return True

    def acquire(self) -> RunLock:
        """Take the lock; InputError if another live run holds it (unless ``wait``)."""
        t0 = time.monotonic()
        while True:
            if self._try_create():
                self.held = True
                return self
            info = self._read()
            if info is None:
                continue                    # released just now: try again
            if self._stale(info):
                # take over: rename the stale file away (atomic, so of two runs taking
                # over at once only one removes it), then create ours
                grave = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.path, grave)
                    try:
                        moved = json.loads(grave.read_text())
                    except (OSError, ValueError):
                        moved = {}
                    if info and moved != info:      # a live run's fresh lock: put it back
                        with contextlib.suppress(OSError):
                            os.link(grave, self.path)
                    grave.unlink()
                continue
            if not self.wait or (self.timeout_s is not None
                                 and time.monotonic() - t0 > self.timeout_s):
                who = (f"process {info.get('pid')} on {info.get('host')}, started "
                       f"{info.get('started', '?')}" if info else "another run")
                raise InputError(
                    f"{self.path.parent}: another run is writing into this folder ({who}); "
                    "wait for it to finish (or pass --wait), or choose another --out. If no "
                    f"such run exists, delete {self.path}")
            time.sleep(self.poll_s)

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        self.held = False
        info = self._read()
        if info and info.get("pid") == self.owner["pid"] and info.get("host") == self.owner["host"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
