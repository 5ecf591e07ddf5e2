import pytest

from sim.scenario import ScenarioError, find, load, parse

BASE = {
    "sim": {"seed": 3, "until": "1h"},
    "cluster": {"agents": 4, "agent": {"cpus": 8, "mem": "16GiB", "disk": "100GiB"}},
    "roles": [{"name": "eng/batch", "weight": 2.0}],
    "frameworks": [{"name": "b", "roles": ["eng/batch"], "tasks": 10,
                    "task": {"cpus": 1, "mem": "1GiB", "duration": "exp(30s)"}}],
}


def with_(path, value):
    import copy
    d = copy.deepcopy(BASE)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    if value is None:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return d


def test_a_valid_scenario():
    sc = parse(BASE, "t")
    assert sc.seed == 3 and sc.until == 3600 and sc.agents == 4 and sc.tasks == 10
    assert sc.groups[0].resources.mem == 16384
    assert sc.roles[0].weight == 2.0
    fw = sc.frameworks[0]
    assert fw.class_path == "actors.frameworks.batch:BatchFramework"
    assert fw.settings["tasks"] == [{"name": "b", "count": 10, "cpus": 1, "mem": "1GiB", "duration": "exp(30s)"}]


@pytest.mark.parametrize("path,value,words", [
    (["sim", "sede"], 1, "unknown key 'sede' in [sim]"),
    (["cluster", "agent", "cpu"], 1, "unknown key 'cpu' in [cluster].agent"),
    (["frameworks", 0, "task", "cpu"], 1, "framework 'b': task: unknown key 'cpu'"),
    (["frameworks", 0, "colour"], "red", "unknown key 'colour' in frameworks[0]"),
    (["roles", 0, "wieght"], 1, "unknown key 'wieght' in roles[0]"),
    (["extra"], {}, "unknown key 'extra' in the scenario"),
])
def test_unknown_keys_are_named(path, value, words):
    d = with_(path, value)
    with pytest.raises(ScenarioError) as e:
        parse(d)
    assert words in str(e.value)


@pytest.mark.parametrize("path,value,words", [
    (["cluster", "agents"], -1, "must be an integer >= 0"),
    (["cluster", "agents"], 0, "no agents"),
    (["sim", "until"], "0s", "until must be positive"),
    (["sim", "until"], "forever", "not a duration"),
    (["frameworks", 0, "tasks"], -5, "must be an integer >= 0"),
    (["frameworks", 0, "task", "cpus"], 64, "largest agent has 8: it could never run"),
    (["frameworks", 0, "task", "mem"], "1TiB", "could never run"),
    (["frameworks", 0, "task", "duration"], "exp(-1s)", "duration"),
    (["frameworks", 0, "task", "gpus"], 0.5, "whole number"),
    (["frameworks", 0, "roles"], ["eng//x"], "invalid role"),
    (["roles", 0, "weight"], 0, "weight must be positive"),
    (["cluster", "agent", "mem"], "lots", "not a size"),
    (["frameworks", 0, "class"], "nocolon", "package.module:Class"),
])
def test_impossible_values_are_refused_with_a_reason(path, value, words):
    with pytest.raises(ScenarioError) as e:
        parse(with_(path, value))
    assert words in str(e.value)


def test_groups_of_several_shapes():
    d = with_(["cluster"], {"groups": [
        {"count": 2, "cpus": 32, "mem": "128GiB", "attributes": {"rack": "r1"}},
        {"count": 1, "cpus": 8, "mem": "64GiB", "gpus": 4},
    ]})
    sc = parse(d)
    assert sc.agents == 3 and sc.groups[0].attributes == {"rack": "r1"}
    assert sc.groups[1].resources.gpus == 4
    with pytest.raises(ScenarioError, match="not both"):
        parse(with_(["cluster"], {"agents": 2, "groups": [{"count": 1, "cpus": 1}]}))


def test_files_are_found_by_name_and_errors_name_the_file(tmp_path):
    assert find("quickstart").endswith("quickstart.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[sim]\nseed = 1\n[cluster]\nagnets = 3\n")
    with pytest.raises(ScenarioError, match=r"bad.toml: unknown key 'agnets' in \[cluster\]"):
        load(str(p))
    p.write_text("[sim\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load(str(p))


def test_every_shipped_scenario_loads():
    import glob
    import os
    here = os.path.join(os.path.dirname(__file__), "..", "..", "scenarios")
    files = sorted(glob.glob(os.path.join(here, "*.toml")))
    assert files
    for f in files:
        load(f)
