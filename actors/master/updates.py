"""The master's task traffic: status updates and usage from agents, acknowledgements,
reconciliation, kills and messages between schedulers and executors."""

from __future__ import annotations

from typing import Any

from actors.master.core import MasterCore
from actors.protocol import messages as M
from actors.protocol.messages import Reason, Source, TaskState

TS = TaskState


def status_update(master: MasterCore, m: M.StatusUpdate, sender: Any) -> None:
    agent = master.agent_from(sender, "StatusUpdate")
    if agent is None:
        return
    master.counters["status_updates"] += 1
    status = m.status
    fw = master.frameworks.get(m.framework_id)
    if fw is None:
        if status.uuid and m.framework_id in master.removed_frameworks:
            # Nobody will acknowledge for a removed framework: do it, so the agent stops retrying.
            master.send(sender, M.StatusUpdateAck(agent.id, m.framework_id, status.task_id, status.uuid))
        # An unknown framework may still re-subscribe (after a master failover): the
        # agent keeps retrying until it does.
        return
    t = agent.tasks.get((m.framework_id, status.task_id))
    if t is None:
        # Not a task the master tracks (completed already, or unknown to it): the
        # framework still hears of it, and its acknowledgement reaches the agent.
        master.send_update(fw, status)
        return
    now = master.now
    latest = m.latest_state if m.latest_state is not None else status.state
    if not t.released:
        if latest.terminal:
            master.release(agent, t, now, recover=True)
        elif latest == TS.TASK_RUNNING and not t.running:
            master.count_used(t, t.resources, now)
    if status.state != t.state:
        master.task_line(status.task_id, fw.id, agent.id, status.state, status.reason, status.message,
                         t.executor_id)
    master.tasks.set_state(t, status.state)
    t.status = status
    master.send_update(fw, status)


def usage_report(master: MasterCore, m: M.UsageReport, sender: Any) -> None:
    agent = master.agent_from(sender, "UsageReport")
    if agent is None:
        return
    now = master.now
    for u in m.usages:
        t = agent.tasks.get((u.framework_id, u.task_id))
        if t is not None and t.running and not t.released:
            master.count_used(t, u.used, now)


def acknowledge(master: MasterCore, m: M.Acknowledge, sender: Any) -> None:
    fw = master.framework_for(m.framework_id, sender, "ACKNOWLEDGE")
    if fw is None:
        return
    agent = master.agents.get(m.agent_id)
    t = fw.tasks.get(m.task_id)
    if t is not None and t.status is not None and t.status.uuid == m.uuid and t.state.terminal:
        # A terminal update was acknowledged: the task moves to the completed list.
        master.tasks.finish(fw, master.agents.get(t.agent_id), t)
    if agent is not None and agent.reachable:
        master.send(agent.address, M.StatusUpdateAck(agent.id, fw.id, m.task_id, m.uuid))


def reconcile(master: MasterCore, m: M.Reconcile, sender: Any) -> None:
    fw = master.framework_for(m.framework_id, sender, "RECONCILE")
    if fw is None:
        return
    now = master.now
    answers: list[M.TaskStatus] = []
    if not m.tasks:  # implicit: every task the master knows for this framework
        for tid in sorted(fw.tasks):
            t = fw.tasks[tid]
            answers.append(master.master_status(t, t.state, Reason.REASON_RECONCILIATION, ""))
        for tid in sorted(fw.unreachable):
            t = fw.unreachable[tid]
            answers.append(master.master_status(t, t.state, Reason.REASON_RECONCILIATION, ""))
        master.send_updates(fw, answers)
        return
    pa = fw.partition_aware
    for rt in m.tasks:
        known = fw.tasks.get(rt.task_id) or fw.unreachable.get(rt.task_id)
        if known is not None:
            answers.append(master.master_status(known, known.state, Reason.REASON_RECONCILIATION, ""))
            continue
        if rt.agent_id in master.recovering:
            continue  # its agent may still re-register: no answer yet (as in Mesos)
        agent = master.agents.get(rt.agent_id) if rt.agent_id else None
        if agent is not None and agent.reachable:
            state, why = (TS.TASK_GONE if pa else TS.TASK_LOST), "the task is not on its agent"
        elif agent is not None:
            state, why = (TS.TASK_UNREACHABLE if pa else TS.TASK_LOST), "the task's agent is unreachable"
        elif rt.agent_id in master.removed_agents:
            state, why = (TS.TASK_GONE if pa else TS.TASK_LOST), "the task's agent was removed"
        else:
            state, why = (TS.TASK_UNKNOWN if pa else TS.TASK_LOST), "the master knows neither task nor agent"
        answers.append(M.TaskStatus(rt.task_id, state, Source.SOURCE_MASTER,
                                    Reason.REASON_RECONCILIATION, why, rt.agent_id, "", now))
    master.send_updates(fw, answers)


