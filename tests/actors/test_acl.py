"""Principals and ACLs (actors/security/acl.py) at the master and the agent, on both hosts.

A master and its allocator with an ACL and an agent, all with the ``auth`` port
(``sim.auth`` in the simulator, ``impresario.security`` with a secrets file on a
real Thespian system), and test clients that sign as the principals ``alice``,
``bob``, ``eve`` (known, but granted nothing), ``ops`` and ``operator``.  Each
test runs on both hosts (the ``leg`` fixture, as in tests/actors/test_auth.py):
a refusal has a clear reason and leaves the master's state as it was.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from actors.protocol import messages as M
from actors.protocol.codec import decode, encode
from actors.protocol.resources import Resources
from actors.security.auth import Credentials

ANY = {"type": "ANY"}


def vals(*names: str) -> dict[str, list[str]]:
    return {"values": list(names)}


ACLS = {
    "permissive": False,
    "register_agents": [{"principals": vals("agent")}],
    "register_frameworks": [{"principals": vals("alice", "bob"), "roles": vals("eng/*")},
                            {"principals": vals("ops"), "roles": ANY}],
    "run_tasks": [{"principals": vals("alice"), "users": vals("alice", "nobody")},
                  {"principals": vals("bob"), "users": ANY}],
    "teardown_frameworks": [{"principals": vals("ops"), "framework_principals": ANY}],
    "update_weights": [{"principals": vals("operator"), "roles": ANY}],
}
PRINCIPALS = ("master", "agent", "operator", "alice", "bob", "eve", "ops")
AGENT_RESOURCES = "cpus:4;mem:4096;disk:4096"


class Leg:
    """What a test needs of a host: clients that sign as a principal, the messages they get."""

    kind = "?"
    master: Any
    agent: Any

    def sealer(self, principal: str) -> Any:
        raise NotImplementedError

    def secret(self, principal: str) -> bytes:
        raise NotImplementedError

    def raw(self, data: bytes, to: Any = None) -> None:
        raise NotImplementedError

    def expect(self, kind: Any, match: Any = None, timeout: float = 30.0) -> Any:
        raise NotImplementedError

    def pending(self, kind: type) -> list[Any]:
        """Messages of ``kind`` received and not yet taken, after those on their way arrived."""
        raise NotImplementedError

    def settle(self) -> None:
        raise NotImplementedError

    def spawn_agent(self, name: str, principal: str) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    # -- built on the above
    def send(self, principal: str, msg: Any, to: Any = None) -> None:
        self.raw(self.sealer(principal).seal(encode(msg)), to)

    def query(self, what: str, to: Any = None) -> Any:
        self.send("operator", M.Query(what, {}), to)
        reply = self.expect(M.QueryReply, lambda r: r.what == what)
        assert not reply.error, reply.error
        return reply.result

    def state(self) -> dict[str, Any]:
        """The master's state, less what moves with time alone (uptime, time averages)."""
        s = self.query("state")
        s.pop("uptime_seconds")
        s["roles"] = {role: {k: v for k, v in view.items() if not k.startswith("mean_")}
                      for role, view in s["roles"].items()}
        return s

    def master_stats(self) -> dict[str, Any]:
        return self.query("stats")

    def subscribe(self, principal: str, name: str, roles: tuple[str, ...] = ("eng/web",),
                  user: str = "", claimed: str = "", offers: bool = False) -> M.Subscribed | M.Error:
        """Subscribe a framework as ``principal`` (suppressed, unless it wants ``offers``: a
        state compared before and after must not move with the allocator)."""
        caps = (M.Capability.MULTI_ROLE,) if len(roles) > 1 else ()
        self.send(principal, M.Subscribe(M.FrameworkInfo(name, user, roles, caps, principal=claimed),
                                         () if offers else roles))
        return self.expect((M.Subscribed, M.Error), lambda r: not isinstance(r, M.Error) or r.call == "SUBSCRIBE")

    def offer_for(self, fid: str) -> M.Offer:
        offers = self.expect(M.Offers, lambda r: any(o.framework_id == fid for o in r.offers))
        return next(o for o in offers.offers if o.framework_id == fid)


