"""Fault injection in the simulator: ``[[faults]]`` entries (sim/faults.py, sim/scenario.py),
what the harness does with them (sim/runner.py) and what the kernel then does.

The runs are small: 20 agents of 4 cpus, 300 one-cpu tasks of 60-120 s, so the cluster
is full when the faults strike at 30 s and a run takes a fraction of a second.  The
kernel's master marks an agent unreachable after ``max_agent_ping_timeouts`` (5) pings
of ``agent_ping_timeout`` (15 s) go unanswered; its tasks are then TASK_LOST (the batch
framework is not partition-aware) and are not retried (``max_retries`` is 0).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from actors.protocol.messages import TaskState
from sim import api
from sim.runner import SimCluster, summarize
from sim.scenario import Scenario
from tests.scenarios.faults import scenario

AT = 30.0            # when the faults below strike (the cluster is full by then)
CRASHED = [f"agent-{i}" for i in range(5)]


class Run:
    """A scenario run in a SimCluster, with probes called at virtual times."""

    def __init__(self, sc: Scenario, probes: dict[float, Callable[[SimCluster], None]] | None = None,
                 setup: Callable[[SimCluster], None] | None = None) -> None:
        self.cluster = c = SimCluster(sc)
        if setup is not None:
            setup(c)
        for t, probe in (probes or {}).items():
            c.host.call_at(t, partial(probe, c))
        self.end = c.run()
        self.summary = summarize(c, self.end, 1.0)

    @property
    def master(self) -> Any:
        return self.cluster.host.actor("master").core

    def framework(self) -> Any:
        return self.cluster.host.actor("framework/b")

    def agent_recs(self, names: list[str]) -> list[Any]:
        """The master's records of the agents at these addresses (every incarnation)."""
        return [r for r in self.master.agents.values() if r.addr_text in names]

    def unreachable(self) -> set[str]:
        return {r.addr_text for r in self.master.agents.values() if not r.reachable}

    def state_of(self, task_ids: set[str]) -> set[TaskState]:
        return {self.framework().tracker.state[t] for t in task_ids}


def tasks_on(c: SimCluster, names: list[str]) -> set[str]:
    master = c.host.actor("master").core
    return {tid for r in master.agents.values() if r.addr_text in names for (_, tid) in r.tasks}


@pytest.fixture(scope="module")
def baseline() -> Run:
    return Run(scenario())


def test_the_baseline_finishes_every_task_without_losing_a_message(baseline):
    s = baseline.summary
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0
    assert s["messages_lost"] == 0 and s["dead_letters"] == 0
    assert s["faults"] == []
    assert baseline.end < 1800
    assert not baseline.unreachable()


# ---------------------------------------------------------------------------- each kind, in a run


def test_agent_crash_loses_the_tasks_on_those_agents():
    before = {}

    def snapshot(c):
        before["tasks"] = tasks_on(c, CRASHED)
        before["ids"] = {r.addr_text: r.id for r in c.host.actor("master").core.agents.values()}

    r = Run(scenario({"at": AT, "kind": "agent_crash", "targets": "agents[0:5]"}), {AT - 0.001: snapshot})
    lost = before["tasks"]
    assert len(lost) == 20                       # the cluster was full: 5 agents x 4 one-cpu tasks
    s = r.summary
    assert s["tasks_lost"] == len(lost)
    assert r.state_of(lost) == {TaskState.TASK_LOST}
    assert s["tasks_finished"] == 300 - len(lost)
    assert s["tasks_running"] == 0 and s["tasks_pending"] == 0      # every task ended: the run ends
    assert r.end < 1800
    # the master noticed: exactly the crashed agents are unreachable
    assert r.unreachable() == set(CRASHED)
    assert all(not rec.tasks for rec in r.agent_recs(CRASHED))
    # the actors are gone (with their executors); messages to them are dead letters
    assert not any(n in r.cluster.host.refs or n + "/1" in r.cluster.host.refs for n in CRASHED)
    assert "agent-5" in r.cluster.host.refs
    assert s["dead_letters"] > 0 and s["messages_lost"] == 0
    assert s["faults"] == [{"at": AT, "kind": "agent_crash", "targets": "agents[0:5]", "hosts": 5, "note": ""}]


