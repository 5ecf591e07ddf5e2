"""Real-host wiring: Thespian ``multiprocTCPBase`` systems running the kernel's actors.

One convention: the master's system leads (its admin port is the master's
port, 5050 by default), and every agent system joins it.  Liveness and
finding the master are the kernel's own business (heartbeats, configured
addresses); the convention only carries actor creation and messages.

:class:`LocalCluster` starts a master, an allocator and N agents on loopback,
each agent in a system of its own, as ``impresario local`` does.  Every
Thespian system started here is shut down by :meth:`LocalCluster.stop`, and
any process of theirs still alive afterwards is killed: Thespian admins
daemonize and would otherwise outlive us.

Recovery is on by default: the master keeps its registry in
``<work dir>/master/registry`` and each agent its checkpoints in
``<work dir>/agent-N/meta/agent`` (``isolators/store.py``), so that a master
or an agent killed and started again (:meth:`LocalCluster.kill_master`,
:meth:`LocalCluster.restart_master`, and the same for agents) picks up where
it was, its tasks still running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psutil

from .realhost import hardening
from .realhost.masters import MASTER_CLASS, MASTER_GLOBAL_NAME
from .realhost.ports import BASE_PORTS
from .realhost.system import (
    Address,
    Client,
    KernelError,
    System,
    address_text,
    free_port,
    log_defs,
    module_of,
)
from .security import AUTH_PORT, Auth, generate_secrets

log = logging.getLogger("impresario.cluster")

ALLOCATOR_CLASS = "actors.allocator.actor.Allocator"
AGENT_CLASS = "actors.agent.actor.Agent"
ALLOCATOR_GLOBAL_NAME = "impresario-allocator"
DEFAULT_MASTER_PORT = 5050
DEFAULT_AGENT_PORT = 5051
EXECUTOR_PORTS = [["containerizer", "isolators.containerizer:Containerizer"]]
USAGE_INTERVAL = 5.0   # seconds between two usage samples of a running task
AGENT_PORTS = (*BASE_PORTS, ("discovery", "isolators.discovery:discovery"))
#: Durable records on a real host (``isolators/store.py``): a master's registry, an agent's checkpoints.
REGISTRY_PORT = ("registry", "isolators.store:registry")
CHECKPOINT_PORT = ("checkpoint", "isolators.store:checkpoint")
MASTER_PORTS = (*BASE_PORTS, REGISTRY_PORT)
RECOVERING_AGENT_PORTS = (*AGENT_PORTS, CHECKPOINT_PORT)


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something true; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class LocalCluster:
    """A master, an allocator and N agents, each agent in its own Thespian system, on loopback.

    Every system listens on ``bind`` only (loopback by default) with the transport
    hardening installed; ``max_frame`` caps a frame's size (bytes, None: the default) and
    ``actor_packages`` names packages, besides ``actors`` and the agent class's module,
    whose actor classes the systems may be asked to create."""

    def __init__(self, agents: int = 2, work_dir: str | None = None,
                 agent_resources: str | None = None, master_settings: dict[str, Any] | None = None,
                 agent_settings: dict[str, Any] | None = None, log_level: str = "INFO",
                 bind: str = "127.0.0.1", agent_shapes: list[str] | None = None, recovery: bool = True,
                 agent_class: str = AGENT_CLASS, max_frame: int | None = None,
                 actor_packages: Iterable[str] = (), authenticate: bool = True,
                 secrets_file: str | None = None) -> None:
        if agents < 1:
            raise ValueError("a cluster needs at least one agent")
        if agent_shapes is not None and len(agent_shapes) != agents:
            raise ValueError("give one resource shape per agent")
        self.n_agents = agents
        self._own_dir = work_dir is None
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="impresario-local-")
        self.agent_resources = agent_resources
        self.master_settings = dict(master_settings or {})
        self.agent_settings = dict(agent_settings or {})
        self.log_level = log_level
        self.bind = bind
        self.systems: list[System] = []
        self.master: Address | None = None
        self.allocator: Address | None = None
        self.agents: list[Address] = []
        self.client: Client | None = None
        self.master_id = f"local-{uuid.uuid4().hex[:8]}"
        self.agent_shapes = agent_shapes  # per-agent resources, instead of a share of the host
        self.log_path = os.path.join(self.work_dir, "impresario.log")
        self.recovery = recovery
        self.agent_class = agent_class
        self.master_port = 0
        self._share: str | None = None
        self.max_frame = max_frame
        self.actor_packages = (*actor_packages, module_of(agent_class))
        # Authenticated messages (on by default): the secrets file given, or one generated
        # in the work directory at start (principals master, agent, framework, operator).
        self.authenticate = authenticate or secrets_file is not None
        self.secrets_file = secrets_file
        self.auth: Auth | None = None

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> LocalCluster:
        os.makedirs(self.work_dir, exist_ok=True)
        if self.authenticate and self.auth is None:
            if self.secrets_file is None:
                self.secrets_file = os.path.join(self.work_dir, "secrets.json")
                if not os.path.exists(self.secrets_file):
                    generate_secrets(self.secrets_file)
            self.auth = Auth(self.secrets_file)
        self.master_port = free_port(self.bind)
        self._start_master(timeout)
        for i in range(self.n_agents):
            self._start_agent(i, timeout)
        wait_for(lambda: self.state().get("agents") and
                 sum(1 for a in self.state()["agents"] if a["reachable"]) >= self.n_agents,
                 timeout, what=f"{self.n_agents} agents to register")
        return self

    def signs_as(self, principal: str) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
        """The settings and extra ports that make an actor sign as ``principal`` (none
        without authentication)."""
        if self.auth is None:
            return {}, ()
        return self.auth.settings(principal), (AUTH_PORT,)

    def new_client(self, system: System) -> Client:
        """A client of ``system`` that signs as the operator (with authentication)."""
        return system.client(self.auth.client("operator") if self.auth is not None else None)

    def _logdefs(self) -> dict[str, Any]:
        return log_defs(self.log_path, self.log_level)

    def _system(self, caps: dict[str, Any], actor_packages: Iterable[str] = ()) -> System:
        return System(caps, self._logdefs(), self.bind, self.max_frame, (*self.actor_packages, *actor_packages))

    def _start_master(self, timeout: float) -> None:
        """The master's system (at ``master_port``), its allocator and the master, configured."""
        msys = self._system({"Admin Port": self.master_port, "impresario.master": True})
        if self.systems:
            self.systems[0] = msys
        else:
            self.systems.append(msys)
        self.client = client = self.new_client(msys)
        self.master = msys.create(MASTER_CLASS, MASTER_GLOBAL_NAME)
        self.allocator = msys.create(ALLOCATOR_CLASS, ALLOCATOR_GLOBAL_NAME)
        master_text = address_text(self.master)
        auth_settings, auth_ports = self.signs_as("master")
        client.configure(self.allocator, "allocator", "allocator",
                         {"master": master_text, "seed": uuid.uuid4().int % 2**31, **auth_settings},
                         BASE_PORTS + auth_ports, timeout=timeout)
        settings: dict[str, Any] = {"master_id": self.master_id, "allocator": address_text(self.allocator),
                                    **auth_settings}
        ports = BASE_PORTS
        if self.recovery:
            settings["work_dir"] = os.path.join(self.work_dir, "master")
            ports = MASTER_PORTS
        client.configure(self.master, "master", "master", {**settings, **self.master_settings},
                         ports + auth_ports, timeout=timeout)

    def _start_agent(self, i: int, timeout: float) -> None:
        """Agent ``i`` in a system of its own joined to the master's; configured, not waited for."""
        assert self.master is not None
        sys_i = self._system({"Admin Port": free_port(self.bind),
                              "Convention Address.IPv4": (self.bind, self.master_port)})
        if i + 1 < len(self.systems):
            self.systems[i + 1] = sys_i
        else:
            self.systems.append(sys_i)
        agent = sys_i.create(self.agent_class)
        auth_settings, auth_ports = self.signs_as("agent")
        settings = {
            "master": address_text(self.master),
            "work_dir": os.path.join(self.work_dir, f"agent-{i}"),
            "hostname": f"{socket.gethostname()}-agent{i}",
            "executor_ports": EXECUTOR_PORTS + [list(p) for p in auth_ports],   # executors sign as their agent
            **auth_settings,
            "output_tail_bytes": 16384,
            "usage_interval": USAGE_INTERVAL,
            "seed": i,
            **self.agent_settings,
        }
        if self.agent_shapes:
            settings["resources"] = self.agent_shapes[i]
        elif self._per_agent:
            settings["resources"] = self._per_agent
        ports = (RECOVERING_AGENT_PORTS if self.recovery else AGENT_PORTS) + auth_ports
        self.new_client(sys_i).configure(agent, "agent", f"agent-{i}", settings, ports, timeout)
        if i < len(self.agents):
            self.agents[i] = agent
        else:
            self.agents.append(agent)

    @property
    def _per_agent(self) -> str | None:
        if self._share is None:
            self._share = self.agent_resources or self._share_of_host() or ""
        return self._share or None

    # ------------------------------------------------------------------ crashes and restarts

    def kill_master(self) -> None:
        """SIGKILL the master's whole system (admin, logger, master, allocator, and any
        framework started in it), as a crash would."""
        self.systems[0].kill()
        self.client = None

    def restart_master(self, timeout: float = 60.0, master_id: str | None = None) -> None:
        """A new master (a new id) on the same port, with the same work directory: with
        recovery on, it reads the registry and calls the agents and frameworks back."""
        self.master_id = master_id or f"local-{uuid.uuid4().hex[:8]}"
        self._start_master(timeout)

    def kill_agent(self, i: int) -> None:
        """SIGKILL agent ``i``'s whole system (admin, agent, executors); its tasks run on."""
        self.systems[i + 1].kill()

    def restart_agent(self, i: int, timeout: float = 60.0) -> None:
        """Agent ``i`` again, with the same work directory (with recovery on: its checkpoint)."""
        self._start_agent(i, timeout)

    def _share_of_host(self) -> str | None:
        """N agents on one host: each offers 1/N of it, so nothing is counted twice."""
        if self.n_agents == 1:
            return None
        cpus = max(0.1, round(len(os.sched_getaffinity(0)) / self.n_agents, 3))
        mem = max(64, int(psutil.virtual_memory().total / 2**20 * 0.75 / self.n_agents))
        disk = max(64, int(psutil.disk_usage(self.work_dir).free / 2**20 * 0.5 / self.n_agents))
        return f"cpus:{cpus};mem:{mem};disk:{disk}"

    def stop(self) -> None:
        # Agents first (their executors stop their tasks), the master's system last.
        for system in reversed(self.systems):
            system.shutdown()
        self.systems = []

    # ------------------------------------------------------------------ use

    def start_framework(self, class_path: str, name: str, settings: dict[str, Any],
                        timeout: float = 60.0, own_system: bool = False) -> Address:
        """Create a framework actor and configure it: in the master's system, or with
        ``own_system`` in a system of its own joined to it (so that it outlives a crash of
        the master's)."""
        assert self.client is not None and self.master is not None
        class_name = class_path.replace(":", ".")
        system = self.systems[0]
        if own_system:
            system = self._system({"Admin Port": free_port(self.bind),
                                   "Convention Address.IPv4": (self.bind, self.master_port)},
                                  (module_of(class_name),))
            self.systems.append(system)
        elif not hardening.admits_actor_class(class_name):
            raise KernelError(f"{class_path}: the master's system creates actors of "
                              f"{', '.join(hardening.settings()['actor_packages'])} only; name its "
                              "package in actor_packages, or start it with own_system=True")
        fw = system.create(class_name)
        auth_settings, auth_ports = self.signs_as(str(settings.get("principal", "framework")))
        full = {"master": address_text(self.master), "name": name, **auth_settings, **settings}
        self.new_client(system).configure(fw, "framework", name, full, BASE_PORTS + auth_ports,
                                               timeout=timeout)
        return fw

    def state(self) -> dict[str, Any]:
        assert self.client is not None and self.master is not None
        result = self.client.query(self.master, "state")
        return result if isinstance(result, dict) else {}

    def query(self, addr: Address, what: str, timeout: float = 30.0) -> Any:
        assert self.client is not None
        return self.client.query(addr, what, timeout)


