"""Executors: they run tasks in containers and report their states.

* :class:`CommandExecutor` runs one command task (Mesos' command executor).
* :class:`DefaultExecutor` receives a task group at once and runs each task
  as a nested container of its own; when a task of a group fails or is
  killed, the rest of that group is killed (Mesos' default executor policy).

An executor supervises its containers from outside through the containerizer
port: the task processes run in their own sessions, so they can outlive the
executor (and the agent) and be re-adopted later: an agent that restarts
re-creates its executors and sends each an ``ExecRecover`` with the tasks it
had; the executor re-attaches to their containers through the containerizer's
``recover`` and reports a task whose container is gone as TASK_LOST.  Status
updates carry a uuid and are kept until the agent acknowledges them; a
container is destroyed only once the agent has taken its task's terminal update
in charge, so a restart in between finds the exit still there to report.

Where the ``usage_interval`` setting is positive (real hosts), the executor
samples its running containers' usage through the containerizer every so
many seconds and sends it to the agent (``ExecUsage``): the raw statistics,
and what the task used - CPU as a rate over the interval, memory resident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorAddress

from actors.agent import paths
from actors.base import KernelActor, handles
from actors.config import ConfigError, setting
from actors.ports import ContainerError, ContainerExit, Containerizer
from actors.protocol import messages as M
from actors.protocol.messages import Reason, Source, TaskState
from actors.protocol.resources import Resources

TS = TaskState
DEFAULT_KILL_GRACE = 3.0
SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}


@dataclass(slots=True)
class ExecTask:
    task: M.TaskInfo
    container_id: str
    group: int
    state: TaskState = TS.TASK_STAGING
    kill_requested: bool = False
    kill_deadline: float | None = None
    sample: tuple[float, float] = (0.0, 0.0)   # (when, cumulative CPU seconds) of the last usage


class Executor(KernelActor):
    component = "executor"

    def __init__(self) -> None:
        super().__init__()
        self.agent: ActorAddress | None = None
        self.framework_id = ""
        self.executor_id = ""
        self.agent_id = ""
        self.container_id = ""
        self.update_prefix = ""
        self.work_dir = ""
        self.kill_on_exit = True
        self.output_tail = 0
        self.default_grace = DEFAULT_KILL_GRACE
        self.usage_interval = 0.0
        self.containerizer: Containerizer | None = None
        self.tasks: dict[str, ExecTask] = {}
        self.by_container: dict[str, str] = {}
        self.unacked: dict[str, M.TaskStatus] = {}
        self._seq = 0
        self._groups = 0
        self._subscriptions = 0

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        self.agent = sender
        self.framework_id = setting(settings, "framework_id", str)
        self.executor_id = setting(settings, "executor_id", str)
        self.agent_id = setting(settings, "agent_id", str)
        self.container_id = setting(settings, "container_id", str)
        # Update uuids must not repeat those of an executor this one replaces (an agent restart).
        self.update_prefix = setting(settings, "update_prefix", str, self.container_id)
        self.work_dir = setting(settings, "work_dir", str, "/tmp/impresario")
        self.kill_on_exit = setting(settings, "kill_tasks_on_exit", bool, True)
        self.output_tail = setting(settings, "output_tail_bytes", int, 0)
        self.default_grace = setting(settings, "kill_grace_seconds", float, DEFAULT_KILL_GRACE)
        self.usage_interval = setting(settings, "usage_interval", float, 0.0)
        if "containerizer" not in self.ports:
            raise ConfigError("an executor needs a containerizer port")
        self.containerizer = self.ports["containerizer"]

    def started(self) -> None:
        assert self.agent is not None
        self.subscribe()
        if self.usage_interval > 0:
            self.set_timer("usage", self.usage_interval)

    def subscribe(self) -> None:
        """(Re)subscribe to the agent, carrying the updates it has not taken in charge."""
        assert self.agent is not None
        self._subscriptions += 1
        self.tell(self.agent, M.ExecSubscribe(self.framework_id, self.executor_id,
                                              tuple(self.unacked[u] for u in sorted(self.unacked))))

    def _from_agent(self, sender: ActorAddress, what: str) -> bool:
        """An executor takes calls from its agent only: its address, and (with an auth port)
        its principal, the one this executor signs as too.  Nobody else can launch a task
        here, past the master's and the agent's checks."""
        if sender != self.agent:
            self.drop(f"{what} not from the agent", sender)
            return False
        if self._open is not None and self.peer_principal != self.ports["auth"].principal:
            self.stats["calls_wrong_principal"] += 1
            self.drop(f"{what} from principal {self.peer_principal!r}, not the agent's", sender)
            return False
        return True

    @handles(M.ExecSubscribed)
    def _subscribed(self, m: M.ExecSubscribed, sender: ActorAddress) -> None:
        if self._from_agent(sender, "ExecSubscribed"):
            self.stats["resubscribed"] += 1

    def sandbox(self, container_id: str) -> str:
        """The sandbox of one of this executor's containers (see :mod:`actors.agent.paths`)."""
        run = paths.executor_run(self.work_dir, self.agent_id, self.framework_id, self.executor_id,
                                 self.container_id)
        return paths.sandbox(run, self.container_id, container_id)

    # ------------------------------------------------------------------ updates

    def _update(self, t: ExecTask, state: TaskState, reason: Reason | None = None, message: str = "",
                data: bytes = b"", container: M.ContainerStatus | None = None) -> None:
        t.state = state
        self._seq += 1
        status = M.TaskStatus(t.task.task_id, state, Source.SOURCE_EXECUTOR, reason, message,
                              self.agent_id, self.executor_id, self.now(),
                              f"{self.update_prefix}-{self._seq}", data, container)
        self.unacked[status.uuid] = status
        assert self.agent is not None
        self.tell(self.agent, M.ExecUpdate(status))

    @handles(M.ExecAcknowledged)
    def _acknowledged(self, m: M.ExecAcknowledged, sender: ActorAddress) -> None:
        if not self._from_agent(sender, "ExecAcknowledged"):
            return
        status = self.unacked.pop(m.uuid, None)
        if status is not None and status.state.terminal and self.containerizer is not None:
            t = self.tasks.get(status.task_id)
            if t is not None:
                self.containerizer.destroy(t.container_id)

    @handles(M.ExecRecover)
    def _exec_recover(self, m: M.ExecRecover, sender: ActorAddress) -> None:
        """Re-attach to the containers of the tasks this executor had before the agent
        restarted."""
        assert self.containerizer is not None
        if not self._from_agent(sender, "ExecRecover"):
            return
        for rt in m.tasks:
            tid = rt.task.task_id
            if tid in self.tasks:
                self.drop(f"task {tid} recovered twice", sender)
                continue
            t = ExecTask(rt.task, rt.container_id, rt.group, rt.state)
            self.tasks[tid] = t
            self.by_container[rt.container_id] = tid
            self._groups = max(self._groups, rt.group)
            if rt.state.terminal:
                continue
            try:
                found = self.containerizer.recover(rt.container_id, rt.task, self.sandbox(rt.container_id))
            except ContainerError as e:
                self.log.warning("executor %s: recovering container %s: %s", self.name, rt.container_id, e)
                found = False
            if not found:
                self.stats["tasks_not_recovered"] += 1
                self._update(t, TS.TASK_LOST, Reason.REASON_EXECUTOR_TERMINATED,
                             "the task's container was not found when its agent restarted")
                continue
            self.stats["tasks_recovered"] += 1
            t.sample = (self.now(), 0.0)
            if rt.state != TS.TASK_RUNNING:
                # Its RUNNING may never have reached the agent's checkpoint: say it (again).
                self._update(t, TS.TASK_RUNNING, message="recovered after an agent restart",
                             container=M.ContainerStatus(rt.container_id))
            else:
                t.state = TS.TASK_RUNNING
        self._arm_reap()

    # ------------------------------------------------------------------ running containers

    def _launch(self, task: M.TaskInfo, container_id: str, group: int,
                gpus: tuple[M.AssignedGpu, ...] = ()) -> bool:
        assert self.containerizer is not None
        if task.task_id in self.tasks:
            self.drop(f"task {task.task_id} launched twice", self.agent)
            return False
        t = ExecTask(task, container_id, group)
        self.tasks[task.task_id] = t
        self.by_container[container_id] = task.task_id
        try:
            launched = self.containerizer.launch(container_id, task, self.sandbox(container_id),
                                                 tuple(g for g in gpus if g.task_id == task.task_id))
        except ContainerError as e:
            self._update(t, TS.TASK_FAILED, e.reason, e.message)
            return False
        t.sample = (self.now(), 0.0)
        container = M.ContainerStatus(container_id, launched.ip_addresses, launched.pid)
        self._update(t, TS.TASK_RUNNING, container=container)
        return True

    def _arm_reap(self) -> None:
        assert self.containerizer is not None
        delay = self.containerizer.next_check()
        if delay is not None:
            self.set_timer("reap", delay)
        else:
            self.cancel_timer("reap")

    def timer_reap(self) -> None:
        assert self.containerizer is not None
        for ex in self.containerizer.reap():
            self._exited(ex)
        self._arm_reap()

    def timer_usage(self) -> None:
        assert self.containerizer is not None and self.agent is not None
        usages = []
        for tid in sorted(self.tasks):
            t = self.tasks[tid]
            if t.state != TS.TASK_RUNNING:
                continue
            stats = self.containerizer.usage(t.container_id)
            if stats is None:
                continue
            cpu = stats.cpus_user_time_secs + stats.cpus_system_time_secs
            when, before = t.sample
            rate = max(0.0, cpu - before) / (stats.timestamp - when) if stats.timestamp > when else 0.0
            t.sample = (stats.timestamp, cpu)
            used = Resources.of(cpus=round(rate, 3), mem=round(stats.mem_rss_bytes / 2**20, 3))
            usages.append(M.TaskUsage(self.framework_id, self.executor_id, tid, stats, used))
        if usages:
            self.tell(self.agent, M.ExecUsage(tuple(usages)))
        self.set_timer("usage", self.usage_interval)

    def _exited(self, ex: ContainerExit) -> None:
        assert self.containerizer is not None
        tid = self.by_container.get(ex.container_id)
        t = self.tasks.get(tid) if tid is not None else None
        if t is None or t.state.terminal:
            return
        data = self.containerizer.output_tail(ex.container_id, self.output_tail) if self.output_tail else b""
        if ex.reason is not None:
            state, reason, message = TS.TASK_FAILED, ex.reason, ex.message
        elif t.kill_requested:
            state, reason, message = TS.TASK_KILLED, None, "killed as requested"
        elif ex.status == 0:
            state, reason, message = TS.TASK_FINISHED, None, "Command exited with status 0"
        else:
            state, reason = TS.TASK_FAILED, Reason.REASON_COMMAND_EXECUTOR_FAILED
            message = _describe_status(ex.status)
        self._update(t, state, reason, message, data)
        if state != TS.TASK_FINISHED:
            self._kill_group(t.group, t.task.task_id)

    def _kill_group(self, group: int, cause: str) -> None:
        """Hook: the default executor kills the rest of a failed group."""

    def _kill(self, t: ExecTask, grace: float | None) -> None:
        assert self.containerizer is not None
        if t.state.terminal:
            return
        if t.state == TS.TASK_STAGING:
            self._update(t, TS.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH, "killed before launch")
            return
        if t.kill_requested:
            return
        t.kill_requested = True
        grace = grace if grace is not None else (t.task.kill_grace_seconds
                                                 if t.task.kill_grace_seconds is not None
                                                 else self.default_grace)
        self.containerizer.kill(t.container_id, hard=grace <= 0)
        if grace > 0:
            t.kill_deadline = self.now() + grace
            self._arm_escalation()
        self._arm_reap()

    def _arm_escalation(self) -> None:
        deadlines = [t.kill_deadline for t in self.tasks.values()
                     if t.kill_deadline is not None and not t.state.terminal]
        if deadlines:
            self.set_timer("escalate", max(0.0, min(deadlines) - self.now()))

    def timer_escalate(self) -> None:
        assert self.containerizer is not None
        now = self.now()
        for t in self.tasks.values():
            if t.kill_deadline is not None and t.kill_deadline <= now + 1e-9 and not t.state.terminal:
                t.kill_deadline = None
                self.containerizer.kill(t.container_id, hard=True)
        self._arm_escalation()
        self._arm_reap()

    @handles(M.ExecKill)
    def _exec_kill(self, m: M.ExecKill, sender: ActorAddress) -> None:
        if not self._from_agent(sender, "ExecKill"):
            return
        t = self.tasks.get(m.task_id)
        if t is None:
            self.drop(f"kill for unknown task {m.task_id}", sender)
            return
        self._kill(t, m.grace_seconds)

    @handles(M.ExecShutdown)
    def _exec_shutdown(self, m: M.ExecShutdown, sender: ActorAddress) -> None:
        if not self._from_agent(sender, "ExecShutdown"):
            return
        for tid in sorted(self.tasks):
            self._kill(self.tasks[tid], m.grace_seconds)

    @handles(M.ExecMessage)
    def _exec_message(self, m: M.ExecMessage, sender: ActorAddress) -> None:
        if self._from_agent(sender, "ExecMessage"):
            self.framework_message(m.data)

    def framework_message(self, data: bytes) -> None:
        """Opaque data from the framework's scheduler (ignored by the built-in executors)."""

    def send_to_framework(self, data: bytes) -> None:
        assert self.agent is not None
        self.tell(self.agent, M.ExecMessage(data))

    def on_exit_request(self) -> None:
        if self.containerizer is not None and self.kill_on_exit:
            self.containerizer.shutdown()

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "state":
            return {"executor_id": self.executor_id, "container_id": self.container_id,
                    "tasks": {tid: str(t.state) for tid, t in sorted(self.tasks.items())}}
        return super().query(what, args)


