"""Run a scenario in the SimPy host and write its results.

The same actor classes as on a real host (master, allocator, agents,
executors, frameworks) are created in a :class:`~sim.host.SimHost`; the run
ends at ``[sim].until`` or as soon as every framework is done, and
``summary.json`` is written to the output folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from actors import messages as M
from actors.codec import message_types
from actors.framework import Framework, percentile
from actors.resources import SCALAR_NAMES, from_millis

from .host import BASE_PORTS, LatencyModel, SimHost
from .scenario import Scenario

SIM_EXECUTOR_PORTS = [["containerizer", "sim.containerizer:SimContainerizer"]]
TASK_COUNTS = ("tasks_submitted", "tasks_finished", "tasks_failed", "tasks_killed", "tasks_error",
               "tasks_lost", "tasks_running", "tasks_pending")


@dataclass
class Result:
    scenario: Scenario
    seed: int
    summary: dict[str, Any]
    host: SimHost
    out_dir: str | None = None

    @property
    def summary_path(self) -> str | None:
        return os.path.join(self.out_dir, "summary.json") if self.out_dir else None


class SimCluster:
    """A scenario's cluster built in a SimPy host, ready to run."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.host = host = SimHost(LatencyModel(scenario.latency))
        weights = {r.name: r.weight for r in scenario.roles}
        self.master = host.spawn("actors.master.Master", name="master")
        self.allocator = host.spawn("actors.allocator.Allocator", name="allocator")
        self._configure(self.allocator, "allocator", "allocator", {
            "master": "master", "seed": self.seed, "weights": weights,
            "allocation_interval": scenario.allocation_interval, "policy": scenario.allocator})
        quotas = {r.name: r.quota.to_dict() for r in scenario.roles if r.quota is not None}
        self._configure(self.master, "master", "master", {
            "master_id": "sim", "allocator": "allocator", "weights": weights, "quotas": quotas,
            "seed": self.seed})
        n = 0
        for group in scenario.groups:
            text = str(group.resources)
            for _ in range(group.count):
                name = f"agent-{n}"
                addr = host.spawn("actors.agent.Agent", name=name)
                self._configure(addr, "agent", name, {
                    "master": "master", "resources": text, "attributes": group.attributes,
                    "hostname": name, "executor_ports": SIM_EXECUTOR_PORTS, "seed": self.seed})
                n += 1
        self.frameworks: list[tuple[str, Any]] = []
        for fw in scenario.frameworks:
            addr = host.spawn(fw.class_path, name=f"framework/{fw.name}")
            self._configure(addr, "framework", fw.name, {
                **fw.settings, "master": "master", "name": fw.name, "roles": fw.roles,
                "capabilities": fw.capabilities, "seed": self.seed})
            self.frameworks.append((fw.name, addr))
        self._check_configured()
        for call in scenario.operator:
            if call.weights is not None:
                msg: Any = M.UpdateWeights(tuple(sorted(call.weights.items())))
            else:
                assert call.quota is not None and call.quota_role is not None
                msg = M.UpdateQuota(call.quota_role, *call.quota.to_wire())
            host.tell_at(call.at, self.master, msg)

    def _configure(self, addr: Any, component: str, name: str, settings: dict[str, Any]) -> None:
        self.host.tell(addr, M.Configure(component, name, settings, BASE_PORTS))

    def _check_configured(self) -> None:
        # Deliver the Configure messages, then look at every answer.
        self.host.run(until=self.host.now + 4 * self.scenario.latency + 1e-6)
        errors = [f"{m.name}: {m.error}" for m in self.host.inbox.take(M.Configured) if m.error]
        if errors:
            raise ValueError("configuration refused: " + "; ".join(errors[:5]))

    def total(self) -> dict[str, float]:
        """The cluster's scalars, in user units (mem and disk in MiB)."""
        out: dict[str, float] = {}
        for g in self.scenario.groups:
            for k, m in g.resources.scalar_items():
                out[k] = out.get(k, 0.0) + g.count * m / 1000
        return out

    def framework_actors(self) -> list[Framework]:
        return [self.host.actor(addr) for _, addr in self.frameworks]

    def run(self) -> float:
        """Run to the end; returns the virtual time at which the run ended."""
        fws = self.framework_actors()

        def all_done() -> bool:
            return all(f.is_done() for f in fws)

        self.host.run(until=self.scenario.until, stop_when=all_done if fws else None)
        if fws and all_done():
            return max(f.done_at or 0.0 for f in fws)
        return min(self.host.now, self.scenario.until)


