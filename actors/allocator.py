"""The allocator: a policy object and the thin actor that drives it.

As in Mesos (``include/mesos/allocator/allocator.hpp``), the policy never
sends a message: it is told what happened (agents, frameworks, recovered
resources, suppress/revive, weights) and asked, on each run, which resources
go to which framework in which role.  The :class:`Allocator` actor wraps it:
it runs the policy every ``allocation_interval`` seconds and on triggers
(agent added, framework added or re-activated, revive), coalescing triggers
that arrive together into one pending run, and sends the result to the
master as one :class:`~actors.messages.AllocOffers` message.

:class:`DRFPolicy` is weighted Dominant Resource Fairness over roles, then
over the frameworks of a role: for each candidate agent, the whole of its free
resources go to the eligible framework of the role with the lowest weighted
dominant share (Mesos' coarse-grained allocation).  A run considers only the
agents whose free resources changed since the last run, unless demand changed
(a framework arrived, revived, or a weight changed), in which case it
considers every agent with free resources.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from thespian.actors import ActorAddress

from . import messages as M
from .base import ConfigError, KernelActor, handles, load_object, setting
from .resources import DEFAULT_ROLE, EMPTY, Resources

GPU_CAPABILITY = M.Capability.GPU_RESOURCES
DEFAULT_MIN_ALLOCATABLE = ("cpus:0.01", "mem:32")


class _AgentSlot:
    __slots__ = ("alloc", "allocated", "has_gpus", "id", "total")

    def __init__(self, agent_id: str, total: Resources) -> None:
        self.id = agent_id
        self.total = total.with_role(DEFAULT_ROLE)
        self.allocated = EMPTY
        self.alloc: dict[tuple[str, str], Resources] = {}  # (framework, role) -> resources here
        self.has_gpus = total.millis("gpus") > 0

    @property
    def free(self) -> Resources:
        return self.total - self.allocated


class _FrameworkSlot:
    __slots__ = ("active", "capabilities", "id", "roles", "suppressed")

    def __init__(self, fid: str, roles: Iterable[str], caps: Iterable[str],
                 suppressed: Iterable[str]) -> None:
        self.id = fid
        self.roles = tuple(roles)
        self.capabilities = frozenset(caps)
        self.suppressed = set(suppressed)
        self.active = True


class DRFPolicy:
    """Weighted DRF over roles, then over each role's frameworks."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.agents: dict[str, _AgentSlot] = {}
        self.frameworks: dict[str, _FrameworkSlot] = {}
        self.weights: dict[str, float] = {}
        self.role_alloc: dict[str, Resources] = {}
        self.fw_alloc: dict[tuple[str, str], Resources] = {}
        self.role_frameworks: dict[str, set[str]] = {}
        self.total = EMPTY
        # (framework, role) -> agent -> (until, refused resources)
        self.filters: dict[tuple[str, str], dict[str, tuple[float, Resources]]] = {}
        self._expiries: list[tuple[float, str]] = []
        self.dirty: set[str] = set()
        self.demand_changed = False
        self.excluded = tuple(settings.get("fair_sharing_excluded_resource_names", ()))
        self.filter_gpus = bool(settings.get("filter_gpu_resources", True))
        self.interval = float(settings.get("allocation_interval", 1.0))
        mins = settings.get("min_allocatable_resources", list(DEFAULT_MIN_ALLOCATABLE))
        try:
            self.min_allocatable = [Resources.parse(x) for x in mins]
        except (ValueError, TypeError) as e:
            raise ConfigError(f"min_allocatable_resources: {e}") from None
        for role, w in dict(settings.get("weights", {})).items():
            self.update_weight(role, float(w))

    # ------------------------------------------------------------------ events

    def add_agent(self, agent_id: str, total: Resources, allocated: Iterable[M.Allocation]) -> None:
        if agent_id in self.agents:
            self.remove_agent(agent_id)
        slot = _AgentSlot(agent_id, total)
        self.agents[agent_id] = slot
        self.total = self.total + slot.total
        for a in allocated:
            self._charge(a.framework_id, a.role, slot, a.resources)
        self.dirty.add(agent_id)

    def remove_agent(self, agent_id: str) -> None:
        slot = self.agents.pop(agent_id, None)
        if slot is None:
            return
        self.total = self.total - slot.total
        # Whatever was allocated on the agent is gone with it.
        for (fid, role), res in list(slot.alloc.items()):
            self._uncharge(fid, role, slot, res)
        self.dirty.discard(agent_id)

    def add_framework(self, fid: str, roles: Iterable[str], caps: Iterable[str],
                      suppressed: Iterable[str], allocated: Iterable[M.Allocation]) -> None:
        fw = _FrameworkSlot(fid, roles, caps, suppressed)
        self.frameworks[fid] = fw
        for role in fw.roles:
            self.role_frameworks.setdefault(role, set()).add(fid)
        for a in allocated:
            slot = self.agents.get(a.agent_id)
            if slot is not None:
                self._charge(fid, a.role, slot, a.resources)
        self.demand_changed = True

    def remove_framework(self, fid: str) -> None:
        fw = self.frameworks.pop(fid, None)
        if fw is None:
            return
        for role in fw.roles:
            members = self.role_frameworks.get(role)
            if members is not None:
                members.discard(fid)
            self.filters.pop((fid, role), None)

    def activate(self, fid: str, active: bool) -> None:
        fw = self.frameworks.get(fid)
        if fw is not None and fw.active != active:
            fw.active = active
            if active:
                self.demand_changed = True

    def recover(self, item: M.Recovered, now: float) -> None:
        slot = self.agents.get(item.agent_id)
        if slot is None:
            return
        self._uncharge(item.framework_id, item.role, slot, item.resources)
        self.dirty.add(item.agent_id)
        refuse = item.refuse_seconds
        if refuse and refuse > 0 and item.framework_id in self.frameworks:
            # As Mesos: the filter lasts at least one allocation interval (MESOS-4302) and
            # hides only offers that are no larger than what was refused.
            until = now + max(refuse, self.interval)
            # The latest refusal on an agent replaces an earlier one.
            refused = item.resources.with_role(DEFAULT_ROLE)
            self.filters.setdefault((item.framework_id, item.role), {})[item.agent_id] = (until, refused)
            heapq.heappush(self._expiries, (until, item.agent_id))

    def suppress(self, fid: str, roles: Iterable[str]) -> None:
        fw = self.frameworks.get(fid)
        if fw is not None:
            fw.suppressed.update(roles or fw.roles)

    def revive(self, fid: str, roles: Iterable[str]) -> None:
        fw = self.frameworks.get(fid)
        if fw is None:
            return
        for role in (roles or fw.roles):
            fw.suppressed.discard(role)
            self.filters.pop((fid, role), None)
        self.demand_changed = True

    def update_weight(self, role: str, weight: float) -> None:
        if not weight > 0:
            raise ConfigError(f"weight of role {role!r} must be positive, got {weight}")
        self.weights[role] = weight
        self.demand_changed = True

    # ------------------------------------------------------------------ accounting

    def _charge(self, fid: str, role: str, slot: _AgentSlot, res: Resources) -> None:
        plain = res.with_role(DEFAULT_ROLE)
        key = (fid, role)
        slot.allocated = slot.allocated + plain
        slot.alloc[key] = slot.alloc.get(key, EMPTY) + plain
        self.role_alloc[role] = self.role_alloc.get(role, EMPTY) + plain
        self.fw_alloc[key] = self.fw_alloc.get(key, EMPTY) + plain

    def _uncharge(self, fid: str, role: str, slot: _AgentSlot, res: Resources) -> None:
        key = (fid, role)
        held = slot.alloc.get(key)
        if held is None:
            return
        # Never take back more than this framework holds in this role on this agent.
        plain = res.with_role(DEFAULT_ROLE)
        if not held.contains(plain):
            plain = held.minus_saturating(held.minus_saturating(plain))
        left = held - plain
        if left:
            slot.alloc[key] = left
        else:
            del slot.alloc[key]
        slot.allocated = slot.allocated - plain
        self.role_alloc[role] = self.role_alloc[role] - plain
        self.fw_alloc[key] = self.fw_alloc[key] - plain

    def share(self, alloc: Resources, weight: float = 1.0) -> float:
        if self.total.is_empty():
            return 0.0
        return alloc.dominant_share(self.total, self.excluded) / weight

    def role_share(self, role: str) -> float:
        return self.share(self.role_alloc.get(role, EMPTY), self.weights.get(role, 1.0))

    # ------------------------------------------------------------------ allocation

    def allocatable(self, free: Resources) -> bool:
        return any(free.contains(m) for m in self.min_allocatable)

    def _filtered(self, fid: str, role: str, slot: _AgentSlot, free: Resources, now: float) -> bool:
        """Whether a refusal filter hides ``free`` on this agent from this framework and role."""
        f = self.filters.get((fid, role))
        if not f:
            return False
        entry = f.get(slot.id)
        if entry is None:
            return False
        until, refused = entry
        if until <= now:
            del f[slot.id]
            return False
        return refused.contains(free)

    def allocate(self, now: float, rng: Any) -> list[M.Allocation]:
        """One allocation run: which free resources go to which framework and role."""
        while self._expiries and self._expiries[0][0] <= now:
            _, agent_id = heapq.heappop(self._expiries)
            self.dirty.add(agent_id)
        if self.demand_changed:
            candidates = list(self.agents)
        else:
            candidates = [a for a in self.dirty if a in self.agents]
        self.dirty = set()
        self.demand_changed = False
        if not candidates or not self.frameworks:
            return []
        candidates.sort()
        rng.shuffle(candidates)
        out: list[M.Allocation] = []
        order: list[str] | None = None
        for agent_id in candidates:
            slot = self.agents[agent_id]
            free = slot.free
            if not self.allocatable(free):
                continue
            if order is None:
                order = self._role_order()
            chosen = self._choose(order, slot, free, now)
            if chosen is None:
                continue
            fid, role = chosen
            res = free.with_role(role)
            self._charge(fid, role, slot, res)
            out.append(M.Allocation(fid, role, agent_id, res))
            order = None  # shares changed: re-sort before the next agent
        return out

    def _role_order(self) -> list[str]:
        roles = [r for r, fws in self.role_frameworks.items() if fws]
        roles.sort(key=lambda r: (self.role_share(r), r))
        return roles

    def _choose(self, roles: list[str], slot: _AgentSlot, free: Resources,
                now: float) -> tuple[str, str] | None:
        for role in roles:
            weight = self.weights.get(role, 1.0)
            best: tuple[float, str] | None = None
            for fid in self.role_frameworks[role]:
                fw = self.frameworks[fid]
                if not fw.active or role in fw.suppressed:
                    continue
                if self.filter_gpus and slot.has_gpus and GPU_CAPABILITY not in fw.capabilities:
                    continue
                if self._filtered(fid, role, slot, free, now):
                    continue
                key = (self.share(self.fw_alloc.get((fid, role), EMPTY), weight), fid)
                if best is None or key < best:
                    best = key
            if best is not None:
                return best[1], role
        return None

    # ------------------------------------------------------------------ views

    def state(self) -> dict[str, Any]:
        return {
            "agents": len(self.agents),
            "frameworks": len(self.frameworks),
            "total": self.total.to_dict(),
            "roles": {
                r: {"weight": self.weights.get(r, 1.0),
                    "allocated": self.role_alloc.get(r, EMPTY).to_dict(),
                    "share": self.role_share(r),
                    "frameworks": sorted(self.role_frameworks.get(r, ()))}
                for r in sorted(set(self.role_frameworks) | set(self.role_alloc))
            },
        }


