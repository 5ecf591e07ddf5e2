"""[sim] authenticate: the simulator runs the kernel's authentication (sim/auth.py).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from sim import api
from sim.runner import SimCluster, summarize
from sim.scenario import parse

SMALL = {"agents": 20, "frameworks.0.tasks": 300, "frameworks.1.tasks": 60}

FAULTS: dict[str, Any] = {
    "sim": {"seed": 7, "until": "30m"},
    "cluster": {"agents": 20, "agent": {"cpus": 4, "mem": "8GiB", "disk": "100GiB"}},
    "frameworks": [{"name": "b", "tasks": 200, "task": {"cpus": 1, "mem": "1GiB", "duration": "uniform(60s,120s)"}}],
    "faults": [{"at": 30, "kind": "master_failover"},
               {"at": 50, "kind": "agent_restart", "targets": "agents[0:5]"},
               {"at": 70, "kind": "agent_crash", "targets": "agents[5:8]", "duration": "20s"}],
}


def test_with_authentication_a_run_is_the_same_run_to_run_and_does_the_same_work():
    off = api.run("quickstart", SMALL, plots=False).summary
    on = [api.run("quickstart", {**SMALL, "sim.authenticate": True}, plots=False).summary for _ in range(2)]
    assert on[0]["digest"] == on[1]["digest"] != off["digest"]
    for key in ("messages", "messages_by_type", "tasks_finished", "virtual_seconds", "scheduling_latency"):
        assert on[0][key] == off[key], key
    assert None not in on[0]["messages_by_type"] and "None" not in on[0]["messages_by_type"]


def auth_stats(c: SimCluster) -> Counter[str]:
    out: Counter[str] = Counter()
    for ref in c.host.refs.values():
        stats = getattr(ref.instance, "stats", None)
        if stats is not None:
            out.update({k: v for k, v in stats.items() if k.startswith("auth_refused")})
    return out


def test_every_actor_signs_and_nothing_is_refused():
    c = SimCluster(api.load("quickstart", {**SMALL, "sim.authenticate": True}))
    c.run()
    actors = [r.instance for r in c.host.refs.values() if r.instance is not c.host.inbox]
    assert actors and all("auth" in a.ports for a in actors)
    assert not auth_stats(c) and not c.host.inbox.refused


def test_without_authentication_nothing_is_signed():
    c = SimCluster(api.load("quickstart", SMALL))
    seen: list[bytes] = []
    send = c.host.send
    c.host.send = lambda src, target, msg, *a, **kw: (seen.append(msg), send(src, target, msg, *a, **kw))[1]
    c.run()
    actors = [r.instance for r in c.host.refs.values() if r.instance is not c.host.inbox]
    assert all("auth" not in a.ports for a in actors) and c.host.auth is None
    assert seen and all(m[:1] == b"\x93" for m in seen if type(m) is bytes)   # [1, tag, body]


def test_restarts_and_failovers_are_accepted_with_authentication():
    outcomes = {}
    for auth in (False, True):
        d = copy.deepcopy(FAULTS)
        d["sim"]["authenticate"] = auth
        c = SimCluster(parse(d, "faults"))
        s = summarize(c, c.run(), 1.0)
        outcomes[auth] = {k: s[k] for k in ("tasks_finished", "tasks_lost", "tasks_failed", "messages",
                                             "master_recovery_seconds")}
        # A message of an incarnation that was replaced may still be on its way; nothing
        # else is refused.
        assert set(auth_stats(c)) <= {"auth_refused", "auth_refused_old_incarnation"}
    assert outcomes[True] == outcomes[False]
    assert outcomes[True]["tasks_finished"] > 0