def kill(master: MasterCore, m: M.Kill, sender: Any) -> None:
    fw = master.framework_for(m.framework_id, sender, "KILL")
    if fw is None:
        return
    t = fw.tasks.get(m.task_id)
    if t is None:
        t = fw.unreachable.get(m.task_id)
        state = TS.TASK_UNKNOWN if fw.partition_aware else TS.TASK_LOST
        if t is not None:
            state = TS.TASK_UNREACHABLE if fw.partition_aware else TS.TASK_LOST
        master.send_update(fw, M.TaskStatus(m.task_id, state, Source.SOURCE_MASTER,
                                            Reason.REASON_TASK_UNKNOWN,
                                            "the master knows no running task with this id",
                                            m.agent_id, "", master.now))
        return
    agent = master.agents.get(t.agent_id)
    if agent is not None and agent.reachable:
        grace = m.grace_seconds if m.grace_seconds is not None else t.task.kill_grace_seconds
        master.send(agent.address, M.KillTask(fw.id, t.task_id, grace))


def shutdown(master: MasterCore, m: M.Shutdown, sender: Any) -> None:
    fw = master.framework_for(m.framework_id, sender, "SHUTDOWN")
    if fw is None:
        return
    agent = master.agents.get(m.agent_id)
    if agent is None or not agent.reachable:
        master.reply_error(sender, "SHUTDOWN", f"agent {m.agent_id} is not registered")
        return
    master.send(agent.address, M.ShutdownExecutor(fw.id, m.executor_id))


def message(master: MasterCore, m: M.Message, sender: Any) -> None:
    fw = master.framework_for(m.framework_id, sender, "MESSAGE")
    if fw is None:
        return
    agent = master.agents.get(m.agent_id)
    if agent is None or not agent.reachable:
        master.reply_error(sender, "MESSAGE", f"agent {m.agent_id} is not registered")
        return
    master.send(agent.address, M.FrameworkToExecutor(agent.id, fw.id, m.executor_id, m.data))


def exited_executor(master: MasterCore, m: M.ExitedExecutor, sender: Any) -> None:
    agent = master.agent_from(sender, "ExitedExecutor")
    if agent is None:
        return
    ex = master.tasks.remove_executor(agent, (m.framework_id, m.executor_id))
    if ex is not None:
        master.uncharge(agent, ex.role, ex.resources)
        master.recover(ex.framework_id, agent.id, ex.role, ex.resources, None)
    fw = master.frameworks.get(m.framework_id)
    if fw is not None and fw.connected and fw.address is not None and m.status not in (None, 0):
        master.send(fw.address, M.Failure(agent.id, m.executor_id, m.status))


def executor_message(master: MasterCore, m: M.ExecutorToFramework, sender: Any) -> None:
    agent = master.agent_from(sender, "ExecutorToFramework")
    if agent is None:
        return
    fw = master.frameworks.get(m.framework_id)
    if fw is not None and fw.connected and fw.address is not None:
        master.send(fw.address, M.MessageEvent(agent.id, m.executor_id, m.data))
