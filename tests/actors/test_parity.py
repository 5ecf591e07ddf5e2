"""One small scenario on both hosts ends with the same task final states."""

from impresario.cluster import run_scenario
from sim.runner import SimCluster
from sim.scenario import parse

SCENARIO = {
    "sim": {"seed": 7, "until": "1h"},
    "cluster": {"groups": [{"count": 2, "cpus": 2, "mem": "2GiB", "disk": "1GiB"},
                           {"count": 1, "cpus": 1, "mem": "1GiB", "disk": "1GiB"}]},
    "roles": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}],
    "frameworks": [
        {"name": "ok", "roles": ["a"], "tasks": 8, "task": {"cpus": 0.5, "mem": 128, "duration": "uniform(5s,20s)"}},
        {"name": "mixed", "roles": ["b"], "tasks": [
            {"name": "good", "count": 3, "cpus": 0.25, "mem": 64, "duration": "10s"},
            {"name": "bad", "count": 2, "cpus": 0.25, "mem": 64, "duration": "5s", "exit_code": 2},
        ]},
    ],
}


def sim_states(sc):
    cluster = SimCluster(sc)
    cluster.run()
    return {name: cluster.host.actor(addr).query("tasks", {}) for name, addr in cluster.frameworks}


def test_the_same_scenario_ends_the_same_on_both_hosts():
    sc = parse(SCENARIO, "parity")
    simulated = sim_states(sc)
    real = run_scenario(sc, time_scale=0.02)
    assert real == simulated
    assert simulated["ok"] == {f"ok-{i}": "TASK_FINISHED" for i in range(8)}
    assert simulated["mixed"]["bad-0"] == "TASK_FAILED"