def test_agent_crash_with_a_duration_restarts_the_agents_which_register_again():
    ids = {}

    def snapshot(c):
        ids.update({r.addr_text: r.id for r in c.host.actor("master").core.agents.values() if r.addr_text in CRASHED})

    r = Run(scenario({"at": AT, "kind": "agent_crash", "targets": "agents[0:5]", "duration": "3m"}),
            {AT - 0.001: snapshot})
    assert r.summary["faults"] == [
        {"at": AT, "kind": "agent_crash", "targets": "agents[0:5]", "hosts": 5, "note": ""},
        {"at": AT + 180, "kind": "agent_crash healed", "targets": "agents[0:5]", "hosts": 5, "note": ""}]
    host = r.cluster.host
    for name in CRASHED:
        agent = host.actor(name).core            # a new incarnation
        assert agent.registered
        # the host lost its checkpoint with its tasks: a new registration, a new id, and
        # the master removes the old agent (unreachable since) for good
        assert agent.agent_id != ids[name] and not agent.restored
        rec = r.master.agents[agent.agent_id]
        assert rec.reachable and rec.addr_text == name
        assert ids[name] not in r.master.agents
    assert r.summary["tasks_lost"] == 20


def test_agent_restart_recovers_the_agent_under_its_old_id():
    """A restarted agent (its process group killed, its work directory kept) recovers from
    its checkpoint and re-registers at once under its old id."""
    before = {}

    def snapshot(c):
        before["instances"] = {n: c.host.actor(n) for n in CRASHED}
        before["ids"] = {n: c.host.actor(n).core.agent_id for n in CRASHED}

    def after(c):
        before["after"] = {n: (c.host.actor(n), c.host.actor(n).core.registered) for n in CRASHED}

    r = Run(scenario({"at": AT, "kind": "agent_restart", "targets": "agents[0:5]"}),
            {AT - 0.001: snapshot, AT + 1: after})
    for n in CRASHED:
        agent, registered = before["after"][n]
        assert agent is not before["instances"][n]
        assert registered and agent.core.agent_id == before["ids"][n] and agent.core.restored
        assert r.master.agents[agent.core.agent_id].reachable
    assert r.summary["faults"] == [
        {"at": AT, "kind": "agent_restart", "targets": "agents[0:5]", "hosts": 5, "note": ""}]


def test_the_tasks_of_a_restarted_agent_run_on_and_finish():
    before = {}

    def snapshot(c):
        before["tasks"] = tasks_on(c, CRASHED)

    def after(c):
        # re-adopted: new executors, the same containers, still running
        before["executors"] = sum(len(c.host.actor(n).core.executors) for n in CRASHED)
        before["containers"] = sum(len(c.host.containers[n].live) for n in CRASHED)

    r = Run(scenario({"at": AT, "kind": "agent_restart", "targets": "agents[0:5]"}),
            {AT - 0.001: snapshot, AT + 1: after})
    assert len(before["tasks"]) == 20
    assert before["executors"] == before["containers"] == 20
    s = r.summary
    assert s["tasks_running"] == 0 and s["tasks_lost"] == 0
    assert s["tasks_finished"] == 300
    assert r.state_of(before["tasks"]) == {TaskState.TASK_FINISHED}


def test_master_failover_starts_a_new_master():
    before = {}

    def snapshot(c):
        m = c.host.actor("master")
        before.update(master=m, core=weakref.ref(m.core), allocator=c.host.actor("allocator"),
                      offers=m.core.counters["offers_sent"], master_id=m.core.master_id)

    r = Run(scenario({"at": AT, "kind": "master_failover"}), {AT - 0.001: snapshot})
    new = r.master
    assert r.cluster.host.actor("master") is not before["master"] and r.cluster.host.actor("allocator") is not before["allocator"]
    assert before["master_id"] == "sim" and new.master_id == "sim2"
    # The crashed master and allocator took their state with them (as processes that die):
    # the master's core is gone with it.
    assert not vars(before["master"]) and not vars(before["allocator"])
    assert before["core"]() is None
    assert r.cluster.masters == 2
    s = r.summary
    assert s["faults"] == [{"at": AT, "kind": "master_failover", "targets": "master", "hosts": 1,
                            "note": "master incarnation 2"}]
    # the summary keeps the offers the first master made
    assert before["offers"] > 0
    assert s["offers"] == new.counters["offers_sent"] + r.cluster.retired["offers_sent"]
    assert r.cluster.retired["offers_sent"] >= before["offers"]


