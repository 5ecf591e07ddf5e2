"""The POSIX fallback, for hosts without cgroups or agents not running as root.

* ``posix/cpu``: measures CPU time (psutil) over the task's process tree; it
  does **not** limit CPU.
* ``posix/mem``: measures resident memory over the task's process tree and,
  polling, kills the task with ``REASON_CONTAINER_LIMITATION_MEMORY`` when it
  is over its limit.  A spike between two polls is not seen, and the kernel
  does not stop the allocation: this is weaker than a cgroup.
* ``posix/rlimits``: ``RLIMIT_DATA`` at the task's memory limit (so a large
  allocation fails in the task instead of growing) and no core dumps.

The tree is the task's main process and its descendants: a process that
leaves it (a double-forking daemon) escapes measurement.  Every task still
runs in a session and process group of its own, which a kill reaches.
"""

from __future__ import annotations

import contextlib
import resource
import time
from typing import Any

import psutil

from actors.protocol.messages import Reason

from .isolator import Container, Isolator, Limitation
from .limits import MIB, memory_limit_bytes

MEM_POLL = 0.2   # seconds between two measurements of one task's memory


def _tree(c: Container) -> list[psutil.Process]:
    try:
        main = psutil.Process(c.pid)
        return [main, *main.children(recursive=True)]
    except psutil.Error:
        return []


class PosixCpu(Isolator):
    name = "posix/cpu"

    def __init__(self, opts: dict[str, Any]) -> None:
        pass

    def usage(self, c: Container, stats: dict[str, float]) -> None:
        user = system = 0.0
        procs = _tree(c)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                user += t.user + t.children_user
                system += t.system + t.children_system
        stats.setdefault("cpus_user_time_secs", user)
        stats.setdefault("cpus_system_time_secs", system)
        stats.setdefault("cpus_limit", c.cpus)
        stats.setdefault("processes", len(procs))


class PosixMem(Isolator):
    name = "posix/mem"

    def __init__(self, opts: dict[str, Any]) -> None:
        pass

    @staticmethod
    def _rss(c: Container) -> int:
        total = 0
        for p in _tree(c):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def watch(self, c: Container) -> Limitation | None:
        now = time.monotonic()
        if now < c.state.get(self.name, 0.0):
            return None
        c.state[self.name] = now + MEM_POLL
        rss, limit = self._rss(c), memory_limit_bytes(c.mem)
        if rss <= limit:
            return None
        return Limitation(Reason.REASON_CONTAINER_LIMITATION_MEMORY,
                          f"Memory limit exceeded: Requested: {limit / MIB:.0f} MiB, Used: {rss / MIB:.1f} MiB "
                          f"(resident, measured by polling the task's processes)")

    def usage(self, c: Container, stats: dict[str, float]) -> None:
        stats.setdefault("mem_rss_bytes", self._rss(c))
        stats.setdefault("mem_limit_bytes", memory_limit_bytes(c.mem))


class PosixRlimits(Isolator):
    name = "posix/rlimits"

    def __init__(self, opts: dict[str, Any]) -> None:
        pass

    def isolate(self, c: Container, pid: int) -> None:
        limit = memory_limit_bytes(c.mem)
        resource.prlimit(pid, resource.RLIMIT_DATA, (limit, limit))
        resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))
