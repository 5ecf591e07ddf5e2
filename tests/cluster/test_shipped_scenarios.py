"""The scenarios in scenarios/ say what the issue asks of them, and they run.

The big ones run here at a tenth of their size (their full size is a benchmark:
``tox -e bench``); what they claim - every task runs, all at once at the peak,
health checks every 15 s, GPUs only to GPU frameworks - is checked on the run.
"""


import pytest

from sim import api
from tests.scenarios.shipped import path

TENTH = {"cluster.agents": 3000, "frameworks.0.tasks": 7000, "frameworks.1.tasks": 6000,
         "frameworks.2.tasks": 7000, "frameworks.3.tasks": 5000}


@pytest.mark.slow
@pytest.mark.slow
def test_twitter_30k_at_a_tenth_runs_every_task_all_at_once():
    res = api.run(path("twitter-30k"), TENTH, plots=False)
    s = res.summary
    assert s["agents"] == 3000 and s["tasks_submitted"] == 25_000
    assert s["tasks_finished"] == 25_000
    assert s["tasks_failed"] == s["tasks_lost"] == s["tasks_error"] == s["tasks_pending"] == 0
    # Arrivals over the first 10 minutes, each task 10 to 20 minutes: at the peak all run.
    assert s["peak_tasks_running"] == 25_000
    assert 600 <= s["peak_tasks_running_at"] <= 1200
    # The run ends when the last task ends: within 10 + 20 minutes and a little scheduling.
    assert 1200 < s["virtual_seconds"] < 1800 + 120
    # Health checks as in Mesos: every agent pinged every 15 s, and every ping answered.
    pings = s["messages_by_type"]["Ping"]
    expected = 3000 * s["virtual_seconds"] / 15
    assert 0.97 * expected <= pings <= 1.01 * expected
    assert abs(s["messages_by_type"]["Pong"] - pings) <= 3000
    # Every message went through the codec, and the run is a function of its seed.
    assert s["messages"] == sum(s["messages_by_type"].values())
    assert s["dead_letters"] == 0 and s["messages_lost"] == 0


@pytest.mark.slow
def test_apple_50k_at_a_tenth_charges_the_kernels_own_time():
    res = api.run(path("apple-50k"), {"cluster.agents": 200, "frameworks.0.tasks": 5000}, plots=False)
    s = res.summary
    assert s["tasks_finished"] == 5000 and s["peak_tasks_running"] == 5000
    # Measured service time: the master was busy for some of the virtual time, and the
    # burst queued at it - the figure the full scenario reports.
    assert 0 < s["master_busy_fraction"] < 1
    assert s["peak_master_queue"] > 1
    assert s["scheduling_latency"]["max"] > 0


def test_mesos_paper_scaling_sweep_measures_the_probe():
    over = {"cluster.agents": [50, 100], "frameworks.0.count": [5], "frameworks.0.tasks": [20],
            "sim.service_time": ["fixed(50us)"]}
    rows = api.sweep(path("mesos-paper-scaling"), over, processes=1)
    assert [r["cluster.agents"] for r in rows] == [50, 100]
    for r in rows:
        assert r["latency_p50[probe]"] is not None and r["latency_p50[probe]"] > 0
        assert r["tasks_finished"] + r["tasks_running"] + r["tasks_pending"] == r["tasks_submitted"]


def test_gpu_scenario_keeps_gpu_agents_for_gpu_frameworks():
    over = {"cluster.groups.0.count": 40, "cluster.groups.1.count": 8, "frameworks.0.tasks": 40,
            "frameworks.1.tasks": 60, "frameworks.2.tasks": 1500, "sim.until": "4m"}
    res = api.run(path("gpu"), over, plots=False)
    host = res.host
    batch_id = host.actor("framework/batch").framework_id
    training_id = host.actor("framework/training").framework_id
    gpu_agents = cpu_agents = 0
    gpu_tasks = 0
    for name in [n for n in host.refs if n.startswith("agent-") and "/" not in n]:
        agent = host.actor(name).core
        fids = {fid for fid, _ in agent.executors}
        if len(agent.gpus):
            gpu_agents += 1
            assert batch_id not in fids, f"{name} has GPUs and runs tasks of a framework without GPU_RESOURCES"
            gpu_tasks += sum(1 for fid, _ in agent.executors if fid == training_id)
        else:
            cpu_agents += 1
            assert training_id not in fids  # training asks for GPUs: only GPU agents hold them
    assert gpu_agents == 8 and cpu_agents == 40
    assert gpu_tasks > 0
    assert res.summary["roles"]["batch"]["allocated"]["gpus"] == 0
    assert res.summary["roles"]["ml/training"]["mean_allocated"]["gpus"] > 0
