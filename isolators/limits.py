"""What limits to set, apart from how to write them: pure functions and values.

The numbers follow Mesos (``src/slave/containerizer/mesos/isolators/cgroups/
constants.hpp`` and ``cgroups2/constants.hpp``): 1024 CPU shares per CPU (at
least 2), cgroups v2 weight 100 per CPU (1 to 10000), a CFS period of 100 ms
with a quota of at least 1 ms, and at least 32 MiB of memory.  The device
allow list is Mesos' default whitelist (``docs/isolators/cgroups-devices.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MIB = 2**20
CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2
CPU_WEIGHT_PER_CPU = 100
MIN_CPU_WEIGHT, MAX_CPU_WEIGHT = 1, 10000
CPU_CFS_PERIOD_US = 100_000
MIN_CPU_CFS_QUOTA_US = 1_000
MIN_MEMORY_BYTES = 32 * MIB
DEFAULT_PIDS_MAX = 1024
NVIDIA_MAJOR = 195


def cpu_shares(cpus: float) -> int:
    """cgroups v1 ``cpu.shares``."""
    return max(int(CPU_SHARES_PER_CPU * cpus), MIN_CPU_SHARES)


def cpu_weight(cpus: float) -> int:
    """cgroups v2 ``cpu.weight``."""
    return min(max(int(CPU_WEIGHT_PER_CPU * cpus), MIN_CPU_WEIGHT), MAX_CPU_WEIGHT)


def cfs_quota_us(cpus: float, hard_limit: bool) -> int:
    """cgroups v1 ``cpu.cfs_quota_us``: -1 (unlimited) unless the hard limit is on."""
    if not hard_limit:
        return -1
    return max(int(CPU_CFS_PERIOD_US * cpus), MIN_CPU_CFS_QUOTA_US)


def cpu_max(cpus: float, hard_limit: bool) -> str:
    """cgroups v2 ``cpu.max``: ``"$QUOTA $PERIOD"``, or ``"max $PERIOD"`` without a hard limit."""
    quota = cfs_quota_us(cpus, hard_limit)
    return f"{'max' if quota < 0 else quota} {CPU_CFS_PERIOD_US}"


def memory_limit_bytes(mem_mib: float) -> int:
    """The hard (and soft) memory limit for ``mem`` MiB."""
    return max(int(mem_mib * MIB), MIN_MEMORY_BYTES)


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True, slots=True)
class DeviceRule:
    """One entry of a device allow list, as cgroups v1 writes it: ``c 195:0 rwm``.

    ``type``: ``a`` (all), ``b`` (block) or ``c`` (char); ``major``/``minor``:
    a number, or None for any (``*``); ``access``: letters of ``rwm``;
    ``name``: the node's name under ``/dev``, for a private ``/dev``.
    """

    type: str
    major: int | None
    minor: int | None
    access: str = "rwm"
    name: str = ""

    def __post_init__(self) -> None:
        if self.type not in ("a", "b", "c"):
            raise ValueError(f"device type must be a, b or c, not {self.type!r}")
        if not self.access or set(self.access) - set("rwm"):
            raise ValueError(f"device access must be letters of rwm, not {self.access!r}")

    def v1(self) -> str:
        """The line written to ``devices.allow`` / ``devices.deny``."""
        if self.type == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def allows(self, dev_type: str, major: int, minor: int, access: str) -> bool:
        """Whether this rule grants ``access`` to the device (the reference semantics)."""
        return ((self.type == "a" or self.type == dev_type)
                and (self.major is None or self.major == major)
                and (self.minor is None or self.minor == minor)
                and set(access) <= set(self.access))


_RULE = re.compile(r"^(a)$|^([bc]) (\*|\d+):(\*|\d+) ([rwm]+)$")


def parse_rule(text: str, name: str = "") -> DeviceRule:
    m = _RULE.match(text.strip())
    if not m:
        raise ValueError(f"not a device rule: {text!r}")
    if m.group(1):
        return DeviceRule("a", None, None, "rwm")
    t, major, minor, access = m.group(2, 3, 4, 5)
    return DeviceRule(t, None if major == "*" else int(major), None if minor == "*" else int(minor), access,
                      name)


#: Mesos' default device whitelist: mknod of any node, and the usual character devices.
DEFAULT_DEVICES: tuple[DeviceRule, ...] = tuple(parse_rule(r, n) for r, n in (
    ("c *:* m", ""), ("b *:* m", ""),
    ("c 1:3 rwm", "null"), ("c 1:5 rwm", "zero"), ("c 1:7 rwm", "full"), ("c 1:8 rwm", "random"),
    ("c 1:9 rwm", "urandom"), ("c 5:0 rwm", "tty"), ("c 5:1 rwm", "console"), ("c 5:2 rwm", ""),  # ptmx: devpts'
    ("c 4:0 rwm", "tty0"), ("c 4:1 rwm", "tty1"), ("c 136:* rwm", ""),  # pts: a devpts of its own
    ("c 10:200 rwm", "net/tun"),
))


def gpu_rules(minors: Iterable[int], control: Iterable[tuple[int, int, str]] = ()) -> list[DeviceRule]:
    """The NVIDIA control nodes (``nvidiactl``, ``nvidia-uvm``...) and the task's own GPUs."""
    rules = [DeviceRule("c", major, minor, "rwm", name) for major, minor, name in control]
    rules += [DeviceRule("c", NVIDIA_MAJOR, m, "rwm", f"nvidia{m}") for m in sorted(set(minors))]
    return rules


def private_dev_setup(rules: Iterable[DeviceRule]) -> list[str]:
    """Shell commands that replace ``/dev`` (in a mount namespace of the task's own) with a
    tmpfs holding only the allowed nodes that have a name, a devpts and a shm of its own."""
    cmds = [
        "mount -t tmpfs -o nosuid,noexec,mode=755 impresario-dev /dev",
        "mkdir -p /dev/pts /dev/shm /dev/net",
        "mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts",
        "ln -s pts/ptmx /dev/ptmx",
        "mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm",
        "ln -s /proc/self/fd /dev/fd",
    ]
    cmds += [f"ln -s /proc/self/fd/{fd} /dev/{name}" for fd, name in enumerate(("stdin", "stdout", "stderr"))]
    seen = set()
    for r in rules:
        if r.name and r.type != "a" and r.major is not None and r.minor is not None and r.name not in seen:
            seen.add(r.name)
            cmds.append(f"mknod -m 666 /dev/{r.name} {r.type} {r.major} {r.minor}")
    return cmds


def allowed(rules: Iterable[DeviceRule], dev_type: str, major: int, minor: int, access: str) -> bool:
    """What an allow list grants: the reference both device backends are tested against."""
    return any(r.allows(dev_type, major, minor, access) for r in rules)
