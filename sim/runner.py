"""Run a scenario in the SimPy host and write its results.

The same actor classes as on a real host (master, allocator, agents,
executors, frameworks) are created in a :class:`~sim.host.SimHost`, placed in
the scenario's network; faults and operator calls are injected at their
virtual times; the state is sampled every ``[sim].sample_every``.  The run
ends at ``[sim].until`` or as soon as every framework is done.  The output
folder gets ``summary.json``, ``timeseries.csv`` and, where matplotlib is
installed, PNG plots.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from actors.core import TASK_LOG
from actors.frameworks.base import Framework
from actors.frameworks.results import (
    TASK_COUNTS,
    latency_view,
    peak_running,
    roles_view,
    summary_text,
)
from actors.master.accounting import RoleLedger
from actors.protocol import messages as M
from actors.protocol.codec import message_types
from actors.protocol.resources import SCALAR_NAMES

from .auth import AUTH_PORT
from .faults import Fault, FaultLog, select
from .host import BASE_PORTS, RelaxedCollector, SimHost
from .network import TopologyNetwork, from_settings
from .scenario import Scenario

SIM_EXECUTOR_PORTS = [["containerizer", "sim.containerizer:SimContainerizer"]]
#: The loggers of the master's and the agents' task lines (``Core.task_line``): off unless
#: the scenario's ``[sim].task_log`` is true.
TASK_LOGGERS = (f"impresario.master.{TASK_LOG}", f"impresario.agent.{TASK_LOG}")

@dataclass
class Result:
    """What a run leaves: its summary, its samples, and the files written."""

    scenario: Scenario
    seed: int
    summary: dict[str, Any]
    host: SimHost
    out_dir: str | None = None
    timeseries: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def summary_path(self) -> str | None:
        return self.files.get("summary")


class SimCluster:
    """A scenario's cluster built in a SimPy host, ready to run."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        network = from_settings(scenario.network, scenario.latency, self.seed)
        self.host = host = SimHost(network, scenario.service_time)
        # [sim] authenticate: every actor gets the auth port (and so do executors).
        self.auth_ports: tuple[tuple[str, str], ...] = ()
        executor_ports = SIM_EXECUTOR_PORTS
        if scenario.authenticate:
            host.authenticate(self.seed)
            self.auth_ports = (AUTH_PORT,)
            executor_ports = [*SIM_EXECUTOR_PORTS, list(AUTH_PORT)]
        self.faults = FaultLog()
        self.masters = 0
        self.retired: dict[str, int] = {}   # counters of masters that failed over
        self.failovers: list[dict[str, Any]] = []   # each master failover: when, and whom to expect back
        self.master_node = network.place("master", "control")
        self.master, self.allocator = self._start_master()
        self.agent_names: list[str] = []
        self.agent_settings: dict[str, dict[str, Any]] = {}
        self.agent_nodes: dict[str, int] = {}
        n = 0
        for group in scenario.groups:
            text = str(group.resources)
            for _ in range(group.count):
                name = f"agent-{n}"
                self.agent_settings[name] = {
                    "master": "master", "resources": text, "attributes": group.attributes,
                    "hostname": name, "executor_ports": executor_ports, "seed": self.seed,
                    **scenario.agent_settings}
                self.agent_nodes[name] = network.place(name, "agent")
                self._start_agent(name)
                self.agent_names.append(name)
                n += 1
        self.frameworks: list[tuple[str, Any]] = []
        for fw in scenario.frameworks:
            addr = host.spawn(fw.class_path, name=f"framework/{fw.name}", kind="framework")
            self._configure(addr, "framework", fw.name, {
                **fw.settings, "master": "master", "name": fw.name, "roles": fw.roles,
                "capabilities": fw.capabilities, "seed": self.seed}, tuple(fw.ports))
            self.frameworks.append((fw.name, addr))
        self._check_configured()
        for call in scenario.operator:
            if call.weights is not None:
                msg: Any = M.UpdateWeights(tuple(sorted(call.weights.items())))
            else:
                assert call.quota is not None and call.quota_role is not None
                msg = M.UpdateQuota(call.quota_role, *call.quota.to_wire())
            host.tell_at(call.at, self.master, msg)
        for fault in scenario.faults:
            host.call_at(fault.at, self._injector(fault))

    # ------------------------------------------------------------------ building

    def _start_master(self, address: str = "master") -> tuple[Any, Any]:
        """Start a master and its allocator.  Their names (and so the registry) stay "master"
        and "allocator"; ``address`` may differ, as for a master restarted on a real host,
        where its actor gets a new port: agents and frameworks then follow its calls."""
        sc = self.scenario
        self.masters += 1
        host = self.host
        weights = {r.name: r.weight for r in sc.roles}
        allocator_address = "allocator" if address == "master" else f"allocator-{address}"
        master = host.spawn("actors.master.actor.Master", name=address, node=self.master_node)
        allocator = host.spawn("actors.allocator.actor.Allocator", name=allocator_address, node=self.master_node)
        self._configure(allocator, "allocator", "allocator", {
            "master": address, "seed": self.seed, "weights": weights,
            "allocation_interval": sc.allocation_interval, "policy": sc.allocator})
        quotas = {r.name: r.quota.to_dict() for r in sc.roles if r.quota is not None}
        self._configure(master, "master", "master", {
            "master_id": "sim" if self.masters == 1 else f"sim{self.masters}", "allocator": allocator_address,
            "weights": weights, "quotas": quotas, "seed": self.seed, **sc.master_settings,
            **({"acls": sc.acls} if sc.acls is not None else {})},
            (("registry", "sim.host:store"),))
        return master, allocator

    def _start_agent(self, name: str) -> None:
        addr = self.host.spawn("actors.agent.actor.Agent", name=name, node=self.agent_nodes[name])
        self._configure(addr, "agent", name, self.agent_settings[name], (("checkpoint", "sim.host:store"),))

    def _configure(self, addr: Any, component: str, name: str, settings: dict[str, Any],
                   extra_ports: tuple[tuple[str, str], ...] = ()) -> None:
        # The host's own launcher configures an actor: no network in between.
        ports = BASE_PORTS + extra_ports + self.auth_ports
        self.host.tell(addr, M.Configure(component, name, settings, ports), local=True)

    def _check_configured(self) -> None:
        # Deliver the Configure messages, then look at every answer.
        self.host.run(until=self.host.now + 4 * self.scenario.latency + 0.01)
        errors = [f"{m.name}: {m.error}" for m in self.host.inbox.take(M.Configured) if m.error]
        if errors:
            raise ValueError("configuration refused: " + "; ".join(errors[:5]))

    # ------------------------------------------------------------------ faults

    def _injector(self, fault: Fault) -> Callable[[], None]:
        return lambda: self.inject(fault)

    def inject(self, fault: Fault) -> None:
        host = self.host
        net = host.network
        now = host.now
        racks = net.agent_racks() if isinstance(net, TopologyNetwork) else None
        names, rack_ids = select(fault.targets, self.agent_names, len(racks) if racks is not None else None)
        if fault.targets == "frameworks":
            names = [addr.addressDetails for _, addr in self.frameworks]
        nodes: list[int] = [x for x in (self._node_of(n) for n in names) if x is not None]
        if rack_ids and isinstance(net, TopologyNetwork) and racks is not None:
            nodes += net.hosts_in_racks([racks[i] for i in rack_ids])
        kind = fault.kind
        note = ""
        if kind == "agent_crash":
            # The host goes down: the agent, its executors, its tasks; a host that comes
            # back has lost them all, and its agent starts as a new one.
            for n in names:
                host.crash(n)
                host.containers.pop(n, None)
                host.stores.pop(f"agent:{n}", None)
            def back() -> None:
                for n in names:
                    if n not in host.refs:
                        self._start_agent(n)
            self._heal_later(fault, back, len(names))
        elif kind == "agent_restart":
            # The agent's process group is killed and started again: the tasks run on in
            # their containers, and the new agent recovers them from its checkpoint.
            for n in names:
                host.crash(n)
                self._start_agent(n)
        elif kind == "master_failover":
            old = host.refs.get("master")
            agents: set[str] = set()
            fws: set[str] = set()
            core = old.instance.core if old is not None else None
            if old is not None:
                if core is not None:
                    for k, v in core.counters.items():
                        self.retired[k] = self.retired.get(k, 0) + v
                    agents = {a.addr_text for a in core.agents.values() if a.reachable}
                    fws = {f.id for f in core.frameworks.values() if f.connected}
                for fo in self.failovers:   # the crash takes its state: its recovery is told now
                    if fo["master"] is old.instance and "result" not in fo:
                        fo["result"] = _recovery(fo, host.refs)
            host.crash("master")
            host.crash("allocator")
            self.master, self.allocator = self._start_master()
            self.failovers.append({"at": now, "master": host.actor(self.master), "agents": agents,
                                   "frameworks": fws})
            note = f"master incarnation {self.masters}"
        elif kind == "partition":
            net.cut(nodes)
            self._heal_later(fault, lambda: net.mend(nodes), len(nodes))
        elif kind == "heal":
            net.mend(nodes or None)
            net.lossy(nodes or list(net.loss), 0.0)
            net.slow(nodes or list(net.extra), 0.0)
        elif kind == "message_loss":
            net.lossy(nodes, fault.probability)
            self._heal_later(fault, lambda: net.lossy(nodes, 0.0), len(nodes))
        elif kind == "slow_link":
            net.slow(nodes, fault.delay)
            self._heal_later(fault, lambda: net.slow(nodes, 0.0), len(nodes))
        self.faults.record(now, kind, fault.targets, len(nodes) or len(names), note)

    def _heal_later(self, fault: Fault, heal: Any, hosts: int) -> None:
        if fault.duration is not None:
            def done() -> None:
                heal()
                self.faults.record(self.host.now, f"{fault.kind} healed", fault.targets, hosts)
            self.host.call_at(self.host.now + fault.duration, done)

    def _node_of(self, name: str) -> int | None:
        if name in self.agent_nodes:
            return self.agent_nodes[name]
        if name in ("master", "allocator"):
            return self.master_node
        ref = self.host.refs.get(name) or self.host.refs.get(f"framework/{name.removeprefix('framework/')}")
        return ref.node if ref is not None else None

    # ------------------------------------------------------------------ running

    def framework_actors(self) -> list[Framework]:
        return [self.host.actor(addr) for _, addr in self.frameworks if addr.addressDetails in self.host.refs]

    def total(self) -> dict[str, float]:
        """The cluster's scalars, in user units (mem and disk in MiB)."""
        out: dict[str, float] = {}
        for g in self.scenario.groups:
            for k, m in g.resources.scalar_items():
                out[k] = out.get(k, 0.0) + g.count * m / 1000
        return out

    def sample(self) -> dict[str, Any]:
        host = self.host
        row: dict[str, Any] = {"time": round(host.now, 6)}
        submitted = running = pending = 0
        for fw in self.framework_actors():
            s, r, p = fw.tracker.counts_now()
            submitted, running, pending = submitted + s, running + r, pending + p
        row.update(tasks_submitted=submitted, tasks_running=running, tasks_pending=pending)
        total = self.total()
        master = host.refs.get("master")
        allocated: dict[str, float] = {}
        used: dict[str, float] = {}
        per_role: dict[str, float] = {}
        if master is not None and master.instance.configured:
            ledger = master.instance.core.ledger
            for role in ledger.roles():
                a = ledger.get(role, "allocated")
                u = ledger.get(role, "used")
                for k, m in a.scalar_items():
                    allocated[k] = allocated.get(k, 0.0) + m / 1000
                for k, m in u.scalar_items():
                    used[k] = used.get(k, 0.0) + m / 1000
                per_role[role] = a.millis("cpus") / 1000
        for k in SCALAR_NAMES:
            if total.get(k):
                row[f"util_{k}"] = round(allocated.get(k, 0.0) / total[k], 6)
                row[f"used_{k}"] = round(used.get(k, 0.0) / total[k], 6)
        for role in sorted({r.name for r in self.scenario.roles} | set(per_role)):
            row[f"alloc_cpus[{role}]"] = per_role.get(role, 0.0)
        row["messages"] = host.messages
        return row

    def run(self, samples: list[dict[str, Any]] | None = None, progress: TextIO | None = None) -> float:
        """Run to the end; returns the virtual time at which the run ended."""
        fws = self.framework_actors()
        sc = self.scenario
        host = self.host

        # Checked after every event, so that the run ends at the event that finishes the
        # last framework: with a check only every N events the run went on past the end,
        # and how far (hence the digest, the message count and the samples taken after the
        # end) depended on how many sampling events there were.  Frameworks found done are
        # not asked again until all are, so a check costs one is_done() call.
        first_busy = 0

        def all_done() -> bool:
            nonlocal first_busy
            i = first_busy
            # (A crashed framework - its state released, see SimHost.crash - is never done.)
            while i < len(fws) and fws[i].__dict__ and fws[i].is_done():
                i += 1
            first_busy = i
            if i < len(fws):
                return False
            if all(f.__dict__ and f.is_done() for f in fws):
                return True
            first_busy = 0   # one went back to work
            return False

        if samples is not None:
            def take() -> None:
                samples.append(self.sample())
                if host.now + sc.sample_every <= sc.until:
                    host.call_at(host.now + sc.sample_every, take)
            host.call_at(host.now, take)
        t0 = time.perf_counter()

        shown = [0.0]

        def show(final: bool = False) -> None:
            assert progress is not None
            wall = time.perf_counter() - t0
            if not final and wall - shown[0] < 0.25:   # a terminal line, redrawn 4 times a second
                return
            shown[0] = wall
            r = self.sample()
            progress.write(f"\r  {host.now / 60:7.1f} virtual min | {host.events / 1e6:6.2f} M events, "
                           f"{host.events / max(wall, 1e-9) / 1e3:6.0f} k/s | {host.messages / 1e6:6.2f} M msgs | "
                           f"running {r['tasks_running']}, pending {r['tasks_pending']}  ")
            progress.flush()

        host.run(until=sc.until, stop_when=all_done if fws else None, check_every=1,
                 progress=show if progress is not None else None, progress_every=20_000)
        if progress is not None:
            show(final=True)
            progress.write("\n")
        if fws and all_done():
            end = max(f.done_at or 0.0 for f in fws)
        else:
            end = min(host.now, sc.until)
        if samples is not None and (not samples or samples[-1]["time"] < round(end, 6)):
            samples.append({**self.sample(), "time": round(end, 6)})
        return end


