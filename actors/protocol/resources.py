"""Resources: scalars in fixed point and ranges, with the role they belong to.

Mesos keeps scalar resources in fixed point with three decimals so that
repeated additions and subtractions never drift (0.1 + 0.2 - 0.3 is zero,
exactly).  We do the same: a scalar is stored as an integer count of
thousandths ("millis").  ``mem`` and ``disk`` are in MiB, as in Mesos.

Ranges (``ports``) are stored as sorted, merged, inclusive ``(begin, end)``
intervals.

A ``Resources`` value is immutable.  Arithmetic between two values requires
them to belong to the same role, except that an empty value adapts to the
other side's role.  Subtraction requires containment: taking out what is not
there is a bug, not a number to clamp.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

SCALE = 1000  #: fixed point: three decimals
DEFAULT_ROLE = "*"
SCALAR_NAMES = ("cpus", "mem", "disk", "gpus")  #: the well-known scalars, in display order
MAX_MILLIS = 2**62  #: a bound that keeps every sum inside a signed 64-bit wire integer
MAX_RANGE_VALUE = 2**32 - 1
MAX_INTERVALS = 4096

_NAME_RE = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")


class ResourceError(ValueError):
    """An impossible resource operation or an invalid resource value."""


def to_millis(value: float | int | str) -> int:
    """Convert a user-facing number to fixed point, rounding to three decimals."""
    if isinstance(value, bool):
        raise ResourceError(f"not a number: {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ResourceError(f"not a number: {value!r}")
    if isinstance(value, int):
        millis = value * SCALE
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ResourceError(f"not a finite number: {value!r}")
        millis = round(value * SCALE)
    else:
        raise ResourceError(f"not a number: {value!r}")
    if millis < 0:
        raise ResourceError(f"negative amount: {value!r}")
    if millis > MAX_MILLIS:
        raise ResourceError(f"amount too large: {value!r}")
    return millis


def from_millis(millis: int) -> float | int:
    """The user-facing number for a fixed-point amount (an int when whole)."""
    q, r = divmod(millis, SCALE)
    return q if r == 0 else millis / SCALE


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ResourceError(f"invalid resource name: {name!r}")
    return name


# --------------------------------------------------------------------------- ranges

Interval = tuple[int, int]
Ranges = tuple[Interval, ...]


def normalize_ranges(intervals: Iterable[Iterable[int]]) -> Ranges:
    """Sort and merge inclusive intervals; adjacent intervals merge too."""
    items: list[tuple[int, int]] = []
    for iv in intervals:
        pair = tuple(iv)
        if len(pair) != 2:
            raise ResourceError(f"a range is two numbers, got {pair!r}")
        b, e = pair
        if type(b) is not int or type(e) is not int:
            raise ResourceError(f"range bounds must be integers, got {pair!r}")
        if not 0 <= b <= e <= MAX_RANGE_VALUE:
            raise ResourceError(f"invalid range [{b}-{e}]")
        items.append((b, e))
    if len(items) > MAX_INTERVALS:
        raise ResourceError(f"too many intervals: {len(items)}")
    items.sort()
    merged: list[tuple[int, int]] = []
    for b, e in items:
        if merged and b <= merged[-1][1] + 1:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((b, e))
    return tuple(merged)


def ranges_union(a: Ranges, b: Ranges) -> Ranges:
    return normalize_ranges(a + b) if a and b else (a or b)


def ranges_contains(outer: Ranges, inner: Ranges) -> bool:
    i = 0
    for b, e in inner:
        while i < len(outer) and outer[i][1] < b:
            i += 1
        if i == len(outer) or outer[i][0] > b or outer[i][1] < e:
            return False
    return True


def ranges_subtract(a: Ranges, b: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi:
            bl, bh = b[k]
            if bl > cur:
                out.append((cur, bl - 1))
            cur = max(cur, bh + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def ranges_size(r: Ranges) -> int:
    return sum(e - b + 1 for b, e in r)


def format_ranges(r: Ranges) -> str:
    return "[" + ",".join(f"{b}-{e}" for b, e in r) + "]"


# --------------------------------------------------------------------------- Resources


class Resources:
    """An immutable bag of scalar and range resources allocated to one role."""

    __slots__ = ("_hash", "_ranges", "_role", "_scalars")

    _scalars: dict[str, int]
    _ranges: dict[str, Ranges]
    _role: str
    _hash: int | None

    def __init__(
        self,
        scalars: Mapping[str, float | int | str] | None = None,
        ranges: Mapping[str, Iterable[Iterable[int]]] | None = None,
        role: str = DEFAULT_ROLE,
    ) -> None:
        s: dict[str, int] = {}
        for name, value in (scalars or {}).items():
            m = to_millis(value)
            if m:
                s[check_name(name)] = m
        r: dict[str, Ranges] = {}
        for name, intervals in (ranges or {}).items():
            norm = normalize_ranges(intervals)
            if norm:
                r[check_name(name)] = norm
        if set(s) & set(r):
            raise ResourceError(f"a name is both scalar and range: {sorted(set(s) & set(r))}")
        self._init(s, r, check_role(role))

    def _init(self, scalars: dict[str, int], ranges: dict[str, Ranges], role: str) -> None:
        object.__setattr__(self, "_scalars", scalars)
        object.__setattr__(self, "_ranges", ranges)
        object.__setattr__(self, "_role", role)
        object.__setattr__(self, "_hash", None)

    @classmethod
    def _make(cls, scalars: dict[str, int], ranges: dict[str, Ranges], role: str) -> Resources:
        # Hot path: inputs are already normalised and validated; skip __init__ and fill
        # the slots through their descriptors.
        obj = object.__new__(cls)
        _set_scalars(obj, scalars)
        _set_ranges(obj, ranges)
        _set_role(obj, role)
        _set_hash(obj, None)
        return obj

    @classmethod
    def of(
        cls,
        cpus: float = 0,
        mem: float = 0,
        disk: float = 0,
        gpus: float = 0,
        ports: Iterable[Iterable[int]] = (),
        role: str = DEFAULT_ROLE,
        **other: float,
    ) -> Resources:
        """Convenience constructor: ``Resources.of(cpus=0.5, mem=64)`` (mem in MiB)."""
        scalars = {"cpus": cpus, "mem": mem, "disk": disk, "gpus": gpus, **other}
        rng = {"ports": list(ports)} if ports else {}
        return cls(scalars, rng, role)

    @classmethod
    def from_millis(
        cls, scalars: Mapping[str, int], ranges: Mapping[str, Ranges] | None = None,
        role: str = DEFAULT_ROLE,
    ) -> Resources:
        s = {}
        for k, v in scalars.items():
            if type(v) is not int or v < 0 or v > MAX_MILLIS:
                raise ResourceError(f"invalid fixed-point amount for {k!r}: {v!r}")
            if v:
                s[check_name(k)] = v
        r = {}
        for k, iv in (ranges or {}).items():
            norm = normalize_ranges(iv)
            if norm:
                r[check_name(k)] = norm
        if set(s) & set(r):
            raise ResourceError(f"a name is both scalar and range: {sorted(set(s) & set(r))}")
        return cls._make(s, r, check_role(role))

    # ------------------------------------------------------------------ reading

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Resources is immutable")

    @property
    def role(self) -> str:
        return self._role

    def millis(self, name: str) -> int:
        return self._scalars.get(name, 0)

    def scalar(self, name: str) -> float | int:
        return from_millis(self._scalars.get(name, 0))

    def ranges(self, name: str) -> Ranges:
        return self._ranges.get(name, ())

    def scalar_map(self) -> Mapping[str, int]:
        """The fixed-point scalars themselves (read-only: do not change the map)."""
        return self._scalars

    def scalar_items(self) -> Iterator[tuple[str, int]]:
        """(name, millis) pairs, in a stable order."""
        return iter(sorted(self._scalars.items()))

    def range_items(self) -> Iterator[tuple[str, Ranges]]:
        return iter(sorted(self._ranges.items()))

    def names(self) -> list[str]:
        return sorted([*self._scalars, *self._ranges])

    @property
    def cpus(self) -> float | int:
        return self.scalar("cpus")

    @property
    def mem(self) -> float | int:
        return self.scalar("mem")

    @property
    def disk(self) -> float | int:
        return self.scalar("disk")

    @property
    def gpus(self) -> float | int:
        return self.scalar("gpus")

    def is_empty(self) -> bool:
        return not self._scalars and not self._ranges

    def __bool__(self) -> bool:
        return bool(self._scalars) or bool(self._ranges)

    # ------------------------------------------------------------------ algebra

    def _role_with(self, other: Resources) -> str:
        if self._role == other._role:
            return self._role
        if other.is_empty():
            return self._role
        if self.is_empty():
            return other._role
        raise ResourceError(f"resources of role {self._role!r} and {other._role!r} do not mix")

    def __add__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        role = self._role_with(other)
        s = dict(self._scalars)
        for k, v in other._scalars.items():
            total = s.get(k, 0) + v
            if total > MAX_MILLIS:
                raise ResourceError(f"amount of {k!r} too large")
            s[k] = total
        r = dict(self._ranges)
        for k, iv in other._ranges.items():
            r[k] = ranges_union(r.get(k, ()), iv)
        if set(s) & set(r):
            raise ResourceError(f"a name is both scalar and range: {sorted(set(s) & set(r))}")
        return Resources._make(s, r, role)

    @staticmethod
    def total(items: Iterable[Resources], role: str = DEFAULT_ROLE) -> Resources:
        """The sum of ``items`` given the role ``role``, in one pass: what ``sum`` would give,
        without a Resources made for every partial sum (role mixing is not checked)."""
        s: dict[str, int] = {}
        r: dict[str, Ranges] = {}
        if items.__class__ is list and len(items) > 1:
            first = items[0]
            n = len(items)
            if not first._ranges and items.count(first) == n:
                # n times the same value (tasks of one shape: decoded values are shared)
                s = {k: v * n for k, v in first._scalars.items()}
                items = ()
        for res in items:
            for k, v in res._scalars.items():
                s[k] = s.get(k, 0) + v
            for k, iv in res._ranges.items():
                r[k] = ranges_union(r.get(k, ()), iv)
        for k, v in s.items():
            if v > MAX_MILLIS:
                raise ResourceError(f"amount of {k!r} too large")
        if r and set(s) & set(r):
            raise ResourceError(f"a name is both scalar and range: {sorted(set(s) & set(r))}")
        if role != DEFAULT_ROLE and role not in _ROLES_SEEN:
            check_role(role)
        return Resources._make(s, r, role)

    def __sub__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        if other.is_empty():
            return self
        if not self.contains(other):
            raise ResourceError(f"cannot subtract {other} from {self}: not contained")
        s = dict(self._scalars)
        for k, v in other._scalars.items():
            left = s[k] - v
            if left:
                s[k] = left
            else:
                del s[k]
        r = dict(self._ranges)
        for k, iv in other._ranges.items():
            left_r = ranges_subtract(r[k], iv)
            if left_r:
                r[k] = left_r
            else:
                del r[k]
        return Resources._make(s, r, self._role)

    def contains(self, other: Resources) -> bool:
        """True when every amount and range of ``other`` is inside ``self``.

        An empty value is contained in anything; otherwise the roles must match.
        """
        if other.is_empty():
            return True
        if self._role != other._role:
            return False
        mine = self._scalars
        for k, v in other._scalars.items():
            if mine.get(k, 0) < v:
                return False
        for k, iv in other._ranges.items():
            if not ranges_contains(self._ranges.get(k, ()), iv):
                return False
        return True

    def minus_saturating(self, other: Resources) -> Resources:
        """``self - other`` where every amount stops at zero (roles must mix)."""
        self._role_with(other)
        s = {}
        for k, v in self._scalars.items():
            left = v - other._scalars.get(k, 0)
            if left > 0:
                s[k] = left
        r = {}
        for k, iv in self._ranges.items():
            left_r = ranges_subtract(iv, other._ranges.get(k, ()))
            if left_r:
                r[k] = left_r
        return Resources._make(s, r, self._role)

    def with_role(self, role: str) -> Resources:
        if role == self._role:
            return self
        if role not in _ROLES_SEEN:
            check_role(role)
            if len(_ROLES_SEEN) < _CACHE_MAX:
                _ROLES_SEEN.add(role)
        return Resources._make(self._scalars, self._ranges, role)

    def scalars_only(self) -> Resources:
        return Resources._make(self._scalars, {}, self._role)

    def filter(self, names: Iterable[str]) -> Resources:
        keep = set(names)
        return Resources._make(
            {k: v for k, v in self._scalars.items() if k in keep},
            {k: v for k, v in self._ranges.items() if k in keep},
            self._role,
        )

    def without(self, names: Iterable[str]) -> Resources:
        drop = set(names)
        return Resources._make(
            {k: v for k, v in self._scalars.items() if k not in drop},
            {k: v for k, v in self._ranges.items() if k not in drop},
            self._role,
        )

    def shares(self, total: Resources) -> dict[str, float]:
        """This allocation's share of ``total`` per scalar name present in ``total``."""
        out = {}
        for k, t in total._scalars.items():
            out[k] = self._scalars.get(k, 0) / t
        return out

    def dominant_share(self, total: Resources, exclude: Iterable[str] = ()) -> float:
        excluded = set(exclude)
        best = 0.0
        for k, t in total._scalars.items():
            if k in excluded:
                continue
            share = self._scalars.get(k, 0) / t
            if share > best:
                best = share
        return best

    # ------------------------------------------------------------------ identity

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        if self.is_empty() and other.is_empty():
            return True
        return (
            self._role == other._role
            and self._scalars == other._scalars
            and self._ranges == other._ranges
        )

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            if self.is_empty():
                h = hash(())
            else:
                h = hash((self._role, frozenset(self._scalars.items()),
                          frozenset(self._ranges.items())))
            object.__setattr__(self, "_hash", h)
        return h

    def __repr__(self) -> str:
        return f"Resources({self})"

    def __str__(self) -> str:
        """Mesos' text form: ``cpus:0.5;mem:64;ports:[31000-31010]`` plus ``{role}``."""
        parts = [f"{k}:{from_millis(v)}" for k, v in _display_order(self._scalars)]
        parts += [f"{k}:{format_ranges(v)}" for k, v in sorted(self._ranges.items())]
        text = ";".join(parts) or "{}"
        return text if self._role == DEFAULT_ROLE else f"{text}{{{self._role}}}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form: scalars as numbers, ranges as lists of pairs."""
        out: dict[str, Any] = {k: from_millis(v) for k, v in _display_order(self._scalars)}
        for k, v in sorted(self._ranges.items()):
            out[k] = [list(iv) for iv in v]
        return out

    @classmethod
    def parse(cls, text: str, role: str = DEFAULT_ROLE) -> Resources:
        """Parse ``cpus:4;mem:1024;ports:[31000-32000,33000-33010]`` (Mesos' agent flag form)."""
        scalars: dict[str, float | int | str] = {}
        rng: dict[str, list[tuple[int, int]]] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            name, sep, value = part.partition(":")
            name, value = name.strip(), value.strip()
            if not sep or not value:
                raise ResourceError(f"expected name:value, got {part!r}")
            check_name(name)
            if value.startswith("["):
                if not value.endswith("]"):
                    raise ResourceError(f"unterminated range list in {part!r}")
                ivs = []
                for item in filter(None, (x.strip() for x in value[1:-1].split(","))):
                    lo, dash, hi = item.partition("-")
                    try:
                        ivs.append((int(lo), int(hi) if dash else int(lo)))
                    except ValueError:
                        raise ResourceError(f"invalid range {item!r} in {part!r}")
                rng[name] = ivs
            else:
                scalars[name] = value
        return cls(scalars, rng, role)

    # ------------------------------------------------------------------ wire form

    def to_wire(self) -> tuple[str, dict[str, int], dict[str, Ranges]]:
        return (self._role, self._scalars, self._ranges)

    @classmethod
    def from_wire(cls, value: Any) -> Resources:
        """Rebuild from the wire form, validating every part (raises ResourceError).

        Scalar-only forms seen before give the value made then (Resources are immutable):
        a cluster's tasks come in a few shapes, sent over and over."""
        if (value.__class__ is not tuple and value.__class__ is not list) or len(value) != 3:
            raise ResourceError("resources must be [role, scalars, ranges]")
        role, scalars, ranges = value
        if ranges.__class__ is dict and not ranges and scalars.__class__ is dict:
            key = (role, *scalars.items())
            try:
                hit = _FROM_WIRE.get(key)
            except TypeError:   # an unhashable amount: refused below
                hit = None
            if hit is not None and role.__class__ is str:
                for _, v in key[1:]:   # equal is not enough: 1 == 1.0 == True
                    if v.__class__ is not int:
                        break
                else:
                    return hit
            res = cls._from_wire(role, scalars, ranges)
            if len(_FROM_WIRE) < _CACHE_MAX:
                _FROM_WIRE[key] = res
            return res
        return cls._from_wire(role, scalars, ranges)

    @classmethod
    def _from_wire(cls, role: Any, scalars: Any, ranges: Any) -> Resources:
        if role.__class__ is not str:
            raise ResourceError("resource role must be a string")
        if role not in _ROLES_SEEN:
            check_role(role)
            if len(_ROLES_SEEN) < _CACHE_MAX:
                _ROLES_SEEN.add(role)
        if scalars.__class__ is not dict or ranges.__class__ is not dict:
            raise ResourceError("resource scalars and ranges must be maps")
        s = {}
        for k, v in scalars.items():
            if k not in _NAMES_SEEN:
                check_name(k)
                if len(_NAMES_SEEN) < _CACHE_MAX:
                    _NAMES_SEEN.add(k)
            if v.__class__ is not int or v < 0 or v > MAX_MILLIS:
                raise ResourceError(f"invalid fixed-point amount for {k!r}: {v!r}")
            if v:
                s[k] = v
        if not ranges:
            return cls._make(s, {}, role)
        rng = {}
        for k, iv in ranges.items():
            if iv.__class__ is not tuple and iv.__class__ is not list:
                raise ResourceError(f"ranges of {k!r} must be a list")
            norm = normalize_ranges(iv)
            if norm:
                rng[check_name(k)] = norm
        if set(s) & set(rng):
            raise ResourceError(f"a name is both scalar and range: {sorted(set(s) & set(rng))}")
        return cls._make(s, rng, role)


