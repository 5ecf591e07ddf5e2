"""[sim] authenticate: the simulator runs the kernel's authentication (sim/auth.py)."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from sim import api
from sim.auth import SimAuth, principal_for
from sim.runner import SimCluster, summarize
from sim.scenario import ScenarioError, parse

SMALL = {"agents": 20, "frameworks.0.tasks": 300, "frameworks.1.tasks": 60}

FAULTS: dict[str, Any] = {
    "sim": {"seed": 7, "until": "30m"},
    "cluster": {"agents": 20, "agent": {"cpus": 4, "mem": "8GiB", "disk": "100GiB"}},
    "frameworks": [{"name": "b", "tasks": 200, "task": {"cpus": 1, "mem": "1GiB", "duration": "uniform(60s,120s)"}}],
    "faults": [{"at": 30, "kind": "master_failover"},
               {"at": 50, "kind": "agent_restart", "targets": "agents[0:5]"},
               {"at": 70, "kind": "agent_crash", "targets": "agents[5:8]", "duration": "20s"}],
}


def test_the_option_is_off_by_default_and_checked():
    base = {"cluster": {"agents": 1}}
    assert parse(base).authenticate is False
    assert parse({**base, "sim": {"authenticate": True}}).authenticate is True
    with pytest.raises(ScenarioError, match=r"\[sim\].authenticate must be true or false"):
        parse({**base, "sim": {"authenticate": "yes"}})


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


def test_sim_incarnations_are_deterministic_and_grow_for_a_name():
    a, b = SimAuth(1), SimAuth(1)
    assert a.incarnation("agent-0", 0.0) == b.incarnation("agent-0", 0.0)
    assert a.incarnation("agent-1", 0.0) != a.incarnation("agent-2", 0.0)
    first = a.incarnation("agent-3", 10.0)
    assert a.incarnation("agent-3", 10.0) > first                 # restarted at the same instant
    assert a.incarnation("agent-3", 11.0) > first + 10**9 - 2**20
    assert SimAuth(2).secret("master") != a.secret("master") == b.secret("master")


def test_sim_principals():
    assert principal_for("master", {}) == principal_for("allocator", {}) == "master"
    assert principal_for("agent", {}) == principal_for("executor", {}) == "agent"
    assert principal_for("framework", {"name": "web"}) == "framework:web"
    assert principal_for("agent", {"principal": "rack-7"}) == "rack-7"


def test_the_port_needs_authentication_on():
    from actors.protocol import messages as M
    from sim.auth import AUTH_PORT
    from sim.host import BASE_PORTS, SimHost
    host = SimHost()
    addr = host.spawn("actors.allocator.actor.Allocator", name="allocator")
    host.tell(addr, M.Configure("allocator", "allocator", {"master": "master"}, (*BASE_PORTS, AUTH_PORT)))
    reply = host.run_until_reply(M.Configured)
    assert "authentication on" in reply.error