def run(scenario: Scenario, seed: int | None = None, out_dir: str | None = None,
        progress: TextIO | bool | None = None, plots: bool = True) -> Result:
    """Run ``scenario`` (with ``seed`` instead of the file's, if given); write the results."""
    if progress is True:
        progress = sys.stderr
    elif progress is False:
        progress = None
    # The actors' log goes to a file beside the results, not to the terminal.
    logger = logging.getLogger("impresario")
    handler: logging.Handler
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        handler = logging.FileHandler(os.path.join(out_dir, "sim.log"), mode="w")
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    saved = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    # The task lines (one per launch and state change, millions in a large scenario) only
    # where the scenario asks for them.
    task_loggers = [logging.getLogger(name) for name in TASK_LOGGERS]
    saved_levels = [t.level for t in task_loggers]
    for t in task_loggers:
        t.setLevel(logging.NOTSET if scenario.task_log else logging.WARNING)
    # Building the cluster, running it and summing it up all make millions of objects
    # that live to the end: the collector stays relaxed throughout (see RelaxedCollector).
    with RelaxedCollector():
        try:
            t0 = time.perf_counter()
            cluster = SimCluster(scenario, seed)
            samples: list[dict[str, Any]] = []
            end = cluster.run(samples, progress)
            wall = time.perf_counter() - t0
        finally:
            logger.removeHandler(handler)
            handler.close()
            logger.propagate, _ = saved
            logger.setLevel(saved[1])
            for t, level in zip(task_loggers, saved_levels, strict=True):
                t.setLevel(level)
        summary = summarize(cluster, end, wall)
    result = Result(scenario, cluster.seed, summary, cluster.host, out_dir, samples)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "summary.json")
        with open(path, "w") as fh:
            fh.write(summary_text(summary))
        result.files["summary"] = path
        result.files["log"] = os.path.join(out_dir, "sim.log")
        result.files["timeseries"] = write_timeseries(os.path.join(out_dir, "timeseries.csv"), samples)
        result.files.update(write_views(cluster, end, out_dir))
        if plots:
            from .plots import plot
            result.files.update(plot(samples, out_dir))
    return result