_set_scalars = Resources.__dict__["_scalars"].__set__
_set_ranges = Resources.__dict__["_ranges"].__set__
_set_role = Resources.__dict__["_role"].__set__
_set_hash = Resources.__dict__["_hash"].__set__

EMPTY = Resources._make({}, {}, DEFAULT_ROLE)

# Names and roles already validated on the way in (bounded: an attacker cannot grow them).
_CACHE_MAX = 10_000
_NAMES_SEEN: set[str] = set(SCALAR_NAMES)
_ROLES_SEEN: set[str] = {DEFAULT_ROLE}
_FROM_WIRE: dict[tuple[Any, ...], Resources] = {}   # scalar-only wire forms already rebuilt


def forget_resource_shapes() -> None:
    """Forget the scalar-only wire forms rebuilt so far (see :meth:`Resources.from_wire`)."""
    _FROM_WIRE.clear()


def _display_order(scalars: Mapping[str, int]) -> list[tuple[str, int]]:
    known = [(k, scalars[k]) for k in SCALAR_NAMES if k in scalars]
    rest = sorted((k, v) for k, v in scalars.items() if k not in SCALAR_NAMES)
    return known + rest


# --------------------------------------------------------------------------- roles

_ROLE_BAD_COMPONENTS = {"", ".", "..", "*"}
MAX_ROLE_LENGTH = 255