class CommandExecutor(Executor):
    """Runs one command task."""

    @handles(M.ExecLaunch)
    def _exec_launch(self, m: M.ExecLaunch, sender: ActorAddress) -> None:
        if not self._from_agent(sender, "ExecLaunch"):
            return
        if self.tasks:
            self.drop("a command executor runs one task", sender)
            return
        self._launch(m.task, self.container_id, 0, m.gpus)
        self._arm_reap()


class DefaultExecutor(Executor):
    """Receives task groups atomically; each task runs as a nested container."""

    @handles(M.ExecLaunchGroup)
    def _exec_launch_group(self, m: M.ExecLaunchGroup, sender: ActorAddress) -> None:
        if not self._from_agent(sender, "ExecLaunchGroup"):
            return
        self._groups += 1
        group = self._groups
        dupes = [t.task_id for t in m.task_group if t.task_id in self.tasks]
        if dupes:
            self.drop(f"task group repeats tasks {dupes}", sender)
            return
        n = len(self.tasks)
        ok = True
        for i, task in enumerate(m.task_group):
            if not ok:
                t = ExecTask(task, f"{self.container_id}.{n + i + 1}", group)
                self.tasks[task.task_id] = t
                self._update(t, TS.TASK_KILLED, Reason.REASON_TASK_GROUP_INVALID,
                             "another task of the group failed to launch")
                continue
            ok = self._launch(task, f"{self.container_id}.{n + i + 1}", group, m.gpus)
        if not ok:
            self._kill_group(group, "launch")
        self._arm_reap()

    def _kill_group(self, group: int, cause: str) -> None:
        for tid in sorted(self.tasks):
            t = self.tasks[tid]
            if t.group == group and not t.state.terminal and tid != cause:
                self._kill(t, None)


def _describe_status(status: int | None) -> str:
    if status is None:
        return "Command terminated (status unknown)"
    if status < 0:
        sig = -status
        return f"Command terminated with signal {SIGNAL_NAMES.get(sig, sig)}"
    return f"Command exited with status {status}"
