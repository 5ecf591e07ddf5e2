"""The simulated network: where actors are, and how long a message takes.

:class:`ConstantNetwork` gives every message the same delay.
:class:`TopologyNetwork` builds a data-center topology with networkx - one
host per agent, hosts in racks under top-of-rack switches, racks under a
spine, and a control rack for the master, the allocator and the frameworks
- and draws each link's delay from its own distribution (a message crosses
two links within a rack, four between racks; an executor shares its agent's
host).

Faults act on hosts: a *partition* cuts the targets (hosts, or whole racks)
off from the rest, and a message between two parts of the network is lost,
as a TCP connection across a cut would fail; *slow links* add delay to the
targets' messages; *message loss* drops a fraction of them.  Messages between the
same two actors stay in order (the host enforces it), as over Thespian's TCP
transport, whatever the delays drawn.
"""

from __future__ import annotations

import random
import re
from typing import Any

import networkx as nx

from actors.units import parse_distribution

LOOPBACK = 0.00002   # two actors of one host (an agent and its executors)
SPINE = "spine"


class Network:
    """Placement and delay, and the faults every network model supports: cut hosts off,
    drop a fraction of their messages, slow them down.  ``constant`` tells the host it
    need not keep per-pair order (every delay is the same)."""

    constant = True

    def __init__(self) -> None:
        self.host_kind: list[str] = []
        self.cut_off: dict[int, int] = {}    # host -> the part it is cut into (0: the rest)
        self.loss: dict[int, float] = {}
        self.extra: dict[int, float] = {}
        self.faulty = False
        self._parts = 0
        self.fault_rng = random.Random(0)

    def place(self, name: str, kind: str) -> int:
        self.host_kind.append(kind)
        return len(self.host_kind) - 1

    def hosts(self, kind: str) -> list[int]:
        return [h for h, k in enumerate(self.host_kind) if k == kind]

    def delay(self, src: int, dst: int) -> float | None:
        raise NotImplementedError

    def _fault(self, src: int, dst: int) -> float | None:
        """None if the message is lost; else the extra delay faults add."""
        cut = self.cut_off
        if cut and cut.get(src, 0) != cut.get(dst, 0):
            return None
        loss = self.loss
        if loss:
            p = max(loss.get(src, 0.0), loss.get(dst, 0.0))
            if p and self.fault_rng.random() < p:
                return None
        return self.extra.get(src, 0.0) + self.extra.get(dst, 0.0)

    def _refresh(self) -> None:
        self.faulty = bool(self.cut_off or self.loss or self.extra)

    def cut(self, hosts: list[int]) -> None:
        """Cut ``hosts`` off from the rest of the network (they still reach each other)."""
        self._parts += 1
        for h in hosts:
            self.cut_off[h] = self._parts
        self._refresh()

    def mend(self, hosts: list[int] | None = None) -> None:
        for h in (list(self.cut_off) if hosts is None else hosts):
            self.cut_off.pop(h, None)
        self._refresh()

    def lossy(self, hosts: list[int], p: float) -> None:
        for h in hosts:
            if p > 0:
                self.loss[h] = p
            else:
                self.loss.pop(h, None)
        self._refresh()

    def slow(self, hosts: list[int], extra: float) -> None:
        for h in hosts:
            if extra > 0:
                self.extra[h] = extra
            else:
                self.extra.pop(h, None)
        self._refresh()


class ConstantNetwork(Network):
    def __init__(self, seconds: float = 0.0005) -> None:
        super().__init__()
        self.seconds = seconds

    def delay(self, src: int, dst: int) -> float | None:
        if self.faulty:
            f = self._fault(src, dst)
            return None if f is None else self.seconds + f
        return self.seconds


class TopologyNetwork(Network):
    """Hosts in racks under a spine; per-link delay distributions."""

    constant = False

    def __init__(self, agents_per_rack: int = 40, host_link: str = "uniform(20us,60us)",
                 rack_link: str = "uniform(50us,150us)", seed: int = 1) -> None:
        super().__init__()
        if agents_per_rack < 1:
            raise ValueError("agents_per_rack must be at least 1")
        self.per_rack = agents_per_rack
        self.host_dist = parse_distribution(_us(host_link))
        self.rack_dist = parse_distribution(_us(rack_link))
        self.rng = random.Random(f"{seed}:network")
        self.fault_rng = random.Random(f"{seed}:faults")
        self.graph = nx.Graph()
        self.graph.add_node(SPINE, kind="switch")
        self.host_rack: list[int] = []        # host index -> rack index
        self.rack_fill: list[int] = []
        self.control_rack = self._new_rack()
        self._agent_rack = -1

    def _new_rack(self) -> int:
        r = len(self.rack_fill)
        self.rack_fill.append(0)
        self.graph.add_node(("rack", r), kind="switch")
        self.graph.add_edge(("rack", r), SPINE)
        return r

    def place(self, name: str, kind: str) -> int:
        if kind == "agent":
            if self._agent_rack < 0 or self.rack_fill[self._agent_rack] >= self.per_rack:
                self._agent_rack = self._new_rack()
            rack = self._agent_rack
        else:
            rack = self.control_rack
        h = super().place(name, kind)
        self.host_rack.append(rack)
        self.rack_fill[rack] += 1
        self.graph.add_node(("host", h), kind=kind, name=name)
        self.graph.add_edge(("host", h), ("rack", rack))
        return h

    def hosts_in_racks(self, racks: list[int]) -> list[int]:
        wanted = set(racks)
        return [h for h, r in enumerate(self.host_rack) if r in wanted]

    def agent_racks(self) -> list[int]:
        return sorted({self.host_rack[h] for h in self.hosts("agent")})

    def delay(self, src: int, dst: int) -> float | None:
        if src == dst:
            return LOOPBACK
        extra = 0.0
        if self.faulty:
            f = self._fault(src, dst)
            if f is None:
                return None
            extra = f
        rng = self.rng
        host = self.host_dist.sample
        d = host(rng) + host(rng) + extra
        if self.host_rack[src] != self.host_rack[dst]:
            rack = self.rack_dist.sample
            d += rack(rng) + rack(rng)
        return d


def _us(text: str) -> str:
    """Accept microseconds (``50us``) in delay distributions."""
    return re.sub(r"([0-9.]+)us", lambda m: f"{float(m.group(1)) / 1000:g}ms", text)


def from_settings(spec: dict[str, Any] | None, latency: float, seed: int) -> Network:
    if not spec:
        return ConstantNetwork(latency)
    return TopologyNetwork(int(spec.get("agents_per_rack", 40)), str(spec.get("host_link", "uniform(20us,60us)")),
                           str(spec.get("rack_link", "uniform(50us,150us)")), seed)