class SimLeg(Leg):
    kind = "sim"

    def __init__(self, tmp_path: Any) -> None:
        from sim.auth import AUTH_PORT
        from sim.host import BASE_PORTS, SimHost
        self.host = host = SimHost()
        self.auth = host.authenticate(seed=3)
        self.ports = (*BASE_PORTS, AUTH_PORT)
        self.master = host.spawn("actors.master.actor.Master", name="master")
        allocator = host.spawn("actors.allocator.actor.Allocator", name="allocator")
        self._configure(allocator, "allocator", {"master": "master", "seed": 3})
        self._configure(self.master, "master", {"master_id": "m-acl", "allocator": "allocator", "acls": ACLS})
        self.sealers: dict[str, Any] = {}
        self.agent = self.spawn_agent("agent-0", "agent")
        self._wait(lambda: any(a["reachable"] for a in self.query("state")["agents"]), "the agent to register")

    def _configure(self, addr: Any, comp: str, settings: dict[str, Any], name: str | None = None) -> None:
        self.host.tell(addr, M.Configure(comp, name or comp, settings, self.ports))
        assert not self.host.run_until_reply(M.Configured).error

    def spawn_agent(self, name: str, principal: str) -> Any:
        addr = self.host.spawn("actors.agent.actor.Agent", name=name)
        self._configure(addr, "agent", {
            "master": "master", "resources": AGENT_RESOURCES, "seed": 3, "principal": principal,
            "executor_ports": [["containerizer", "sim.containerizer:SimContainerizer"],
                               ["auth", "sim.auth:authenticator"]]}, name)
        return addr

    def _wait(self, pred: Any, what: str) -> None:
        deadline = self.host.now + 600
        while not pred():
            assert self.host.now < deadline, f"no {what}"
            self.host.run(until=self.host.now + 1.0)

    def sealer(self, principal: str) -> Any:
        if principal not in self.sealers:
            self.sealers[principal] = self.auth.authenticator(principal, f"client-{principal}", self.host.now)
        return self.sealers[principal]

    def secret(self, principal: str) -> bytes:
        return self.auth.secret(principal)

    def raw(self, data: bytes, to: Any = None) -> None:
        self.host.send(self.host.inbox_ref, to or self.master, data)

    def expect(self, kind: Any, match: Any = None, timeout: float = 30.0) -> Any:
        return self.host.run_until_reply(kind, timeout, match)

    def pending(self, kind: type) -> list[Any]:
        self.settle()
        return [m for m, _ in self.host.inbox.items if isinstance(m, kind)]

    def settle(self) -> None:
        self.host.run(until=self.host.now + 2.0)


