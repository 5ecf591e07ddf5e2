"""Sorters: in which order the clients of one level (child roles, or a role's
frameworks) are considered for the next allocation.

The interface is Mesos' (``src/master/allocator/sorter/``): ``add``, ``remove``, ``activate``,
``deactivate``, ``update_weight``, ``allocated``, ``unallocated`` and a lazy ``order()`` that
yields active clients best first, so picking the first eligible one costs a few heap
operations, not a sort.  :class:`DRFSorter` orders by (weighted dominant share, name) in a heap
with lazy deletion; :class:`RandomSorter` draws a weighted random order from the seeded RNG at
every ``order()``.  Allocations are ``{name: millis}`` maps (the resources' fixed-point
scalars); shares are taken against the total set with :meth:`Sorter.set_total`.

See docs/allocators.md, 'The built-in allocator' (ties, and the random order).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Generator, Iterable, Mapping
from typing import Any

Alloc = dict[str, int]


class _Client:
    __slots__ = ("name", "weight", "alloc", "active", "version", "share")

    def __init__(self, name: str, weight: float) -> None:
        self.name = name
        self.weight = weight
        self.alloc: Alloc = {}
        self.active = False
        self.version = 0
        self.share = 0.0


class Sorter:
    """The interface, with the bookkeeping every sorter shares."""

    def __init__(self, excluded: Iterable[str] = ()) -> None:
        self.clients: dict[str, _Client] = {}
        self.excluded = frozenset(excluded)
        self._total: dict[str, int] = {}

    # -- clients
    def add(self, name: str, weight: float = 1.0) -> None:
        if name in self.clients:
            raise KeyError(f"client {name!r} exists already")
        self.clients[name] = _Client(name, weight)

    def remove(self, name: str) -> None:
        c = self.clients.pop(name)
        c.active = False
        self._changed(c)

    def __contains__(self, name: str) -> bool:
        return name in self.clients

    def activate(self, name: str) -> None:
        c = self.clients[name]
        if not c.active:
            c.active = True
            self._changed(c)

    def deactivate(self, name: str) -> None:
        c = self.clients[name]
        if c.active:
            c.active = False
            self._changed(c)

    def is_active(self, name: str) -> bool:
        return self.clients[name].active

    def update_weight(self, name: str, weight: float) -> None:
        c = self.clients[name]
        c.weight = weight
        self._changed(c)

    # -- allocations
    def allocated(self, name: str, res: Mapping[str, int]) -> None:
        c = self.clients[name]
        add_into(c.alloc, res)
        self._changed(c)

    def unallocated(self, name: str, res: Mapping[str, int]) -> None:
        c = self.clients[name]
        sub_into(c.alloc, res)
        self._changed(c)

    def allocation(self, name: str) -> Alloc:
        return self.clients[name].alloc

    # -- shares
    def set_total(self, total: Mapping[str, int]) -> None:
        self._total = {k: v for k, v in total.items() if v > 0 and k not in self.excluded}
        self._rebuild()

    def share(self, name: str) -> float:
        c = self.clients[name]
        return _dominant(c.alloc, self._total) / c.weight

    # -- order
    def order(self) -> Generator[str, None, None]:  # pragma: no cover - interface
        raise NotImplementedError

    def first(self) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def _changed(self, c: _Client) -> None:
        pass

    def _rebuild(self) -> None:
        pass


def add_into(into: dict[str, int], res: Mapping[str, int]) -> None:
    """``into += res`` for fixed-point amounts."""
    for k, v in res.items():
        into[k] = into.get(k, 0) + v


def sub_into(into: dict[str, int], res: Mapping[str, int]) -> None:
    """``into -= res``, dropping what reaches zero (never below)."""
    for k, v in res.items():
        left = into.get(k, 0) - v
        if left > 0:
            into[k] = left
        else:
            into.pop(k, None)


def _dominant(alloc: Mapping[str, int], total: Mapping[str, int]) -> float:
    # Division, not multiplication by an inverse: correctly rounded, so equal shares
    # of different resources compare equal and ties fall to the name.
    best = 0.0
    for k, v in alloc.items():
        t = total.get(k)
        if t is not None:
            s = v / t
            if s > best:
                best = s
    return best


class DRFSorter(Sorter):
    """Weighted DRF: the lowest (share / weight, name) first."""

    def __init__(self, excluded: Iterable[str] = (), rng: random.Random | None = None) -> None:
        super().__init__(excluded)
        self._heap: list[tuple[float, str, int]] = []

    def _changed(self, c: _Client) -> None:
        c.version += 1
        if c.active:
            c.share = _dominant(c.alloc, self._total) / c.weight
            heapq.heappush(self._heap, (c.share, c.name, c.version))
            if len(self._heap) > 4 * len(self.clients) + 64:
                self._rebuild()

    def _rebuild(self) -> None:
        heap = []
        total = self._total
        for c in self.clients.values():
            c.version += 1
            if c.active:
                c.share = _dominant(c.alloc, total) / c.weight
                heap.append((c.share, c.name, c.version))
        heapq.heapify(heap)
        self._heap = heap

    def order(self) -> Generator[str, None, None]:
        """Active clients, best first.  Stop iterating whenever you like: what was
        looked at goes back into the heap when the iterator is closed or exhausted."""
        heap = self._heap
        clients = self.clients
        taken: list[tuple[float, str, int]] = []
        try:
            while heap:
                entry = heapq.heappop(heap)
                c = clients.get(entry[1])
                if c is None or c.version != entry[2] or not c.active:
                    continue  # outdated
                taken.append(entry)
                yield entry[1]
        finally:
            for entry in taken:
                c = clients.get(entry[1])
                if c is not None and c.version == entry[2]:
                    heapq.heappush(heap, entry)

    def first(self) -> str | None:
        """The best active client, or None (without an iterator)."""
        heap = self._heap
        clients = self.clients
        while heap:
            entry = heap[0]
            c = clients.get(entry[1])
            if c is None or c.version != entry[2] or not c.active:
                heapq.heappop(heap)
                continue
            return entry[1]
        return None


class RandomSorter(Sorter):
    """A weighted random order, drawn afresh for every ``order()``: each client comes
    next with a probability proportional to its weight among those left."""

    def __init__(self, excluded: Iterable[str] = (), rng: random.Random | None = None) -> None:
        super().__init__(excluded)
        self.rng = rng or random.Random(0)

    def order(self) -> Generator[str, None, None]:
        # Exponential race: key = Exp(1) / weight, smallest first, is a weighted
        # random permutation.  Names are sorted first so that the draw is reproducible.
        rng = self.rng
        keys = []
        for name in sorted(self.clients):
            c = self.clients[name]
            if c.active:
                u = rng.random()
                keys.append((-math.log(1.0 - u) / c.weight, name))
        keys.sort()
        for _, name in keys:
            still = self.clients.get(name)
            if still is not None and still.active:
                yield name

    def first(self) -> str | None:
        for name in self.order():
            return name
        return None


SORTERS: dict[str, type[Sorter]] = {"drf": DRFSorter, "random": RandomSorter}


def make_sorter(kind: str, excluded: Iterable[str] = (), rng: Any = None) -> Sorter:
    try:
        cls = SORTERS[kind]
    except KeyError:
        raise ValueError(f"unknown sorter {kind!r} (known: {', '.join(sorted(SORTERS))})") from None
    return cls(excluded, rng)  # type: ignore[call-arg]
