"""What the master shows operators (actors.master.views), read from a core fed real
messages: Mesos' keys, counts kept as tasks change, completed tasks and frameworks kept
within bounds, ACL filtering, bad requests refused."""

from __future__ import annotations

import gzip
import json

import pytest

from actors.master import views
from actors.master.core import MasterCore
from actors.protocol import messages as M
from actors.protocol.messages import Source, TaskState
from actors.security.acl import ACL
from tests.cores import Names, busy_master

TS = TaskState

STATE_KEYS = {"id", "pid", "hostname", "version", "leader", "start_time", "elected_time", "activated_slaves",
              "deactivated_slaves", "unreachable_slaves", "slaves", "frameworks", "completed_frameworks",
              "orphan_tasks", "roles", "flags", "http_address"}
AGENT_KEYS = {"id", "hostname", "pid", "http_address", "resources", "used_resources", "offered_resources",
              "attributes", "active"}
FRAMEWORK_KEYS = {"id", "name", "role", "roles", "active", "connected", "tasks", "completed_tasks",
                  "unreachable_tasks", "offers", "resources"}
TASK_KEYS = {"id", "name", "framework_id", "slave_id", "executor_id", "state", "statuses", "resources", "labels"}


def update(c: MasterCore, fid: str, agent_id: str, tid: str, state: TaskState, now: float, n: int = 0) -> None:
    s = M.TaskStatus(tid, state, Source.SOURCE_EXECUTOR, None, "", agent_id, tid, now, f"u-{tid}-{state.name}-{n}")
    c.handle(M.StatusUpdate(fid, s), "agent-0", now)
    c.take()


def framework_of(c: MasterCore, tid: str) -> tuple[str, str]:
    for f in c.frameworks.values():
        if tid in f.tasks:
            return f.id, f.tasks[tid].agent_id
    raise KeyError(tid)


def test_state_has_mesos_keys_and_every_running_task():
    c = busy_master(agents=4, tasks=12, frameworks=2)
    s = views.state(c, 10.0)
    assert set(s) >= STATE_KEYS
    assert s["activated_slaves"] == 4 and s["unreachable_slaves"] == 0
    assert all(set(a) >= AGENT_KEYS for a in s["slaves"])
    assert all(set(f) >= FRAMEWORK_KEYS for f in s["frameworks"])
    tasks = [t for f in s["frameworks"] for t in f["tasks"]]
    assert len(tasks) == 12 and all(set(t) >= TASK_KEYS for t in tasks)
    assert {t["state"] for t in tasks} == {"TASK_RUNNING"}
    assert tasks[0]["resources"] == {"cpus": 0.5, "mem": 512, "disk": 0, "gpus": 0}
    assert tasks[0]["labels"] == [{"key": "app", "value": "bench"}]
    assert s["slaves"][0]["attributes"] == {"rack": "r0"}
    json.dumps(s)   # plain JSON


def test_metrics_count_tasks_by_state_without_walking_them():
    c = busy_master(agents=3, tasks=9, frameworks=1, running=False)
    m = views.metrics(c, 10.0)
    assert m["master/tasks_staging"] == 9 and m["master/tasks_running"] == 0
    fid, agent = framework_of(c, "t0")
    update(c, fid, agent, "t0", TS.TASK_RUNNING, 11.0)
    update(c, fid, agent, "t1", TS.TASK_RUNNING, 11.0)
    update(c, fid, agent, "t1", TS.TASK_FINISHED, 12.0)
    update(c, fid, agent, "t2", TS.TASK_FAILED, 12.0)
    m = views.metrics(c, 13.0)
    assert m["master/tasks_staging"] == 6
    assert m["master/tasks_running"] == 1
    assert m["master/tasks_finished"] == 1 and m["master/tasks_failed"] == 1
    assert m["master/slaves_active"] == 3 and m["master/frameworks_active"] == 1
    assert m["master/uptime_secs"] == 13.0 and m["master/elected"] == 1
    assert {s: n for s, n in c.tasks.active.items() if n} == c.tasks.recount(c.frameworks.values())


