"""Sizes and durations as users write them.

Sizes: ``64MiB``, ``2GiB``, ``1TiB``, decimal ``512MB``, ``1.5GB``; a bare number
means MiB, as in Mesos.  Results are in MiB (floats where not whole).

Durations: a number with ``us``, ``ms``, ``s``, ``m``, ``h`` or ``d``; a bare number
means seconds.  Distributions (``exp(60s)``, ``uniform(10s,120s)``) are parsed
by :func:`parse_distribution` into a small value that samples with a given RNG.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

_SIZE_UNITS = {
    "b": 1 / 2**20,
    "kib": 1 / 2**10,
    "mib": 1.0,
    "gib": 2**10,
    "tib": 2**20,
    "kb": 1e3 / 2**20,
    "mb": 1e6 / 2**20,
    "gb": 1e9 / 2**20,
    "tb": 1e12 / 2**20,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")

_DURATION_UNITS = {"us": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*$")


class UnitError(ValueError):
    """A size, duration or distribution that cannot be read."""


def parse_size(value: str | int | float) -> float:
    """A size in MiB.  ``"2GiB"`` -> 2048.0; ``512`` -> 512.0 (bare numbers are MiB)."""
    if isinstance(value, bool):
        raise UnitError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise UnitError(f"not a size: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"not a size: {value!r}")
    m = _SIZE_RE.match(value)
    if not m:
        raise UnitError(f"not a size: {value!r} (write e.g. 64MiB, 2GiB, 512MB, or a number of MiB)")
    number, unit = float(m.group(1)), m.group(2).lower()
    if not unit:
        return number
    if unit not in _SIZE_UNITS:
        raise UnitError(f"unknown size unit {m.group(2)!r} in {value!r} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)")
    return number * _SIZE_UNITS[unit]


def parse_duration(value: str | int | float) -> float:
    """A duration in seconds.  ``"90s"`` -> 90.0; ``"2h"`` -> 7200.0; ``1.5`` -> 1.5."""
    if isinstance(value, bool):
        raise UnitError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise UnitError(f"not a duration: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"not a duration: {value!r}")
    m = _DURATION_RE.match(value)
    if not m:
        raise UnitError(f"not a duration: {value!r} (write e.g. 500ms, 30s, 10m, 2h)")
    number, unit = float(m.group(1)), m.group(2)
    if not unit:
        return number
    if unit not in _DURATION_UNITS:
        raise UnitError(f"unknown duration unit {unit!r} in {value!r} (use us, ms, s, m, h, d)")
    return number * _DURATION_UNITS[unit]


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Distribution:
    """A duration distribution: ``fixed``, ``exp`` (mean) or ``uniform`` (low, high)."""

    kind: str
    a: float
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "exp":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        return rng.uniform(self.a, self.b)

    @property
    def mean(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def __str__(self) -> str:
        if self.kind == "fixed":
            return format_duration(self.a)
        if self.kind == "exp":
            return f"exp({format_duration(self.a)})"
        return f"uniform({format_duration(self.a)},{format_duration(self.b)})"


_DIST_RE = re.compile(r"^\s*(exp|uniform)\s*\(([^)]*)\)\s*$")


def parse_distribution(value: str | int | float) -> Distribution:
    """``"60s"``, ``"exp(60s)"`` or ``"uniform(10s,120s)"``."""
    if isinstance(value, str):
        m = _DIST_RE.match(value)
        if m:
            kind, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
            if kind == "exp":
                if len(args) != 1:
                    raise UnitError(f"exp takes one mean: {value!r}")
                return Distribution("exp", parse_duration(args[0]))
            if len(args) != 2:
                raise UnitError(f"uniform takes a low and a high: {value!r}")
            low, high = parse_duration(args[0]), parse_duration(args[1])
            if low > high:
                raise UnitError(f"uniform low exceeds high: {value!r}")
            return Distribution("uniform", low, high)
    return Distribution("fixed", parse_duration(value))
