"""The allocator: the thin actor that drives an allocation policy.

As in Mesos (``include/mesos/allocator/allocator.hpp``), the policy never sends a message:
the :class:`Allocator` tells it what happened and, every ``allocation_interval`` and on
coalesced triggers, asks it for allocations, which it sends to the master as one
:class:`~actors.protocol.messages.AllocOffers`.  The ``policy`` setting picks it
(:func:`policy_class`: ``drf``, ``random``, an ``impresario.allocators`` entry point, or a
dotted path).

See docs/allocators.md (the policy's methods: 'Writing your own').
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from thespian.actors import ActorAddress

from actors.allocator.quota import Quota, QuotaError, from_wire
from actors.base import KernelActor, handles
from actors.config import ConfigError, load_object, setting
from actors.protocol import messages as M

#: Allocation policies by name; a dotted path ("package.module:Class") or an entry point
#: in the group ``impresario.allocators`` names any other.
POLICIES = {"drf": "actors.allocator.hierarchical:HierarchicalPolicy", "random": "actors.allocator.hierarchical:RandomPolicy"}
ENTRY_POINT_GROUP = "impresario.allocators"



def policy_class(name: str) -> Any:
    """The policy class for a name (drf, random), an entry point, or a dotted path."""
    if name in POLICIES:
        return load_object(POLICIES[name])
    if ":" not in name:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                return ep.load()
        known = sorted(set(POLICIES) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
        raise ConfigError(f"unknown allocator {name!r} (known: {', '.join(known)}; or package.module:Class)")
    return load_object(name)


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
        self.policy = policy_class(setting(settings, "policy", str, "drf"))(settings)

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

    @handles(M.AllocUpdateQuota)
    def _quota(self, m: M.AllocUpdateQuota, sender: ActorAddress) -> None:
        if self._from_master(sender, "AllocUpdateQuota"):
            try:
                quota = Quota(from_wire(m.guarantee, "guarantee"), from_wire(m.limit, "limit"))
                self.policy.update_quota(m.role, quota)
            except (ConfigError, QuotaError) as e:
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