def test_agents_reregister_with_the_new_master_after_a_failover():
    r = Run(scenario({"at": AT, "kind": "master_failover"}))
    assert {rec.addr_text for rec in r.master.agents.values() if rec.reachable} == {f"agent-{i}" for i in range(20)}
    assert r.summary["tasks_running"] == 0 and r.summary["tasks_pending"] == 0


def test_agents_given_up_during_a_partition_come_back_after_the_heal():
    r = Run(scenario({"at": AT, "kind": "partition", "targets": "agents[0:5]", "duration": "3m"}))
    assert {rec.addr_text for rec in r.master.agents.values() if rec.reachable} == {f"agent-{i}" for i in range(20)}


def test_a_short_partition_heals_before_the_master_gives_the_agents_up():
    during = {}
    r = Run(scenario({"at": AT, "kind": "partition", "targets": "agents[0:5]", "duration": "30s"}),
            {AT + 15: lambda c: during.update(cut=dict(c.host.network.cut_off), lost=c.host.lost),
             AT + 31: lambda c: during.update(healed=dict(c.host.network.cut_off))})
    nodes = {r.cluster.agent_nodes[n] for n in CRASHED}
    assert set(during["cut"]) == nodes
    assert during["lost"] > 0
    assert during["healed"] == {}
    s = r.summary
    assert s["messages_lost"] > 0
    assert not r.unreachable()
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0
    start, healed = s["faults"]
    assert start == {"at": AT, "kind": "partition", "targets": "agents[0:5]", "hosts": 5, "note": ""}
    assert (healed["at"], healed["kind"], healed["targets"]) == (AT + 30, "partition healed", "agents[0:5]")


def test_a_long_partition_makes_the_master_give_the_agents_up():
    before = {}
    r = Run(scenario({"at": AT, "kind": "partition", "targets": "agents[0:5]"}),
            {AT - 0.001: lambda c: before.update(tasks=tasks_on(c, CRASHED))})
    assert r.unreachable() == set(CRASHED)
    assert r.state_of(before["tasks"]) == {TaskState.TASK_LOST}
    assert r.summary["tasks_lost"] == len(before["tasks"]) == 20
    assert r.summary["messages_lost"] > 0
    # a partition kills nothing: the agents are still there, cut off
    assert all(n in r.cluster.host.refs for n in CRASHED)
    assert r.summary["dead_letters"] == 0


def test_a_partition_of_racks():
    net = {"agents_per_rack": 5, "host_link": "20us", "rack_link": "50us"}
    r = Run(scenario({"at": AT, "kind": "partition", "targets": "racks[1:3]"}, network=net))
    assert r.unreachable() == {f"agent-{i}" for i in range(5, 15)}
    assert r.summary["faults"][0]["hosts"] == 10
    assert r.summary["tasks_lost"] == 40


def test_a_partition_of_the_frameworks():
    during = {}
    r = Run(scenario({"at": AT, "kind": "partition", "targets": "frameworks", "duration": "20s"}),
            {AT + 1: lambda c: during.update(cut=dict(c.host.network.cut_off))})
    fw_node = r.cluster.host.ref("framework/b").node
    assert list(during["cut"]) == [fw_node]
    assert r.summary["faults"][0]["hosts"] == 1
    assert r.summary["messages_lost"] > 0
    assert r.summary["tasks_finished"] == 300


def test_heal_ends_a_partition():
    r = Run(scenario({"at": AT, "kind": "partition", "targets": "agents[0:5]"},
                     {"at": AT + 20, "kind": "heal", "targets": "agents[0:5]"}))
    assert r.summary["messages_lost"] > 0
    assert not r.unreachable()
    assert r.summary["tasks_finished"] == 300
    assert [(e["at"], e["kind"]) for e in r.summary["faults"]] == [(AT, "partition"), (AT + 20, "heal")]
    assert r.cluster.host.network.cut_off == {}


