"""The master: admits agents and frameworks, turns allocations into offers,
validates and forwards launches, relays status updates, and keeps accounts.

The master keeps no durable state of tasks.  What it knows of running tasks it
learns from agents (registration, re-registration and status updates), so a
new master rebuilds its view as agents re-register and frameworks re-subscribe.
Its optional ``registry`` port (a :class:`~actors.ports.Store`) keeps only who
was there - agents with their addresses, frameworks with their schedulers',
weights and quota - so a new master can call them back at once instead of
waiting for them to notice, and can tell which agents never came back (they are
marked unreachable after ``agent_reregister_timeout``, as in Mesos).

Frameworks answer each HEARTBEAT; one silent for ``max_framework_heartbeat_timeouts``
heartbeats is disconnected, and removed (its tasks killed) unless it re-subscribes
within its ``failover_timeout``.  The timeout counts from the disconnection, or from
the new master's start for a framework it learned from the registry or its agents.

Bad calls from a framework get an ``ERROR`` event naming the call and the
problem, or - for a task that cannot be launched - a ``TASK_ERROR`` update
with the reason, as Mesos does; nothing else changes.

Authorization (``actors.security.acl``): with an ``acls`` setting, an agent's
(re-)registration needs ``register_agents`` for its principal (else
``AgentRefused``), a SUBSCRIBE ``register_frameworks`` for each of its roles,
a launch ``run_tasks`` for each task's user (else ``TASK_ERROR``,
``REASON_TASK_UNAUTHORIZED``), a TEARDOWN by anyone but the framework's
scheduler ``teardown_frameworks``, and weights and quotas ``update_weights`` /
``update_quotas``.  The principal is the authenticated one (``auth`` port), else
the one a framework claims.  With authentication, the principal that
registered an agent or subscribed a framework is bound to it: calls for it
from another principal are dropped (``calls_wrong_principal``).  A refusal
changes nothing.  See docs/security.md.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from thespian.actors import ActorAddress

from actors.allocator.quota import Quota, QuotaError, amounts, validate
from actors.allocator.quota import from_wire as quota_from_wire
from actors.base import KernelActor, handles
from actors.config import ConfigError, setting
from actors.master.accounting import RoleLedger
from actors.protocol import messages as M
from actors.protocol.codec import CodecError, encode, peek_tag, tag_of, unpack_value
from actors.protocol.messages import Capability, Reason, Source, TaskState
from actors.protocol.resources import DEFAULT_ROLE, EMPTY, ResourceError, Resources
from actors.security.acl import (
    ACL,
    REGISTER_AGENTS,
    REGISTER_FRAMEWORKS,
    RUN_TASKS,
    TEARDOWN_FRAMEWORKS,
    UPDATE_QUOTAS,
    UPDATE_WEIGHTS,
    ACLError,
)

TS = TaskState
VERSION = "0.1.0"


_REREGISTER_TAG = tag_of(M.ReregisterAgent)
assert _REREGISTER_TAG < 0x80   # a positive fixint on the wire


@dataclass(slots=True)
class TaskRec:
    framework_id: str
    task: M.TaskInfo
    agent_id: str
    executor_id: str
    role: str
    resources: Resources
    state: TaskState = TS.TASK_STAGING
    status: M.TaskStatus | None = None
    released: bool = False        # resources given back (terminal or unreachable)
    running: bool = False         # counted in the role's "used"
    used: Resources = EMPTY       # what "used" counts for it: measured usage, else its resources

    @property
    def task_id(self) -> str:
        return self.task.task_id


@dataclass(slots=True)
class ExecutorRec:
    framework_id: str
    executor_id: str
    agent_id: str
    role: str
    resources: Resources
    tasks: set[str] = field(default_factory=set)


@dataclass(slots=True)
class AgentRec:
    id: str
    address: ActorAddress
    addr_text: str
    info: M.AgentInfo
    total: Resources
    registered_at: float
    allocated: Resources = EMPTY
    offered: Resources = EMPTY
    reachable: bool = True
    incarnation: str = ""
    pong_pending: bool = False
    missed_pings: int = 0
    principal: str | None = None  # who registered it (authenticated); its calls must come from it
    lost_tasks: set[tuple[str, str]] = field(default_factory=set)   # (framework, task) cut off with it
    tasks: dict[tuple[str, str], TaskRec] = field(default_factory=dict)
    executors: dict[tuple[str, str], ExecutorRec] = field(default_factory=dict)
    offers: set[str] = field(default_factory=set)


@dataclass(slots=True)
class FrameworkRec:
    id: str
    info: M.FrameworkInfo
    address: ActorAddress | None
    registered_at: float
    connected: bool = True
    in_allocator: bool = False
    last_seen: float = 0.0
    subscribed_at: float | None = None
    failover_deadline: float | None = None
    tasks: dict[str, TaskRec] = field(default_factory=dict)
    unreachable: dict[str, TaskRec] = field(default_factory=dict)
    completed: deque[TaskRec] = field(default_factory=deque)
    completed_ids: set[str] = field(default_factory=set)
    offers: set[str] = field(default_factory=set)
    suppressed: set[str] = field(default_factory=set)
    updates_sent: int = 0        # statuses sent since SUBSCRIBED (told in each heartbeat)
    principal: str | None = None  # who subscribed it (authenticated); its calls must come from it

    @property
    def partition_aware(self) -> bool:
        return Capability.PARTITION_AWARE in self.info.capabilities


@dataclass(slots=True)
class OfferRec:
    offer: M.Offer
    framework_id: str
    agent_id: str
    role: str
    resources: Resources


MASTER_CAPABILITY = "impresario.master"


class Master(KernelActor):
    component = "master"

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: dict[str, Any]) -> bool:
        """On a real host a master lives only in a system that declares itself the master's
        (so that agents can find it through the convention by its global name)."""
        return bool(capabilities.get(MASTER_CAPABILITY))

    def __init__(self) -> None:
        super().__init__()
        self.master_id = ""
        self.allocator: ActorAddress | None = None
        self.agents: dict[str, AgentRec] = {}
        self.agent_by_addr: dict[str, str] = {}
        self.unreachable_by_addr: dict[str, str] = {}
        self.removed_agents: set[str] = set()   # gone for good: their tasks are TASK_GONE
        self.frameworks: dict[str, FrameworkRec] = {}
        self.removed_frameworks: set[str] = set()
        self.offers: dict[str, OfferRec] = {}
        self.ledger = RoleLedger()
        self.weights: dict[str, float] = {}
        self.quotas: dict[str, Quota] = {}
        self._ping_queue: deque[tuple[float, str]] = deque()
        self._next_agent = 0
        self._next_framework = 0
        self._next_offer = 0
        self._recover_buffer: list[M.Recovered] = []
        self.ping_interval = 15.0
        self.max_missed_pings = 5
        self.heartbeat_interval = 15.0
        self.max_completed = 1000
        self.max_missed_heartbeats = 5
        self.agent_reregister_timeout = 600.0
        self.registry: Any = None
        self.acl: ACL | None = None                      # None: nothing is authorized (all allowed)
        self.master_principals: frozenset[str] = frozenset({"master"})
        self.recovering: dict[str, M.AgentRecord] = {}   # registry agents not re-registered yet
        # The digest of the last re-registration handled from each agent (and back): a retry
        # that is the same bytes is answered without decoding them again.
        self._rereg_digests: dict[bytes, str] = {}
        self._rereg_digest_of: dict[str, bytes] = {}
        self._rereg_digest_now: bytes | None = None
        self.recovered_at: float | None = None
        self._failover_heap: list[tuple[float, str]] = []
        self._launch_checks: deque[tuple[float, str, str]] = deque()   # (due, framework, task)
        self.launch_retry = 30.0
        self._failover_timer_at: float | None = None
        self.started_at = 0.0
        self._ping_bytes = b""
        self._heartbeat_bytes = b""
        self.counters: dict[str, int] = {
            "offers_sent": 0, "offers_accepted": 0, "offers_declined": 0, "offers_rescinded": 0,
            "tasks_launched": 0, "tasks_refused": 0, "status_updates": 0,
        }

    # ------------------------------------------------------------------ set-up

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        self.master_id = setting(settings, "master_id", str)
        if not self.master_id or "/" in self.master_id:
            raise ConfigError("master_id must be a non-empty id")
        self.allocator = self.address_of(setting(settings, "allocator", str))
        self.ping_interval = setting(settings, "agent_ping_timeout", float, 15.0)
        self.max_missed_pings = setting(settings, "max_agent_ping_timeouts", int, 5)
        self.heartbeat_interval = setting(settings, "heartbeat_interval", float, 15.0)
        self.max_completed = setting(settings, "max_completed_tasks_per_framework", int, 1000)
        self.max_missed_heartbeats = setting(settings, "max_framework_heartbeat_timeouts", int, 5)
        self.agent_reregister_timeout = setting(settings, "agent_reregister_timeout", float, 600.0)
        self.launch_retry = setting(settings, "launch_retry_interval", float, 30.0)
        self.registry = self.ports.get("registry")
        if settings.get("acls") is not None:
            try:
                self.acl = ACL.parse(settings["acls"])
            except ACLError as e:
                raise ConfigError(str(e)) from None
        self.master_principals = frozenset(str(p) for p in setting(settings, "master_principals", list, ["master"]))
        for role, w in setting(settings, "weights", dict, {}).items():
            self.weights[role] = float(w)
        try:
            for role, q in setting(settings, "quotas", dict, {}).items():
                self.quotas[role] = Quota(amounts(q.get("guarantee", {}), f"{role}.guarantee"),
                                          amounts(q.get("limit", {}), f"{role}.limit"))
            validate(self.quotas)
        except (QuotaError, AttributeError) as e:
            raise ConfigError(f"quotas: {e}") from None

    def started(self) -> None:
        self._ping_bytes = encode(M.Ping(self.master_id, True))
        self._heartbeat_bytes = encode(M.Heartbeat(self.master_id))
        self.started_at = self.now()
        self.ledger = RoleLedger(self.started_at)
        self.set_timer("heartbeat", self.heartbeat_interval)
        if self.registry is not None:
            self._recover_registry()
        if self.weights:
            self._to_allocator(M.AllocUpdateWeights(tuple(sorted(self.weights.items()))))
        for role, q in sorted(self.quotas.items()):
            self._to_allocator(M.AllocUpdateQuota(role, *q.to_wire()))

    def _to_allocator(self, msg: Any) -> None:
        assert self.allocator is not None
        self.tell(self.allocator, msg)

    # ------------------------------------------------------------------ the registry

    def _unsave(self, key: str) -> None:
        if self.registry is not None:
            self.registry.delete(key)

    def _save_agent(self, rec: AgentRec) -> None:
        if self.registry is not None:
            info = rec.info if rec.info.id == rec.id else _agent_with_id(rec.info, rec.id)
            self.registry.put("agent/" + rec.id, M.AgentRecord(rec.addr_text, info, rec.reachable))

    def _save_framework(self, fw: FrameworkRec) -> None:
        if self.registry is not None:
            text = self.address_text(fw.address) if fw.address is not None else ""
            self.registry.put("framework/" + fw.id, M.FrameworkRecord(text, fw.info))

    def _recover_registry(self) -> None:
        """A new master: read who was there, call them back, and start the clock on them."""
        records = self.registry.load()
        now = self.now()
        agents: list[tuple[str, M.AgentRecord]] = []
        frameworks: list[M.FrameworkRecord] = []
        for key in sorted(records):
            kind, _, ident = key.partition("/")
            try:
                if kind == "agent":
                    agents.append((ident, unpack_value(M.AgentRecord, records[key])))
                elif kind == "framework":
                    frameworks.append(unpack_value(M.FrameworkRecord, records[key]))
                elif kind == "removed":
                    self.removed_frameworks.add(ident)
                elif kind == "weights":
                    for role, w in unpack_value(M.AllocUpdateWeights, records[key]).weights:
                        self.weights[role] = w
                elif kind == "quota":
                    q = unpack_value(M.AllocUpdateQuota, records[key])
                    self.quotas[q.role] = Quota(quota_from_wire(q.guarantee, "guarantee"),
                                                quota_from_wire(q.limit, "limit"))
                else:
                    raise CodecError(f"unknown kind of record {kind!r}")
            except (CodecError, QuotaError, ConfigError) as e:
                self.stats["registry_bad_records"] += 1
                self.log.error("master: registry record %r skipped: %s", key, e)
        self._next_agent = max([self._next_agent, *(_serial(i, f"{self.master_id}-S") for i, _ in agents)])
        for fr in frameworks:
            fid = fr.info.id
            if not fid or fid in self.removed_frameworks:
                continue
            self._next_framework = max(self._next_framework, _serial(fid, f"{self.master_id}-"))
            address = self._parse_or_none(fr.address)
            fw = FrameworkRec(fid, fr.info, address, now, connected=False, last_seen=now)
            self.frameworks[fid] = fw
            self._start_failover(fw, now)
            if address is not None:
                self.tell_encoded(address, self._heartbeat_bytes)  # "a new master: re-subscribe"
        unreached = encode(M.Ping(self.master_id, False))
        for agent_id, ar in agents:
            address = self._parse_or_none(ar.address)
            if address is None:
                continue
            if not ar.reachable:
                rec = AgentRec(agent_id, address, ar.address, ar.info, ar.info.resources, now, reachable=False)
                self.agents[agent_id] = rec
                self.unreachable_by_addr[ar.address] = agent_id
                continue
            self.recovering[agent_id] = ar
            self.tell_encoded(address, unreached)  # "a new master that does not know you yet"
        self.stats["registry_agents"] = len(agents)
        self.stats["registry_frameworks"] = len(frameworks)
        if self.recovering:
            self.set_timer("agent_reregister", self.agent_reregister_timeout)
        else:
            self.recovered_at = now
        self.log.info("master %s: registry names %d agents and %d frameworks; waiting %.0f s for "
                      "the agents to re-register", self.master_id, len(agents), len(frameworks),
                      self.agent_reregister_timeout)

    def _parse_or_none(self, text: str) -> ActorAddress | None:
        if not text:
            return None
        try:
            return self.address_of(text)
        except (ConfigError, ValueError, TypeError) as e:
            self.stats["registry_bad_records"] += 1
            self.log.error("master: registry address %r unusable: %s", text, e)
            return None

    def _recovered(self, agent_id: str) -> None:
        if self.recovering.pop(agent_id, None) is not None and not self.recovering:
            self.recovered_at = self.now()
            self.cancel_timer("agent_reregister")
            self._recovery_over()

    def _recovery_over(self) -> None:
        """Every agent the registry named is back (or taken for unreachable): a heartbeat
        now tells the frameworks, which reconcile."""
        for fid in sorted(self.frameworks):
            fw = self.frameworks[fid]
            if fw.connected and fw.address is not None:
                self._heartbeat(fw)

    def _heartbeat(self, fw: FrameworkRec) -> None:
        assert fw.address is not None
        if fw.updates_sent or self.recovering:
            self.tell(fw.address, M.Heartbeat(self.master_id, fw.updates_sent, len(self.recovering)))
        else:
            self.tell_encoded(fw.address, self._heartbeat_bytes)

    def timer_agent_reregister(self) -> None:
        """Registry agents that did not come back in time are unreachable (Mesos:
        ``agent_reregister_timeout``); their tasks answer reconciliation as such."""
        now = self.now()
        for agent_id in sorted(self.recovering):
            ar = self.recovering[agent_id]
            address = self._parse_or_none(ar.address)
            if address is None:
                continue
            rec = AgentRec(agent_id, address, ar.address, ar.info, ar.info.resources, now, reachable=False)
            self.agents[agent_id] = rec
            self.unreachable_by_addr[ar.address] = agent_id
            self._save_agent(rec)
            self.log.warning("master: agent %s did not re-register within %.0f s; marking it unreachable",
                             agent_id, self.agent_reregister_timeout)
            for fw in self.frameworks.values():
                if fw.connected and fw.address is not None:
                    self.tell(fw.address, M.Failure(agent_id))
        self.recovering.clear()
        self.recovered_at = now
        self._recovery_over()

    # ------------------------------------------------------------------ agents

    @handles(M.RegisterAgent)
    def _register_agent(self, m: M.RegisterAgent, sender: ActorAddress) -> None:
        addr_text = self.address_text(sender)
        if self._agent_unauthorized(sender, addr_text, ""):
            return
        known = self.agent_by_addr.get(addr_text)
        if known is not None and known in self.agents:
            old = self.agents[known]
            if not m.incarnation or m.incarnation == old.incarnation:
                # A retried registration: answer again, change nothing.
                self.tell(sender, M.AgentRegistered(known, self.master_id, self.ping_interval))
                return
            # A new incarnation at a known address: the agent restarted without its
            # checkpoint, and what ran under the old id is gone with it.
            self._remove_agent(old, Reason.REASON_AGENT_RESTARTED,
                               f"agent {old.id} restarted as a new agent")
        lost = self.unreachable_by_addr.get(addr_text)
        if lost is not None and lost in self.agents:
            self._remove_agent(self.agents[lost], Reason.REASON_AGENT_RESTARTED,
                               f"agent {lost}, unreachable, came back as a new agent")
        for old_id in [i for i, ar in self.recovering.items() if ar.address == addr_text]:
            # The registry's agent at this address will not re-register: it came back new.
            self.log.warning("master: agent %s came back as a new agent; removing it", old_id)
            self._recovered(old_id)
            self.removed_agents.add(old_id)
            self._unsave("agent/" + old_id)
        total = m.agent_info.resources
        if total.role != DEFAULT_ROLE or total.is_empty():
            self.tell(sender, M.AgentRefused("an agent must offer unreserved resources"))
            return
        if total.millis("gpus") % 1000:
            self.tell(sender, M.AgentRefused("gpus must be a whole number"))
            return
        self._next_agent += 1
        agent_id = f"{self.master_id}-S{self._next_agent}"
        self._admit_agent(agent_id, sender, addr_text, m.agent_info, total, m.incarnation)
        self.tell(sender, M.AgentRegistered(agent_id, self.master_id, self.ping_interval))
        self._to_allocator(M.AllocAddAgent(agent_id, total, (), m.agent_info.capabilities))

    def _admit_agent(self, agent_id: str, sender: ActorAddress, addr_text: str,
                     info: M.AgentInfo, total: Resources, incarnation: str, save: bool = True) -> AgentRec:
        rec = AgentRec(agent_id, sender, addr_text, info, total, self.now(), incarnation=incarnation,
                       principal=self._principal())
        self.agents[agent_id] = rec
        self.agent_by_addr[addr_text] = agent_id
        self._schedule_ping(agent_id)
        if save:
            self._save_agent(rec)
        return rec

    def _before_decode(self, data: bytes, sender: ActorAddress) -> bool:
        """A retried re-registration, the same bytes as the last one handled from a known,
        reachable agent at the same address (and principal): what decoding it would do -
        answer again, the agent is alive - without decoding it.  Agents retry while they
        wait; after a failover the master's queue holds many such retries, each as large as
        the cluster's share on that agent."""
        if len(data) < 3 or data[2] != _REREGISTER_TAG or peek_tag(data) != _REREGISTER_TAG:
            return False   # (the tag is a one-byte integer, third in the envelope)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        self._rereg_digest_now = digest
        agent_id = self._rereg_digests.get(digest)
        if agent_id is None:
            return False
        rec = self.agents.get(agent_id)
        if rec is None or not rec.reachable or not self.configured:
            return False
        if self.authenticates and rec.principal != self.peer_principal:
            return False   # decoded, checked and dropped as any other
        if self.address_text(sender) != rec.addr_text:
            return False   # the agent moved: the full path updates its address
        self._rereg_digest_now = None
        rec.missed_pings, rec.pong_pending = 0, False
        self.stats["reregistrations_retried"] += 1
        self.tell(sender, M.AgentReregistered(agent_id, self.master_id, self.ping_interval))
        return True

    def _handled_reregistration(self, agent_id: str, digest: bytes | None) -> None:
        if digest is None:
            return
        old = self._rereg_digest_of.get(agent_id)
        if old is not None:
            self._rereg_digests.pop(old, None)
        self._rereg_digests[digest] = agent_id
        self._rereg_digest_of[agent_id] = digest

    @handles(M.ReregisterAgent)
    def _reregister_agent(self, m: M.ReregisterAgent, sender: ActorAddress) -> None:
        digest, self._rereg_digest_now = self._rereg_digest_now, None   # of these bytes
        if self._agent_unauthorized(sender, None, m.agent_info.id):
            return
        info = m.agent_info
        agent_id = info.id
        if not agent_id:
            self.tell(sender, M.AgentRefused("re-registration needs the agent's id"))
            return
        addr_text = self.address_text(sender)
        rec = self.agents.get(agent_id)
        if rec is not None and rec.reachable:
            # Still known and reachable: a retried re-registration, or the agent moved.
            if rec.addr_text != addr_text:
                self.agent_by_addr.pop(rec.addr_text, None)
                rec.address, rec.addr_text = sender, addr_text
                self.agent_by_addr[addr_text] = agent_id
                self._save_agent(rec)
            rec.missed_pings, rec.pong_pending = 0, False
            if m.incarnation and m.incarnation != rec.incarnation:
                # The agent restarted and recovered: what it does not report did not survive.
                rec.incarnation = m.incarnation
                self._drop_missing(rec, {(at.framework_id, at.task.task_id) for at in m.tasks})
            self.tell(sender, M.AgentReregistered(agent_id, self.master_id, self.ping_interval))
            self._handled_reregistration(agent_id, digest)
            return
        other = self.agent_by_addr.get(addr_text)
        if other is not None and other != agent_id and other in self.agents:
            # Another agent registered from this address since: this one is older news.
            self._remove_agent(self.agents[other], Reason.REASON_AGENT_RESTARTED,
                               f"agent {other} was replaced at {addr_text} by agent {agent_id}")
        lost_before: set[tuple[str, str]] = set()
        if rec is not None:
            lost_before = rec.lost_tasks
            self._forget_agent(rec)
        known = self.recovering.get(agent_id)
        # The registry's record as the agent tells it again (after a failover): not rewritten.
        unchanged = known is not None and known.reachable and known.address == addr_text and known.info == info
        self._recovered(agent_id)
        now = self.now()
        total = info.resources.with_role(DEFAULT_ROLE)
        rec = self._admit_agent(agent_id, sender, addr_text, info, total, m.incarnation, save=not unchanged)
        for fi in m.frameworks:
            if fi.id and fi.id not in self.frameworks and fi.id not in self.removed_frameworks:
                # Learned from the agent: the framework may re-subscribe and keep its tasks.
                self.frameworks[fi.id] = FrameworkRec(fi.id, fi, None, self.now(), connected=False)
        # What the agent holds, summed per framework and role: charged once per role, and
        # told to the allocator as one allocation per framework and role (a failover brings
        # every agent back at once: this loop is the new master's cost of a cluster).
        held: dict[tuple[str, str], list[Resources]] = {}
        used: dict[str, list[Resources]] = {}
        for ex in m.executors:
            fw = self.frameworks.get(ex.framework_id)
            if fw is None or ex.resources.is_empty():
                continue
            role = ex.resources.role
            rec.executors[(ex.framework_id, ex.executor_id)] = ExecutorRec(
                ex.framework_id, ex.executor_id, agent_id, role, ex.resources)
            held.setdefault((ex.framework_id, role), []).append(ex.resources)
        for fi in m.frameworks:
            fw = self.frameworks.get(fi.id)
            if fw is not None and not fw.connected and fw.failover_deadline is None:
                self._start_failover(fw, self.now())
        reported: set[tuple[str, str]] = set()
        running, terminal = TS.TASK_RUNNING, M.TERMINAL_STATES
        executors = rec.executors
        for at in m.tasks:
            fid, task = at.framework_id, at.task
            tid = task.task_id
            fw = self.frameworks.get(fid)
            if lost_before:
                reported.add((fid, tid))
            if fw is None:
                continue
            unreachable = fw.unreachable
            if at.state in terminal:
                # Ended while the agent was away: its update is still on its way (or was
                # acknowledged already); the task is no longer unreachable.
                gone = unreachable.pop(tid, None) if unreachable else None
                if gone is not None:
                    gone.state = at.state
                    self._to_completed(fw, gone)
                continue
            t = unreachable.pop(tid, None) if unreachable else None
            res = task.resources
            role = res.role
            if t is None:
                t = TaskRec(fid, task, agent_id, at.executor_id, role, res, at.state)
                was_unreachable = False
            else:
                t.state, t.released, t.agent_id = at.state, False, agent_id
                was_unreachable = True
            fw.tasks[tid] = t
            rec.tasks[(fid, tid)] = t
            if executors:
                ex_rec = executors.get((fid, at.executor_id))
                if ex_rec is not None:
                    ex_rec.tasks.add(tid)
            key = (fid, role)
            items = held.get(key)
            if items is None:
                held[key] = [res]
            else:
                items.append(res)
            if at.state is running:
                if t.running:
                    self._count_used(t, res, now)
                else:
                    t.running, t.used = True, res
                    items = used.get(role)
                    if items is None:
                        used[role] = [res]
                    else:
                        items.append(res)
            if was_unreachable and fw.connected and fw.address is not None:
                # The framework was told the task was unreachable (or lost): it is back.
                # (After a master failover the framework reconciles; the agent resends
                # its own unacknowledged updates.)
                self._send_update(fw, self._master_status(
                    t, at.state, Reason.REASON_AGENT_REREGISTERED,
                    f"agent {agent_id} re-registered"))
        allocated: list[M.Allocation] = []
        role_sums: dict[str, Resources] = {}
        held_count: dict[str, int] = {}
        for (fid, role), items in sorted(held.items()):
            res = items[0] if len(items) == 1 else Resources.total(items, role)
            allocated.append(M.Allocation(fid, role, agent_id, res))
            prev = role_sums.get(role)
            role_sums[role] = res if prev is None else Resources.total([prev, res], role)
            held_count[role] = held_count.get(role, 0) + len(items)
        if role_sums:
            # A new record: what it holds is all it has allocated (the sum of _charge's).
            rec.allocated = Resources.total(list(role_sums.values()), DEFAULT_ROLE)
        for role, res in role_sums.items():
            self.ledger.add(role, "allocated", res, now)
        for role, items in used.items():
            # Every resource the role holds here is a running task's: its use is its sum.
            same = held_count[role] == len(items)
            self.ledger.add(role, "used", role_sums[role] if same else Resources.total(items, role), now)
        for fid, tid in sorted(lost_before - reported):
            # Cut off with the agent, and not on it any more: gone for good.
            fw = self.frameworks.get(fid)
            t = fw.unreachable.pop(tid, None) if fw is not None else None
            if fw is not None and t is not None:
                t.state = TS.TASK_GONE
                self._send_update(fw, self._master_status(t, TS.TASK_GONE, Reason.REASON_AGENT_REREGISTERED,
                                                          f"agent {agent_id} re-registered without the task"))
                self._to_completed(fw, t)
        self.tell(sender, M.AgentReregistered(agent_id, self.master_id, self.ping_interval))
        if self.removed_frameworks:
            for fid in sorted({fi.id for fi in m.frameworks} | {at.framework_id for at in m.tasks}):
                if fid in self.removed_frameworks:
                    self.tell(sender, M.ShutdownFramework(fid))  # removed while the agent was away
        self._to_allocator(M.AllocAddAgent(agent_id, total, tuple(allocated), info.capabilities))
        self._handled_reregistration(agent_id, digest)

    # ------------------------------------------------------------------ who may do what

    def _principal(self, claimed: str = "") -> str | None:
        """Who is asking: the authenticated principal of the message being handled; without
        an auth port, the one the caller claims (as Mesos does), None if it claims none."""
        if self.authenticates:
            return self.peer_principal
        return claimed or None

    def _agent_unauthorized(self, sender: ActorAddress, addr_text: str | None, agent_id: str) -> bool:
        """Refuse an agent's (re-)registration that its principal may not make (``AgentRefused``,
        nothing changed), or drop one that claims an agent another principal registered."""
        principal = self._principal()
        if self.authenticates:
            if agent_id:
                claimed = [self.agents.get(agent_id)]
            else:
                assert addr_text is not None
                claimed = [self.agents.get(i) for i in (self.agent_by_addr.get(addr_text),
                                                        self.unreachable_by_addr.get(addr_text)) if i]
            for rec in claimed:
                if rec is not None and rec.principal is not None and rec.principal != principal:
                    self.stats["calls_wrong_principal"] += 1
                    self.drop(f"agent registration from principal {principal!r} for an agent of "
                              f"principal {rec.principal!r}", sender)
                    return True
        if self.acl is not None:
            decision = self.acl.check(REGISTER_AGENTS, principal)
            if not decision:
                self.stats["agents_refused"] += 1
                self.log.warning("master: agent registration refused: %s", decision.reason)
                self.tell(sender, M.AgentRefused(decision.reason))
                return True
        return False

    def _framework_principal(self, fw: FrameworkRec) -> str | None:
        """The principal a framework's requests are checked for."""
        return fw.principal if fw.principal is not None else (fw.info.principal or None)

    def _user_unauthorized(self, fw: FrameworkRec, task: M.TaskInfo) -> str | None:
        """Why the framework may not run ``task`` as its user (the command's, else the
        framework's), or None."""
        assert self.acl is not None
        user = (task.command.user if task.command is not None else "") or fw.info.user
        decision = self.acl.check(RUN_TASKS, self._framework_principal(fw), user)
        return None if decision else f"task {task.task_id}: {decision.reason}"

    def _drop_missing(self, rec: AgentRec, reported: set[tuple[str, str]]) -> None:
        """Tasks the master placed on a restarted agent that its recovery does not know
        (their launch was lost with the old agent): TASK_DROPPED (TASK_LOST)."""
        now = self.now()
        for key in sorted(set(rec.tasks) - reported):
            t = rec.tasks[key]
            fw = self.frameworks.get(key[0])
            if t.state.terminal or fw is None:
                continue
            self._release(rec, t, now, recover=True)
            t.state = TS.TASK_DROPPED
            self._send_update(fw, self._master_status(t, TS.TASK_DROPPED, Reason.REASON_AGENT_RESTARTED,
                                                      f"agent {rec.id} restarted without the task"))
            fw.tasks.pop(t.task_id, None)
            del rec.tasks[key]
            ex = rec.executors.get((key[0], t.executor_id))
            if ex is not None:
                ex.tasks.discard(t.task_id)
            self._to_completed(fw, t)
        self._flush_recovered()

    def _schedule_ping(self, agent_id: str) -> None:
        due = self.now() + self.ping_interval
        self._ping_queue.append((due, agent_id))
        if not self.timer_pending("ping"):
            self.set_timer("ping", self.ping_interval)

    def timer_ping(self) -> None:
        now = self.now()
        q = self._ping_queue
        while q and q[0][0] <= now + 1e-9:
            _, agent_id = q.popleft()
            rec = self.agents.get(agent_id)
            if rec is None or not rec.reachable:
                continue
            if rec.pong_pending:
                rec.missed_pings += 1
                if rec.missed_pings >= self.max_missed_pings:
                    self._mark_unreachable(rec, f"agent {agent_id} missed {rec.missed_pings} pings")
                    continue
            rec.pong_pending = True
            self.tell_encoded(rec.address, self._ping_bytes)
            q.append((now + self.ping_interval, agent_id))
        if q:
            self.set_timer("ping", max(0.0, q[0][0] - now))

    @handles(M.Pong)
    def _pong(self, m: M.Pong, sender: ActorAddress) -> None:
        rec = self._agent_from(sender, "Pong")
        if rec is not None:
            rec.pong_pending = False
            rec.missed_pings = 0

    def _agent_from(self, sender: ActorAddress, what: str) -> AgentRec | None:
        agent_id = self.agent_by_addr.get(self.address_text(sender))
        rec = self.agents.get(agent_id) if agent_id is not None else None
        if rec is None or not rec.reachable:
            self.drop(f"{what} from an agent that is not registered", sender)
            return None
        if self._open is not None and self.peer_principal != rec.principal:
            self.stats["calls_wrong_principal"] += 1
            self.drop(f"{what} from principal {self.peer_principal!r} for an agent of principal "
                      f"{rec.principal!r}", sender)
            return None
        return rec

    def _mark_unreachable(self, rec: AgentRec, why: str, gone: Reason | None = None) -> None:
        """Cut the agent off: its tasks become TASK_UNREACHABLE (TASK_LOST for frameworks
        that are not partition-aware) - or, with ``gone``, TASK_GONE for good."""
        if gone is None:
            self.log.warning("master: %s; marking it unreachable", why)
        now = self.now()
        rec.reachable = False
        self.agent_by_addr.pop(rec.addr_text, None)
        self.unreachable_by_addr[rec.addr_text] = rec.id
        self._save_agent(rec)
        for offer_id in sorted(rec.offers):
            self._rescind(offer_id, recover=False)
        self._to_allocator(M.AllocRemoveAgent(rec.id))
        for (fid, _tid), t in sorted(rec.tasks.items()):
            fw = self.frameworks.get(fid)
            if fw is None:
                continue
            if not t.released:
                self._release(rec, t, now, recover=False)
            fw.tasks.pop(t.task_id, None)
            if t.state.terminal:
                # Ended already, its update not yet acknowledged: the agent will resend it.
                self._to_completed(fw, t)
                continue
            if gone is not None:
                t.state = TS.TASK_GONE
                self._send_update(fw, self._master_status(t, TS.TASK_GONE, gone, why))
                self._to_completed(fw, t)
                continue
            fw.unreachable[t.task_id] = t
            rec.lost_tasks.add((fid, t.task_id))
            state = TS.TASK_UNREACHABLE if fw.partition_aware else TS.TASK_LOST
            t.state = state
            self._send_update(fw, self._master_status(t, state, Reason.REASON_AGENT_REMOVED, why))
        for ex in rec.executors.values():
            self._uncharge(rec, ex.role, ex.resources)
        rec.tasks.clear()
        rec.executors.clear()
        for fw in self.frameworks.values():
            if fw.connected and fw.address is not None:
                self.tell(fw.address, M.Failure(rec.id))

    def _remove_agent(self, rec: AgentRec, reason: Reason, why: str) -> None:
        """The agent is gone for good (it restarted as a new agent): its tasks are GONE
        (TASK_LOST for frameworks that are not partition-aware)."""
        self.log.warning("master: %s; removing agent %s", why, rec.id)
        if rec.reachable:
            self._mark_unreachable(rec, why, gone=reason)
        for fid, tid in sorted(rec.lost_tasks):
            fw = self.frameworks.get(fid)
            t = fw.unreachable.pop(tid, None) if fw is not None else None
            if fw is not None and t is not None:
                t.state = TS.TASK_GONE
                self._send_update(fw, self._master_status(t, TS.TASK_GONE, reason, why))
                self._to_completed(fw, t)
        rec.lost_tasks.clear()
        self._forget_agent(rec)
        self.removed_agents.add(rec.id)
        self._unsave("agent/" + rec.id)

    def _forget_agent(self, rec: AgentRec) -> None:
        self.agents.pop(rec.id, None)
        digest = self._rereg_digest_of.pop(rec.id, None)
        if digest is not None:
            self._rereg_digests.pop(digest, None)
        if self.agent_by_addr.get(rec.addr_text) == rec.id:
            del self.agent_by_addr[rec.addr_text]
        if self.unreachable_by_addr.get(rec.addr_text) == rec.id:
            del self.unreachable_by_addr[rec.addr_text]

    # ------------------------------------------------------------------ frameworks

    @handles(M.Subscribe)
    def _subscribe(self, m: M.Subscribe, sender: ActorAddress) -> None:
        info = m.framework_info
        err = self._validate_framework(info)
        if err:
            self.reply_error(sender, "SUBSCRIBE", err, fatal=True)
            return
        principal = self._principal(info.principal)
        err = self._subscription_refused(info, principal)
        if err:
            self.stats["frameworks_refused"] += 1
            self.log.warning("master: SUBSCRIBE of framework %r refused: %s", info.name, err)
            self.reply_error(sender, "SUBSCRIBE", err, fatal=True)
            return
        if self.acl is not None and principal is not None and not info.principal:
            info = _with_principal(info, principal)   # what agents and the registry see
        fid = info.id
        if fid:
            if fid in self.removed_frameworks:
                self.reply_error(sender, "SUBSCRIBE", f"framework {fid} has been removed", fatal=True)
                return
            fw = self.frameworks.get(fid)
            if fw is not None:
                bound = self._framework_principal(fw)
                if self.authenticates and bound is not None and bound != principal:
                    self.stats["frameworks_refused"] += 1
                    self.reply_error(sender, "SUBSCRIBE", f"framework {fid} belongs to principal {bound!r}, "
                                     f"not to principal {principal!r}", fatal=True)
                    return
                if self.authenticates:
                    fw.principal = principal
                self._resubscribe(fw, info, m, sender)
                return
            # Unknown id: a framework re-subscribing after a master failover.
            fw = FrameworkRec(fid, info, sender, self.now())
            self.frameworks[fid] = fw
        else:
            self._next_framework += 1
            fid = f"{self.master_id}-{self._next_framework:04d}"
            fw = FrameworkRec(fid, _with_id(info, fid), sender, self.now())
            self.frameworks[fid] = fw
        if self.authenticates:
            fw.principal = principal
        now = self.now()
        fw.suppressed = set(m.suppressed_roles)
        fw.in_allocator, fw.last_seen, fw.subscribed_at = True, now, now
        self._save_framework(fw)
        self.tell(sender, M.Subscribed(fid, self.heartbeat_interval, self.master_id, len(self.recovering)))
        self._to_allocator(M.AllocAddFramework(fid, fw.info.roles, fw.info.capabilities,
                                               tuple(sorted(fw.suppressed)), ()))

    def _resubscribe(self, fw: FrameworkRec, info: M.FrameworkInfo, m: M.Subscribe,
                     sender: ActorAddress) -> None:
        first_time = not fw.in_allocator
        if fw.connected and fw.address is not None and fw.address != sender:
            # A failed-over scheduler took over: the old one is told it is out (Mesos:
            # "Framework failed over").
            self.tell(fw.address, M.Error("framework failed over to another scheduler", "", True))
        # Offers are rescinded and regenerated on every re-subscription (as in Mesos).
        for offer_id in sorted(fw.offers):
            self._rescind(offer_id, recover=True)
        roles_changed = info.roles != fw.info.roles
        now = self.now()
        fw.info = _with_id(info, fw.id)
        fw.address = sender
        fw.connected = True
        fw.last_seen = fw.subscribed_at = now
        fw.failover_deadline = None
        fw.suppressed = set(m.suppressed_roles)
        self._save_framework(fw)
        self._flush_recovered()
        self.tell(sender, M.Subscribed(fw.id, self.heartbeat_interval, self.master_id,
                                      len(self.recovering)))
        fw.updates_sent = 0
        if first_time or roles_changed:
            # No allocations with it: the allocator has every one of this framework's
            # already - from the agents that re-registered with its tasks (AllocAddAgent),
            # or from its own offers - and charging them again would count them twice.
            if not first_time:
                self._to_allocator(M.AllocRemoveFramework(fw.id))
            fw.in_allocator = True
            self._to_allocator(M.AllocAddFramework(fw.id, fw.info.roles, fw.info.capabilities,
                                                   tuple(sorted(fw.suppressed)), ()))
        else:
            self._to_allocator(M.AllocActivate(fw.id, True))

    def _disconnect(self, fw: FrameworkRec, why: str) -> None:
        """The scheduler went silent: no offers while it is away, and its failover
        timeout starts.  Its tasks keep running."""
        self.log.warning("master: framework %s disconnected: %s", fw.id, why)
        fw.connected = False
        for offer_id in sorted(fw.offers):
            self._rescind(offer_id, recover=True, notify=False)
        self._flush_recovered()
        if fw.in_allocator:
            self._to_allocator(M.AllocActivate(fw.id, False))
        self._start_failover(fw, self.now())
        if fw.address is not None:
            # Should it still be there (its answers lost), it re-subscribes at once.
            self._not_subscribed(fw.address, "", f"framework {fw.id} disconnected: {why}")

    def _start_failover(self, fw: FrameworkRec, now: float) -> None:
        deadline = now + max(0.0, fw.info.failover_timeout)
        fw.failover_deadline = deadline
        heapq.heappush(self._failover_heap, (deadline, fw.id))
        if self._failover_timer_at is None or deadline < self._failover_timer_at:
            self._failover_timer_at = deadline
            self.set_timer("failover", deadline - now)

    def timer_failover(self) -> None:
        now = self.now()
        self._failover_timer_at = None
        heap = self._failover_heap
        while heap and heap[0][0] <= now + 1e-9:
            deadline, fid = heapq.heappop(heap)
            fw = self.frameworks.get(fid)
            if fw is not None and not fw.connected and fw.failover_deadline == deadline:
                self._remove_framework(fw, f"did not re-subscribe within its failover timeout "
                                           f"of {fw.info.failover_timeout:g} s")
        if heap:
            self._failover_timer_at = heap[0][0]
            self.set_timer("failover", max(0.0, heap[0][0] - now))

    def _not_subscribed(self, addr: ActorAddress, call: str, message: str) -> None:
        self.stats["errors_replied"] += 1
        self.tell(addr, M.Error(message, call, False, resubscribe=True))

    @handles(M.HeartbeatReply)
    def _heartbeat_reply(self, m: M.HeartbeatReply, sender: ActorAddress) -> None:
        fw = self.frameworks.get(m.framework_id)
        if fw is not None and fw.connected and fw.address == sender and \
                (self._open is None or self.peer_principal == fw.principal):
            fw.last_seen = self.now()

    def _subscription_refused(self, info: M.FrameworkInfo, principal: str | None) -> str | None:
        """Why ``principal`` may not subscribe ``info``, or None: the principal it names must
        be the one it authenticated as, and ``register_frameworks`` must grant every role."""
        if self.authenticates and info.principal and info.principal != principal:
            return (f"the framework names principal {info.principal!r} but authenticated as "
                    f"principal {principal!r}")
        if self.acl is not None:
            denied = self.acl.first_denial(REGISTER_FRAMEWORKS, principal, info.roles)
            if denied is not None:
                return denied.reason
        return None

    def _validate_framework(self, info: M.FrameworkInfo) -> str | None:
        if not info.name:
            return "a framework needs a name"
        if not info.roles:
            return "a framework needs at least one role"
        if len(set(info.roles)) != len(info.roles):
            return "a framework's roles must be distinct"
        if len(info.roles) > 1 and Capability.MULTI_ROLE not in info.capabilities:
            return "several roles need the MULTI_ROLE capability"
        return None

    def _framework_for(self, fid: str, sender: ActorAddress, call: str) -> FrameworkRec | None:
        fw = self.frameworks.get(fid)
        if fw is None:
            if fid in self.removed_frameworks:
                self.reply_error(sender, call, f"framework {fid} has been removed", fatal=True)
            else:
                self._not_subscribed(sender, call, f"framework {fid} is not subscribed")
            return None
        if self._open is not None and fw.principal is not None and self.peer_principal != fw.principal:
            # One framework may not act for another: dropped, not answered (the sender's
            # address may be the framework's own, forged).
            self.stats["calls_wrong_principal"] += 1
            self.drop(f"{call} from principal {self.peer_principal!r} for a framework of principal "
                      f"{fw.principal!r}", sender)
            return None
        if fw.address is None or fw.address != sender or not fw.connected:
            self._not_subscribed(sender, call, f"framework {fid} is not subscribed from this address")
            return None
        fw.last_seen = self.now()
        return fw

    @handles(M.Teardown)
    def _teardown(self, m: M.Teardown, sender: ActorAddress) -> None:
        fw = self.frameworks.get(m.framework_id)
        if self.acl is not None and fw is not None:
            own = (self.peer_principal == self._framework_principal(fw) if self.authenticates
                   else fw.address == sender)
            if not own:
                self._operator_teardown(fw, sender)
                return
        fw = self._framework_for(m.framework_id, sender, "TEARDOWN")
        if fw is not None:
            self._remove_framework(fw, "torn down by its scheduler")

    def _operator_teardown(self, fw: FrameworkRec, sender: ActorAddress) -> None:
        """A TEARDOWN from another principal than the framework's (an operator; without
        authentication, from another address than its scheduler's): it needs
        ``teardown_frameworks`` for the framework's principal.  Answered either way."""
        assert self.acl is not None
        principal = self._principal()
        decision = self.acl.check(TEARDOWN_FRAMEWORKS, principal, self._framework_principal(fw))
        if not decision:
            self.stats["teardowns_refused"] += 1
            self.log.warning("master: TEARDOWN of framework %s refused: %s", fw.id, decision.reason)
            self.reply_error(sender, "TEARDOWN", f"framework {fw.id}: {decision.reason}")
            return
        self._remove_framework(fw, f"torn down by principal {principal!r}")
        self.tell(sender, M.QueryReply("teardown", {"framework_id": fw.id}))

    def _remove_framework(self, fw: FrameworkRec, why: str) -> None:
        self.log.info("master: removing framework %s: %s", fw.id, why)
        now = self.now()
        for offer_id in sorted(fw.offers):
            self._rescind(offer_id, recover=True, notify=False)
        agents_touched = set()
        for t in list(fw.tasks.values()):
            agent = self.agents.get(t.agent_id)
            if agent is not None:
                agents_touched.add(agent.id)
                if not t.released:
                    self._release(agent, t, now, recover=True)
                agent.tasks.pop((fw.id, t.task_id), None)
        for agent_id in sorted(agents_touched | {a.id for a in self.agents.values()
                                                 if any(k[0] == fw.id for k in a.executors)}):
            agent = self.agents[agent_id]
            for key in [k for k in agent.executors if k[0] == fw.id]:
                ex = agent.executors.pop(key)
                self._uncharge(agent, ex.role, ex.resources)
                self._recover(fw.id, agent.id, ex.role, ex.resources, None)
            if agent.reachable:
                self.tell(agent.address, M.ShutdownFramework(fw.id))
        self._flush_recovered()
        for t in list(fw.tasks.values()) + list(fw.unreachable.values()):
            if not t.state.terminal:
                t.state = TS.TASK_KILLED
        fw.tasks.clear()
        fw.unreachable.clear()
        del self.frameworks[fw.id]
        self.removed_frameworks.add(fw.id)
        self._unsave("framework/" + fw.id)
        if self.registry is not None:
            self.registry.put("removed/" + fw.id, fw.id)
        self._to_allocator(M.AllocRemoveFramework(fw.id))

    def timer_heartbeat(self) -> None:
        now = self.now()
        silent_for = self.heartbeat_interval * self.max_missed_heartbeats
        for fid in sorted(self.frameworks):
            fw = self.frameworks[fid]
            if fw.connected and fw.address is not None:
                if now - fw.last_seen > silent_for + 1e-9:
                    self._disconnect(fw, f"no answer to {self.max_missed_heartbeats} heartbeats")
                    continue
                self._heartbeat(fw)
        self.set_timer("heartbeat", self.heartbeat_interval)

    # ------------------------------------------------------------------ offers

    @handles(M.AllocOffers)
    def _alloc_offers(self, m: M.AllocOffers, sender: ActorAddress) -> None:
        if sender != self.allocator or (self._open is not None and self.peer_principal not in self.master_principals):
            self.drop("AllocOffers not from the allocator", sender)
            return
        now = self.now()
        batches: dict[str, list[M.Offer]] = {}
        for a in m.allocations:
            fw = self.frameworks.get(a.framework_id)
            agent = self.agents.get(a.agent_id)
            if (fw is None or agent is None or not agent.reachable or not fw.connected
                    or fw.address is None or not agent.total.contains(agent.allocated + agent.offered + a.resources.with_role(DEFAULT_ROLE))):
                # Stale: the framework or agent went away, or the view moved on.
                self._recover(a.framework_id, a.agent_id, a.role, a.resources, None)
                continue
            self._next_offer += 1
            offer_id = f"{self.master_id}-O{self._next_offer}"
            offer = M.Offer(offer_id, fw.id, agent.id, agent.info.hostname, a.role, a.resources,
                            agent.info.attributes)
            self.offers[offer_id] = OfferRec(offer, fw.id, agent.id, a.role, a.resources)
            fw.offers.add(offer_id)
            agent.offers.add(offer_id)
            agent.offered = agent.offered + a.resources.with_role(DEFAULT_ROLE)
            self.ledger.add(a.role, "offered", a.resources, now)
            batches.setdefault(fw.id, []).append(offer)
        self._flush_recovered()
        for fid in sorted(batches):
            fw = self.frameworks[fid]
            self.counters["offers_sent"] += len(batches[fid])
            assert fw.address is not None
            self.tell(fw.address, M.Offers(tuple(batches[fid])))

    def _take_offer(self, offer_id: str) -> OfferRec | None:
        rec = self.offers.pop(offer_id, None)
        if rec is None:
            return None
        fw = self.frameworks.get(rec.framework_id)
        if fw is not None:
            fw.offers.discard(offer_id)
        agent = self.agents.get(rec.agent_id)
        if agent is not None:
            agent.offers.discard(offer_id)
            agent.offered = agent.offered.minus_saturating(rec.resources.with_role(DEFAULT_ROLE))
        self.ledger.sub(rec.role, "offered", rec.resources, self.now())
        return rec

    def _rescind(self, offer_id: str, recover: bool, notify: bool = True) -> None:
        rec = self._take_offer(offer_id)
        if rec is None:
            return
        self.counters["offers_rescinded"] += 1
        if recover:
            self._recover(rec.framework_id, rec.agent_id, rec.role, rec.resources, None)
        fw = self.frameworks.get(rec.framework_id)
        if notify and fw is not None and fw.connected and fw.address is not None:
            self.tell(fw.address, M.Rescind(offer_id))

    def _recover(self, fid: str, agent_id: str, role: str, res: Resources,
                 refuse_seconds: float | None) -> None:
        if not res.is_empty():
            self._recover_buffer.append(M.Recovered(fid, agent_id, role, res, refuse_seconds))

    def _flush_recovered(self) -> None:
        if self._recover_buffer:
            items, self._recover_buffer = tuple(self._recover_buffer), []
            self._to_allocator(M.AllocRecover(items))

    @handles(M.Decline)
    def _decline(self, m: M.Decline, sender: ActorAddress) -> None:
        fw = self._framework_for(m.framework_id, sender, "DECLINE")
        if fw is None:
            return
        refuse = _refuse_seconds(m.filters)
        for offer_id in m.offer_ids:
            rec = self.offers.get(offer_id)
            if rec is None or rec.framework_id != fw.id:
                self.stats["declined_unknown_offers"] += 1  # rescinded in flight: harmless
                continue
            self._take_offer(offer_id)
            self.counters["offers_declined"] += 1
            self._recover(fw.id, rec.agent_id, rec.role, rec.resources, refuse)
        self._flush_recovered()

    @handles(M.Accept)
    def _accept(self, m: M.Accept, sender: ActorAddress) -> None:
        fw = self._framework_for(m.framework_id, sender, "ACCEPT")
        if fw is None:
            return
        refuse = _refuse_seconds(m.filters)
        recs: list[OfferRec] = []
        problem = None
        if not m.offer_ids:
            problem = "ACCEPT names no offer"
        if len(set(m.offer_ids)) != len(m.offer_ids):
            problem = "ACCEPT names an offer twice"
        for offer_id in m.offer_ids:
            rec = self.offers.get(offer_id)
            if rec is None or rec.framework_id != fw.id:
                problem = problem or f"offer {offer_id} is unknown, was rescinded, or is not this framework's"
                continue
            recs.append(rec)
        if not problem and len({r.agent_id for r in recs}) > 1:
            problem = "the offers of one ACCEPT must come from one agent"
        if not problem and len({r.role for r in recs}) > 1:
            problem = "the offers of one ACCEPT must be allocated to one role"
        # The offers named are used up by this call, valid or not (as in Mesos).
        for rec in recs:
            self._take_offer(rec.offer.offer_id)
        if problem:
            for rec in recs:
                self._recover(fw.id, rec.agent_id, rec.role, rec.resources, None)
            self._flush_recovered()
            self.reply_error(sender, "ACCEPT", problem)
            self._drop_operations(fw, m.operations, Reason.REASON_INVALID_OFFERS, problem)
            return
        self.counters["offers_accepted"] += len(recs)
        agent = self.agents[recs[0].agent_id]
        role = recs[0].role
        available = EMPTY
        for rec in recs:
            available = available + rec.resources
        for op in m.operations:
            if isinstance(op, M.Launch):
                for task in op.task_infos:
                    available = self._launch_task(fw, agent, role, task, available)
            else:
                available = self._launch_group(fw, agent, role, op, available)
        self._recover(fw.id, agent.id, role, available, refuse)
        self._flush_recovered()

    def _drop_operations(self, fw: FrameworkRec, ops: Iterable[M.Operation], reason: Reason,
                         why: str) -> None:
        state = TS.TASK_DROPPED if fw.partition_aware else TS.TASK_LOST
        for op in ops:
            tasks = op.task_infos if isinstance(op, M.Launch) else op.task_group
            for task in tasks:
                self.counters["tasks_refused"] += 1
                self._send_update(fw, M.TaskStatus(task.task_id, state, Source.SOURCE_MASTER, reason,
                                                   why, task.agent_id, "", self.now()))

    def _task_problem(self, fw: FrameworkRec, agent: AgentRec, role: str, task: M.TaskInfo,
                      seen: set[str]) -> tuple[str | None, Resources]:
        tid = task.task_id
        if tid in fw.tasks or tid in fw.unreachable or tid in fw.completed_ids or tid in seen:
            return f"task id {tid!r} is already in use by this framework", EMPTY
        if task.agent_id and task.agent_id != agent.id:
            return f"task {tid} names agent {task.agent_id} but the offer is on {agent.id}", EMPTY
        res = task.resources
        if res.role == DEFAULT_ROLE and role != DEFAULT_ROLE:
            res = res.with_role(role)
        elif res.role != role:
            return f"task {tid} uses resources of role {res.role!r} in an offer for {role!r}", EMPTY
        if res.is_empty():
            return f"task {tid} asks for no resources", EMPTY
        if res.millis("gpus") % 1000:
            return f"task {tid} asks for {res.gpus} gpus: only whole GPUs can be allocated", EMPTY
        return None, res

    def _launch_task(self, fw: FrameworkRec, agent: AgentRec, role: str, task: M.TaskInfo,
                     available: Resources) -> Resources:
        problem, res = self._task_problem(fw, agent, role, task, set())
        if problem is None and task.executor is not None:
            problem = "LAUNCH runs a command task: use LAUNCH_GROUP for a task with an executor"
        if problem is None and task.command is None:
            problem = f"task {task.task_id} has no command"
        reason = Reason.REASON_TASK_INVALID
        if problem is None and self.acl is not None:
            problem = self._user_unauthorized(fw, task)
            if problem is not None:
                reason = Reason.REASON_TASK_UNAUTHORIZED
        if problem is None and not available.contains(res):
            problem = (f"task {task.task_id} asks for {res} but only {available} "
                       f"is left of the offers")
        if problem is not None:
            self._refuse_task(fw, task, reason, problem)
            return available
        task = _with_agent(task, agent.id, res)
        t = TaskRec(fw.id, task, agent.id, task.task_id, role, res)
        self._add_task(fw, agent, t)
        self.tell(agent.address, M.RunTask(fw.info, task))
        return available - res

    def _launch_group(self, fw: FrameworkRec, agent: AgentRec, role: str, op: M.LaunchGroup,
                      available: Resources) -> Resources:
        ex = op.executor
        problem = None
        seen: set[str] = set()
        prepared: list[tuple[M.TaskInfo, Resources]] = []
        ex_res = ex.resources
        if ex_res.role == DEFAULT_ROLE and role != DEFAULT_ROLE:
            ex_res = ex_res.with_role(role)
        if not op.task_group:
            problem = "LAUNCH_GROUP with an empty task group"
        elif ex.type != M.ExecutorType.DEFAULT:
            problem = "a task group runs under the DEFAULT executor"
        elif ex_res.role != role:
            problem = f"executor resources of role {ex_res.role!r} in an offer for {role!r}"
        existing = agent.executors.get((fw.id, ex.executor_id))
        need = EMPTY if existing is not None else ex_res
        for task in op.task_group:
            if problem:
                break
            p, res = self._task_problem(fw, agent, role, task, seen)
            if p is None and task.command is None:
                p = f"task {task.task_id} has no command"
            if p is None and task.executor is not None and task.executor.executor_id != ex.executor_id:
                p = f"task {task.task_id} names another executor"
            problem = p
            seen.add(task.task_id)
            need = need + res
            prepared.append((task, res))
        reason = Reason.REASON_TASK_GROUP_INVALID
        if problem is None and self.acl is not None:
            for task, _ in prepared:
                problem = self._user_unauthorized(fw, task)
                if problem is not None:
                    reason = Reason.REASON_TASK_GROUP_UNAUTHORIZED
                    break
        if problem is None and not available.contains(need):
            problem = f"the task group asks for {need} but only {available} is left of the offers"
        if problem is not None:
            for task in op.task_group:
                self._refuse_task(fw, task, reason, problem)
            return available
        ex = M.ExecutorInfo(ex.executor_id, fw.id, ex.type, ex_res, ex.name)
        if existing is None:
            ex_rec = ExecutorRec(fw.id, ex.executor_id, agent.id, role, ex_res)
            agent.executors[(fw.id, ex.executor_id)] = ex_rec
            self._charge(agent, role, ex_res)
        else:
            ex_rec = existing
        group = []
        for task, res in prepared:
            task = _with_agent(task, agent.id, res, ex)
            t = TaskRec(fw.id, task, agent.id, ex.executor_id, role, res)
            self._add_task(fw, agent, t)
            ex_rec.tasks.add(task.task_id)
            group.append(task)
        self.tell(agent.address, M.RunTaskGroup(fw.info, ex, tuple(group)))
        return available - need

    def _refuse_task(self, fw: FrameworkRec, task: M.TaskInfo, reason: Reason, why: str) -> None:
        self.counters["tasks_refused"] += 1
        self._send_update(fw, M.TaskStatus(task.task_id, TS.TASK_ERROR, Source.SOURCE_MASTER, reason,
                                           why, task.agent_id, "", self.now()))

    def _add_task(self, fw: FrameworkRec, agent: AgentRec, t: TaskRec) -> None:
        fw.tasks[t.task_id] = t
        agent.tasks[(fw.id, t.task_id)] = t
        self._charge(agent, t.role, t.resources)
        self.counters["tasks_launched"] += 1
        self._launch_checks.append((self.now() + self.launch_retry, fw.id, t.task_id))
        if not self.timer_pending("launches"):
            self.set_timer("launches", self.launch_retry)

    def timer_launches(self) -> None:
        """Launches not yet heard of from their agent are sent again: a launch lost on the
        way would leave a task STAGING for ever.  The agent drops one it has already."""
        now = self.now()
        q = self._launch_checks
        again: list[tuple[float, str, str]] = []
        while q and q[0][0] <= now + 1e-9:
            due, fid, tid = q.popleft()
            fw = self.frameworks.get(fid)
            t = fw.tasks.get(tid) if fw is not None else None
            if t is None or t.state != TS.TASK_STAGING:
                continue
            agent = self.agents.get(t.agent_id)
            if agent is None or not agent.reachable or fw is None:
                continue
            self.stats["launches_resent"] += 1
            if t.task.executor is None:
                self.tell(agent.address, M.RunTask(fw.info, t.task))
            else:
                ex = t.task.executor
                group = tuple(x.task for x in agent.tasks.values()
                              if x.framework_id == fid and x.executor_id == t.executor_id
                              and x.state == TS.TASK_STAGING)
                self.tell(agent.address, M.RunTaskGroup(fw.info, ex, group))
            again.append((now + min(600.0, 2 * (now - due + self.launch_retry)), fid, tid))
        q.extend(again)
        if q:
            self.set_timer("launches", max(0.0, min(x[0] for x in q) - now) if again else max(0.0, q[0][0] - now))

    def _charge(self, agent: AgentRec, role: str, res: Resources) -> None:
        agent.allocated = agent.allocated + res.with_role(DEFAULT_ROLE)
        self.ledger.add(role, "allocated", res, self.now())

    def _uncharge(self, agent: AgentRec, role: str, res: Resources) -> None:
        agent.allocated = agent.allocated.minus_saturating(res.with_role(DEFAULT_ROLE))
        self.ledger.sub(role, "allocated", res, self.now())

    def _release(self, agent: AgentRec, t: TaskRec, now: float, recover: bool) -> None:
        """Give a task's resources back (once): terminal, unreachable, or framework gone."""
        if t.released:
            return
        t.released = True
        self._uncharge(agent, t.role, t.resources)
        if t.running:
            t.running = False
            self.ledger.sub(t.role, "used", t.used, now)
        if recover:
            self._recover(t.framework_id, agent.id, t.role, t.resources, None)

    # ------------------------------------------------------------------ other scheduler calls

    @handles(M.Revive, M.Suppress)
    def _revive_or_suppress(self, m: M.Revive | M.Suppress, sender: ActorAddress) -> None:
        call = "REVIVE" if isinstance(m, M.Revive) else "SUPPRESS"
        fw = self._framework_for(m.framework_id, sender, call)
        if fw is None:
            return
        bad = [r for r in m.roles if r not in fw.info.roles]
        if bad:
            self.reply_error(sender, call, f"roles {bad} are not the framework's")
            return
        roles = m.roles or fw.info.roles
        if isinstance(m, M.Revive):
            fw.suppressed.difference_update(roles)
            self._to_allocator(M.AllocRevive(fw.id, m.roles))
        else:
            fw.suppressed.update(roles)
            self._to_allocator(M.AllocSuppress(fw.id, m.roles))

    @handles(M.Kill)
    def _kill(self, m: M.Kill, sender: ActorAddress) -> None:
        fw = self._framework_for(m.framework_id, sender, "KILL")
        if fw is None:
            return
        t = fw.tasks.get(m.task_id)
        if t is None:
            t = fw.unreachable.get(m.task_id)
            state = TS.TASK_UNKNOWN if fw.partition_aware else TS.TASK_LOST
            if t is not None:
                state = TS.TASK_UNREACHABLE if fw.partition_aware else TS.TASK_LOST
            self._send_update(fw, M.TaskStatus(m.task_id, state, Source.SOURCE_MASTER,
                                               Reason.REASON_TASK_UNKNOWN,
                                               "the master knows no running task with this id",
                                               m.agent_id, "", self.now()))
            return
        agent = self.agents.get(t.agent_id)
        if agent is not None and agent.reachable:
            grace = m.grace_seconds if m.grace_seconds is not None else t.task.kill_grace_seconds
            self.tell(agent.address, M.KillTask(fw.id, t.task_id, grace))

    @handles(M.Shutdown)
    def _shutdown(self, m: M.Shutdown, sender: ActorAddress) -> None:
        fw = self._framework_for(m.framework_id, sender, "SHUTDOWN")
        if fw is None:
            return
        agent = self.agents.get(m.agent_id)
        if agent is None or not agent.reachable:
            self.reply_error(sender, "SHUTDOWN", f"agent {m.agent_id} is not registered")
            return
        self.tell(agent.address, M.ShutdownExecutor(fw.id, m.executor_id))

    @handles(M.Acknowledge)
    def _acknowledge(self, m: M.Acknowledge, sender: ActorAddress) -> None:
        fw = self._framework_for(m.framework_id, sender, "ACKNOWLEDGE")
        if fw is None:
            return
        agent = self.agents.get(m.agent_id)
        t = fw.tasks.get(m.task_id)
        if t is not None and t.status is not None and t.status.uuid == m.uuid and t.state.terminal:
            self._complete(fw, t)
        if agent is not None and agent.reachable:
            self.tell(agent.address, M.StatusUpdateAck(agent.id, fw.id, m.task_id, m.uuid))

    def _complete(self, fw: FrameworkRec, t: TaskRec) -> None:
        """A terminal update was acknowledged: the task moves to the completed list."""
        fw.tasks.pop(t.task_id, None)
        agent = self.agents.get(t.agent_id)
        if agent is not None:
            agent.tasks.pop((fw.id, t.task_id), None)
            ex = agent.executors.get((fw.id, t.executor_id))
            if ex is not None:
                ex.tasks.discard(t.task_id)
        self._to_completed(fw, t)

    def _to_completed(self, fw: FrameworkRec, t: TaskRec) -> None:
        fw.completed.append(t)
        fw.completed_ids.add(t.task_id)
        while len(fw.completed) > self.max_completed:
            old = fw.completed.popleft()
            fw.completed_ids.discard(old.task_id)

    @handles(M.Reconcile)
    def _reconcile(self, m: M.Reconcile, sender: ActorAddress) -> None:
        fw = self._framework_for(m.framework_id, sender, "RECONCILE")
        if fw is None:
            return
        now = self.now()
        answers: list[M.TaskStatus] = []
        if not m.tasks:  # implicit: every task the master knows for this framework
            for tid in sorted(fw.tasks):
                t = fw.tasks[tid]
                answers.append(self._master_status(t, t.state, Reason.REASON_RECONCILIATION, ""))
            for tid in sorted(fw.unreachable):
                t = fw.unreachable[tid]
                answers.append(self._master_status(t, t.state, Reason.REASON_RECONCILIATION, ""))
            self._send_updates(fw, answers)
            return
        pa = fw.partition_aware
        for rt in m.tasks:
            known = fw.tasks.get(rt.task_id) or fw.unreachable.get(rt.task_id)
            if known is not None:
                answers.append(self._master_status(known, known.state, Reason.REASON_RECONCILIATION, ""))
                continue
            if rt.agent_id in self.recovering:
                continue  # its agent may still re-register: no answer yet (as in Mesos)
            agent = self.agents.get(rt.agent_id) if rt.agent_id else None
            if agent is not None and agent.reachable:
                state, why = (TS.TASK_GONE if pa else TS.TASK_LOST), "the task is not on its agent"
            elif agent is not None:
                state, why = (TS.TASK_UNREACHABLE if pa else TS.TASK_LOST), "the task's agent is unreachable"
            elif rt.agent_id in self.removed_agents:
                state, why = (TS.TASK_GONE if pa else TS.TASK_LOST), "the task's agent was removed"
            else:
                state, why = (TS.TASK_UNKNOWN if pa else TS.TASK_LOST), "the master knows neither task nor agent"
            answers.append(M.TaskStatus(rt.task_id, state, Source.SOURCE_MASTER,
                                        Reason.REASON_RECONCILIATION, why, rt.agent_id, "", now))
        self._send_updates(fw, answers)

    @handles(M.Message)
    def _message(self, m: M.Message, sender: ActorAddress) -> None:
        fw = self._framework_for(m.framework_id, sender, "MESSAGE")
        if fw is None:
            return
        agent = self.agents.get(m.agent_id)
        if agent is None or not agent.reachable:
            self.reply_error(sender, "MESSAGE", f"agent {m.agent_id} is not registered")
            return
        self.tell(agent.address, M.FrameworkToExecutor(agent.id, fw.id, m.executor_id, m.data))

    # ------------------------------------------------------------------ from agents

    @handles(M.StatusUpdate)
    def _status_update(self, m: M.StatusUpdate, sender: ActorAddress) -> None:
        agent = self._agent_from(sender, "StatusUpdate")
        if agent is None:
            return
        self.counters["status_updates"] += 1
        status = m.status
        fw = self.frameworks.get(m.framework_id)
        if fw is None:
            if status.uuid and m.framework_id in self.removed_frameworks:
                # Nobody will acknowledge for a removed framework: do it, so the agent stops retrying.
                self.tell(sender, M.StatusUpdateAck(agent.id, m.framework_id, status.task_id, status.uuid))
            # An unknown framework may still re-subscribe (after a master failover): the
            # agent keeps retrying until it does.
            return
        t = agent.tasks.get((m.framework_id, status.task_id))
        if t is None:
            # Not a task the master tracks (completed already, or unknown to it): the
            # framework still hears of it, and its acknowledgement reaches the agent.
            self._send_update(fw, status)
            return
        now = self.now()
        latest = m.latest_state if m.latest_state is not None else status.state
        if not t.released:
            if latest.terminal:
                self._release(agent, t, now, recover=True)
                self._flush_recovered()
            elif latest == TS.TASK_RUNNING and not t.running:
                self._count_used(t, t.resources, now)
        t.state = status.state
        t.status = status
        self._send_update(fw, status)

    def _count_used(self, t: TaskRec, used: Resources, now: float) -> None:
        """Count ``used`` in the role's use for a running task, in place of what was counted."""
        if t.running:
            self.ledger.sub(t.role, "used", t.used, now)
        t.running, t.used = True, used
        self.ledger.add(t.role, "used", used, now)

    @handles(M.UsageReport)
    def _usage_report(self, m: M.UsageReport, sender: ActorAddress) -> None:
        agent = self._agent_from(sender, "UsageReport")
        if agent is None:
            return
        now = self.now()
        for u in m.usages:
            t = agent.tasks.get((u.framework_id, u.task_id))
            if t is not None and t.running and not t.released:
                self._count_used(t, u.used, now)

    def _send_update(self, fw: FrameworkRec, status: M.TaskStatus) -> None:
        if fw.connected and fw.address is not None:
            if not fw.partition_aware and status.state in M.PARTITION_AWARE_STATES:
                status = _replace_state(status, TS.TASK_LOST)
            fw.updates_sent += 1
            self.tell(fw.address, M.Update(status))

    def _send_updates(self, fw: FrameworkRec, statuses: list[M.TaskStatus]) -> None:
        """Several updates none of which is to be acknowledged (reconciliation answers):
        one message per :data:`UPDATES_BATCH`, one plain UPDATE for a single one."""
        if not statuses or not fw.connected or fw.address is None:
            return
        if len(statuses) == 1:
            self._send_update(fw, statuses[0])
            return
        if not fw.partition_aware:
            statuses = [_replace_state(s, TS.TASK_LOST) if s.state in M.PARTITION_AWARE_STATES else s
                        for s in statuses]
        fw.updates_sent += len(statuses)
        for i in range(0, len(statuses), M.UPDATES_BATCH):
            self.tell(fw.address, M.Updates(tuple(statuses[i:i + M.UPDATES_BATCH])))

    def _master_status(self, t: TaskRec, state: TaskState, reason: Reason, message: str) -> M.TaskStatus:
        return M.TaskStatus(t.task_id, state, Source.SOURCE_MASTER, reason, message, t.agent_id,
                            t.executor_id, self.now())

    @handles(M.ExitedExecutor)
    def _exited_executor(self, m: M.ExitedExecutor, sender: ActorAddress) -> None:
        agent = self._agent_from(sender, "ExitedExecutor")
        if agent is None:
            return
        ex = agent.executors.pop((m.framework_id, m.executor_id), None)
        if ex is not None:
            self._uncharge(agent, ex.role, ex.resources)
            self._recover(ex.framework_id, agent.id, ex.role, ex.resources, None)
            self._flush_recovered()
        fw = self.frameworks.get(m.framework_id)
        if fw is not None and fw.connected and fw.address is not None and m.status not in (None, 0):
            self.tell(fw.address, M.Failure(agent.id, m.executor_id, m.status))

    @handles(M.ExecutorToFramework)
    def _executor_message(self, m: M.ExecutorToFramework, sender: ActorAddress) -> None:
        agent = self._agent_from(sender, "ExecutorToFramework")
        if agent is None:
            return
        fw = self.frameworks.get(m.framework_id)
        if fw is not None and fw.connected and fw.address is not None:
            self.tell(fw.address, M.MessageEvent(agent.id, m.executor_id, m.data))

    # ------------------------------------------------------------------ operator

    @handles(M.UpdateWeights)
    def _update_weights(self, m: M.UpdateWeights, sender: ActorAddress) -> None:
        bad = [(r, w) for r, w in m.weights if not w > 0]
        if bad:
            self.reply_error(sender, "UPDATE_WEIGHTS", f"weights must be positive: {bad}")
            return
        if self.acl is not None:
            denied = self.acl.first_denial(UPDATE_WEIGHTS, self._principal(), [r for r, _ in m.weights])
            if denied is not None:
                self.reply_error(sender, "UPDATE_WEIGHTS", denied.reason)
                return
        for role, w in m.weights:
            self.weights[role] = w
        if self.registry is not None:
            self.registry.put("weights", M.AllocUpdateWeights(tuple(sorted(self.weights.items()))))
        self._to_allocator(M.AllocUpdateWeights(m.weights))
        self.tell(sender, M.QueryReply("weights", dict(sorted(self.weights.items()))))

    @handles(M.UpdateQuota)
    def _update_quota(self, m: M.UpdateQuota, sender: ActorAddress) -> None:
        if self.acl is not None:
            decision = self.acl.check(UPDATE_QUOTAS, self._principal(), m.role)
            if not decision:
                self.reply_error(sender, "UPDATE_QUOTA", decision.reason)
                return
        try:
            quota = Quota(quota_from_wire(m.guarantee, "guarantee"), quota_from_wire(m.limit, "limit"))
            new = dict(self.quotas)
            if quota.is_empty():
                new.pop(m.role, None)
            else:
                new[m.role] = quota
            validate(new)
        except QuotaError as e:
            self.reply_error(sender, "UPDATE_QUOTA", str(e))
            return
        self.quotas = new
        if self.registry is not None:
            if quota.is_empty():
                self.registry.delete("quota/" + m.role)
            else:
                self.registry.put("quota/" + m.role, M.AllocUpdateQuota(m.role, m.guarantee, m.limit))
        self._to_allocator(M.AllocUpdateQuota(m.role, m.guarantee, m.limit))
        # Outstanding offers of the role's subtree go back, to be made again under the new quota.
        for offer_id in sorted(self.offers):
            rec = self.offers[offer_id]
            if rec.role == m.role or rec.role.startswith(m.role + "/"):
                self._rescind(offer_id, recover=True)
        self._flush_recovered()
        self.tell(sender, M.QueryReply("quota", {r: q.to_dict() for r, q in sorted(self.quotas.items())}))

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if not self.configured:
            return super().query(what, args)
        if what == "state":
            return self.state()
        if what == "summary":
            return self.summary()
        return super().query(what, args)

    def summary(self) -> dict[str, Any]:
        now = self.now()
        return {
            "master_id": self.master_id,
            "agents": sum(1 for a in self.agents.values() if a.reachable),
            "agents_unreachable": sum(1 for a in self.agents.values() if not a.reachable),
            "agents_recovering": len(self.recovering),
            "recovered_at": self.recovered_at,
            "frameworks": len(self.frameworks),
            "outstanding_offers": len(self.offers),
            "counters": dict(self.counters),
            "roles": self.ledger.view(now),
            "uptime_seconds": now - self.started_at,
        }

    def state(self) -> dict[str, Any]:
        now = self.now()
        return {
            "master_id": self.master_id,
            "version": VERSION,
            "uptime_seconds": now - self.started_at,
            "agents": [
                {"id": a.id, "hostname": a.info.hostname, "reachable": a.reachable,
                 "address": a.addr_text, "resources": a.total.to_dict(),
                 "allocated": a.allocated.to_dict(), "offered": a.offered.to_dict(),
                 "tasks": len(a.tasks), "attributes": dict(a.info.attributes), "principal": a.principal}
                for a in sorted(self.agents.values(), key=lambda a: a.id)
            ],
            "frameworks": [
                {"id": f.id, "name": f.info.name, "roles": list(f.info.roles),
                 "capabilities": [str(c) for c in f.info.capabilities], "connected": f.connected,
                 "active_tasks": len(f.tasks), "unreachable_tasks": len(f.unreachable),
                 "completed_tasks": len(f.completed), "offers": len(f.offers),
                 "suppressed_roles": sorted(f.suppressed), "principal": self._framework_principal(f),
                 "user": f.info.user}
                for f in sorted(self.frameworks.values(), key=lambda f: f.id)
            ],
            "tasks": [
                {"id": t.task_id, "framework_id": t.framework_id, "agent_id": t.agent_id,
                 "executor_id": t.executor_id, "role": t.role, "state": str(t.state),
                 "resources": t.resources.to_dict()}
                for f in sorted(self.frameworks.values(), key=lambda f: f.id)
                for t in [*f.tasks.values(), *f.unreachable.values(), *f.completed]
            ],
            "roles": self.ledger.view(now),
            "weights": dict(sorted(self.weights.items())),
            "quotas": {r: q.to_dict() for r, q in sorted(self.quotas.items())},
            "counters": dict(self.counters),
        }


