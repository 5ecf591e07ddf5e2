"""Per-role accounting over time: what is allocated, offered and used, now and on average.

Each change is recorded at the time it happens (the actor's clock), and the
ledger keeps a time integral of every amount, so that the mean over the run is
exact, not sampled.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.resources import DEFAULT_ROLE, EMPTY, SCALAR_NAMES, Resources, from_millis

KINDS = ("allocated", "offered", "used")


class RoleLedger:
    """Per (role, kind): the current amounts (fixed-point millis, scalars) and their
    time integrals.  Amounts are plain mutable maps: a master changes them on every
    launch, status and re-registration, and a Resources value made per change would
    cost more than the change."""

    def __init__(self, start: float = 0.0) -> None:
        self.start = start
        self._current: dict[tuple[str, str], dict[str, int]] = {}
        self._integral: dict[tuple[str, str], dict[str, float]] = {}
        self._since: dict[tuple[str, str], float] = {}

    def _advance(self, key: tuple[str, str], now: float) -> dict[str, int]:
        """Bring the key's integral up to ``now``; its current amounts, for changing."""
        cur = self._current.get(key)
        if cur is None:
            cur = self._current[key] = {}
            self._since[key] = now
            return cur
        since = self._since[key]
        if now > since:
            if cur:
                acc = self._integral.get(key)
                if acc is None:
                    acc = self._integral[key] = {}
                dt = now - since
                for name, millis in cur.items():   # each name on its own: order is free
                    acc[name] = acc.get(name, 0.0) + millis * dt
            self._since[key] = now
        return cur

    def add(self, role: str, kind: str, res: Resources, now: float) -> None:
        scalars = res.scalar_map()
        if not scalars:
            return
        cur = self._advance((role, kind), now)
        for name, millis in scalars.items():
            cur[name] = cur.get(name, 0) + millis

    def sub(self, role: str, kind: str, res: Resources, now: float) -> None:
        scalars = res.scalar_map()
        if not scalars:
            return
        cur = self._advance((role, kind), now)
        for name, millis in scalars.items():
            left = cur.get(name, 0) - millis
            if left > 0:
                cur[name] = left
            else:
                cur.pop(name, None)   # amounts stop at zero

    def get(self, role: str, kind: str) -> Resources:
        """The current amounts of ``role``'s ``kind`` (scalars, unreserved)."""
        cur = self._current.get((role, kind))
        return Resources._make(dict(cur), {}, DEFAULT_ROLE) if cur else EMPTY

    def roles(self) -> list[str]:
        return sorted({r for r, _ in self._current} | {r for r, _ in self._integral})

    def mean(self, role: str, kind: str, now: float) -> dict[str, float]:
        """Time-weighted mean of each scalar from ``start`` to ``now``."""
        key = (role, kind)
        if key in self._current:
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
