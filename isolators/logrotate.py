"""The container logger: a task's stdout and stderr, written to its sandbox and rotated at a
size, as Mesos' ``LogrotateContainerLogger`` (and its ``mesos-logrotate-logger``) does.

The containerizer starts one small process per container (:func:`command`): this module
run as a script by the executor's interpreter (``python -I -S``), so it imports nothing but
the standard library.  It reads the task's two pipes and writes ``stdout`` and ``stderr``
in the sandbox; when one would pass its size limit it is rotated: ``stdout.1`` is the
newest of the old files, ``stdout.N`` the oldest kept, and the oldest beyond the count is
removed, so one stream never holds more than ``max_size * (count + 1)`` bytes.  It runs in
a session of its own, out of the task's cgroups, and as the task's user where the task
has one; it outlives the executor that started it (a restarted agent's executor finds it
again), and ends when both pipes are closed: when every process of the task that held
them has ended.

Sizes and counts come from the containerizer's options (``max_stdout_size``,
``max_stderr_size``, ``logrotate_count``), and each task may change them through its
environment (:data:`ENV`): Mesos' ``CONTAINER_LOGGER_MAX_STDOUT_SIZE``, ... with
``CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS`` holding ``rotate N``.  See
docs/isolation.md, 'Sandboxes and the container logger'.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys

DEFAULT_MAX_SIZE = 10 * 2**20     #: Mesos' default, per file
DEFAULT_COUNT = 5                 #: old files kept per stream
MIN_SIZE = 4096                   #: one page, Mesos' floor
STREAMS = ("stdout", "stderr")
CHUNK = 65536
#: The task environment variables that change its logger, per stream: (max size, options).
ENV = {s: (f"CONTAINER_LOGGER_MAX_{s.upper()}_SIZE", f"CONTAINER_LOGGER_LOGROTATE_{s.upper()}_OPTIONS")
       for s in STREAMS}
_UNITS = {"": 1, "B": 1, "KB": 2**10, "KIB": 2**10, "MB": 2**20, "MIB": 2**20, "GB": 2**30, "GIB": 2**30,
          "TB": 2**40, "TIB": 2**40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_OPEN = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

Rotation = tuple[int, int]        # (max size in bytes, old files kept)


# --------------------------------------------------------------------------- the settings


def parse_size(text: str) -> int:
    """``"10MB"``, ``"512KiB"``, ``"4096"`` -> bytes (units are powers of 1024, as Mesos'),
    at least :data:`MIN_SIZE`; ValueError otherwise."""
    m = _SIZE.fullmatch(str(text))
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with B, KB, MB, GB, KiB, MiB, GiB)")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size < MIN_SIZE:
        raise ValueError(f"{text!r} is less than one page ({MIN_SIZE} bytes)")
    return size


def parse_options(text: str) -> int | None:
    """The count of a logrotate options string: ``"rotate 3"`` -> 3 (None: no ``rotate``).
    Only ``rotate N`` is understood; anything else is a ValueError naming it."""
    count = None
    for line in str(text).replace(";", "\n").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] != "rotate" or len(words) != 2 or not words[1].isdigit():
            raise ValueError(f"only 'rotate N' is understood, not {line.strip()!r}")
        count = int(words[1])
    return count


def configure(opts: dict[str, object]) -> dict[str, Rotation]:
    """Each stream's rotation from the containerizer options ``max_stdout_size``,
    ``max_stderr_size`` (bytes, or a size with a unit) and ``logrotate_count``; ValueError
    naming the option."""
    count = opts.get("logrotate_count", DEFAULT_COUNT)
    if type(count) is not int or count < 0:
        raise ValueError(f"logrotate_count must be a whole number, not negative: {count!r}")
    out = {}
    for stream in STREAMS:
        key = f"max_{stream}_size"
        value = opts.get(key, DEFAULT_MAX_SIZE)
        try:
            out[stream] = (parse_size(str(value)), count)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    return out


def for_task(defaults: dict[str, Rotation], environment: dict[str, str]) -> dict[str, Rotation]:
    """The rotation of one task: the defaults, changed by its environment (:data:`ENV`);
    ValueError naming the variable."""
    out = dict(defaults)
    for stream, (size_var, options_var) in ENV.items():
        size, count = out[stream]
        try:
            if size_var in environment:
                size = parse_size(environment[size_var])
        except ValueError as e:
            raise ValueError(f"{size_var}: {e}") from None
        try:
            given = parse_options(environment[options_var]) if options_var in environment else None
        except ValueError as e:
            raise ValueError(f"{options_var}: {e}") from None
        out[stream] = (size, count if given is None else given)
    return out


# --------------------------------------------------------------------------- reading back


def tail(path: str, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of a rotated stream: from ``path``, preceded by the end of
    ``path.1`` where ``path`` alone holds fewer (it was just rotated)."""
    out = b""
    for name in (path, f"{path}.1"):
        want = max_bytes - len(out)
        if want <= 0:
            break
        try:
            with open(name, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - want))
                out = f.read(want) + out
        except OSError:
            break
    return out