class RealLeg(Leg):
    kind = "real"

    def __init__(self, tmp_path: Any) -> None:
        from impresario.realhost.ports import BASE_PORTS
        from impresario.realhost.system import System, address_text, free_port, log_defs
        from impresario.security import make_authenticator
        self.secrets = {p: f"{p}-secret-" + "s" * 24 for p in PRINCIPALS}
        self.path = path = str(tmp_path / "secrets.json")
        with open(path, "w") as fh:
            json.dump({"credentials": [{"principal": p, "secret": s} for p, s in self.secrets.items()]}, fh)
        os.chmod(path, 0o600)
        self.tmp_path = tmp_path
        self.make_authenticator = make_authenticator
        self.address_text = address_text
        self.ports = (*BASE_PORTS, ("auth", "impresario.security:authenticator"))
        self.system = System({"Admin Port": free_port(), "impresario.master": True},
                             log_defs(str(tmp_path / "impresario.log")))
        self.queue: list[Any] = []
        self.sealers: dict[str, Any] = {}
        try:
            self.asys = self.system.asys
            self.inbox_open = self.sealer("operator").open
            self.master = self.asys.createActor("actors.master.actor.Master")
            allocator = self.asys.createActor("actors.allocator.actor.Allocator")
            auth = {"principal": "master", "secrets_file": path}
            self._configure(allocator, "allocator", {"master": address_text(self.master), "seed": 3, **auth})
            self._configure(self.master, "master", {"master_id": "m-acl", "allocator": address_text(allocator),
                                                    "acls": ACLS, **auth})
            self.agent = self.spawn_agent("agent-0", "agent")
            deadline = time.monotonic() + 30
            while not any(a["reachable"] for a in self.query("state")["agents"]):
                assert time.monotonic() < deadline, "no agent registered"
                time.sleep(0.1)
        except BaseException:
            self.system.shutdown()
            raise

    def _configure(self, addr: Any, comp: str, settings: dict[str, Any], name: str | None = None) -> None:
        self.raw(encode(M.Configure(comp, name or comp, settings, self.ports)), addr)
        reply = self.expect(M.Configured)
        assert not reply.error, reply.error

    def spawn_agent(self, name: str, principal: str) -> Any:
        addr = self.asys.createActor("actors.agent.actor.Agent")
        auth = {"principal": principal, "secrets_file": self.path}
        self._configure(addr, "agent", {
            "master": self.address_text(self.master), "resources": AGENT_RESOURCES, "seed": 3,
            "work_dir": str(self.tmp_path / name), "master_ping_timeouts": 6,
            "executor_ports": [["containerizer", "isolators.containerizer:Containerizer"],
                               ["auth", "impresario.security:authenticator"]], **auth}, name)
        return addr

    def sealer(self, principal: str) -> Any:
        if principal not in self.sealers:
            self.sealers[principal] = self.make_authenticator(principal, self.path, f"client-{principal}")
        return self.sealers[principal]

    def secret(self, principal: str) -> bytes:
        return self.secrets[principal].encode()

    def raw(self, data: bytes, to: Any = None) -> None:
        self.asys.tell(to or self.master, data)

    def _take(self, kind: Any, match: Any) -> Any:
        for i, m in enumerate(self.queue):
            if isinstance(m, kind) and (match is None or match(m)):
                del self.queue[i]
                return m
        return None

    def _receive(self, timeout: float) -> bool:
        data = self.asys.listen(timeout)
        if data is None:
            return False
        if type(data) is bytes:
            self.queue.append(decode(self.inbox_open(data)[1]))
        return True

    def expect(self, kind: Any, match: Any = None, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            m = self._take(kind, match)
            if m is not None:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind}")
            self._receive(min(left, 1.0))

    def pending(self, kind: type) -> list[Any]:
        self.settle()
        return [m for m in self.queue if isinstance(m, kind)]

    def settle(self) -> None:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            self._receive(max(0.01, end - time.monotonic()))

    def stop(self) -> None:
        self.system.shutdown()


@pytest.fixture(params=["sim", pytest.param("real", marks=pytest.mark.slow)])
def leg(request, tmp_path):
    built = (SimLeg if request.param == "sim" else RealLeg)(tmp_path)
    yield built
    built.stop()


def counted(stats: dict[str, Any], key: str) -> int:
    return int(stats["stats"].get(key, 0))


# --------------------------------------------------------------------------- frameworks


def test_a_subscribe_with_a_wrong_secret_an_unknown_principal_or_replayed_is_refused_and_changes_nothing(leg):
    info = M.FrameworkInfo("web", "", ("eng/web",))
    first = leg.sealer("alice").seal(encode(M.Subscribe(info, ("eng/web",))))
    leg.raw(first)
    assert isinstance(leg.expect(M.Subscribed), M.Subscribed)
    before = leg.state()
    stats_before = leg.master_stats()

    attempts = {
        "bad_mac": Credentials({"alice": b"not alice's secret"}).signer("alice", "client-alice", 2**63),
        "unknown_principal": Credentials({"mallory": b"m" * 32}).signer("mallory", "client-mallory", 2**63),
    }
    for signer in attempts.values():
        leg.raw(signer.seal(encode(M.Subscribe(M.FrameworkInfo("intruder", "", ("eng/web",))))))
    leg.raw(first)                                                  # alice's own, again
    assert leg.pending(M.Subscribed) == [] and leg.pending(M.Error) == []   # nobody was answered

    after = leg.state()
    assert after == before
    assert [f["name"] for f in after["frameworks"]] == ["web"]
    stats = leg.master_stats()
    for reason in ("bad_mac", "unknown_principal", "replayed"):
        assert counted(stats, f"auth_refused_{reason}") - counted(stats_before, f"auth_refused_{reason}") == 1
    assert stats["drops"]["authentication failed: replayed: a sequence number of client-alice (alice) "
                          "already seen"] == 1
    assert stats["drops"]["authentication failed: unknown_principal: no secret is known for the "
                          "principal named"] == 1


