"""Launches, kills and shutdowns, as the master forwards them.

A command task gets an executor of its own; a task group joins its executor (the
default executor), started with the first group.  A task runs as its command's user,
else its framework's: the agent refuses (``TASK_ERROR``) a task as ``root`` unless
``allow_root_tasks`` is set, or, with an ``acls`` setting, unless its ``run_tasks``
rules allow the task's user.  GPUs are whole devices: the agent decides which of its
GPUs a task gets and tells the executor with the launch.
"""

from __future__ import annotations

from typing import Any

from actors.agent import recovery, streams
from actors.agent.core import COMMAND_EXECUTOR, DEFAULT_EXECUTOR, AgentCore
from actors.protocol import messages as M
from actors.protocol.messages import Reason, Source, TaskState
from actors.protocol.resources import Resources
from actors.security.acl import ROOT, RUN_TASKS

TS = TaskState


def check_launch(agent: AgentCore, sender: Any, what: str, framework: M.FrameworkInfo,
                 tasks: tuple[M.TaskInfo, ...]) -> bool:
    if not agent.from_master(sender, what):
        return False
    if not agent.registered:
        agent.drop(f"{what} before registration", sender)
        return False
    if not framework.id:
        agent.drop(f"{what} without a framework id", sender)
        return False
    for t in tasks:
        if t.agent_id != agent.agent_id:
            agent.drop(f"{what}: task {t.task_id} is for agent {t.agent_id}", sender)
            return False
        if (framework.id, t.task_id) in agent.task_index or (framework.id, t.task_id) in agent.streams:
            agent.stats["launches_known"] += 1   # a launch the master sent again
            return False
    return True


def run_task(agent: AgentCore, m: M.RunTask, sender: Any) -> None:
    task = m.task
    if not check_launch(agent, sender, "RunTask", m.framework, (task,)):
        return
    fid = m.framework.id
    if users_refused(agent, m.framework, (task,), task.task_id, Reason.REASON_TASK_UNAUTHORIZED):
        return
    recovery.know_framework(agent, m.framework)
    key = (fid, task.task_id)
    if key in agent.executors:
        agent.drop(f"RunTask: an executor {task.task_id} exists already", sender)
        return
    gpus = take_gpus(agent, fid, (task,), task.task_id)
    if gpus is None:
        return
    info = M.ExecutorInfo(task.task_id, fid, M.ExecutorType.COMMAND, Resources(), f"command executor for {task.task_id}")
    rec = agent.start_executor(fid, info, COMMAND_EXECUTOR)
    rec.tasks[task.task_id] = task
    rec.states[task.task_id] = TS.TASK_STAGING
    rec.gpus = gpus
    agent.task_index.add((fid, task.task_id))
    recovery.save_executor(agent, rec)
    agent.task_line(task.task_id, fid, agent.agent_id, "launching", executor_id=rec.info.executor_id)
    agent.send(rec.address, M.ExecLaunch(as_user(task, m.framework.user), gpus))


def users_refused(agent: AgentCore, framework: M.FrameworkInfo, tasks: tuple[M.TaskInfo, ...], executor_id: str,
                  reason: Reason) -> bool:
    """Defence in depth: tasks this agent will not run as their user fail (TASK_ERROR),
    every task of the launch with them.  Root needs ``allow_root_tasks``; with an
    ``acls`` setting, its ``run_tasks`` rules decide instead (root only where named)."""
    why = None
    for task in tasks:
        user = user_of(framework, task)
        if agent.acl is not None:
            decision = agent.acl.check(RUN_TASKS, framework.principal or None, user)
            if not decision:
                why = f"task {task.task_id}: refused by this agent's ACL: {decision.reason}"
        elif user == ROOT and not agent.allow_root_tasks:
            why = f"task {task.task_id}: this agent does not run tasks as root (allow_root_tasks is off)"
        if why:
            break
    if why is None:
        return False
    agent.stats["tasks_refused_user"] += len(tasks)
    agent.log.warning("agent %s: %s", agent.name, why)
    for task in tasks:
        streams.agent_update(agent, framework.id, M.TaskStatus(
            task.task_id, TS.TASK_ERROR, Source.SOURCE_AGENT, reason, why, agent.agent_id,
            executor_id, agent.now))
    return True


