"""Status update streams: each task's updates reach the master at least once, in order.

Only the head of a task's stream is in flight; it is resent with exponential backoff
until the framework's acknowledgement comes back through the master, and the next
follows only then.  Each update sent carries the task's latest known state, so the
master frees a finished task's resources even while earlier updates are on their way.
With a checkpoint store every stream not yet drained is recorded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors.protocol import messages as M

if TYPE_CHECKING:
    from actors.agent.core import AgentCore

RETRY_MIN = 10.0      # Mesos STATUS_UPDATE_RETRY_INTERVAL_MIN
RETRY_MAX = 600.0     # Mesos STATUS_UPDATE_RETRY_INTERVAL_MAX


@dataclass(slots=True)
class UpdateStream:
    """The status updates of one task not yet acknowledged, oldest first."""

    pending: deque[M.StatusUpdate] = field(default_factory=deque)
    sent_at: float = -1.0
    interval: float = RETRY_MIN
    task: M.TaskInfo | None = None    # reported on re-registration after its executor is gone

    def push(self, update: M.StatusUpdate) -> bool:
        """Queue ``update``; True when it is the head (to be sent now)."""
        self.pending.append(update)
        return len(self.pending) == 1

    def head(self) -> M.StatusUpdate:
        """The head as it is sent: with the task's latest known state."""
        head = self.pending[0]
        return M.StatusUpdate(head.framework_id, head.status, self.pending[-1].status.state)

    def acknowledge(self, uuid: str, retry_min: float) -> bool:
        """The head is acknowledged (False: ``uuid`` is not the head's, nothing changes); the
        next one, if any, is the head now and starts again at ``retry_min``."""
        if not self.pending or self.pending[0].status.uuid != uuid:
            return False
        self.pending.popleft()
        if self.pending:
            self.interval = retry_min
        return True

    def due(self, now: float) -> bool:
        """Whether the head is due again at ``now``."""
        return self.sent_at + self.interval <= now + 1e-9

    def back_off(self, retry_max: float) -> None:
        """Wait twice as long for the next try, up to ``retry_max``."""
        self.interval = min(self.interval * 2, retry_max)

    def checkpoint(self) -> M.UpdatesCheckpoint | None:
        """What is recorded of the stream (None: nothing, it is drained)."""
        return M.UpdatesCheckpoint(tuple(self.pending), self.task) if self.pending else None

    @classmethod
    def restored(cls, ck: M.UpdatesCheckpoint, retry_min: float) -> UpdateStream:
        return cls(deque(ck.updates), interval=retry_min, task=ck.task)


def agent_update(agent: AgentCore, fid: str, status: M.TaskStatus) -> None:
    """An update the agent itself makes (a task refused, failed or unknown here)."""
    agent.next_update += 1
    uuid = f"{agent.agent_id or agent.name}-u{agent.next_update}"
    enqueue(agent, fid, M.TaskStatus(status.task_id, status.state, status.source, status.reason,
                                     status.message, status.agent_id, status.executor_id,
                                     status.timestamp, uuid, status.data, status.container_status,
                                     status.labels))


def enqueue(agent: AgentCore, fid: str, status: M.TaskStatus, task: M.TaskInfo | None = None) -> None:
    """Every update the agent takes in charge comes here, its executor's or its own: one
    line in the log, then the task's stream."""
    agent.task_line(status.task_id, fid, agent.agent_id, status.state, status.reason, status.message,
                    status.executor_id)
    key = (fid, status.task_id)
    stream = agent.streams.get(key)
    if stream is None:
        if task is None:
            rec = agent.executors.get((fid, status.executor_id))
            task = rec.tasks.get(status.task_id) if rec is not None else None
        stream = agent.streams[key] = UpdateStream(interval=agent.retry_min, task=task)
    first = stream.push(M.StatusUpdate(fid, status))
    save(agent, key)
    if first:
        send_head(agent, key)


def send_head(agent: AgentCore, key: tuple[str, str]) -> None:
    """Send the head of ``key``'s stream to the master, if registered with one."""
    stream = agent.streams.get(key)
    master = agent.masters.master
    if stream is None or not stream.pending or not agent.registered or master is None:
        return
    agent.send(master, stream.head())
    stream.sent_at = agent.now
    if not agent.timer_pending("retry"):
        agent.set_timer("retry", stream.interval)


def resend_all(agent: AgentCore) -> None:
    """Every stream's head again, at once (after a (re-)registration)."""
    for key in sorted(agent.streams):
        agent.streams[key].interval = agent.retry_min
        send_head(agent, key)


def acknowledged(agent: AgentCore, m: M.StatusUpdateAck, sender: object) -> None:
    if not agent.from_master(sender, "StatusUpdateAck"):
        return
    key = (m.framework_id, m.task_id)
    stream = agent.streams.get(key)
    if stream is None or not stream.acknowledge(m.uuid, agent.retry_min):
        agent.stats["stale_acks"] += 1  # a duplicate, or for an update no longer at the head
        return
    if stream.pending:
        send_head(agent, key)
    else:
        del agent.streams[key]
    save(agent, key)


def timer_retry(agent: AgentCore) -> None:
    now = agent.now
    soonest = None
    for key in sorted(agent.streams):
        stream = agent.streams[key]
        if not stream.pending:
            continue
        due = stream.sent_at + stream.interval
        if stream.due(now):
            agent.stats["update_retries"] += 1
            stream.back_off(agent.retry_max)
            send_head(agent, key)
            due = now + stream.interval
        soonest = due if soonest is None else min(soonest, due)
    if soonest is not None:
        agent.set_timer("retry", max(0.0, soonest - now))


def save(agent: AgentCore, key: tuple[str, str]) -> None:
    """Record ``key``'s stream as it is now (drained: its record goes)."""
    if agent.checkpoint is None:
        return
    stream = agent.streams.get(key)
    name = f"up/{key[0]}/{key[1]}"
    ck = stream.checkpoint() if stream is not None else None
    if ck is None:
        agent.checkpoint.delete(name)
    else:
        agent.checkpoint.put(name, ck)


def drop_framework(agent: AgentCore, fid: str) -> None:
    """A framework gone: nobody is left to acknowledge its updates."""
    for key in [k for k in agent.streams if k[0] == fid]:
        del agent.streams[key]
        save(agent, key)