def _views_of(cluster: SimCluster) -> tuple[Any, Any]:
    master, allocator = cluster.host.actor("master"), cluster.host.actor("allocator")
    core = getattr(master, "core", None)
    if core is None or not master.configured:
        return None, None
    return master, allocator


def metrics_view(cluster: SimCluster, now: float) -> dict[str, Any] | None:
    """``/metrics/snapshot`` of the simulated master at ``now`` (None without one)."""
    from actors.allocator.actor import metrics as allocator_metrics
    from actors.master import views as master_views

    master, allocator = _views_of(cluster)
    if master is None:
        return None
    alloc = allocator_metrics(allocator.policy, allocator.runs, allocator.run_ms) if allocator.configured else {}
    return master_views.merge(master_views.metrics(master.core, now, master.received, master.sent), alloc)


def write_views(cluster: SimCluster, now: float, out_dir: str) -> dict[str, str]:
    """``state.json`` and ``metrics.json`` (the shapes of the real master's ``/state`` and
    ``/metrics/snapshot``) in ``out_dir``; ``state.json`` written in pieces (a replay's
    master may hold hundreds of thousands of tasks)."""
    from actors.master import views as master_views

    master, _ = _views_of(cluster)
    if master is None:
        return {}
    files = {"state": os.path.join(out_dir, "state.json"), "metrics": os.path.join(out_dir, "metrics.json")}
    with open(files["state"], "wb") as fh:
        master_views.write_state(master.core, now, fh.write)
        fh.write(b"\n")
    with open(files["metrics"], "w") as fh:
        json.dump(metrics_view(cluster, now), fh, indent=1)
        fh.write("\n")
    return files


