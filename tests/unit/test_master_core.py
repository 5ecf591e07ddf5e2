"""The master's core alone: fed messages and times, read for what it decided - no host,
no actor system, no codec on the way."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from actors.config import ConfigError
from actors.core import SEND, SEND_BYTES, TIMER, sent
from actors.master import validation as V
from actors.master.core import MasterCore
from actors.ports import MemoryStore
from actors.protocol import messages as M
from actors.protocol.codec import decode
from actors.protocol.messages import Capability, Reason, TaskState
from actors.protocol.resources import Resources
from tests.cores import Names

TS = TaskState
ALLOC = "allocator"
AGENT = "agent-host"
SCHED = "scheduler"


def core(**settings: Any) -> MasterCore:
    return MasterCore({"master_id": "m", "allocator": ALLOC, **settings}, Names(), settings.pop("registry", None))


def agent_info(cpus: float = 4, mem: float = 4096) -> M.AgentInfo:
    return M.AgentInfo("h1", Resources({"cpus": cpus, "mem": mem}))


def registered(c: MasterCore, sender: str = AGENT, now: float = 1.0) -> str:
    out = c.handle(M.RegisterAgent(agent_info(), "0.1.0", "inc-1"), sender, now)
    (reply,) = sent(out, M.AgentRegistered, to=sender)
    return reply.agent_id


def subscribed(c: MasterCore, now: float = 2.0, **info: Any) -> str:
    fi = M.FrameworkInfo(**{"name": "fw", "roles": ("web",), **info})
    (reply,) = sent(c.handle(M.Subscribe(fi), SCHED, now), M.Subscribed, to=SCHED)
    return reply.framework_id


def offered(c: MasterCore, fid: str, agent_id: str, now: float = 3.0, cpus: float = 4, mem: float = 4096) -> M.Offer:
    res = Resources({"cpus": cpus, "mem": mem}, role="web")
    out = c.handle(M.AllocOffers((M.Allocation(fid, "web", agent_id, res),)), ALLOC, now)
    (offers,) = sent(out, M.Offers, to=SCHED)
    return offers.offers[0]


def task(tid: str, cpus: float = 1) -> M.TaskInfo:
    return M.TaskInfo(tid, tid, "", Resources({"cpus": cpus, "mem": 128}), M.CommandInfo("sleep 1"))


def launched(c: MasterCore, fid: str, agent_id: str, tids: tuple[str, ...] = ("t1",), now: float = 4.0) -> list[Any]:
    offer = offered(c, fid, agent_id, now=now - 1)
    return c.handle(M.Accept(fid, (offer.offer_id,), (M.Launch(tuple(task(t) for t in tids)),)), SCHED, now)


def status(c: MasterCore, fid: str, agent_id: str, tid: str, state: TaskState, uuid: str, now: float) -> list[Any]:
    s = M.TaskStatus(tid, state, M.Source.SOURCE_EXECUTOR, None, "", agent_id, tid, now, uuid)
    return c.handle(M.StatusUpdate(fid, s), AGENT, now)


# ---------------------------------------------------------------------- configuration and start


def test_a_core_refuses_settings_it_cannot_start_with():
    with pytest.raises(ConfigError):
        MasterCore({"allocator": ALLOC}, Names())
    with pytest.raises(ConfigError):
        MasterCore({"master_id": "a/b", "allocator": ALLOC}, Names())
    with pytest.raises(ConfigError):
        core(quotas={"web": {"guarantee": {"cpus": 2}, "limit": {"cpus": 1}}})


def test_start_arms_the_heartbeat_and_tells_the_allocator_the_weights():
    c = core(weights={"web": 2.0})
    out = c.start(0.0)
    assert [(k, a) for k, a, _ in out] == [(TIMER, "heartbeat"), (SEND, ALLOC)]
    assert sent(out, M.AllocUpdateWeights) == [M.AllocUpdateWeights((("web", 2.0),))]


def test_a_timer_fires_only_for_its_newest_arming():
    c = core()
    (_, _, (_, first)), = c.start(0.0)
    c.set_timer("heartbeat", 5.0)
    (_, _, (_, newest)), = c.take()
    assert c.fire("heartbeat", first, 15.0) == [] and c.stats["stale_timers"] == 1
    assert c.fire("heartbeat", newest, 15.0) != []


# ---------------------------------------------------------------------- agents


def test_an_agent_registers_and_the_allocator_learns_its_resources():
    c = core()
    out = c.handle(M.RegisterAgent(agent_info(), "0.1.0", "inc-1"), AGENT, 1.0)
    reply, add = sent(out)
    assert reply == M.AgentRegistered("m-S1", "m", 15.0)
    assert out[-1][1] == ALLOC and add == M.AllocAddAgent("m-S1", agent_info().resources, (), agent_info().capabilities)
    assert (TIMER, "ping") in [(k, a) for k, a, _ in out]
    # the same registration again (same incarnation): answered, nothing else
    again = c.handle(M.RegisterAgent(agent_info(), "0.1.0", "inc-1"), AGENT, 2.0)
    assert sent(again) == [M.AgentRegistered("m-S1", "m", 15.0)]


def test_an_agent_that_stops_answering_pings_is_cut_off_and_its_tasks_are_lost():
    c = core()
    c.start(0.0)
    agent_id = registered(c)
    fid = subscribed(c)
    launched(c, fid, agent_id)
    now, out = 1.0, []
    for _ in range(6):
        now += 15.0
        out = c.fire("ping", c.timer_token("ping"), now)
        if sent(out, M.AllocRemoveAgent):
            break
        assert out[0][:2] == (SEND_BYTES, AGENT) and decode(out[0][2]) == M.Ping("m", True)
    assert sent(out, M.AllocRemoveAgent) == [M.AllocRemoveAgent(agent_id)]
    (update,) = sent(out, M.Update, to=SCHED)
    assert update.status.state == TS.TASK_LOST and update.status.reason == Reason.REASON_AGENT_REMOVED
    assert sent(out, M.Failure, to=SCHED) == [M.Failure(agent_id)]
    assert not c.agents[agent_id].reachable and c.agents[agent_id].allocated.is_empty()


def test_a_pong_keeps_an_agent_and_one_from_a_stranger_is_dropped():
    c = core()
    agent_id = registered(c)
    c.agents[agent_id].missed_pings = 3
    assert c.handle(M.Pong(agent_id), AGENT, 5.0) == [] and c.agents[agent_id].missed_pings == 0
    c.handle(M.Pong(agent_id), "elsewhere", 5.0)
    assert c.stats["dropped"] == 1


def test_a_reregistering_agent_brings_its_tasks_and_their_accounts_back():
    c = core()
    fi = M.FrameworkInfo("fw", roles=("web",), id="f1")
    t = M.TaskInfo("t1", "t1", "m-S7", Resources({"cpus": 2, "mem": 256}, role="web"), M.CommandInfo("x"))
    info = M.AgentInfo("h1", Resources({"cpus": 4, "mem": 4096}), id="m-S7")
    out = c.handle(M.ReregisterAgent(info, (fi,), (), (M.AgentTask("f1", "t1", t, TS.TASK_RUNNING),), "0.1.0", "i"),
                   AGENT, 1.0)
    assert sent(out, M.AgentReregistered, to=AGENT) == [M.AgentReregistered("m-S7", "m", 15.0)]
    (add,) = sent(out, M.AllocAddAgent)
    assert add.allocated == (M.Allocation("f1", "web", "m-S7", t.resources),)
    assert c.frameworks["f1"].tasks["t1"] is c.agents["m-S7"].tasks[("f1", "t1")]
    assert c.agents["m-S7"].allocated.millis("cpus") == 2000
    assert c.ledger.get("web", "used").millis("cpus") == 2000


# ---------------------------------------------------------------------- frameworks


def test_a_framework_subscribes_and_a_bad_one_is_refused_for_good():
    c = core()
    out = c.handle(M.Subscribe(M.FrameworkInfo("fw", roles=("web",))), SCHED, 1.0)
    assert sent(out) == [M.Subscribed("m-0001", 15.0, "m", 0),
                         M.AllocAddFramework("m-0001", ("web",), (), (), ())]
    bad = c.handle(M.Subscribe(M.FrameworkInfo("fw2", roles=("a", "b"))), "other", 1.0)
    (err,) = sent(bad, M.Error, to="other")
    assert err.fatal and "MULTI_ROLE" in err.message and len(c.frameworks) == 1


def test_a_silent_framework_is_disconnected_then_removed_after_its_failover_timeout():
    c = core()
    c.start(0.0)
    fid = subscribed(c, now=0.0, failover_timeout=100.0)
    now, out = 0.0, []
    for _ in range(6):
        now += 15.0
        out = c.fire("heartbeat", c.timer_token("heartbeat"), now)
        if sent(out, M.AllocActivate):
            break
    assert sent(out, M.AllocActivate) == [M.AllocActivate(fid, False)]
    assert not c.frameworks[fid].connected
    out = c.fire("failover", c.timer_token("failover"), now + 100.0)
    assert sent(out, M.AllocRemoveFramework) == [M.AllocRemoveFramework(fid)]
    assert fid in c.removed_frameworks and fid not in c.frameworks


# ---------------------------------------------------------------------- offers and launches


def test_an_accepted_offer_launches_its_task_and_gives_the_rest_back():
    c = core()
    agent_id = registered(c)
    fid = subscribed(c)
    out = launched(c, fid, agent_id)
    (run,) = sent(out, M.RunTask, to=AGENT)
    assert run.task.agent_id == agent_id and run.task.resources.role == "web"
    (recover,) = sent(out, M.AllocRecover, to=ALLOC)
    (item,) = recover.items
    assert item.resources.millis("cpus") == 3000 and item.refuse_seconds == 5.0
    assert c.counters["tasks_launched"] == 1 and c.agents[agent_id].offered.is_empty()


def test_a_launch_that_cannot_run_is_answered_task_error_and_its_offer_goes_back():
    c = core()
    agent_id = registered(c)
    fid = subscribed(c)
    offer = offered(c, fid, agent_id)
    out = c.handle(M.Accept(fid, (offer.offer_id,), (M.Launch((task("big", cpus=8),)),)), SCHED, 4.0)
    (update,) = sent(out, M.Update)
    assert update.status.state == TS.TASK_ERROR and "asks for" in update.status.message
    assert not sent(out, M.RunTask) and sent(out, M.AllocRecover)


def test_offers_from_anyone_but_the_allocator_are_dropped():
    c = core()
    agent_id = registered(c)
    fid = subscribed(c)
    out = c.handle(M.AllocOffers((M.Allocation(fid, "web", agent_id, Resources({"cpus": 1})),)), "intruder", 3.0)
    assert out == [] and c.stats["dropped"] == 1 and not c.offers


def test_a_declined_offer_goes_back_with_its_filter():
    c = core()
    agent_id = registered(c)
    fid = subscribed(c)
    offer = offered(c, fid, agent_id)
    out = c.handle(M.Decline(fid, (offer.offer_id,), M.Filters(60.0)), SCHED, 4.0)
    (recover,) = sent(out, M.AllocRecover)
    assert recover.items[0].refuse_seconds == 60.0 and not c.offers


# ---------------------------------------------------------------------- task traffic


def test_updates_reach_the_framework_and_an_acknowledged_end_completes_the_task():
    c = core()
    agent_id = registered(c)
    fid = subscribed(c)
    launched(c, fid, agent_id)
    out = status(c, fid, agent_id, "t1", TS.TASK_RUNNING, "u1", 5.0)
    assert [u.status.state for u in sent(out, M.Update, to=SCHED)] == [TS.TASK_RUNNING]
    out = status(c, fid, agent_id, "t1", TS.TASK_FINISHED, "u2", 6.0)
    assert sent(out, M.AllocRecover) and c.agents[agent_id].allocated.is_empty()
    out = c.handle(M.Acknowledge(fid, agent_id, "t1", "u2"), SCHED, 7.0)
    assert sent(out, to=AGENT) == [M.StatusUpdateAck(agent_id, fid, "t1", "u2")]
    assert "t1" not in c.frameworks[fid].tasks and "t1" in c.frameworks[fid].completed_ids
    assert (fid, "t1") not in c.agents[agent_id].tasks


def test_reconciliation_answers_for_tasks_the_master_does_not_know():
    c = core()
    registered(c)
    fid = subscribed(c, capabilities=(Capability.PARTITION_AWARE,))
    out = c.handle(M.Reconcile(fid, (M.ReconcileTask("ghost", "nowhere"),)), SCHED, 5.0)
    (update,) = sent(out, M.Update)
    assert update.status.state == TS.TASK_UNKNOWN and update.status.reason == Reason.REASON_RECONCILIATION


def test_a_call_for_a_framework_from_another_address_asks_it_to_subscribe_again():
    c = core()
    fid = subscribed(c)
    out = c.handle(M.Kill(fid, "t1"), "impostor", 5.0)
    (err,) = sent(out, M.Error, to="impostor")
    assert err.resubscribe and not err.fatal


# ---------------------------------------------------------------------- operator


def test_weights_are_checked_recorded_and_told_to_the_allocator():
    store = MemoryStore({})
    c = core(registry=store)
    out = c.handle(M.UpdateWeights((("web", 3.0),)), "operator", 1.0)
    assert sent(out) == [M.AllocUpdateWeights((("web", 3.0),)), M.QueryReply("weights", {"web": 3.0})]
    assert "weights" in store.load()
    bad = c.handle(M.UpdateWeights((("web", -1.0),)), "operator", 1.0)
    assert sent(bad, M.Error)[0].call == "UPDATE_WEIGHTS" and c.weights == {"web": 3.0}


def test_a_quota_update_rescinds_the_offers_of_its_role():
    c = core()
    agent_id = registered(c)
    fid = subscribed(c)
    offer = offered(c, fid, agent_id)
    out = c.handle(M.UpdateQuota("web", (("cpus", 1000),), (("cpus", 2000),)), "operator", 4.0)
    assert sent(out, M.Rescind, to=SCHED) == [M.Rescind(offer.offer_id)]
    assert sent(out, M.AllocUpdateQuota) and sent(out, M.QueryReply)[0].what == "quota"


# ---------------------------------------------------------------------- validation alone


def test_validation_functions_name_the_problem_or_nothing():
    assert V.framework_problem(M.FrameworkInfo("x", roles=())) == "a framework needs at least one role"
    assert V.framework_problem(M.FrameworkInfo("x", roles=("a",))) is None
    assert V.accept_problem((), None, []) == "ACCEPT names no offer"
    assert V.accept_problem(("o1", "o1"), None, []) == "ACCEPT names an offer twice"
    assert "o2 is unknown" in V.accept_problem(("o1", "o2"), "o2", [("a1", "r")])
    assert V.accept_problem(("o1", "o2"), None, [("a1", "r"), ("a2", "r")]).endswith("from one agent")
    assert V.command_task_problem(M.TaskInfo("t", "t", "", Resources({"cpus": 1}))) == "task t has no command"
    assert V.refuse_seconds(None) == 5.0 and V.refuse_seconds(M.Filters(-1)) == 5.0
    assert V.refuse_seconds(M.Filters(1e12)) == 365 * 86400.0


def test_recovered_resources_go_back_once_per_message_and_before_any_later_allocator_call():
    c = core()
    agent_id = registered(c)
    fid = subscribed(c)
    launched(c, fid, agent_id, tids=("t1", "t2"))
    status(c, fid, agent_id, "t1", TS.TASK_RUNNING, "u1", 5.0)
    out = status(c, fid, agent_id, "t1", TS.TASK_FAILED, "u2", 6.0)
    # the framework hears first; the resources go back once the update is handled
    assert [type(m) for m in sent(out)] == [M.Update, M.AllocRecover]
    # a TEARDOWN recovers the other task and its offer; the allocator hears of them before
    # it is told the framework is gone
    offered(c, fid, agent_id, now=6.5, cpus=1, mem=1024)
    out = c.handle(M.Teardown(fid), SCHED, 7.0)
    to_allocator = [m for k, a, m in out if k == SEND and a == ALLOC]
    assert [type(m) for m in to_allocator] == [M.AllocRecover, M.AllocRemoveFramework]
    assert sorted(r.resources.millis("cpus") for r in to_allocator[0].items) == [1000, 1000]
    assert not c.recover_buffer


# ---------------------------------------------------------------------- the task log


def test_every_launch_and_state_change_is_one_line_of_the_masters_task_log(caplog):
    c = core()
    c.start(0.0)
    agent_id = registered(c)
    fid = subscribed(c)
    with caplog.at_level(logging.INFO, logger="impresario.master.tasks"):
        launched(c, fid, agent_id, ("t1", "t2"))
        offer = offered(c, fid, agent_id, now=4.5, cpus=1, mem=1024)
        c.handle(M.Accept(fid, (offer.offer_id,), (M.Launch((task("big", cpus=8),)),)), SCHED, 4.6)
        status(c, fid, agent_id, "t1", TS.TASK_RUNNING, "u1", 5.0)
        status(c, fid, agent_id, "t1", TS.TASK_RUNNING, "u1", 15.0)     # resent: the state did not change
        s = M.TaskStatus("t1", TS.TASK_FAILED, M.Source.SOURCE_EXECUTOR, Reason.REASON_COMMAND_EXECUTOR_FAILED,
                         "Command exited with status 3", agent_id, "t1", 16.0, "u2")
        c.handle(M.StatusUpdate(fid, s), AGENT, 16.0)
        now = 16.0
        while (fid, "t2") in c.agents[agent_id].tasks and now < 200:   # t2's agent is cut off
            now += 15.0
            c.fire("ping", c.timer_token("ping"), now)
    line = f"task %s of framework {fid} on agent {agent_id}: %s"
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "impresario.master.tasks"] == [
        ("INFO", m) for m in [
        line % ("t1", "launching"),
        line % ("t2", "launching"),
        f"task big of framework {fid} on agent {agent_id}: TASK_ERROR (REASON_TASK_INVALID): task big asks for "
        "cpus:8;mem:128{web} but only cpus:1;mem:1024{web} is left of the offers",
        line % ("t1", "TASK_RUNNING"),
        line % ("t1", "TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED): Command exited with status 3"),
        line % ("t2", f"TASK_LOST (REASON_AGENT_REMOVED): agent {agent_id} missed 5 pings"),
    ]]