def take_gpus(agent: AgentCore, fid: str, tasks: tuple[M.TaskInfo, ...],
              executor_id: str) -> tuple[M.AssignedGpu, ...] | None:
    """Whole GPUs for every task, or none at all: then the tasks fail, and None."""
    out: list[M.AssignedGpu] = []
    for task in tasks:
        got = agent.gpus.take(fid, task.task_id, task.resources.millis("gpus") // 1000)
        if got is None:
            for t in tasks:
                agent.gpus.give_back(fid, t.task_id)
            for t in tasks:
                streams.agent_update(agent, fid, M.TaskStatus(
                    t.task_id, TS.TASK_FAILED, Source.SOURCE_AGENT, Reason.REASON_CONTAINER_LAUNCH_FAILED,
                    f"not enough free GPUs on this agent for task {task.task_id}", agent.agent_id,
                    executor_id, agent.now))
            return None
        out.extend(got)
    return tuple(out)


def run_task_group(agent: AgentCore, m: M.RunTaskGroup, sender: Any) -> None:
    if not check_launch(agent, sender, "RunTaskGroup", m.framework, m.task_group):
        return
    fid = m.framework.id
    if users_refused(agent, m.framework, m.task_group, m.executor.executor_id,
                     Reason.REASON_TASK_GROUP_UNAUTHORIZED):
        return
    recovery.know_framework(agent, m.framework)
    rec = agent.executors.get((fid, m.executor.executor_id))
    if rec is not None and rec.exiting:
        # The executor is on its way out: these tasks cannot join it.
        for task in m.task_group:
            streams.agent_update(agent, fid, M.TaskStatus(
                task.task_id, TS.TASK_LOST, Source.SOURCE_AGENT, Reason.REASON_EXECUTOR_TERMINATED,
                f"executor {m.executor.executor_id} is terminating", agent.agent_id,
                m.executor.executor_id, agent.now))
        return
    gpus = take_gpus(agent, fid, m.task_group, m.executor.executor_id)
    if gpus is None:
        return
    if rec is None:
        rec = agent.start_executor(fid, m.executor, DEFAULT_EXECUTOR)
    group = max(rec.groups.values(), default=0) + 1
    for task in m.task_group:
        rec.tasks[task.task_id] = task
        rec.states[task.task_id] = TS.TASK_STAGING
        rec.groups[task.task_id] = group
        agent.task_index.add((fid, task.task_id))
        agent.task_line(task.task_id, fid, agent.agent_id, "launching", executor_id=rec.info.executor_id)
    rec.gpus = rec.gpus + gpus
    recovery.save_executor(agent, rec)
    agent.send(rec.address, M.ExecLaunchGroup(m.executor, tuple(as_user(t, m.framework.user)
                                                             for t in m.task_group), gpus))


def kill_task(agent: AgentCore, m: M.KillTask, sender: Any) -> None:
    if not agent.from_master(sender, "KillTask"):
        return
    for (fid, _), rec in sorted(agent.executors.items()):
        if fid == m.framework_id and m.task_id in rec.tasks:
            if not rec.states[m.task_id].terminal:
                agent.send(rec.address, M.ExecKill(m.task_id, m.grace_seconds))
            return
    # Unknown here: say so reliably, so the framework does not wait for it.
    streams.agent_update(agent, m.framework_id, M.TaskStatus(
        m.task_id, TS.TASK_LOST, Source.SOURCE_AGENT, Reason.REASON_TASK_UNKNOWN,
        "the agent has no such task", agent.agent_id, "", agent.now))


def shutdown_executor(agent: AgentCore, m: M.ShutdownExecutor, sender: Any) -> None:
    if agent.from_master(sender, "ShutdownExecutor"):
        rec = agent.executors.get((m.framework_id, m.executor_id))
        if rec is not None:
            agent.send(rec.address, M.ExecShutdown(None))


def shutdown_framework(agent: AgentCore, m: M.ShutdownFramework, sender: Any) -> None:
    if not agent.from_master(sender, "ShutdownFramework"):
        return
    for (fid, _), rec in sorted(agent.executors.items()):
        if fid == m.framework_id:
            agent.send(rec.address, M.ExecShutdown(None))
    streams.drop_framework(agent, m.framework_id)
    if agent.frameworks.pop(m.framework_id, None) is not None and agent.checkpoint is not None:
        agent.checkpoint.delete("fw/" + m.framework_id)


def to_executor(agent: AgentCore, m: M.FrameworkToExecutor, sender: Any) -> None:
    if agent.from_master(sender, "FrameworkToExecutor"):
        rec = agent.executors.get((m.framework_id, m.executor_id))
        if rec is None:
            agent.drop(f"message for unknown executor {m.executor_id}", sender)
        else:
            agent.send(rec.address, M.ExecMessage(m.data))


def user_of(framework: M.FrameworkInfo, task: M.TaskInfo) -> str:
    """The user a task runs as: its command's, else its framework's ("": the agent's own)."""
    return (task.command.user if task.command is not None else "") or framework.user


def as_user(task: M.TaskInfo, user: str) -> M.TaskInfo:
    """``task`` with its command naming the framework's ``user`` where it names none (what
    the executor's containerizer reads); the task itself if there is nothing to fill in."""
    cmd = task.command
    if not user or cmd is None or cmd.user:
        return task
    return M.TaskInfo(task.task_id, task.name, task.agent_id, task.resources,
                      M.CommandInfo(cmd.value, cmd.shell, cmd.arguments, cmd.environment, user),
                      task.executor, task.labels, task.kill_grace_seconds)
