"""Authenticated messages between the kernel's actors (actors/security/auth.py, actors/base.py).

The refusals are tested the same way on the SimPy host and on a real Thespian
system: a master and its allocator with the ``auth`` port (``sim.auth`` in the
simulator, ``impresario.security`` with a secrets file on a real host), and a
client signing as the principal ``operator``.  A whole cluster with
authentication is run in the simulator (the real-host cluster wiring of the
port is another step).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from actors.protocol import messages as M
from actors.protocol.codec import decode, encode
from actors.security.auth import Credentials
from tests.harness import SimHarness

BATCH = "actors.frameworks.batch:BatchFramework"


def weights(w: float) -> bytes:
    return encode(M.UpdateWeights((("eng", w),)))


# --------------------------------------------------------------------------- a master on either host


class SimLeg:
    """A master and an allocator in the simulator, authentication on."""

    kind = "sim"

    def __init__(self, tmp_path: Any) -> None:
        from sim.auth import AUTH_PORT
        from sim.host import BASE_PORTS, SimHost
        self.host = host = SimHost()
        self.auth_state = host.authenticate(seed=3)
        ports = (*BASE_PORTS, AUTH_PORT)
        self.master = host.spawn("actors.master.actor.Master", name="master")
        allocator = host.spawn("actors.allocator.actor.Allocator", name="allocator")
        for addr, comp, settings in ((allocator, "allocator", {"master": "master", "seed": 3}),
                                     (self.master, "master", {"master_id": "m-auth", "allocator": "allocator"})):
            host.tell(addr, M.Configure(comp, comp, settings, ports))
            assert not host.run_until_reply(M.Configured).error
        # A client of its own (not the harness's signer): it signs as "operator".
        self.auth = self.auth_state.authenticator("operator", "test-client", host.now)

    def secret(self, principal: str) -> bytes:
        return self.auth_state.secret(principal)

    def raw(self, data: bytes) -> None:
        self.host.send(self.host.inbox_ref, self.master, data)

    def ask(self, data: bytes, expect: type) -> Any:
        self.raw(data)
        return self.host.run_until_reply(expect)

    def settle(self) -> None:
        self.host.run(until=self.host.now + 1.0)

    def stop(self) -> None:
        pass


class RealLeg:
    """A master and an allocator in a real Thespian system, with a secrets file."""

    kind = "real"

    def __init__(self, tmp_path: Any) -> None:
        from impresario.realhost.ports import BASE_PORTS
        from impresario.realhost.system import System, address_text, free_port, log_defs
        from impresario.security import make_authenticator
        self.secrets = {"master": "master-" + "x" * 24, "operator": "operator-" + "y" * 24}
        path = str(tmp_path / "secrets.json")
        with open(path, "w") as fh:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in self.secrets.items()]}, fh)
        os.chmod(path, 0o600)
        self.system = System({"Admin Port": free_port(), "impresario.master": True}, log_defs(str(tmp_path / "impresario.log")))
        try:
            asys = self.asys = self.system.asys
            self.auth = make_authenticator("operator", path, "test-client")
            self.master = asys.createActor("actors.master.actor.Master")
            allocator = asys.createActor("actors.allocator.actor.Allocator")
            ports = (*BASE_PORTS, ("auth", "impresario.security:authenticator"))
            auth = {"principal": "master", "secrets_file": path}
            for addr, comp, settings in (
                    (allocator, "allocator", {"master": address_text(self.master), "seed": 3, **auth}),
                    (self.master, "master", {"master_id": "m-auth", "allocator": address_text(allocator), **auth})):
                reply = self._ask(addr, encode(M.Configure(comp, comp, settings, ports)), M.Configured)
                assert not reply.error, reply.error
        except BaseException:
            self.system.shutdown()
            raise

    def secret(self, principal: str) -> bytes:
        return self.secrets[principal].encode()

    def _ask(self, addr: Any, data: bytes, expect: type, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        reply = self.asys.ask(addr, data, timeout)
        while reply is not None:
            m = decode(self.auth.open(reply)[1])
            if isinstance(m, expect):
                return m
            reply = self.asys.listen(max(0.01, deadline - time.monotonic()))
        raise TimeoutError(f"no {expect.__name__}")

    def raw(self, data: bytes) -> None:
        self.asys.tell(self.master, data)

    def ask(self, data: bytes, expect: type) -> Any:
        return self._ask(self.master, data, expect)

    def settle(self) -> None:
        time.sleep(0.5)

    def stop(self) -> None:
        self.system.shutdown()


@pytest.fixture(params=["sim", pytest.param("real", marks=pytest.mark.slow)])
def leg(request, tmp_path):
    built = (SimLeg if request.param == "sim" else RealLeg)(tmp_path)
    yield built
    built.stop()


def query(leg: Any, what: str) -> Any:
    reply = leg.ask(leg.auth.seal(encode(M.Query(what, {}))), M.QueryReply)
    assert not reply.error, reply.error
    return reply.result


def test_replayed_and_forged_messages_to_the_master_are_refused_and_change_nothing(leg):
    first = leg.auth.seal(weights(2.0))
    assert leg.ask(first, M.QueryReply).result == {"eng": 2.0}
    assert leg.ask(leg.auth.seal(weights(3.0)), M.QueryReply).result == {"eng": 3.0}
    before = query(leg, "state")
    stats_before = query(leg, "stats")["stats"]

    flipped = bytearray(first)
    flipped[-40] ^= 0x01                                   # a bit of the payload
    outsider = Credentials({"operator": b"a guess at the secret"}).signer("operator", "test-client", 2**63)
    stale = Credentials({"operator": leg.secret("operator")}).signer("operator", "test-client", 0)
    stranger = Credentials({"stranger": b"s" * 32}).signer("stranger", "test-client", 2**63)
    attempts = {
        "replayed": [first],                               # the operator's first call, again
        "unsigned": [weights(5.0)],
        "bad_mac": [bytes(flipped), outsider.seal(weights(7.0))],
        "old_incarnation": [stale.seal(weights(9.0))],     # the right secret, an older incarnation
        "unknown_principal": [stranger.seal(weights(11.0))],
        "malformed": [first[:-5]],                         # a truncated MAC
    }
    for datas in attempts.values():
        for data in datas:
            leg.raw(data)
    leg.settle()

    after = query(leg, "state")
    stats = query(leg, "stats")
    assert after["weights"] == {"eng": 3.0}
    assert {k: v for k, v in after.items() if k != "uptime_seconds"} == \
           {k: v for k, v in before.items() if k != "uptime_seconds"}
    n = sum(len(d) for d in attempts.values())
    s = stats["stats"]
    assert s["auth_refused"] - stats_before.get("auth_refused", 0) == n
    for reason, datas in attempts.items():
        assert s[f"auth_refused_{reason}"] - stats_before.get(f"auth_refused_{reason}", 0) == len(datas), reason
    assert stats["drops"]["authentication failed: replayed: a sequence number of test-client (operator) "
                          "already seen"] == 1
    assert s.get("errors_replied", 0) == stats_before.get("errors_replied", 0)   # nothing was answered
    # The operator is still heard, with its next number.
    assert leg.ask(leg.auth.seal(weights(4.0)), M.QueryReply).result == {"eng": 4.0}


# --------------------------------------------------------------------------- a whole cluster, simulated


def test_a_cluster_with_authentication_runs_tasks_to_completion():
    h = SimHarness(authenticate=True)
    fw = h.framework(BATCH, "batch", tasks=[{"name": "t", "count": 6, "cpus": 0.5, "mem": 64, "duration": 0.2}])
    s = h.wait(lambda: (lambda x: x if x["done"] else None)(h.query(fw, "summary")), "the batch to finish")
    assert s["tasks_finished"] == 6
    host = h.host
    actors = [r.instance for r in host.refs.values() if r.instance is not host.inbox]
    assert all("auth" in a.ports for a in actors)
    assert sum(a.stats["auth_refused"] for a in actors) == 0 and not host.inbox.refused
    # Everyone signed: the master heard the agents, the allocator, the framework and the
    # harness under their principals; an agent heard its executors.
    heard = set(host.actor("master").ports["auth"].verifier.peers)
    assert {("agent", "agent-0"), ("agent", "agent-1"), ("master", "allocator"), ("framework:batch", "batch"),
            ("operator", "harness")} <= heard
    executors = {o for a in ("agent-0", "agent-1")
                 for p, o in host.actor(a).ports["auth"].verifier.peers if p == "agent" and "/" in o}
    assert len(executors) == 6


def test_a_restarted_agent_is_accepted_and_its_former_incarnation_refused():
    h = SimHarness(authenticate=True)
    host = h.host
    from_agent: list[bytes] = []
    send = host.send

    def record(src: Any, target: Any, msg: Any, *a: Any, **kw: Any) -> None:
        if src.name == "agent-0" and target.addressDetails == "master":
            from_agent.append(msg)
        send(src, target, msg, *a, **kw)

    host.send = record
    h.sleep(20)           # pongs from agent-0
    assert from_agent
    old = from_agent[-1]
    host.crash("agent-0")
    host.spawn("actors.agent.actor.Agent", name="agent-0")
    h._configure(h.agents[0], "agent", "agent-0", {
        "master": "master", "resources": "cpus:4;mem:4096;disk:4096",
        "executor_ports": [["containerizer", "sim.containerizer:SimContainerizer"], ["auth", "sim.auth:authenticator"]],
        "seed": 1})
    master = host.actor("master")
    h.wait(lambda: getattr(host.actor("agent-0").core, "registered", False), "agent-0 to register again")
    assert sum(a["reachable"] for a in h.master_state()["agents"]) == 2
    assert master.stats["auth_refused"] == 0
    host.send(host.inbox_ref, h.master, old)   # a message of the agent's former incarnation
    h.sleep(1)
    assert master.stats["auth_refused_old_incarnation"] == 1
