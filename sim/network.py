"""The simulated network: where actors are, and how long a message takes.

:class:`ConstantNetwork` gives every message the same delay; :class:`TopologyNetwork` builds a
data-center topology with networkx (hosts in racks under a spine, a control rack) and draws
each link's delay from its own distribution.  Faults act on hosts: partitions lose messages
across the cut, slow links add delay, message loss drops a fraction.  Messages between the
same two actors stay in order (the host enforces it), whatever the delays drawn.

See docs/simulation.md, '[network]' and '[[faults]]'.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

import networkx as nx

from actors.protocol.units import Distribution, parse_distribution

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
        """None if the message is lost; else the extra delay faults add.  A message
        within one host (an agent and its executors, the master and its allocator)
        crosses no link: no fault touches it."""
        if src == dst:
            return 0.0
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
        if extra > 0:
            # Delays now differ over time (a message sent before a heal would arrive
            # after one sent later): the host must keep per-pair order from here on.
            self.constant = False
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
    """Hosts in racks under a spine; every link with its own delay distribution.

    The networkx graph is the model: each edge carries its ``latency`` (the
    distribution's text) and the distribution itself; a message's delay is a
    fresh draw from every link on its path (the graph is a tree: host, rack
    switch, spine, rack switch, host), so a slow rack or a slow host link shows
    in exactly the messages that cross it.  ``racks`` gives some racks of agents
    other distributions than the defaults (``[[network.racks]]``).
    """

    constant = False

    def __init__(self, agents_per_rack: int = 40, host_link: Any = "uniform(20us,60us)",
                 rack_link: Any = "uniform(50us,150us)", seed: int = 1,
                 racks: list[RackLinks] | None = None) -> None:
        super().__init__()
        if agents_per_rack < 1:
            raise ValueError("agents_per_rack must be at least 1")
        self.per_rack = agents_per_rack
        self.host_link = _link(host_link, "host_link")
        self.rack_link = _link(rack_link, "rack_link")
        self.rack_links = list(racks or [])
        self.rng = random.Random(f"{seed}:network")
        self.fault_rng = random.Random(f"{seed}:faults")
        self.graph = nx.Graph()
        self.graph.add_node(SPINE, kind="switch")
        self.host_rack: list[int] = []        # host index -> rack index
        self.host_dist: list[Any] = []        # host index -> its link to its rack switch
        self.uplink_dist: list[Any] = []      # rack index -> its rack switch's link to the spine
        self.rack_host_link: list[tuple[str, Any]] = []
        self.rack_fill: list[int] = []
        self.n_agent_racks = 0
        self.control_rack = self._new_rack(None)
        self._agent_rack = -1

    def _new_rack(self, agent_rack: int | None) -> int:
        r = len(self.rack_fill)
        host_link, rack_link = self.host_link, self.rack_link
        if agent_rack is not None:
            for spec in self.rack_links:
                if spec.covers(agent_rack):
                    host_link = spec.host_link or host_link
                    rack_link = spec.rack_link or rack_link
        self.rack_fill.append(0)
        self.rack_host_link.append(host_link)
        self.uplink_dist.append(rack_link[1])
        self.graph.add_node(("rack", r), kind="switch", agent_rack=agent_rack)
        self.graph.add_edge(("rack", r), SPINE, latency=rack_link[0], dist=rack_link[1])
        return r

    def place(self, name: str, kind: str) -> int:
        if kind == "agent":
            if self._agent_rack < 0 or self.rack_fill[self._agent_rack] >= self.per_rack:
                self._agent_rack = self._new_rack(self.n_agent_racks)
                self.n_agent_racks += 1
            rack = self._agent_rack
        else:
            rack = self.control_rack
        h = super().place(name, kind)
        self.host_rack.append(rack)
        self.rack_fill[rack] += 1
        text, dist = self.rack_host_link[rack]
        self.host_dist.append(dist)
        self.graph.add_node(("host", h), kind=kind, name=name)
        self.graph.add_edge(("host", h), ("rack", rack), latency=text, dist=dist)
        return h

    def hosts_in_racks(self, racks: list[int]) -> list[int]:
        wanted = set(racks)
        return [h for h, r in enumerate(self.host_rack) if r in wanted]

    def agent_racks(self) -> list[int]:
        return sorted({self.host_rack[h] for h in self.hosts("agent")})

    def path(self, src: int, dst: int) -> list[tuple[Any, Any]]:
        """The links a message from host ``src`` to host ``dst`` crosses (from the graph)."""
        nodes = nx.shortest_path(self.graph, ("host", src), ("host", dst))
        return list(itertools.pairwise(nodes))

    def delay(self, src: int, dst: int) -> float | None:
        if src == dst:
            return LOOPBACK
        extra = 0.0
        if self.faulty:
            f = self._fault(src, dst)
            if f is None:
                return None
            extra = f
        # The path in the tree, link by link (as path() would find it, without the search).
        rng = self.rng
        hd = self.host_dist
        d = hd[src].sample(rng) + hd[dst].sample(rng) + extra
        rs, rd = self.host_rack[src], self.host_rack[dst]
        if rs != rd:
            up = self.uplink_dist
            d += up[rs].sample(rng) + up[rd].sample(rng)
        return d


class RackLinks:
    """``[[network.racks]]``: other link distributions for some racks of agents."""

    def __init__(self, select: str, host_link: str | None, rack_link: str | None) -> None:
        m = re.fullmatch(r"racks(?:\[(\d*)(?::(\d*))?\])?", select.strip())
        if not m:
            raise ValueError(f"racks: expected racks, racks[i] or racks[i:j], got {select!r}")
        lo, hi = m.group(1), m.group(2)
        self.select = select
        self.lo = int(lo) if lo else 0
        if m.group(1) is None:
            self.hi: int | None = None
        elif ":" in select:
            self.hi = int(hi) if hi else None
        else:
            self.hi = self.lo + 1
        if self.hi is not None and self.hi <= self.lo:
            raise ValueError(f"racks: {select!r} selects no rack")
        if host_link is None and rack_link is None:
            raise ValueError(f"racks {select!r}: give host_link, rack_link or both")
        self.host_link = None if host_link is None else _link(host_link, f"racks {select!r}: host_link")
        self.rack_link = None if rack_link is None else _link(rack_link, f"racks {select!r}: rack_link")

    def covers(self, agent_rack: int) -> bool:
        return agent_rack >= self.lo and (self.hi is None or agent_rack < self.hi)


def _link(text: Any, what: str) -> tuple[str, Any]:
    """A link's delay: a duration or distribution as text, or a ready distribution."""
    if isinstance(text, Distribution):
        return str(text), text
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a duration or distribution, got {text!r}")
    try:
        return text, parse_distribution(_us(text))
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def _us(text: str) -> str:
    """Accept microseconds (``50us``) in delay distributions."""
    return re.sub(r"([0-9.]+)us", lambda m: f"{float(m.group(1)) / 1000:g}ms", text)


def from_settings(spec: dict[str, Any] | None, latency: float, seed: int) -> Network:
    if not spec:
        net = ConstantNetwork(latency)
        net.fault_rng = random.Random(f"{seed}:faults")   # message loss draws from the seed too
        return net
    racks = spec.get("racks", [])
    if not isinstance(racks, list):
        raise ValueError("racks must be an array of tables ([[network.racks]])")
    rack_links = []
    for i, t in enumerate(racks):
        if not isinstance(t, dict):
            raise ValueError(f"racks[{i}] must be a table")
        unknown = set(t) - {"select", "host_link", "rack_link"}
        if unknown:
            raise ValueError(f"racks[{i}]: unknown key {sorted(unknown)[0]!r} (known: select, host_link, rack_link)")
        if "select" not in t:
            raise ValueError(f"racks[{i}]: select is required (racks[i] or racks[i:j])")
        rack_links.append(RackLinks(str(t["select"]), t.get("host_link"), t.get("rack_link")))
    per_rack = spec.get("agents_per_rack", 40)
    if type(per_rack) is not int:
        raise ValueError(f"agents_per_rack must be a whole number, got {per_rack!r}")
    return TopologyNetwork(per_rack, spec.get("host_link", "uniform(20us,60us)"),
                           spec.get("rack_link", "uniform(50us,150us)"), seed, rack_links)
