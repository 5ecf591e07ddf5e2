"""The simulator's results of real runs (summary.json, timeseries.csv, the progress line),
its Python API's run and sweeps (sweep, the CLI table).

Every run here is a tiny cluster: a few agents, tens of tasks, a fraction of a second.
"""

import io
import itertools
import json
import math
import os
import re
import subprocess
import sys

import pytest

from impresario import cli
from sim import api, runner
from sim.scenario import parse
from tests.scenarios.results import QUICKSTART, ROOT, SMALL, SMALL_TOML, read_csv

# quickstart, cut short: 4 agents (64 cpus) for 60 + 10 tasks wanting 80 cpus; still busy at 2 min.
CUT = {"agents": 4, "frameworks.0.tasks": 60, "frameworks.1.tasks": 10, "until": "2m",
       "sim.sample_every": "20s"}

TASK_COUNTS = ("tasks_finished", "tasks_failed", "tasks_killed", "tasks_error", "tasks_lost",
               "tasks_running", "tasks_pending")


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    """A run in which every task ends before ``until``."""
    out = tmp_path_factory.mktemp("done")
    return api.run(QUICKSTART, SMALL, out=str(out), plots=False)


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    """A run that ``until`` ends with tasks still running and pending."""
    out = tmp_path_factory.mktemp("cut")
    return api.run(QUICKSTART, CUT, out=str(out), plots=False)


# --------------------------------------------------------------------------- summary.json


def test_summary_json_holds_the_run_figures(done_run):
    s = done_run.summary
    assert json.loads(open(done_run.files["summary"]).read()) == s
    assert s["scenario"] == "quickstart" and s["host"] == "sim" and s["seed"] == 1
    assert s["agents"] == 10 and s["frameworks"] == 2
    # Task counts: all 50 finished, and the counts add up.
    assert s["tasks_submitted"] == 50 and s["tasks_finished"] == 50
    assert sum(s[k] for k in TASK_COUNTS) == s["tasks_submitted"]
    for name, n in (("batch", 40), ("web", 10)):
        assert s["per_framework"][name]["tasks_finished"] == n
    # The run ends when the last framework is done.
    assert s["virtual_seconds"] == pytest.approx(max(f["done_at"] for f in s["per_framework"].values()))
    assert 0 < s["virtual_seconds"] < 600
    # Messages: per type, adding up to the total; offers are sent in Offers batches.
    assert sum(s["messages_by_type"].values()) == s["messages"] > 0
    assert s["messages_by_type"]["RunTask"] == 50
    assert s["offers"] >= s["messages_by_type"]["Offers"] > 0
    assert s["rescinds"] == 0 and "Rescind" not in s["messages_by_type"]
    assert s["peak_master_queue"] == 0 and s["master_busy_fraction"] == 0.0   # service_time zero
    assert s["service_time"] == "zero"
    assert re.fullmatch(r"[0-9a-f]{64}", s["digest"])
    assert s["dead_letters"] == 0 and s["messages_lost"] == 0 and s["faults"] == []
    # Scheduling latency: one figure per task that ran, in order.
    lat = s["scheduling_latency"]
    assert lat["count"] == 50
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    # Roles: the file's two, weights as given, nothing held at the end, some held on average.
    assert set(s["roles"]) == {"eng/batch", "eng/web"}
    assert s["roles"]["eng/web"]["weight"] == 2.0 and s["roles"]["eng/batch"]["quota"] is None
    for r in s["roles"].values():
        for key in ("allocated", "mean_allocated", "offered", "mean_offered", "used", "mean_used"):
            assert set(r[key]) == {"cpus", "mem", "disk", "gpus"}
        assert r["allocated"]["cpus"] == 0 and r["used"]["cpus"] == 0
        assert r["mean_allocated"]["cpus"] > 0 and 0 < r["mean_share"] <= 1


