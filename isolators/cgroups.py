"""cgroups v1 and v2: finding the hierarchies (:func:`detect`), and the cgroups isolator.

A controller is used through cgroup2 only where a cgroup2 hierarchy holds it (its root
``cgroup.controllers``), else through its v1 mount; a cgroup2 mount without it (systemd's
hybrid layout) still serves ``cgroup.kill``, ``cpu.stat`` and device programs.  One
:class:`CgroupsIsolator` serves ``cgroups/cpu``, ``/mem``, ``/pids`` and ``/devices``; each
container's cgroup is ``<root>/<agent id>/<container>`` in every hierarchy it needs.  An OOM
kill or a refused fork is a limitation.  The devices fallback (a private ``/dev`` without
``CAP_MKNOD``) is weaker: say so where it is used.

See docs/isolation.md, 'The names' and 'cgroups v1 and v2'.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from actors.ports import ContainerError
from actors.protocol.messages import Reason

from . import bpf
from .isolator import UNSHARE_MOUNT, Container, Isolator, Limitation
from .limits import (
    DEFAULT_DEVICES,
    DEFAULT_PIDS_MAX,
    MIB,
    cfs_quota_us,
    cpu_max,
    cpu_shares,
    cpu_weight,
    memory_limit_bytes,
)

log = logging.getLogger("impresario.cgroups")

V1_CONTROLLERS = frozenset({"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
                            "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"})
#: The controllers each subsystem needs (v1 may add cpuacct for statistics).
SUBSYSTEM_CONTROLLER = {"cpu": "cpu", "mem": "memory", "pids": "pids", "devices": "devices"}
SUBSYSTEMS = tuple(SUBSYSTEM_CONTROLLER)
CLEANUP_DEADLINE = 10.0
DEVICE_BACKENDS = ("auto", "v1", "bpf", "private-dev")
PRIVATE_DEV = 0   # the devices "version" of the private /dev fallback
NO_MKNOD = ["setpriv", "--bounding-set", "-mknod", "--"]


class IsolationError(ValueError):
    """An isolator cannot work on this host as configured (said at start-up)."""


# --------------------------------------------------------------------------- hierarchies


@dataclass(frozen=True)
class Hierarchies:
    """Where each controller is mounted on this host."""

    v1: dict[str, str] = field(default_factory=dict)   # controller -> mount point
    v2: str | None = None                                # the cgroup2 mount point
    v2_controllers: frozenset[str] = frozenset()

    def version_of(self, controller: str) -> int | None:
        if self.v2 is not None and controller in self.v2_controllers:
            return 2
        if controller in self.v1:
            return 1
        return None

    def describe(self) -> str:
        parts = []
        if self.v1:
            mounts = sorted(set(self.v1.values()))
            parts.append(f"v1 {', '.join(sorted(self.v1))} ({len(mounts)} hierarchies)")
        if self.v2 is not None:
            held = ", ".join(sorted(self.v2_controllers)) or "no controllers"
            parts.append(f"v2 at {self.v2} holding {held}")
        return "; ".join(parts) or "no cgroup hierarchy mounted"


def _unescape(path: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal.
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, ch)
    return path


def parse_mounts(text: str, controllers_of: Callable[[str], Iterable[str]]) -> Hierarchies:
    """Hierarchies from the text of ``/proc/self/mounts``.  ``controllers_of(mount)``
    returns what a cgroup2 mount's root holds (its ``cgroup.controllers``)."""
    v1: dict[str, str] = {}
    v2: list[tuple[int, str, frozenset[str]]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mount, fstype, opts = _unescape(parts[1]), parts[2], parts[3].split(",")
        if fstype == "cgroup":
            for ctl in opts:
                if ctl in V1_CONTROLLERS:
                    v1.setdefault(ctl, mount)
        elif fstype == "cgroup2":
            held = frozenset(controllers_of(mount))
            v2.append((-len(held), mount, held))
    if not v2:
        return Hierarchies(v1)
    _, mount, held = sorted(v2)[0]  # the cgroup2 mount holding the most controllers
    return Hierarchies(v1, mount, held)


def _controllers_file(mount: str) -> list[str]:
    try:
        with open(os.path.join(mount, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []


def detect(mounts: str = "/proc/self/mounts") -> Hierarchies:
    try:
        with open(mounts) as f:
            text = f.read()
    except OSError:
        return Hierarchies()
    return parse_mounts(text, _controllers_file)


# --------------------------------------------------------------------------- cgroupfs


def write(directory: str, name: str, value: str | int) -> None:
    path = os.path.join(directory, name)
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        raise ContainerError(f"cgroups: cannot write {value!r} to {path}: {e.strerror}") from None


def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read()


def read_kv(directory: str, name: str) -> dict[str, int]:
    """A flat-keyed file (``key value`` lines: memory.stat, cpu.stat, *.events)."""
    out: dict[str, int] = {}
    try:
        text = read(directory, name)
    except OSError:
        return out
    for line in text.splitlines():
        key, _, val = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(val)
    return out


def read_int(directory: str, name: str) -> int | None:
    try:
        text = read(directory, name).strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def procs(directory: str) -> list[int]:
    try:
        return [int(x) for x in read(directory, "cgroup.procs").split()]
    except (OSError, ValueError):
        return []


# --------------------------------------------------------------------------- the isolator


class CgroupsIsolator(Isolator):
    """cgroups/cpu, cgroups/mem, cgroups/pids and cgroups/devices, on v1 or v2."""

    name = "cgroups"

    def __init__(self, subsystems: Iterable[str], hierarchies: Hierarchies, root: str = "impresario",
                 cfs_quota: bool = True, limit_swap: bool = True, pids_max: int = DEFAULT_PIDS_MAX,
                 devices_backend: str = "auto") -> None:
        self.subsystems = frozenset(subsystems)
        unknown = self.subsystems - set(SUBSYSTEMS)
        if unknown:
            raise IsolationError(f"unknown cgroups subsystem {sorted(unknown)[0]!r}")
        if os.geteuid() != 0:
            raise IsolationError("cgroups isolation needs root (run the agent as root, or use "
                                 "--isolation posix)")
        if not root or root.startswith("/") or ".." in root.split("/"):
            raise IsolationError(f"the cgroups root must be a relative name, not {root!r}")
        if devices_backend not in DEVICE_BACKENDS:
            raise IsolationError(f"devices backend must be one of {', '.join(DEVICE_BACKENDS)}")
        self.h = hierarchies
        self.root = root
        self.cfs_quota = cfs_quota
        self.limit_swap = limit_swap
        self.pids_max = pids_max
        self.version: dict[str, int] = {}
        for sub in sorted(self.subsystems - {"devices"}):
            ctl = SUBSYSTEM_CONTROLLER[sub]
            v = hierarchies.version_of(ctl)
            if v is None:
                raise IsolationError(f"cgroups/{sub}: no cgroup hierarchy on this host holds the {ctl} "
                                     f"controller ({hierarchies.describe()})")
            self.version[sub] = v
        if "devices" in self.subsystems:
            self.version["devices"] = self._devices_version(devices_backend)
        # The hierarchies a container gets a cgroup in: each v1 mount used, and v2 if mounted.
        mounts: list[str] = []
        for sub, v in sorted(self.version.items()):
            if v == 1:
                ctl = SUBSYSTEM_CONTROLLER[sub]
                mounts.append(self.h.v1[ctl])
                if sub == "cpu" and "cpuacct" in self.h.v1:
                    mounts.append(self.h.v1["cpuacct"])
        self.v1_mounts = sorted(set(mounts))
        self.v2_enable = sorted(SUBSYSTEM_CONTROLLER[s] for s, v in self.version.items()
                                if v == 2 and s != "devices")

    def _devices_version(self, backend: str) -> int:
        if backend in ("auto", "v1") and "devices" in self.h.v1:
            return 1
        if backend == "v1":
            raise IsolationError("cgroups/devices: the v1 devices controller is not mounted")
        if backend == "private-dev":
            return PRIVATE_DEV
        why = "no cgroup2 mount to attach a BPF device program to"
        if self.h.v2 is not None:
            try:
                os.close(bpf.load_device_program(bpf.device_program(DEFAULT_DEVICES)))
                return 2
            except OSError as e:
                why = f"this kernel refused a BPF device program ({e})"
        if backend == "bpf":
            raise IsolationError(f"cgroups/devices: {why}")
        log.warning("cgroups/devices: no v1 devices controller and %s: falling back to a private /dev "
                    "without CAP_MKNOD, which is weaker (a device node elsewhere stays reachable)", why)
        return PRIVATE_DEV

    def describe(self) -> str:
        names = {1: "v1", 2: "v2", PRIVATE_DEV: "a private /dev"}
        return ", ".join(f"{s} {names[v]}" for s, v in sorted(self.version.items()))

    # ------------------------------------------------------------------ paths

    def _dirs(self, c: Container) -> dict[str, str]:
        return c.state.get(self.name, {})

    def _dir(self, c: Container, sub: str) -> str:
        dirs = self._dirs(c)
        if self.version.get(sub) == 2:
            return dirs["v2"]
        if sub == "cpuacct":
            return dirs.get(self.h.v1.get("cpuacct", ""), "")
        return dirs[self.h.v1[SUBSYSTEM_CONTROLLER[sub]]]

    # ------------------------------------------------------------------ life cycle

    def prepare(self, c: Container) -> None:
        dirs: dict[str, str] = {}
        c.state[self.name] = dirs   # first, so that cleanup sees a partial preparation
        for mount in self.v1_mounts:
            dirs[mount] = self._make(mount, c)
        if self.h.v2 is not None:
            dirs["v2"] = self._make(self.h.v2, c)
            if self.v2_enable:
                self._enable_v2(c)
        if "cpu" in self.subsystems:
            d = self._dir(c, "cpu")
            if self.version["cpu"] == 2:
                write(d, "cpu.weight", cpu_weight(c.cpus))
                write(d, "cpu.max", cpu_max(c.cpus, self.cfs_quota))
            else:
                write(d, "cpu.shares", cpu_shares(c.cpus))
                write(d, "cpu.cfs_period_us", 100_000)
                write(d, "cpu.cfs_quota_us", cfs_quota_us(c.cpus, self.cfs_quota))
        if "mem" in self.subsystems:
            d = self._dir(c, "mem")
            limit = memory_limit_bytes(c.mem)
            if self.version["mem"] == 2:
                write(d, "memory.max", limit)
                write(d, "memory.low", limit)
                if self.limit_swap and os.path.exists(os.path.join(d, "memory.swap.max")):
                    write(d, "memory.swap.max", 0)
            else:
                write(d, "memory.limit_in_bytes", limit)
                write(d, "memory.soft_limit_in_bytes", limit)
                if self.limit_swap and os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
                    write(d, "memory.memsw.limit_in_bytes", limit)
        if "pids" in self.subsystems:
            write(self._dir(c, "pids"), "pids.max", self.pids_max)
        if "devices" in self.subsystems:
            c.devices[:0] = DEFAULT_DEVICES
            if self.version["devices"] == PRIVATE_DEV:
                c.private_dev = True
                c.wrap(UNSHARE_MOUNT)
                c.exec_wrappers.append(NO_MKNOD)

    def _make(self, mount: str, c: Container) -> str:
        d = os.path.join(mount, self.root, *c.path)
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise ContainerError(f"cgroups: cannot create {d}: {e.strerror}") from None
        return d

    def _enable_v2(self, c: Container) -> None:
        """Enable the v2 controllers from the mount's root down to the container's parent."""
        assert self.h.v2 is not None
        d = self.h.v2
        for part in (self.root, *c.path):
            have = set(read(d, "cgroup.subtree_control").split())
            missing = [ctl for ctl in self.v2_enable if ctl not in have]
            if missing:
                write(d, "cgroup.subtree_control", " ".join(f"+{m}" for m in missing))
            d = os.path.join(d, part)

    def isolate(self, c: Container, pid: int) -> None:
        dirs = self._dirs(c)
        if "devices" in self.subsystems:
            self._apply_devices(c)
        # v2 first: its cgroup.kill is what ends the container however it forks.
        for key in sorted(dirs, key=lambda k: k != "v2"):
            write(dirs[key], "cgroup.procs", pid)

    def _apply_devices(self, c: Container) -> None:
        if self.version["devices"] == PRIVATE_DEV:
            return   # made at the gate, in the task's mount namespace
        if self.version["devices"] == 1:
            d = self._dir(c, "devices")
            write(d, "devices.deny", "a")
            for rule in c.devices:
                write(d, "devices.allow", rule.v1())
            return
        try:
            bpf.load_and_attach(self._dirs(c)["v2"], c.devices)
        except OSError as e:
            raise ContainerError(f"cgroups/devices: {e}") from None

    def watch(self, c: Container) -> Limitation | None:
        if not self._dirs(c):
            return None
        if "mem" in self.subsystems:
            d = self._dir(c, "mem")
            v2 = self.version["mem"] == 2
            events = read_kv(d, "memory.events" if v2 else "memory.oom_control")
            if events.get("oom_kill", 0) > 0:
                return Limitation(Reason.REASON_CONTAINER_LIMITATION_MEMORY, self._oom_message(c, d, v2))
        if "pids" in self.subsystems:
            d = self._dir(c, "pids")
            if read_kv(d, "pids.events").get("max", 0) > 0:
                return Limitation(Reason.REASON_CONTAINER_LIMITATION,
                                  f"Process limit reached: the task tried to run more than {self.pids_max} "
                                  f"processes and threads (pids.max); a fork was refused and the task "
                                  f"was killed")
        return None

    def _oom_message(self, c: Container, d: str, v2: bool) -> str:
        peak = read_int(d, "memory.peak" if v2 else "memory.max_usage_in_bytes")
        used = f"{peak / MIB:.1f} MiB" if peak is not None else "unknown"
        return (f"Memory limit exceeded: Requested: {memory_limit_bytes(c.mem) / MIB:.0f} MiB, Maximum Used: "
                f"{used} (the kernel's OOM killer ended a process of the task)")

    def usage(self, c: Container, stats: dict[str, float]) -> None:
        dirs = self._dirs(c)
        if not dirs:
            return
        if "cpu" in self.subsystems:
            self._cpu_usage(c, stats)
        elif "v2" in dirs:
            cpu = read_kv(dirs["v2"], "cpu.stat")
            stats["cpus_user_time_secs"] = cpu.get("user_usec", 0) / 1e6
            stats["cpus_system_time_secs"] = cpu.get("system_usec", 0) / 1e6
        if "mem" in self.subsystems:
            d = self._dir(c, "mem")
            if self.version["mem"] == 2:
                stats["mem_rss_bytes"] = read_kv(d, "memory.stat").get("anon", 0)
                stats["mem_total_bytes"] = read_int(d, "memory.current") or 0
            else:
                stat = read_kv(d, "memory.stat")
                stats["mem_rss_bytes"] = stat.get("total_rss", stat.get("rss", 0))
                stats["mem_total_bytes"] = read_int(d, "memory.usage_in_bytes") or 0
            stats["mem_limit_bytes"] = memory_limit_bytes(c.mem)
        stats["processes"] = len(self.processes(c) or [])

    def _cpu_usage(self, c: Container, stats: dict[str, float]) -> None:
        d = self._dir(c, "cpu")
        cpu = read_kv(d, "cpu.stat")
        stats["cpus_limit"] = c.cpus
        stats["cpus_nr_periods"] = cpu.get("nr_periods", 0)
        stats["cpus_nr_throttled"] = cpu.get("nr_throttled", 0)
        if self.version["cpu"] == 2:
            stats["cpus_throttled_time_secs"] = cpu.get("throttled_usec", 0) / 1e6
            stats["cpus_user_time_secs"] = cpu.get("user_usec", 0) / 1e6
            stats["cpus_system_time_secs"] = cpu.get("system_usec", 0) / 1e6
            return
        stats["cpus_throttled_time_secs"] = cpu.get("throttled_time", 0) / 1e9
        acct = self._dir(c, "cpuacct")
        user, system = (read_int(acct, "cpuacct.usage_user"), read_int(acct, "cpuacct.usage_sys")) if acct \
            else (None, None)
        if user is not None and system is not None:
            stats["cpus_user_time_secs"], stats["cpus_system_time_secs"] = user / 1e9, system / 1e9
        elif "v2" in self._dirs(c):
            core = read_kv(self._dirs(c)["v2"], "cpu.stat")
            stats["cpus_user_time_secs"] = core.get("user_usec", 0) / 1e6
            stats["cpus_system_time_secs"] = core.get("system_usec", 0) / 1e6

    def processes(self, c: Container) -> list[int] | None:
        dirs = self._dirs(c)
        if not dirs:
            return None
        return procs(dirs.get("v2") or next(iter(dirs.values())))

    def signal(self, c: Container, sig: int) -> bool:
        dirs = self._dirs(c)
        if not dirs:
            return False
        if sig == signal.SIGKILL and "v2" in dirs and os.path.exists(os.path.join(dirs["v2"], "cgroup.kill")):
            with contextlib.suppress(ContainerError):
                write(dirs["v2"], "cgroup.kill", 1)
                return True
        for pid in self.processes(c) or []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return True

    def cleanup(self, c: Container) -> None:
        dirs = c.state.get(self.name)
        if not dirs:
            return
        deadline = time.monotonic() + CLEANUP_DEADLINE
        while self.processes(c) and time.monotonic() < deadline:
            self.signal(c, signal.SIGKILL)
            time.sleep(0.01)
        left = self.processes(c)
        if left:
            log.error("cgroups: container %s still has processes %s after SIGKILL; its cgroups stay",
                      c.id, left[:10])
            return
        c.state.pop(self.name, None)
        mounts = {k: (self.h.v2 if k == "v2" else k) for k in dirs}
        for key, d in dirs.items():
            _rmdir(d, deadline)
            # Remove the emptied parents: the executor's folder of a task group, the agent's.
            top = os.path.join(mounts[key] or "", self.root)
            parent = os.path.dirname(d)
            while parent.startswith(top + "/") and _rmdir(parent, 0.0, quiet=True):
                parent = os.path.dirname(parent)


def _rmdir(d: str, deadline: float, quiet: bool = False) -> bool:
    while True:
        try:
            os.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            # EBUSY: the last processes are still exiting.
            if e.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            if not quiet:
                log.error("cgroups: cannot remove %s: %s", d, e.strerror)
            return False
