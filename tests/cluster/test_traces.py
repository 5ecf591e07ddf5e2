"""Trace replay end to end: each task is submitted at its trace time (after the
framework's start), runs for its trace duration and ends as the trace says.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import pytest

from actors.frameworks.batch import BatchFramework
from actors.protocol.messages import TaskState
from sim import api
from sim.runner import SimCluster, summarize
from sim.traces import read
from tests.scenarios.traces import (
    GOOGLE,
    GOOGLE_SAMPLE,
    SCHEDULE,
    SUBMIT,
    SWF,
    SWF_SAMPLE,
    g,
    put,
    scenario,
)

TS = TaskState


def replay(path: str, overrides: dict[str, Any] | None = None) -> tuple[SimCluster, float, dict[str, Any]]:
    """Run a scenario; returns the cluster, its end, and every task's (state, time) updates."""
    updates: dict[str, list[tuple[TaskState, float]]] = defaultdict(list)
    inner = BatchFramework.status_update

    def spy(self: BatchFramework, status: Any) -> None:
        updates[status.task_id].append((status.state, self.now()))
        inner(self, status)

    BatchFramework.status_update = spy  # type: ignore[method-assign]
    try:
        cluster = SimCluster(api.load(path, overrides))
        end = cluster.run()
    finally:
        BatchFramework.status_update = inner  # type: ignore[method-assign]
    return cluster, end, dict(updates)


def framework(cluster: SimCluster, name: str) -> BatchFramework:
    return cluster.host.actor(f"framework/{name}")


def check_replayed(cluster: SimCluster, updates: dict[str, Any], name: str, tasks: list[dict[str, Any]]) -> None:
    """Every trace task was submitted at its trace time, ran its duration, ended as the trace says."""
    fw = framework(cluster, name)
    tr = fw.tracker
    assert sorted(tr.submitted_at) == sorted(x["id"] for x in tasks)
    for x in tasks:
        tid = x["id"]
        assert tr.submitted_at[tid] == pytest.approx(fw._start + x["time"], abs=1e-9)
        res = fw.attempts[tid].shape.resources
        assert (res.cpus, res.mem) == (pytest.approx(x["cpus"]), pytest.approx(x["mem"]))
        running = next(t for s, t in updates[tid] if s == TS.TASK_RUNNING)
        [(state, ended)] = [(s, t) for s, t in updates[tid] if s.terminal]
        # (A 0 s task's end waits for its RUNNING update to be acknowledged: a few ms.)
        assert ended - running == pytest.approx(x["duration"], abs=0.005)
        assert state == (TS.TASK_FINISHED if x["exit_code"] == 0 else TS.TASK_FAILED)


def test_replaying_a_google_trace(tmp_path):
    put(tmp_path / "t.csv.gz", GOOGLE)
    path = scenario(tmp_path, """
        [[frameworks]]
        name = "g"
        trace = "t.csv.gz"
        trace_format = "google2011"
        """)
    cluster, end, updates = replay(path)
    tasks = read(str(tmp_path / "t.csv.gz"), "google2011", 8, 16384)
    check_replayed(cluster, updates, "g", tasks)
    s = summarize(cluster, end, 0.0)
    assert (s["tasks_submitted"], s["tasks_finished"], s["tasks_failed"], s["tasks_running"]) == (5, 2, 3, 0)
    fw = framework(cluster, "g")
    # The last task to end (9-4: submitted at 50 s, 1 s long) ends the run.
    assert end == fw.done_at == pytest.approx(max(t for u in updates.values() for _, t in u))
    assert end == pytest.approx(fw._start + 51, abs=0.2)


def test_replaying_a_swf_trace_with_limit_and_time_scale(tmp_path):
    put(tmp_path / "log.swf.gz", SWF.splitlines())
    path = scenario(tmp_path, """
        [[frameworks]]
        name = "s"
        trace = "log.swf.gz"
        trace_format = "swf"
        """, cpus=16, mem="64GiB")
    cluster, end, updates = replay(path)
    tasks = read(str(tmp_path / "log.swf.gz"), "swf", 16, 65536)
    check_replayed(cluster, updates, "s", tasks)
    s = summarize(cluster, end, 0.0)
    assert (s["tasks_submitted"], s["tasks_finished"], s["tasks_failed"]) == (5, 3, 2)
    # Only the first three jobs, arriving twice as fast (durations are kept).
    cluster, end, updates = replay(path, {"frameworks.0.trace_limit": 3, "frameworks.0.trace_time_scale": 0.5})
    check_replayed(cluster, updates, "s", [{**x, "time": x["time"] / 2} for x in tasks[:3]])
    assert summarize(cluster, end, 0.0)["tasks_submitted"] == 3


