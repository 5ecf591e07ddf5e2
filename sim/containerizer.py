"""The simulated containerizer: a task runs for its duration in virtual time.

A task's duration comes from its ``impresario.sim/duration`` label (the batch
framework sets it); without one the task runs until it is killed, like a
service.  Its exit code comes from ``impresario.sim/exit_code`` (default 0).
A kill ends the container at once with SIGTERM's status; nothing here ever
needs a grace period.  ``next_check`` answers the exact delay until the next
exit, so the executor wakes exactly when something happens.
"""

from __future__ import annotations

import heapq
import signal
from typing import Any

from actors.batch import DURATION_LABEL, EXIT_CODE_LABEL
from actors.messages import AssignedGpu, ResourceStatistics, TaskInfo
from actors.ports import ContainerError, ContainerExit, Launched


class SimContainerizer:
    def __init__(self, actor: Any, settings: dict[str, Any]) -> None:
        self._env = actor._myRef.host.env
        self._exits: list[tuple[float, int, str, int]] = []  # (time, seq, container, status)
        self._live: dict[str, int] = {}   # container -> seq of its pending exit (0: none)
        self._seq = 0

    def launch(self, container_id: str, task: TaskInfo, sandbox: str,
               gpus: tuple[AssignedGpu, ...] = ()) -> Launched:
        if container_id in self._live:
            raise ContainerError(f"container {container_id} exists already")
        duration_text = task.label(DURATION_LABEL)
        code_text = task.label(EXIT_CODE_LABEL, "0")
        try:
            code = int(code_text or "0")
            duration = float(duration_text) if duration_text is not None else None
        except ValueError:
            raise ContainerError(f"bad simulation label on task {task.task_id}") from None
        if duration is None:
            self._live[container_id] = 0  # a service: runs until killed
        else:
            self._schedule(container_id, self._env._now + max(0.0, duration), code)
        return Launched()

    def _schedule(self, container_id: str, at: float, status: int) -> None:
        self._seq += 1
        self._live[container_id] = self._seq
        heapq.heappush(self._exits, (at, self._seq, container_id, status))

    def kill(self, container_id: str, hard: bool = False) -> None:
        if container_id in self._live:
            sig = signal.SIGKILL if hard else signal.SIGTERM
            self._schedule(container_id, self._env._now, -int(sig))

    def reap(self) -> list[ContainerExit]:
        now = self._env._now
        out = []
        while self._exits and self._exits[0][0] <= now:
            _, seq, cid, status = heapq.heappop(self._exits)
            if self._live.get(cid) == seq:
                del self._live[cid]
                out.append(ContainerExit(cid, status))
        return out

    def next_check(self) -> float | None:
        while self._exits and self._live.get(self._exits[0][2]) != self._exits[0][1]:
            heapq.heappop(self._exits)  # superseded by a kill
        if not self._exits:
            return None
        return max(0.0, self._exits[0][0] - self._env._now)

    def usage(self, container_id: str) -> ResourceStatistics | None:
        return None  # nothing is measured in virtual time: "used" stays the tasks' resources

    def output_tail(self, container_id: str, max_bytes: int) -> bytes:
        return b""

    def destroy(self, container_id: str) -> None:
        self._live.pop(container_id, None)

    def shutdown(self) -> None:
        self._live.clear()
        self._exits.clear()