class Allocator(KernelActor):
    """Drives an allocation policy: batched runs every interval, plus coalesced triggers."""

    component = "allocator"

    def __init__(self) -> None:
        super().__init__()
        self.master: ActorAddress | None = None
        self.policy: Any = None
        self.interval = 1.0
        self.runs = 0

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        self.master = self.address_of(setting(settings, "master", str))
        self.interval = setting(settings, "allocation_interval", float, 1.0)
        if not self.interval > 0:
            raise ConfigError("allocation_interval must be positive")
        policy_path = setting(settings, "policy", str, "actors.allocator:DRFPolicy")
        self.policy = load_object(policy_path)(settings)

    def started(self) -> None:
        self.set_timer("interval", self.interval)

    def _from_master(self, sender: ActorAddress, what: str) -> bool:
        if sender != self.master:
            self.drop(f"{what} not from the master", sender)
            return False
        return True

    def _trigger(self) -> None:
        if not self.timer_pending("trigger"):
            self.set_timer("trigger", 0.0)

    @handles(M.AllocAddAgent)
    def _add_agent(self, m: M.AllocAddAgent, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocAddAgent"):
            self.policy.add_agent(m.agent_id, m.total, m.allocated)
            self._trigger()

    @handles(M.AllocRemoveAgent)
    def _remove_agent(self, m: M.AllocRemoveAgent, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocRemoveAgent"):
            self.policy.remove_agent(m.agent_id)

    @handles(M.AllocAddFramework)
    def _add_framework(self, m: M.AllocAddFramework, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocAddFramework"):
            self.policy.add_framework(m.framework_id, m.roles, m.capabilities,
                                      m.suppressed_roles, m.allocated)
            self._trigger()

    @handles(M.AllocRemoveFramework)
    def _remove_framework(self, m: M.AllocRemoveFramework, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocRemoveFramework"):
            self.policy.remove_framework(m.framework_id)

    @handles(M.AllocActivate)
    def _activate(self, m: M.AllocActivate, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocActivate"):
            self.policy.activate(m.framework_id, m.active)
            if m.active:
                self._trigger()

    @handles(M.AllocRecover)
    def _recover(self, m: M.AllocRecover, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocRecover"):
            now = self.now()
            for item in m.items:
                self.policy.recover(item, now)

    @handles(M.AllocSuppress)
    def _suppress(self, m: M.AllocSuppress, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocSuppress"):
            self.policy.suppress(m.framework_id, m.roles)

    @handles(M.AllocRevive)
    def _revive(self, m: M.AllocRevive, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocRevive"):
            self.policy.revive(m.framework_id, m.roles)
            self._trigger()

    @handles(M.AllocUpdateWeights)
    def _weights(self, m: M.AllocUpdateWeights, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocUpdateWeights"):
            for role, w in m.weights:
                try:
                    self.policy.update_weight(role, w)
                except ConfigError as e:
                    self.drop(str(e), sender)

    def timer_interval(self) -> None:
        self._run()
        self.set_timer("interval", self.interval)

    def timer_trigger(self) -> None:
        self._run()

    def _run(self) -> None:
        allocations = self.policy.allocate(self.now(), self.rng)
        self.runs += 1
        if allocations:
            assert self.master is not None
            self.stats["allocations"] += len(allocations)
            self.tell(self.master, M.AllocOffers(tuple(allocations)))

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "state" and self.policy is not None:
            return {"runs": self.runs, **self.policy.state()}
        return super().query(what, args)