def test_summary_while_tasks_still_run(cut_run):
    s = cut_run.summary
    assert s["virtual_seconds"] == 120.0
    assert s["tasks_submitted"] == 70
    assert s["tasks_running"] > 0 and s["tasks_finished"] < 70
    assert sum(s[k] for k in TASK_COUNTS) == 70
    allocated = sum(r["allocated"]["cpus"] for r in s["roles"].values())
    assert 0 < allocated <= 64
    assert s["scheduling_latency"]["count"] == s["tasks_submitted"] - s["tasks_pending"]


def test_every_summary_key_is_documented():
    """docs/simulation.md lists what summary.json holds; a new key needs a line there."""
    doc = open(os.path.join(ROOT, "docs", "simulation.md")).read()
    sc = api.load(QUICKSTART, {"agents": 2, "frameworks.0.tasks": 2, "frameworks.1.tasks": 1})
    s = runner.run(sc, plots=False).summary
    missing = [k for k in s if f"`{k}`" not in doc]
    assert not missing, f"summary keys not in docs/simulation.md: {missing}"


def _quota_scenario(with_call):
    data = {
        "sim": {"seed": 2, "until": "5m"},
        "cluster": {"agents": 4, "agent": {"cpus": 4, "mem": "8GiB", "disk": "10GiB"}},
        "roles": [{"name": "eng"}],
        "frameworks": [{"name": "f", "roles": ["eng"], "tasks": 10,
                        "task": {"cpus": 1, "mem": "256MiB", "duration": "20s", "arrival": "poisson(0.2)"}}],
    }
    if with_call:
        # The framework holds offers while work is due; a quota change takes them back.
        data["operator"] = [{"at": "3s", "update_quota": {"role": "eng", "limit": {"cpus": 8}}}]
    return parse(data, "quota")


def test_rescinds_count_the_offers_taken_back():
    before = runner.run(_quota_scenario(False), plots=False).summary
    after = runner.run(_quota_scenario(True), plots=False).summary
    assert before["rescinds"] == 0
    assert after["rescinds"] > 0
    assert after["rescinds"] == after["messages_by_type"]["Rescind"]
    assert before["roles"]["eng"]["quota"] is None
    assert after["roles"]["eng"]["quota"]["limit"]["cpus"] == 8


def test_fixed_service_time_queues_at_the_master_and_stays_exact():
    ov = {**SMALL, "service_time": "fixed(2ms)"}
    a = api.run(QUICKSTART, ov, plots=False).summary
    b = api.run(QUICKSTART, ov, plots=False).summary
    assert a["service_time"] == "fixed(2ms)"
    assert a["peak_master_queue"] > 0 and a["master_busy_fraction"] > 0
    assert a["digest"] == b["digest"] and a["messages"] == b["messages"]
    # Handlers that take time make launches slower than with zero service time.
    zero = api.run(QUICKSTART, SMALL, plots=False).summary
    assert a["scheduling_latency"]["p50"] > zero["scheduling_latency"]["p50"]
    assert a["digest"] != zero["digest"]


# --------------------------------------------------------------------------- timeseries.csv


def _check_times(rows, end, every):
    times = [float(r["time"]) for r in rows]
    assert all(b > a for a, b in itertools.pairwise(times)), "time must increase"
    assert times[0] <= every
    assert times[-1] == pytest.approx(end)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == pytest.approx(every) for g in gaps[:-1])
    assert 0 < gaps[-1] <= every + 1e-6
    # One row every `every` from the first, plus one at the end if it falls between two.
    expected = math.floor((end - times[0]) / every + 1e-9) + 1
    if (end - times[0]) % every > 1e-6:
        expected += 1
    assert len(rows) == expected


def test_timeseries_has_one_row_per_sample_and_ends_with_the_run(done_run):
    rows = read_csv(done_run.files["timeseries"])
    assert len(rows) == len(done_run.timeseries)
    assert [float(r["time"]) for r in rows] == [r["time"] for r in done_run.timeseries]
    _check_times(rows, done_run.summary["virtual_seconds"], 30.0)


