"""Checkpoints, written and read back.

With a ``checkpoint`` store the agent records its id, its frameworks, each executor with
its tasks (and their terminal states) and every status update not yet acknowledged
(``streams``).  An agent that starts with these records is restored: it re-creates its
executors, which re-attach to their tasks' containers (``ExecRecover``), resends the
pending updates, and re-registers under its old id with what runs.
"""

from __future__ import annotations

from actors.agent.core import COMMAND_EXECUTOR, DEFAULT_EXECUTOR, AgentCore, ExecRec
from actors.agent.streams import UpdateStream
from actors.protocol import messages as M
from actors.protocol.codec import CodecError, unpack_value
from actors.protocol.messages import TaskState

TS = TaskState


def know_framework(agent: AgentCore, info: M.FrameworkInfo) -> None:
    if agent.frameworks.get(info.id) != info:
        agent.frameworks[info.id] = info
        if agent.checkpoint is not None:
            agent.checkpoint.put("fw/" + info.id, info)


def save_executor(agent: AgentCore, rec: ExecRec) -> None:
    if agent.checkpoint is None:
        return
    tids = list(rec.tasks)   # in launch order: a nested container is numbered by it
    ck = M.ExecutorCheckpoint(
        rec.framework_id, rec.info, rec.container_id, rec.default, tuple(rec.tasks[t] for t in tids),
        tuple(rec.groups.get(t, 0) for t in tids),
        tuple((t, rec.states[t]) for t in tids if rec.states[t].terminal), rec.gpus)
    agent.checkpoint.put(f"ex/{rec.framework_id}/{rec.info.executor_id}", ck)


def save_agent(agent: AgentCore, agent_id: str, master_id: str) -> None:
    if agent.checkpoint is not None:
        agent.checkpoint.put("agent", M.AgentCheckpoint(agent_id, master_id))


def restore(agent: AgentCore) -> None:
    """Start again from the checkpoint: the id, the frameworks, the pending updates,
    and the executors - re-created, and re-attached to their tasks' containers."""
    store = agent.checkpoint
    assert store is not None
    records = store.load()
    raw = records.get("agent")
    if raw is None:
        for key in records:      # nothing usable without the agent's own record
            store.delete(key)
        return
    try:
        ac = unpack_value(M.AgentCheckpoint, raw)
    except CodecError as e:
        agent.log.error("agent %s: checkpoint unreadable (%s): starting as a new agent", agent.name, e)
        for key in records:
            store.delete(key)
        return
    agent.agent_id, agent.master_id = ac.agent_id, ac.master_id
    executors: list[M.ExecutorCheckpoint] = []
    for key in sorted(records):
        kind = key.partition("/")[0]
        try:
            if kind == "fw":
                info = unpack_value(M.FrameworkInfo, records[key])
                agent.frameworks[info.id] = info
            elif kind == "ex":
                executors.append(unpack_value(M.ExecutorCheckpoint, records[key]))
            elif kind == "up":
                uc = unpack_value(M.UpdatesCheckpoint, records[key])
                ups = uc.updates
                if ups:
                    agent.streams[(ups[0].framework_id, ups[0].status.task_id)] = UpdateStream.restored(
                        uc, agent.retry_min)
        except CodecError as e:
            agent.stats["checkpoint_bad_records"] += 1
            agent.log.error("agent %s: checkpoint record %r skipped: %s", agent.name, key, e)
    for ck in executors:
        fid = ck.framework_id
        terminal = dict(ck.states)
        recovered: list[M.RecoveredTask] = []
        for task, group in zip(ck.tasks, ck.groups or (0,) * len(ck.tasks), strict=False):
            tid = task.task_id
            state = terminal.get(tid)
            if state is None:
                stream = agent.streams.get((fid, tid))
                state = stream.pending[-1].status.state if stream else TS.TASK_STAGING
            recovered.append(M.RecoveredTask(task, task_container(ck, task), group, state))
        if all(r.state.terminal for r in recovered):
            store.delete(f"ex/{fid}/{ck.info.executor_id}")
            agent.file_completed(fid, ck.info.executor_id, ck.container_id, agent.agent_id,
                                 tuple((r.task.task_id, r.state) for r in recovered))
            continue
        rec = agent.start_executor(fid, ck.info, DEFAULT_EXECUTOR if ck.default else COMMAND_EXECUTOR,
                                   ck.container_id)
        rec.gpus = ck.gpus
        for r in recovered:
            tid = r.task.task_id
            rec.tasks[tid] = r.task
            rec.states[tid] = r.state
            rec.groups[tid] = r.group
            agent.task_index.add((fid, tid))
            if not r.state.terminal and not agent.gpus.claim(fid, tid, ck.gpus):
                agent.log.error("agent %s: the GPUs of task %s are not free after recovery", agent.name, tid)
        agent.send(rec.address, M.ExecRecover(tuple(recovered)))
    agent.restored = True
    agent.stats["recovered_executors"] = len(agent.executors)
    agent.log.info("agent %s: recovered as %s with %d executors and %d pending update streams",
                   agent.name, agent.agent_id, len(agent.executors), len(agent.streams))


def task_container(ck: M.ExecutorCheckpoint, task: M.TaskInfo) -> str:
    if not ck.default:
        return ck.container_id
    # The default executor numbers nested containers in launch order (see DefaultExecutor).
    return f"{ck.container_id}.{[t.task_id for t in ck.tasks].index(task.task_id) + 1}"