def write_timeseries(path: str, samples: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for row in samples:
        for k in row:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, restval="")
        w.writeheader()
        for row in samples:
            w.writerow(row)
    return path


class _NoMaster:
    """What a master that never was configured knows."""

    agents: dict[str, Any] = {}
    agent_by_addr: dict[str, str] = {}
    frameworks: dict[str, Any] = {}
    counters: dict[str, int] = {"offers_sent": 0, "offers_rescinded": 0}
    weights: dict[str, float] = {}
    quotas: dict[str, Any] = {}
    ledger = RoleLedger()


_NO_MASTER: Any = _NoMaster()


def recoveries(cluster: SimCluster) -> list[dict[str, Any]]:
    """For each master failover: how long until every agent the old master had (and that
    still lives) re-registered with the new one, and every framework it had re-subscribed."""
    return [fo.get("result") or _recovery(fo, cluster.host.refs) for fo in cluster.failovers]


def _recovery(fo: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    """One failover's recovery, read off its master (live, or about to crash) and the
    agents alive in ``refs``."""
    m, at = fo["master"].core, fo["at"]
    if m is None:   # crashed before it was configured: nobody came back to it
        m = _NO_MASTER
    times: list[float] = []
    agents = [a for a in sorted(fo["agents"]) if a in refs]
    back = 0
    for name in agents:
        rec = m.agents.get(m.agent_by_addr.get(name, ""))
        if rec is not None and rec.reachable and rec.registered_at >= at:
            back += 1
            times.append(rec.registered_at)
    fws_back = 0
    for fid in sorted(fo["frameworks"]):
        fw = m.frameworks.get(fid)
        if fw is not None and fw.subscribed_at is not None and fw.subscribed_at >= at:
            fws_back += 1
            times.append(fw.subscribed_at)
    complete = back == len(agents) and fws_back == len(fo["frameworks"])
    return {"at": round(at, 6), "agents": len(agents), "agents_back": back,
            "frameworks": len(fo["frameworks"]), "frameworks_back": fws_back,
            "seconds": round(max(times, default=at) - at, 6) if complete else None}


def summarize(cluster: SimCluster, end: float, wall: float) -> dict[str, Any]:
    host = cluster.host
    fws = cluster.framework_actors()
    counts = dict.fromkeys(TASK_COUNTS, 0)
    latencies: list[float] = []
    per_framework = {}
    for (name, _), fw in zip(cluster.frameworks, fws, strict=False):
        s = fw.summary()
        per_framework[name] = {k: s[k] for k in TASK_COUNTS} | {"done_at": s["done_at"],
                                                               "scheduling_latency": s["scheduling_latency"]}
        if s["errors"]:
            per_framework[name]["errors"] = s["errors"]   # what the master refused it
        for k in TASK_COUNTS:
            counts[k] += s[k]
        tr = fw.tracker
        latencies.extend(tr.running_at[t] - tr.submitted_at[t] for t in tr.running_at)
    latencies.sort()
    peak, peak_at = peak_running([fw.tracker for fw in fws])
    master = host.actor(cluster.master).core or _NO_MASTER
    names: dict[int | None, str] = {t: c.__name__ for t, c in message_types().items()}
    recovered = recoveries(cluster)
    out = {
        "scenario": cluster.scenario.name,
        "host": "sim",
        "seed": cluster.seed,
        "agents": cluster.scenario.agents,
        "frameworks": len(fws),
        **counts,
        "tasks_lost_then_found": sum(fw.tracker.revived for fw in fws),
        "virtual_seconds": round(end, 6),
        "wall_seconds": round(wall, 3),
        "messages": host.messages,
        "events": host.events,
        "events_per_second": round(host.events / wall) if wall > 0 else None,
        "messages_by_type": {names.get(t, str(t)): n for t, n in
                             sorted(host.messages_by_tag.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))},
        "dead_letters": host.dead_letters,
        "messages_lost": host.lost,
        "digest": host.hexdigest(),
        "offers": master.counters["offers_sent"] + cluster.retired.get("offers_sent", 0),
        "rescinds": master.counters["offers_rescinded"] + cluster.retired.get("offers_rescinded", 0),
        "service_time": cluster.scenario.service_time,
        "peak_master_queue": host.peak_queue.get("master", 0),
        "master_busy_fraction": round(host.busy_seconds.get("master", 0.0) / end, 6) if end > 0 else 0.0,
        "roles": roles_view(master.ledger.view(end), master.weights,
                            {r: q.to_dict() for r, q in master.quotas.items()}, cluster.total()),
        "scheduling_latency": latency_view(latencies),
        "peak_tasks_running": peak,
        "peak_tasks_running_at": None if peak_at is None else round(peak_at, 6),
        "faults": cluster.faults.entries,
        # The slowest recovery (None: none happened, or one never completed; see the list).
        "master_recovery_seconds": (None if not recovered or any(r["seconds"] is None for r in recovered)
                                    else max(r["seconds"] for r in recovered)),
        "master_recoveries": recovered,
        "per_framework": per_framework,
    }
    return out
