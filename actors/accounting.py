"""Per-role accounting over time: what is allocated, offered and used, now and on average.

Each change is recorded at the time it happens (the actor's clock), and the
ledger keeps a time integral of every amount, so that the mean over the run is
exact, not sampled.
"""

from __future__ import annotations

from typing import Any

from .resources import DEFAULT_ROLE, EMPTY, SCALAR_NAMES, Resources, from_millis

KINDS = ("allocated", "offered", "used")


class RoleLedger:
    def __init__(self, start: float = 0.0) -> None:
        self.start = start
        self.current: dict[tuple[str, str], Resources] = {}
        self._integral: dict[tuple[str, str], dict[str, float]] = {}
        self._since: dict[tuple[str, str], float] = {}

    def _advance(self, key: tuple[str, str], now: float) -> None:
        since = self._since.get(key, self.start)
        cur = self.current.get(key)
        if cur is not None and now > since:
            acc = self._integral.setdefault(key, {})
            dt = now - since
            for name, millis in cur.scalar_map().items():   # each name on its own: order is free
                acc[name] = acc.get(name, 0.0) + millis * dt
        self._since[key] = now

    def add(self, role: str, kind: str, res: Resources, now: float) -> None:
        if res.is_empty():
            return
        key = (role, kind)
        self._advance(key, now)
        self.current[key] = self.current.get(key, EMPTY) + res.with_role(DEFAULT_ROLE)

    def sub(self, role: str, kind: str, res: Resources, now: float) -> None:
        if res.is_empty():
            return
        key = (role, kind)
        self._advance(key, now)
        self.current[key] = self.current.get(key, EMPTY).minus_saturating(res.with_role(DEFAULT_ROLE))

    def get(self, role: str, kind: str) -> Resources:
        return self.current.get((role, kind), EMPTY)

    def roles(self) -> list[str]:
        return sorted({r for r, _ in self.current} | {r for r, _ in self._integral})

    def mean(self, role: str, kind: str, now: float) -> dict[str, float]:
        """Time-weighted mean of each scalar from ``start`` to ``now``."""
        key = (role, kind)
        self._advance(key, now)
        span = now - self.start
        acc = self._integral.get(key, {})
        if span <= 0:
            return {n: float(from_millis(self.get(role, kind).millis(n))) for n in SCALAR_NAMES}
        return {n: acc.get(n, 0.0) / span / 1000.0 for n in SCALAR_NAMES}

    def view(self, now: float) -> dict[str, Any]:
        """Per role: each kind's current amounts and time-weighted means (mem and disk in MiB)."""
        out: dict[str, Any] = {}
        for role in self.roles():
            entry: dict[str, Any] = {}
            for kind in KINDS:
                cur = self.get(role, kind)
                entry[kind] = {n: from_millis(cur.millis(n)) for n in SCALAR_NAMES}
                entry[f"mean_{kind}"] = {n: round(v, 6) for n, v in self.mean(role, kind, now).items()}
            out[role] = entry
        return out