def test_timeseries_of_a_run_cut_by_until(cut_run):
    rows = read_csv(cut_run.files["timeseries"])
    _check_times(rows, 120.0, 20.0)


def test_timeseries_columns_and_bounds(done_run, cut_run):
    for res, total_cpus in ((done_run, 160.0), (cut_run, 64.0)):
        rows = read_csv(res.files["timeseries"])
        header = list(rows[0])
        for col in ("time", "tasks_submitted", "tasks_running", "tasks_pending", "util_cpus", "util_mem",
                    "util_disk", "used_cpus", "used_mem", "used_disk", "alloc_cpus[eng/batch]",
                    "alloc_cpus[eng/web]", "messages"):
            assert col in header
        assert "util_gpus" not in header   # no GPUs in this cluster
        submitted = res.summary["tasks_submitted"]
        previous_messages = 0
        for r in rows:
            running, pending, sub = int(r["tasks_running"]), int(r["tasks_pending"]), int(r["tasks_submitted"])
            assert 0 <= running <= sub <= submitted
            assert running + pending <= sub
            for k in ("util_cpus", "util_mem", "util_disk", "used_cpus", "used_mem", "used_disk"):
                assert 0.0 <= float(r[k]) <= 1.0
            per_role = float(r["alloc_cpus[eng/batch]"]) + float(r["alloc_cpus[eng/web]"])
            assert per_role == pytest.approx(float(r["util_cpus"]) * total_cpus, abs=1e-3)
            assert int(r["messages"]) >= previous_messages
            previous_messages = int(r["messages"])
        assert max(int(r["tasks_running"]) for r in rows) > 0
        assert max(float(r["util_cpus"]) for r in rows) > 0


def test_timeseries_last_row_agrees_with_the_summary(done_run, cut_run):
    for res in (done_run, cut_run):
        s = res.summary
        last = read_csv(res.files["timeseries"])[-1]
        assert float(last["time"]) == s["virtual_seconds"]
        for k in ("tasks_submitted", "tasks_running", "tasks_pending"):
            assert int(last[k]) == s[k], k
        assert int(last["messages"]) == s["messages"]
        total_cpus = s["agents"] * 16
        for role, r in s["roles"].items():
            assert float(last[f"alloc_cpus[{role}]"]) == pytest.approx(r["allocated"]["cpus"])
        allocated = sum(r["allocated"]["cpus"] for r in s["roles"].values())
        assert float(last["util_cpus"]) == pytest.approx(allocated / total_cpus, abs=1e-6)


def test_sampling_does_not_change_the_run():
    """How often the state is sampled is an observation: the digest and the figures stay."""
    a = api.run(QUICKSTART, {**SMALL, "sim.sample_every": "7s"}, plots=False)
    b = api.run(QUICKSTART, {**SMALL, "sim.sample_every": "1h"}, plots=False)
    assert a.summary["digest"] == b.summary["digest"]
    assert a.summary["messages"] == b.summary["messages"]
    assert a.summary["virtual_seconds"] == b.summary["virtual_seconds"]
    assert len(a.timeseries) > 20 and len(b.timeseries) == 2   # the start and the end


def test_the_task_log_is_in_sim_log_only_where_the_scenario_asks_and_changes_nothing(done_run, tmp_path):
    """The master's and agents' line per task launch and state change would be millions in a
    large scenario: off by default, on with ``[sim].task_log``; the run is the same."""
    with open(done_run.files["log"]) as f:
        quiet = f.read()
    assert "impresario.agent: agent agent-0 registered" in quiet and ".tasks:" not in quiet
    res = api.run(QUICKSTART, {**SMALL, "sim.task_log": True}, out=str(tmp_path), plots=False)
    assert res.summary["digest"] == done_run.summary["digest"]
    with open(res.files["log"]) as f:
        lines = f.read().splitlines()
    finished = res.summary["tasks_finished"]
    for who in ("master", "agent"):
        mine = [line for line in lines if line.startswith(f"INFO impresario.{who}.tasks: task ")]
        assert sum(line.endswith(": launching") for line in mine) == finished
        assert sum(": TASK_FINISHED: Command exited with status 0" in line for line in mine) == finished
        assert sum(": TASK_RUNNING" in line for line in mine) == finished