def test_summary_counts_tasks_per_agent_and_framework():
    c = busy_master(agents=2, tasks=4, frameworks=1)
    s = views.state_summary(c, 10.0)
    assert sum(a["TASK_RUNNING"] for a in s["slaves"]) == 4
    assert s["frameworks"][0]["TASK_RUNNING"] == 4
    assert sorted(s["frameworks"][0]["slave_ids"]) == sorted(a["id"] for a in s["slaves"])
    assert all("tasks" not in f for f in s["frameworks"])


def test_a_finished_task_stays_visible_after_its_framework_left():
    c = busy_master(agents=2, tasks=4, frameworks=1)
    fid, agent = framework_of(c, "t0")
    update(c, fid, agent, "t0", TS.TASK_FINISHED, 11.0)
    c.handle(M.Teardown(fid), "sched-0", 12.0)
    c.take()
    s = views.state(c, 13.0)
    assert s["frameworks"] == []
    (done,) = s["completed_frameworks"]
    assert done["id"] == fid and not done["active"] and done["unregistered_time"] == 12.0
    states = {t["id"]: t["state"] for t in done["completed_tasks"]}
    assert states == {"t0": "TASK_FINISHED", "t1": "TASK_KILLED", "t2": "TASK_KILLED", "t3": "TASK_KILLED"}
    assert views.metrics(c, 13.0)["master/tasks_killed"] == 3
    assert views.tasks_view(c, 13.0, framework_id=fid)["tasks"]


def test_completed_frameworks_and_tasks_are_bounded():
    c = MasterCore({"master_id": "m", "allocator": "allocator", "max_completed_frameworks": 2,
                    "max_completed_tasks_per_framework": 3}, Names())
    for j in range(4):
        (reply,) = [m for _, _, m in c.handle(M.Subscribe(M.FrameworkInfo(f"f{j}")), f"s{j}", 1.0)
                    if type(m) is M.Subscribed]
        c.handle(M.Teardown(reply.framework_id), f"s{j}", 2.0)
    c.take()
    assert [f["name"] for f in views.state(c, 3.0)["completed_frameworks"]] == ["f3", "f2"]
    c2 = busy_master(agents=1, tasks=6, frameworks=1)
    c2.tasks.max_completed = 3
    fid, agent = framework_of(c2, "t0")
    for i in range(6):
        update(c2, fid, agent, f"t{i}", TS.TASK_FINISHED, 11.0)
        c2.handle(M.Acknowledge(fid, agent, f"t{i}", f"u-t{i}-TASK_FINISHED-0"), "sched-0", 11.0)
    (f,) = views.state(c2, 12.0)["frameworks"]
    assert [t["id"] for t in f["completed_tasks"]] == ["t3", "t4", "t5"]


def test_tasks_endpoint_pages_orders_and_filters():
    c = busy_master(agents=2, tasks=6, frameworks=2)
    every = views.tasks_view(c, 10.0, limit=100, order="asc")["tasks"]
    assert len(every) == 6
    assert [t["id"] for t in every] == sorted(t["id"] for t in every) or \
        [(t["framework_id"], t["id"]) for t in every] == sorted((t["framework_id"], t["id"]) for t in every)
    page = views.tasks_view(c, 10.0, limit=2, offset=1, order="asc")["tasks"]
    assert page == every[1:3]
    assert views.tasks_view(c, 10.0, order="des")["tasks"] == every[::-1]
    assert [t["id"] for t in views.tasks_view(c, 10.0, task_id="t3")["tasks"]] == ["t3"]
    for bad in ({"limit": 0}, {"offset": -1}, {"order": "sideways"}):
        with pytest.raises(ValueError):
            views.tasks_view(c, 10.0, **bad)


def test_render_answers_each_endpoint_and_refuses_bad_ones():
    c = busy_master(agents=1, tasks=1)
    for endpoint in views.ENDPOINTS:
        json.dumps(views.render(c, 5.0, {"endpoint": endpoint}))
    with pytest.raises(KeyError):
        views.render(c, 5.0, {"endpoint": "secrets"})
    with pytest.raises(ValueError):
        views.render(c, 5.0, {"endpoint": "tasks", "params": {"limit": "many"}})
    body = views.encode(views.render(c, 5.0, {"endpoint": "state"}))
    assert json.loads(gzip.decompress(body))["id"] == "m"