def test_heal_ends_message_loss_and_slow_links():
    seen = {}
    r = Run(scenario({"at": AT, "kind": "message_loss", "targets": "agents[0:5]", "probability": 0.5},
                     {"at": AT, "kind": "slow_link", "targets": "agents[5:8]", "delay": "1s"},
                     {"at": AT + 20, "kind": "heal", "targets": "agents"}),
            {AT + 10: lambda c: seen.update(loss=dict(c.host.network.loss), extra=dict(c.host.network.extra))})
    nodes = r.cluster.agent_nodes
    assert seen["loss"] == {nodes[f"agent-{i}"]: 0.5 for i in range(5)}
    assert seen["extra"] == {nodes[f"agent-{i}"]: 1.0 for i in range(5, 8)}
    net = r.cluster.host.network
    assert net.loss == {} and net.extra == {} and not net.faulty


def test_message_loss_loses_messages(baseline):
    seen = {}
    r = Run(scenario({"at": AT, "kind": "message_loss", "targets": "agents[0:10]", "probability": 0.3,
                      "duration": "1m"}),
            {AT + 59: lambda c: seen.update(lost=c.host.lost, loss=dict(c.host.network.loss)),
             AT + 61: lambda c: seen.update(lost_after=c.host.lost, loss_after=dict(c.host.network.loss))})
    assert baseline.summary["messages_lost"] == 0
    assert seen["lost"] > 0
    assert len(seen["loss"]) == 10 and set(seen["loss"].values()) == {0.3}
    assert seen["loss_after"] == {}
    assert r.summary["messages_lost"] == seen["lost_after"]       # nothing lost after the heal
    healed = r.summary["faults"][1]
    assert (healed["at"], healed["kind"], healed["targets"]) == (AT + 60, "message_loss healed", "agents[0:10]")


def test_message_loss_drops_about_the_given_fraction_of_the_targets_messages():
    counts = {"sent": 0, "lost": 0}

    def count(c):
        net, nodes = c.host.network, {c.agent_nodes[f"agent-{i}"] for i in range(4)}
        plain = net.delay

        def delay(src, dst):
            d = plain(src, dst)
            if (src in nodes or dst in nodes) and src != dst:
                counts["sent"] += 1
                counts["lost"] += d is None
            return d
        net.delay = delay

    r = Run(scenario({"at": 0, "kind": "message_loss", "targets": "agents[0:4]", "probability": 0.25}), setup=count)
    assert counts["sent"] > 400
    assert counts["lost"] / counts["sent"] == pytest.approx(0.25, abs=0.05)
    assert r.summary["messages_lost"] == counts["lost"]     # every message lost was to or from those agents
    # with probability 1 nothing gets through: the master gives agent-0 up
    before = {}
    r1 = Run(scenario({"at": AT, "kind": "message_loss", "targets": "agent-0", "probability": 1.0}),
             {AT - 0.001: lambda c: before.update(tasks=tasks_on(c, ["agent-0"]))})
    assert r1.unreachable() == {"agent-0"}
    assert r1.state_of(before["tasks"]) == {TaskState.TASK_LOST}
    assert r1.summary["tasks_lost"] == 4


def test_slow_link_slows_the_cluster_down(baseline):
    seen = {}
    r = Run(scenario({"at": 0, "kind": "slow_link", "targets": "agents", "delay": "2s"}),
            {1.0: lambda c: seen.update(extra=dict(c.host.network.extra))})
    assert set(seen["extra"].values()) == {2.0} and len(seen["extra"]) == 20
    s, b = r.summary, baseline.summary
    assert s["messages_lost"] == 0 and s["tasks_finished"] == 300
    # offers reach agents 2 s late, and task updates come back 2 s late
    assert s["scheduling_latency"]["p50"] > b["scheduling_latency"]["p50"]
    assert s["virtual_seconds"] > b["virtual_seconds"]


def test_slow_link_with_a_duration_heals(baseline):
    seen = {}
    r = Run(scenario({"at": AT, "kind": "slow_link", "targets": "agents[0:5]", "delay": "500ms", "duration": "1m"}),
            {AT + 1: lambda c: seen.update(during=dict(c.host.network.extra)),
             AT + 61: lambda c: seen.update(after=dict(c.host.network.extra))})
    assert set(seen["during"].values()) == {0.5} and len(seen["during"]) == 5
    assert seen["after"] == {}
    assert [e["kind"] for e in r.summary["faults"]] == ["slow_link", "slow_link healed"]
    assert r.summary["digest"] != baseline.summary["digest"]


