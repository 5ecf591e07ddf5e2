"""The agent's core: its state, its configuration, and the verbs its handlers share.

The handlers live by area (``registration``, ``launches``, ``executors``, ``streams``,
``recovery``); ``actors.agent`` puts them in one table.  The core sends nothing itself
(see :mod:`actors.core`).  Its host gives it its ports: ``spawn`` (creates an executor
actor and answers its address), ``discovery``, the ``checkpoint`` store, and the actor's
random stream.

Principals: with authentication, the agent follows (and takes master calls from) only
the principals of its ``master_principals`` setting, and its executors' messages only
from its own principal.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.agent import paths
from actors.agent.gpus import GpuPool
from actors.agent.streams import RETRY_MAX, RETRY_MIN, UpdateStream
from actors.config import ConfigError, setting
from actors.core import Core
from actors.following import MasterList, candidates_from
from actors.ports import Addresses, Discovered, Store
from actors.protocol import messages as M
from actors.protocol.messages import TaskState
from actors.protocol.resources import Resources
from actors.security.acl import ACL, ACLError

TS = TaskState
COMMAND_EXECUTOR = "actors.agent.executor.CommandExecutor"
DEFAULT_EXECUTOR = "actors.agent.executor.DefaultExecutor"


@dataclass(slots=True)
class ExecRec:
    """An executor of this agent, and its tasks."""

    framework_id: str
    info: M.ExecutorInfo
    address: Any
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
    statistics: dict[str, M.ResourceStatistics] = field(default_factory=dict)   # task -> its latest usage
    agent_id: str = ""        # the agent's id when it started: with the rest, names its run directory


@dataclass(frozen=True, slots=True)
class CompletedExec:
    """An executor that has exited, as the agent's state shows it (the last
    ``max_completed_executors`` of them are kept)."""

    framework_id: str
    executor_id: str
    container_id: str
    agent_id: str
    tasks: tuple[tuple[str, TaskState], ...]


class AgentCore(Core):
    """The agent's state and shared verbs; its handlers are in the area modules."""

    component = "agent"

    def __init__(self, settings: dict[str, Any], addresses: Addresses, spawn: Callable[[str], Any],
                 rng: random.Random, name: str = "agent", *, discovery: Callable[[], Any] | None = None,
                 checkpoint: Store | None = None,
                 own_principal: str | None = None, port_paths: tuple[tuple[str, str], ...] = (),
                 log: logging.Logger | None = None, stats: Counter[str] | None = None,
                 drops: Counter[str] | None = None) -> None:
        super().__init__(name, log, stats, drops)
        self.addresses = addresses
        #: Creates an executor actor (a dotted class path) and answers its address.
        self.spawn = spawn
        self.rng = rng
        #: The checkpoint store (:class:`~actors.ports.Store`), or None.
        self.checkpoint = checkpoint
        self.own_principal = own_principal
        self.master_id = ""
        self.incarnation = ""
        self.ping_interval = 15.0
        self.last_ping_at = 0.0
        self.reregistrations = 0
        self.agent_id = ""
        self.registered = False
        self.refused = ""
        self.frameworks: dict[str, M.FrameworkInfo] = {}
        self.executors: dict[tuple[str, str], ExecRec] = {}
        self.exec_by_addr: dict[str, tuple[str, str]] = {}
        self.streams: dict[tuple[str, str], UpdateStream] = {}
        self.register_attempts = 0
        self.pong_for: str | None = None
        self.pong_bytes = b""
        self.task_index: set[tuple[str, str]] = set()   # (framework, task) of every task here
        self.next_container = 0
        self.next_update = 0
        self.usage_pending: dict[tuple[str, str], M.TaskUsage] = {}
        # Executors not subscribed yet: (deadline, key, record), oldest first.
        self.unsubscribed: deque[tuple[float, tuple[str, str], ExecRec]] = deque()
        self.restored = False
        self.ctag = ""
        self.acl: ACL | None = None
        self.ended: Counter[TaskState] = Counter()   # terminal states reached here since start
        self.started_at = 0.0
        self.executors_terminated = 0
        self._configure(settings, discovery, port_paths)
        #: The executors that have exited, the newest last (at most ``max_completed_executors``;
        #: a list, lighter than a deque for the many agents of a simulation).
        self.completed_executors: list[CompletedExec] = []

    def _configure(self, settings: dict[str, Any], discovery: Callable[[], Any] | None,
                   port_paths: tuple[tuple[str, str], ...]) -> None:
        self.flags = dict(settings)   # as given (shown by /flags, secrets left out)
        self.masters = MasterList(candidates_from(settings, self.address_of))
        self.ping_timeouts = setting(settings, "master_ping_timeouts", int, 6)
        self.work_dir = setting(settings, "work_dir", str, "/tmp/impresario")
        self.backoff = setting(settings, "registration_backoff", float, 1.0)
        self.retry_min = setting(settings, "status_update_retry_min", float, RETRY_MIN)
        self.retry_max = setting(settings, "status_update_retry_max", float, RETRY_MAX)
        discovered = None
        if discovery is not None:
            discovered = discovery()
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
        self.info = M.AgentInfo(hostname, resources, attributes,
                                http_address=setting(settings, "http_address", str, ""))
        ex_ports = setting(settings, "executor_ports", list, [])
        try:
            executor_ports = tuple((str(a), str(b)) for a, b in ex_ports)
        except (TypeError, ValueError):
            raise ConfigError("executor_ports must be a list of [name, path] pairs") from None
        # An executor shares its agent's clock and addresses, and has ports of its own.
        self.executor_port_paths = tuple((n, p) for n, p in port_paths if n in ("clock", "addresses")) + executor_ports
        self.executor_settings: dict[str, Any] = {
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
        self.master_principals = frozenset(str(p) for p in setting(settings, "master_principals", list, ["master"]))
        self.allow_root_tasks = setting(settings, "allow_root_tasks", bool, False)
        self.max_completed_executors = setting(settings, "max_completed_executors", int, 100)
        if self.max_completed_executors < 0:
            raise ConfigError("max_completed_executors must not be negative")
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

    # ------------------------------------------------------------------ addresses

    def address_text(self, addr: Any) -> str:
        return self.addresses.format(addr)

    def address_of(self, text: str) -> Any:
        return self.addresses.parse(text)

    # ------------------------------------------------------------------ who is asking

    def from_master(self, sender: Any, what: str) -> bool:
        """Whether ``sender`` is the master followed, calling as a master's principal."""
        if sender != self.masters.master:
            self.drop(f"{what} not from the master", sender)
            return False
        if self.authenticates and self.principal not in self.master_principals:
            self.not_a_master(what, sender)
            return False
        return True

    def not_a_master(self, what: str, sender: Any) -> None:
        self.stats["calls_wrong_principal"] += 1
        self.drop(f"{what} from principal {self.principal!r}, not a master's", sender)

    # ------------------------------------------------------------------ executors

    def directory(self, e: ExecRec | CompletedExec) -> str:
        """Where an executor's container runs, its sandboxes with it (``directory`` in the
        agent's state).  Named when asked, from what the record keeps anyway: a string per
        executor would weigh on a simulation of many."""
        return paths.executor_run(self.work_dir, e.agent_id, e.framework_id,
                                  e.info.executor_id if isinstance(e, ExecRec) else e.executor_id, e.container_id)

    def file_completed(self, fid: str, executor_id: str, container_id: str, agent_id: str,
                       tasks: tuple[tuple[str, TaskState], ...]) -> None:
        """An executor has exited: its state view joins the completed ones (the oldest goes
        beyond ``max_completed_executors``)."""
        if self.max_completed_executors:
            done = self.completed_executors
            done.append(CompletedExec(fid, executor_id, container_id, agent_id, tasks))
            if len(done) > self.max_completed_executors:
                del done[0]

    def start_executor(self, fid: str, info: M.ExecutorInfo, actor_class: str, container_id: str = "") -> ExecRec:
        """Create an executor actor and configure it; it has ``executor_registration_timeout``
        seconds to subscribe."""
        if not container_id:
            self.next_container += 1
            container_id = f"c{self.next_container}"
            if self.checkpoint is not None:
                container_id += "-" + self.ctag   # unique across this agent's restarts
        addr = self.spawn(actor_class)
        text = self.address_text(addr)
        rec = ExecRec(fid, info, addr, text, container_id, default=actor_class == DEFAULT_EXECUTOR,
                      agent_id=self.agent_id)
        self.executors[(fid, info.executor_id)] = rec
        self.exec_by_addr[text] = (fid, info.executor_id)
        settings = dict(self.executor_settings)
        # Only a refused configuration is answered: the executor's ExecSubscribe says it is up.
        settings.update(framework_id=fid, executor_id=info.executor_id, agent_id=self.agent_id,
                        container_id=container_id, acknowledge_configuration=False)
        if self.checkpoint is not None:
            settings["update_prefix"] = f"{container_id}~{self.ctag}"
        self.send(addr, M.Configure("executor", f"{self.agent_id}/{fid}/{info.executor_id}", settings,
                                    self.executor_port_paths))
        timeout = self.executor_registration_timeout
        self.unsubscribed.append((self.now + timeout, (fid, info.executor_id), rec))
        if not self.timer_pending("executor_registration"):
            self.set_timer("executor_registration", timeout)
        return rec

    # ------------------------------------------------------------------ views

    def state(self) -> dict[str, Any]:
        """The ``state`` query's answer."""
        return {
            "name": self.name, "agent_id": self.agent_id, "registered": self.registered,
            "refused": self.refused,
            "resources": self.info.resources.to_dict(),
            "executors": [
                {"framework_id": fid, "executor_id": eid, "container_id": e.container_id,
                 "directory": self.directory(e), "tasks": {t: str(e.states[t]) for t in sorted(e.tasks)}}
                for (fid, eid), e in sorted(self.executors.items())
            ],
            "completed_executors": [
                {"framework_id": c.framework_id, "executor_id": c.executor_id, "container_id": c.container_id,
                 "directory": self.directory(c), "tasks": {t: str(s) for t, s in c.tasks}}
                for c in self.completed_executors
            ],
            "pending_updates": sum(len(s.pending) for s in self.streams.values()),
            "gpus": self.gpus.view(),
        }
