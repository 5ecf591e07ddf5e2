"""The shapes of the master's ``/state`` and ``/metrics/snapshot``: one check for what a
real master serves and what the simulator writes (``state.json``, ``metrics.json``)."""

from __future__ import annotations

from typing import Any

NUMBER = (int, float)

RESOURCES = {"cpus": NUMBER, "mem": NUMBER, "disk": NUMBER, "gpus": NUMBER}
TASK = {"id": str, "name": str, "framework_id": str, "executor_id": str, "slave_id": str, "state": str,
        "statuses": list, "resources": RESOURCES, "labels": list, "role": str}
FRAMEWORK = {"id": str, "name": str, "role": str, "roles": list, "active": bool, "connected": bool,
             "tasks": [TASK], "completed_tasks": [TASK], "unreachable_tasks": [TASK], "offers": list,
             "resources": RESOURCES, "used_resources": RESOURCES, "offered_resources": RESOURCES,
             "registered_time": NUMBER, "capabilities": list, "user": str, "hostname": str}
AGENT = {"id": str, "hostname": str, "pid": str, "http_address": str, "resources": RESOURCES,
         "used_resources": RESOURCES, "offered_resources": RESOURCES, "attributes": dict, "active": bool,
         "registered_time": NUMBER}
ROLE = {"name": str, "weight": NUMBER, "quota": dict, "allocated": RESOURCES, "offered": RESOURCES,
        "used": RESOURCES, "dominant_share": NUMBER, "frameworks": list}
STATE = {"id": str, "pid": str, "hostname": str, "http_address": str, "version": str, "leader": str,
         "start_time": NUMBER, "elected_time": NUMBER, "activated_slaves": int, "deactivated_slaves": int,
         "unreachable_slaves": int, "slaves": [AGENT], "frameworks": [FRAMEWORK],
         "completed_frameworks": [FRAMEWORK], "orphan_tasks": list, "roles": [ROLE], "flags": dict}
TASK_STATES = {"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED", "TASK_FAILED",
               "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE",
               "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
METRICS = [f"master/tasks_{s}" for s in ("staging", "starting", "running", "killing", "finished", "failed",
                                          "killed", "lost", "error", "unreachable")] + \
    [f"master/{r}_{k}" for r in ("cpus", "mem", "disk", "gpus") for k in ("total", "used", "percent")] + \
    [f"master/slaves_{k}" for k in ("active", "connected", "disconnected", "inactive", "unreachable")] + \
    [f"master/frameworks_{k}" for k in ("active", "connected", "disconnected", "inactive")] + \
    ["master/outstanding_offers", "master/elected", "master/uptime_secs", "master/messages_received",
     "allocator/mesos/allocation_runs", "allocator/mesos/allocation_run_ms", "allocator/mesos/allocation_run_ms/count"]


def check(value: Any, shape: Any, where: str = "state") -> None:
    """AssertionError naming the first place where ``value`` does not have ``shape``."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: expected an object, got {type(value).__name__}"
        for key, sub in shape.items():
            assert key in value, f"{where}: no {key!r}"
            check(value[key], sub, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list), f"{where}: expected a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            check(item, shape[0], f"{where}[{i}]")
    else:
        assert isinstance(value, shape) and not (shape is NUMBER and isinstance(value, bool)), \
            f"{where}: expected {shape}, got {value!r}"


def check_state(state: dict[str, Any]) -> None:
    check(state, STATE)
    for f in state["frameworks"] + state["completed_frameworks"]:
        for t in f["tasks"] + f["completed_tasks"] + f["unreachable_tasks"]:
            assert t["state"] in TASK_STATES, f"task {t['id']}: state {t['state']!r}"
            assert t["framework_id"] == f["id"]


def check_metrics(metrics: dict[str, Any]) -> None:
    for key in METRICS:
        assert key in metrics, f"metrics: no {key!r}"
    for key, value in metrics.items():
        assert isinstance(value, NUMBER) and not isinstance(value, bool), f"metrics: {key} = {value!r}"