@contextlib.contextmanager
def local_cluster(**kw: Any) -> Iterator[LocalCluster]:
    cluster = LocalCluster(**kw)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def run_scenario(scenario: Any, time_scale: float = 0.01, timeout: float = 300.0,
                 max_agents: int = 16) -> dict[str, dict[str, str]]:
    """Run a (small) scenario on this host: each agent a Thespian system, each task a real
    process sleeping for its duration times ``time_scale``.  Returns every framework's
    final task states, ``{framework: {task_id: state}}``."""
    groups = [g for g in scenario.groups if g.count]
    if sum(g.count for g in groups) > max_agents:
        raise ValueError(f"{scenario.name}: more than {max_agents} agents is not for a single real host")
    shapes = [str(g.resources) for g in groups for _ in range(g.count)]
    cluster = LocalCluster(agents=len(shapes), agent_shapes=shapes,
                           actor_packages=[module_of(fw.class_path) for fw in scenario.frameworks])
    try:
        cluster.start()
        fws = []
        for fw in scenario.frameworks:
            settings = {**fw.settings, "roles": fw.roles, "capabilities": fw.capabilities,
                        "time_scale": fw.settings.get("time_scale", time_scale)}
            fws.append((fw.name, cluster.start_framework(fw.class_path, fw.name, settings)))
        wait_for(lambda: all(cluster.query(a, "summary")["done"] for _, a in fws), timeout,
                 what="every framework to finish")
        return {name: cluster.query(a, "tasks") for name, a in fws}
    finally:
        cluster.stop()