# --------------------------------------------------------------------------- plots


def test_no_plots_and_no_error_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib now fails
    res = api.run(QUICKSTART, SMALL, out=str(tmp_path))
    assert set(res.files) == {"summary", "log", "timeseries", "state", "metrics"}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".png")]


# --------------------------------------------------------------------------- the progress line


def test_progress_line_shows_virtual_time_and_event_rate():
    sc = api.load(QUICKSTART, SMALL)
    stream = io.StringIO()
    res = runner.run(sc, progress=stream, plots=False)
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    m = re.search(r"([\d.]+) virtual min \| +([\d.]+) M events, +(\d+) k/s \| +([\d.]+) M msgs \| "
                  r"running (\d+), pending (\d+)", text)
    assert m, text
    assert float(m.group(1)) == round(res.summary["virtual_seconds"] / 60, 1)
    assert float(m.group(2)) == round(res.summary["events"] / 1e6, 2)
    assert (int(m.group(5)), int(m.group(6))) == (0, 0)


def test_progress_goes_to_stderr_only_when_asked(capsys):
    api.run(QUICKSTART, SMALL, plots=False)
    assert capsys.readouterr().err == ""
    api.run(QUICKSTART, SMALL, plots=False, progress=True)
    assert "virtual min" in capsys.readouterr().err