def test_a_role_or_a_principal_the_framework_may_not_claim_is_refused_with_the_rule(leg):
    ok = leg.subscribe("alice", "web")
    assert isinstance(ok, M.Subscribed)
    before = leg.state()
    stats_before = leg.master_stats()

    refused = leg.subscribe("alice", "prod-job", roles=("eng/web", "prod"))
    assert isinstance(refused, M.Error) and refused.fatal and refused.call == "SUBSCRIBE"
    assert refused.message == ("principal 'alice' may not register a framework in role 'prod': no "
                               "register_frameworks rule matches and the ACL is not permissive")
    eve = leg.subscribe("eve", "eve-job")
    assert isinstance(eve, M.Error) and "principal 'eve' may not register a framework in role 'eng/web'" \
        in eve.message
    posing = leg.subscribe("alice", "posing", claimed="ops", roles=("prod",))
    assert isinstance(posing, M.Error)
    assert posing.message == "the framework names principal 'ops' but authenticated as principal 'alice'"
    # alice's framework id, taken by bob
    hijack = M.FrameworkInfo("web", "", ("eng/web",), id=ok.framework_id)
    leg.send("bob", M.Subscribe(hijack))
    taken = leg.expect(M.Error, lambda r: r.call == "SUBSCRIBE")
    assert taken.message == f"framework {ok.framework_id} belongs to principal 'alice', not to principal 'bob'"

    assert leg.state() == before
    assert counted(leg.master_stats(), "frameworks_refused") - counted(stats_before, "frameworks_refused") == 4
    # The master filled in the authenticated principal.
    assert [(f["name"], f["principal"]) for f in before["frameworks"]] == [("web", "alice")]


def test_one_framework_cannot_act_for_another_and_only_an_allowed_principal_tears_it_down(leg):
    alice = leg.subscribe("alice", "web")
    bob = leg.subscribe("bob", "batch", roles=("eng/batch",))
    assert isinstance(alice, M.Subscribed) and isinstance(bob, M.Subscribed)
    before = leg.state()
    stats_before = leg.master_stats()

    # bob, from the same address as alice's scheduler, speaks for alice's framework.
    fid = alice.framework_id
    for call in (M.Decline(fid, ("m-acl-O1",)), M.Kill(fid, "t1"), M.Reconcile(fid, ()),
                 M.Revive(fid, ())):
        leg.send("bob", call)
    leg.send("bob", M.Teardown(fid))
    err = leg.expect(M.Error, lambda r: r.call == "TEARDOWN")
    assert err.message == (f"framework {fid}: principal 'bob' may not tear down a framework of principal "
                           "'alice': no teardown_frameworks rule matches and the ACL is not permissive")
    leg.settle()
    assert leg.state() == before
    stats = leg.master_stats()
    assert counted(stats, "calls_wrong_principal") - counted(stats_before, "calls_wrong_principal") == 4
    assert counted(stats, "teardowns_refused") - counted(stats_before, "teardowns_refused") == 1
    assert stats["drops"]["DECLINE from principal 'bob' for a framework of principal 'alice'"] == 1

    # ops may tear it down.
    leg.send("ops", M.Teardown(fid))
    done = leg.expect(M.QueryReply, lambda r: r.what == "teardown")
    assert done.result == {"framework_id": fid}
    assert [f["name"] for f in leg.state()["frameworks"]] == ["batch"]


