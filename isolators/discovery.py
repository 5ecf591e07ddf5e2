"""Resource discovery for an agent on a real host: psutil for cpus, memory and
disk, NVML for GPUs.  Part of each resource is kept for the host itself, as
Mesos does: memory ``min(1 GiB, half)`` and disk ``min(5 GiB, half)`` unless
the settings say otherwise (``reserved_mem``, ``reserved_disk``, in MiB).

The discovery port is also where an agent checks, at start-up, that the
isolation it was given can work on this host (every name known, cgroups
present, root): a bad list refuses the agent's configuration with the reason,
and the isolation in force is said plainly in the agent's log.  The
``nvml`` setting names another NVML module by dotted path (a stand-in for
hosts without GPUs, in tests).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import psutil

from actors.config import load_object
from actors.ports import Discovered
from actors.protocol.resources import Resources

from .containerizer import build_isolators, describe_isolation, isolation_names
from .gpu import discover_gpus

log = logging.getLogger("impresario.discovery")


def default_reserve(total: float, cap: float) -> float:
    return min(cap, total / 2)


def discover_host(work_dir: str, reserved_mem: float | None = None,
                  reserved_disk: float | None = None, nvml: Any = None) -> Discovered:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = psutil.cpu_count(logical=True) or 1
    mem_total = psutil.virtual_memory().total / 2**20
    path = work_dir
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    disk_total = psutil.disk_usage(path or "/").total / 2**20
    mem = mem_total - (reserved_mem if reserved_mem is not None else default_reserve(mem_total, 1024))
    disk = disk_total - (reserved_disk if reserved_disk is not None else default_reserve(disk_total, 5 * 1024))
    gpus = discover_gpus(nvml)
    res = Resources.of(cpus=cpus, mem=int(max(0, mem)), disk=int(max(0, disk)), gpus=len(gpus))
    return Discovered(res, socket.gethostname(), {"gpus": [g.as_dict() for g in gpus]})


def discovery(actor: Any, settings: dict[str, Any]) -> Callable[[], Discovered]:
    work_dir = str(settings.get("work_dir", "/tmp/impresario"))
    rm = settings.get("reserved_mem")
    rd = settings.get("reserved_disk")
    opts = settings.get("containerizer") or {}
    names = isolation_names(opts)
    isolators = build_isolators(opts)   # raises, naming the reason, if it cannot work here
    cgroups = [i.describe() for i in isolators if hasattr(i, "describe")]
    log.info("agent %s isolation: %s%s", settings.get("hostname", ""), describe_isolation(names),
             f" [cgroups: {cgroups[0]}]" if cgroups else "")
    nvml = _nvml(settings.get("nvml"))
    return lambda: discover_host(work_dir, rm, rd, nvml=nvml)


def _nvml(path: Any) -> Any:
    if not path:
        return None
    obj = load_object(str(path))
    return obj() if isinstance(obj, type) else obj
