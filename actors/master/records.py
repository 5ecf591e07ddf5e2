"""What the master knows, as plain records, and the one table that files its tasks.

A task is known three ways at once: by its framework (active, unreachable or
completed), by its agent, and by its executor.  :class:`TaskTable` is the only code
that writes those indices, so they cannot drift apart.
"""

from __future__ import annotations

import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from actors.protocol import messages as M
from actors.protocol.messages import Capability, TaskState
from actors.protocol.resources import EMPTY, Resources


@dataclass(slots=True)
class TaskRec:
    framework_id: str
    task: M.TaskInfo
    agent_id: str
    executor_id: str
    role: str
    resources: Resources
    state: TaskState = TaskState.TASK_STAGING
    status: M.TaskStatus | None = None
    released: bool = False        # resources given back (terminal or unreachable)
    running: bool = False         # counted in the role's "used"
    used: Resources = EMPTY       # what "used" counts for it: measured usage, else its resources
    # Where TaskTable files it, by weak reference (a strong one would make every task a
    # cycle with its agent and framework: a crashed master's state would then wait for the
    # collector instead of going at once):
    counted: Any = None           # ref to the FrameworkRec whose active or unreachable map holds it
    view: Any = None              # its last rendering (actors.master.views.task), with what it showed
    on_agent: Any = None          # ref to the AgentRec whose ``tasks`` hold it, or None

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


@dataclass(slots=True, weakref_slot=True)
class AgentRec:
    id: str
    address: Any
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
    states: dict[TaskState, int] = field(default_factory=dict)   # its tasks by state (TaskTable)
    frameworks: dict[str, int] = field(default_factory=dict)     # its tasks by framework (TaskTable)
    view: Any = None              # its last rendering (actors.master.views.agent), with what it showed
    summary: Any = None           # likewise in /state-summary
    ref: Any = field(default=None, init=False, repr=False, compare=False)   # weakref.ref(self), made once

    def __post_init__(self) -> None:
        self.ref = weakref.ref(self)


@dataclass(slots=True, weakref_slot=True)
class FrameworkRec:
    id: str
    info: M.FrameworkInfo
    address: Any | None
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
    states: dict[TaskState, int] = field(default_factory=dict)   # active and unreachable tasks by state
    used: dict[str, int] = field(default_factory=dict)   # their resources while not terminal (millis)
    removed_at: float | None = None   # torn down or failed over for good (completed frameworks)
    ref: Any = field(default=None, init=False, repr=False, compare=False)   # weakref.ref(self), made once

    def __post_init__(self) -> None:
        self.ref = weakref.ref(self)

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


def _add(into: dict[str, int], res: Resources, sign: int) -> None:
    for k, v in res.scalar_map().items():
        left = into.get(k, 0) + sign * v
        if left:
            into[k] = left
        else:
            into.pop(k, None)


