"""What an agent shows operators, in Mesos' shapes: ``/state`` (its frameworks, executors
with their sandbox ``directory``, and tasks), ``/containers`` and ``/monitor/statistics``
(the isolators' latest measures), ``/flags`` and ``/metrics/snapshot``.

Plain functions over an :class:`~actors.agent.core.AgentCore`; the real host serves them
over HTTP (impresario.realhost.endpoints).  docs/operators.md lists every key.
"""

from __future__ import annotations

from typing import Any

from actors.agent.core import AgentCore, ExecRec
from actors.master.views import SHOWN, encode, flags_of, resources
from actors.protocol import messages as M
from actors.protocol.messages import TaskState
from actors.protocol.resources import Resources, from_millis

VERSION = "0.1.0"
#: The agent's task figures (Mesos' slave/tasks_*): gauges of tasks in a state now ...
ACTIVE_STATES = (TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                 TaskState.TASK_KILLING)
#: ... and counters of tasks that ended here since the agent started.
ENDED_STATES = (TaskState.TASK_FINISHED, TaskState.TASK_FAILED, TaskState.TASK_KILLED, TaskState.TASK_LOST,
                TaskState.TASK_ERROR, TaskState.TASK_DROPPED, TaskState.TASK_GONE)
ENDPOINTS = ("state", "flags", "health", "containers", "statistics", "metrics")


def directory(agent: AgentCore, rec: Any) -> str:
    """The executor's sandbox (its run directory: :mod:`actors.agent.paths`)."""
    return agent.directory(rec)


def _task(agent: AgentCore, rec: ExecRec, tid: str) -> dict[str, Any]:
    t = rec.tasks[tid]
    return {"id": tid, "name": t.name, "framework_id": rec.framework_id, "executor_id": rec.info.executor_id,
            "slave_id": agent.agent_id, "state": rec.states[tid].name, "resources": resources(t.resources),
            "labels": [{"key": k, "value": v} for k, v in t.labels]}


def _executor(agent: AgentCore, rec: ExecRec) -> dict[str, Any]:
    tasks = [_task(agent, rec, tid) for tid in sorted(rec.tasks)]
    used = Resources.total([rec.tasks[tid].resources for tid in rec.tasks if not rec.states[tid].terminal])
    return {
        "id": rec.info.executor_id, "name": rec.info.name or rec.info.executor_id, "framework_id": rec.framework_id,
        "container": rec.container_id, "directory": directory(agent, rec), "type": rec.info.type.name,
        "resources": resources(used + rec.info.resources),
        "tasks": [t for t in tasks if not TaskState[t["state"]].terminal],
        "completed_tasks": [t for t in tasks if TaskState[t["state"]].terminal], "queued_tasks": [],
    }


def _completed(agent: AgentCore, c: Any) -> dict[str, Any]:
    return {"id": c.executor_id, "framework_id": c.framework_id, "container": c.container_id,
            "directory": directory(agent, c),
            "completed_tasks": [{"id": tid, "framework_id": c.framework_id, "executor_id": c.executor_id,
                                 "slave_id": c.agent_id, "state": st.name} for tid, st in c.tasks]}


def state(agent: AgentCore, now: float) -> dict[str, Any]:
    """Mesos' agent ``/state``."""
    by_fw: dict[str, list[ExecRec]] = {}
    for (fid, _), rec in sorted(agent.executors.items()):
        by_fw.setdefault(fid, []).append(rec)
    frameworks = []
    for fid in sorted(set(by_fw) | set(agent.frameworks)):
        info = agent.frameworks.get(fid)
        frameworks.append({
            "id": fid, "name": info.name if info else "", "user": info.user if info else "",
            "role": info.roles[0] if info and info.roles else "*", "roles": list(info.roles) if info else [],
            "executors": [_executor(agent, r) for r in by_fw.get(fid, [])],
            "completed_executors": [_completed(agent, c) for c in agent.completed_executors
                                    if c.framework_id == fid],
        })
    master = agent.masters.master
    return {
        "id": agent.agent_id, "pid": agent.flags.get("pid", ""), "hostname": agent.info.hostname,
        "http_address": agent.info.http_address, "version": VERSION, "start_time": agent.started_at,
        "registered": agent.registered, "master_hostname": agent.address_text(master) if master is not None else "",
        "resources": resources(agent.info.resources), "attributes": dict(agent.info.attributes),
        "reserved_resources": {}, "unreserved_resources": resources(agent.info.resources),
        "frameworks": frameworks, "completed_frameworks": [], "flags": flags_of(agent.flags),
        "gpus": agent.gpus.view(),
    }


