"""What the master knows, as plain records, and the one table that files its tasks.

A task is known three ways at once: by its framework (active, unreachable or
completed), by its agent, and by its executor.  :class:`TaskTable` is the only code
that writes those indices, so they cannot drift apart.
"""

from __future__ import annotations

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


@dataclass(slots=True)
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


class TaskTable:
    """The only writer of the task indices: a framework's active, unreachable and
    completed tasks, an agent's tasks and executors (and the tasks cut off with it), an
    executor's tasks.  Readers read the records' own maps."""

    __slots__ = ("max_completed",)

    def __init__(self, max_completed: int = 1000) -> None:
        self.max_completed = max_completed

    def place(self, fw: FrameworkRec, agent: AgentRec, t: TaskRec, executor: ExecutorRec | None = None) -> None:
        """``t`` runs on ``agent`` (launched, or reported by a re-registering agent)."""
        fw.tasks[t.task_id] = t
        agent.tasks[(fw.id, t.task_id)] = t
        if executor is not None:
            executor.tasks.add(t.task_id)

    def finish(self, fw: FrameworkRec, agent: AgentRec | None, t: TaskRec) -> None:
        """``t`` left its agent for good: into the completed list."""
        fw.tasks.pop(t.task_id, None)
        if agent is not None:
            agent.tasks.pop((fw.id, t.task_id), None)
            ex = agent.executors.get((fw.id, t.executor_id))
            if ex is not None:
                ex.tasks.discard(t.task_id)
        self.complete(fw, t)

    def complete(self, fw: FrameworkRec, t: TaskRec) -> None:
        """Into the completed list (no longer active or unreachable), which keeps the newest
        ``max_completed``."""
        fw.completed.append(t)
        fw.completed_ids.add(t.task_id)
        while len(fw.completed) > self.max_completed:
            old = fw.completed.popleft()
            fw.completed_ids.discard(old.task_id)

    def leave(self, fw: FrameworkRec, t: TaskRec) -> None:
        """No longer active for its framework (its agent is cut off: see :meth:`clear_agent`)."""
        fw.tasks.pop(t.task_id, None)

    def cut_off(self, fw: FrameworkRec, agent: AgentRec, t: TaskRec) -> None:
        """Unreachable with its agent, which may come back with it."""
        fw.unreachable[t.task_id] = t
        agent.lost_tasks.add((fw.id, t.task_id))

    def reached(self, fw: FrameworkRec, tid: str) -> TaskRec | None:
        """An unreachable task heard of again (or ended for good): out of ``unreachable``."""
        return fw.unreachable.pop(tid, None) if fw.unreachable else None

    def clear_agent(self, agent: AgentRec) -> None:
        """The agent is cut off: it holds no task and no executor any more."""
        agent.tasks.clear()
        agent.executors.clear()

    def add_executor(self, agent: AgentRec, ex: ExecutorRec) -> None:
        agent.executors[(ex.framework_id, ex.executor_id)] = ex

    def remove_executor(self, agent: AgentRec, key: tuple[str, str]) -> ExecutorRec | None:
        return agent.executors.pop(key, None)

    def unplace(self, agent: AgentRec, fid: str, t: TaskRec) -> None:
        """Off its agent (its framework is being removed: see :meth:`clear_framework`)."""
        agent.tasks.pop((fid, t.task_id), None)

    def clear_framework(self, fw: FrameworkRec) -> None:
        """The framework is removed: nothing of it is active or unreachable."""
        fw.tasks.clear()
        fw.unreachable.clear()