def run(scenario: Scenario, seed: int | None = None, out_dir: str | None = None) -> Result:
    """Run ``scenario`` (with ``seed`` instead of the file's, if given); write summary.json."""
    t0 = time.perf_counter()
    cluster = SimCluster(scenario, seed)
    end = cluster.run()
    wall = time.perf_counter() - t0
    summary = summarize(cluster, end, wall)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
    return Result(scenario, cluster.seed, summary, cluster.host, out_dir)


def summarize(cluster: SimCluster, end: float, wall: float) -> dict[str, Any]:
    host = cluster.host
    fws = cluster.framework_actors()
    counts = dict.fromkeys(TASK_COUNTS, 0)
    latencies: list[float] = []
    per_framework = {}
    for (name, _), fw in zip(cluster.frameworks, fws, strict=True):
        s = fw.summary()
        per_framework[name] = {k: s[k] for k in TASK_COUNTS} | {"done_at": s["done_at"]}
        for k in TASK_COUNTS:
            counts[k] += s[k]
        tr = fw.tracker
        latencies.extend(tr.running_at[t] - tr.submitted_at[t] for t in tr.running_at)
    latencies.sort()
    master = host.actor(cluster.master)
    names: dict[int | None, str] = {t: c.__name__ for t, c in message_types().items()}
    return {
        "scenario": cluster.scenario.name,
        "host": "sim",
        "seed": cluster.seed,
        "agents": cluster.scenario.agents,
        "frameworks": len(fws),
        **counts,
        "virtual_seconds": round(end, 6),
        "wall_seconds": round(wall, 3),
        "messages": host.messages,
        "messages_by_type": {names.get(t, str(t)): n for t, n in sorted(host.messages_by_tag.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))},
        "dead_letters": host.dead_letters,
        "digest": host.hexdigest(),
        "roles": roles_view(master.ledger.view(end), master.weights,
                            {r: q.to_dict() for r, q in master.quotas.items()}, cluster.total()),
        "scheduling_latency": latency_view(latencies),
        "per_framework": per_framework,
    }


def latency_view(latencies: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 6)
    return {"count": len(latencies), "p50": r(percentile(latencies, 50)),
            "p90": r(percentile(latencies, 90)), "p99": r(percentile(latencies, 99)),
            "max": r(latencies[-1] if latencies else None)}


def roles_view(view: dict[str, Any], weights: dict[str, float], quotas: dict[str, Any] | None = None,
               total: dict[str, float] | None = None) -> dict[str, Any]:
    """The summary's ``roles``: allocated now and on average, {cpus, mem, disk, gpus}, MiB;
    ``mean_share``: the time-weighted mean allocation's dominant share of the cluster."""
    out = {}
    quotas = quotas or {}
    for role in sorted(set(view) | set(weights) | set(quotas)):
        v = view.get(role, {})
        zero = dict.fromkeys(SCALAR_NAMES, from_millis(0))
        mean = v.get("mean_allocated", dict.fromkeys(SCALAR_NAMES, 0.0))
        share = max((mean.get(k, 0.0) / t for k, t in (total or {}).items() if t > 0), default=0.0)
        out[role] = {
            "weight": weights.get(role, 1.0),
            "quota": quotas.get(role),
            "mean_share": round(share, 6),
            "allocated": v.get("allocated", zero),
            "mean_allocated": v.get("mean_allocated", dict.fromkeys(SCALAR_NAMES, 0.0)),
            "offered": v.get("offered", zero),
            "mean_offered": v.get("mean_offered", dict.fromkeys(SCALAR_NAMES, 0.0)),
            "used": v.get("used", zero),
            "mean_used": v.get("mean_used", dict.fromkeys(SCALAR_NAMES, 0.0)),
        }
    return out
