"""Quota per role: a guarantee and a limit, on any role of the tree.

* A **guarantee** is set aside first: roles below their guarantee are served
  before fair sharing starts, and resources still needed to meet unmet
  guarantees (the *headroom*) are held back from everyone else.
* A **limit** is never exceeded: a role's consumption, its descendants'
  included, stays within it, so a parent's limit bounds the sum of its
  children.

Consumption is what the allocator has handed out (offered or in use).  Both
are maps of scalar names to fixed-point amounts; a name missing from a limit
is not limited (a limit of 0 is a real limit).  Quota covers scalars only, as
in Mesos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.protocol.resources import (
    MAX_MILLIS,
    ResourceError,
    check_name,
    role_ancestors,
    role_error,
    to_millis,
)
from actors.protocol.units import UnitError, parse_size

Amounts = dict[str, int]


@dataclass(frozen=True)
class Quota:
    guarantee: Amounts = field(default_factory=dict)
    limit: Amounts = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.guarantee and not self.limit

    def to_wire(self) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
        return tuple(sorted(self.guarantee.items())), tuple(sorted(self.limit.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"guarantee": {k: v / 1000 for k, v in sorted(self.guarantee.items())},
                "limit": {k: v / 1000 for k, v in sorted(self.limit.items())}}


class QuotaError(ValueError):
    pass


def amounts(spec: Mapping[str, Any], where: str) -> Amounts:
    """``{cpus = 10, mem = "20GiB", gpus = 2}`` -> fixed-point amounts (mem/disk as sizes)."""
    if not isinstance(spec, Mapping):
        raise QuotaError(f"{where} must be a table of resource amounts")
    out: Amounts = {}
    for name, value in spec.items():
        try:
            check_name(name)
            if name in ("mem", "disk"):
                value = parse_size(value)
            out[name] = to_millis(value)
        except (ResourceError, UnitError) as e:
            raise QuotaError(f"{where}.{name}: {e}") from None
    return out


def parse_amounts(text: str, where: str) -> Amounts:
    """``"cpus:10;mem:20GiB;gpus:2"`` -> fixed-point amounts (mem and disk take sizes)."""
    spec: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, value = part.partition(":")
        if not sep or not value.strip():
            raise QuotaError(f"{where}: expected name:amount, got {part!r}")
        spec[name.strip()] = value.strip()
    return amounts(spec, where)


def from_wire(pairs: Any, where: str) -> Amounts:
    out: Amounts = {}
    for name, millis in pairs:
        if type(millis) is not int or not 0 <= millis <= MAX_MILLIS:
            raise QuotaError(f"{where}.{name}: invalid amount {millis!r}")
        try:
            check_name(name)
        except ResourceError as e:
            raise QuotaError(f"{where}: {e}") from None
        out[name] = millis
    return out


def validate(quotas: Mapping[str, Quota]) -> None:
    """Raise QuotaError unless the quota configuration is consistent:
    guarantee <= limit for every role; the guarantees of a role's children fit in
    its guarantee and in its limit (and in every ancestor's limit)."""
    for role, q in sorted(quotas.items()):
        err = role_error(role)
        if err or role == "*":
            raise QuotaError(f"quota for {role!r}: {err or 'the default role * cannot have quota'}")
        for k, g in q.guarantee.items():
            if k in q.limit and g > q.limit[k]:
                raise QuotaError(f"role {role}: guarantee of {k} ({g / 1000:g}) exceeds its limit "
                                 f"({q.limit[k] / 1000:g})")
    # The guarantees just below a role (its nearest guaranteed descendants) must fit in
    # its own guarantee and in its limit.
    guaranteed = {r for r, q in quotas.items() if q.guarantee}
    for role, q in sorted(quotas.items()):
        sums: Amounts = {}
        prefix = role + "/"
        for d in guaranteed:
            if not d.startswith(prefix):
                continue
            between = role_ancestors(d)[len(role_ancestors(role)):-1]
            if any(b in guaranteed for b in between):
                continue
            for k, g in quotas[d].guarantee.items():
                sums[k] = sums.get(k, 0) + g
        for k, total in sorted(sums.items()):
            if k in q.limit and total > q.limit[k]:
                raise QuotaError(f"role {role}: its descendants' guarantees of {k} ({total / 1000:g}) "
                                 f"exceed its limit ({q.limit[k] / 1000:g})")
            if q.guarantee and k in q.guarantee and total > q.guarantee[k]:
                raise QuotaError(f"role {role}: its descendants' guarantees of {k} ({total / 1000:g}) "
                                 f"exceed its own guarantee ({q.guarantee[k] / 1000:g})")
