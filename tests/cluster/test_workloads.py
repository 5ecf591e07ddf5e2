"""Simulated workloads in small runs: arrivals (a task's submission time is when the batch
framework enqueued it), shapes and durations, services, and service time.  Task states
are recorded by wrapping the framework's ``status_update`` before the run.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.frameworks.batch import BatchFramework
from actors.protocol.messages import TaskState
from sim import api
from sim.runner import SimCluster, summarize
from tests.scenarios.workloads import ONE_TASK, phase_counts, write

TS = TaskState


@dataclass
class Run:
    end: float
    cluster: SimCluster
    frameworks: dict[str, BatchFramework]
    states: dict[str, list[tuple[TaskState, float]]] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return summarize(self.cluster, self.end, 0.0)

    def first(self, task_id: str, state: TaskState) -> float:
        return next(t for s, t in self.states[task_id] if s == state)

    def terminal(self, task_id: str) -> tuple[TaskState, float]:
        ends = [(s, t) for s, t in self.states[task_id] if s.terminal]
        assert len(ends) == 1, (task_id, self.states[task_id])
        return ends[0]


def run(path: str, overrides: dict[str, Any] | None = None) -> Run:
    """Run a scenario, recording every status update each batch framework is given
    (from its creation on: the configuration phase already runs the clock)."""
    states: dict[str, list[tuple[TaskState, float]]] = defaultdict(list)
    inner = BatchFramework.status_update

    def spy(self: BatchFramework, status: Any) -> None:
        states[status.task_id].append((status.state, self.now()))
        inner(self, status)

    BatchFramework.status_update = spy  # type: ignore[method-assign]
    try:
        cluster = SimCluster(api.load(path, overrides))
        fws = {name: cluster.host.actor(addr) for name, addr in cluster.frameworks}
        end = cluster.run()
    finally:
        BatchFramework.status_update = inner  # type: ignore[method-assign]
    return Run(end, cluster, fws, dict(states))


def submitted(fw: BatchFramework, prefix: str) -> list[float]:
    return sorted(t for tid, t in fw.tracker.submitted_at.items() if tid.startswith(prefix + "-"))


WORKLOAD = """
[[frameworks]]
name = "b"
tasks = [
  { name = "now", count = 20, cpus = 0.1, mem = 64, duration = "5s" },
  { name = "later", count = 5, cpus = 0.1, mem = 64, duration = "5s", start = "30s" },
  { name = "pois", count = 400, cpus = 0.1, mem = 64, duration = "2s", arrival = "poisson(4)" },
  { name = "unif", count = 100, cpus = 0.1, mem = 64, duration = "2s", arrival = "uniform(10s,60s)", start = "1m" },
]
"""


def test_arrivals_in_a_run_follow_each_specification(tmp_path):
    r = run(write(tmp_path, WORKLOAD))
    fw = r.frameworks["b"]
    now = submitted(fw, "now")
    assert len(now) == 20 and len(set(now)) == 1
    t0 = now[0]
    assert 0 <= t0 < 0.01
    assert submitted(fw, "later") == [pytest.approx(t0 + 30)] * 5
    pois = submitted(fw, "pois")
    assert len(pois) == 400 and pois[0] > t0
    gaps = [b - a for a, b in zip([t0, *pois], pois, strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.2)
    unif = submitted(fw, "unif")
    assert len(unif) == 100 and t0 + 70 <= unif[0] and unif[-1] <= t0 + 120
    assert statistics.fmean(unif) == pytest.approx(t0 + 95, abs=5)
    s = r.summary
    assert s["tasks_submitted"] == s["tasks_finished"] == 525
    # The same seed gives the same workload; another seed another one.
    again = run(write(tmp_path, WORKLOAD, name="again.toml"))
    assert submitted(again.frameworks["b"], "pois") == pois
    assert again.summary["digest"] == s["digest"]
    other = run(write(tmp_path, WORKLOAD, seed=8, name="other.toml"))
    assert submitted(other.frameworks["b"], "pois") != pois


def test_diurnal_arrivals_in_a_run_peak_and_trough(tmp_path):
    body = """
    [[frameworks]]
    name = "d"
    tasks = 1000
    task = { cpus = 0.1, mem = 64, duration = "1s", arrival = "diurnal(5/s,40s,0.9)" }
    """
    r = run(write(tmp_path, body))
    fw = r.frameworks["d"]
    times = submitted(fw, "d")
    assert len(times) == 1000
    peak, trough = phase_counts(times, fw._start, 40.0)   # the phase counts from the framework's start
    assert peak > 4 * trough
    assert r.summary["tasks_finished"] == 1000


# --------------------------------------------------------------------------- shapes and durations


def test_durations_are_sampled_from_their_distribution_and_honoured(tmp_path):
    body = """
    [[frameworks]]
    name = "b"
    tasks = [
      { name = "e", count = 400, cpus = 0.1, mem = 64, duration = "exp(20s)" },
      { name = "u", count = 400, cpus = 0.1, mem = 64, duration = "uniform(5s,15s)" },
      { name = "f", count = 10, cpus = 0.1, mem = 64, duration = "7s" },
    ]
    """
    r = run(write(tmp_path, body))
    fw = r.frameworks["b"]
    dur = {tid: p.duration for tid, p in fw.attempts.items()}
    e = [d for tid, d in dur.items() if tid.startswith("e-")]
    u = [d for tid, d in dur.items() if tid.startswith("u-")]
    assert len(e) == len(u) == 400
    assert min(e) >= 0 and statistics.fmean(e) == pytest.approx(20, rel=0.15)
    assert statistics.stdev(e) == pytest.approx(20, rel=0.2)           # exponential: sd = mean
    assert all(5 <= d <= 15 for d in u) and statistics.fmean(u) == pytest.approx(10, abs=0.5)
    assert statistics.stdev(u) == pytest.approx(10 / math.sqrt(12), rel=0.15)
    assert [dur[f"f-{i}"] for i in range(10)] == [7.0] * 10
    # Every task ran (RUNNING -> FINISHED, as the framework heard it) for its sampled duration.
    for tid, d in dur.items():
        state, at = r.terminal(tid)
        assert state == TS.TASK_FINISHED
        assert at - r.first(tid, TS.TASK_RUNNING) == pytest.approx(d, abs=0.01)
    assert r.end == pytest.approx(max(r.terminal(t)[1] for t in dur), abs=1e-6)


def test_each_shape_launches_with_its_resources(tmp_path):
    body = """
    [[frameworks]]
    name = "b"
    tasks = [
      { name = "small", count = 2, cpus = 1, mem = "1GiB", duration = "100s" },
      { name = "big", cpus = 3, mem = "4GiB", duration = "100s" },
    ]
    """
    res = api.run(write(tmp_path, body, agents=1, cpus=8, mem="16GiB"), plots=False)
    at50 = min(res.timeseries, key=lambda row: abs(row["time"] - 50))
    assert at50["time"] == pytest.approx(50, abs=5)
    assert at50["tasks_running"] == 3
    assert at50["util_cpus"] == pytest.approx(5 / 8)
    assert at50["util_mem"] == pytest.approx(6 / 16)
    fw = res.host.actor("framework/b")
    assert sorted(fw.tracker.state) == ["big", "small-0", "small-1"]
    assert res.summary["tasks_finished"] == 3


# --------------------------------------------------------------------------- services and the end of a run


def test_services_run_until_stopped_then_are_killed(tmp_path):
    body = """
    [[frameworks]]
    name = "b"
    stop_services_at = "2m"
    tasks = [
      { name = "job", count = 5, cpus = 1, mem = 128, duration = "30s" },
      { name = "web", count = 2, cpus = 1, mem = 128, service = true, start = "10s" },
    ]
    """
    r = run(write(tmp_path, body))
    fw = r.frameworks["b"]
    t0 = fw._start
    for tid in ("web-0", "web-1"):
        states = [s for s, _ in r.states[tid]]
        assert states[-2:] == [TS.TASK_RUNNING, TS.TASK_KILLED]   # RUNNING to the end, then KILLED
        # Launched within a batching window (0.1 s) of its arrival; killed at the stop.
        assert r.first(tid, TS.TASK_RUNNING) == pytest.approx(t0 + 10, abs=0.15)
        assert r.terminal(tid)[1] == pytest.approx(t0 + 120, abs=0.05)
    for i in range(5):
        assert r.terminal(f"job-{i}")[0] == TS.TASK_FINISHED
    s = r.summary
    assert (s["tasks_finished"], s["tasks_killed"], s["tasks_running"]) == (5, 2, 0)
    assert r.end == pytest.approx(t0 + 120, abs=0.05)       # the services were the last to end


def test_services_never_stopped_keep_the_run_going_to_its_limit(tmp_path):
    body = """
    [[frameworks]]
    name = "b"
    tasks = [
      { name = "job", cpus = 1, mem = 128, duration = "30s" },
      { name = "web", cpus = 1, mem = 128, service = true },
    ]
    """
    r = run(write(tmp_path, body, until="10m"))
    assert r.end == 600
    assert [s for s, _ in r.states["web"]][-1] == TS.TASK_RUNNING
    assert r.terminal("job")[0] == TS.TASK_FINISHED
    s = r.summary
    assert (s["tasks_finished"], s["tasks_running"]) == (1, 1)
    assert not r.frameworks["b"].is_done()


def test_services_still_waiting_for_room_are_killed_at_the_stop(tmp_path):
    body = """
    [[frameworks]]
    name = "b"
    stop_services_at = "1m"
    tasks = [{ name = "big", count = 3, cpus = 8, mem = 128, service = true }]
    """
    r = run(write(tmp_path, body, agents=1, cpus=8))
    s = r.summary
    assert s["tasks_submitted"] == 3 and s["tasks_killed"] == 3 and s["tasks_running"] == 0
    ran = [t for t in ("big-0", "big-1", "big-2") if t in r.states]
    assert len(ran) == 1                                    # only one fits the agent
    assert all(st is TS.TASK_KILLED for st in r.frameworks["b"].tracker.state.values())
    assert r.end == pytest.approx(r.frameworks["b"]._start + 60, abs=0.05)


def test_services_due_after_the_stop_end_as_they_arrive(tmp_path):
    body = """
    [[frameworks]]
    name = "b"
    stop_services_at = "1m"
    tasks = [
      { name = "job", cpus = 1, mem = 128, duration = "30s" },
      { name = "late", count = 2, cpus = 1, mem = 128, service = true, start = "90s" },
    ]
    """
    r = run(write(tmp_path, body, until="1h"))
    fw = r.frameworks["b"]
    s = r.summary
    assert (s["tasks_submitted"], s["tasks_finished"], s["tasks_killed"]) == (3, 1, 2)
    assert "late-0" not in r.states and "late-1" not in r.states     # never launched
    assert fw.is_done() and r.end == pytest.approx(fw._start + 90, abs=0.05)


def test_the_run_ends_when_the_last_batch_task_ends(tmp_path):
    body = """
    [[frameworks]]
    name = "b"
    tasks = [
      { name = "a", cpus = 1, mem = 128, duration = "10s" },
      { name = "c", cpus = 1, mem = 128, duration = "45s" },
      { name = "d", cpus = 1, mem = 128, duration = "20s", start = "100s" },
    ]
    """
    r = run(write(tmp_path, body))
    fw = r.frameworks["b"]
    last = max(r.terminal(t)[1] for t in ("a", "c", "d"))
    assert r.terminal("d")[1] == last
    assert r.end == pytest.approx(last) and fw.done_at == pytest.approx(last)
    assert last == pytest.approx(fw._start + 120, abs=0.15)   # + a batching window, + latencies
    assert r.summary["virtual_seconds"] == pytest.approx(last, abs=1e-6)


def test_an_arrival_due_while_offers_are_held_does_not_stall_the_clock(tmp_path):
    """Regression: with offers held for a coming arrival, the hold timer aimed at the
    arrival's time could fire a rounding error before the arrival's own timer, then
    re-arm itself at 0 s for ever; the virtual clock stood still at 30.0005 s."""
    body = """
    [[frameworks]]
    name = "b"
    tasks = [
      { name = "a", cpus = 4, mem = 8, duration = "60s" },
      { name = "b", cpus = 1, mem = 128, duration = "90s", start = "10s" },
      { name = "c", cpus = 8, mem = 32, duration = "30s", start = "30s" },
      { name = "d", cpus = 16, mem = 65536, duration = "20s", start = "60s" },
      { name = "e", cpus = 1, mem = 1, duration = "0s", start = "70s" },
    ]
    """
    cluster = SimCluster(api.load(write(tmp_path, body, agents=2, cpus=16, mem="64GiB", seed=4)))
    fw = cluster.host.actor("framework/b")
    steps = itertools.count()
    cluster.host.run(until=7200, stop_when=lambda: fw.is_done() or next(steps) > 50_000)
    assert fw.is_done(), f"stalled at {cluster.host.now} s"
    assert fw.tracker.counts["tasks_finished"] == 5
    assert fw.done_at == pytest.approx(fw._start + 100, abs=0.2)   # b: from 10 s, 90 s long

BURST = """
[[frameworks]]
name = "f"
count = 20
tasks = 1
task = { cpus = 1, mem = 128, duration = "5s" }
"""


def test_fixed_service_time_adds_its_cost_to_every_hop(tmp_path):
    """A lone task: from submission to RUNNING is a chain of messages, each handled
    once; with fixed(X) every hop costs X more, so the delay grows by k X with the
    same whole k for any small X."""
    path = write(tmp_path, ONE_TASK)

    def times(st: str) -> tuple[float, float, dict[str, Any]]:
        r = run(path, {"service_time": st})
        tr = r.frameworks["b"].tracker
        return tr.running_at["b"] - tr.submitted_at["b"], r.end, r.summary

    base, base_end, s0 = times("zero")
    assert s0["master_busy_fraction"] == 0 and s0["peak_master_queue"] == 0
    hops = []
    for x in (0.001, 0.005):
        lat, end, s = times(f"fixed({x * 1000:g}ms)")
        to_run, to_end = (lat - base) / x, (end - base_end) / x
        assert to_run == pytest.approx(round(to_run), abs=1e-6)
        assert to_end == pytest.approx(round(to_end), abs=1e-6)
        hops.append((round(to_run), round(to_end)))
        assert s["master_busy_fraction"] > 0
        assert s["tasks_finished"] == 1
    assert hops[0] == hops[1]
    # At least subscribe, offer, accept, launch, run on the way; the update on the way back.
    assert hops[0][0] >= 5 and hops[0][1] > hops[0][0]


def test_a_burst_queues_at_the_master_only_with_a_service_time(tmp_path):
    path = write(tmp_path, BURST)
    zero = api.run(path, {"service_time": "zero"}, plots=False).summary
    fixed = api.run(path, {"service_time": "fixed(2ms)"}, plots=False).summary
    assert zero["peak_master_queue"] == 0
    # Twenty frameworks subscribe at the same instant: nineteen wait behind the first.
    assert fixed["peak_master_queue"] >= 19
    assert fixed["master_busy_fraction"] > 0
    assert zero["tasks_finished"] == fixed["tasks_finished"] == 20


def test_digests_are_exact_for_zero_and_fixed(tmp_path):
    path = write(tmp_path, BURST)
    digests = {st: {api.run(path, {"service_time": st}, plots=False).summary["digest"] for _ in range(2)}
               for st in ("zero", "fixed(2ms)", "fixed(3ms)")}
    assert all(len(d) == 1 for d in digests.values()), digests
    assert len(set.union(*digests.values())) == 3          # the service time shows in the digest


def test_measured_runs_agree_in_their_figures(tmp_path):
    path = write(tmp_path, BURST)
    runs = [api.run(path, {"service_time": "measured"}, plots=False).summary for _ in range(2)]
    for s in runs:
        assert s["service_time"] == "measured"
        assert (s["tasks_submitted"], s["tasks_finished"], s["tasks_running"], s["tasks_pending"]) == (20, 20, 0, 0)
        assert s["master_busy_fraction"] > 0               # the handlers' CPU time was charged
        assert s["peak_master_queue"] >= 1                 # the burst queued behind real work
    assert runs[0]["per_framework"].keys() == runs[1]["per_framework"].keys()
    assert [v["tasks_finished"] for v in runs[0]["per_framework"].values()] == [1] * 20
