"""The trace readers (sim/traces.py): Google 2011 and SWF, on small traces written here
(plain and gzipped) and on the shipped samples against their raw files; the workload
port's limit and time scale.  Replays end to end: tests/cluster/test_traces.py.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import textwrap
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim import api, traces
from sim.scenario import ScenarioError
from sim.traces import TraceError, TraceWorkload, read, read_google2011, read_swf
from tests.scenarios.traces import (
    EVICT,
    FAIL,
    FINISH,
    GOOGLE,
    GOOGLE_SAMPLE,
    KILL,
    SCHEDULE,
    SUBMIT,
    SWF,
    SWF_SAMPLE,
    g,
    put,
    scenario,
)

GOOGLE_TASKS = [  # (time, id, cpus, mem, duration, exit code) with agents of 8 cpus, 16 GiB
    (0.0, "7-2", 1.0, 4096.0, 10.0, 0),
    (5.0, "7-0", 2.0, 8192.0, 30.0, 0),
    (6.0, "7-1", 4.0, 16384.0, 5.0, 1),
    (12.0, "9-0", 0.001, 1.0, 7.0, 1),
    (50.0, "9-4", 2.0, 8192.0, 1.0, 1),
]


def shaped(tasks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(pytest.approx(x["time"]), x["id"], x["cpus"], x["mem"], pytest.approx(x["duration"]),
             x["exit_code"]) for x in tasks]


@pytest.mark.parametrize("name", ["task_events.csv", "task_events.csv.gz"])
def test_google2011_tasks_from_a_small_trace(tmp_path, name):
    path = put(tmp_path / name, GOOGLE)
    tasks = read(path, "google2011", 8, 16384)
    assert shaped(tasks) == GOOGLE_TASKS
    assert set(tasks[0]) == {"time", "id", "cpus", "mem", "duration", "exit_code"}


def test_google2011_a_task_resubmitted_after_it_ended_runs_again_under_its_own_id(tmp_path):
    path = put(tmp_path / "t.csv", [
        g(1, 42, 0, SUBMIT), g(2, 42, 0, SCHEDULE), g(12, 42, 0, FAIL),
        g(13, 42, 0, SUBMIT), g(14, 42, 0, SCHEDULE), g(34, 42, 0, FINISH),
        g(40, 42, 0, SUBMIT), g(41, 42, 0, SCHEDULE), g(42, 42, 0, KILL),
    ])
    tasks = read_google2011(path, 8, 16384)
    assert [(x["id"], x["time"], x["duration"], x["exit_code"]) for x in tasks] == [
        ("42-0", 0.0, 10.0, 1), ("42-0.1", 12.0, 20.0, 0), ("42-0.2", 39.0, 1.0, 1)]


def test_google2011_an_evicted_task_ended_before_it_ran_again_is_skipped(tmp_path):
    """Its pending time after the eviction is no run: EVICT -> KILL pairs with no SCHEDULE."""
    path = put(tmp_path / "t.csv", [
        g(0, 1, 0, SUBMIT), g(1, 1, 0, SCHEDULE), g(2, 1, 0, EVICT), g(3, 1, 0, SUBMIT), g(500, 1, 0, KILL),
        g(0, 1, 1, SUBMIT), g(1, 1, 1, SCHEDULE), g(2, 1, 1, EVICT), g(3, 1, 1, SUBMIT),
        g(4, 1, 1, SCHEDULE), g(9, 1, 1, FINISH),
    ])
    assert [(x["id"], x["duration"]) for x in read_google2011(path, 8, 16384)] == [("1-1", 5.0)]


def test_google2011_blank_lines_are_skipped(tmp_path):
    plain = read_google2011(put(tmp_path / "a.csv", GOOGLE), 8, 16384)
    blanks = read_google2011(put(tmp_path / "b.csv", ["", *GOOGLE[:3], "  ", "\r", *GOOGLE[3:], ""]), 8, 16384)
    assert blanks == plain and plain


def test_google2011_requests_scale_to_the_agent_shape(tmp_path):
    path = put(tmp_path / "t.csv", [g(0, 1, 0, SUBMIT, 0.3, 0.1), g(0, 1, 0, SCHEDULE), g(5, 1, 0, FINISH)])
    [a] = read_google2011(path, 8, 16384)
    [b] = read_google2011(path, 32, 131072)
    assert (a["cpus"], a["mem"]) == (2.4, 1638.4)
    assert (b["cpus"], b["mem"]) == (9.6, 13107.2)


@pytest.mark.parametrize("line,words", [
    ("1000000,,1,0,,0,u,2,0,0.1,0.1,0.0001", "expected 13 columns, got 12"),
    ("1000000,,1,0,,0,u,2,0,0.1,0.1,0.0001,0,9", "expected 13 columns, got 14"),
    ("1000000", "expected 13 columns, got 1"),
    ("1.5e6,,1,0,,0,u,2,0,0.1,0.1,0.0001,0", "time and event type must be integers"),
    ("1000000,,1,0,,SUBMIT,u,2,0,0.1,0.1,0.0001,0", "time and event type must be integers"),
    ("1000000,,1,0,,0,u,2,0,lots,0.1,0.0001,0", "CPU and memory requests must be numbers"),
    ("1000000,,1,0,,0,u,2,0,0.1,?,0.0001,0", "CPU and memory requests must be numbers"),
])
@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_google2011_malformed_lines_are_errors_naming_file_and_line(tmp_path, line, words, name):
    path = put(tmp_path / name, [g(0, 1, 0, SUBMIT), line, g(1, 1, 0, SCHEDULE)])
    with pytest.raises(TraceError) as e:
        read(path, "google2011", 8, 16384)
    assert str(e.value) == f"{path}:2: {words}"
SWF_TASKS = [  # (time, id, cpus, mem, duration, exit code) with agents of 16 cpus, 64 GiB
    (0.0, "job1", 4.0, 8.0, 60.0, 0),        # requested processors and memory (KB per processor)
    (10.0, "job3", 1.0, 128.0, 90.0, 1),     # no memory known: 128 MiB; cancelled
    (30.0, "job2", 8.0, 32.0, 30.0, 1),      # allocated processors, used memory; failed
    (60.0, "job6", 16.0, 65536.0, 20.0, 0),  # capped at the largest agent
    (70.0, "job7", 1.0, 1.0, 0.0, 0),        # at least 1 MiB
]


@pytest.mark.parametrize("name", ["log.swf", "log.swf.gz"])
def test_swf_fields_map_to_tasks(tmp_path, name):
    path = put(tmp_path / name, SWF.splitlines())
    assert shaped(read(path, "swf", 16, 65536)) == SWF_TASKS


@pytest.mark.parametrize("line,words", [
    ("8 180 0 10 1 -1 512 1 100 512", "expected at least 11 fields, got 10"),
    ("8 180 0 ten 1 -1 512 1 100 512 1", "fields must be numbers"),
    ("8 180 0 10 1 -1 512 1.5 100 512 1", "fields must be numbers"),
])
def test_swf_malformed_lines_are_errors_naming_file_and_line(tmp_path, line, words):
    path = put(tmp_path / "log.swf", ["; header", "1 0 0 5 1 -1 512 1 10 512 1", line])
    with pytest.raises(TraceError) as e:
        read_swf(path, 16, 65536)
    assert str(e.value) == f"{path}:3: {words}"


swf_jobs = st.lists(st.tuples(
    st.integers(0, 10**6),                      # submit
    st.integers(-1, 10**5),                     # run time
    st.integers(-1, 64), st.integers(-1, 64),   # allocated, requested processors
    st.integers(-1, 2**21), st.integers(-1, 2**21),  # used, requested memory (KB per processor)
    st.sampled_from([-1, 0, 1, 5]),             # status
), max_size=30)


@given(jobs=swf_jobs)
def test_swf_reader_property(jobs):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "p.swf")
        with open(path, "w") as fh:
            fh.write("; generated\n")
            for n, (submit, run, alloc, req, used, reqmem, status) in enumerate(jobs, 1):
                fh.write(f"{n} {submit} 0 {run} {alloc} -1 {used} {req} -1 {reqmem} {status} 1 1 -1 1 1 -1 -1\n")
        tasks = read_swf(path, 16, 65536)
    replayable = {f"job{n}": j for n, j in enumerate(jobs, 1) if j[1] >= 0 and (j[3] > 0 or j[2] > 0)}
    assert {x["id"] for x in tasks} == set(replayable)
    t0 = min((j[0] for j in replayable.values()), default=0)
    assert [(x["time"], x["id"]) for x in tasks] == sorted((x["time"], x["id"]) for x in tasks)
    for x in tasks:
        submit, run, alloc, req, used, reqmem, status = replayable[x["id"]]
        procs = req if req > 0 else alloc
        kb = reqmem if reqmem > 0 else used
        assert x["time"] == submit - t0 and x["duration"] == run
        assert x["cpus"] == min(procs, 16)
        assert x["mem"] == (max(1.0, min(kb * procs / 1024, 65536)) if kb > 0 else 128.0)
        assert x["exit_code"] == (0 if status == 1 else 1)


def test_read_refuses_unknown_formats_and_missing_files(tmp_path):
    with pytest.raises(TraceError, match="unknown trace format 'csv' \\(known: google2011, swf\\)"):
        read(SWF_SAMPLE, "csv", 8, 1024)
    with pytest.raises(TraceError, match=r"no trace file .*nothing\.swf"):
        read(str(tmp_path / "nothing.swf"), "swf", 8, 1024)


def test_the_workload_port_applies_limit_and_time_scale(tmp_path):
    path = put(tmp_path / "log.swf", SWF.splitlines())
    settings = {"trace": {"path": path, "format": "swf", "agent_cpus": 16, "agent_mem": 65536,
                          "limit": 3, "time_scale": 0.5}}
    port = traces.trace_workload(None, settings)
    assert isinstance(port, TraceWorkload)
    assert [(x["id"], x["time"]) for x in port.arrivals()] == [("job1", 0.0), ("job3", 5.0), ("job2", 15.0)]


def test_the_shipped_samples_read_as_their_raw_files_say():
    g_tasks = read(GOOGLE_SAMPLE, "google2011", 32, 131072)
    ends: dict[tuple[str, str], int] = {}
    with gzip.open(GOOGLE_SAMPLE, "rt") as fh:
        rows = [line.rstrip("\n").split(",") for line in fh]
    assert all(len(r) == 13 for r in rows)
    for r in rows:
        if r[5] in ("3", "4"):
            ends[(r[2], r[3])] = int(r[5])
    assert {x["id"] for x in g_tasks} == {f"{j}-{i}" for j, i in ends}
    assert sum(x["exit_code"] for x in g_tasks) == sum(e == 3 for e in ends.values()) > 0
    assert g_tasks[0]["time"] == 0 and all(0 < x["cpus"] <= 32 and 1 <= x["mem"] <= 131072 for x in g_tasks)
    assert all(x["duration"] > 0 for x in g_tasks)
    s_tasks = read(SWF_SAMPLE, "swf", 32, 131072)
    with open(SWF_SAMPLE) as fh:
        jobs = [line.split() for line in fh if line.strip() and not line.startswith(";")]
    assert len(s_tasks) == len(jobs) == 300
    by_id = {x["id"]: x for x in s_tasks}
    for j in jobs:
        x = by_id[f"job{j[0]}"]
        assert (x["duration"], x["cpus"], x["exit_code"]) == (float(j[3]), float(j[7]), 0 if j[10] == "1" else 1)
        assert x["mem"] == int(j[9]) * int(j[7]) / 1024


def test_a_relative_trace_path_is_read_beside_the_scenario(tmp_path, monkeypatch):
    (tmp_path / "sc" / "data").mkdir(parents=True)
    put(tmp_path / "sc" / "data" / "t.csv.gz", GOOGLE)
    path = scenario(tmp_path / "sc", """
        [[frameworks]]
        name = "g"
        trace = "data/t.csv.gz"
        trace_format = "google2011"
        """, cpus=8, mem="16GiB")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fw = api.load(path).frameworks[0]
    assert fw.settings["trace"] == {"path": str(tmp_path / "sc" / "data" / "t.csv.gz"), "format": "google2011",
                                    "agent_cpus": 8.0, "agent_mem": 16384.0}
    assert fw.ports == [("workload", "sim.traces:trace_workload")]
    # An absolute path is taken as it is.
    absolute = api.load(path, {"frameworks.0.trace": str(tmp_path / "sc" / "data" / "t.csv.gz")})
    assert absolute.frameworks[0].settings["trace"]["path"] == str(tmp_path / "sc" / "data" / "t.csv.gz")


def test_the_trace_is_scaled_to_the_largest_agent_of_the_scenario(tmp_path):
    put(tmp_path / "t.swf", ["1 0 0 5 1 -1 512 1 10 512 1"])
    path = tmp_path / "groups.toml"
    path.write_text(textwrap.dedent("""\
        [cluster]
        [[cluster.groups]]
        count = 2
        cpus = 8
        mem = "64GiB"
        [[cluster.groups]]
        count = 1
        cpus = 32
        mem = "16GiB"
        [[cluster.groups]]
        count = 0
        cpus = 128
        mem = "1TiB"
        [[frameworks]]
        name = "s"
        trace = "t.swf"
        trace_format = "swf"
        """))
    trace = api.load(str(path)).frameworks[0].settings["trace"]
    assert (trace["agent_cpus"], trace["agent_mem"]) == (32.0, 65536.0)


@pytest.mark.parametrize("extra,words", [
    ('trace = "missing.swf"\ntrace_format = "swf"', "framework 'x'.trace: no file "),
    ('trace = "t.swf"\ntrace_format = "pbs"', "framework 'x'.trace_format must be one of google2011, swf, got 'pbs'"),
    ('trace = "t.swf"', "trace_format must be one of google2011, swf, got None"),
    ('trace_format = "swf"', "trace_format, trace_limit and trace_time_scale go with trace = \"PATH\""),
    ('trace_limit = 3', "go with trace = \"PATH\""),
    ('trace_time_scale = 0.5', "go with trace = \"PATH\""),
    ('trace = "t.swf"\ntrace_format = "swf"\ntrace_limit = 0', "trace_limit must be an integer >= 1"),
    ('trace = "t.swf"\ntrace_format = "swf"\ntrace_time_scale = -1', "trace_time_scale must be a number >= 0"),
])
def test_bad_trace_settings_are_refused_with_a_reason(tmp_path, extra, words):
    put(tmp_path / "t.swf", ["1 0 0 5 1 -1 512 1 10 512 1"])
    path = scenario(tmp_path, f'[[frameworks]]\nname = "x"\n{extra}\n')
    with pytest.raises(ScenarioError) as e:
        api.load(path)
    assert words in str(e.value) and path in str(e.value)