def test_a_task_as_a_user_the_acl_forbids_is_task_error_and_never_reaches_the_agent(leg):
    sub = leg.subscribe("alice", "web", offers=True)
    assert isinstance(sub, M.Subscribed)
    fid = sub.framework_id
    offer = leg.offer_for(fid)
    res = Resources.of(cpus=0.1, mem=16)

    def task(tid: str, user: str) -> M.TaskInfo:
        return M.TaskInfo(tid, tid, offer.agent_id, res, M.CommandInfo("true", user=user))

    leg.send("alice", M.Accept(fid, (offer.offer_id,), (M.Launch((task("as-root", "root"), task("as-bob", "bob"))),),
                               M.Filters(0.0)))
    errors = {}
    for _ in range(2):
        u = leg.expect(M.Update, lambda r: r.status.state == M.TaskState.TASK_ERROR).status
        errors[u.task_id] = u
    assert set(errors) == {"as-root", "as-bob"}
    for tid, user in (("as-root", "root"), ("as-bob", "bob")):
        u = errors[tid]
        assert u.reason == M.Reason.REASON_TASK_UNAUTHORIZED and u.source == M.Source.SOURCE_MASTER
        assert u.message.startswith(f"task {tid}: principal 'alice' may not run tasks as user {user!r}: ")
    assert "user 'root' is granted only by a run_tasks rule that names it" in errors["as-root"].message
    # The framework's user counts where the command names none: bob's framework as root.
    bob = leg.subscribe("bob", "batch", roles=("eng/batch",), user="root", offers=True)
    boffer = leg.offer_for(bob.framework_id)
    leg.send("bob", M.Accept(bob.framework_id, (boffer.offer_id,),
                             (M.Launch((M.TaskInfo("b-root", "b-root", boffer.agent_id, res,
                                                   M.CommandInfo("true")),)),)))
    u = leg.expect(M.Update, lambda r: r.status.task_id == "b-root").status
    assert u.state == M.TaskState.TASK_ERROR and "'bob' may not run tasks as user 'root'" in u.message

    state = leg.state()
    assert not state["tasks"] and state["counters"]["tasks_refused"] == 3
    assert leg.query("state", to=leg.agent)["executors"] == []
    # A user the ACL allows gets through to the agent (there, whatever the host makes of it).
    offer = leg.offer_for(fid)
    leg.send("alice", M.Accept(fid, (offer.offer_id,), (M.Launch((task("as-alice", "alice"),)),)))
    u = leg.expect(M.Update, lambda r: r.status.task_id == "as-alice").status
    assert u.source != M.Source.SOURCE_MASTER, u


# --------------------------------------------------------------------------- agents


def test_an_agent_whose_principal_may_not_register_is_refused_and_changes_nothing(leg):
    before = leg.state()
    leg.send("eve", M.RegisterAgent(M.AgentInfo("rogue", Resources.parse(AGENT_RESOURCES)), "0.1.0", "inc-1"))
    refused = leg.expect(M.AgentRefused)
    assert refused.message == ("principal 'eve' may not register an agent: no register_agents rule matches "
                               "and the ACL is not permissive")
    # An agent actor of that principal hears the same, and stops trying.
    rogue = leg.spawn_agent("agent-eve", "eve")
    deadline = time.monotonic() + 30
    while not leg.query("state", to=rogue)["refused"]:
        assert time.monotonic() < deadline
        leg.settle()
    assert "principal 'eve' may not register an agent" in leg.query("state", to=rogue)["refused"]
    leg.settle()
    assert leg.state() == before
    assert counted(leg.master_stats(), "agents_refused") == 2


def test_an_agent_follows_only_a_master_principal_and_its_calls_come_from_its_own(leg):
    agent_before = leg.query("state", to=leg.agent)
    before = leg.state()
    # ops (not a master's principal) calls the agent over to a "new master", from an unknown address.
    leg.send("ops", M.Ping("m-evil", True), to=leg.agent)
    leg.settle()
    agent = leg.query("state", to=leg.agent)
    assert agent["registered"] and agent["agent_id"] == agent_before["agent_id"]
    stats = leg.query("stats", to=leg.agent)
    assert stats["drops"]["Ping from principal 'ops', not a master's"] == 1
    assert leg.state() == before


def test_calls_for_a_registered_agent_from_another_principal_are_dropped_even_from_its_address():
    """The simulator can forge a sender's address (a real host's transport could be made to):
    the principal that registered an agent is what its calls are checked against."""
    leg = SimLeg(None)
    host = leg.host
    agent_id = leg.query("state", to=leg.agent)["agent_id"]
    before = leg.state()
    stats_before = leg.master_stats()
    for principal, msg in (("eve", M.Pong(agent_id)),
                           ("ops", M.StatusUpdate("f", M.TaskStatus("t", M.TaskState.TASK_RUNNING,
                                                                    agent_id=agent_id))),
                           ("alice", M.ExitedExecutor(agent_id, "f", "e", 1))):
        host.send(host.refs["agent-0"], leg.master, leg.sealer(principal).seal(encode(msg)))
    leg.settle()
    assert leg.state() == before
    stats = leg.master_stats()
    assert counted(stats, "calls_wrong_principal") - counted(stats_before, "calls_wrong_principal") == 3
    assert stats["drops"]["Pong from principal 'eve' for an agent of principal 'agent'"] == 1
    assert stats["drops"]["StatusUpdate from principal 'ops' for an agent of principal 'agent'"] == 1
    # The agent's own principal, from its address, is heard.
    host.send(host.refs["agent-0"], leg.master, leg.sealer("agent").seal(encode(M.Pong(agent_id))))
    leg.settle()
    assert counted(leg.master_stats(), "calls_wrong_principal") == counted(stats, "calls_wrong_principal")


