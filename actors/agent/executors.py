"""What executors say, and what becomes of them.

Executors are child actors of the agent, one per command task, one per task group's
executor.  An executor's status updates are taken in charge (queued in their task's
stream, checkpointed) and acknowledged to it; one that does not subscribe within
``executor_registration_timeout`` fails its tasks, as one that exits before its tasks
end.  Executors sample their tasks' usage (``usage_interval``); the agent batches the
latest samples into one ``UsageReport`` to the master per interval.
"""

from __future__ import annotations

from typing import Any

from actors.agent import recovery, streams
from actors.agent.core import AgentCore, ExecRec
from actors.protocol import messages as M
from actors.protocol.messages import Reason, Source, TaskState

TS = TaskState


def executor_from(agent: AgentCore, sender: Any, what: str, claimed: tuple[str, str] | None = None) -> ExecRec | None:
    """The executor at ``sender`` (``claimed``: the one it says it is, at its first words)."""
    if agent.authenticates and agent.principal != agent.own_principal:
        # An executor signs as its agent: anyone else speaking for one is dropped.
        agent.stats["calls_wrong_principal"] += 1
        agent.drop(f"{what} from principal {agent.principal!r}, not this agent's executors'", sender)
        return None
    text = agent.address_text(sender)
    key = agent.exec_by_addr.get(text)
    if key is None and claimed is not None and claimed in agent.executors:
        # The executor's first words: the spawn port gave a placeholder address, this is
        # its real one.
        key = claimed
        first = agent.executors[key]
        if not first.bound:
            first.address, first.addr_text, first.bound = sender, text, True
            agent.exec_by_addr[text] = key
    rec = agent.executors.get(key) if key is not None else None
    if rec is None:
        agent.drop(f"{what} from an unknown executor", sender)
    return rec


def configured(agent: AgentCore, m: M.Configured, sender: Any) -> None:
    """An executor could not start (only a refused configuration is answered)."""
    fid, _, eid = m.name.removeprefix(f"{agent.agent_id}/").partition("/")
    rec = executor_from(agent, sender, "Configured", (fid, eid))
    if rec is None or not m.error:
        return
    for tid in sorted(rec.tasks):
        if not rec.states[tid].terminal:
            fail_task(agent, rec, tid, Reason.REASON_CONTAINER_LAUNCH_FAILED,
                      f"the executor could not start: {m.error}")
    stop(agent, rec)


def subscribe(agent: AgentCore, m: M.ExecSubscribe, sender: Any) -> None:
    rec = executor_from(agent, sender, "ExecSubscribe", (m.framework_id, m.executor_id))
    if rec is None:
        return
    rec.subscribed = True
    if m.unacknowledged_updates:
        # A re-subscription (after an agent restart) carries what the agent had not
        # taken in charge; it is answered, and the updates go on as if just sent.
        agent.send(sender, M.ExecSubscribed(rec.framework_id, rec.info.executor_id, agent.agent_id))
        for status in m.unacknowledged_updates:
            update(agent, M.ExecUpdate(status), sender)


def update(agent: AgentCore, m: M.ExecUpdate, sender: Any) -> None:
    rec = executor_from(agent, sender, "ExecUpdate")
    if rec is None:
        return
    status = m.status
    tid = status.task_id
    if tid not in rec.tasks:
        agent.drop(f"update for task {tid}, which is not this executor's", sender)
        return
    if not status.uuid:
        agent.drop(f"update for task {tid} without a uuid", sender)
        return
    if status.uuid in rec.seen or rec.states[tid].terminal:
        agent.stats["duplicate_updates"] += 1
        agent.send(sender, M.ExecAcknowledged(tid, status.uuid))
        return
    rec.seen.add(status.uuid)
    rec.states[tid] = status.state
    if status.state.terminal:
        agent.ended[status.state] += 1
        agent.gpus.give_back(rec.framework_id, tid)
        agent.usage_pending.pop((rec.framework_id, tid), None)
        recovery.save_executor(agent, rec)
    streams.enqueue(agent, rec.framework_id, status, rec.tasks[tid])
    # Taken in charge (checkpointed, where there is a checkpoint): the executor may forget it.
    agent.send(sender, M.ExecAcknowledged(tid, status.uuid))
    if status.state.terminal and all(s.terminal for s in rec.states.values()):
        stop(agent, rec)


