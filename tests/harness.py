"""One way to drive a small cluster, on either host.

``SimHarness`` runs the kernel's actors in the SimPy host (virtual time);
``RealHarness`` runs them as Thespian ``multiprocTCPBase`` systems on
loopback with real processes.  Tests written against this interface run
unchanged on both: that is the check that the design has not leaked.
"""

from __future__ import annotations

import time
from typing import Any

from actors.protocol import messages as M

PROBE = "tests.actors.probe:ProbeFramework"
SIM_EXECUTOR_PORTS = [["containerizer", "sim.containerizer:SimContainerizer"]]


class Harness:
    kind = "?"
    master: Any = None
    agents: list[Any]
    #: a generous deadline for one condition, in this host's seconds
    patience = 60.0

    def framework(self, class_path: str, name: str, **settings: Any) -> Any:
        raise NotImplementedError

    def query(self, addr: Any, what: str, **args: Any) -> Any:
        raise NotImplementedError

    def send_raw(self, addr: Any, data: bytes) -> None:
        raise NotImplementedError

    def wait(self, pred: Any, what: str = "condition", timeout: float | None = None) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    # -- conveniences built on the above
    def probe(self, name: str = "probe", **settings: Any) -> Any:
        fw = self.framework(PROBE, name, **settings)
        self.wait(lambda: self.events(fw)["framework_id"], "the probe to subscribe")
        return fw

    def events(self, fw: Any) -> dict[str, Any]:
        return self.query(fw, "events")

    def do(self, fw: Any, action: str, **args: Any) -> Any:
        return self.query(fw, "do", action=action, **args)

    def master_state(self) -> dict[str, Any]:
        return self.query(self.master, "state")

    def wait_offers(self, fw: Any, n: int = 1) -> list[dict[str, Any]]:
        def ready() -> list[dict[str, Any]] | None:
            ev = self.events(fw)
            out = [o for o in ev["offers"] if o["offer_id"] in ev["outstanding_offers"]]
            return out if len(out) >= n else None
        return self.wait(ready, f"{n} outstanding offers")

    def wait_update(self, fw: Any, task_id: str, state: str) -> dict[str, Any]:
        def seen() -> dict[str, Any] | None:
            for u in self.events(fw)["updates"]:
                if u["task_id"] == task_id and u["state"] == state:
                    return u
            return None
        return self.wait(seen, f"{task_id} to reach {state}")


class SimHarness(Harness):
    kind = "sim"
    patience = 3600.0  # virtual seconds

    def __init__(self, agents: int = 2, resources: str = "cpus:4;mem:4096;disk:4096",
                 master_settings: dict[str, Any] | None = None,
                 agent_settings: dict[str, Any] | None = None, seed: int = 1,
                 authenticate: bool = False) -> None:
        from sim.auth import AUTH_PORT
        from sim.host import BASE_PORTS, SimHost
        self.host = host = SimHost()
        self.ports = BASE_PORTS
        self.seed = seed
        executor_ports = SIM_EXECUTOR_PORTS
        if authenticate:
            # Every actor seals and checks its messages; the harness signs as "operator".
            host.authenticate(seed)
            self.ports = (*BASE_PORTS, AUTH_PORT)
            executor_ports = [*SIM_EXECUTOR_PORTS, list(AUTH_PORT)]
        self.master = host.spawn("actors.master.actor.Master", name="master")
        self.allocator = host.spawn("actors.allocator.actor.Allocator", name="allocator")
        self._configure(self.allocator, "allocator", "allocator", {"master": "master", "seed": seed})
        self._configure(self.master, "master", "master",
                        {"master_id": "m1", "allocator": "allocator", **(master_settings or {})})
        self.agents = []
        for i in range(agents):
            a = host.spawn("actors.agent.actor.Agent", name=f"agent-{i}")
            self._configure(a, "agent", f"agent-{i}", {
                "master": "master", "resources": resources, "executor_ports": executor_ports,
                "seed": seed, **(agent_settings or {})})
            self.agents.append(a)
        self.wait(lambda: sum(x["reachable"] for x in self.master_state()["agents"]) == agents,
                  "agents to register")

    def _configure(self, addr: Any, component: str, name: str, settings: dict[str, Any]) -> None:
        self.host.tell(addr, M.Configure(component, name, settings, self.ports))
        reply = self.host.run_until_reply(M.Configured)
        assert not reply.error, reply.error

    def framework(self, class_path: str, name: str, **settings: Any) -> Any:
        addr = self.host.spawn(class_path, name=name)
        self._configure(addr, "framework", name, {"master": "master", "name": name, "seed": self.seed, **settings})
        return addr

    def query(self, addr: Any, what: str, **args: Any) -> Any:
        self.host.tell(addr, M.Query(what, args))
        reply = self.host.run_until_reply(M.QueryReply, match=lambda r: r.what == what)
        assert not reply.error, reply.error
        return reply.result

    def send_raw(self, addr: Any, data: bytes) -> None:
        self.host.send(self.host.inbox_ref, addr, data)

    def wait(self, pred: Any, what: str = "condition", timeout: float | None = None) -> Any:
        deadline = self.host.now + (timeout or self.patience)
        while True:
            value = pred()
            if value:
                return value
            if self.host.now >= deadline:
                raise TimeoutError(f"waited {timeout or self.patience} virtual s for {what}")
            self.host.run(until=min(deadline, self.host.now + 0.25))

    def sleep(self, seconds: float) -> None:
        self.host.run(until=self.host.now + seconds)

    def now(self) -> float:
        return self.host.now


class RealHarness(Harness):
    kind = "real"
    patience = 60.0

    def __init__(self, agents: int = 2, resources: str = "cpus:4;mem:4096;disk:4096",
                 master_settings: dict[str, Any] | None = None,
                 agent_settings: dict[str, Any] | None = None, seed: int = 1,
                 work_dir: str | None = None) -> None:
        from impresario.cluster import LocalCluster
        self.cluster = LocalCluster(agents=agents, agent_resources=resources, work_dir=work_dir,
                                    master_settings=master_settings, agent_settings=agent_settings)
        try:
            self.cluster.start()
        except BaseException:
            self.cluster.stop()
            raise
        self.master = self.cluster.master
        self.agents = self.cluster.agents

    def framework(self, class_path: str, name: str, **settings: Any) -> Any:
        return self.cluster.start_framework(class_path, name, settings)

    def query(self, addr: Any, what: str, **args: Any) -> Any:
        assert self.cluster.client is not None
        return self.cluster.client.query(addr, what, **args)

    def send_raw(self, addr: Any, data: bytes) -> None:
        # Sent as the operator: signed, when the cluster authenticates (LocalCluster's default).
        client = self.cluster.client
        if client is not None and client.auth is not None:
            data = client.auth.seal(data)
        self.cluster.systems[0].asys.tell(addr, data)

    def wait(self, pred: Any, what: str = "condition", timeout: float | None = None) -> Any:
        from impresario.cluster import wait_for
        return wait_for(pred, timeout or self.patience, interval=0.05, what=what)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> float:
        return time.time()

    def stop(self) -> None:
        self.cluster.stop()
