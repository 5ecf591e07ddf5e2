"""Faults a scenario injects (``[[faults]]``), and a log of what happened.

:func:`parse_fault` reads an entry, :func:`select` resolves its targets to agents and racks,
and :class:`FaultLog` records every action (time, kind, targets, hosts touched, a note) for
summary.json's ``faults``.  The harness (``sim.runner``) injects each fault at its virtual
time, through the network model or the host; what the kernel then does about it is the
kernel's own business.

See docs/simulation.md, '[[faults]]' (kinds, targets, durations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from actors.protocol.units import UnitError, parse_duration

KINDS = ("agent_crash", "agent_restart", "master_failover", "partition", "heal", "message_loss", "slow_link")
FAULT_KEYS = {"at", "kind", "targets", "duration", "probability", "delay"}
_SLICE = re.compile(r"^(agents|racks)(?:\[(\d*)(?::(\d*))?\])?$")


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    at: float
    kind: str
    targets: str
    duration: float | None = None
    probability: float = 1.0
    delay: float = 0.1


@dataclass
class FaultLog:
    entries: list[dict[str, Any]] = field(default_factory=list)

    def record(self, at: float, kind: str, targets: str, hosts: int, note: str = "") -> None:
        self.entries.append({"at": round(at, 6), "kind": kind, "targets": targets, "hosts": hosts,
                             "note": note})


def parse_fault(t: Any, where: str) -> Fault:
    if not isinstance(t, dict):
        raise FaultError(f"{where} must be a table")
    for key in t:
        if key not in FAULT_KEYS:
            raise FaultError(f"unknown key {key!r} in {where} (known: {', '.join(sorted(FAULT_KEYS))})")
    kind = t.get("kind")
    if kind not in KINDS:
        raise FaultError(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        at = parse_duration(t["at"]) if "at" in t else None
        duration = parse_duration(t["duration"]) if "duration" in t else None
        delay = parse_duration(t.get("delay", "100ms"))
    except UnitError as e:
        raise FaultError(f"{where}: {e}") from None
    if at is None:
        raise FaultError(f"{where}: when? give at = \"5m\"")
    targets = t.get("targets", "master" if kind == "master_failover" else "")
    if not isinstance(targets, str) or not targets:
        raise FaultError(f"{where}.targets: say which, e.g. \"agents[0:100]\" or \"master\"")
    p = t.get("probability", 1.0)
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
        raise FaultError(f"{where}.probability must be between 0 and 1")
    if kind in ("agent_crash", "agent_restart") and not targets.startswith(("agents", "agent-")):
        raise FaultError(f"{where}: {kind} targets agents")
    if duration is not None and kind in ("heal", "agent_restart", "master_failover"):
        raise FaultError(f"{where}: {kind} takes no duration (it is over at once)")
    if targets.startswith(("agents", "racks")):
        m = _SLICE.match(targets)
        lo, hi = (m.group(2), m.group(3)) if m else (None, None)
        if m is None or (lo == "" and ":" not in targets) or (lo and hi and int(lo) > int(hi)):
            raise FaultError(f"{where}.targets: {targets!r} is not agents, agents[i], agents[i:j], "
                             "racks, racks[i] or racks[i:j] (with i <= j)")
    return Fault(at, kind, targets, duration, float(p), delay)


def select(targets: str, agents: list[str], n_racks: int | None) -> tuple[list[str], list[int]]:
    """The agent names and rack indexes a target expression names (other names pass through)."""
    m = _SLICE.match(targets)
    if not m:
        return [targets], []
    what, lo, hi = m.group(1), m.group(2), m.group(3)
    pool = len(agents) if what == "agents" else (n_racks or 0)
    if lo is None:
        idx = range(pool)
    elif hi is None and ":" not in targets:
        i = int(lo)
        idx = range(i, min(i + 1, pool))
    else:
        idx = range(int(lo or 0), min(int(hi) if hi else pool, pool))
    if what == "agents":
        return [agents[i] for i in idx], []
    if n_racks is None:
        raise FaultError(f"racks[...] needs a [network] topology: {targets!r}")
    return [], list(idx)
