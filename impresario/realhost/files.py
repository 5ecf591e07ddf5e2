"""Mesos' ``/files`` endpoints over a few roots: ``browse``, ``read`` (tailable) and
``download``, confined to what was attached.

A virtual path (``/master/log``, ``/slave/log``, a sandbox directory) names an attached
file or directory; nothing else is reachable.  A request path is decoded once by the
door; here it is refused (403) if any of its parts is ``..`` or ``.``, if it holds a NUL,
or if, once every symbolic link is resolved, it is not inside the attached root.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass

from .http import HttpError

#: The most bytes one ``read`` answers (a client asks again from the new offset).
MAX_READ = 4 * 2**20


@dataclass(frozen=True)
class Found:
    real: str          # the resolved path on this host
    virtual: str       # the path as the client names it
    root: str          # the virtual root it was found under


class Files:
    """Attached roots: virtual path -> a file or directory on this host (or a function
    answering one, for roots that move, such as an agent's sandboxes)."""

    def __init__(self) -> None:
        self.roots: dict[str, str | Callable[[], str | None]] = {}

    def attach(self, virtual: str, real: str | Callable[[], str | None]) -> None:
        self.roots[_clean(virtual)] = real

    def detach(self, virtual: str) -> None:
        self.roots.pop(_clean(virtual), None)

    def find(self, path: str | None) -> Found:
        if not path:
            raise HttpError(400, "give path=")
        virtual = _clean(path)
        root = None
        for v in sorted(self.roots, key=len, reverse=True):
            if virtual == v or virtual.startswith(v.rstrip("/") + "/"):
                root = v
                break
        if root is None:
            raise HttpError(403, f"{path}: not a file this server shows")
        base = self.roots[root]
        base_path = base() if callable(base) else base
        if not base_path:
            raise HttpError(404, f"{path}: not found")
        rest = virtual[len(root):].lstrip("/")
        base_real = os.path.realpath(base_path)
        real = os.path.realpath(os.path.join(base_real, rest)) if rest else base_real
        if real != base_real and not real.startswith(base_real.rstrip("/") + "/"):
            raise HttpError(403, f"{path}: leads outside what this server shows")
        if not os.path.exists(real):
            raise HttpError(404, f"{path}: not found")
        return Found(real, virtual, root)

    def browse(self, path: str | None) -> list[dict[str, object]]:
        found = self.find(path)
        if not os.path.isdir(found.real):
            raise HttpError(400, f"{path}: not a directory")
        out = []
        for name in sorted(os.listdir(found.real)):
            full = os.path.join(found.real, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            out.append({"path": posixpath.join(found.virtual, name), "size": st.st_size,
                        "mtime": int(st.st_mtime), "mode": stat.filemode(st.st_mode), "nlink": st.st_nlink,
                        "uid": st.st_uid, "gid": st.st_gid})
        return out

    def read(self, path: str | None, offset: int, length: int | None) -> dict[str, object]:
        """Mesos' answer: ``{"data": ..., "offset": ...}``; ``offset`` -1 answers the
        file's length and no data (a tail starts there)."""
        found = self.find(path)
        if os.path.isdir(found.real):
            raise HttpError(400, f"{path}: a directory (browse it)")
        try:
            with open(found.real, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if offset == -1:
                    return {"data": "", "offset": size}
                if offset < -1:
                    raise HttpError(400, "offset must be -1 or at least 0")
                n = MAX_READ if length is None or length < 0 else min(length, MAX_READ)
                fh.seek(min(offset, size))
                data = fh.read(n)
        except OSError as e:
            raise HttpError(404, f"{path}: {e.strerror}") from None
        return {"data": data.decode("utf-8", "replace"), "offset": min(offset, size)}

    def open_for_download(self, path: str | None) -> tuple[str, str]:
        """The real path of a file to download, and its name."""
        found = self.find(path)
        if os.path.isdir(found.real):
            raise HttpError(400, f"{path}: a directory")
        return found.real, posixpath.basename(found.virtual)


def _clean(path: str) -> str:
    """``path`` as an absolute virtual path; 403 where it could climb (``..``, ``.``, NUL)."""
    if "\x00" in path or "\\" in path:
        raise HttpError(403, f"{path!r}: not a path this server accepts")
    parts = [p for p in path.split("/") if p]
    if any(p in ("..", ".") for p in parts):
        raise HttpError(403, f"{path}: '..' and '.' are refused")
    return "/" + "/".join(parts)