class TaskTable:
    """The only writer of the task indices: a framework's active, unreachable and
    completed tasks, an agent's tasks and executors (and the tasks cut off with it), an
    executor's tasks.  Readers read the records' own maps.

    It also keeps the figures the master's metrics need without a walk over every task:
    ``active`` counts the tasks in frameworks' active and unreachable maps by state, and
    ``ended`` counts every move into a terminal state since the master started (Mesos'
    ``master/tasks_*`` gauges and counters).  Every write of a task's state goes through
    :meth:`set_state`."""

    __slots__ = ("max_completed", "active", "ended")

    def __init__(self, max_completed: int = 1000) -> None:
        self.max_completed = max_completed
        self.active: dict[TaskState, int] = {}
        self.ended: dict[TaskState, int] = {}

    def set_state(self, t: TaskRec, state: TaskState) -> None:
        old = t.state
        if state is old:
            return
        fw = t.counted() if t.counted is not None else None
        if fw is not None:
            active = self.active
            active[old] -= 1
            active[state] = active.get(state, 0) + 1
            states = fw.states
            states[old] -= 1
            states[state] = states.get(state, 0) + 1
            if state.terminal != old.terminal:
                _add(fw.used, t.resources, -1 if state.terminal else 1)
        agent = t.on_agent() if t.on_agent is not None else None
        if agent is not None:
            states = agent.states
            states[old] -= 1
            states[state] = states.get(state, 0) + 1
        if state.terminal and not old.terminal:
            self.ended[state] = self.ended.get(state, 0) + 1
        t.state = state

    def _count(self, fw: FrameworkRec, t: TaskRec) -> None:
        if t.counted is None:
            t.counted = fw.ref
            self.active[t.state] = self.active.get(t.state, 0) + 1
            fw.states[t.state] = fw.states.get(t.state, 0) + 1
            if not t.state.terminal:
                _add(fw.used, t.resources, 1)

    def _uncount(self, t: TaskRec | None) -> None:
        if t is not None and t.counted is not None:
            fw = t.counted()
            if fw is not None:
                fw.states[t.state] -= 1
                if not t.state.terminal:
                    _add(fw.used, t.resources, -1)
            t.counted = None
            self.active[t.state] -= 1

    @staticmethod
    def _onto(agent: AgentRec, key: tuple[str, str], t: TaskRec) -> None:
        old = agent.tasks.get(key)
        if old is t:
            return
        if old is not None:
            TaskTable._off(agent, key)
        held = t.on_agent() if t.on_agent is not None else None
        if held is not None:
            TaskTable._off(held, key)
        agent.tasks[key] = t
        t.on_agent = agent.ref
        agent.states[t.state] = agent.states.get(t.state, 0) + 1
        agent.frameworks[key[0]] = agent.frameworks.get(key[0], 0) + 1

    @staticmethod
    def _off(agent: AgentRec, key: tuple[str, str]) -> None:
        t = agent.tasks.pop(key, None)
        if t is not None and t.on_agent is agent.ref:
            t.on_agent = None
            agent.states[t.state] -= 1
            left = agent.frameworks[key[0]] - 1
            if left:
                agent.frameworks[key[0]] = left
            else:
                del agent.frameworks[key[0]]

    def recount(self, frameworks: Any) -> dict[TaskState, int]:
        """``active`` counted again from the frameworks' maps (for tests: it must equal
        ``active`` without its zeros)."""
        out: dict[TaskState, int] = {}
        for fw in frameworks:
            for t in [*fw.tasks.values(), *fw.unreachable.values()]:
                out[t.state] = out.get(t.state, 0) + 1
        return out

    def place(self, fw: FrameworkRec, agent: AgentRec, t: TaskRec, executor: ExecutorRec | None = None) -> None:
        """``t`` runs on ``agent`` (launched, or reported by a re-registering agent)."""
        old = fw.tasks.get(t.task_id)
        if old is not t:
            self._uncount(old)
            fw.tasks[t.task_id] = t
            self._count(fw, t)
        self._onto(agent, (fw.id, t.task_id), t)
        if executor is not None:
            executor.tasks.add(t.task_id)

    def finish(self, fw: FrameworkRec, agent: AgentRec | None, t: TaskRec) -> None:
        """``t`` left its agent for good: into the completed list."""
        self._uncount(fw.tasks.pop(t.task_id, None))
        if agent is not None:
            self._off(agent, (fw.id, t.task_id))
            ex = agent.executors.get((fw.id, t.executor_id))
            if ex is not None:
                ex.tasks.discard(t.task_id)
        self.complete(fw, t)

    def complete(self, fw: FrameworkRec, t: TaskRec) -> None:
        """Into the completed list (no longer active or unreachable), which keeps the newest
        ``max_completed``."""
        self._uncount(t)
        fw.completed.append(t)
        fw.completed_ids.add(t.task_id)
        while len(fw.completed) > self.max_completed:
            old = fw.completed.popleft()
            fw.completed_ids.discard(old.task_id)

    def leave(self, fw: FrameworkRec, t: TaskRec) -> None:
        """No longer active for its framework (its agent is cut off: see :meth:`clear_agent`)."""
        self._uncount(fw.tasks.pop(t.task_id, None))

    def cut_off(self, fw: FrameworkRec, agent: AgentRec, t: TaskRec) -> None:
        """Unreachable with its agent, which may come back with it."""
        self._uncount(fw.unreachable.get(t.task_id))
        fw.unreachable[t.task_id] = t
        self._count(fw, t)
        agent.lost_tasks.add((fw.id, t.task_id))

    def reached(self, fw: FrameworkRec, tid: str) -> TaskRec | None:
        """An unreachable task heard of again (or ended for good): out of ``unreachable``."""
        if not fw.unreachable:
            return None
        t = fw.unreachable.pop(tid, None)
        self._uncount(t)
        return t

    def clear_agent(self, agent: AgentRec) -> None:
        """The agent is cut off: it holds no task and no executor any more."""
        for t in agent.tasks.values():
            if t.on_agent is agent.ref:
                t.on_agent = None
        agent.tasks.clear()
        agent.states.clear()
        agent.frameworks.clear()
        agent.executors.clear()

    def add_executor(self, agent: AgentRec, ex: ExecutorRec) -> None:
        agent.executors[(ex.framework_id, ex.executor_id)] = ex

    def remove_executor(self, agent: AgentRec, key: tuple[str, str]) -> ExecutorRec | None:
        return agent.executors.pop(key, None)

    def unplace(self, agent: AgentRec, fid: str, t: TaskRec) -> None:
        """Off its agent (its framework is being removed: see :meth:`clear_framework`)."""
        self._off(agent, (fid, t.task_id))

    def clear_framework(self, fw: FrameworkRec) -> None:
        """The framework is removed: nothing of it is active or unreachable."""
        for t in fw.tasks.values():
            self._uncount(t)
        for t in fw.unreachable.values():
            self._uncount(t)
        fw.tasks.clear()
        fw.unreachable.clear()