# --------------------------------------------------------------------------- followers (simulator)


def test_a_framework_follows_only_a_master_principal_and_ignores_refusals_reflected_to_it():
    from tests.harness import SimHarness
    h = SimHarness(authenticate=True)
    host = h.host
    fw = h.probe("web", principal="alice")
    fid = h.events(fw)["framework_id"]
    # The harness (principal "operator", an unknown address) names a new master: not followed.
    h.host.tell(fw, M.Heartbeat("m-evil"))
    h.sleep(1)
    probe = host.actor("web")
    assert probe.master_id == "m1" and probe.masters.master == h.master and probe.connected
    assert probe.drops["HEARTBEAT from principal 'operator', not a master's"] == 1
    # bob, from alice's scheduler's address, claims her framework id: the master refuses it,
    # and its answer goes to her address; she is subscribed and asked nothing, so she drops it.
    bob = host.auth.authenticator("bob", "bob-client", host.now)
    host.send(host.refs["web"], h.master,
              bob.seal(encode(M.Subscribe(M.FrameworkInfo("web", "", ("*",), id=fid)))))
    h.sleep(1)
    assert host.actor("master").stats["frameworks_refused"] == 1
    assert probe.drops["a SUBSCRIBE error while subscribed"] == 1
    assert probe.connected and not probe.fatal_error
    assert [f["principal"] for f in h.master_state()["frameworks"]] == ["alice"]


def test_an_agent_ignores_a_refusal_while_registered():
    from tests.harness import SimHarness
    h = SimHarness(authenticate=True, agents=1)
    host = h.host
    master = host.auth.authenticator("master", "spoofed-master", host.now)
    host.send(host.refs["master"], h.agents[0], master.seal(encode(M.AgentRefused("go away"))))
    h.sleep(1)
    agent = host.actor("agent-0")
    assert agent.core.registered and not agent.core.refused
    assert agent.drops["AgentRefused while registered"] == 1


def test_an_executor_takes_launches_from_its_agent_only():
    """Past the master's and the agent's checks nobody can start a task: an executor takes
    calls from its agent's address and principal only."""
    from actors.agent.executor import Executor
    from tests.harness import SimHarness
    h = SimHarness(authenticate=True, agents=1)
    host = h.host
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "t1", "duration": 3600}])
    h.wait_update(fw, "t1", "TASK_RUNNING")
    (ref,) = [r for r in host.refs.values() if isinstance(r.instance, Executor)]
    executor = ref.instance
    task = M.TaskInfo("sneaky", "sneaky", executor.agent_id, Resources.of(cpus=0.1, mem=16),
                      M.CommandInfo("id", user="root"))
    alice = host.auth.authenticator("alice", "alice-client", host.now)
    host.send(host.refs["agent-0"], ref.address, alice.seal(encode(M.ExecLaunch(task))))   # its address
    host.tell(ref.address, M.ExecLaunch(task))                                        # the operator's
    host.send(host.refs["agent-0"], ref.address, alice.seal(encode(M.ExecKill("t1"))))
    h.sleep(1)
    assert sorted(executor.tasks) == ["t1"] and str(executor.tasks["t1"].state) == "TASK_RUNNING"
    assert executor.drops["ExecLaunch from principal 'alice', not the agent's"] == 1
    assert executor.drops["ExecLaunch not from the agent"] == 1
    assert executor.drops["ExecKill from principal 'alice', not the agent's"] == 1
    assert executor.stats["calls_wrong_principal"] == 2
