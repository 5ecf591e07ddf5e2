"""The hierarchical allocation policy: weighted DRF along the role tree, with quota.

:class:`HierarchicalPolicy` (``drf``; :class:`RandomPolicy` is ``random``) keeps a sorter per
node of the role tree over its child roles and, where frameworks subscribe to the node's own
role, a virtual child for them (Mesos' "." leaf).  A run serves unmet guarantees first, then
gives each agent's free resources to the eligible framework with the lowest weighted dominant
share, cut to quota limits and to the headroom that unmet guarantees hold back.  What keeps
it fast: heap sorters updated by one push per change, picking that stops at the first
eligible client, refusal filters indexed per agent, and runs that look only at changed
agents unless demand changed.

See docs/allocators.md, 'The built-in allocator' and 'Why it is fast'.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Mapping
from typing import Any
from zlib import crc32

from actors.allocator.quota import Quota, QuotaError, validate
from actors.allocator.sorter import Sorter, add_into, make_sorter, sub_into
from actors.config import ConfigError
from actors.protocol import messages as M
from actors.protocol.resources import DEFAULT_ROLE, EMPTY, Resources, role_ancestors

GPU = M.Capability.GPU_RESOURCES
SELF = "\x00self"  # the virtual child standing for a role's own frameworks
DEFAULT_MIN_ALLOCATABLE = ("cpus:0.01", "mem:32")


class _Node:
    """A role of the tree (the root's path is "")."""

    __slots__ = ("path", "parent", "children", "sorter", "fw_sorter", "alloc", "own_wanting",
                 "wanting", "gpu_wanting", "own_gpu_wanting", "blocked", "has_self")

    def __init__(self, path: str, parent: _Node | None, sorter: Sorter) -> None:
        self.path = path
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.sorter = sorter            # over child roles (and SELF)
        self.fw_sorter: Sorter | None = None
        self.alloc: dict[str, int] = {}  # the subtree's consumption (offered or in use)
        self.own_wanting = 0            # wanting frameworks of exactly this role
        self.own_gpu_wanting = 0
        self.wanting = 0                # ... of this subtree
        self.gpu_wanting = 0
        self.blocked = False            # at a quota limit: no offers to the subtree
        self.has_self = False


class _Agent:
    __slots__ = ("id", "total", "allocated", "alloc", "has_gpus", "filters", "filtered_wanting",
                 "filtered_gpu_wanting")

    def __init__(self, agent_id: str, total: Resources) -> None:
        self.id = agent_id
        self.total = total.with_role(DEFAULT_ROLE)
        self.allocated = EMPTY
        self.alloc: dict[tuple[str, str], Resources] = {}   # (framework, role) -> resources here
        self.has_gpus = total.millis("gpus") > 0
        # (framework, role) -> (until, refused): a filter hiding this agent's free resources.
        self.filters: dict[tuple[str, str], tuple[float, Resources]] = {}
        self.filtered_wanting = 0       # filters of pairs that want offers now
        self.filtered_gpu_wanting = 0   # ... of which the framework is GPU-capable

    @property
    def free(self) -> Resources:
        return self.total - self.allocated


class _Framework:
    __slots__ = ("id", "roles", "gpu", "suppressed", "active", "filtered_agents")

    def __init__(self, fid: str, roles: Iterable[str], caps: Iterable[str], suppressed: Iterable[str]) -> None:
        self.id = fid
        self.roles = tuple(roles)
        self.gpu = GPU in set(caps)
        self.suppressed = set(suppressed)
        self.active = True
        self.filtered_agents: dict[str, set[str]] = {}  # role -> agents with a filter

    def wants(self, role: str) -> bool:
        return self.active and role not in self.suppressed


class HierarchicalPolicy:
    """Hierarchical weighted DRF with quota guarantees and limits.  ``sorter``: drf | random."""

    sorter_kind = "drf"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.sorter_kind = str(settings.get("sorter", self.sorter_kind))
        self.rng = random.Random(f"{settings.get('seed', 0)}:policy")
        self.excluded = tuple(settings.get("fair_sharing_excluded_resource_names", ()))
        self.filter_gpus = bool(settings.get("filter_gpu_resources", True))
        self.interval = float(settings.get("allocation_interval", 1.0))
        try:
            make_sorter(self.sorter_kind)
            mins = settings.get("min_allocatable_resources", list(DEFAULT_MIN_ALLOCATABLE))
            self.min_allocatable = [Resources.parse(x) for x in mins]
        except (ValueError, TypeError) as e:
            raise ConfigError(str(e)) from None
        self.agents: dict[str, _Agent] = {}
        self.frameworks: dict[str, _Framework] = {}
        self.weights: dict[str, float] = {}
        self.quotas: dict[str, Quota] = {}
        self.total: dict[str, int] = {}
        self.free_total: dict[str, int] = {}   # unallocated, cluster-wide
        self.root = _Node("", None, self._sorter())
        self.nodes: dict[str, _Node] = {"": self.root}
        self.dirty: dict[str, None] = {}       # agents whose free resources changed (ordered)
        self.demand_changed = False
        self._total_changed = False
        self._expiries: list[tuple[float, str, str, str]] = []   # (until, agent, framework, role)
        self.wanting_pairs = 0
        self.wanting_gpu_pairs = 0
        self.runs = 0
        for role, w in dict(settings.get("weights", {})).items():
            self.update_weight(role, float(w))
        for role, q in dict(settings.get("quotas", {})).items():
            self.update_quota(role, q if isinstance(q, Quota) else Quota(dict(q.get("guarantee", {})),
                                                                          dict(q.get("limit", {}))))

    def _sorter(self) -> Sorter:
        return make_sorter(self.sorter_kind, self.excluded, self.rng)

    # ------------------------------------------------------------------ the role tree

    def _node(self, role: str) -> _Node:
        node = self.nodes.get(role)
        if node is not None:
            return node
        parent_path = role.rpartition("/")[0] if "/" in role else ""
        parent = self._node(parent_path)
        node = _Node(role, parent, self._sorter())
        self.nodes[role] = node
        parent.children[role] = node
        parent.sorter.add(role, self.weights.get(role, 1.0))
        if self.total:
            parent.sorter.set_total(self.total)
        if parent.path and parent.fw_sorter is not None and not parent.has_self:
            self._add_self(parent)
        self._check_blocked(node)
        return node

    def _add_self(self, node: _Node) -> None:
        """Give ``node``'s own frameworks a place among its child roles."""
        node.has_self = True
        node.sorter.add(SELF, 1.0)
        own: dict[str, int] = {}
        assert node.fw_sorter is not None
        for fid in node.fw_sorter.clients:
            add_into(own, node.fw_sorter.allocation(fid))
        if own:
            node.sorter.allocated(SELF, own)
        if self.total:
            node.sorter.set_total(self.total)
        if node.own_wanting:
            node.sorter.activate(SELF)

    def _fw_sorter(self, node: _Node) -> Sorter:
        if node.fw_sorter is None:
            node.fw_sorter = self._sorter()
            if self.total:
                node.fw_sorter.set_total(self.total)
            if node.children:
                self._add_self(node)
        return node.fw_sorter

    def _set_activity(self, node: _Node) -> None:
        """Refresh ``node``'s activity in its parent, and its ancestors' in turn."""
        while node.parent is not None:
            parent = node.parent
            want = node.wanting > 0 and not node.blocked
            if want != parent.sorter.is_active(node.path):
                if want:
                    parent.sorter.activate(node.path)
                else:
                    parent.sorter.deactivate(node.path)
            node = parent

    def _wanting_changed(self, role: str, fid: str, delta: int, gpu: bool) -> None:
        node = self._node(role)
        fs = self._fw_sorter(node)
        if delta > 0:
            fs.activate(fid)
        else:
            fs.deactivate(fid)
        node.own_wanting += delta
        if gpu:
            node.own_gpu_wanting += delta
        if node.has_self:
            if node.own_wanting > 0:
                node.sorter.activate(SELF)
            else:
                node.sorter.deactivate(SELF)
        n: _Node | None = node
        while n is not None:
            n.wanting += delta
            if gpu:
                n.gpu_wanting += delta
            n = n.parent
        self.wanting_pairs += delta
        if gpu:
            self.wanting_gpu_pairs += delta
        self._set_activity(node)

    def _pair_wants(self, fw: _Framework, role: str, wants: bool) -> None:
        """A (framework, role) pair starts or stops wanting offers."""
        delta = 1 if wants else -1
        self._wanting_changed(role, fw.id, delta, fw.gpu)
        for agent_id in fw.filtered_agents.get(role, ()):
            a = self.agents.get(agent_id)
            if a is not None:
                a.filtered_wanting += delta
                if fw.gpu:
                    a.filtered_gpu_wanting += delta
        if wants:
            self.demand_changed = True

    # ------------------------------------------------------------------ agents

    def add_agent(self, agent_id: str, total: Resources, allocated: Iterable[M.Allocation]) -> None:
        if agent_id in self.agents:
            self.remove_agent(agent_id)
        a = _Agent(agent_id, total)
        self.agents[agent_id] = a
        add_into(self.total, a.total.scalar_map())
        add_into(self.free_total, a.total.scalar_map())
        self._total_changed = True
        for x in allocated:
            self._charge(x.framework_id, x.role, a, x.resources)
        self.dirty[agent_id] = None

    def remove_agent(self, agent_id: str) -> None:
        a = self.agents.get(agent_id)
        if a is None:
            return
        for key in list(a.filters):
            self._drop_filter(a, key)
        for (fid, role), res in list(a.alloc.items()):
            self._uncharge(fid, role, a, res)
        del self.agents[agent_id]
        sub_into(self.total, a.total.scalar_map())
        sub_into(self.free_total, a.total.scalar_map())
        self._total_changed = True
        self.dirty.pop(agent_id, None)

    # ------------------------------------------------------------------ frameworks

    def add_framework(self, fid: str, roles: Iterable[str], caps: Iterable[str],
                      suppressed: Iterable[str], allocated: Iterable[M.Allocation]) -> None:
        if fid in self.frameworks:
            self.remove_framework(fid)
        fw = _Framework(fid, roles, caps, suppressed)
        self.frameworks[fid] = fw
        for role in fw.roles:
            fs = self._fw_sorter(self._node(role))
            if fid not in fs:
                fs.add(fid)
            if fw.wants(role):
                self._pair_wants(fw, role, True)
        for x in allocated:
            a = self.agents.get(x.agent_id)
            if a is not None:
                self._charge(fid, x.role, a, x.resources)
        self.demand_changed = True

    def remove_framework(self, fid: str) -> None:
        fw = self.frameworks.get(fid)
        if fw is None:
            return
        for role in fw.roles:
            for agent_id in sorted(fw.filtered_agents.get(role, ())):
                a = self.agents.get(agent_id)
                if a is not None:
                    self._drop_filter(a, (fid, role))
            if fw.wants(role):
                self._pair_wants(fw, role, False)
        # Allocations still charged stay until recovered (the master recovers them).
        del self.frameworks[fid]

    def activate(self, fid: str, active: bool) -> None:
        fw = self.frameworks.get(fid)
        if fw is None or fw.active == active:
            return
        before = {r: fw.wants(r) for r in fw.roles}
        fw.active = active
        for role in fw.roles:
            if fw.wants(role) != before[role]:
                self._pair_wants(fw, role, fw.wants(role))

    def suppress(self, fid: str, roles: Iterable[str]) -> None:
        fw = self.frameworks.get(fid)
        if fw is None:
            return
        for role in (list(roles) or list(fw.roles)):
            if role in fw.roles and role not in fw.suppressed:
                was = fw.wants(role)
                fw.suppressed.add(role)
                if was:
                    self._pair_wants(fw, role, False)

    def revive(self, fid: str, roles: Iterable[str]) -> None:
        fw = self.frameworks.get(fid)
        if fw is None:
            return
        for role in (list(roles) or list(fw.roles)):
            if role not in fw.roles:
                continue
            for agent_id in sorted(fw.filtered_agents.get(role, ())):
                a = self.agents.get(agent_id)
                if a is not None:
                    self._drop_filter(a, (fid, role))
                    self.dirty[agent_id] = None
            if role in fw.suppressed:
                fw.suppressed.discard(role)
                if fw.wants(role):
                    self._pair_wants(fw, role, True)
        self.demand_changed = True

    # ------------------------------------------------------------------ weights and quota

    def update_weight(self, role: str, weight: float) -> None:
        if not weight > 0:
            raise ConfigError(f"weight of role {role!r} must be positive, got {weight}")
        self.weights[role] = weight
        node = self._node(role)
        assert node.parent is not None
        node.parent.sorter.update_weight(role, weight)
        self.demand_changed = True

    def update_quota(self, role: str, quota: Quota) -> None:
        new = dict(self.quotas)
        if quota.is_empty():
            new.pop(role, None)
        else:
            new[role] = quota
        try:
            validate(new)
        except QuotaError as e:
            raise ConfigError(str(e)) from None
        self.quotas = new
        node = self._node(role)
        self._check_blocked(node)
        for n in list(self.nodes.values()):
            if n.path.startswith(role + "/"):
                self._check_blocked(n)
        self.demand_changed = True

    def _limit_left(self, node: _Node) -> dict[str, int] | None:
        """What the limits on ``node``'s path still allow, per limited name (None: no limit)."""
        left: dict[str, int] | None = None
        n: _Node | None = node
        while n is not None and n.path:
            q = self.quotas.get(n.path)
            if q is not None and q.limit:
                if left is None:
                    left = {}
                for k, lim in q.limit.items():
                    room = lim - n.alloc.get(k, 0)
                    if k not in left or room < left[k]:
                        left[k] = room
            n = n.parent
        return left

    def _check_blocked(self, node: _Node) -> None:
        q = self.quotas.get(node.path)
        blocked = bool(q and q.limit and any(node.alloc.get(k, 0) >= lim for k, lim in q.limit.items()))
        if blocked != node.blocked:
            node.blocked = blocked
            self._set_activity(node)
            if not blocked:
                self.demand_changed = True

    def _unmet(self) -> dict[str, dict[str, int]]:
        """Roles below their guarantee, and by how much (their subtree's consumption counts)."""
        out = {}
        for role, q in self.quotas.items():
            if not q.guarantee:
                continue
            node = self.nodes.get(role)
            alloc = node.alloc if node is not None else {}
            miss = {k: g - alloc.get(k, 0) for k, g in q.guarantee.items() if g > alloc.get(k, 0)}
            if miss:
                out[role] = miss
        return out

    def required_headroom(self) -> dict[str, int]:
        """Unallocated resources that must stay free to meet unmet guarantees: for each
        guaranteed role, the larger of what it misses and what its guaranteed
        descendants need, summed over the top-most guaranteed roles."""
        guaranteed = sorted((r for r, q in self.quotas.items() if q.guarantee), key=lambda r: -r.count("/"))
        need: dict[str, dict[str, int]] = {}
        for role in guaranteed:  # deepest first
            node = self.nodes.get(role)
            alloc = node.alloc if node is not None else {}
            mine = {k: max(0, g - alloc.get(k, 0)) for k, g in self.quotas[role].guarantee.items()}
            below: dict[str, int] = {}
            for d, dneed in need.items():
                if d.startswith(role + "/") and not any(
                        a in need and a != d for a in role_ancestors(d)[len(role_ancestors(role)):-1]):
                    add_into(below, dneed)
            need[role] = {k: max(mine.get(k, 0), below.get(k, 0)) for k in set(mine) | set(below)}
        total: dict[str, int] = {}
        for role, n in need.items():
            if not any(a in need for a in role_ancestors(role)[:-1]):
                add_into(total, n)
        return {k: v for k, v in total.items() if v > 0}

    # ------------------------------------------------------------------ accounting

    def _charge(self, fid: str, role: str, a: _Agent, res: Resources) -> None:
        plain = res.with_role(DEFAULT_ROLE)
        amounts = plain.scalar_map()
        key = (fid, role)
        a.allocated = a.allocated + plain
        held = a.alloc.get(key)
        a.alloc[key] = plain if held is None else held + plain
        sub_into(self.free_total, amounts)
        node = self._node(role)
        fs = self._fw_sorter(node)
        if fid not in fs:
            fs.add(fid)
        fs.allocated(fid, amounts)
        if node.has_self:
            node.sorter.allocated(SELF, amounts)
        n: _Node | None = node
        while n is not None and n.parent is not None:
            add_into(n.alloc, amounts)
            n.parent.sorter.allocated(n.path, amounts)
            if n.path in self.quotas:
                self._check_blocked(n)
            n = n.parent

    def _uncharge(self, fid: str, role: str, a: _Agent, res: Resources) -> None:
        key = (fid, role)
        held = a.alloc.get(key)
        if held is None:
            return
        plain = res.with_role(DEFAULT_ROLE)
        if not held.contains(plain):
            # Never take back more than this framework holds in this role on this agent.
            plain = held.minus_saturating(held.minus_saturating(plain))
        left = held - plain
        if left:
            a.alloc[key] = left
        else:
            del a.alloc[key]
        a.allocated = a.allocated - plain
        amounts = plain.scalar_map()
        add_into(self.free_total, amounts)
        node = self._node(role)
        fs = self._fw_sorter(node)
        if fid in fs:
            fs.unallocated(fid, amounts)
            if fid not in self.frameworks and not fs.allocation(fid):
                fs.remove(fid)  # a removed framework's last allocation came back
        if node.has_self:
            node.sorter.unallocated(SELF, amounts)
        n: _Node | None = node
        while n is not None and n.parent is not None:
            sub_into(n.alloc, amounts)
            n.parent.sorter.unallocated(n.path, amounts)
            if n.blocked:
                self._check_blocked(n)
            n = n.parent

    def recover(self, item: M.Recovered, now: float) -> None:
        a = self.agents.get(item.agent_id)
        if a is None:
            return
        self._uncharge(item.framework_id, item.role, a, item.resources)
        self.dirty[a.id] = None
        if a.filters:
            # A filter hides only what it refused: one that no longer covers the agent's
            # free resources is void.
            free = a.free
            for key, (_, refused) in list(a.filters.items()):
                if not refused.contains(free):
                    self._drop_filter(a, key)
        refuse = item.refuse_seconds
        fw = self.frameworks.get(item.framework_id)
        if refuse and refuse > 0 and fw is not None and item.role in fw.roles:
            # As Mesos: at least one allocation interval (MESOS-4302); it hides only offers
            # no larger than what was refused; the latest refusal replaces an earlier one.
            until = now + max(refuse, self.interval)
            refused = item.resources.with_role(DEFAULT_ROLE)
            if refused.contains(a.free):
                self._set_filter(a, fw, item.role, until, refused)
                heapq.heappush(self._expiries, (until, a.id, fw.id, item.role))

    def _set_filter(self, a: _Agent, fw: _Framework, role: str, until: float, refused: Resources) -> None:
        key = (fw.id, role)
        if key not in a.filters and fw.wants(role):
            a.filtered_wanting += 1
            if fw.gpu:
                a.filtered_gpu_wanting += 1
        a.filters[key] = (until, refused)
        fw.filtered_agents.setdefault(role, set()).add(a.id)

    def _drop_filter(self, a: _Agent, key: tuple[str, str]) -> None:
        if a.filters.pop(key, None) is None:
            return
        fid, role = key
        fw = self.frameworks.get(fid)
        if fw is not None:
            agents = fw.filtered_agents.get(role)
            if agents is not None:
                agents.discard(a.id)
            if fw.wants(role):
                a.filtered_wanting -= 1
                if fw.gpu:
                    a.filtered_gpu_wanting -= 1

    def _expire(self, now: float) -> None:
        exp = self._expiries
        while exp and exp[0][0] <= now:
            until, agent_id, fid, role = heapq.heappop(exp)
            a = self.agents.get(agent_id)
            if a is None:
                continue
            entry = a.filters.get((fid, role))
            if entry is not None and entry[0] == until:
                self._drop_filter(a, (fid, role))
                self.dirty[agent_id] = None

    # ------------------------------------------------------------------ allocation

    def allocatable(self, free: Resources) -> bool:
        for m in self.min_allocatable:
            if free.contains(m):
                return True
        return False

    def allocate(self, now: float, rng: Any = None) -> list[M.Allocation]:
        """One allocation run."""
        self.runs += 1
        if self._total_changed:
            self._total_changed = False
            for node in self.nodes.values():
                node.sorter.set_total(self.total)
                if node.fw_sorter is not None:
                    node.fw_sorter.set_total(self.total)
        self._expire(now)
        if self.demand_changed or (self.quotas and self._unmet()):
            # While a guarantee is unmet, resources held back as headroom anywhere may be
            # released by a change elsewhere: look at every agent.
            candidates = list(self.agents)
        else:
            candidates = [a for a in self.dirty if a in self.agents]
        self.dirty = {}
        self.demand_changed = False
        if not candidates or not self.wanting_pairs:
            return []
        # A seeded random order (Mesos shuffles agents each run), keyed per agent so that
        # the order of any subset of agents is the same subset of the full order.
        salt = (rng or self.rng).getrandbits(32).to_bytes(4, "big")
        candidates.sort(key=lambda agent_id: crc32(agent_id.encode(), crc32(salt)))
        out: list[M.Allocation] = []
        if self.quotas:
            unmet = self._unmet()
            if unmet:
                self._stage_guarantees(candidates, unmet, out)
            headroom: dict[str, int] | None = self.required_headroom() or None
        else:
            headroom = None
        self._stage_fair(candidates, headroom, out)
        return out

    def _stage_guarantees(self, candidates: list[str], unmet: dict[str, dict[str, int]],
                          out: list[M.Allocation]) -> None:
        for agent_id in candidates:
            if not unmet:
                return
            a = self.agents[agent_id]
            progress = True
            while progress and unmet:
                # Pass after pass over the unmet roles, while this agent still serves one
                # (an offer cut down by a child's limit may leave the role short).
                progress = False
                for role in sorted(unmet, key=lambda r: (self._role_share(r), r)):
                    miss = unmet.get(role)
                    if not miss:
                        continue
                    available = a.free
                    if not self.allocatable(available):
                        break
                    node = self.nodes[role]
                    if node.wanting == 0 or self._path_blocked(node):
                        continue
                    pick = self._pick(node, a)
                    if pick is None:
                        continue
                    fid, leaf = pick
                    # The part of the guarantee still missing, within the path's limits; an
                    # offer with none of what the role misses does not serve its guarantee.
                    offer = self._within_limits(_cap(available, miss), self.nodes[leaf])
                    if offer is None or not self.allocatable(offer) or not any(offer.millis(k) for k in miss):
                        continue
                    self._give(fid, leaf, a, offer, out)
                    unmet = self._unmet()
                    progress = True

    def _stage_fair(self, candidates: list[str], headroom: dict[str, int] | None,
                    out: list[M.Allocation]) -> None:
        agents = self.agents
        limited = any(q.limit for q in self.quotas.values())
        for agent_id in candidates:
            a = agents[agent_id]
            # Skip an agent every wanting framework has refused, without looking at them.
            if a.has_gpus and self.filter_gpus:
                if a.filtered_gpu_wanting >= self.wanting_gpu_pairs:
                    continue
            elif a.filtered_wanting >= self.wanting_pairs:
                continue
            available = a.free
            held = False
            while self.allocatable(available):
                pick = self._pick(self.root, a)
                if pick is None:
                    break
                fid, role = pick
                offer = available
                if headroom is not None:
                    surplus = {k: max(0, self.free_total.get(k, 0) - need) for k, need in headroom.items()}
                    offer = _cap(offer, surplus)
                    held = held or offer is not available
                if limited:
                    capped = self._within_limits(offer, self.nodes[role])
                    if capped is None:
                        break
                    offer = capped
                if offer is not available and not self.allocatable(offer):
                    held = True  # what is left for this framework is crumbs: leave the rest
                    break
                self._give(fid, role, a, offer, out)
                if headroom is not None:
                    headroom = self.required_headroom() or None  # a guarantee may be met now
                if offer is available:
                    break
                available = a.free
            if held and self.allocatable(a.free):
                # Resources held back here may be released by what happens next: look again.
                self.dirty[agent_id] = None

    def _give(self, fid: str, role: str, a: _Agent, offer: Resources, out: list[M.Allocation]) -> None:
        res = offer.with_role(role)
        self._charge(fid, role, a, res)
        out.append(M.Allocation(fid, role, a.id, res))

    def _within_limits(self, offer: Resources, node: _Node) -> Resources | None:
        left = self._limit_left(node)
        if left is None:
            return offer
        if any(v <= 0 and offer.millis(k) > 0 for k, v in left.items()):
            return None
        return _cap(offer, left)

    def _path_blocked(self, node: _Node) -> bool:
        n: _Node | None = node
        while n is not None:
            if n.blocked:
                return True
            n = n.parent
        return False

    def _role_share(self, role: str) -> float:
        node = self.nodes.get(role)
        if node is None or node.parent is None:
            return 0.0
        return node.parent.sorter.share(role)

    def _pick(self, node: _Node, a: _Agent) -> tuple[str, str] | None:
        """The best eligible (framework, role) in ``node``'s subtree for agent ``a``."""
        gpu = a.has_gpus and self.filter_gpus
        if not node.children:
            fid = self._pick_framework(node, a, gpu)
            return (fid, node.path) if fid is not None else None
        it = node.sorter.order()
        try:
            for client in it:
                if client == SELF:
                    fid = self._pick_framework(node, a, gpu)
                    if fid is not None:
                        return fid, node.path
                    continue
                child = node.children[client]
                if gpu and child.gpu_wanting == 0:
                    continue
                found = self._pick(child, a)
                if found is not None:
                    return found
            return None
        finally:
            it.close()

    def _pick_framework(self, node: _Node, a: _Agent, gpu: bool) -> str | None:
        fs = node.fw_sorter
        if fs is None or node.own_wanting == 0 or (gpu and node.own_gpu_wanting == 0):
            return None
        filters = a.filters
        if not filters and not gpu:
            return fs.first()
        role = node.path
        frameworks = self.frameworks
        it = fs.order()
        try:
            for fid in it:
                if filters and (fid, role) in filters:
                    continue
                if gpu and not frameworks[fid].gpu:
                    continue
                return fid
            return None
        finally:
            it.close()

    # ------------------------------------------------------------------ views

    def state(self) -> dict[str, Any]:
        roles = {}
        for path, node in sorted(self.nodes.items()):
            if not path:
                continue
            q = self.quotas.get(path)
            roles[path] = {
                "weight": self.weights.get(path, 1.0),
                "allocated": {k: v / 1000 for k, v in sorted(node.alloc.items())},
                "share": self._role_share(path),
                "frameworks": sorted(node.fw_sorter.clients) if node.fw_sorter else [],
                "quota": q.to_dict() if q else None,
                "at_limit": node.blocked,
            }
        return {
            "sorter": self.sorter_kind,
            "agents": len(self.agents),
            "frameworks": len(self.frameworks),
            "total": {k: v / 1000 for k, v in sorted(self.total.items())},
            "free": {k: v / 1000 for k, v in sorted(self.free_total.items())},
            "roles": roles,
            "filters": sum(len(a.filters) for a in self.agents.values()),
            "required_headroom": {k: v / 1000 for k, v in sorted(self.required_headroom().items())},
            "runs": self.runs,
        }


def _cap(res: Resources, caps: Mapping[str, int]) -> Resources:
    """``res`` with each named scalar cut down to ``caps`` (other names untouched)."""
    s = res.scalar_map()
    if all(s.get(k, 0) <= c for k, c in caps.items()):
        return res
    out = {k: (min(v, caps[k]) if k in caps else v) for k, v in s.items()}
    return Resources.from_millis({k: v for k, v in out.items() if v > 0},
                                 dict(res.range_items()), res.role)


class RandomPolicy(HierarchicalPolicy):
    """The hierarchical allocator with a weighted random sorter at every level."""

    sorter_kind = "random"
