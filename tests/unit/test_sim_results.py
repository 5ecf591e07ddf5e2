"""The simulator's results and API without running a cluster: the time series' columns,
plots, overrides (load, override), sweeps (parse_sweep, expand) and their refusals.
Runs and their summaries: tests/cluster/test_results.py.
"""

import os
import sys

import pytest

from impresario import cli
from sim import api, runner
from sim.scenario import ScenarioError
from tests.scenarios.results import QUICKSTART, SMALL, read_csv


def test_write_timeseries_takes_the_union_of_columns(tmp_path):
    path = runner.write_timeseries(str(tmp_path / "t.csv"), [{"time": 0, "a": 1}, {"time": 10, "b": 2}])
    rows = read_csv(path)
    assert list(rows[0]) == ["time", "a", "b"]
    assert rows == [{"time": "0", "a": "1", "b": ""}, {"time": "10", "a": "", "b": "2"}]


def test_plots_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install -e '.[plot]')")
    res = api.run(QUICKSTART, SMALL, out=str(tmp_path))
    for name in ("utilization", "roles", "tasks"):
        path = res.files[name]
        assert path == str(tmp_path / f"{name}.png")
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    res = api.run(QUICKSTART, SMALL, out=str(tmp_path / "none"), plots=False)
    assert not [p for p in os.listdir(tmp_path / "none") if p.endswith(".png")]


# --------------------------------------------------------------------------- the Python API


def test_load_applies_short_and_dotted_overrides():
    sc = api.load(QUICKSTART, {
        "seed": 7, "allocator": "random", "agents": 12, "until": "15m", "service_time": "fixed(1ms)",
        "latency": "2ms", "cluster.agent.cpus": 8, "frameworks.1.tasks": 3, "roles.0.weight": 5,
        "sim.sample_every": "1m"})
    assert sc.seed == 7 and sc.allocator == "random" and sc.agents == 12
    assert sc.until == 900 and sc.service_time == "fixed(1ms)" and sc.latency == 0.002
    assert sc.groups[0].resources.millis("cpus") == 8000
    assert sc.frameworks[1].settings["tasks"][0]["count"] == 3
    assert sc.frameworks[0].settings["tasks"][0]["count"] == 2000   # untouched
    assert sc.roles[0].weight == 5 and sc.sample_every == 60
    assert sc.name == "quickstart" and sc.path == QUICKSTART


def test_override_copies_and_makes_missing_tables():
    data = {"sim": {"seed": 1}, "frameworks": [{"tasks": 1}]}
    out = api.override(data, "network.agents_per_rack", 10)
    out = api.override(out, "frameworks.0.tasks", 5)
    out = api.override(out, "seed", 9)
    assert out == {"sim": {"seed": 9}, "frameworks": [{"tasks": 5}], "network": {"agents_per_rack": 10}}
    assert data == {"sim": {"seed": 1}, "frameworks": [{"tasks": 1}]}


@pytest.mark.parametrize("key,value,words", [
    ("sim.sede", 1, "unknown key 'sede' in [sim]"),
    ("frameworks.0.task.cpu", 1, "unknown key 'cpu'"),
    ("colour", "red", "unknown key 'colour'"),
    ("agents", "many", "[cluster].agents"),
    ("allocator", "nope", "[sim].allocator"),
    ("until", "forever", "[sim].until"),
    ("service_time", "slow", "[sim].service_time"),
    ("frameworks.9.tasks", 1, "override 'frameworks.9.tasks'"),
    ("frameworks.first.tasks", 1, "override 'frameworks.first.tasks'"),
    ("sim.seed.x", 1, "override 'sim.seed.x'"),
])
def test_invalid_overrides_raise_scenario_error_naming_the_key(key, value, words):
    with pytest.raises(ScenarioError) as e:
        api.load(QUICKSTART, {key: value})
    assert words in str(e.value)


# --------------------------------------------------------------------------- sweeps


@pytest.mark.parametrize("items,expected", [
    (["seed=1..3"], {"seed": [1, 2, 3]}),
    (["seed=5..5"], {"seed": [5]}),
    (["allocator=drf,random"], {"allocator": ["drf", "random"]}),
    (["allocator= drf , random ,"], {"allocator": ["drf", "random"]}),
    (["cluster.agents=100,1000", "seed=1..2"], {"cluster.agents": [100, 1000], "seed": [1, 2]}),
    (["x=0.5,2", "flag=true,false", "service_time=fixed(1ms),zero"],
     {"x": [0.5, 2], "flag": [True, False], "service_time": ["fixed(1ms)", "zero"]}),
    (["frameworks.0.task.duration=uniform(10m,20m),fixed(15m),exp(1m)"],
     {"frameworks.0.task.duration": ["uniform(10m,20m)", "fixed(15m)", "exp(1m)"]}),
    ([], {}),
])
def test_parse_sweep(items, expected):
    got = api.parse_sweep(items)
    assert got == expected
    for k, values in expected.items():
        assert [type(v) for v in got[k]] == [type(v) for v in values]


@pytest.mark.parametrize("item,words", [
    ("seed", "KEY=VALUES"),
    ("=1,2", "KEY=VALUES"),
    ("seed=", "KEY=VALUES"),
    ("seed=1..x", "a range is two integers"),
    ("seed=a..3", "a range is two integers"),
    ("seed=3..1", "no values"),
    ("seed=,", "no values"),
])
def test_parse_sweep_refuses_bad_input(item, words):
    with pytest.raises(ValueError) as e:
        api.parse_sweep([item])
    assert words in str(e.value) and "--sweep" in str(e.value)


def test_expand_is_every_combination_first_key_slowest():
    points = api.expand({"seed": [1, 2], "allocator": ["drf", "random"]})
    assert points == [{"seed": 1, "allocator": "drf"}, {"seed": 1, "allocator": "random"},
                      {"seed": 2, "allocator": "drf"}, {"seed": 2, "allocator": "random"}]
    assert api.expand({}) == [{}]
    assert [api.label(p) for p in points[:2]] == ["seed=1,allocator=drf", "seed=1,allocator=random"]


def test_sweep_checks_every_point_before_running_any(small_toml, tmp_path):
    with pytest.raises(ScenarioError) as e:
        api.sweep(str(small_toml), {"allocator": ["drf", "nope"]}, out=str(tmp_path / "out"))
    assert "[sim].allocator" in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,words", [
    (["--sweep", "seed=3..1"], "--sweep seed: no values"),
    (["--sweep", "seed"], "KEY=VALUES"),
    (["--sweep", "allocator=drf,nope"], "[sim].allocator"),
    (["--sweep", "frameworks.7.tasks=1,2"], "override 'frameworks.7.tasks'"),
])
def test_cli_bad_sweep_is_a_usage_error(small_toml, tmp_path, capsys, monkeypatch, args, words):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["sim", str(small_toml), "--out", str(tmp_path / "out"), *args]) == 2
    assert words in capsys.readouterr().err