def test_cli_progress_options(small_toml, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))   # cmd_sim adds the scenario's folder
    # stderr is not a terminal here: no progress unless --progress; never with --quiet.
    assert cli.main(["sim", str(small_toml), "--out", str(tmp_path / "a"), "--no-plots"]) == 0
    assert "virtual min" not in capsys.readouterr().err
    assert cli.main(["sim", str(small_toml), "--out", str(tmp_path / "b"), "--no-plots", "--progress"]) == 0
    assert "k/s" in capsys.readouterr().err
    assert cli.main(["sim", str(small_toml), "--out", str(tmp_path / "c"), "--progress", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "virtual min" not in captured.err
    assert f"results in {tmp_path / 'c'}: " in captured.out and "summary.json" in captured.out


def test_run_returns_plain_objects_and_files_that_exist(done_run):
    assert isinstance(done_run.summary, dict)
    assert json.loads(json.dumps(done_run.summary)) == done_run.summary
    assert isinstance(done_run.timeseries, list) and done_run.timeseries
    for row in done_run.timeseries:
        assert isinstance(row, dict)
        assert all(isinstance(v, int | float) for v in row.values())
    assert set(done_run.files) == {"summary", "log", "timeseries", "state", "metrics"}
    for path in done_run.files.values():
        assert os.path.isfile(path) and os.path.dirname(path) == done_run.out_dir
    assert done_run.summary_path == done_run.files["summary"]
    assert done_run.seed == 1


def test_run_takes_a_loaded_scenario_and_a_seed_without_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sc = api.load(QUICKSTART, SMALL)
    res = api.run(sc, seed=5)
    assert res.seed == 5 and res.summary["seed"] == 5
    assert res.files == {} and res.out_dir is None and os.listdir(tmp_path) == []
    assert res.summary["digest"] != api.run(sc).summary["digest"]
    assert res.summary["digest"] == api.run(QUICKSTART, {**SMALL, "seed": 5}).summary["digest"]


def test_sweep_gives_one_row_per_point_as_a_single_run_would(small_toml, tmp_path):
    params = {"seed": [1, 2], "allocator": ["drf", "random"]}
    rows = api.sweep(str(small_toml), params, out=str(tmp_path / "out"), processes=2)
    points = api.expand(params)
    assert [r["run"] for r in rows] == [api.label(p) for p in points]
    for row, point in zip(rows, points, strict=True):
        assert {k: row[k] for k in point} == point
        single = api.run(str(small_toml), point, plots=False).summary
        assert row["digest"] == single["digest"][:12]
        assert row["tasks_finished"] == single["tasks_finished"] == 60
        assert row["virtual_seconds"] == single["virtual_seconds"]
        assert row["latency_p50[fa]"] == single["per_framework"]["fa"]["scheduling_latency"]["p50"]
        folder = tmp_path / "out" / api.label(point)
        assert json.loads((folder / "summary.json").read_text())["digest"][:12] == row["digest"]
    assert len({r["digest"] for r in rows}) == 4


def test_cli_sweep_runs_in_processes_and_prints_one_table(small_toml, tmp_path):
    out = tmp_path / "sweep"
    p = subprocess.run([sys.executable, "-m", "impresario.cli", "sim", str(small_toml), "--out", str(out),
                        "--sweep", "seed=1..3", "--sweep", "allocator=drf,random"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("impresario sim: sweeping small over seed, allocator: 6 runs")
    header = lines[1].split()
    assert header[:8] == ["run", "tasks_finished", "virtual_seconds", "wall_seconds", "latency_p50",
                          "latency_p99", "messages", "digest"]
    assert "mean_share[a]" in header and "latency_p50[fb]" in header
    table = [line.split() for line in lines[2:8]]
    labels = [api.label(pt) for pt in api.expand({"seed": [1, 2, 3], "allocator": ["drf", "random"]})]
    assert [row[0] for row in table] == labels
    assert lines[8].strip() == f"results in {out}: sweep.csv, sweep.json, and one folder per run"
    saved = json.loads((out / "sweep.json").read_text())
    assert [r["run"] for r in saved] == labels
    assert [row[7] for row in table] == [r["digest"] for r in saved]
    assert all(row[1] == "60" for row in table)
    assert len(read_csv(out / "sweep.csv")) == 6
    for label in labels:
        assert (out / label / "summary.json").is_file()
    # Each point is what a single run of it gives.
    single = api.run(str(small_toml), {"seed": 2, "allocator": "random"}, plots=False).summary
    assert saved[3]["digest"] == single["digest"][:12]


def test_cli_sweep_table_in_the_file_and_single_values(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    p = tmp_path / "swept.toml"
    p.write_text('[sweep]\n"cluster.agents" = [4, 8]\n' + SMALL_TOML)
    assert cli.main(["sim", str(p), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "sweeping swept over cluster.agents: 2 runs" in out
    assert re.search(r"^  cluster\.agents=4 ", out, re.M) and re.search(r"^  cluster\.agents=8 ", out, re.M)
    # A sweep of one value is a plain run of that value.
    assert cli.main(["sim", str(p), "--out", str(tmp_path / "one"), "--sweep", "cluster.agents=3",
                     "--no-plots"]) == 0
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["agents"] == 3


# --------------------------------------------------------------------------- state.json, metrics.json


def test_the_simulated_master_writes_its_state_and_metrics_in_the_real_masters_shapes(done_run, cut_run):
    from tests.schemas import check_metrics, check_state

    for run in (done_run, cut_run):
        with open(run.files["state"]) as fh:
            state = json.load(fh)
        with open(run.files["metrics"]) as fh:
            metrics = json.load(fh)
        check_state(state)
        check_metrics(metrics)
        summary = run.summary
        assert metrics["master/tasks_finished"] == summary["tasks_finished"]
        assert metrics["master/tasks_running"] == sum(
            1 for f in state["frameworks"] for t in f["tasks"] if t["state"] == "TASK_RUNNING")
        assert metrics["master/slaves_active"] == state["activated_slaves"] == len(state["slaves"])
    assert cut_run.summary["tasks_running"] > 0
    with open(cut_run.files["metrics"]) as fh:
        assert json.load(fh)["master/tasks_running"] == cut_run.summary["tasks_running"]