# ---------------------------------------------------------------------------- the log and determinism


EVERYTHING: list[dict[str, Any]] = [
    {"at": "20s", "kind": "slow_link", "targets": "agents[10:20]", "delay": "300ms", "duration": "1m"},
    {"at": "25s", "kind": "message_loss", "targets": "racks[1]", "probability": 0.2, "duration": "40s"},
    {"at": "30s", "kind": "agent_crash", "targets": "agents[0:2]", "duration": "2m"},
    {"at": "40s", "kind": "partition", "targets": "racks[2]", "duration": "30s"},
    {"at": "45s", "kind": "partition", "targets": "agent-3"},
    {"at": "50s", "kind": "heal", "targets": "agent-3"},
    {"at": "55s", "kind": "agent_restart", "targets": "agent-19"},
    {"at": "60s", "kind": "master_failover"},
]
TOPOLOGY = {"agents_per_rack": 5, "host_link": "uniform(20us,60us)", "rack_link": "exp(100us)"}


def test_summary_json_logs_every_fault_in_order(tmp_path):
    path = tmp_path / "faults.toml"
    path.write_text(FILE)
    result = api.run(str(path), out=str(tmp_path / "out"), plots=False)
    with open(result.files["summary"]) as fh:
        logged = json.load(fh)["faults"]
    assert logged == result.summary["faults"]
    assert [(e["at"], e["kind"], e["targets"], e["hosts"]) for e in logged] == [
        (20.0, "slow_link", "agents[10:20]", 10),
        (25.0, "message_loss", "racks[1]", 5),
        (30.0, "agent_crash", "agents[0:2]", 2),
        (40.0, "partition", "racks[2]", 5),
        (45.0, "partition", "agent-3", 1),
        (50.0, "heal", "agent-3", 1),
        (55.0, "agent_restart", "agent-19", 1),
        (60.0, "master_failover", "master", 1),
        (65.0, "message_loss healed", "racks[1]", 5),
        (70.0, "partition healed", "racks[2]", 5),
        (80.0, "slow_link healed", "agents[10:20]", 10),
        (150.0, "agent_crash healed", "agents[0:2]", 2),
    ]
    assert logged[7]["note"] == "master incarnation 2"
    assert all(set(e) == {"at", "kind", "targets", "hosts", "note"} for e in logged)


FILE = """
[sim]
seed = 11
until = "10m"

[cluster]
agents = 20
agent = { cpus = 4, mem = "8GiB", disk = "100GiB" }

[network]
agents_per_rack = 5
host_link = "uniform(20us,60us)"
rack_link = "exp(100us)"

[[frameworks]]
name = "b"
tasks = 300
task = { cpus = 1, mem = "1GiB", duration = "uniform(60s,120s)" }
""" + "".join(
    "\n[[faults]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in f.items()) for f in EVERYTHING)


def test_the_same_faults_and_seed_give_the_same_digest():
    def digest(seed, faults):
        return str(Run(scenario(*faults, network=TOPOLOGY, seed=seed)).summary["digest"])

    a, b = digest(3, EVERYTHING), digest(3, EVERYTHING)
    assert a == b
    assert digest(4, EVERYTHING) != a              # the seed matters
    assert digest(3, []) != a                      # and so do the faults
    # message loss on the constant network draws from the seed as well
    loss = [{"at": 0, "kind": "message_loss", "targets": "agents", "probability": 0.1}]
    c1, c2 = (Run(scenario(*loss, seed=5)).summary for _ in range(2))
    assert c1["digest"] == c2["digest"] and c1["messages_lost"] == c2["messages_lost"]


def test_a_fault_at_time_zero_strikes_once_the_cluster_is_configured():
    r = Run(scenario({"at": 0, "kind": "slow_link", "targets": "agents", "delay": "1s"}))
    (entry,) = r.summary["faults"]
    assert 0 <= entry["at"] < 1
