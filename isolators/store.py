"""Durable records on a real host: the :class:`~actors.ports.Store` port in a directory.

:class:`FileStore` keeps one file per key (its name percent-encoded, :func:`encode_key`;
a long one hashed), written atomically through a temporary file and ``os.replace``;
``fsync=True`` (the ``store_fsync`` setting) makes records survive the host's crash too.
The port factories :func:`registry` (a master) and :func:`checkpoint` (an agent) build
stores in the actor's work directory, private to its user (0700, 0600).

See docs/fault-tolerance.md, 'Agent recovery' (the stores' files).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
from typing import Any

from actors.config import ConfigError
from actors.protocol.codec import pack_value

#: Where a master keeps its registry without a ``work_dir`` setting (``impresario master``'s default).
DEFAULT_MASTER_WORK_DIR = "/var/tmp/impresario-master"
#: An agent's default work directory (as the agent's own ``work_dir`` default).
DEFAULT_AGENT_WORK_DIR = "/tmp/impresario"
#: Longest encoded key kept as a file name of its own (file systems allow 255 bytes).
MAX_NAME = 200
HASHED = "#"
TEMP = "."

_PLAIN = re.compile(rb"[A-Za-z0-9_-]")
_counter = itertools.count()


def encode_key(key: str) -> str:
    """A key as a file name: percent-encoding of every byte outside ``[A-Za-z0-9_-]``, and of a
    leading dot (so that no record's name starts with one: those are temporary files)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a store key must be a non-empty string, not {key!r}")
    out = []
    for i, b in enumerate(key.encode("utf-8")):
        ch = bytes((b,))
        if _PLAIN.fullmatch(ch) or (ch == b"." and i > 0):
            out.append(chr(b))
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def decode_key(name: str) -> str:
    """The inverse of :func:`encode_key`; ValueError for a name it cannot have made."""
    raw = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == "%":
            hx = name[i + 1:i + 3]
            if len(hx) != 2 or not all(h in "0123456789ABCDEFabcdef" for h in hx):
                raise ValueError(f"not a store file name: {name!r}")
            raw.append(int(hx, 16))
            i += 3
        else:
            raw += c.encode("utf-8")
            i += 1
    return raw.decode("utf-8")


class FileStore:
    """A :class:`~actors.ports.Store` in a directory, one file per key (see the module's text)."""

    def __init__(self, directory: str, fsync: bool = False) -> None:
        self.directory = directory
        self.fsync = fsync
        self.writes = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)

    # ------------------------------------------------------------------ names

    def _name(self, key: str) -> tuple[str, bytes]:
        """The file name of a key, and what the file holds before the value."""
        name = encode_key(key)
        if len(name) <= MAX_NAME:
            return name, b""
        raw = key.encode("utf-8")
        return HASHED + hashlib.sha256(raw).hexdigest(), len(raw).to_bytes(4, "big") + raw

    # ------------------------------------------------------------------ the Store protocol

    def load(self) -> dict[str, bytes]:
        """Every record as its bytes.  Leftover temporary files (a crash during a write) are
        removed; a file whose name this store cannot have made is skipped."""
        out: dict[str, bytes] = {}
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if name.startswith(TEMP):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except (IsADirectoryError, FileNotFoundError):
                continue
            if name.startswith(HASHED):
                n = int.from_bytes(data[:4], "big")
                try:
                    key = data[4:4 + n].decode("utf-8")
                except UnicodeDecodeError:
                    continue
                if len(data) < 4 + n or self._name(key)[0] != name:
                    continue   # not a record this store wrote
                out[key] = data[4 + n:]
                continue
            try:
                key = decode_key(name)
            except (ValueError, UnicodeDecodeError):
                continue
            out[key] = data
        return out

    def put(self, key: str, value: Any) -> None:
        data = value if type(value) is bytes else pack_value(value)
        name, head = self._name(key)
        tmp = os.path.join(self.directory, f"{TEMP}{name[:MAX_NAME]}.{os.getpid()}.{next(_counter)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(head)
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.directory, name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.writes += 1

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, self._name(key)[0]))
        self.writes += 1

    def flush(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- port factories


def _store(directory: str, settings: dict[str, Any]) -> FileStore:
    fsync = settings.get("store_fsync", False)
    if not isinstance(fsync, bool):
        raise ConfigError("setting 'store_fsync' has the wrong type: expected a boolean")
    try:
        return FileStore(directory, fsync=fsync)
    except OSError as e:
        raise ConfigError(f"cannot use {directory} for records: {e.strerror or e}") from None


def _dir_setting(settings: dict[str, Any], key: str, default: str) -> str:
    v = settings.get(key, default)
    if not isinstance(v, str) or not v:
        raise ConfigError(f"setting {key!r} must be a non-empty path")
    return v


def registry(actor: Any, settings: dict[str, Any]) -> FileStore:
    """A master's ``registry`` port: ``<work_dir>/registry`` (or the ``registry_dir`` setting)."""
    work_dir = _dir_setting(settings, "work_dir", DEFAULT_MASTER_WORK_DIR)
    return _store(_dir_setting(settings, "registry_dir", os.path.join(work_dir, "registry")), settings)


def checkpoint(actor: Any, settings: dict[str, Any]) -> FileStore:
    """An agent's ``checkpoint`` port: ``<work_dir>/meta/agent`` (or the ``checkpoint_dir``
    setting).  One agent per work directory: the records do not depend on the agent's name,
    so an agent restarted under another name still finds them."""
    work_dir = _dir_setting(settings, "work_dir", DEFAULT_AGENT_WORK_DIR)
    return _store(_dir_setting(settings, "checkpoint_dir", os.path.join(work_dir, "meta", "agent")), settings)
