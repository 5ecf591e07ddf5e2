"""The framework base class: a scheduler is an actor you subclass.

Override the callbacks you need (:meth:`Framework.resource_offers`,
:meth:`Framework.status_update`, ...) and call :meth:`Framework.launch`,
:meth:`Framework.decline`, ...; run it in a scenario (``class = "mypkg.mymod:MyFramework"``)
or against a running master (``impresario framework mypkg.mymod:MyFramework --master
HOST:PORT``).  Following the master, failing over and reconciling are built in.  The
callbacks, calls and settings are in docs/frameworks.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from thespian.actors import ActorAddress

from actors.base import FollowsMasters, handles
from actors.config import ConfigError, setting
from actors.following import MasterList
from actors.frameworks.results import TaskTracker
from actors.protocol import messages as M
from actors.protocol.messages import Capability, TaskState
from actors.protocol.resources import role_error

TS = TaskState


class Framework(FollowsMasters):
    """Base class of schedulers.  Subclass it and override the callbacks."""

    component = "framework"

    def __init__(self) -> None:
        super().__init__()
        self.master_id = ""
        self.heartbeat_timeouts = 5
        self.agent_of: dict[str, str] = {}      # live task -> its agent (for reconciliation)
        self.resubscriptions = 0
        self._reconcile_round = 0
        self._reconcile_started = 0.0
        self._updates_heard = 0                 # statuses from the master since SUBSCRIBED
        self._reconcile_after_recovery = False  # waiting for a recovering master's agents
        self.heard_at: dict[str, float] = {}    # task -> when an update last came (during reconciliation)
        # Tasks whose fate is open: launched and not heard of since, or unreachable.  They
        # are reconciled every ``reconcile_interval`` until something else is heard.
        self.unsure: dict[str, float] = {}
        self.reconcile_interval = 60.0
        self._heartbeat_at = 0.0
        self.framework_id = ""
        self.info: M.FrameworkInfo | None = None
        self.connected = False
        self.implicit_acks = True
        self.tracker = TaskTracker()
        self.offers: dict[str, M.Offer] = {}
        self.last_event_at = 0.0
        self.heartbeat_interval = 15.0
        self.done_at: float | None = None
        self.errors: list[str] = []
        self.fatal_error = ""
        self._subscribe_attempts = 0
        self._suppressed: set[str] = set()
        self.master_principals: frozenset[str] = frozenset({"master"})

    # ------------------------------------------------------------------ set-up

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        self.masters = MasterList(self.master_candidates(settings))
        self.heartbeat_timeouts = setting(settings, "master_heartbeat_timeouts", int, 5)
        self.reconcile_interval = setting(settings, "reconcile_interval", float, 60.0)
        # How long a framework re-subscribed to a recovering master waits for its agents
        # before it reconciles anyway.
        self.recovery_wait = setting(settings, "recovery_wait", float, 60.0)
        name = setting(settings, "name", str, type(self).__name__)
        roles = setting(settings, "roles", list, ["*"])
        for r in roles:
            err = role_error(r)
            if err:
                raise ConfigError(err)
        caps = []
        for c in setting(settings, "capabilities", list, []):
            try:
                caps.append(Capability(c))
            except ValueError:
                raise ConfigError(f"unknown capability {c!r}") from None
        if len(roles) > 1 and Capability.MULTI_ROLE not in caps:
            caps.append(Capability.MULTI_ROLE)
        failover = setting(settings, "failover_timeout", float, 7 * 86400.0)
        self.info = M.FrameworkInfo(name, setting(settings, "user", str, ""), tuple(roles),
                                    tuple(caps), failover,
                                    setting(settings, "framework_id", str, ""),
                                    setting(settings, "principal", str, ""))
        self.master_principals = frozenset(str(p) for p in setting(settings, "master_principals", list, ["master"]))
        self.implicit_acks = setting(settings, "implicit_acknowledgements", bool, True)
        self.setup(settings)

    def setup(self, settings: dict[str, Any]) -> None:
        """Read a subclass's own settings (raise ConfigError on bad ones)."""

    def started(self) -> None:
        self._subscribe()

    def _subscribe(self) -> None:
        assert self.masters.master is not None and self.info is not None
        self.tell(self.masters.master, M.Subscribe(self.info, tuple(sorted(self._suppressed))))
        self._subscribe_attempts += 1
        self.set_timer("subscribe", min(60.0, 2.0 * 2 ** min(self._subscribe_attempts, 8)))

    def timer_subscribe(self) -> None:
        if not self.connected and not self._gave_up():
            self.masters.next()
            self._subscribe()

    def following_master(self) -> bool:
        return self.connected

    def look_for_master_now(self) -> None:
        if not self._gave_up():
            self._subscribe_attempts = 0
            self._subscribe()

    def _gave_up(self) -> bool:
        return bool(self.fatal_error)

    def _resubscribe(self, why: str, master: ActorAddress | None = None) -> None:
        """Subscribe again with the framework id (a failover): now, then with backoff."""
        if not self.framework_id or self._gave_up():
            return
        if not self.connected and self.timer_pending("subscribe") and (master is None or master == self.masters.master):
            return  # on it already
        self.log.info("framework %s: %s; subscribing again", self.name, why)
        self.connected = False
        self.offers.clear()
        if master is not None:
            self.masters.follow(master)
        self._subscribe_attempts = 0
        self._subscribe()

    def timer_watch(self) -> None:
        if not self.connected:
            return
        timeout = self.heartbeat_interval * self.heartbeat_timeouts
        idle = self.now() - self.last_event_at
        if idle < timeout - 1e-9:
            self.set_timer("watch", timeout - idle)
            return
        self.masters.next()
        self._resubscribe(f"nothing from the master for {idle:.0f} s")

    def _from_master(self, sender: ActorAddress, what: str) -> bool:
        if sender != self.masters.master:
            self.drop(f"{what} not from the master", sender)
            return False
        if self._open is not None and self.peer_principal not in self.master_principals:
            self._not_a_master(what, sender)
            return False
        self.last_event_at = self.now()
        return True

    def _not_a_master(self, what: str, sender: ActorAddress) -> None:
        self.stats["calls_wrong_principal"] += 1
        self.drop(f"{what} from principal {self.peer_principal!r}, not a master's", sender)

    # ------------------------------------------------------------------ events

    @handles(M.Subscribed)
    def _on_subscribed(self, m: M.Subscribed, sender: ActorAddress) -> None:
        if not self._from_master(sender, "SUBSCRIBED"):
            return
        assert self.info is not None
        self.framework_id = m.framework_id
        self.info = M.FrameworkInfo(self.info.name, self.info.user, self.info.roles,
                                    self.info.capabilities, self.info.failover_timeout, m.framework_id,
                                    self.info.principal, self.info.hostname, self.info.checkpoint,
                                    self.info.labels)
        self.heartbeat_interval = m.heartbeat_interval_seconds
        again = self.master_id != ""
        self.master_id = m.master_id
        self.connected = True
        self._updates_heard = 0
        self.cancel_timer("subscribe")
        self.set_timer("watch", self.heartbeat_interval * self.heartbeat_timeouts)
        if again:
            self.resubscriptions += 1
            if m.agents_recovering:
                # Most tasks' agents are still on their way back: reconcile once they are.
                self._reconcile_after_recovery = True
                self.set_timer("recovery_wait", self.recovery_wait)
            else:
                self._start_reconciliation()
        self.subscribed(m.framework_id)

    # ------------------------------------------------------------------ reconciliation

    def timer_recovery_wait(self) -> None:
        if self._reconcile_after_recovery:
            self._start_reconciliation()

    def _start_reconciliation(self) -> None:
        """After a failover: ask for every task believed live; the tasks unheard of are
        asked again with backoff (Mesos' reconciliation algorithm)."""
        self._reconcile_after_recovery = False
        self.cancel_timer("recovery_wait")
        self._reconcile_round = 0
        self._reconcile_started = self.now()
        self.heard_at.clear()
        self._reconcile_live()

    def _reconcile_live(self) -> None:
        if not self.connected or not self.framework_id:
            return
        live = [(tid, self.agent_of.get(tid, "")) for tid, st in self.tracker.state.items()
                if not st.terminal and self.heard_at.get(tid, -1.0) < self._reconcile_started]
        if not live:
            return
        live.sort()
        for i in range(0, len(live), 1000):
            self.reconcile(live[i:i + 1000])
        self._reconcile_round += 1
        self.stats["reconciliations"] += 1
        self.set_timer("reconcile", min(600.0, 15.0 * 2 ** min(self._reconcile_round - 1, 6)))

    def timer_reconcile(self) -> None:
        self._reconcile_live()

    def _unsure(self, tid: str, now: float) -> None:
        self.unsure.setdefault(tid, now)
        if not self.timer_pending("unsure"):
            self.set_timer("unsure", self.reconcile_interval)

    def timer_unsure(self) -> None:
        """Ask after the tasks whose fate is open: a launch that may have been lost on the
        way, a task on an agent that is unreachable (it may be gone for good)."""
        now = self.now()
        due = sorted((tid, self.agent_of.get(tid, "")) for tid, since in self.unsure.items()
                     if now - since >= self.reconcile_interval - 1e-9)
        if due and self.connected and self.framework_id:
            self.stats["unsure_reconciled"] += len(due)
            for i in range(0, len(due), 1000):
                self.reconcile(due[i:i + 1000])
            for tid, _ in due:
                self.unsure[tid] = now
        if self.unsure:
            self.set_timer("unsure", self.reconcile_interval)

    @handles(M.Offers)
    def _on_offers(self, m: M.Offers, sender: ActorAddress) -> None:
        if not self._from_master(sender, "OFFERS"):
            return
        for o in m.offers:
            self.offers[o.offer_id] = o
        self.resource_offers(list(m.offers))

    @handles(M.Rescind)
    def _on_rescind(self, m: M.Rescind, sender: ActorAddress) -> None:
        if self._from_master(sender, "RESCIND"):
            self.offers.pop(m.offer_id, None)
            self.offer_rescinded(m.offer_id)

    @handles(M.Update)
    def _on_update(self, m: M.Update, sender: ActorAddress) -> None:
        if self._from_master(sender, "UPDATE"):
            self._take_update(m.status, self.now())

    @handles(M.Updates)
    def _on_updates(self, m: M.Updates, sender: ActorAddress) -> None:
        if self._from_master(sender, "UPDATE"):
            now = self.now()
            for status in m.statuses:
                self._take_update(status, now)

    def _take_update(self, status: M.TaskStatus, now: float) -> None:
        self._updates_heard += 1
        tid = status.task_id
        # TASK_UNKNOWN: the master knows neither the task nor its agent (Mesos keeps it
        # non-terminal); the tracker counts it lost, taken back should the task be heard of.
        state = TS.TASK_LOST if status.state == TS.TASK_UNKNOWN else status.state
        if self.tracker.revive(tid, state, now):
            self.done_at = None
        self.tracker.update(tid, state, now)
        if status.state.terminal:
            self.agent_of.pop(tid, None)
        elif status.agent_id:
            self.agent_of[tid] = status.agent_id
        if state in (TS.TASK_STAGING, TS.TASK_UNREACHABLE):
            self._unsure(tid, now)
        else:
            self.unsure.pop(tid, None)
        if self._reconcile_round:
            self.heard_at[tid] = now
        self.status_update(status)
        if self.implicit_acks and status.uuid:
            self.acknowledge(status)

    @handles(M.MessageEvent)
    def _on_message(self, m: M.MessageEvent, sender: ActorAddress) -> None:
        if self._from_master(sender, "MESSAGE"):
            self.framework_message(m.agent_id, m.executor_id, m.data)

    @handles(M.Failure)
    def _on_failure(self, m: M.Failure, sender: ActorAddress) -> None:
        if self._from_master(sender, "FAILURE"):
            self.failure(m.agent_id, m.executor_id, m.status)

    @handles(M.Error)
    def _on_error(self, m: M.Error, sender: ActorAddress) -> None:
        if m.call == "SUBSCRIBE" and self.connected:
            # It answers a subscription, and this scheduler is subscribed and made none since.
            self.drop("a SUBSCRIBE error while subscribed", sender)
            return
        if not self._from_master(sender, "ERROR"):
            return
        text = f"{m.call}: {m.message}" if m.call else m.message
        self.errors.append(text)
        if m.fatal:
            self.fatal_error = text
            self.connected = False
            self.cancel_timer("subscribe")
            self.cancel_timer("watch")
        self.error(text)
        if m.resubscribe and not m.fatal:
            self._resubscribe(text)

    @handles(M.Heartbeat)
    def _on_heartbeat(self, m: M.Heartbeat, sender: ActorAddress) -> None:
        if self._open is not None and self.peer_principal not in self.master_principals:
            # Only a master's principal is followed: nobody else can call this scheduler over.
            self._not_a_master("HEARTBEAT", sender)
            return
        if sender != self.masters.master and sender not in self.masters.candidates:
            if not m.master_id or m.master_id == self.master_id:
                self.drop("HEARTBEAT not from a master", sender)
                return
            # A master restarted at a new address, or a standby not in the list.
            self.stats["masters_adopted"] += 1
            self.masters.adopt(sender)
        if m.master_id and m.master_id != self.master_id:
            self._resubscribe(f"master {m.master_id} leads", sender)
            return
        now = self.now()
        if self._from_master(sender, "HEARTBEAT") and self.connected and self.framework_id:
            self.tell(sender, M.HeartbeatReply(self.framework_id))
            if self._reconcile_after_recovery and not m.agents_recovering:
                self._updates_heard = max(self._updates_heard, m.updates)
                self._start_reconciliation()
            elif m.updates > self._updates_heard:
                # Updates the master sent went missing on the way (its own are sent once):
                # ask after every task believed live.
                self.stats["updates_missed"] += m.updates - self._updates_heard
                self._updates_heard = m.updates
                self._start_reconciliation()
            elif self._heartbeat_at and now - self._heartbeat_at > 1.5 * self.heartbeat_interval:
                # A heartbeat went missing, and maybe updates with it.
                self.stats["heartbeat_gaps"] += 1
                self._start_reconciliation()
        self._heartbeat_at = now

    # ------------------------------------------------------------------ callbacks to override

    def subscribed(self, framework_id: str) -> None:
        """The master accepted the subscription."""

    def resource_offers(self, offers: list[M.Offer]) -> None:
        """Offers arrived.  The default declines them all (with the default filter)."""
        self.decline([o.offer_id for o in offers])

    def offer_rescinded(self, offer_id: str) -> None:
        """An outstanding offer is no longer valid."""

    def status_update(self, status: M.TaskStatus) -> None:
        """A task changed state."""

    def framework_message(self, agent_id: str, executor_id: str, data: bytes) -> None:
        """Opaque data from one of this framework's executors."""

    def failure(self, agent_id: str, executor_id: str, status: int | None) -> None:
        """An agent was lost (no executor id) or an executor terminated."""

    def error(self, message: str) -> None:
        """The master refused a call (or ended the subscription)."""
        self.log.warning("framework %s: %s", self.name, message)

    def is_done(self) -> bool:
        """True once this framework has nothing more to do (ends a simulation early)."""
        return False

    # ------------------------------------------------------------------ calls

    def _call(self, msg: Any) -> None:
        if self.masters.master is None or not self.framework_id:
            raise RuntimeError("not subscribed yet")
        self.tell(self.masters.master, msg)

    def accept(self, offer_ids: Iterable[str], operations: Iterable[M.Operation],
               refuse_seconds: float | None = None) -> None:
        ids = tuple(offer_ids)
        ops = tuple(operations)
        now = self.now()
        offer = self.offers.get(ids[0]) if ids else None
        for op in ops:
            for t in (op.task_infos if isinstance(op, M.Launch) else op.task_group):
                self.tracker.launch(t.task_id, now)
                if offer is not None:
                    self.agent_of[t.task_id] = offer.agent_id
                self._unsure(t.task_id, now)
        for i in ids:
            self.offers.pop(i, None)
        filters = M.Filters(refuse_seconds) if refuse_seconds is not None else None
        self._call(M.Accept(self.framework_id, ids, ops, filters))

    def launch(self, offer: M.Offer, tasks: Sequence[M.TaskInfo], refuse_seconds: float | None = None) -> None:
        """Launch command tasks on one offer (what is left over goes back to the allocator)."""
        self.accept([offer.offer_id], [M.Launch(tuple(tasks))], refuse_seconds)

    def launch_group(self, offer: M.Offer, executor: M.ExecutorInfo, tasks: Sequence[M.TaskInfo],
                     refuse_seconds: float | None = None) -> None:
        """Launch a task group (a pod) under the default executor, atomically."""
        self.accept([offer.offer_id], [M.LaunchGroup(executor, tuple(tasks))], refuse_seconds)

    def decline(self, offer_ids: Iterable[str], refuse_seconds: float | None = None) -> None:
        ids = tuple(offer_ids)
        for i in ids:
            self.offers.pop(i, None)
        filters = M.Filters(refuse_seconds) if refuse_seconds is not None else None
        self._call(M.Decline(self.framework_id, ids, filters))

    def revive(self, roles: Iterable[str] = ()) -> None:
        roles = tuple(roles)
        assert self.info is not None
        self._suppressed.difference_update(roles or self.info.roles)
        self._call(M.Revive(self.framework_id, roles))

    def suppress(self, roles: Iterable[str] = ()) -> None:
        roles = tuple(roles)
        assert self.info is not None
        self._suppressed.update(roles or self.info.roles)
        self._call(M.Suppress(self.framework_id, roles))

    def kill(self, task_id: str, agent_id: str = "", grace_seconds: float | None = None) -> None:
        self._call(M.Kill(self.framework_id, task_id, agent_id, grace_seconds))

    def acknowledge(self, status: M.TaskStatus) -> None:
        if status.uuid and status.agent_id:
            self._call(M.Acknowledge(self.framework_id, status.agent_id, status.task_id, status.uuid))

    def reconcile(self, tasks: Iterable[tuple[str, str]] = ()) -> None:
        self._call(M.Reconcile(self.framework_id, tuple(M.ReconcileTask(t, a) for t, a in tasks)))

    def message(self, agent_id: str, executor_id: str, data: bytes) -> None:
        self._call(M.Message(self.framework_id, agent_id, executor_id, data))

    def shutdown_executor(self, executor_id: str, agent_id: str) -> None:
        self._call(M.Shutdown(self.framework_id, executor_id, agent_id))

    def teardown(self) -> None:
        self._call(M.Teardown(self.framework_id))
        self.connected = False

    # ------------------------------------------------------------------ views

    def summary(self) -> dict[str, Any]:
        out = self.tracker.summary()
        out.update(name=self.name, framework_id=self.framework_id, connected=self.connected,
                   done=self.is_done(), done_at=self.done_at, errors=self.errors[-20:])
        return out

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "summary":
            return self.summary()
        if what == "tasks":
            return {tid: str(s) for tid, s in sorted(self.tracker.state.items())}
        return super().query(what, args)
