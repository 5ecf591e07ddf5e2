"""The simulated containerizer: a task runs for its duration in virtual time.

A task's duration comes from its ``impresario.sim/duration`` label (the batch
framework sets it); without one the task runs until it is killed, like a
service.  Its exit code comes from ``impresario.sim/exit_code`` (default 0).
A kill ends the container at once with SIGTERM's status; nothing here ever
needs a grace period.  ``next_check`` answers the exact delay until the next
exit, so the executor wakes exactly when something happens.

Containers belong to their host (:class:`NodeContainers`, kept by the SimHost
by agent name), not to the executor that launched them: when an agent restarts,
its executors are gone but its tasks run on, and a re-created executor
re-attaches to them with ``recover``.  A host crash takes them all.
"""

from __future__ import annotations

import heapq
import signal
from typing import Any

from actors.frameworks.batch import DURATION_LABEL, EXIT_CODE_LABEL
from actors.ports import ContainerError, ContainerExit, Launched
from actors.protocol.messages import AssignedGpu, ResourceStatistics, TaskInfo


class NodeContainers:
    """The containers of one simulated host: they outlive its executors and agent (a
    task runs in its own session and cgroup) and die only with the host."""

    __slots__ = ("live",)

    def __init__(self) -> None:
        self.live: dict[str, list[Any]] = {}   # container -> [exit time or None, status, seq]


def node_containers(actor: Any) -> NodeContainers:
    """The containers of the host an executor runs on (its agent's, by the agent's name)."""
    ref = actor._myRef
    host = ref.host
    key = ref.parent.name if ref.parent is not None else ref.name
    nodes = host.containers
    node = nodes.get(key)
    if node is None:
        node = nodes[key] = NodeContainers()
    return node


class SimContainerizer:
    def __init__(self, actor: Any, settings: dict[str, Any]) -> None:
        self._env = actor._myRef.host.env
        self._node = node_containers(actor)
        self._exits: list[tuple[float, int, str, int]] = []  # (time, seq, container, status) of mine
        self._mine: set[str] = set()
        self._seq = 0

    def launch(self, container_id: str, task: TaskInfo, sandbox: str,
               gpus: tuple[AssignedGpu, ...] = ()) -> Launched:
        if container_id in self._node.live:
            raise ContainerError(f"container {container_id} exists already")
        duration_text = task.label(DURATION_LABEL)
        code_text = task.label(EXIT_CODE_LABEL, "0")
        try:
            code = int(code_text or "0")
            duration = float(duration_text) if duration_text is not None else None
        except ValueError:
            raise ContainerError(f"bad simulation label on task {task.task_id}") from None
        self._mine.add(container_id)
        if duration is None:
            self._node.live[container_id] = [None, 0, 0]  # a service: runs until killed
        else:
            self._schedule(container_id, self._env._now + max(0.0, duration), code)
        return Launched()

    def _schedule(self, container_id: str, at: float, status: int) -> None:
        self._seq += 1
        self._node.live[container_id] = [at, status, self._seq]
        heapq.heappush(self._exits, (at, self._seq, container_id, status))

    def recover(self, container_id: str, task: TaskInfo, sandbox: str) -> bool:
        entry = self._node.live.get(container_id)
        if entry is None:
            return False
        self._mine.add(container_id)
        if entry[0] is not None:
            self._schedule(container_id, max(entry[0], self._env._now), entry[1])
        return True

    def kill(self, container_id: str, hard: bool = False) -> None:
        entry = self._node.live.get(container_id)
        if container_id in self._mine and entry is not None and (entry[0] is None or entry[0] > self._env._now):
            sig = signal.SIGKILL if hard else signal.SIGTERM
            self._schedule(container_id, self._env._now, -int(sig))

    def reap(self) -> list[ContainerExit]:
        now = self._env._now
        out = []
        live = self._node.live
        while self._exits and self._exits[0][0] <= now:
            _, seq, cid, status = heapq.heappop(self._exits)
            entry = live.get(cid)
            if entry is not None and entry[2] == seq and cid in self._mine:
                out.append(ContainerExit(cid, status))
        return out

    def next_check(self) -> float | None:
        live = self._node.live
        while self._exits:
            entry = live.get(self._exits[0][2])
            if entry is not None and entry[2] == self._exits[0][1]:
                break
            heapq.heappop(self._exits)  # superseded by a kill, or destroyed
        if not self._exits:
            return None
        return max(0.0, self._exits[0][0] - self._env._now)

    def usage(self, container_id: str) -> ResourceStatistics | None:
        return None  # nothing is measured in virtual time: "used" stays the tasks' resources

    def output_tail(self, container_id: str, max_bytes: int) -> bytes:
        return b""

    def destroy(self, container_id: str) -> None:
        if container_id in self._mine:
            self._mine.discard(container_id)
            self._node.live.pop(container_id, None)

    def shutdown(self) -> None:
        for cid in self._mine:
            self._node.live.pop(cid, None)
        self._mine.clear()
        self._exits.clear()