def test_acls_decide_what_a_principal_sees():
    acls = {"permissive": False, "view_frameworks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
            "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"values": ["nobody"]}}],
            "view_agents": [{"principals": {"values": ["ops", "dev"]}, "agents": {"type": "ANY"}}]}
    c = busy_master(agents=2, tasks=2, frameworks=1)
    c.acl = ACL.parse(acls)
    ops = views.state(c, 5.0, views.Viewer("ops", c.acl))
    assert len(ops["frameworks"]) == 1 and len(ops["frameworks"][0]["tasks"]) == 2 and len(ops["slaves"]) == 2
    dev = views.state(c, 5.0, views.Viewer("dev", c.acl))
    assert dev["frameworks"] == [] and len(dev["slaves"]) == 2
    nobody = views.render(c, 5.0, {"endpoint": "state", "principal": "guest"})
    assert nobody["frameworks"] == [] and nobody["slaves"] == []
    assert views.render(c, 5.0, {"endpoint": "tasks", "principal": "guest"})["tasks"] == []


def test_flags_never_show_the_secrets_file():
    c = MasterCore({"master_id": "m", "allocator": "a", "secrets_file": "/etc/impresario/secrets",
                    "agent_ping_timeout": 15.0, "fsync": True}, Names())
    f = views.flags(c)
    assert "secrets_file" not in f and f["agent_ping_timeout"] == "15" and f["fsync"] == "true"


def test_a_task_rendering_is_reused_until_the_task_changes():
    c = busy_master(agents=1, tasks=2, frameworks=1)
    fid, agent = framework_of(c, "t0")
    t = c.frameworks[fid].tasks["t0"]
    first = views.task(t)
    assert views.task(t) is first
    update(c, fid, agent, "t0", TS.TASK_KILLING, 11.0)
    again = views.task(t)
    assert again is not first and again["state"] == "TASK_KILLING"


def test_a_large_view_in_pages_is_the_whole_view(monkeypatch):
    """/state and /frameworks of a large cluster cross in pages (one message each, the
    master free in between); put together they are what one message would have held."""
    from impresario.realhost.endpoints import in_parts

    monkeypatch.setattr(views, "PAGE", 7)
    import impresario.realhost.endpoints as endpoints
    monkeypatch.setattr(endpoints, "PAGE", 7)
    c = busy_master(agents=9, tasks=30, frameworks=2)
    fid, agent = framework_of(c, "t0")
    update(c, fid, agent, "t0", TS.TASK_FINISHED, 11.0)
    c.handle(M.Acknowledge(fid, agent, "t0", "u-t0-TASK_FINISHED-0"), "sched-0", 11.0)
    asked = []

    def fetch(params):
        asked.append(params)
        return views.encode(views.render(c, 12.0, {"endpoint": "state", "params": params}))

    whole = json.loads(gzip.decompress(in_parts(fetch, {})))
    one = views.state(c, 12.0)
    assert len(asked) > 3 and asked[0] == {"part": "head"}
    one["slaves"].sort(key=lambda a: a["id"])
    whole["slaves"].sort(key=lambda a: a["id"])
    assert whole == one
    small = busy_master(agents=1, tasks=2, frameworks=1)
    asked.clear()

    def fetch_small(params):
        asked.append(params)
        return views.encode(views.render(small, 12.0, {"endpoint": "state", "params": params}))

    assert json.loads(gzip.decompress(in_parts(fetch_small, {}))) == views.state(small, 12.0)
    assert asked == [{"part": "head"}, {}]   # small: in one message, a snapshot of one instant


def test_state_written_in_pieces_is_the_state(monkeypatch):
    monkeypatch.setattr(views, "PAGE", 4)
    c = busy_master(agents=9, tasks=30, frameworks=3)
    fid, agent = framework_of(c, "t0")
    update(c, fid, agent, "t0", TS.TASK_FINISHED, 11.0)
    c.handle(M.Teardown(fid), "sched-0", 12.0)
    pieces: list[bytes] = []
    views.write_state(c, 13.0, pieces.append)
    assert len(pieces) > 10
    assert all(t.view is None for f in c.frameworks.values() for t in f.tasks.values())   # nothing kept
    assert json.loads(b"".join(pieces)) == json.loads(json.dumps(views.state(c, 13.0)))
