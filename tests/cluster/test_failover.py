"""Fault tolerance in the simulator: master failover from the registry and from the agents,
framework failover timeouts, agent recovery from checkpoints, partitions that come back,
and reconciliation (actors/master/actor.py, actors/frameworks/base.py, actors/agent/).

The cluster is the one of test_sim_faults: 20 agents of 4 cpus, 300 one-cpu tasks of
60-120 s, full when the faults strike at 30 s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from actors.agent import launches, registration
from actors.agent.executor import CommandExecutor
from actors.protocol import messages as M
from actors.protocol.codec import encode
from actors.protocol.messages import TaskState
from sim.runner import SimCluster, summarize
from sim.scenario import parse

AT = 30.0
CUT = [f"agent-{i}" for i in range(5)]
TS = TaskState

BASE: dict[str, Any] = {
    "sim": {"seed": 7, "until": "30m"},
    "cluster": {"agents": 20, "agent": {"cpus": 4, "mem": "8GiB", "disk": "100GiB"}},
    "frameworks": [{"name": "b", "tasks": 300,
                    "task": {"cpus": 1, "mem": "1GiB", "duration": "uniform(60s,120s)"}}],
}


class Run:
    def __init__(self, *faults: dict[str, Any], framework: dict[str, Any] | None = None,
                 probes: dict[float, Callable[[SimCluster], None]] | None = None, **top: Any) -> None:
        d = copy.deepcopy(BASE)
        d["frameworks"][0].update(framework or {})
        d["faults"] = list(faults)
        d.update(top)
        self.cluster = c = SimCluster(parse(d, "failover"))
        for t, probe in (probes or {}).items():
            c.host.call_at(t, partial(probe, c))
        self.end = c.run()
        self.summary = summarize(c, self.end, 1.0)

    @property
    def master(self) -> Any:
        return self.cluster.host.actor("master").core

    def framework(self) -> Any:
        return self.cluster.host.actor("framework/b")


def register_again(agent: Any) -> None:
    """The agent (actor) registers again now, as its registration timer makes it."""
    agent.apply(agent.core.call(registration.register, agent.now()))


def tasks_on(c: SimCluster, names: list[str]) -> set[str]:
    return {tid for r in c.host.actor("master").core.agents.values() if r.addr_text in names for (_, tid) in r.tasks}


def live_containers(c: SimCluster) -> int:
    return sum(len(n.live) for n in c.host.containers.values())


# ---------------------------------------------------------------------------- master failover


def test_a_new_master_rebuilds_agents_tasks_and_frameworks_and_loses_nothing():
    seen: dict[str, Any] = {}

    def before(c):
        m = c.host.actor("master").core
        seen["tasks"] = {(t.framework_id, t.task_id): t.agent_id for a in m.agents.values()
                         for t in a.tasks.values()}
        seen["fid"] = next(iter(m.frameworks))

    def after(c):
        m = c.host.actor("master").core
        seen["master"] = m
        seen["rebuilt"] = {(t.framework_id, t.task_id): t.agent_id for a in m.agents.values()
                           for t in a.tasks.values() if t.state == TS.TASK_RUNNING}
        seen["connected"] = [f.id for f in m.frameworks.values() if f.connected]
        seen["allocated"] = m.ledger.view(c.host.now)["*"]["allocated"]["cpus"]
        seen["registry_writes"] = m.registry.writes

    r = Run({"at": AT, "kind": "master_failover"}, probes={AT - 0.001: before, AT + 5: after})
    assert len(seen["tasks"]) == 80                      # the cluster was full
    assert seen["master"].master_id == "sim2"
    assert seen["rebuilt"] == seen["tasks"]              # every task, on its agent, RUNNING
    assert seen["connected"] == [seen["fid"]]            # the framework kept its id
    assert seen["allocated"] == 80                       # the accounts were rebuilt too
    assert seen["master"].stats["registry_agents"] == 20
    # the agents came back as the registry knew them: their records are not written again
    # (only the framework's, which names its new address)
    assert seen["registry_writes"] == 1
    s = r.summary
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0 and s["tasks_failed"] == 0
    rec = s["master_recoveries"]
    assert rec == [{"at": AT, "agents": 20, "agents_back": 20, "frameworks": 1, "frameworks_back": 1,
                    "seconds": s["master_recovery_seconds"]}]
    # called back by the new master, the agents come within their backoff (1 s)
    assert 0 < s["master_recovery_seconds"] <= 1.1


def test_a_retried_reregistration_is_answered_without_decoding_it_again():
    # Agents retry while they wait for an answer; after a failover the master's queue holds
    # many retries. One that is the same bytes as the last re-registration it handled from
    # that agent (same id, incarnation, tasks, address) is answered without decoding.
    seen: dict[str, Any] = {}

    def retry(c):
        m, a = c.host.actor("master").core, c.host.actor("agent-3")
        seen["tasks"] = sorted(m.agents[a.core.agent_id].tasks)
        register_again(a)
        register_again(a)                  # the same bytes again: a retry

    def changed(c):
        m, a = c.host.actor("master").core, c.host.actor("agent-3")
        seen["after_retry"] = (m.stats["reregistrations_retried"], sorted(m.agents[a.core.agent_id].tasks))
        a.core.incarnation += "-new"       # other bytes: decoded and handled in full
        register_again(a)

    def again(c):
        m, a = c.host.actor("master").core, c.host.actor("agent-3")
        seen["after_change"] = (m.stats["reregistrations_retried"], m.agents[a.core.agent_id].incarnation)
        register_again(a)                  # the same bytes as the one just handled

    def end(c):
        seen["after_again"] = c.host.actor("master").core.stats["reregistrations_retried"]

    Run(probes={10.0: retry, 10.5: changed, 11.0: again, 11.5: end})
    assert seen["after_retry"] == (1, seen["tasks"])
    retried, incarnation = seen["after_change"]
    assert retried == 1 and incarnation.endswith("-new")
    assert seen["after_again"] == 2


def test_a_master_restarted_at_another_address_is_followed_by_its_agents_and_frameworks():
    # On a real host a master started again is a new actor process with a new address, known
    # to nobody: its calls name a new master id, and that is enough to follow it.
    seen: dict[str, Any] = {}

    def restart_elsewhere(c):
        c.host.crash("master")
        c.host.crash("allocator")
        c.master, c.allocator = c._start_master("master-2")

    def after(c):
        m = c.host.actor("master-2").core
        seen["agents"] = sum(1 for a in m.agents.values() if a.reachable)
        seen["connected"] = sum(1 for f in m.frameworks.values() if f.connected)
        seen["adopted"] = sum(c.host.actor(f"agent-{i}").stats["masters_adopted"] for i in range(20))
        seen["fw_adopted"] = c.host.actor("framework/b").stats["masters_adopted"]

    r = Run(probes={AT: restart_elsewhere, AT + 5: after})
    assert seen == {"agents": 20, "connected": 1, "adopted": 20, "fw_adopted": 1}
    s = r.summary
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0 and s["tasks_failed"] == 0


def test_a_call_from_an_unknown_address_naming_the_current_master_is_dropped():
    def impostor(c):
        # Another actor (here: a Master nobody configured as one) sends the agents a ping
        # that names the master they follow: it is not a new master, and is dropped.
        for i in range(3):
            c.host.send(c.host.ref("framework/b"), c.host.ref(f"agent-{i}").address,
                        encode(M.Ping(master_id="sim", connected=True)))

    r = Run(probes={AT: impostor})
    for i in range(3):
        agent = r.cluster.host.actor(f"agent-{i}")
        assert agent.drops["Ping not from a master"] == 1
        assert agent.stats["masters_adopted"] == 0 and agent.stats["master_changes"] == 0
    assert r.summary["tasks_finished"] == 300


def test_a_framework_reconciles_once_the_new_masters_agents_are_back():
    # Reconciling while the agents re-register would only fill the master's queue: most
    # answers would be "no answer yet".  SUBSCRIBED says how many agents are awaited, and
    # the heartbeat sent when the last one is back starts the reconciliation.
    seen: dict[str, Any] = {}

    def during(c):
        fw, m = c.host.actor("framework/b"), c.host.actor("master").core
        seen["during"] = (fw.connected, fw._reconcile_after_recovery, fw.stats["reconciliations"],
                          len(m.recovering) > 0)

    def after(c):
        fw, m = c.host.actor("framework/b"), c.host.actor("master").core
        seen["after"] = (fw._reconcile_after_recovery, fw.stats["reconciliations"], m.recovered_at)
        seen["first"] = fw._reconcile_started

    r = Run({"at": AT, "kind": "master_failover"}, probes={AT + 0.2: during, AT + 5: after})
    assert seen["during"] == (True, True, 0, True)
    waiting, rounds, recovered_at = seen["after"]
    assert not waiting and rounds == 1 and recovered_at is not None
    assert seen["first"] == pytest.approx(recovered_at, abs=0.01)   # the heartbeat's latency
    assert r.summary["tasks_finished"] == 300 and r.summary["tasks_lost"] == 0


def test_without_a_registry_agents_and_frameworks_find_the_new_master_by_their_timeouts():
    def forget(c):
        c.host.stores["master:master"].clear()

    r = Run({"at": AT, "kind": "master_failover"}, probes={AT - 0.001: forget})
    s = r.summary
    assert r.master.stats["registry_agents"] == 0
    # the agents notice after 6 silent ping intervals (90 s), the framework after 5 heartbeats
    assert 60 < s["master_recovery_seconds"] <= 90 + 1 + 15
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0


def _restart_elsewhere_forgotten(c):
    """A new master at another address with no registry: nobody is called back."""
    c.host.stores["master:master"].clear()
    c.host.crash("master")
    c.host.crash("allocator")
    c.master, c.allocator = c._start_master("master-2")


def test_a_master_nobody_knows_of_is_found_through_the_list_the_host_sends():
    # On a real host: a master started elsewhere after the agents and the framework, or
    # restarted at a new address without its registry.  Their own lists name only the old
    # master; their host looks the masters up again and tells them (actors.protocol.messages.Masters).
    seen: dict[str, Any] = {}

    def tell_the_list(c):
        for name in [f"agent-{i}" for i in range(20)] + ["framework/b"]:
            actor = c.host.actor(name)
            seen.setdefault("lost", 0)
            seen["lost"] += not (actor.core.registered if name.startswith("agent-") else actor.following_master())
            actor.tell(c.host.ref(name).address, M.Masters(("master-2",)))

    def after(c):
        m = c.host.actor("master-2").core
        seen["agents"] = sum(1 for a in m.agents.values() if a.reachable)
        seen["connected"] = sum(1 for f in m.frameworks.values() if f.connected)
        seen["lists"] = sum(c.host.actor(f"agent-{i}").stats["master_lists"] for i in range(20))

    r = Run(probes={AT: _restart_elsewhere_forgotten, AT + 100: tell_the_list, AT + 110: after})
    assert seen == {"lost": 21, "agents": 20, "connected": 1, "lists": 20}
    s = r.summary
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0 and s["tasks_failed"] == 0


def test_a_master_list_from_another_principal_is_dropped():
    def forged(c):
        # The framework (principal "framework") tells an agent where masters are.
        fw = c.host.actor("framework/b")
        fw.tell(c.host.ref("agent-0").address, M.Masters(("master-2",)))
        fw.tell(c.host.ref("agent-1").address, M.Masters(()))

    def after(c):
        for i in range(2):
            a = c.host.actor(f"agent-{i}")
            assert a.stats["calls_wrong_principal"] == 1 and a.stats["master_lists"] == 0
            masters = a.core.masters
            assert masters.candidates == [masters.master] and a.core.registered

    r = Run(probes={AT: forged, AT + 5: after}, sim={"seed": 7, "until": "30m", "authenticate": True})
    assert r.summary["tasks_finished"] == 300


def test_an_empty_or_unusable_master_list_is_dropped_and_a_good_one_keeps_the_followed_master():
    def lists(c):
        for i, addrs in enumerate([(), ("",), ("master", "master-9"), ("master-9", "master")]):
            a = c.host.actor(f"agent-{i}")
            a.tell(c.host.ref(f"agent-{i}").address, M.Masters(addrs))

    seen: dict[str, Any] = {}

    def after(c):
        for i in range(4):
            a = c.host.actor(f"agent-{i}")
            masters = a.core.masters
            seen[i] = (a.stats["master_lists"], [str(x) for x in masters.candidates],
                       masters.candidates.index(masters.master), a.core.registered)

    Run(probes={AT: lists, AT + 5: after})
    assert seen[0][:1] == (0,) and seen[1][:1] == (0,)
    assert seen[2][0] == 1 and seen[2][2] == 0 and seen[2][3]
    assert seen[3][0] == 1 and seen[3][2] == 1 and seen[3][3]   # still the master it follows


def test_agents_the_registry_names_that_never_return_become_unreachable():
    def crash_some(c):
        for n in CUT:
            c.host.crash(n)

    seen: dict[str, Any] = {}

    def during(c):
        m = c.host.actor("master").core
        seen["recovering"] = len(m.recovering)
        seen["unreachable"] = sum(not a.reachable for a in m.agents.values())

    r = Run({"at": AT, "kind": "master_failover"}, master={"agent_reregister_timeout": "2m"},
            probes={AT - 0.001: crash_some, AT + 60: during})
    assert seen == {"recovering": 5, "unreachable": 0}
    m = r.master
    assert not m.recovering and m.recovered_at == pytest.approx(AT + 120, abs=0.01)
    assert {a.addr_text for a in m.agents.values() if not a.reachable} == set(CUT)
    # the harness counts only live agents: the recovery completed
    assert r.summary["master_recoveries"][0]["agents"] == 15


def test_a_registry_record_that_does_not_decode_is_skipped_with_a_count():
    def spoil(c):
        store = c.host.stores["master:master"]
        store["agent/sim-S3"] = b"\x93\x01garbage"
        store["nonsense/1"] = b""

    r = Run({"at": AT, "kind": "master_failover"}, probes={AT - 0.001: spoil})
    assert r.master.stats["registry_bad_records"] == 2
    # agent sim-S3 was not called back: it found the master by its ping timeout
    assert r.summary["tasks_finished"] == 300 and r.summary["tasks_lost"] == 0


def test_two_failovers_in_a_row():
    r = Run({"at": AT, "kind": "master_failover"}, {"at": AT + 0.5, "kind": "master_failover"})
    s = r.summary
    assert r.master.master_id == "sim3"
    assert [x["at"] for x in s["master_recoveries"]] == [AT, AT + 0.5]
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0


def test_a_recovery_is_read_off_its_master_before_the_next_failover_takes_it():
    r = Run({"at": AT, "kind": "master_failover"}, {"at": AT + 60, "kind": "master_failover"})
    first, second = r.summary["master_recoveries"]
    for rec in (first, second):
        assert rec["agents_back"] == rec["agents"] == 20 and rec["frameworks_back"] == rec["frameworks"] == 1
        assert 0 < rec["seconds"] < 5
    assert r.summary["master_recovery_seconds"] == max(first["seconds"], second["seconds"])


# ---------------------------------------------------------------------------- framework failover


LONG = {"cpus": 1, "mem": "1GiB", "duration": "10m"}


def crash_framework(c: SimCluster) -> None:
    c.host.crash("framework/b")


def test_a_framework_that_does_not_come_back_is_removed_after_its_failover_timeout():
    seen: dict[str, Any] = {}

    def probe(key):
        def p(c):
            m = c.host.actor("master").core
            fw = next(iter(m.frameworks.values()), None)
            seen[key] = (fw is not None, fw.connected if fw else None, live_containers(c))
        return p

    r = Run(framework={"failover_timeout": "1m", "task": LONG},
            probes={AT: crash_framework, AT + 60: probe("silent"), AT + 100: probe("disconnected"),
                    AT + 200: probe("removed")})
    assert seen["silent"][:2] == (True, True)           # 5 heartbeats of 15 s not yet missed
    assert seen["disconnected"][:2] == (True, False)     # disconnected; its tasks still run
    assert seen["disconnected"][2] > 0
    assert seen["removed"] == (False, None, 0)           # removed, every task killed
    m = r.master
    assert len(m.removed_frameworks) == 1
    assert all(not a.tasks and a.allocated.is_empty() for a in m.agents.values())


def test_a_framework_failover_timeout_survives_a_master_failover():
    """Unlike Mesos (MESOS-4659): the new master learns the framework from its agents
    (the registry is gone here) and still counts its failover timeout."""
    seen: dict[str, Any] = {}

    def forget(c):
        c.host.stores["master:master"].clear()

    def probe(key):
        return lambda c: seen.update({key: (len(c.host.actor("master").core.frameworks), live_containers(c))})

    Run({"at": AT + 1, "kind": "master_failover"}, framework={"failover_timeout": "2m", "task": LONG},
        probes={AT: crash_framework, AT + 0.9: forget, AT + 150: probe("waiting"), AT + 260: probe("after")})
    # learned from the agents as they came back (within 90 s + backoff), not yet expired;
    # removed 2 minutes after
    assert seen["waiting"][0] == 1 and seen["waiting"][1] > 0
    assert seen["after"] == (0, 0)


def test_a_framework_cut_off_for_a_while_is_disconnected_and_comes_back_with_its_tasks():
    seen: dict[str, Any] = {}

    def probe(c):
        fw = next(iter(c.host.actor("master").core.frameworks.values()))
        seen["connected"] = fw.connected

    r = Run({"at": AT, "kind": "partition", "targets": "frameworks", "duration": "100s"},
            probes={AT + 95: probe})
    assert seen["connected"] is False
    fw = r.framework()
    assert fw.resubscriptions >= 1 and fw.connected
    s = r.summary
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0


def test_a_second_scheduler_with_the_same_id_takes_over_and_the_first_is_told():
    seen: dict[str, Any] = {}

    def second(c):
        first = c.host.actor("framework/b")
        seen["first"] = first
        addr = c.host.spawn("actors.frameworks.batch:BatchFramework", name="framework/b2", kind="framework")
        c._configure(addr, "framework", "b2", {"master": "master", "name": "b", "framework_id": first.framework_id,
                                               "tasks": [], "seed": 1})

    r = Run(probes={AT: second})
    first = seen["first"]
    assert first.fatal_error == "framework failed over to another scheduler"
    m = r.master
    fw = m.frameworks.get(first.framework_id)
    assert fw is None or fw.address == r.cluster.host.ref("framework/b2").address


# ---------------------------------------------------------------------------- partitions


@pytest.mark.parametrize("aware", [False, True])
def test_a_long_partition_that_heals_brings_the_tasks_back(aware):
    seen: dict[str, Any] = {}

    def before(c):
        seen["tasks"] = tasks_on(c, CUT)

    def during(c):
        tr = c.host.actor("framework/b").tracker
        seen["during"] = {tr.state[t] for t in seen["tasks"]}

    r = Run({"at": AT, "kind": "partition", "targets": "agents[0:5]", "duration": "3m"},
            framework={"partition_aware": aware}, probes={AT - 0.001: before, AT + 100: during})
    assert len(seen["tasks"]) == 20
    assert seen["during"] == {TS.TASK_UNREACHABLE if aware else TS.TASK_LOST}
    s = r.summary
    # the tasks were not killed: they ran on, and finished
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0
    assert s["tasks_lost_then_found"] == (0 if aware else 20)
    assert not any(not a.reachable for a in r.master.agents.values())


def test_an_agent_back_after_a_partition_reports_a_task_it_lost_as_gone():
    seen: dict[str, Any] = {}

    def before(c):
        seen["task"] = victim = sorted(tasks_on(c, ["agent-0"]))[0]
        # the task's container dies unseen while the agent is cut off: the executor is
        # gone with it (as if the task's process group was killed by the kernel)
        agent = c.host.actor("agent-0").core
        ex = next(e for e in agent.executors.values() if victim in e.tasks)
        c.host.crash(ex.address)
        agent.executors.pop((ex.framework_id, ex.info.executor_id))
        agent.task_index.discard((ex.framework_id, victim))
        c.host.containers["agent-0"].live.pop(ex.container_id)

    r = Run({"at": AT, "kind": "partition", "targets": "agent-0", "duration": "3m"},
            framework={"partition_aware": True}, probes={AT - 0.001: before})
    assert r.framework().tracker.state[seen["task"]] == TS.TASK_GONE
    assert r.summary["tasks_lost"] == 1 and r.summary["tasks_finished"] == 299


# ---------------------------------------------------------------------------- agent recovery


def test_an_agent_restart_recovers_its_pending_updates_and_keeps_them_in_order():
    seen: dict[str, Any] = {}

    def before(c):
        # cut the agent off for a moment, so updates pile up unacknowledged, then restart it
        agent = c.host.actor("agent-0").core
        seen["id"] = agent.agent_id

    def restart(c):
        agent = c.host.actor("agent-0").core
        seen["pending"] = sum(len(s.pending) for s in agent.streams.values())
        seen["records"] = sorted(k.partition("/")[0] for k in c.host.stores["agent:agent-0"])

    r = Run({"at": 60, "kind": "partition", "targets": "agent-0", "duration": "40s"},
            {"at": 99, "kind": "agent_restart", "targets": "agent-0"},
            probes={AT: before, 98.9: restart})
    assert seen["pending"] > 0
    assert "agent" in seen["records"] and "up" in seen["records"] and "ex" in seen["records"]
    agent = r.cluster.host.actor("agent-0")
    assert agent.core.restored and agent.core.agent_id == seen["id"]
    s = r.summary
    assert s["tasks_finished"] == 300 and s["tasks_lost"] == 0 and s["tasks_failed"] == 0
    assert agent.query("state", {})["pending_updates"] == 0


def test_a_launch_lost_with_a_restarting_agent_is_dropped():
    """The master placed tasks on an agent that never got the launch (lost on the way),
    and the agent then restarted: the recovered agent does not report them, and the
    master says TASK_DROPPED instead of counting them as running for ever."""
    r = Run({"at": 5, "kind": "message_loss", "targets": "agent-0", "probability": 1.0, "duration": "10s"},
            {"at": 16, "kind": "agent_restart", "targets": "agent-0"},
            framework={"partition_aware": True,
                       "task": {"cpus": 1, "mem": "1GiB", "duration": "uniform(60s,120s)", "start": "10s"}})
    s = r.summary
    dropped = sum(1 for st in r.framework().tracker.state.values() if st == TS.TASK_DROPPED)
    assert dropped == 4                              # agent-0's offer (4 cpus), held until 10 s
    assert s["tasks_finished"] + dropped == 300      # the batch framework does not retry
    assert s["tasks_running"] == 0


class SilentExecutor(CommandExecutor):
    """An executor whose process never gets as far as subscribing."""

    def started(self) -> None:
        pass


def test_an_executor_that_never_registers_fails_its_task_after_the_registration_timeout(monkeypatch):
    from tests.harness import SimHarness
    monkeypatch.setattr(launches, "COMMAND_EXECUTOR", f"{__name__}.SilentExecutor")
    h = SimHarness(agents=1, agent_settings={"executor_registration_timeout": 30.0})
    try:
        fw = h.probe()
        o = h.wait_offers(fw)[0]
        h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "t1", "duration": 3600}])
        t0 = h.now()
        failed = h.wait_update(fw, "t1", "TASK_FAILED")
        assert failed["reason"] == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
        assert 30.0 <= h.now() - t0 < 32.0
        agent = h.host.actor(h.agents[0])
        assert agent.stats["executor_registration_timeouts"] == 1
        h.wait(lambda: not agent.core.executors, "the executor to be gone")
        assert h.master_state()["roles"]["*"]["allocated"]["cpus"] == 0   # its resources came back
    finally:
        h.stop()
