"""The agent: registers its resources, runs tasks through executors, and
carries status updates to the master reliably.

Executors are child actors (one per command task; one per task group's
executor for the default executor).  Status updates are kept per task in a
stream: only the head of a stream is in flight, it is resent with exponential
backoff until the framework's acknowledgement comes back through the master,
and the next one follows only then - so updates arrive at least once and in
order per task.  Each forwarded update carries the task's latest known state,
so the master frees a finished task's resources even while earlier updates
are still being delivered.

Finding the master: the ``master`` setting (or the ``masters`` list, tried in
turn) names where masters may run.  The agent registers with one; the master
then pings it every ``ping_interval_seconds``.  A ping naming another master id
(a restarted master at the same address, or a standby taking over), or one that
says the master does not know the agent, makes the agent re-register after a
random delay in [0, ``registration_backoff``] (so that 40,000 agents do not come
all at once); a master silent for ``master_ping_timeouts`` intervals is taken for
lost, and the agent re-registers, trying the candidates in turn.  After every
(re-)registration, the pending status updates are sent again.

Recovery: with a ``checkpoint`` port (a :class:`~actors.ports.Store` in the
work directory), the agent records its id, its frameworks, each executor with
its tasks (and their terminal states) and every status update not yet
acknowledged.  An agent that restarts with these records re-creates its
executors, which re-attach to the tasks' containers (``ExecRecover``), resends
the pending updates, and re-registers under its old id with what runs.  Without
records it registers as a new agent; its new incarnation tells the master that
the old agent is gone.

GPUs are whole devices: the agent decides which of its discovered GPUs a task
gets (:class:`~actors.agent.gpus.GpuPool`) and tells the executor with the launch.
Executors sample their tasks' usage (real hosts: the ``usage_interval``
setting); the agent batches the latest samples into one ``UsageReport`` to
the master per interval.

Principals: with an auth port, the agent follows (and takes master calls
from) only the principals of its ``master_principals`` setting (default
``["master"]``), and its executors' messages only from its own principal.  A
task runs as its command's user, else its framework's; the agent refuses
(``TASK_ERROR``) a task as ``root`` unless ``allow_root_tasks`` is set, or,
with an ``acls`` setting, unless its ``run_tasks`` rules allow the task's user.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from thespian.actors import ActorAddress, ActorExitRequest

from actors.agent.gpus import GpuPool
from actors.base import FollowsMasters, handles
from actors.config import ConfigError, setting
from actors.ports import Discovered
from actors.protocol import messages as M
from actors.protocol.codec import CodecError, encode, unpack_value
from actors.protocol.messages import Reason, Source, TaskState
from actors.protocol.resources import Resources
from actors.security.acl import ACL, ROOT, RUN_TASKS, ACLError

TS = TaskState
COMMAND_EXECUTOR = "actors.agent.executor.CommandExecutor"
DEFAULT_EXECUTOR = "actors.agent.executor.DefaultExecutor"
RETRY_MIN = 10.0      # Mesos STATUS_UPDATE_RETRY_INTERVAL_MIN
RETRY_MAX = 600.0     # Mesos STATUS_UPDATE_RETRY_INTERVAL_MAX


@dataclass(slots=True)
class ExecRec:
    framework_id: str
    info: M.ExecutorInfo
    address: ActorAddress
    addr_text: str
    container_id: str
    tasks: dict[str, M.TaskInfo] = field(default_factory=dict)
    states: dict[str, TaskState] = field(default_factory=dict)
    subscribed: bool = False
    exiting: bool = False
    bound: bool = False       # address is the executor's real one (it has spoken)
    seen: set[str] = field(default_factory=set)   # update uuids taken in charge
    default: bool = False     # the default executor (task groups)
    groups: dict[str, int] = field(default_factory=dict)   # task -> its launch group
    gpus: tuple[M.AssignedGpu, ...] = ()


@dataclass(slots=True)
class Stream:
    """The pending status updates of one task, oldest first."""

    pending: deque[M.StatusUpdate] = field(default_factory=deque)
    sent_at: float = -1.0
    interval: float = RETRY_MIN
    task: M.TaskInfo | None = None    # reported on re-registration after its executor is gone


class Agent(FollowsMasters):
    component = "agent"

    def __init__(self) -> None:
        super().__init__()
        self.master_id = ""
        self.incarnation = ""
        self.ping_interval = 15.0
        self.ping_timeouts = 6
        self.last_ping_at = 0.0
        self.reregistrations = 0
        self.agent_id = ""
        self.registered = False
        self.refused = ""
        self.info: M.AgentInfo | None = None
        self.frameworks: dict[str, M.FrameworkInfo] = {}
        self.executors: dict[tuple[str, str], ExecRec] = {}
        self.exec_by_addr: dict[str, tuple[str, str]] = {}
        self.streams: dict[tuple[str, str], Stream] = {}
        self._register_attempts = 0
        self._pong_for: str | None = None
        self._pong_bytes = b""
        self.task_index: set[tuple[str, str]] = set()   # (framework, task) of every task here
        self._next_container = 0
        self._next_update = 0
        self.retry_min = RETRY_MIN
        self.retry_max = RETRY_MAX
        self.backoff = 1.0
        self.work_dir = ""
        self.executor_settings: dict[str, Any] = {}
        self.executor_ports: tuple[tuple[str, str], ...] = ()
        self.gpus = GpuPool(())
        self.usage_interval = 0.0
        self.usage_pending: dict[tuple[str, str], M.TaskUsage] = {}
        self.checkpoint: Any = None
        self.recovered = False
        self._ctag = ""
        self.master_principals: frozenset[str] = frozenset({"master"})
        self.acl: ACL | None = None
        self.allow_root_tasks = False

    # ------------------------------------------------------------------ set-up

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        self.candidates = self.master_candidates(settings)
        self.master = self.candidates[0]
        self.ping_timeouts = setting(settings, "master_ping_timeouts", int, 6)
        self.work_dir = setting(settings, "work_dir", str, "/tmp/impresario")
        self.backoff = setting(settings, "registration_backoff", float, 1.0)
        self.retry_min = setting(settings, "status_update_retry_min", float, RETRY_MIN)
        self.retry_max = setting(settings, "status_update_retry_max", float, RETRY_MAX)
        discovered = None
        if "discovery" in self.ports:
            discovered = self.ports["discovery"]()
            if not isinstance(discovered, Discovered):
                raise ConfigError("the discovery port returned something else than Discovered")
        resources = discovered.resources if discovered else Resources()
        override = settings.get("resources")
        if override:
            try:
                given = Resources.parse(override) if isinstance(override, str) else Resources(
                    {k: v for k, v in override.items() if not isinstance(v, list)},
                    {k: v for k, v in override.items() if isinstance(v, list)})
            except (ValueError, TypeError) as e:
                raise ConfigError(f"resources: {e}") from None
            # As Mesos' --resources: a name given replaces what was discovered.
            resources = resources.without(given.names()) + given
        if resources.is_empty():
            raise ConfigError("the agent has no resources to offer")
        self.gpus = self._gpu_pool(resources, discovered)
        hostname = setting(settings, "hostname", str, discovered.hostname if discovered else "localhost")
        attributes = tuple(sorted((str(k), str(v)) for k, v in setting(settings, "attributes", dict, {}).items()))
        self.info = M.AgentInfo(hostname, resources, attributes)
        ex_ports = setting(settings, "executor_ports", list, [])
        try:
            self.executor_ports = tuple((str(a), str(b)) for a, b in ex_ports)
        except (TypeError, ValueError):
            raise ConfigError("executor_ports must be a list of [name, path] pairs") from None
        self.executor_settings = {
            # (principal, secrets_file: an executor's auth port signs as its agent)
            k: settings[k] for k in ("kill_tasks_on_exit", "output_tail_bytes", "seed",
                                     "kill_grace_seconds", "containerizer", "usage_interval",
                                     "principal", "secrets_file")
            if k in settings
        }
        self.executor_settings["work_dir"] = self.work_dir
        self.usage_interval = setting(settings, "usage_interval", float, 0.0)
        # Mesos' executor_registration_timeout: an executor that never subscribes (its process
        # died at start, or its configuration answer was lost) fails its tasks.
        self.executor_registration_timeout = setting(settings, "executor_registration_timeout", float, 60.0)
        self._unsubscribed: deque[tuple[float, tuple[str, str], ExecRec]] = deque()
        self.checkpoint = self.ports.get("checkpoint")
        self.master_principals = frozenset(str(p) for p in setting(settings, "master_principals", list, ["master"]))
        self.allow_root_tasks = setting(settings, "allow_root_tasks", bool, False)
        if settings.get("acls") is not None:
            try:
                self.acl = ACL.parse(settings["acls"])
            except ACLError as e:
                raise ConfigError(str(e)) from None

    def _gpu_pool(self, resources: Resources, discovered: Discovered | None) -> GpuPool:
        n = resources.millis("gpus") // 1000
        devices = discovered.details.get("gpus", []) if discovered else []
        if not devices:
            if n:
                self.log.warning("agent %s offers %d gpus that no discovered device backs: tasks get GPU "
                                 "numbers, not devices", self.name, n)
            return GpuPool.unbacked(n)
        if n > len(devices):
            raise ConfigError(f"the agent offers {n} gpus but discovered only {len(devices)}")
        try:
            return GpuPool(sorted(devices, key=lambda d: int(d["index"]))[:n])
        except (KeyError, TypeError, ValueError):
            raise ConfigError("discovered GPUs need an index and a minor number") from None

    def started(self) -> None:
        # A fresh value at every start: a master that sees a new one at a known address
        # knows the agent restarted.
        # The clock makes it differ between starts (the random stream is seeded by name).
        self._ctag = f"{int(self.now() * 1e6) % 2**32:08x}{self.rng.getrandbits(16):04x}"
        self.incarnation = f"{self.now():.6f}-{self._ctag}"
        if self.checkpoint is not None:
            self._recover()
        self._register()

    def _register(self) -> None:
        assert self.master is not None and self.info is not None
        if self.agent_id:
            info = M.AgentInfo(self.info.hostname, self.info.resources, self.info.attributes,
                               self.agent_id, self.info.capabilities)
            self.tell(self.master, M.ReregisterAgent(info, tuple(self.frameworks.values()),
                                                     self._executor_infos(), self._agent_tasks(),
                                                     "0.1.0", self.incarnation))
        else:
            self.tell(self.master, M.RegisterAgent(self.info, "0.1.0", self.incarnation))
        self._register_attempts += 1
        # Mesos: random in [0, b * 2^n], capped at a minute.
        cap = min(60.0, self.backoff * 2 ** min(self._register_attempts, 16))
        self.set_timer("register", self.backoff + self.rng.uniform(0, cap))

    def timer_register(self) -> None:
        if not self.registered and not self.refused:
            if self._register_attempts and len(self.candidates) > 1:
                self._candidate = (self._candidate + 1) % len(self.candidates)
                self.master = self.candidates[self._candidate]
            self._register()

    def _master_changed(self, master: ActorAddress, master_id: str, why: str) -> None:
        """Another master (or the same one, restarted) leads: re-register with it after a
        random delay, so that a whole cluster does not arrive at once."""
        if not self.registered and master == self.master and self.timer_pending("register") \
                and self.master_id == master_id:
            return  # on it already
        self.log.info("agent %s: %s; re-registering", self.name, why)
        self.stats["master_changes"] += 1
        self.registered = False
        self.master = master
        if master in self.candidates:
            self._candidate = self.candidates.index(master)
        self.master_id = master_id
        self._register_attempts = 0
        self.cancel_timer("watch")
        self.set_timer("register", self.rng.uniform(0, self.backoff))

    def following_master(self) -> bool:
        return self.registered

    def look_for_master_now(self) -> None:
        if not self.refused:
            self._register_attempts = 0
            self._register()

    def _adopt_candidate(self, master: ActorAddress) -> None:
        self.stats["masters_adopted"] += 1
        self.candidates[self._candidate] = master

    def timer_watch(self) -> None:
        if not self.registered or self.refused:
            return
        timeout = self.ping_interval * self.ping_timeouts
        idle = self.now() - self.last_ping_at
        if idle < timeout - 1e-9:
            self.set_timer("watch", timeout - idle)
            return
        self.log.warning("agent %s: no ping from the master for %.0f s; re-registering", self.name, idle)
        self.stats["master_lost"] += 1
        self.registered = False
        self._register_attempts = 0
        if len(self.candidates) > 1:
            self._candidate = (self._candidate + 1) % len(self.candidates)
            self.master = self.candidates[self._candidate]
        self._register()

    def _executor_infos(self) -> tuple[M.ExecutorInfo, ...]:
        return tuple(e.info for _, e in sorted(self.executors.items()) if not e.info.resources.is_empty())

    def _agent_tasks(self) -> tuple[M.AgentTask, ...]:
        out = []
        for (fid, eid), e in sorted(self.executors.items()):
            for tid, task in sorted(e.tasks.items()):
                out.append(M.AgentTask(fid, eid, task, e.states.get(tid, TS.TASK_STAGING)))
        # Ended tasks whose executors are gone, their last updates not yet acknowledged.
        for (fid, tid), stream in sorted(self.streams.items()):
            if stream.task is not None and stream.pending and (fid, tid) not in self.task_index:
                last = stream.pending[-1].status
                out.append(M.AgentTask(fid, last.executor_id or tid, stream.task, last.state))
        return tuple(out)

    def _from_master(self, sender: ActorAddress, what: str) -> bool:
        if sender != self.master:
            self.drop(f"{what} not from the master", sender)
            return False
        if self._open is not None and self.peer_principal not in self.master_principals:
            self._not_a_master(what, sender)
            return False
        return True

    def _not_a_master(self, what: str, sender: ActorAddress) -> None:
        self.stats["calls_wrong_principal"] += 1
        self.drop(f"{what} from principal {self.peer_principal!r}, not a master's", sender)

    @handles(M.AgentRegistered, M.AgentReregistered)
    def _registered(self, m: M.AgentRegistered | M.AgentReregistered, sender: ActorAddress) -> None:
        if not self._from_master(sender, type(m).__name__):
            return
        if self.agent_id and m.agent_id != self.agent_id:
            self.drop(f"registered as {m.agent_id} but this agent is {self.agent_id}", sender)
            return
        first = not self.registered
        if not first and m.master_id == self.master_id:
            return  # an answer to a retry
        if self.agent_id and not first:
            self.stats["master_changes"] += 1
        again = bool(self.agent_id)
        if self.checkpoint is not None and (m.agent_id != self.agent_id or m.master_id != self.master_id
                                            or not again):
            self.checkpoint.put("agent", M.AgentCheckpoint(m.agent_id, m.master_id))
        self.agent_id = m.agent_id
        self.master_id = m.master_id
        self.ping_interval = m.ping_interval_seconds
        self.registered = True
        self.last_ping_at = self.now()
        self.cancel_timer("register")
        self.set_timer("watch", self.ping_interval * self.ping_timeouts)
        if again:
            self.reregistrations += 1
        else:
            self.log.info("agent %s registered as %s", self.name, self.agent_id)
        # Anything queued while unregistered (or sent to a master that is gone) goes out now.
        for key in sorted(self.streams):
            stream = self.streams[key]
            stream.interval = self.retry_min
            self._send_head(key)

    @handles(M.AgentRefused)
    def _refused(self, m: M.AgentRefused, sender: ActorAddress) -> None:
        if self.registered:
            # It answers a registration: this agent is registered, and has made none since.
            self.drop("AgentRefused while registered", sender)
            return
        if self._from_master(sender, "AgentRefused"):
            self.refused = m.message
            self.cancel_timer("register")
            self.log.error("agent %s: the master refused registration: %s", self.name, m.message)

    @handles(M.Ping)
    def _ping(self, m: M.Ping, sender: ActorAddress) -> None:
        if self._open is not None and self.peer_principal not in self.master_principals:
            # Only a master's principal is followed: nobody else can call this agent over.
            self._not_a_master("Ping", sender)
            return
        current = sender == self.master   # one comparison: the health check is the hottest message
        if not current and sender not in self.candidates:
            if not m.master_id or m.master_id == self.master_id:
                self.drop("Ping not from a master", sender)
                return
            # A master restarted elsewhere (on a real host its actor has a new address) or a
            # standby not in the list calls this agent back; it takes the place of the one
            # this agent followed.
            self._adopt_candidate(sender)
        if not current or not m.connected or (self.master_id and m.master_id != self.master_id):
            if self.refused:
                return
            why = "the master does not know this agent" if not m.connected else f"master {m.master_id} leads"
            self._master_changed(sender, m.master_id, why)
            return
        self.last_ping_at = self.now()
        if self._pong_for != self.agent_id:
            self._pong_for, self._pong_bytes = self.agent_id, encode(M.Pong(self.agent_id))
        self.tell_encoded(sender, self._pong_bytes)

    # ------------------------------------------------------------------ launching

    def _check_launch(self, sender: ActorAddress, what: str, framework: M.FrameworkInfo,
                      tasks: tuple[M.TaskInfo, ...]) -> bool:
        if not self._from_master(sender, what):
            return False
        if not self.registered:
            self.drop(f"{what} before registration", sender)
            return False
        if not framework.id:
            self.drop(f"{what} without a framework id", sender)
            return False
        for t in tasks:
            if t.agent_id != self.agent_id:
                self.drop(f"{what}: task {t.task_id} is for agent {t.agent_id}", sender)
                return False
            if (framework.id, t.task_id) in self.task_index or (framework.id, t.task_id) in self.streams:
                self.stats["launches_known"] += 1   # a launch the master sent again
                return False
        return True

    def _start_executor(self, fid: str, info: M.ExecutorInfo, actor_class: str,
                        container_id: str = "") -> ExecRec:
        if not container_id:
            self._next_container += 1
            container_id = f"c{self._next_container}"
            if self.checkpoint is not None:
                container_id += "-" + self._ctag   # unique across this agent's restarts
        addr = self.createActor(actor_class)
        text = self.address_text(addr)
        rec = ExecRec(fid, info, addr, text, container_id, default=actor_class == DEFAULT_EXECUTOR)
        self.executors[(fid, info.executor_id)] = rec
        self.exec_by_addr[text] = (fid, info.executor_id)
        settings = dict(self.executor_settings)
        # Only a refused configuration is answered: the executor's ExecSubscribe says it is up.
        settings.update(framework_id=fid, executor_id=info.executor_id, agent_id=self.agent_id,
                        container_id=container_id, acknowledge_configuration=False)
        if self.checkpoint is not None:
            settings["update_prefix"] = f"{container_id}~{self._ctag}"
        ports = tuple((n, p) for n, p in self.port_paths if n in ("clock", "addresses")) + self.executor_ports
        self.tell(addr, M.Configure("executor", f"{self.agent_id}/{fid}/{info.executor_id}", settings, ports))
        timeout = self.executor_registration_timeout
        self._unsubscribed.append((self.now() + timeout, (fid, info.executor_id), rec))
        if not self.timer_pending("executor_registration"):
            self.set_timer("executor_registration", timeout)
        return rec

    @handles(M.RunTask)
    def _run_task(self, m: M.RunTask, sender: ActorAddress) -> None:
        task = m.task
        if not self._check_launch(sender, "RunTask", m.framework, (task,)):
            return
        fid = m.framework.id
        if self._users_refused(m.framework, (task,), task.task_id, Reason.REASON_TASK_UNAUTHORIZED):
            return
        self._know_framework(m.framework)
        key = (fid, task.task_id)
        if key in self.executors:
            self.drop(f"RunTask: an executor {task.task_id} exists already", sender)
            return
        gpus = self._take_gpus(fid, (task,), task.task_id)
        if gpus is None:
            return
        info = M.ExecutorInfo(task.task_id, fid, M.ExecutorType.COMMAND, Resources(), f"command executor for {task.task_id}")
        rec = self._start_executor(fid, info, COMMAND_EXECUTOR)
        rec.tasks[task.task_id] = task
        rec.states[task.task_id] = TS.TASK_STAGING
        rec.gpus = gpus
        self.task_index.add((fid, task.task_id))
        self._save_executor(rec)
        self.tell(rec.address, M.ExecLaunch(_as_user(task, m.framework.user), gpus))

    def _users_refused(self, framework: M.FrameworkInfo, tasks: tuple[M.TaskInfo, ...], executor_id: str,
                       reason: Reason) -> bool:
        """Defence in depth: tasks this agent will not run as their user fail (TASK_ERROR),
        every task of the launch with them.  Root needs ``allow_root_tasks``; with an
        ``acls`` setting, its ``run_tasks`` rules decide instead (root only where named)."""
        why = None
        for task in tasks:
            user = _user_of(framework, task)
            if self.acl is not None:
                decision = self.acl.check(RUN_TASKS, framework.principal or None, user)
                if not decision:
                    why = f"task {task.task_id}: refused by this agent's ACL: {decision.reason}"
            elif user == ROOT and not self.allow_root_tasks:
                why = f"task {task.task_id}: this agent does not run tasks as root (allow_root_tasks is off)"
            if why:
                break
        if why is None:
            return False
        self.stats["tasks_refused_user"] += len(tasks)
        self.log.warning("agent %s: %s", self.name, why)
        for task in tasks:
            self._agent_update(framework.id, M.TaskStatus(
                task.task_id, TS.TASK_ERROR, Source.SOURCE_AGENT, reason, why, self.agent_id,
                executor_id, self.now()))
        return True

    def _take_gpus(self, fid: str, tasks: tuple[M.TaskInfo, ...], executor_id: str) -> tuple[M.AssignedGpu, ...] | None:
        """Whole GPUs for every task, or none at all: then the tasks fail, and None."""
        out: list[M.AssignedGpu] = []
        for task in tasks:
            got = self.gpus.take(fid, task.task_id, task.resources.millis("gpus") // 1000)
            if got is None:
                for t in tasks:
                    self.gpus.give_back(fid, t.task_id)
                for t in tasks:
                    self._agent_update(fid, M.TaskStatus(
                        t.task_id, TS.TASK_FAILED, Source.SOURCE_AGENT, Reason.REASON_CONTAINER_LAUNCH_FAILED,
                        f"not enough free GPUs on this agent for task {task.task_id}", self.agent_id,
                        executor_id, self.now()))
                return None
            out.extend(got)
        return tuple(out)

    @handles(M.RunTaskGroup)
    def _run_task_group(self, m: M.RunTaskGroup, sender: ActorAddress) -> None:
        if not self._check_launch(sender, "RunTaskGroup", m.framework, m.task_group):
            return
        fid = m.framework.id
        if self._users_refused(m.framework, m.task_group, m.executor.executor_id,
                               Reason.REASON_TASK_GROUP_UNAUTHORIZED):
            return
        self._know_framework(m.framework)
        rec = self.executors.get((fid, m.executor.executor_id))
        if rec is not None and rec.exiting:
            # The executor is on its way out: these tasks cannot join it.
            for task in m.task_group:
                self._agent_update(fid, M.TaskStatus(
                    task.task_id, TS.TASK_LOST, Source.SOURCE_AGENT, Reason.REASON_EXECUTOR_TERMINATED,
                    f"executor {m.executor.executor_id} is terminating", self.agent_id,
                    m.executor.executor_id, self.now()))
            return
        gpus = self._take_gpus(fid, m.task_group, m.executor.executor_id)
        if gpus is None:
            return
        if rec is None:
            rec = self._start_executor(fid, m.executor, DEFAULT_EXECUTOR)
        group = max(rec.groups.values(), default=0) + 1
        for task in m.task_group:
            rec.tasks[task.task_id] = task
            rec.states[task.task_id] = TS.TASK_STAGING
            rec.groups[task.task_id] = group
            self.task_index.add((fid, task.task_id))
        rec.gpus = rec.gpus + gpus
        self._save_executor(rec)
        self.tell(rec.address, M.ExecLaunchGroup(m.executor, tuple(_as_user(t, m.framework.user)
                                                                for t in m.task_group), gpus))

    @handles(M.KillTask)
    def _kill_task(self, m: M.KillTask, sender: ActorAddress) -> None:
        if not self._from_master(sender, "KillTask"):
            return
        for (fid, _), rec in sorted(self.executors.items()):
            if fid == m.framework_id and m.task_id in rec.tasks:
                if not rec.states[m.task_id].terminal:
                    self.tell(rec.address, M.ExecKill(m.task_id, m.grace_seconds))
                return
        # Unknown here: say so reliably, so the framework does not wait for it.
        self._agent_update(m.framework_id, M.TaskStatus(
            m.task_id, TS.TASK_LOST, Source.SOURCE_AGENT, Reason.REASON_TASK_UNKNOWN,
            "the agent has no such task", self.agent_id, "", self.now()))

    @handles(M.ShutdownExecutor)
    def _shutdown_executor(self, m: M.ShutdownExecutor, sender: ActorAddress) -> None:
        if self._from_master(sender, "ShutdownExecutor"):
            rec = self.executors.get((m.framework_id, m.executor_id))
            if rec is not None:
                self.tell(rec.address, M.ExecShutdown(None))

    @handles(M.ShutdownFramework)
    def _shutdown_framework(self, m: M.ShutdownFramework, sender: ActorAddress) -> None:
        if not self._from_master(sender, "ShutdownFramework"):
            return
        for (fid, _), rec in sorted(self.executors.items()):
            if fid == m.framework_id:
                self.tell(rec.address, M.ExecShutdown(None))
        for key in [k for k in self.streams if k[0] == m.framework_id]:
            del self.streams[key]  # nobody is left to acknowledge these
            self._save_stream(key)
        if self.frameworks.pop(m.framework_id, None) is not None and self.checkpoint is not None:
            self.checkpoint.delete("fw/" + m.framework_id)

    @handles(M.FrameworkToExecutor)
    def _to_executor(self, m: M.FrameworkToExecutor, sender: ActorAddress) -> None:
        if self._from_master(sender, "FrameworkToExecutor"):
            rec = self.executors.get((m.framework_id, m.executor_id))
            if rec is None:
                self.drop(f"message for unknown executor {m.executor_id}", sender)
            else:
                self.tell(rec.address, M.ExecMessage(m.data))

    # ------------------------------------------------------------------ from executors

    def _executor_from(self, sender: ActorAddress, what: str,
                       claimed: tuple[str, str] | None = None) -> ExecRec | None:
        if self._open is not None and self.peer_principal != self.ports["auth"].principal:
            # An executor signs as its agent: anyone else speaking for one is dropped.
            self.stats["calls_wrong_principal"] += 1
            self.drop(f"{what} from principal {self.peer_principal!r}, not this agent's executors'", sender)
            return None
        text = self.address_text(sender)
        key = self.exec_by_addr.get(text)
        if key is None and claimed is not None and claimed in self.executors:
            # The executor's first words: createActor gave us a placeholder address,
            # this is its real one.
            key = claimed
            first = self.executors[key]
            if not first.bound:
                first.address, first.addr_text, first.bound = sender, text, True
                self.exec_by_addr[text] = key
        rec = self.executors.get(key) if key is not None else None
        if rec is None:
            self.drop(f"{what} from an unknown executor", sender)
        return rec

    @handles(M.Configured)
    def _executor_configured(self, m: M.Configured, sender: ActorAddress) -> None:
        fid, _, eid = m.name.removeprefix(f"{self.agent_id}/").partition("/")
        rec = self._executor_from(sender, "Configured", (fid, eid))
        if rec is None or not m.error:
            return
        for tid in sorted(rec.tasks):
            if not rec.states[tid].terminal:
                self._fail_task(rec, tid, Reason.REASON_CONTAINER_LAUNCH_FAILED,
                                f"the executor could not start: {m.error}")
        self._stop_executor(rec)

    @handles(M.ExecSubscribe)
    def _exec_subscribe(self, m: M.ExecSubscribe, sender: ActorAddress) -> None:
        rec = self._executor_from(sender, "ExecSubscribe", (m.framework_id, m.executor_id))
        if rec is None:
            return
        rec.subscribed = True
        if m.unacknowledged_updates:
            # A re-subscription (after an agent restart) carries what the agent had not
            # taken in charge; it is answered, and the updates go on as if just sent.
            self.tell(sender, M.ExecSubscribed(rec.framework_id, rec.info.executor_id, self.agent_id))
            for status in m.unacknowledged_updates:
                self._exec_update(M.ExecUpdate(status), sender)

    @handles(M.ExecUpdate)
    def _exec_update(self, m: M.ExecUpdate, sender: ActorAddress) -> None:
        rec = self._executor_from(sender, "ExecUpdate")
        if rec is None:
            return
        status = m.status
        tid = status.task_id
        if tid not in rec.tasks:
            self.drop(f"update for task {tid}, which is not this executor's", sender)
            return
        if not status.uuid:
            self.drop(f"update for task {tid} without a uuid", sender)
            return
        if status.uuid in rec.seen or rec.states[tid].terminal:
            self.stats["duplicate_updates"] += 1
            self.tell(sender, M.ExecAcknowledged(tid, status.uuid))
            return
        rec.seen.add(status.uuid)
        rec.states[tid] = status.state
        if status.state.terminal:
            self.gpus.give_back(rec.framework_id, tid)
            self.usage_pending.pop((rec.framework_id, tid), None)
            self._save_executor(rec)
        self._enqueue(rec.framework_id, status, rec.tasks[tid])
        # Taken in charge (checkpointed, where there is a checkpoint): the executor may forget it.
        self.tell(sender, M.ExecAcknowledged(tid, status.uuid))
        if status.state.terminal and all(s.terminal for s in rec.states.values()):
            self._stop_executor(rec)

    @handles(M.ExecMessage)
    def _exec_message(self, m: M.ExecMessage, sender: ActorAddress) -> None:
        rec = self._executor_from(sender, "ExecMessage")
        if rec is not None and self.master is not None and self.registered:
            self.tell(self.master, M.ExecutorToFramework(self.agent_id, rec.framework_id,
                                                         rec.info.executor_id, m.data))

    @handles(M.ExecUsage)
    def _exec_usage(self, m: M.ExecUsage, sender: ActorAddress) -> None:
        rec = self._executor_from(sender, "ExecUsage")
        if rec is None:
            return
        for u in m.usages:
            if u.task_id in rec.tasks and u.framework_id == rec.framework_id \
                    and not rec.states[u.task_id].terminal:
                self.usage_pending[(u.framework_id, u.task_id)] = u
        if self.usage_pending and not self.timer_pending("usage"):
            self.set_timer("usage", self.usage_interval)

    def timer_usage(self) -> None:
        if not self.registered or self.master is None:
            if self.usage_pending:
                self.set_timer("usage", max(self.usage_interval, 1.0))
            return
        if self.usage_pending:
            usages = tuple(self.usage_pending[k] for k in sorted(self.usage_pending))
            self.usage_pending.clear()
            self.tell(self.master, M.UsageReport(self.agent_id, usages))

    def _fail_task(self, rec: ExecRec, tid: str, reason: Reason, message: str) -> None:
        rec.states[tid] = TS.TASK_FAILED
        self.gpus.give_back(rec.framework_id, tid)
        self._agent_update(rec.framework_id, M.TaskStatus(
            tid, TS.TASK_FAILED, Source.SOURCE_AGENT, reason, message, self.agent_id,
            rec.info.executor_id, self.now()))

    def timer_executor_registration(self) -> None:
        now = self.now()
        q = self._unsubscribed
        while q and q[0][0] <= now + 1e-9:
            _, key, rec = q.popleft()
            if self.executors.get(key) is not rec or rec.subscribed or rec.exiting:
                continue
            self.stats["executor_registration_timeouts"] += 1
            self.log.warning("agent %s: executor %s did not register within %.0f s", self.name, key[1],
                             self.executor_registration_timeout)
            for tid in sorted(rec.tasks):
                if not rec.states[tid].terminal:
                    self._fail_task(rec, tid, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                                    f"the executor did not register within "
                                    f"{self.executor_registration_timeout:.0f} s")
            self._stop_executor(rec)
        if q:
            self.set_timer("executor_registration", max(0.0, q[0][0] - now))

    def _stop_executor(self, rec: ExecRec) -> None:
        if not rec.exiting:
            rec.exiting = True
            self.send(rec.address, ActorExitRequest())

    def on_child_exited(self, child: ActorAddress) -> None:
        key = self.exec_by_addr.get(self.address_text(child))
        if key is None:
            key = next((k for k, r in self.executors.items() if r.address == child), None)
        if key is None:
            return
        rec = self.executors.pop(key)
        if self.checkpoint is not None:
            self.checkpoint.delete(f"ex/{key[0]}/{key[1]}")
        for tid in rec.tasks:
            self.task_index.discard((rec.framework_id, tid))
        for text in [t for t, k in self.exec_by_addr.items() if k == key]:
            del self.exec_by_addr[text]
        abnormal = False
        for tid in sorted(rec.tasks):
            if not rec.states[tid].terminal:
                abnormal = True
                self._fail_task(rec, tid, Reason.REASON_EXECUTOR_TERMINATED,
                                "the executor terminated before its task")
        if self.registered and self.master is not None and (abnormal or not rec.info.resources.is_empty()):
            self.tell(self.master, M.ExitedExecutor(self.agent_id, rec.framework_id,
                                                    rec.info.executor_id, 1 if abnormal else 0))

    # ------------------------------------------------------------------ status update streams

    def _agent_update(self, fid: str, status: M.TaskStatus) -> None:
        self._next_update += 1
        uuid = f"{self.agent_id or self.name}-u{self._next_update}"
        self._enqueue(fid, M.TaskStatus(status.task_id, status.state, status.source, status.reason,
                                        status.message, status.agent_id, status.executor_id,
                                        status.timestamp, uuid, status.data, status.container_status,
                                        status.labels))

    def _enqueue(self, fid: str, status: M.TaskStatus, task: M.TaskInfo | None = None) -> None:
        key = (fid, status.task_id)
        stream = self.streams.get(key)
        if stream is None:
            if task is None:
                rec = self.executors.get((fid, status.executor_id))
                task = rec.tasks.get(status.task_id) if rec is not None else None
            stream = self.streams[key] = Stream(interval=self.retry_min, task=task)
        stream.pending.append(M.StatusUpdate(fid, status))
        self._save_stream(key)
        if len(stream.pending) == 1:
            self._send_head(key)

    def _send_head(self, key: tuple[str, str]) -> None:
        stream = self.streams.get(key)
        if stream is None or not stream.pending or not self.registered or self.master is None:
            return
        head = stream.pending[0]
        latest = stream.pending[-1].status.state
        self.tell(self.master, M.StatusUpdate(head.framework_id, head.status, latest))
        stream.sent_at = self.now()
        if not self.timer_pending("retry"):
            self.set_timer("retry", stream.interval)

    @handles(M.StatusUpdateAck)
    def _ack(self, m: M.StatusUpdateAck, sender: ActorAddress) -> None:
        if not self._from_master(sender, "StatusUpdateAck"):
            return
        key = (m.framework_id, m.task_id)
        stream = self.streams.get(key)
        if stream is None or not stream.pending or stream.pending[0].status.uuid != m.uuid:
            self.stats["stale_acks"] += 1  # a duplicate, or for an update no longer at the head
            return
        stream.pending.popleft()
        if stream.pending:
            stream.interval = self.retry_min
            self._send_head(key)
        else:
            del self.streams[key]
        self._save_stream(key)

    def timer_retry(self) -> None:
        now = self.now()
        soonest = None
        for key in sorted(self.streams):
            stream = self.streams[key]
            if not stream.pending:
                continue
            due = stream.sent_at + stream.interval
            if due <= now + 1e-9:
                self.stats["update_retries"] += 1
                stream.interval = min(stream.interval * 2, self.retry_max)
                self._send_head(key)
                due = now + stream.interval
            soonest = due if soonest is None else min(soonest, due)
        if soonest is not None:
            self.set_timer("retry", max(0.0, soonest - now))

    # ------------------------------------------------------------------ checkpoints and recovery

    def _know_framework(self, info: M.FrameworkInfo) -> None:
        if self.frameworks.get(info.id) != info:
            self.frameworks[info.id] = info
            if self.checkpoint is not None:
                self.checkpoint.put("fw/" + info.id, info)

    def _save_executor(self, rec: ExecRec) -> None:
        if self.checkpoint is None:
            return
        tids = list(rec.tasks)   # in launch order: a nested container is numbered by it
        ck = M.ExecutorCheckpoint(
            rec.framework_id, rec.info, rec.container_id, rec.default, tuple(rec.tasks[t] for t in tids),
            tuple(rec.groups.get(t, 0) for t in tids),
            tuple((t, rec.states[t]) for t in tids if rec.states[t].terminal), rec.gpus)
        self.checkpoint.put(f"ex/{rec.framework_id}/{rec.info.executor_id}", ck)

    def _save_stream(self, key: tuple[str, str]) -> None:
        if self.checkpoint is None:
            return
        stream = self.streams.get(key)
        name = f"up/{key[0]}/{key[1]}"
        if stream is None or not stream.pending:
            self.checkpoint.delete(name)
        else:
            self.checkpoint.put(name, M.UpdatesCheckpoint(tuple(stream.pending), stream.task))

    def _recover(self) -> None:
        """Start again from the checkpoint: the id, the frameworks, the pending updates,
        and the executors - re-created, and re-attached to their tasks' containers."""
        store = self.checkpoint
        records = store.load()
        raw = records.get("agent")
        if raw is None:
            for key in records:      # nothing usable without the agent's own record
                store.delete(key)
            return
        try:
            ac = unpack_value(M.AgentCheckpoint, raw)
        except CodecError as e:
            self.log.error("agent %s: checkpoint unreadable (%s): starting as a new agent", self.name, e)
            for key in records:
                store.delete(key)
            return
        self.agent_id, self.master_id = ac.agent_id, ac.master_id
        executors: list[M.ExecutorCheckpoint] = []
        for key in sorted(records):
            kind = key.partition("/")[0]
            try:
                if kind == "fw":
                    info = unpack_value(M.FrameworkInfo, records[key])
                    self.frameworks[info.id] = info
                elif kind == "ex":
                    executors.append(unpack_value(M.ExecutorCheckpoint, records[key]))
                elif kind == "up":
                    uc = unpack_value(M.UpdatesCheckpoint, records[key])
                    ups = uc.updates
                    if ups:
                        self.streams[(ups[0].framework_id, ups[0].status.task_id)] = Stream(
                            deque(ups), interval=self.retry_min, task=uc.task)
            except CodecError as e:
                self.stats["checkpoint_bad_records"] += 1
                self.log.error("agent %s: checkpoint record %r skipped: %s", self.name, key, e)
        for ck in executors:
            fid = ck.framework_id
            terminal = dict(ck.states)
            recovered: list[M.RecoveredTask] = []
            for task, group in zip(ck.tasks, ck.groups or (0,) * len(ck.tasks), strict=False):
                tid = task.task_id
                state = terminal.get(tid)
                if state is None:
                    stream = self.streams.get((fid, tid))
                    state = stream.pending[-1].status.state if stream else TS.TASK_STAGING
                recovered.append(M.RecoveredTask(task, self._task_container(ck, task), group, state))
            if all(r.state.terminal for r in recovered):
                store.delete(f"ex/{fid}/{ck.info.executor_id}")
                continue
            rec = self._start_executor(fid, ck.info, DEFAULT_EXECUTOR if ck.default else COMMAND_EXECUTOR,
                                       ck.container_id)
            rec.gpus = ck.gpus
            for r in recovered:
                tid = r.task.task_id
                rec.tasks[tid] = r.task
                rec.states[tid] = r.state
                rec.groups[tid] = r.group
                self.task_index.add((fid, tid))
                if not r.state.terminal and not self.gpus.claim(fid, tid, ck.gpus):
                    self.log.error("agent %s: the GPUs of task %s are not free after recovery", self.name, tid)
            self.tell(rec.address, M.ExecRecover(tuple(recovered)))
        self.recovered = True
        self.stats["recovered_executors"] = len(self.executors)
        self.log.info("agent %s: recovered as %s with %d executors and %d pending update streams",
                      self.name, self.agent_id, len(self.executors), len(self.streams))

    @staticmethod
    def _task_container(ck: M.ExecutorCheckpoint, task: M.TaskInfo) -> str:
        if not ck.default:
            return ck.container_id
        # The default executor numbers nested containers in launch order (see DefaultExecutor).
        return f"{ck.container_id}.{[t.task_id for t in ck.tasks].index(task.task_id) + 1}"

    # ------------------------------------------------------------------ views

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "state" and self.configured:
            return {
                "name": self.name, "agent_id": self.agent_id, "registered": self.registered,
                "refused": self.refused,
                "resources": self.info.resources.to_dict() if self.info else {},
                "executors": [
                    {"framework_id": fid, "executor_id": eid, "container_id": e.container_id,
                     "tasks": {t: str(e.states[t]) for t in sorted(e.tasks)}}
                    for (fid, eid), e in sorted(self.executors.items())
                ],
                "pending_updates": sum(len(s.pending) for s in self.streams.values()),
                "gpus": self.gpus.view(),
            }
        return super().query(what, args)


def _user_of(framework: M.FrameworkInfo, task: M.TaskInfo) -> str:
    """The user a task runs as: its command's, else its framework's ("": the agent's own)."""
    return (task.command.user if task.command is not None else "") or framework.user


def _as_user(task: M.TaskInfo, user: str) -> M.TaskInfo:
    """``task`` with its command naming the framework's ``user`` where it names none (what
    the executor's containerizer reads); the task itself if there is nothing to fill in."""
    cmd = task.command
    if not user or cmd is None or cmd.user:
        return task
    return M.TaskInfo(task.task_id, task.name, task.agent_id, task.resources,
                      M.CommandInfo(cmd.value, cmd.shell, cmd.arguments, cmd.environment, user),
                      task.executor, task.labels, task.kill_grace_seconds)
