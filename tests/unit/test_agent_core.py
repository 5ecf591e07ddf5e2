"""The agent's core alone: fed messages and times, read for what it decided - no host,
no actor system, no executors (a spawn port that only names them)."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from actors.agent import executors, registration
from actors.agent.core import COMMAND_EXECUTOR, AgentCore
from actors.config import ConfigError
from actors.core import SEND, SEND_BYTES, STOP, TIMER, sent
from actors.ports import Discovered, MemoryStore
from actors.protocol import messages as M
from actors.protocol.codec import decode
from actors.protocol.messages import Reason, Source, TaskState
from actors.protocol.resources import Resources
from tests.cores import Names

TS = TaskState
MASTER = "master"
ME = "agent-0"
FW = M.FrameworkInfo("fw", user="alice", id="f1")
RESOURCES = "cpus:4;mem:4096;disk:4096"


class Spawner:
    """The spawn port: records the executor classes asked for, answers ``agent-0/<n>``."""

    def __init__(self) -> None:
        self.classes: list[str] = []

    def __call__(self, cls: str) -> str:
        self.classes.append(cls)
        return f"{ME}/{len(self.classes)}"


def core(store: MemoryStore | None = None, spawn: Spawner | None = None, **settings: Any) -> AgentCore:
    return AgentCore({"master": MASTER, "resources": RESOURCES, **settings}, Names(), spawn or Spawner(),
                     random.Random(1), ME, checkpoint=store)


def timers(out: list[Any]) -> dict[str, float]:
    return {name: delay for kind, name, (delay, _) in (e for e in out if e[0] == TIMER)}


def fire(c: AgentCore, name: str, now: float) -> list[Any]:
    token = c.timer_token(name)
    assert token is not None, f"no {name} timer pending"
    return c.fire(name, token, now)


def registered(c: AgentCore, now: float = 1.0) -> list[Any]:
    c.call(registration.start, 0.0)
    return c.handle(M.AgentRegistered("a1", "m1", 15.0), MASTER, now)


def task(tid: str, user: str = "", **res: float) -> M.TaskInfo:
    return M.TaskInfo(tid, tid, "a1", Resources({"cpus": 1, "mem": 128, **res}), M.CommandInfo("sleep 1", user=user))


def launched(c: AgentCore, tid: str = "t1", now: float = 2.0) -> list[Any]:
    return c.handle(M.RunTask(FW, task(tid)), MASTER, now)


def status(tid: str, state: TaskState, uuid: str, now: float) -> M.TaskStatus:
    return M.TaskStatus(tid, state, Source.SOURCE_EXECUTOR, None, "", "a1", tid, now, uuid)


def running(c: AgentCore, tid: str = "t1", now: float = 3.0, executor: str = f"{ME}/1") -> list[Any]:
    c.handle(M.ExecSubscribe("f1", tid), executor, now)
    return c.handle(M.ExecUpdate(status(tid, TS.TASK_RUNNING, "u1", now)), executor, now)


# ---------------------------------------------------------------------- configuration


def test_a_core_refuses_settings_it_cannot_start_with():
    with pytest.raises(ConfigError, match="missing setting 'master'"):
        AgentCore({"resources": RESOURCES}, Names(), Spawner(), random.Random(1))
    with pytest.raises(ConfigError, match="no resources"):
        AgentCore({"master": MASTER}, Names(), Spawner(), random.Random(1))
    with pytest.raises(ConfigError, match="discovery port"):
        AgentCore({"master": MASTER}, Names(), Spawner(), random.Random(1), discovery=lambda: "lots")
    found = Discovered(Resources({"cpus": 8, "mem": 1024}), "h7", {})
    c = AgentCore({"master": MASTER, "resources": "cpus:2"}, Names(), Spawner(), random.Random(1),
                  discovery=lambda: found)
    assert c.info.hostname == "h7" and c.info.resources == Resources({"cpus": 2, "mem": 1024})


# ---------------------------------------------------------------------- registration and pings


def test_start_registers_with_the_master_and_retries_with_a_random_backoff():
    c = core()
    out = c.call(registration.start, 5.0)
    assert sent(out) == [M.RegisterAgent(c.info, "0.1.0", c.incarnation)] and out[0][1] == MASTER
    assert c.incarnation.startswith("5.000000-")
    assert 1.0 <= timers(out)["register"] <= 1.0 + 2.0      # backoff + uniform(0, backoff * 2)
    again = fire(c, "register", 8.0)
    assert sent(again) == [M.RegisterAgent(c.info, "0.1.0", c.incarnation)]
    assert 1.0 <= timers(again)["register"] <= 1.0 + 4.0


def test_a_registered_agent_watches_its_master_and_answers_its_pings():
    c = core()
    out = registered(c)
    assert c.registered and c.agent_id == "a1" and timers(out) == {"watch": 90.0}
    assert c.timer_token("register") is None
    (pong,) = c.handle(M.Ping("m1"), MASTER, 10.0)
    assert pong[:2] == (SEND_BYTES, MASTER) and decode(pong[2]) == M.Pong("a1")
    assert c.handle(M.Ping("m1"), "stranger", 11.0) == [] and c.drops["Ping not from a master"] == 1
    # the watch fires at 91 s: pinged at 10 s, it waits for the rest of the 90 s
    assert timers(fire(c, "watch", 91.0)) == {"watch": pytest.approx(9.0)}


def test_a_ping_from_a_new_master_makes_the_agent_reregister_after_a_random_delay():
    c = core()
    registered(c)
    out = c.handle(M.Ping("m2"), "master-2", 20.0)     # a master the list does not name
    assert sent(out) == [] and not c.registered and c.stats["masters_adopted"] == 1
    assert c.masters.master == "master-2" and c.masters.candidates == ["master-2"]
    assert 0.0 <= timers(out)["register"] <= 1.0 and c.timer_token("watch") is None
    (rereg,) = sent(fire(c, "register", 21.0))
    assert isinstance(rereg, M.ReregisterAgent) and rereg.agent_info.id == "a1"


def test_a_silent_master_is_lost_and_the_next_candidate_is_tried():
    c = core(masters=["m-a", "m-b"])
    c.call(registration.start, 0.0)
    c.handle(M.AgentRegistered("a1", "m1", 15.0), "m-a", 1.0)
    out = fire(c, "watch", 91.0)
    assert c.stats["master_lost"] == 1 and not c.registered
    assert [(k, a) for k, a, _ in out] == [(SEND, "m-b"), (TIMER, "register")]
    assert isinstance(out[0][2], M.ReregisterAgent)


def test_a_master_list_from_the_host_is_followed_and_one_from_another_principal_dropped():
    c = core()
    c.authenticates, c.own_principal = True, "agent"
    c.call(registration.start, 0.0)
    assert c.handle(M.Masters(("m-new",)), ME, 1.0, principal="mallory") == []
    assert c.stats["calls_wrong_principal"] == 1 and c.masters.master == MASTER
    assert c.handle(M.Masters(()), ME, 1.0, principal="agent") == [] and c.drops["MASTERS naming no master"] == 1
    out = c.handle(M.Masters(("m-new", "m-new")), ME, 2.0, principal="agent")
    assert out[0][:2] == (SEND, "m-new") and isinstance(out[0][2], M.RegisterAgent)
    assert c.masters.candidates == ["m-new"] and c.stats["master_lists"] == 1


def test_a_refused_agent_stops_trying():
    c = core()
    c.call(registration.start, 0.0)
    assert c.handle(M.AgentRefused("no"), MASTER, 1.0) == []
    assert c.refused == "no" and c.timer_token("register") is None


# ---------------------------------------------------------------------- launches


def test_a_task_gets_an_executor_configured_and_launched_as_its_frameworks_user():
    spawn, store = Spawner(), MemoryStore()
    c = core(store, spawn)
    registered(c)
    out = launched(c)
    assert spawn.classes == [COMMAND_EXECUTOR]
    configure, launch = sent(out, to=f"{ME}/1")
    assert isinstance(configure, M.Configure) and configure.name == "a1/f1/t1"
    assert configure.settings["container_id"].startswith("c1-")    # the checkpoint makes it unique
    assert launch == M.ExecLaunch(task("t1", user="alice"))
    assert timers(out) == {"executor_registration": 60.0}
    assert sorted(store.records) == ["agent", "ex/f1/t1", "fw/f1"]
    # the same launch again (the master retried): nothing new
    assert launched(c, now=2.5) == [] and c.stats["launches_known"] == 1


def test_a_task_as_root_is_refused_unless_allowed():
    spawn = Spawner()
    c = core(spawn=spawn)
    registered(c)
    out = c.handle(M.RunTask(FW, task("t1", user="root")), MASTER, 2.0)
    (update,) = sent(out, M.StatusUpdate, to=MASTER)
    assert update.status.state == TS.TASK_ERROR and update.status.reason == Reason.REASON_TASK_UNAUTHORIZED
    assert spawn.classes == [] and c.stats["tasks_refused_user"] == 1
    allowed = core(spawn=spawn, allow_root_tasks=True)
    registered(allowed)
    assert sent(allowed.handle(M.RunTask(FW, task("t1", user="root")), MASTER, 2.0), M.ExecLaunch)
    assert spawn.classes == [COMMAND_EXECUTOR]


def test_a_task_asking_for_more_gpus_than_are_free_fails():
    spawn = Spawner()
    c = core(spawn=spawn, resources=RESOURCES + ";gpus:1")
    registered(c)
    out = c.handle(M.RunTask(FW, task("t1", gpus=2)), MASTER, 2.0)
    (update,) = sent(out, M.StatusUpdate)
    assert update.status.state == TS.TASK_FAILED and "not enough free GPUs" in update.status.message
    assert spawn.classes == [] and c.gpus.free == [0]
    (launch,) = sent(c.handle(M.RunTask(FW, task("t2", gpus=1)), MASTER, 3.0), M.ExecLaunch)
    assert [g.index for g in launch.gpus] == [0] and c.gpus.free == []


def test_a_kill_for_a_task_the_agent_does_not_have_answers_task_lost():
    c = core()
    registered(c)
    (update,) = sent(c.handle(M.KillTask("f1", "ghost"), MASTER, 2.0))
    assert update.status.state == TS.TASK_LOST and update.status.reason == Reason.REASON_TASK_UNKNOWN
    launched(c)
    assert sent(c.handle(M.KillTask("f1", "t1", 5.0), MASTER, 3.0)) == [M.ExecKill("t1", 5.0)]


# ---------------------------------------------------------------------- executors and streams


def test_an_executor_update_is_acknowledged_and_sent_to_the_master_one_at_a_time():
    c = core()
    registered(c)
    launched(c)
    out = running(c)
    assert sent(out, to=f"{ME}/1") == [M.ExecAcknowledged("t1", "u1")]
    (first,) = sent(out, M.StatusUpdate, to=MASTER)
    assert first.status.uuid == "u1" and timers(out) == {"retry": 10.0}
    # a second update waits behind the first, which now carries the latest state
    out = c.handle(M.ExecUpdate(status("t1", TS.TASK_FINISHED, "u2", 4.0)), f"{ME}/1", 4.0)
    assert sent(out, M.StatusUpdate) == [] and (STOP, f"{ME}/1", None) in out
    assert c.handle(M.StatusUpdateAck("a1", "f1", "t1", "u2"), MASTER, 5.0) == []   # not the head
    assert c.stats["stale_acks"] == 1
    (second,) = sent(c.handle(M.StatusUpdateAck("a1", "f1", "t1", "u1"), MASTER, 5.0))
    assert second == M.StatusUpdate("f1", status("t1", TS.TASK_FINISHED, "u2", 4.0), TS.TASK_FINISHED)
    assert c.handle(M.StatusUpdateAck("a1", "f1", "t1", "u2"), MASTER, 6.0) == [] and not c.streams


def test_an_unacknowledged_update_is_resent_with_exponential_backoff():
    c = core(status_update_retry_max=30.0)
    registered(c)
    launched(c)
    running(c, now=3.0)
    waits = []
    now = 3.0
    for _ in range(4):
        now += c.streams[("f1", "t1")].interval
        out = fire(c, "retry", now)
        assert [u.status.uuid for u in sent(out, M.StatusUpdate)] == ["u1"]
        waits.append(timers(out)["retry"])
    assert waits == [20.0, 30.0, 30.0, 30.0] and c.stats["update_retries"] == 4


def test_an_executor_that_does_not_subscribe_in_time_fails_its_task_and_is_stopped():
    c = core(executor_registration_timeout=30.0)
    registered(c)
    launched(c, now=2.0)
    out = fire(c, "executor_registration", 32.0)
    (update,) = sent(out, M.StatusUpdate)
    assert update.status.reason == Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
    assert out[-1] == (STOP, f"{ME}/1", None)
    # its exit: the task failed already (and a command executor holds no resources of its
    # own): nothing more to tell
    out = c.call(executors.exited, 33.0, f"{ME}/1")
    assert sent(out) == [] and not c.executors and not c.task_index


def test_an_executor_that_exits_before_its_task_ends_fails_it():
    c = core()
    registered(c)
    launched(c)
    running(c)
    out = c.call(executors.exited, 9.0, f"{ME}/1")
    assert sent(out, M.ExitedExecutor) == [M.ExitedExecutor("a1", "f1", "t1", 1)]
    assert c.streams[("f1", "t1")].pending[-1].status.reason == Reason.REASON_EXECUTOR_TERMINATED
    assert not c.task_index and not c.exec_by_addr


def test_an_executor_message_from_another_principal_is_dropped():
    c = core()
    c.authenticates, c.own_principal = True, "agent"
    c.call(registration.start, 0.0)
    c.handle(M.AgentRegistered("a1", "m1", 15.0), MASTER, 1.0, principal="master")
    launched_out = c.handle(M.RunTask(FW, task("t1")), MASTER, 2.0, principal="master")
    assert sent(launched_out, M.ExecLaunch)
    out = c.handle(M.ExecUpdate(status("t1", TS.TASK_RUNNING, "u1", 3.0)), f"{ME}/1", 3.0, principal="mallory")
    assert out == [] and c.stats["calls_wrong_principal"] == 1


# ---------------------------------------------------------------------- checkpoints


def test_a_restarted_agent_is_restored_from_its_checkpoint():
    store = MemoryStore()
    first = core(store)
    registered(first)
    launched(first)
    running(first)
    spawn = Spawner()
    again = core(store, spawn)
    out = again.call(registration.start, 50.0)
    assert again.restored and again.agent_id == "a1" and spawn.classes == [COMMAND_EXECUTOR]
    (recover,) = sent(out, M.ExecRecover)
    (r,) = recover.tasks
    assert r.task.task_id == "t1" and r.state == TS.TASK_RUNNING       # the pending update's state
    assert r.container_id == first.executors[("f1", "t1")].container_id
    (rereg,) = sent(out, M.ReregisterAgent, to=MASTER)
    assert [t.task.task_id for t in rereg.tasks] == ["t1"] and rereg.frameworks == (FW,)
    assert [u.status.uuid for u in again.streams[("f1", "t1")].pending] == ["u1"]
    # registered again: the pending update goes out at once
    (resent,) = sent(again.handle(M.AgentReregistered("a1", "m1", 15.0), MASTER, 51.0), M.StatusUpdate)
    assert resent.status.uuid == "u1" and again.reregistrations == 1


def test_an_unreadable_checkpoint_is_dropped_and_the_agent_starts_new():
    store = MemoryStore({"agent": b"\xc1", "fw/f1": FW})
    c = core(store)
    out = c.call(registration.start, 0.0)
    assert not c.restored and not store.records
    assert sent(out) == [M.RegisterAgent(c.info, "0.1.0", c.incarnation)]


# ---------------------------------------------------------------------- usage


def test_usage_samples_are_batched_into_one_report_per_interval():
    c = core(usage_interval=5.0)
    registered(c)
    launched(c, "t1")
    launched(c, "t2")
    stats = M.ResourceStatistics(3.0, cpus_user_time_secs=1.0)
    usage = [M.TaskUsage("f1", tid, tid, stats) for tid in ("t2", "t1", "other")]
    out = c.handle(M.ExecUsage((usage[0],)), f"{ME}/2", 3.0)
    assert timers(out) == {"usage": 5.0}
    assert c.handle(M.ExecUsage((usage[1], usage[2])), f"{ME}/1", 4.0) == []    # armed already
    (report,) = sent(fire(c, "usage", 8.0))
    assert report == M.UsageReport("a1", (usage[1], usage[0])) and not c.usage_pending
    assert fire_if_pending(c, "usage", 13.0) == []


def fire_if_pending(c: AgentCore, name: str, now: float) -> list[Any]:
    token = c.timer_token(name)
    return [] if token is None else c.fire(name, token, now)


# ---------------------------------------------------------------------- sandboxes and the log


def test_each_executor_shows_its_run_directory_and_completed_ones_are_kept_to_a_bound():
    c = core(work_dir="/w", max_completed_executors=2)
    registered(c)
    for i, tid in enumerate(("t1", "t2", "t3")):
        launched(c, tid, now=2.0 + i)
    cids = {e["executor_id"]: e["container_id"] for e in c.state()["executors"]}
    assert [e["directory"] for e in c.state()["executors"]] == [
        f"/w/slaves/a1/frameworks/f1/executors/{t}/runs/{cids[t]}" for t in ("t1", "t2", "t3")]
    assert c.state()["completed_executors"] == []
    for i, tid in enumerate(("t1", "t2", "t3")):
        running(c, tid, now=6.0 + i, executor=f"{ME}/{i + 1}")
        c.handle(M.ExecUpdate(status(tid, TS.TASK_FINISHED, f"{tid}-end", 9.0)), f"{ME}/{i + 1}", 9.0)
        c.call(executors.exited, 10.0 + i, f"{ME}/{i + 1}")
    # the newest two, oldest first, with their directories and their tasks' last states
    assert c.state()["executors"] == [] and c.state()["completed_executors"] == [
        {"framework_id": "f1", "executor_id": t, "container_id": cids[t], "tasks": {t: "TASK_FINISHED"},
         "directory": f"/w/slaves/a1/frameworks/f1/executors/{t}/runs/{cids[t]}"} for t in ("t2", "t3")]
    with pytest.raises(ConfigError, match="max_completed_executors"):
        core(max_completed_executors=-1)


def test_a_restored_agent_counts_the_executors_that_ended_before_among_the_completed():
    store = MemoryStore()
    first = core(store, work_dir="/w")
    registered(first)
    launched(first)
    running(first)
    first.handle(M.ExecUpdate(status("t1", TS.TASK_FAILED, "u2", 4.0)), f"{ME}/1", 4.0)
    cid = first.executors[("f1", "t1")].container_id
    again = core(store, work_dir="/w")
    again.call(registration.start, 50.0)
    assert again.executors == {}
    assert again.state()["completed_executors"] == [
        {"framework_id": "f1", "executor_id": "t1", "container_id": cid, "tasks": {"t1": "TASK_FAILED"},
         "directory": f"/w/slaves/a1/frameworks/f1/executors/t1/runs/{cid}"}]


def test_every_launch_and_state_change_is_one_line_of_the_agents_task_log(caplog):
    c = core()
    registered(c)
    with caplog.at_level(logging.INFO, logger="impresario.agent.tasks"):
        launched(c)
        running(c)
        failed = M.TaskStatus("t1", TS.TASK_FAILED, Source.SOURCE_EXECUTOR, Reason.REASON_COMMAND_EXECUTOR_FAILED,
                              "Command exited with status 3", "a1", "t1", 4.0, "u2")
        c.handle(M.ExecUpdate(failed), f"{ME}/1", 4.0)
        c.handle(M.ExecUpdate(failed), f"{ME}/1", 4.5)     # the same update again: no new line
        c.handle(M.KillTask("f1", "ghost"), MASTER, 5.0)    # the agent's own update
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.name.endswith(".tasks")] == [
        ("impresario.agent.tasks", "INFO", "task t1 of framework f1 on agent a1: launching"),
        ("impresario.agent.tasks", "INFO", "task t1 of framework f1 on agent a1: TASK_RUNNING"),
        ("impresario.agent.tasks", "INFO", "task t1 of framework f1 on agent a1: TASK_FAILED "
                                           "(REASON_COMMAND_EXECUTOR_FAILED): Command exited with status 3"),
        ("impresario.agent.tasks", "INFO", "task ghost of framework f1 on agent a1: TASK_LOST "
                                           "(REASON_TASK_UNKNOWN): the agent has no such task"),
    ]
