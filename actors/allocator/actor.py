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

from collections import deque
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
#: How many recent allocation runs the timer's figures cover.
RUN_WINDOW = 1000
#: The bounds (seconds) of the allocation run time's histogram (cumulative, as Prometheus').
RUN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
        #: The most recent allocation runs' durations in ms (the ``stopwatch`` port's time;
        #: without one, the actor's clock: 0 in the simulator's virtual time).
        self.run_ms: deque[float] = deque(maxlen=RUN_WINDOW)
        self.run_buckets = [0] * (len(RUN_BUCKETS) + 1)   # cumulative per bound, then +Inf
        self.run_seconds = 0.0

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
        watch = self.ports.get("stopwatch") or self.now
        started = watch()
        allocations = self.policy.allocate(self.now(), self.rng)
        took = watch() - started
        self.run_ms.append(took * 1000.0)
        self.run_seconds += took
        for i, bound in enumerate(RUN_BUCKETS):
            if took <= bound:
                self.run_buckets[i] += 1
        self.run_buckets[-1] += 1
        self.runs += 1
        if allocations:
            assert self.master is not None
            self.stats["allocations"] += len(allocations)
            self.tell(self.master, M.AllocOffers(tuple(allocations)))

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "state" and self.policy is not None:
            return {"runs": self.runs, **self.policy.state()}
        if what == "metrics":
            return metrics(self.policy, self.runs, self.run_ms)
        if what == "histograms":
            return {"allocation_run_seconds": {
                "buckets": [[b, n] for b, n in zip([*RUN_BUCKETS, "+Inf"], self.run_buckets, strict=True)],
                "sum": self.run_seconds}}
        return super().query(what, args)


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def metrics(policy: Any, runs: int, run_ms: Any) -> dict[str, float]:
    """The allocator's half of ``/metrics/snapshot``, with Mesos' names: runs and their
    timer, resources, the roles' dominant shares and quota.  A policy that keeps no
    ``total``, ``free_total`` or roles (a user's own) shows what it has."""
    out: dict[str, float] = {"allocator/mesos/allocation_runs": runs}
    ordered = sorted(run_ms)
    out["allocator/mesos/allocation_run_ms"] = run_ms[-1] if run_ms else 0.0
    out["allocator/mesos/allocation_run_ms/count"] = len(ordered)
    if ordered:
        out["allocator/mesos/allocation_run_ms/min"] = ordered[0]
        out["allocator/mesos/allocation_run_ms/max"] = ordered[-1]
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
            out[f"allocator/mesos/allocation_run_ms/{name}"] = _quantile(ordered, q)
    total = getattr(policy, "total", None)
    free = getattr(policy, "free_total", None)
    if isinstance(total, dict):
        for k, v in sorted(total.items()):
            out[f"allocator/mesos/resources/{k}/total"] = v / 1000
            if isinstance(free, dict):
                out[f"allocator/mesos/resources/{k}/offered_or_allocated"] = (v - free.get(k, 0)) / 1000
    nodes = getattr(policy, "nodes", None)
    share = getattr(policy, "_role_share", None)
    if isinstance(nodes, dict) and share is not None:
        for path, node in sorted(nodes.items()):
            if path:
                out[f"allocator/mesos/roles/{path}/shares/dominant"] = share(path)
                quota = getattr(policy, "quotas", {}).get(path)
                if quota is not None:
                    alloc = getattr(node, "alloc", {})
                    for kind, amounts in quota.to_dict().items():
                        for k, v in sorted(amounts.items()):
                            out[f"allocator/mesos/quota/roles/{path}/resources/{k}/{kind}"] = v
                    for k, v in sorted(alloc.items()):
                        out[f"allocator/mesos/quota/roles/{path}/resources/{k}/offered_or_allocated"] = v / 1000
    return out
