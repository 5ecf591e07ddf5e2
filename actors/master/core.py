"""The master's core: its state, and the verbs its handlers share.

The handlers themselves live by area (``agents``, ``registry``, ``frameworks``,
``offers``, ``updates``, ``operator``); ``actors.master`` puts them in one table.
Everything here is plain code over plain records: it sends nothing itself (see
:mod:`actors.core`), so a test builds a :class:`MasterCore`, feeds it messages and
reads what it decided.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter, deque
from typing import Any

from actors.allocator.quota import Quota, QuotaError, amounts, validate
from actors.allocator.quota import from_wire as quota_from_wire
from actors.config import ConfigError, setting
from actors.core import Core
from actors.master.accounting import RoleLedger
from actors.master.records import AgentRec, FrameworkRec, OfferRec, TaskRec, TaskTable
from actors.ports import Addresses
from actors.protocol import messages as M
from actors.protocol.codec import CodecError, encode, unpack_value
from actors.protocol.messages import Reason, Source, TaskState
from actors.protocol.resources import DEFAULT_ROLE, Resources
from actors.security.acl import ACL, ACLError

TS = TaskState
VERSION = "0.1.0"


class MasterCore(Core):
    """The master's state and shared verbs; its handlers are in the area modules."""

    component = "master"

    def __init__(self, settings: dict[str, Any], addresses: Addresses, registry: Any = None,
                 name: str = "master", log: logging.Logger | None = None, stats: Counter[str] | None = None,
                 drops: Counter[str] | None = None) -> None:
        super().__init__(name, log, stats, drops)
        self.addresses = addresses
        self.registry = registry
        self.agents: dict[str, AgentRec] = {}
        self.agent_by_addr: dict[str, str] = {}
        self.unreachable_by_addr: dict[str, str] = {}
        self.removed_agents: set[str] = set()   # gone for good: their tasks are TASK_GONE
        self.frameworks: dict[str, FrameworkRec] = {}
        self.removed_frameworks: set[str] = set()
        self.completed_frameworks: deque[FrameworkRec] = deque()   # the newest, for the views
        self.offers: dict[str, OfferRec] = {}
        self.tasks = TaskTable()
        self.ledger = RoleLedger()
        self.weights: dict[str, float] = {}
        self.quotas: dict[str, Quota] = {}
        self.ping_queue: deque[tuple[float, str]] = deque()
        self.next_agent = 0
        self.next_framework = 0
        self.next_offer = 0
        self.recover_buffer: list[M.Recovered] = []
        self.recovering: dict[str, M.AgentRecord] = {}   # registry agents not re-registered yet
        self.recovered_at: float | None = None
        self.failover_heap: list[tuple[float, str]] = []
        self.failover_timer_at: float | None = None
        self.launch_checks: deque[tuple[float, str, str]] = deque()   # (due, framework, task)
        self.started_at = 0.0
        self.ping_bytes = b""
        self.heartbeat_bytes = b""
        self.counters: dict[str, int] = {
            "offers_sent": 0, "offers_accepted": 0, "offers_declined": 0, "offers_rescinded": 0,
            "tasks_launched": 0, "tasks_refused": 0, "status_updates": 0,
        }
        self.acl: ACL | None = None                      # None: nothing is authorized (all allowed)
        self._configure(settings)

    def _configure(self, settings: dict[str, Any]) -> None:
        self.flags = dict(settings)   # as given (shown by /flags, secrets left out)
        self.master_id = setting(settings, "master_id", str)
        if not self.master_id or "/" in self.master_id:
            raise ConfigError("master_id must be a non-empty id")
        self.allocator = self.address_of(setting(settings, "allocator", str))
        self.ping_interval = setting(settings, "agent_ping_timeout", float, 15.0)
        self.max_missed_pings = setting(settings, "max_agent_ping_timeouts", int, 5)
        self.heartbeat_interval = setting(settings, "heartbeat_interval", float, 15.0)
        self.tasks.max_completed = setting(settings, "max_completed_tasks_per_framework", int, 1000)
        self.completed_frameworks = deque(maxlen=setting(settings, "max_completed_frameworks", int, 50))
        self.max_missed_heartbeats = setting(settings, "max_framework_heartbeat_timeouts", int, 5)
        self.agent_reregister_timeout = setting(settings, "agent_reregister_timeout", float, 600.0)
        self.launch_retry = setting(settings, "launch_retry_interval", float, 30.0)
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

    # ------------------------------------------------------------------ addresses

    def address_text(self, addr: Any) -> str:
        return self.addresses.format(addr)

    def address_of(self, text: str) -> Any:
        return self.addresses.parse(text)

    def parse_or_none(self, text: str) -> Any | None:
        """A recorded address, or None (counted, logged) where it is unusable."""
        if not text:
            return None
        try:
            return self.address_of(text)
        except (ConfigError, ValueError, TypeError) as e:
            self.stats["registry_bad_records"] += 1
            self.log.error("master: registry address %r unusable: %s", text, e)
            return None

    # ------------------------------------------------------------------ the allocator

    def to_allocator(self, msg: Any) -> None:
        """A message to the allocator; what was recovered so far goes first, so the
        allocator learns everything in the order it happened."""
        if self.recover_buffer:
            self.flush_recovered()
        self.send(self.allocator, msg)

    def recover(self, fid: str, agent_id: str, role: str, res: Resources, refuse_seconds: float | None) -> None:
        """Resources go back to the allocator: all of one message's in one ``AllocRecover``,
        sent when the message is handled (:meth:`finish`) or before the next message to
        the allocator, whichever comes first."""
        if not res.is_empty():
            self.recover_buffer.append(M.Recovered(fid, agent_id, role, res, refuse_seconds))
            self.unfinished = True

    def flush_recovered(self) -> None:
        if self.recover_buffer:
            items, self.recover_buffer = tuple(self.recover_buffer), []
            self.send(self.allocator, M.AllocRecover(items))

    def finish(self) -> None:
        self.unfinished = False
        self.flush_recovered()

    # ------------------------------------------------------------------ accounts

    def charge(self, agent: AgentRec, role: str, res: Resources) -> None:
        agent.allocated = agent.allocated + res.with_role(DEFAULT_ROLE)
        self.ledger.add(role, "allocated", res, self.now)

    def uncharge(self, agent: AgentRec, role: str, res: Resources) -> None:
        agent.allocated = agent.allocated.minus_saturating(res.with_role(DEFAULT_ROLE))
        self.ledger.sub(role, "allocated", res, self.now)

    def release(self, agent: AgentRec, t: TaskRec, now: float, recover: bool) -> None:
        """Give a task's resources back (once): terminal, unreachable, or framework gone."""
        if t.released:
            return
        t.released = True
        self.uncharge(agent, t.role, t.resources)
        if t.running:
            t.running = False
            self.ledger.sub(t.role, "used", t.used, now)
        if recover:
            self.recover(t.framework_id, agent.id, t.role, t.resources, None)

    def count_used(self, t: TaskRec, used: Resources, now: float) -> None:
        """Count ``used`` in the role's use for a running task, in place of what was counted."""
        if t.running:
            self.ledger.sub(t.role, "used", t.used, now)
        t.running, t.used = True, used
        self.ledger.add(t.role, "used", used, now)

    # ------------------------------------------------------------------ to frameworks

    def send_update(self, fw: FrameworkRec, status: M.TaskStatus) -> None:
        if fw.connected and fw.address is not None:
            if not fw.partition_aware and status.state in M.PARTITION_AWARE_STATES:
                status = replace_state(status, TS.TASK_LOST)
            fw.updates_sent += 1
            self.send(fw.address, M.Update(status))

    def send_updates(self, fw: FrameworkRec, statuses: list[M.TaskStatus]) -> None:
        """Several updates none of which is to be acknowledged (reconciliation answers):
        one message per :data:`UPDATES_BATCH`, one plain UPDATE for a single one."""
        if not statuses or not fw.connected or fw.address is None:
            return
        if len(statuses) == 1:
            self.send_update(fw, statuses[0])
            return
        if not fw.partition_aware:
            statuses = [replace_state(s, TS.TASK_LOST) if s.state in M.PARTITION_AWARE_STATES else s
                        for s in statuses]
        fw.updates_sent += len(statuses)
        for i in range(0, len(statuses), M.UPDATES_BATCH):
            self.send(fw.address, M.Updates(tuple(statuses[i:i + M.UPDATES_BATCH])))

    def master_status(self, t: TaskRec, state: TaskState, reason: Reason, message: str) -> M.TaskStatus:
        return M.TaskStatus(t.task_id, state, Source.SOURCE_MASTER, reason, message, t.agent_id,
                            t.executor_id, self.now)

    def heartbeat(self, fw: FrameworkRec) -> None:
        assert fw.address is not None
        if fw.updates_sent or self.recovering:
            self.send(fw.address, M.Heartbeat(self.master_id, fw.updates_sent, len(self.recovering)))
        else:
            self.send_bytes(fw.address, self.heartbeat_bytes)

    def not_subscribed(self, addr: Any, call: str, message: str) -> None:
        self.stats["errors_replied"] += 1
        self.send(addr, M.Error(message, call, False, resubscribe=True))

    # ------------------------------------------------------------------ who is asking

    def principal_of(self, claimed: str = "") -> str | None:
        """Who is asking: the authenticated principal of the message being handled; without
        authentication, the one the caller claims (as Mesos does), None if it claims none."""
        if self.authenticates:
            return self.principal
        return claimed or None

    def framework_principal(self, fw: FrameworkRec) -> str | None:
        """The principal a framework's requests are checked for."""
        return fw.principal if fw.principal is not None else (fw.info.principal or None)

    def agent_from(self, sender: Any, what: str) -> AgentRec | None:
        """The registered, reachable agent at ``sender``, its calls from its own principal."""
        agent_id = self.agent_by_addr.get(self.address_text(sender))
        rec = self.agents.get(agent_id) if agent_id is not None else None
        if rec is None or not rec.reachable:
            self.drop(f"{what} from an agent that is not registered", sender)
            return None
        if self.authenticates and self.principal != rec.principal:
            self.stats["calls_wrong_principal"] += 1
            self.drop(f"{what} from principal {self.principal!r} for an agent of principal "
                      f"{rec.principal!r}", sender)
            return None
        return rec

    def framework_for(self, fid: str, sender: Any, call: str) -> FrameworkRec | None:
        """The subscribed framework ``fid`` calling from ``sender``, else an answer why not."""
        fw = self.frameworks.get(fid)
        if fw is None:
            if fid in self.removed_frameworks:
                self.reply_error(sender, call, f"framework {fid} has been removed", fatal=True)
            else:
                self.not_subscribed(sender, call, f"framework {fid} is not subscribed")
            return None
        if self.authenticates and fw.principal is not None and self.principal != fw.principal:
            # One framework may not act for another: dropped, not answered (the sender's
            # address may be the framework's own, forged).
            self.stats["calls_wrong_principal"] += 1
            self.drop(f"{call} from principal {self.principal!r} for a framework of principal "
                      f"{fw.principal!r}", sender)
            return None
        if fw.address is None or fw.address != sender or not fw.connected:
            self.not_subscribed(sender, call, f"framework {fid} is not subscribed from this address")
            return None
        fw.last_seen = self.now
        return fw

    # ------------------------------------------------------------------ the registry

    def unsave(self, key: str) -> None:
        if self.registry is not None:
            self.registry.delete(key)

    def save_agent(self, rec: AgentRec) -> None:
        if self.registry is not None:
            info = rec.info if rec.info.id == rec.id else agent_with_id(rec.info, rec.id)
            self.registry.put("agent/" + rec.id, M.AgentRecord(rec.addr_text, info, rec.reachable))

    def save_framework(self, fw: FrameworkRec) -> None:
        if self.registry is not None:
            text = self.address_text(fw.address) if fw.address is not None else ""
            self.registry.put("framework/" + fw.id, M.FrameworkRecord(text, fw.info))

    # ------------------------------------------------------------------ start and recovery

    def start(self, now: float) -> list[Any]:
        """The master starts: its heartbeat, the registry read back, weights and quota told."""
        self.now = now
        self.ping_bytes = encode(M.Ping(self.master_id, True))
        self.heartbeat_bytes = encode(M.Heartbeat(self.master_id))
        self.started_at = now
        self.ledger = RoleLedger(now)
        self.set_timer("heartbeat", self.heartbeat_interval)
        if self.registry is not None:
            self._recover_registry()
        if self.weights:
            self.to_allocator(M.AllocUpdateWeights(tuple(sorted(self.weights.items()))))
        for role, q in sorted(self.quotas.items()):
            self.to_allocator(M.AllocUpdateQuota(role, *q.to_wire()))
        self.finish()
        return self.take()

    def _recover_registry(self) -> None:
        """A new master: read who was there, call them back, and start the clock on them."""
        records = self.registry.load()
        now = self.now
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
        self.next_agent = max([self.next_agent, *(serial(i, f"{self.master_id}-S") for i, _ in agents)])
        for fr in frameworks:
            fid = fr.info.id
            if not fid or fid in self.removed_frameworks:
                continue
            self.next_framework = max(self.next_framework, serial(fid, f"{self.master_id}-"))
            address = self.parse_or_none(fr.address)
            fw = FrameworkRec(fid, fr.info, address, now, connected=False, last_seen=now)
            self.frameworks[fid] = fw
            self.start_failover(fw, now)
            if address is not None:
                self.send_bytes(address, self.heartbeat_bytes)  # "a new master: re-subscribe"
        unreached = encode(M.Ping(self.master_id, False))
        for agent_id, ar in agents:
            address = self.parse_or_none(ar.address)
            if address is None:
                continue
            if not ar.reachable:
                rec = AgentRec(agent_id, address, ar.address, ar.info, ar.info.resources, now, reachable=False)
                self.agents[agent_id] = rec
                self.unreachable_by_addr[ar.address] = agent_id
                continue
            self.recovering[agent_id] = ar
            self.send_bytes(address, unreached)  # "a new master that does not know you yet"
        self.stats["registry_agents"] = len(agents)
        self.stats["registry_frameworks"] = len(frameworks)
        if self.recovering:
            self.set_timer("agent_reregister", self.agent_reregister_timeout)
        else:
            self.recovered_at = now
        self.log.info("master %s: registry names %d agents and %d frameworks; waiting %.0f s for "
                      "the agents to re-register", self.master_id, len(agents), len(frameworks),
                      self.agent_reregister_timeout)

    def recovered(self, agent_id: str) -> None:
        """A registry agent is back (or will not be): the recovery ends with the last one."""
        if self.recovering.pop(agent_id, None) is not None and not self.recovering:
            self.recovered_at = self.now
            self.cancel_timer("agent_reregister")
            self.recovery_over()

    def recovery_over(self) -> None:
        """Every agent the registry named is back (or taken for unreachable): a heartbeat
        now tells the frameworks, which reconcile."""
        for fid in sorted(self.frameworks):
            fw = self.frameworks[fid]
            if fw.connected and fw.address is not None:
                self.heartbeat(fw)

    def timer_agent_reregister(self) -> None:
        """Registry agents that did not come back in time are unreachable (Mesos:
        ``agent_reregister_timeout``); their tasks answer reconciliation as such."""
        now = self.now
        for agent_id in sorted(self.recovering):
            ar = self.recovering[agent_id]
            address = self.parse_or_none(ar.address)
            if address is None:
                continue
            rec = AgentRec(agent_id, address, ar.address, ar.info, ar.info.resources, now, reachable=False)
            self.agents[agent_id] = rec
            self.unreachable_by_addr[ar.address] = agent_id
            self.save_agent(rec)
            self.log.warning("master: agent %s did not re-register within %.0f s; marking it unreachable",
                             agent_id, self.agent_reregister_timeout)
            for fw in self.frameworks.values():
                if fw.connected and fw.address is not None:
                    self.send(fw.address, M.Failure(agent_id))
        self.recovering.clear()
        self.recovered_at = now
        self.recovery_over()

    def start_failover(self, fw: FrameworkRec, now: float) -> None:
        """The framework is disconnected: removed unless it re-subscribes within its
        failover timeout."""
        deadline = now + max(0.0, fw.info.failover_timeout)
        fw.failover_deadline = deadline
        heapq.heappush(self.failover_heap, (deadline, fw.id))
        if self.failover_timer_at is None or deadline < self.failover_timer_at:
            self.failover_timer_at = deadline
            self.set_timer("failover", deadline - now)


def serial(ident: str, prefix: str) -> int:
    """The number in an id this master would have made (``prefix`` + digits), else 0."""
    tail = ident[len(prefix):] if ident.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else 0


def agent_with_id(info: M.AgentInfo, agent_id: str) -> M.AgentInfo:
    return M.AgentInfo(info.hostname, info.resources, info.attributes, agent_id, info.capabilities,
                       info.http_address)


def replace_state(s: M.TaskStatus, state: TaskState) -> M.TaskStatus:
    return M.TaskStatus(s.task_id, state, s.source, s.reason, s.message, s.agent_id, s.executor_id,
                        s.timestamp, s.uuid, s.data, s.container_status, s.labels)
