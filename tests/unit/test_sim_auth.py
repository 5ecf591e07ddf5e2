"""[sim] authenticate without a cluster: the option, the simulator's principals and
incarnations (sim/auth.py).  Runs with authentication: tests/cluster/test_auth.py.
"""

from __future__ import annotations

import pytest

from sim.auth import SimAuth, principal_for
from sim.scenario import ScenarioError, parse


def test_the_option_is_off_by_default_and_checked():
    base = {"cluster": {"agents": 1}}
    assert parse(base).authenticate is False
    assert parse({**base, "sim": {"authenticate": True}}).authenticate is True
    with pytest.raises(ScenarioError, match=r"\[sim\].authenticate must be true or false"):
        parse({**base, "sim": {"authenticate": "yes"}})


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