def _serial(ident: str, prefix: str) -> int:
    """The number in an id this master would have made (``prefix`` + digits), else 0."""
    tail = ident[len(prefix):] if ident.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else 0


def _with_principal(info: M.FrameworkInfo, principal: str) -> M.FrameworkInfo:
    return M.FrameworkInfo(info.name, info.user, info.roles, info.capabilities, info.failover_timeout,
                           info.id, principal, info.hostname, info.checkpoint, info.labels)


def _agent_with_id(info: M.AgentInfo, agent_id: str) -> M.AgentInfo:
    return M.AgentInfo(info.hostname, info.resources, info.attributes, agent_id, info.capabilities)


def _with_id(info: M.FrameworkInfo, fid: str) -> M.FrameworkInfo:
    return M.FrameworkInfo(info.name, info.user, info.roles, info.capabilities, info.failover_timeout,
                           fid, info.principal, info.hostname, info.checkpoint, info.labels)


def _with_agent(task: M.TaskInfo, agent_id: str, res: Resources,
                executor: M.ExecutorInfo | None = None) -> M.TaskInfo:
    return M.TaskInfo(task.task_id, task.name, agent_id, res, task.command,
                      executor if executor is not None else task.executor, task.labels,
                      task.kill_grace_seconds)


def _replace_state(s: M.TaskStatus, state: TaskState) -> M.TaskStatus:
    return M.TaskStatus(s.task_id, state, s.source, s.reason, s.message, s.agent_id, s.executor_id,
                        s.timestamp, s.uuid, s.data, s.container_status, s.labels)


def _refuse_seconds(filters: M.Filters | None) -> float:
    """Mesos: default 5 s; negative means the default; over a year is clamped to a year."""
    if filters is None:
        return 5.0
    r = filters.refuse_seconds
    if r < 0:
        return 5.0
    return min(r, 365 * 86400.0)


__all__ = ["Master", "ResourceError"]