# --------------------------------------------------------------------------- writing


class RotatingLog:
    """One stream's file, rotated before it would pass ``max_size``: a write is cut after
    the last whole line that fits (a line longer than a whole file is cut where the file
    is full), and the rest goes on in a fresh file.  Write errors (a full disk) lose the
    data, never block the task: its pipe keeps being read."""

    def __init__(self, path: str, max_size: int, count: int) -> None:
        self.path = path
        self.max_size = max(1, max_size)
        self.count = max(0, count)
        self.fd: int | None = None
        self.size = 0
        self.lost = 0
        self.rotations = 0
        self._open()

    def _open(self, truncate: bool = False) -> None:
        try:
            self.fd = os.open(self.path, _OPEN | (os.O_TRUNC if truncate else 0), 0o644)
            self.size = os.fstat(self.fd).st_size
        except OSError:
            self.fd, self.size = None, 0

    def write(self, data: bytes) -> None:
        while data:
            if self.fd is None:
                self._open()
                if self.fd is None:
                    self.lost += len(data)
                    return
            room = self.max_size - self.size
            if len(data) <= room:
                self._put(data)
                return
            cut = data.rfind(b"\n", 0, max(0, room)) + 1
            if cut == 0 and self.size == 0:
                cut = room          # a line longer than a whole file
            if cut:
                self._put(data[:cut])
                data = data[cut:]
            self.rotate()
            if self.size:            # no fresh file to go on in: this output is lost
                self.lost += len(data)
                return

    def _put(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except OSError:
                self.lost += len(view)
                # Counted as written: a full disk must not make every later write retry a rotation.
                self.size += len(view)
                return
            self.size += n
            view = view[n:]

    def rotate(self) -> None:
        """``path`` -> ``path.1`` -> ... -> ``path.<count>``; the oldest is removed."""
        self.close()
        self.rotations += 1
        if self.count == 0:
            self._open(truncate=True)
            return
        for i in range(self.count, 0, -1):
            older = f"{self.path}.{i - 1}" if i > 1 else self.path
            try:
                os.replace(older, f"{self.path}.{i}")
            except FileNotFoundError:
                pass
            except OSError:
                break
        self._open()
        if self.size:                # path could not be moved away: start it again
            self.close()
            self._open(truncate=True)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def pump(streams: list[tuple[int, RotatingLog]]) -> None:
    """Copy each pipe into its log until every pipe is closed."""
    poller = select.poll()
    logs = {}
    for fd, log in streams:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        logs[fd] = log
    while logs:
        for fd, _ in poller.poll():
            if fd not in logs:
                continue
            log = logs[fd]
            try:
                data = os.read(fd, CHUNK)
            except OSError:
                data = b""
            if data:
                log.write(data)
                continue
            poller.unregister(fd)
            os.close(fd)
            log.close()
            del logs[fd]


# --------------------------------------------------------------------------- the process


def command(sandbox: str, fds: dict[str, int], rotation: dict[str, Rotation],
            owner: tuple[int, int] | None = None) -> list[str]:
    """The argv of a logger process reading ``fds`` (stream -> the pipe's read end, passed
    to it at the same number) into ``sandbox``, as ``owner`` (uid, gid) if given."""
    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
    if owner is not None:
        argv += ["--owner", f"{owner[0]}:{owner[1]}"]
    for stream in STREAMS:
        size, count = rotation[stream]
        argv.append(f"{fds[stream]}:{size}:{count}:{os.path.join(sandbox, stream)}")
    return argv


def main(argv: list[str]) -> int:
    """``[--owner UID:GID] FD:MAX_SIZE:COUNT:PATH ...``"""
    for name in ("SIGINT", "SIGHUP", "SIGPIPE"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    owner = None
    if argv[:1] == ["--owner"]:
        uid, gid = argv[1].split(":")
        owner = int(uid), int(gid)
        argv = argv[2:]
    specs = []
    for spec in argv:
        fd, size, count, path = spec.split(":", 3)
        specs.append((int(fd), int(size), int(count), path))
    if owner is not None and os.geteuid() == 0 and owner != (0, 0):
        # The task's user: what is written in its sandbox is its own, and nothing it can
        # place there (a link to another file) is written to with more rights than it has.
        os.setgroups([])
        os.setgid(owner[1])
        os.setuid(owner[0])
    pump([(fd, RotatingLog(path, size, count)) for fd, size, count, path in specs])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