def message(agent: AgentCore, m: M.ExecMessage, sender: Any) -> None:
    rec = executor_from(agent, sender, "ExecMessage")
    master = agent.masters.master
    if rec is not None and master is not None and agent.registered:
        agent.send(master, M.ExecutorToFramework(agent.agent_id, rec.framework_id, rec.info.executor_id, m.data))


def usage(agent: AgentCore, m: M.ExecUsage, sender: Any) -> None:
    rec = executor_from(agent, sender, "ExecUsage")
    if rec is None:
        return
    for u in m.usages:
        if u.task_id in rec.tasks and u.framework_id == rec.framework_id \
                and not rec.states[u.task_id].terminal:
            agent.usage_pending[(u.framework_id, u.task_id)] = u
            rec.statistics[u.task_id] = u.statistics
    if agent.usage_pending and not agent.timer_pending("usage"):
        agent.set_timer("usage", agent.usage_interval)


def timer_usage(agent: AgentCore) -> None:
    """The latest samples, one report to the master (later, while not registered)."""
    master = agent.masters.master
    if not agent.registered or master is None:
        if agent.usage_pending:
            agent.set_timer("usage", max(agent.usage_interval, 1.0))
        return
    if agent.usage_pending:
        usages = tuple(agent.usage_pending[k] for k in sorted(agent.usage_pending))
        agent.usage_pending.clear()
        agent.send(master, M.UsageReport(agent.agent_id, usages))


def fail_task(agent: AgentCore, rec: ExecRec, tid: str, reason: Reason, message: str) -> None:
    if not rec.states[tid].terminal:
        agent.ended[TS.TASK_FAILED] += 1
    rec.states[tid] = TS.TASK_FAILED
    agent.gpus.give_back(rec.framework_id, tid)
    streams.agent_update(agent, rec.framework_id, M.TaskStatus(
        tid, TS.TASK_FAILED, Source.SOURCE_AGENT, reason, message, agent.agent_id,
        rec.info.executor_id, agent.now))


def timer_registration(agent: AgentCore) -> None:
    """Executors that did not subscribe in time fail their tasks and are stopped."""
    now = agent.now
    q = agent.unsubscribed
    while q and q[0][0] <= now + 1e-9:
        _, key, rec = q.popleft()
        if agent.executors.get(key) is not rec or rec.subscribed or rec.exiting:
            continue
        agent.stats["executor_registration_timeouts"] += 1
        agent.log.warning("agent %s: executor %s did not register within %.0f s", agent.name, key[1],
                          agent.executor_registration_timeout)
        for tid in sorted(rec.tasks):
            if not rec.states[tid].terminal:
                fail_task(agent, rec, tid, Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                          f"the executor did not register within "
                          f"{agent.executor_registration_timeout:.0f} s")
        stop(agent, rec)
    if q:
        agent.set_timer("executor_registration", max(0.0, q[0][0] - now))


def stop(agent: AgentCore, rec: ExecRec) -> None:
    if not rec.exiting:
        rec.exiting = True
        agent.stop_child(rec.address)


def exited(agent: AgentCore, child: Any) -> None:
    """A child actor exited: an executor gone, and with it any task it had not ended."""
    key = agent.exec_by_addr.get(agent.address_text(child))
    if key is None:
        key = next((k for k, r in agent.executors.items() if r.address == child), None)
    if key is None:
        return
    rec = agent.executors.pop(key)
    agent.executors_terminated += 1
    if agent.checkpoint is not None:
        agent.checkpoint.delete(f"ex/{key[0]}/{key[1]}")
    for tid in rec.tasks:
        agent.task_index.discard((rec.framework_id, tid))
    for text in [t for t, k in agent.exec_by_addr.items() if k == key]:
        del agent.exec_by_addr[text]
    abnormal = False
    for tid in sorted(rec.tasks):
        if not rec.states[tid].terminal:
            abnormal = True
            fail_task(agent, rec, tid, Reason.REASON_EXECUTOR_TERMINATED,
                      "the executor terminated before its task")
    agent.file_completed(rec.framework_id, rec.info.executor_id, rec.container_id, rec.agent_id,
                         tuple((t, rec.states[t]) for t in rec.tasks))
    master = agent.masters.master
    if agent.registered and master is not None and (abnormal or not rec.info.resources.is_empty()):
        agent.send(master, M.ExitedExecutor(agent.agent_id, rec.framework_id, rec.info.executor_id,
                                            1 if abnormal else 0))