def check_role(role: str) -> str:
    """Validate a role name as Mesos does (``a/b/c``; ``*`` is the default role)."""
    if role == DEFAULT_ROLE:
        return role
    err = role_error(role)
    if err:
        raise ResourceError(err)
    return role


def role_error(role: Any) -> str | None:
    """Why ``role`` is not a valid role name, or None."""
    if not isinstance(role, str):
        return f"role must be a string, got {type(role).__name__}"
    if role == DEFAULT_ROLE:
        return None
    if not role or len(role) > MAX_ROLE_LENGTH:
        return f"invalid role {role!r}: length must be 1..{MAX_ROLE_LENGTH}"
    if role.startswith("/") or role.endswith("/"):
        return f"invalid role {role!r}: leading or trailing '/'"
    for comp in role.split("/"):
        if comp in _ROLE_BAD_COMPONENTS:
            return f"invalid role {role!r}: component {comp!r} is not allowed"
        if comp.startswith("-"):
            return f"invalid role {role!r}: a component may not start with '-'"
        if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in comp):
            return f"invalid role {role!r}: whitespace or control character"
    return None


def role_ancestors(role: str) -> list[str]:
    """``eng/frontend/ui`` -> ``['eng', 'eng/frontend', 'eng/frontend/ui']``."""
    if role == DEFAULT_ROLE:
        return [role]
    parts = role.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
