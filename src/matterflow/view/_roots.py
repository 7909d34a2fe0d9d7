"""The served roots: which files the viewer may read, and nothing else.

Every file the server reads is named in a request by an *id*: ``"<root>/<relative
path>"`` for a file below a served folder, ``"<root>"`` for a served file. The
id is turned into a path only by :meth:`Roots.resolve`, which refuses absolute
paths, ``..``, NUL bytes, and anything whose real path (symlinks followed) is
not below the root's real path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["Roots", "Forbidden", "NotFound"]


class Forbidden(Exception):
    """The id names something outside the served roots (HTTP 403)."""


class NotFound(Exception):
    """The id names nothing that exists below the served roots (HTTP 404)."""


@dataclass
class Roots:
    """The folders and files given to ``matterflow view``; ``notes`` says what was skipped."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: list[str | os.PathLike]) -> Roots:
        """Roots from the command line: folders and files kept, anything else noted."""
        roots = cls()
        for a in args or ["."]:
            p = Path(a)
            if p.is_dir() or p.is_file():
                roots.paths.append(p.resolve())
            else:
                roots.notes.append(f"{a}: skipped, not a results file or a folder")
        return roots

    def id_of(self, path: Path) -> str:
        """The id of ``path`` (which must lie below a root)."""
        real = path.resolve()
        for i, root in enumerate(self.paths):
            if real == root:
                return str(i)
            if root.is_dir() and real.is_relative_to(root):
                return f"{i}/{real.relative_to(root).as_posix()}"
        raise Forbidden(f"{path} is not below a served root")

    def resolve(self, ident: str, *, kind: str = "file") -> Path:
        """The real path of an id: a file (``kind="file"``) or a folder (``kind="dir"``)."""
        if not ident or "\x00" in ident or "\\" in ident:
            raise NotFound(f"bad file id {ident!r}")
        head, _, rest = ident.partition("/")
        if not head.isdigit() or int(head) >= len(self.paths):
            raise NotFound(f"no served root {head!r}")
        root = self.paths[int(head)]
        rel = PurePosixPath(rest)
        if rel.is_absolute() or ".." in rel.parts or rest.startswith("/"):
            raise Forbidden(f"{ident!r}: absolute paths and '..' are not served")
        target = (root / rel) if rest else root
        real = target.resolve()
        if not (real == root or (root.is_dir() and real.is_relative_to(root))):
            raise Forbidden(f"{ident!r} points outside the served roots")
        ok = real.is_file() if kind == "file" else real.is_dir()
        if not ok:
            raise NotFound(f"{ident!r}: no such {'file' if kind == 'file' else 'folder'}")
        return real
