"""Reading model, checkpoint and chain files without running code from them.

A model file may come from anyone (a colleague, a download, a mail): loading
it must never execute what it holds. A Python pickle can run any code when it
is read, so no matterflow loader unpickles a file unless the user asks for it:

- torch files (``torch.save`` zip archives) are read with
  ``torch.load(..., weights_only=True)``: tensors and plain values (dict,
  list, str, int, float, bool, None) only; metadata is JSON text inside them;
- other files are HDF5 or skops archives, read as data;
- the file's first bytes (its *magic*) are checked before anything is decoded,
  and a file of another kind is an :class:`InputError` naming the file and
  what is accepted;
- a file of an older matterflow that holds pickled Python objects is loaded
  only with ``trust_pickle=True`` (the CLI's ``--trust-pickle``), with an
  :class:`UnsafeLoadWarning`.
"""

from __future__ import annotations

import io
import pickle
import warnings
from typing import Any

from matterflow.core.errors import InputError, MatterflowWarning

__all__ = ["MAGIC_ZIP", "MAGIC_HDF5", "UnsafeLoadWarning", "file_kind", "check_kind",
           "load_torch", "load_trusted_pickle", "warn_trusted_pickle", "not_readable", "NOT_TRUSTED"]

MAGIC_ZIP = b"PK\x03\x04"  # torch.save and skops archives
MAGIC_HDF5 = b"\x89HDF\r\n\x1a\n"
_KIND_NAMES = {"zip": "a zip archive (torch.save or skops file)", "hdf5": "an HDF5 file",
               "pickle": "a Python pickle", "empty": "an empty file", "unknown": "of unknown kind"}
NOT_TRUSTED = ("it holds pickled Python objects, which can run code when loaded (a file of an "
               "older matterflow, or one made to run code). If you made it yourself, "
               "pass --trust-pickle (workflow parameter trust_pickle: true) to load it once, "
               "and save it again in the new format")


class UnsafeLoadWarning(MatterflowWarning):
    """A file was unpickled because the user said it is trusted (``--trust-pickle``)."""


def file_kind(data: bytes) -> str:
    """``'zip'``, ``'hdf5'``, ``'pickle'`` (protocol 2 or later), ``'empty'`` or ``'unknown'``,
    from the first bytes of a file."""
    if not data:
        return "empty"
    if data.startswith(MAGIC_ZIP):
        return "zip"
    if data.startswith(MAGIC_HDF5):
        return "hdf5"
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "pickle"
    return "unknown"


def check_kind(data: bytes, accepted: tuple[str, ...], *, source: str, what: str) -> str:
    """The kind of ``data`` (:func:`file_kind`, its first bytes suffice) if it is one of
    ``accepted``; else an :class:`InputError` naming ``source`` and ``what`` it must be."""
    kind = file_kind(data)
    if kind in accepted:
        return kind
    if kind == "pickle":
        raise InputError(f"{source}: not loaded as {what}: {NOT_TRUSTED}")
    raise InputError(f"{source}: not {what}: the file is {_KIND_NAMES[kind]}; accepted: {what}, "
                     + " or ".join(_KIND_NAMES[k] for k in accepted if k != "pickle"))


def not_readable(source: str, what: str, exc: BaseException, *, why: str = "") -> InputError:
    """The :class:`InputError` for a file that is not ``what``: a missing key, a wrong shape,
    a damaged archive. Names ``source``, ``why`` (if given) and the first line of ``exc``."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return InputError(f"{source}: not {what}: {why + ' ' if why else ''}"
                      f"({type(exc).__name__}: {text})")


def warn_trusted_pickle(source: str) -> None:
    """Say that ``source`` is unpickled because the user trusts it."""
    warnings.warn(f"{source}: unpickling an old-format file because --trust-pickle was given "
                  "(this runs any code the file holds); save it again to get the new format",
                  UnsafeLoadWarning, stacklevel=3)


def load_torch(data: bytes, *, source: str, what: str, trust_pickle: bool = False) -> Any:
    """The object of a ``torch.save`` file, read with ``weights_only=True``.

    An old-format file (Python objects other than tensors and plain values) is an
    :class:`InputError`, or, with ``trust_pickle``, read with ``weights_only=False``
    after an :class:`UnsafeLoadWarning`. Anything else that fails is an
    :class:`InputError` naming ``source`` and ``what`` it must be.
    """
    import torch

    check_kind(data, ("zip", "pickle") if trust_pickle else ("zip",), source=source, what=what)
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols of foreign files
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not trust_pickle:
            raise InputError(f"{source}: not loaded as {what}: {NOT_TRUSTED}") from None
    except Exception as exc:
        raise not_readable(source, what, exc,
                           why="the torch archive is damaged or incomplete") from None
    warn_trusted_pickle(source)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise not_readable(source, what, exc) from None


def load_trusted_pickle(data: bytes, *, source: str, what: str, hint: str = "") -> Any:
    """Unpickle ``data`` (the user said it is trusted), with an :class:`UnsafeLoadWarning`;
    a damaged or truncated pickle is an :class:`InputError` naming ``source`` (and ``hint``)."""
    warn_trusted_pickle(source)
    try:
        return pickle.loads(data)  # noqa: S301 - the user passed --trust-pickle
    except Exception as exc:
        raise InputError(f"{source}: not a readable {what} (damaged or truncated pickle: "
                         f"{type(exc).__name__}: {exc}){'; ' + hint if hint else ''}") from None