def test_a_trace_beside_tasks_replays_both(tmp_path):
    put(tmp_path / "log.swf", SWF.splitlines())
    path = scenario(tmp_path, """
        [[frameworks]]
        name = "s"
        trace = "log.swf"
        trace_format = "swf"
        tasks = [{ name = "extra", count = 4, cpus = 1, mem = 64, duration = "200s", start = "10s" }]
        """, cpus=16, mem="64GiB")
    cluster, end, _ = replay(path)
    s = summarize(cluster, end, 0.0)
    assert s["tasks_submitted"] == 9 and s["tasks_finished"] + s["tasks_failed"] == 9
    assert end == pytest.approx(framework(cluster, "s")._start + 210, abs=0.2)   # the extra tasks end last


def test_a_trace_with_no_finished_task_is_an_empty_workload(tmp_path):
    put(tmp_path / "t.csv", [g(0, 1, 0, SUBMIT), g(1, 1, 0, SCHEDULE)])
    path = scenario(tmp_path, """
        [[frameworks]]
        name = "g"
        trace = "t.csv"
        trace_format = "google2011"
        """)
    cluster, end, _ = replay(path)
    assert summarize(cluster, end, 0.0)["tasks_submitted"] == 0
    assert framework(cluster, "g").is_done() and end < 1


def test_a_malformed_trace_stops_the_run_before_it_starts(tmp_path):
    put(tmp_path / "t.csv", [g(0, 1, 0, SUBMIT), "1,2,3"])
    path = scenario(tmp_path, """
        [[frameworks]]
        name = "g"
        trace = "t.csv"
        trace_format = "google2011"
        """)
    sc = api.load(path)                       # the file exists: the scenario is valid
    with pytest.raises(ValueError, match=r"configuration refused: g: .*t\.csv:2: expected 13 columns, got 3"):
        SimCluster(sc)


def test_a_trace_needs_a_workload_port(tmp_path):
    put(tmp_path / "log.swf", SWF.splitlines())
    path = scenario(tmp_path, """
        [[frameworks]]
        name = "s"
        trace = "log.swf"
        trace_format = "swf"
        """, cpus=16, mem="64GiB")
    sc = api.load(path)
    sc.frameworks[0].ports = []
    with pytest.raises(ValueError, match="a trace needs a workload port"):
        SimCluster(sc)


def test_the_shipped_samples_replay_to_completion(tmp_path):
    path = scenario(tmp_path, f"""
        [[frameworks]]
        name = "google"
        trace = "{os.path.relpath(GOOGLE_SAMPLE, tmp_path)}"
        trace_format = "google2011"
        [[frameworks]]
        name = "swf"
        trace = "{SWF_SAMPLE}"
        trace_format = "swf"
        """, agents=10, cpus=32, mem="128GiB", until="6h")
    cluster, end, updates = replay(path)
    s = summarize(cluster, end, 0.0)
    for name, sample, fmt in (("google", GOOGLE_SAMPLE, "google2011"), ("swf", SWF_SAMPLE, "swf")):
        tasks = read(sample, fmt, 32, 131072)
        v = s["per_framework"][name]
        assert v["tasks_submitted"] == len(tasks)
        assert v["tasks_finished"] == sum(x["exit_code"] == 0 for x in tasks)
        assert v["tasks_failed"] == sum(x["exit_code"] != 0 for x in tasks)
        assert v["tasks_running"] == v["tasks_pending"] == 0
        fw = framework(cluster, name)
        assert fw.is_done() and v["done_at"] >= fw._start + max(x["time"] + x["duration"] for x in tasks)
        for x in tasks[:50]:
            running = next(t for st_, t in updates[x["id"]] if st_ == TS.TASK_RUNNING)
            ended = next(t for st_, t in updates[x["id"]] if st_.terminal)
            assert ended - running == pytest.approx(x["duration"], abs=0.005)
    assert end < 6 * 3600 and s["tasks_submitted"] == 591 + 300
