"""What a run leaves, the same on both hosts: each framework's record of its tasks
(:class:`TaskTracker`), and the figures summary.json is made of - task counts,
scheduling latencies, the most tasks running at once, the roles' shares.  Used by the
simulator (``sim/runner.py``) and by ``impresario local`` (``impresario/summary.py``);
``summary.json`` itself is described in docs/cli.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from actors.protocol.messages import TaskState
from actors.protocol.resources import SCALAR_NAMES, from_millis

TS = TaskState
#: The task counts of summary.json, per framework and in all.
TASK_COUNTS = ("tasks_submitted", "tasks_finished", "tasks_failed", "tasks_killed", "tasks_error",
               "tasks_lost", "tasks_running", "tasks_pending")


class TaskTracker:
    """What a framework knows of its tasks: for summaries and latencies."""

    BUCKETS = {
        TS.TASK_FINISHED: "tasks_finished", TS.TASK_FAILED: "tasks_failed",
        TS.TASK_KILLED: "tasks_killed", TS.TASK_ERROR: "tasks_error",
        TS.TASK_LOST: "tasks_lost", TS.TASK_DROPPED: "tasks_lost",
        TS.TASK_GONE: "tasks_lost", TS.TASK_GONE_BY_OPERATOR: "tasks_lost",
    }

    def __init__(self) -> None:
        self.submitted_at: dict[str, float] = {}
        self.state: dict[str, TaskState] = {}     # every task launched (or heard of)
        self.running_at: dict[str, float] = {}
        self.ended_at: dict[str, float] = {}      # tasks that ran, when they ended
        self.terminal = 0
        self.revived = 0
        self.counts: dict[str, int] = dict.fromkeys(
            ["tasks_finished", "tasks_failed", "tasks_killed", "tasks_error", "tasks_lost"], 0)

    def submit(self, task_id: str, now: float) -> None:
        self.submitted_at.setdefault(task_id, now)

    def launch(self, task_id: str, now: float) -> None:
        self.submitted_at.setdefault(task_id, now)
        self.state.setdefault(task_id, TS.TASK_STAGING)

    def update(self, task_id: str, state: TaskState, now: float) -> bool:
        """Record a state; True when the task just became terminal."""
        old = self.state.get(task_id)
        if old is not None and old.terminal:
            return False
        self.submitted_at.setdefault(task_id, now)
        self.state[task_id] = state
        if state == TS.TASK_RUNNING and task_id not in self.running_at:
            self.running_at[task_id] = now
        if state.terminal:
            self.terminal += 1
            self.counts[self.BUCKETS[state]] += 1
            if task_id in self.running_at:
                self.ended_at[task_id] = now
            return True
        return False

    def revive(self, task_id: str, state: TaskState, now: float) -> bool:
        """A task reported TASK_LOST is heard of again (its agent came back): it was not
        lost after all.  True when the tracker took the loss back."""
        if self.state.get(task_id) is not TS.TASK_LOST or state == TS.TASK_LOST:
            return False
        self.terminal -= 1
        self.counts["tasks_lost"] -= 1
        self.ended_at.pop(task_id, None)
        self.state[task_id] = TS.TASK_STAGING
        self.revived += 1
        return True

    @property
    def outstanding(self) -> int:
        return len(self.submitted_at) - self.terminal

    def counts_now(self) -> tuple[int, int, int]:
        """(submitted, running, pending) in constant time: launched and not terminal
        counts as running; submitted and not launched as pending."""
        submitted = len(self.submitted_at)
        known = len(self.state)
        return submitted, known - self.terminal, submitted - known

    def summary(self) -> dict[str, Any]:
        submitted, running, pending = self.counts_now()
        out: dict[str, Any] = {"tasks_submitted": submitted, **self.counts}
        out["tasks_lost_then_found"] = self.revived
        out["tasks_running"] = running
        out["tasks_pending"] = pending
        lat = sorted(self.running_at[t] - self.submitted_at[t] for t in self.running_at)
        out["scheduling_latency"] = {
            "count": len(lat), "p50": percentile(lat, 50), "p90": percentile(lat, 90),
            "p99": percentile(lat, 99), "max": lat[-1] if lat else None,
        }
        return out


def peak_running(trackers: Sequence[TaskTracker]) -> tuple[int, float | None]:
    """The most tasks RUNNING at one instant across ``trackers``, and the first
    instant it was reached (exact, from every task's RUNNING and terminal times)."""
    events: list[tuple[float, int]] = []
    for tr in trackers:
        events.extend((t, 1) for t in tr.running_at.values())
        events.extend((t, -1) for t in tr.ended_at.values())
    events.sort()   # at one instant, ends (-1) before starts (+1): a hand-over is not overlap
    best, at, n = 0, None, 0
    for t, d in events:
        n += d
        if n > best:
            best, at = n, t
    return best, at


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    k = max(0, math.ceil(p / 100 * len(values)) - 1)
    return values[min(k, len(values) - 1)]


def latency_view(latencies: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 6)
    return {"count": len(latencies), "p50": r(percentile(latencies, 50)),
            "p90": r(percentile(latencies, 90)), "p99": r(percentile(latencies, 99)),
            "max": r(latencies[-1] if latencies else None)}


def roles_view(view: dict[str, Any], weights: dict[str, float], quotas: dict[str, Any] | None = None,
               total: dict[str, float] | None = None) -> dict[str, Any]:
    """The summary's ``roles``: allocated now and on average, {cpus, mem, disk, gpus}, MiB;
    ``mean_share``: the time-weighted mean allocation's dominant share of the cluster."""
    out = {}
    quotas = quotas or {}
    for role in sorted(set(view) | set(weights) | set(quotas)):
        v = view.get(role, {})
        zero = dict.fromkeys(SCALAR_NAMES, from_millis(0))
        mean = v.get("mean_allocated", dict.fromkeys(SCALAR_NAMES, 0.0))
        share = max((mean.get(k, 0.0) / t for k, t in (total or {}).items() if t > 0), default=0.0)
        out[role] = {
            "weight": weights.get(role, 1.0),
            "quota": quotas.get(role),
            "mean_share": round(share, 6),
            "allocated": v.get("allocated", zero),
            "mean_allocated": v.get("mean_allocated", dict.fromkeys(SCALAR_NAMES, 0.0)),
            "offered": v.get("offered", zero),
            "mean_offered": v.get("mean_offered", dict.fromkeys(SCALAR_NAMES, 0.0)),
            "used": v.get("used", zero),
            "mean_used": v.get("mean_used", dict.fromkeys(SCALAR_NAMES, 0.0)),
        }
    return out


def summary_text(summary: dict[str, Any]) -> str:
    """summary.json's text: the same layout from every host."""
    return json.dumps(summary, indent=2) + "\n"
