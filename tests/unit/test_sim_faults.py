"""``[[faults]]`` entries as the scenario loader reads them (sim/faults.py, sim/scenario.py):
what is accepted, and what is refused naming the entry.  What faults do to a running
cluster: tests/cluster/test_faults.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sim.faults import KINDS, Fault, FaultError, parse_fault, select
from sim.scenario import ScenarioError, load, parse
from tests.scenarios.faults import BASE, scenario

# ---------------------------------------------------------------------------- parsing and validation


def bad(fault: dict[str, Any], words: str, network: dict[str, Any] | None = None) -> None:
    with pytest.raises(ScenarioError) as e:
        scenario(fault, network=network)
    assert words in str(e.value)


FAULT = {"at": "1m", "kind": "partition", "targets": "agents[0:5]"}


@pytest.mark.parametrize("change,words", [
    ({"kind": "explode"}, "faults[0].kind must be one of agent_crash, agent_restart, master_failover, "
                          "partition, heal, message_loss, slow_link, got 'explode'"),
    ({"kind": None}, "faults[0].kind must be one of"),
    ({"target": "master"}, "unknown key 'target' in faults[0] (known: at, delay, duration, kind, probability, targets)"),
    ({"at": None}, "faults[0]: when? give at = \"5m\""),
    ({"at": "-5s"}, "faults[0]: not a duration: '-5s'"),
    ({"at": -5}, "faults[0]: not a duration: -5"),
    ({"at": True}, "faults[0]: not a duration: True"),
    ({"at": "soon"}, "faults[0]: not a duration: 'soon'"),
    ({"duration": "-1m"}, "faults[0]: not a duration: '-1m'"),
    ({"kind": "slow_link", "delay": "fast"}, "faults[0]: not a duration: 'fast'"),
    ({"kind": "message_loss", "probability": 1.5}, "faults[0].probability must be between 0 and 1"),
    ({"kind": "message_loss", "probability": -0.1}, "faults[0].probability must be between 0 and 1"),
    ({"kind": "message_loss", "probability": True}, "faults[0].probability must be between 0 and 1"),
    ({"kind": "message_loss", "probability": "half"}, "faults[0].probability must be between 0 and 1"),
    ({"targets": ""}, "faults[0].targets: say which"),
    ({"targets": None}, "faults[0].targets: say which"),
    ({"targets": 3}, "faults[0].targets: say which"),
    ({"targets": ["agents"]}, "faults[0].targets: say which"),
    ({"kind": "agent_crash", "targets": "master"}, "faults[0]: agent_crash targets agents"),
    ({"kind": "agent_restart", "targets": "frameworks"}, "faults[0]: agent_restart targets agents"),
    ({"targets": "agents[]"}, "faults[0].targets: 'agents[]' is not agents, agents[i], agents[i:j]"),
    ({"targets": "agents[a:b]"}, "'agents[a:b]' is not agents"),
    ({"targets": "agents[5:2]"}, "'agents[5:2]' is not agents"),
    ({"targets": "agents[-1]"}, "'agents[-1]' is not agents"),
    ({"targets": "agents(0:5)"}, "'agents(0:5)' is not agents"),
    ({"kind": "agent_crash", "targets": "agents[0:5"}, "'agents[0:5' is not agents"),
    ({"targets": "mastr"}, "faults[0].targets: nothing is named 'mastr'"),
    ({"targets": "agent-20"}, "nothing is named 'agent-20'"),
    ({"kind": "agent_crash", "targets": "agent-99"}, "nothing is named 'agent-99'"),
    ({"targets": "framework/nope"}, "nothing is named 'framework/nope'"),
    ({"targets": "racks[0:2]"}, "faults[0]: racks need a [network] table (a topology)"),
    ({"targets": "agents[20:]"}, "faults[0].targets: 'agents[20:]' selects nothing (the scenario has 20 agents)"),
    ({"targets": "agents[25]"}, "'agents[25]' selects nothing"),
    ({"kind": "heal", "duration": "1m"}, "faults[0]: heal takes no duration"),
    ({"kind": "agent_restart", "targets": "agents[0:2]", "duration": "1m"}, "agent_restart takes no duration"),
    ({"kind": "master_failover", "targets": "master", "duration": "1m"}, "master_failover takes no duration"),
])
def test_bad_faults_are_refused_with_the_reason(change, words):
    f = {**FAULT, **change}
    bad({k: v for k, v in f.items() if v is not None}, words)


def test_bad_rack_targets_with_a_network():
    bad({**FAULT, "targets": "racks[2:1]"}, "'racks[2:1]' is not agents", network={"agents_per_rack": 5})
    bad({**FAULT, "targets": "racks[4]"}, "'racks[4]' selects nothing (the scenario has 4 racks of agents)",
        network={"agents_per_rack": 5})
    bad({**FAULT, "kind": "agent_crash", "targets": "racks[0]"}, "agent_crash targets agents",
        network={"agents_per_rack": 5})


def test_the_error_names_the_fault_that_is_wrong():
    with pytest.raises(ScenarioError, match=r"faults\[2\]\.kind must be one of"):
        scenario(FAULT, FAULT, {**FAULT, "kind": "flood"})
    with pytest.raises(ScenarioError, match=r"faults\[1\]\.targets: nothing is named 'agent-x'"):
        scenario({**FAULT, "at": "5m"}, {**FAULT, "at": "1m", "targets": "agent-x"})


@pytest.mark.parametrize("faults,words", [
    ({"at": "1m"}, "[[faults]] must be an array of tables"),
    ([1], "faults[0] must be a table"),
    (["partition"], "faults[0] must be a table"),
])
def test_faults_must_be_an_array_of_tables(faults, words):
    d = copy.deepcopy(BASE)
    d["faults"] = faults
    with pytest.raises(ScenarioError) as e:
        parse(d)
    assert words in str(e.value)


@pytest.mark.parametrize("network,words", [
    ({"agents_per_rack": 0}, "[network]: agents_per_rack must be at least 1"),
    ({"host_link": "fast"}, "[network]: host_link: not a duration: 'fast'"),
    ({"rack_link": "uniform(9us,1us)"}, "[network]: rack_link: uniform low exceeds high"),
    ({"spine_link": "1us"}, "unknown key 'spine_link' in [network] (known: agents_per_rack, host_link, rack_link, racks)"),
    ({"racks": [{"select": "racks[2:1]", "host_link": "1ms"}]}, "[network]: racks: 'racks[2:1]' selects no rack"),
    ({"racks": [{"select": "racks[0]"}]}, "give host_link, rack_link or both"),
    ({"racks": [{"host_link": "1ms"}]}, "racks[0]: select is required"),
    ({"racks": [{"select": "agents[0]", "host_link": "1ms"}]}, "expected racks, racks[i] or racks[i:j]"),
    ({"racks": [{"select": "racks[0]", "rack_link": "slow"}]}, "rack_link: not a duration: 'slow'"),
])
def test_bad_network_tables_are_refused(network, words):
    with pytest.raises(ScenarioError) as e:
        scenario(network=network)
    assert words in str(e.value)


def test_parse_fault_raises_fault_errors():
    with pytest.raises(FaultError, match=r"where\.kind must be one of"):
        parse_fault({"at": 1, "kind": "meteor", "targets": "agents"}, "where")
    with pytest.raises(FaultError, match="where must be a table"):
        parse_fault("partition", "where")
    assert issubclass(FaultError, ValueError)


@pytest.mark.parametrize("targets", ["agents", "agents[3]", "agents[:5]", "agents[15:]", "agents[0:100]", "agents[:]",
                                     "master", "allocator", "frameworks", "b", "framework/b", "agent-0", "agent-19"])
def test_targets_a_scenario_accepts(targets):
    (f,) = scenario({**FAULT, "targets": targets}).faults
    assert f.targets == targets


def test_fault_fields_and_defaults():
    sc = scenario(
        {"at": "10m", "kind": "slow_link", "targets": "agents", "delay": "250ms", "duration": "1m"},
        {"at": 90, "kind": "message_loss", "targets": "agents[0:2]", "probability": 0.25},
        {"at": "1m", "kind": "master_failover"},
        {"at": "2m", "kind": "partition", "targets": "racks[0:2]"},
        network={"agents_per_rack": 5})
    # sorted by time
    assert [(f.at, f.kind) for f in sc.faults] == [
        (60.0, "master_failover"), (90.0, "message_loss"), (120.0, "partition"), (600.0, "slow_link")]
    failover, loss, part, slow = sc.faults
    assert failover == Fault(60.0, "master_failover", "master")          # targets default to the master
    assert (loss.probability, loss.duration) == (0.25, None)
    assert part.probability == 1.0 and part.delay == 0.1                 # the defaults
    assert (slow.delay, slow.duration) == (0.25, 60.0)
    assert set(KINDS) == {"agent_crash", "agent_restart", "master_failover", "partition", "heal",
                          "message_loss", "slow_link"}


def test_select_names_agents_and_racks():
    agents = [f"agent-{i}" for i in range(10)]
    assert select("agents", agents, None) == (agents, [])
    assert select("agents[3]", agents, None) == (["agent-3"], [])
    assert select("agents[8:20]", agents, None) == (["agent-8", "agent-9"], [])
    assert select("agents[:2]", agents, 3) == (["agent-0", "agent-1"], [])
    assert select("racks", agents, 3) == ([], [0, 1, 2])
    assert select("racks[1:]", agents, 3) == ([], [1, 2])
    assert select("master", agents, None) == (["master"], [])
    with pytest.raises(FaultError, match=r"racks.* needs a \[network\] topology"):
        select("racks[0]", agents, None)


def test_a_scenario_file_with_a_bad_fault_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[cluster]\nagents = 4\n\n[[faults]]\nat = "1m"\nkind = "partition"\ntargets = "racks[0]"\n')
    with pytest.raises(ScenarioError) as e:
        load(str(path))
    assert str(e.value) == f"{path}: faults[0]: racks need a [network] table (a topology)"