def _statistics(rec: ExecRec) -> dict[str, Any]:
    """The executor's container's statistics: its tasks' latest, summed."""
    out: dict[str, Any] = {}
    latest = 0.0
    for tid, st in sorted(rec.statistics.items()):
        if rec.states.get(tid, TaskState.TASK_FINISHED).terminal:
            continue
        latest = max(latest, st.timestamp)
        for name in M.ResourceStatistics.__dataclass_fields__:
            if name != "timestamp":
                out[name] = out.get(name, 0) + getattr(st, name)
    out["timestamp"] = latest
    return out


def containers(agent: AgentCore) -> list[dict[str, Any]]:
    """Mesos' ``/containers``: every executor's container, with its statistics."""
    return [{"container_id": rec.container_id, "framework_id": fid, "executor_id": eid,
             "executor_name": rec.info.name or eid, "source": eid, "directory": directory(agent, rec),
             "statistics": _statistics(rec)}
            for (fid, eid), rec in sorted(agent.executors.items())]


def statistics(agent: AgentCore) -> list[dict[str, Any]]:
    """Mesos' ``/monitor/statistics``."""
    return [{"framework_id": fid, "executor_id": eid, "executor_name": rec.info.name or eid, "source": eid,
             "statistics": _statistics(rec)}
            for (fid, eid), rec in sorted(agent.executors.items())]


def metrics(agent: AgentCore, now: float) -> dict[str, float]:
    """Mesos' agent ``/metrics/snapshot`` (slave/...)."""
    out: dict[str, float] = {}
    counts: dict[TaskState, int] = {}
    used: list[Resources] = []
    running = terminating = registering = 0
    for rec in agent.executors.values():
        if rec.exiting:
            terminating += 1
        elif rec.subscribed:
            running += 1
        else:
            registering += 1
        for tid, s in rec.states.items():
            counts[s] = counts.get(s, 0) + 1
            if not s.terminal:
                used.append(rec.tasks[tid].resources)
    for s in ACTIVE_STATES:
        out["slave/tasks_" + s.name[5:].lower()] = counts.get(s, 0)
    for s in ENDED_STATES:
        out["slave/tasks_" + s.name[5:].lower()] = agent.ended.get(s, 0)
    out["slave/executors_registering"] = registering
    out["slave/executors_running"] = running
    out["slave/executors_terminating"] = terminating
    out["slave/executors_terminated"] = agent.executors_terminated
    out["slave/frameworks_active"] = len(agent.frameworks)
    out["slave/registered"] = 1 if agent.registered else 0
    out["slave/uptime_secs"] = now - agent.started_at
    total = agent.info.resources.scalar_map()
    in_use = Resources.total(used).scalar_map() if used else {}
    for k in SHOWN:
        t, u = total.get(k, 0), in_use.get(k, 0)
        out[f"slave/{k}_total"] = from_millis(t)
        out[f"slave/{k}_used"] = from_millis(u)
        out[f"slave/{k}_percent"] = u / t if t else 0.0
    for name, n in sorted(agent.stats.items()):
        out[f"slave/messages_{name}"] = n
    for reason, n in sorted(agent.drops.items()):
        out[f"slave/messages_dropped/{reason}"] = n
    return dict(sorted(out.items()))


def render(agent: AgentCore, now: float, args: dict[str, Any]) -> Any:
    """One view by name (:data:`ENDPOINTS`); KeyError for an unknown one."""
    endpoint = args.get("endpoint")
    if endpoint == "state":
        return state(agent, now)
    if endpoint == "flags":
        return {"flags": flags_of(agent.flags)}
    if endpoint == "health":
        return {"healthy": True}
    if endpoint == "containers":
        return containers(agent)
    if endpoint == "statistics":
        return statistics(agent)
    if endpoint == "metrics":
        return metrics(agent, now)
    raise KeyError(endpoint)


__all__ = ["ENDPOINTS", "render", "state", "containers", "statistics", "metrics", "encode"]
