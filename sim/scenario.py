"""Scenario files: TOML, read with the standard library, validated strictly.

An unknown key is an error naming the key (with its place in the file); an
impossible value (a negative count, a task larger than every agent, a role
name Mesos would refuse) is an error saying why.  See ``docs/scenarios.md``.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from actors.allocator.actor import policy_class
from actors.allocator.quota import Quota, QuotaError, amounts, validate
from actors.config import ConfigError
from actors.frameworks.batch import parse_task_spec
from actors.protocol.resources import Resources, role_error
from actors.protocol.units import UnitError, parse_duration, parse_size
from actors.security.acl import ACL, ACLError
from actors.security.auth import principal_error

from .faults import Fault, FaultError, parse_fault, select
from .host import parse_service_time
from .network import from_settings
from .traces import FORMATS


class ScenarioError(ValueError):
    """A scenario that cannot be run, with the reason."""


@dataclass
class AgentGroup:
    count: int
    resources: Resources
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class RoleSpec:
    name: str
    weight: float = 1.0
    quota: Quota | None = None


@dataclass
class OperatorCall:
    """An operator call made to the master at a virtual time."""

    at: float
    weights: dict[str, float] | None = None
    quota_role: str | None = None
    quota: Quota | None = None


@dataclass
class FrameworkSpec:
    name: str
    roles: list[str]
    class_path: str
    settings: dict[str, Any]
    capabilities: list[str] = field(default_factory=list)
    ports: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Scenario:
    name: str
    seed: int = 1
    until: float = 7200.0
    latency: float = 0.0005
    allocation_interval: float = 1.0
    allocator: str = "drf"
    service_time: str = "zero"
    sample_every: float = 10.0
    authenticate: bool = False
    #: [sim].task_log: the master's and agents' task lines (one per launch and state change) in sim.log
    task_log: bool = False
    network: dict[str, Any] | None = None
    faults: list[Fault] = field(default_factory=list)
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    groups: list[AgentGroup] = field(default_factory=list)
    roles: list[RoleSpec] = field(default_factory=list)
    frameworks: list[FrameworkSpec] = field(default_factory=list)
    operator: list[OperatorCall] = field(default_factory=list)
    master_settings: dict[str, Any] = field(default_factory=dict)
    agent_settings: dict[str, Any] = field(default_factory=dict)
    #: [acls]: the master's ACLs (the shape of actors.security.acl), None: no authorization
    acls: dict[str, Any] | None = None
    path: str | None = None

    @property
    def agents(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def tasks(self) -> int:
        total = 0
        for fw in self.frameworks:
            for spec in fw.settings.get("tasks", []):
                total += spec.get("count", 1)
        return total


BATCH_CLASS = "actors.frameworks.batch:BatchFramework"
AGENT_KEYS = {"cpus", "mem", "disk", "gpus", "attributes", "resources"}
SIM_KEYS = {"seed", "until", "latency", "allocation_interval", "name", "allocator", "service_time",
            "sample_every", "authenticate", "task_log"}
NETWORK_KEYS = {"agents_per_rack", "host_link", "rack_link", "racks"}
QUOTA_KEYS = {"guarantee", "limit"}
OPERATOR_KEYS = {"at", "update_weights", "update_quota"}
CLUSTER_KEYS = {"agents", "agent", "groups"}
ROLE_KEYS = {"name", "weight", "quota"}
FRAMEWORK_KEYS = {"name", "roles", "role", "tasks", "task", "class", "capabilities", "settings", "time_scale",
                  "trace", "trace_format", "trace_limit", "trace_time_scale", "stop_services_at",
                  "failover_timeout", "partition_aware", "count", "principal", "user"}
TOP_KEYS = {"sim", "cluster", "roles", "frameworks", "operator", "network", "faults", "sweep", "master",
            "agent", "acls"}
#: [master] keys: durations, and counts (the master's settings of the same names).
MASTER_DURATIONS = {"agent_ping_timeout", "heartbeat_interval", "agent_reregister_timeout"}
MASTER_COUNTS = {"max_agent_ping_timeouts", "max_framework_heartbeat_timeouts"}
#: [agent] keys (the agent's settings of the same names).
AGENT_DURATIONS = {"registration_backoff"}
AGENT_COUNTS = {"master_ping_timeouts", "max_completed_executors"}
#: [agent] keys that are neither: whom agents authenticate as, and whether they run root's tasks.
AGENT_OTHER = {"principal", "allow_root_tasks"}


def _check_keys(table: Any, known: set[str], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ScenarioError(f"{where} must be a table")
    for key in table:
        if key not in known:
            raise ScenarioError(f"unknown key {key!r} in {where} (known: {', '.join(sorted(known))})")
    return table


def _number(v: Any, where: str, minimum: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < minimum:
        raise ScenarioError(f"{where} must be a number >= {minimum:g}, got {v!r}")
    return float(v)


def _int(v: Any, where: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ScenarioError(f"{where} must be an integer >= {minimum}, got {v!r}")
    return v


def _duration(v: Any, where: str) -> float:
    try:
        return parse_duration(v)
    except UnitError as e:
        raise ScenarioError(f"{where}: {e}") from None


def _agent_resources(t: dict[str, Any], where: str) -> Resources:
    if "resources" in t:
        if any(k in t for k in ("cpus", "mem", "disk", "gpus")):
            raise ScenarioError(f"{where}: give either resources = \"...\" or cpus/mem/disk/gpus")
        try:
            return Resources.parse(str(t["resources"]))
        except ValueError as e:
            raise ScenarioError(f"{where}.resources: {e}") from None
    try:
        cpus = _number(t.get("cpus", 0), f"{where}.cpus")
        gpus = _number(t.get("gpus", 0), f"{where}.gpus")
        if gpus != int(gpus):
            raise ScenarioError(f"{where}.gpus must be a whole number")
        res = Resources.of(cpus=cpus, mem=parse_size(t.get("mem", 0)),
                           disk=parse_size(t.get("disk", 0)), gpus=gpus)
    except (UnitError, ValueError) as e:
        raise ScenarioError(f"{where}: {e}") from None
    if res.is_empty():
        raise ScenarioError(f"{where}: an agent needs some resources")
    return res


def parse(data: dict[str, Any], name: str = "scenario", path: str | None = None) -> Scenario:
    """Validate a parsed TOML document and build a :class:`Scenario`."""
    _check_keys(data, TOP_KEYS, "the scenario")
    sim = _check_keys(data.get("sim", {}), SIM_KEYS, "[sim]")
    sc = Scenario(name=str(sim.get("name", name)), path=path)
    sc.seed = _int(sim.get("seed", 1), "[sim].seed")
    sc.until = _duration(sim.get("until", "2h"), "[sim].until")
    if sc.until <= 0:
        raise ScenarioError("[sim].until must be positive")
    sc.latency = _duration(sim.get("latency", "0.5ms"), "[sim].latency")
    sc.allocation_interval = _duration(sim.get("allocation_interval", "1s"), "[sim].allocation_interval")
    if sc.allocation_interval <= 0:
        raise ScenarioError("[sim].allocation_interval must be positive")
    alloc = sim.get("allocator", "drf")
    if not isinstance(alloc, str):
        raise ScenarioError(f"[sim].allocator must be a name or \"package.module:Class\", got {alloc!r}")
    if ":" not in alloc:
        try:
            policy_class(alloc)
        except ConfigError as e:
            raise ScenarioError(f"[sim].allocator: {e}") from None
    sc.allocator = alloc
    try:
        parse_service_time(str(sim.get("service_time", "zero")))
    except ValueError as e:
        raise ScenarioError(f"[sim].service_time: {e}") from None
    sc.service_time = str(sim.get("service_time", "zero"))
    sc.sample_every = _duration(sim.get("sample_every", "10s"), "[sim].sample_every")
    if sc.sample_every <= 0:
        raise ScenarioError("[sim].sample_every must be positive")
    sc.authenticate = sim.get("authenticate", False)
    if type(sc.authenticate) is not bool:
        raise ScenarioError(f"[sim].authenticate must be true or false, got {sc.authenticate!r}")
    sc.task_log = sim.get("task_log", False)
    if type(sc.task_log) is not bool:
        raise ScenarioError(f"[sim].task_log must be true or false, got {sc.task_log!r}")

    for table, durations, counts, out in (("master", MASTER_DURATIONS, MASTER_COUNTS, sc.master_settings),
                                          ("agent", AGENT_DURATIONS, AGENT_COUNTS, sc.agent_settings)):
        other = AGENT_OTHER if table == "agent" else set()
        t = _check_keys(data.get(table, {}), durations | counts | other, f"[{table}]")
        for key, v in t.items():
            if key == "principal":
                out[key] = _principal(v, f"[{table}].principal")
            elif key == "allow_root_tasks":
                if type(v) is not bool:
                    raise ScenarioError(f"[{table}].allow_root_tasks must be true or false, got {v!r}")
                out[key] = v
            elif key in durations:
                out[key] = _duration(v, f"[{table}].{key}")
                if out[key] <= 0 and key != "registration_backoff":
                    raise ScenarioError(f"[{table}].{key} must be positive")
            else:
                out[key] = _int(v, f"[{table}].{key}", 0 if key == "max_completed_executors" else 1)

    if "acls" in data:
        try:
            sc.acls = ACL.parse(data["acls"], "[acls]").to_dict()
        except ACLError as e:
            raise ScenarioError(str(e)) from None
    if "network" in data:
        net = _check_keys(data["network"], NETWORK_KEYS, "[network]")
        try:
            from_settings(net, sc.latency, 1)
        except (ValueError, UnitError) as e:
            raise ScenarioError(f"[network]: {e}") from None
        sc.network = dict(net)
    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise ScenarioError("[[faults]] must be an array of tables")
    for i, f in enumerate(faults):
        try:
            fault = parse_fault(f, f"faults[{i}]")
        except FaultError as e:
            raise ScenarioError(str(e)) from None
        if fault.targets.startswith("racks") and sc.network is None:
            raise ScenarioError(f"faults[{i}]: racks need a [network] table (a topology)")
        sc.faults.append(fault)
    named = [(i, f.targets) for i, f in enumerate(sc.faults) if not f.targets.startswith(("agents", "racks"))]
    sliced = [(i, f.targets) for i, f in enumerate(sc.faults) if f.targets.startswith(("agents", "racks"))]
    sc.faults.sort(key=lambda f: f.at)
    sweep = data.get("sweep", {})
    if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
        raise ScenarioError("[sweep] maps dotted keys to non-empty lists of values")
    sc.sweep = dict(sweep)

    cluster = _check_keys(data.get("cluster"), CLUSTER_KEYS, "[cluster]") if "cluster" in data else None
    if cluster is None:
        raise ScenarioError("a scenario needs a [cluster] table")
    if "groups" in cluster:
        if "agents" in cluster or "agent" in cluster:
            raise ScenarioError("[cluster]: give either agents/agent or [[cluster.groups]], not both")
        if not isinstance(cluster["groups"], list) or not cluster["groups"]:
            raise ScenarioError("[[cluster.groups]] must list at least one group")
        for i, g in enumerate(cluster["groups"]):
            where = f"cluster.groups[{i}]"
            _check_keys(g, AGENT_KEYS | {"count"}, where)
            count = _int(g.get("count", 1), f"{where}.count")
            attrs = g.get("attributes", {})
            if not isinstance(attrs, dict):
                raise ScenarioError(f"{where}.attributes must be a table")
            body = {k: v for k, v in g.items() if k not in ("count", "attributes")}
            sc.groups.append(AgentGroup(count, _agent_resources(body, where),
                                        {str(k): str(v) for k, v in attrs.items()}))
    else:
        count = _int(cluster.get("agents", 1), "[cluster].agents")
        agent = _check_keys(cluster.get("agent", {}), AGENT_KEYS, "[cluster].agent")
        attrs = agent.get("attributes", {})
        body = {k: v for k, v in agent.items() if k != "attributes"}
        if not body:
            body = {"cpus": 32, "mem": "128GiB", "disk": "1TiB"}
        sc.groups.append(AgentGroup(count, _agent_resources(body, "[cluster].agent"),
                                    {str(k): str(v) for k, v in attrs.items()}))
    if sc.agents < 1:
        raise ScenarioError("the cluster has no agents")

    roles = data.get("roles", [])
    if not isinstance(roles, list):
        raise ScenarioError("[[roles]] must be an array of tables")
    seen_roles: set[str] = set()
    for i, r in enumerate(roles):
        where = f"roles[{i}]"
        _check_keys(r, ROLE_KEYS, where)
        rname = r.get("name")
        err = role_error(rname) if isinstance(rname, str) else "a role needs a name"
        if err:
            raise ScenarioError(f"{where}: {err}")
        if rname in seen_roles:
            raise ScenarioError(f"{where}: role {rname!r} is listed twice")
        seen_roles.add(rname)
        weight = _number(r.get("weight", 1.0), f"{where}.weight")
        if weight <= 0:
            raise ScenarioError(f"{where}.weight must be positive")
        quota = _quota(r["quota"], f"role {rname!r}.quota") if "quota" in r else None
        sc.roles.append(RoleSpec(rname, weight, quota))
    try:
        validate({r.name: r.quota for r in sc.roles if r.quota is not None})
    except QuotaError as e:
        raise ScenarioError(f"[[roles]] quota: {e}") from None

    calls = data.get("operator", [])
    if not isinstance(calls, list):
        raise ScenarioError("[[operator]] must be an array of tables")
    for i, c in enumerate(calls):
        sc.operator.append(_operator_call(c, f"operator[{i}]"))
    sc.operator.sort(key=lambda c: c.at)

    frameworks = data.get("frameworks", [])
    if not isinstance(frameworks, list):
        raise ScenarioError("[[frameworks]] must be an array of tables")
    largest = _largest_agent(sc.groups)
    names: set[str] = set()
    for i, f in enumerate(frameworks):
        if isinstance(f, dict) and "count" in f:
            # count = N: N frameworks alike, named NAME-0 ... NAME-(N-1).
            n = _int(f["count"], f"frameworks[{i}].count", 1)
            base = f.get("name", f"framework{i}")
            for j in range(n):
                copy = {k: v for k, v in f.items() if k != "count"}
                copy["name"] = f"{base}-{j}"
                sc.frameworks.append(_framework(copy, i, names, largest, path))
        else:
            sc.frameworks.append(_framework(f, i, names, largest, path))
    # A fault's target named by name must name something of this scenario (a typo would
    # otherwise be a fault that touches nothing).
    known = {"master", "allocator", "frameworks", *(f"agent-{n}" for n in range(sc.agents))}
    known |= {n for fw in sc.frameworks for n in (fw.name, f"framework/{fw.name}")}
    agent_names = [f"agent-{n}" for n in range(sc.agents)]
    n_racks = -(-sc.agents // int(sc.network.get("agents_per_rack", 40))) if sc.network else None
    for i, target in sliced:
        hit, racks = select(target, agent_names, n_racks)
        if not hit and not racks:
            pool = f"{sc.agents} agents" if target.startswith("agents") else f"{n_racks} racks of agents"
            raise ScenarioError(f"faults[{i}].targets: {target!r} selects nothing (the scenario has {pool})")
    for i, target in named:
        if target not in known:
            raise ScenarioError(f"faults[{i}].targets: nothing is named {target!r} (agents[i:j], racks[i:j], "
                                f"master, allocator, frameworks, a framework's name, or agent-N, "
                                f"N < {sc.agents})")
    return sc


def _quota(spec: Any, where: str) -> Quota:
    _check_keys(spec, QUOTA_KEYS, where)
    try:
        return Quota(amounts(spec.get("guarantee", {}), f"{where}.guarantee"),
                     amounts(spec.get("limit", {}), f"{where}.limit"))
    except QuotaError as e:
        raise ScenarioError(str(e)) from None


def _operator_call(c: Any, where: str) -> OperatorCall:
    _check_keys(c, OPERATOR_KEYS, where)
    if "at" not in c:
        raise ScenarioError(f"{where}: when? give at = \"10m\"")
    call = OperatorCall(_duration(c["at"], f"{where}.at"))
    if ("update_weights" in c) == ("update_quota" in c):
        raise ScenarioError(f"{where}: give one of update_weights or update_quota")
    if "update_weights" in c:
        w = c["update_weights"]
        if not isinstance(w, dict) or not w:
            raise ScenarioError(f"{where}.update_weights must be a table of role = weight")
        call.weights = {}
        for role, v in w.items():
            err = role_error(role)
            if err:
                raise ScenarioError(f"{where}.update_weights: {err}")
            call.weights[role] = _number(v, f"{where}.update_weights.{role}")
            if call.weights[role] <= 0:
                raise ScenarioError(f"{where}.update_weights.{role} must be positive")
    else:
        q = c["update_quota"]
        if not isinstance(q, dict) or "role" not in q:
            raise ScenarioError(f"{where}.update_quota needs a role")
        role = q["role"]
        err = role_error(role) if isinstance(role, str) else "a role name"
        if err or role == "*":
            raise ScenarioError(f"{where}.update_quota.role: {err or 'not the default role'}")
        call.quota_role = role
        call.quota = _quota({k: v for k, v in q.items() if k != "role"}, f"{where}.update_quota")
    return call


def _largest_agent(groups: list[AgentGroup]) -> dict[str, int]:
    best: dict[str, int] = {}
    for g in groups:
        if g.count == 0:
            continue
        for name, m in g.resources.scalar_items():
            best[name] = max(best.get(name, 0), m)
    return best


def _framework(f: Any, i: int, names: set[str], largest: dict[str, int], path: str | None) -> FrameworkSpec:
    where = f"frameworks[{i}]"
    _check_keys(f, FRAMEWORK_KEYS, where)
    name = f.get("name", f"framework{i}")
    if not isinstance(name, str) or not name or "/" in name:
        raise ScenarioError(f"{where}.name must be a non-empty name without '/'")
    if name in names:
        raise ScenarioError(f"{where}: two frameworks are named {name!r}")
    names.add(name)
    where = f"framework {name!r}"
    if "role" in f and "roles" in f:
        raise ScenarioError(f"{where}: give role or roles, not both")
    roles = f.get("roles", [f.get("role", "*")])
    if not isinstance(roles, list) or not roles:
        raise ScenarioError(f"{where}.roles must be a non-empty list")
    for r in roles:
        err = role_error(r)
        if err:
            raise ScenarioError(f"{where}.roles: {err}")
    caps = f.get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ScenarioError(f"{where}.capabilities must be a list of names")
    class_path = f.get("class", BATCH_CLASS)
    if not isinstance(class_path, str) or ":" not in class_path:
        raise ScenarioError(f"{where}.class must be \"package.module:Class\", got {class_path!r}")
    settings = dict(f.get("settings", {}))
    if not isinstance(f.get("settings", {}), dict):
        raise ScenarioError(f"{where}.settings must be a table")
    if "time_scale" in f:
        settings["time_scale"] = _number(f["time_scale"], f"{where}.time_scale")
    tasks: list[dict[str, Any]] = []
    if "task" in f:
        if not isinstance(f["task"], dict):
            raise ScenarioError(f"{where}.task must be a table")
        count = _int(f.get("tasks", 1), f"{where}.tasks")
        tasks.append({"name": name, "count": count, **f["task"]})
    elif "tasks" in f:
        if not isinstance(f["tasks"], list):
            raise ScenarioError(f"{where}.tasks is a count when [frameworks.task] is given, else a list of task tables")
        tasks = list(f["tasks"])
    for j, spec in enumerate(tasks):
        try:
            fields, _ = parse_task_spec(spec, j)
        except ConfigError as e:
            text = str(e).replace("tasks[0]", "task", 1) if "task" in f else str(e)
            raise ScenarioError(f"{where}: {text}") from None
        for rname, m in fields["resources"].scalar_items():
            if m > largest.get(rname, 0):
                raise ScenarioError(
                    f"{where}: a task needs {rname} {m / 1000:g} but the largest agent has "
                    f"{largest.get(rname, 0) / 1000:g}: it could never run")
    if tasks:
        settings["tasks"] = tasks
    ports: list[tuple[str, str]] = []
    if "trace" in f:
        fmt = f.get("trace_format")
        if fmt not in FORMATS:
            raise ScenarioError(f"{where}.trace_format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        trace_path = str(f["trace"])
        if not os.path.isabs(trace_path) and path:
            trace_path = os.path.join(os.path.dirname(os.path.abspath(path)), trace_path)
        if not os.path.exists(trace_path):
            raise ScenarioError(f"{where}.trace: no file {trace_path}")
        trace: dict[str, Any] = {"path": trace_path, "format": fmt,
                                 "agent_cpus": largest.get("cpus", 0) / 1000,
                                 "agent_mem": largest.get("mem", 0) / 1000}
        if "trace_limit" in f:
            trace["limit"] = _int(f["trace_limit"], f"{where}.trace_limit", 1)
        if "trace_time_scale" in f:
            trace["time_scale"] = _number(f["trace_time_scale"], f"{where}.trace_time_scale")
        settings["trace"] = trace
        ports.append(("workload", "sim.traces:trace_workload"))
    elif "trace_format" in f or "trace_limit" in f or "trace_time_scale" in f:
        raise ScenarioError(f"{where}: trace_format, trace_limit and trace_time_scale go with trace = \"PATH\"")
    if "stop_services_at" in f:
        settings["stop_services_at"] = _duration(f["stop_services_at"], f"{where}.stop_services_at")
    if "failover_timeout" in f:
        settings["failover_timeout"] = _duration(f["failover_timeout"], f"{where}.failover_timeout")
    if "principal" in f:
        settings["principal"] = _principal(f["principal"], f"{where}.principal")
    if "user" in f:
        user = f["user"]
        if not isinstance(user, str) or not user or any(c.isspace() or c in ":/" for c in user):
            raise ScenarioError(f"{where}.user must be a user name, got {user!r}")
        settings["user"] = user
    if f.get("partition_aware") and "PARTITION_AWARE" not in caps:
        caps = [*caps, "PARTITION_AWARE"]
    return FrameworkSpec(name, roles, class_path, settings, caps, ports)


def _principal(v: Any, where: str) -> str:
    err = principal_error(v)
    if err:
        raise ScenarioError(f"{where}: {err}")
    return str(v)


def load(path: str) -> Scenario:
    """Read and validate a scenario file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise ScenarioError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML: {e}") from None
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return parse(data, name=name, path=path)
    except ScenarioError as e:
        raise ScenarioError(f"{path}: {e}") from None


def find(name_or_path: str, search: list[str] | None = None) -> str:
    """A scenario file by path, or by name in ./scenarios or the source tree's scenarios/."""
    if os.path.exists(name_or_path):
        return name_or_path
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
    for d in search or ["scenarios", here]:
        for candidate in (os.path.join(d, name_or_path), os.path.join(d, name_or_path + ".toml")):
            if os.path.exists(candidate):
                return candidate
    raise ScenarioError(f"no scenario file {name_or_path!r} (looked in ./scenarios and {here})")
