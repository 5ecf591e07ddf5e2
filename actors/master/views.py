"""What the master shows operators, in Mesos' shapes and names: ``/state`` and its parts,
``/state-summary``, ``/roles`` and the master's half of ``/metrics/snapshot``.

Plain functions over a :class:`~actors.master.core.MasterCore`, answering plain JSON
values; both hosts serve them (the real host over HTTP, the simulator as ``state.json``
and ``metrics.json``).  A ``viewer`` (:class:`Viewer`) filters what a principal may see,
by the ACLs ``view_frameworks``, ``view_tasks`` and ``view_agents``.  The figures the
metrics need are kept as tasks change (:class:`~actors.master.records.TaskTable`), so a
snapshot never walks the tasks.  docs/operators.md lists every key.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from actors.master.core import VERSION, MasterCore
from actors.master.records import AgentRec, FrameworkRec, TaskRec
from actors.protocol.messages import TaskState
from actors.protocol.resources import SCALAR_NAMES, Resources, format_ranges, from_millis
from actors.security.acl import VIEW_AGENTS, VIEW_FRAMEWORKS, VIEW_TASKS

#: Mesos' master/tasks_* figures: gauges of tasks in a state now ...
ACTIVE_STATES = (TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                 TaskState.TASK_KILLING, TaskState.TASK_UNREACHABLE)
#: ... and counters of tasks that reached a terminal state since the master started.
ENDED_STATES = (TaskState.TASK_FINISHED, TaskState.TASK_FAILED, TaskState.TASK_KILLED, TaskState.TASK_LOST,
                TaskState.TASK_ERROR, TaskState.TASK_DROPPED, TaskState.TASK_GONE,
                TaskState.TASK_GONE_BY_OPERATOR)
#: The scalars every resources object shows, present or not (as Mesos).
SHOWN = ("cpus", "mem", "disk", "gpus")
#: /tasks answers at most this many tasks (Mesos' default limit is 100).
TASKS_LIMIT = 100
TASKS_MAX_LIMIT = 100_000


class Viewer:
    """Who is looking, and what the master's ACLs let them see.  ``Viewer(None)`` with no
    ACLs, or the master's own principals, see everything."""

    __slots__ = ("principal", "acl")

    def __init__(self, principal: str | None, acl: Any = None) -> None:
        self.principal = principal
        self.acl = acl

    def may(self, action: str, obj: str | None = None) -> bool:
        return self.acl is None or bool(self.acl.check(action, self.principal, obj))


EVERYONE = Viewer(None)


def resources(res: Resources) -> dict[str, Any]:
    """Mesos' JSON form: every shown scalar (0 when absent), others as they are, ranges
    as ``"[31000-32000]"``.  Shared between equal values: do not change what it answers."""
    seen = _RESOURCES_BY_ID.get(id(res))
    if seen is not None and seen[0] is res:
        return seen[1]
    out = _RESOURCES.get(res)
    if out is not None:
        _remember(res, out)
        return out
    s = res.scalar_map()
    out = {k: from_millis(s.get(k, 0)) for k in SHOWN}
    for k, millis in s.items():
        if k not in out:
            out[k] = from_millis(millis)
    for k, ranges in res.range_items():
        out[k] = f"[{format_ranges(ranges)}]"
    if len(_RESOURCES) >= _RESOURCES_MAX:
        _RESOURCES.clear()
    _RESOURCES[res] = out
    _remember(res, out)
    return out


def _remember(res: Resources, out: dict[str, Any]) -> None:
    if len(_RESOURCES_BY_ID) >= _RESOURCES_MAX:
        _RESOURCES_BY_ID.clear()
    _RESOURCES_BY_ID[id(res)] = (res, out)


#: Renderings of the resources values met lately (tasks share a few shapes, and the
#: codec shares equal values): by equal value, and by the very object (which holds it).
_RESOURCES: dict[Resources, dict[str, Any]] = {}
_RESOURCES_BY_ID: dict[int, tuple[Resources, dict[str, Any]]] = {}
_RESOURCES_MAX = 16384


def _labels(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs]


def task(t: TaskRec) -> dict[str, Any]:
    """One task as Mesos' ``/state`` shows it (kept with the task until its state, status
    or agent changes: a large cluster's tasks mostly run on unchanged)."""
    seen = t.view
    if seen is not None and seen[0] is t.status and seen[1] is t.state and seen[2] == t.agent_id:
        return seen[3]
    out = _task(t)
    t.view = (t.status, t.state, t.agent_id, out)
    return out


def _task(t: TaskRec) -> dict[str, Any]:
    info = t.task
    out: dict[str, Any] = {
        "id": info.task_id, "name": info.name, "framework_id": t.framework_id, "executor_id": t.executor_id,
        "slave_id": t.agent_id, "state": t.state.name, "resources": resources(t.resources), "role": t.role,
        "statuses": [], "labels": _labels(info.labels),
    }
    st = t.status
    if st is not None:
        status: dict[str, Any] = {"state": st.state.name, "timestamp": st.timestamp}
        if st.reason is not None:
            status["reason"] = st.reason.name
        if st.message:
            status["message"] = st.message
        cs = st.container_status
        if cs is not None:
            status["container_status"] = {
                "container_id": {"value": cs.container_id},
                "network_infos": [{"ip_addresses": [{"ip_address": ip} for ip in cs.ip_addresses]}],
                "executor_pid": cs.executor_pid}
        out["statuses"] = [status]
    discovery = getattr(info, "discovery", None)
    if discovery is not None:
        out["discovery"] = discovery.to_dict() if hasattr(discovery, "to_dict") else discovery
    return out


def _user_of(fw: FrameworkRec) -> str:
    return fw.info.user or ""


def _tasks(fw: FrameworkRec, recs: Iterable[TaskRec], viewer: Viewer) -> list[dict[str, Any]]:
    if viewer.acl is not None and not viewer.may(VIEW_TASKS, _user_of(fw)):
        return []
    return [task(t) for t in recs]


def framework(master: MasterCore, fw: FrameworkRec, viewer: Viewer = EVERYONE,
              with_tasks: bool = True, parts: bool = False) -> dict[str, Any]:
    """One framework as Mesos' ``/state`` shows it (``with_tasks`` false: no task lists;
    ``parts``: empty lists, and in ``_parts`` how long each is, for :func:`part`)."""
    info = fw.info
    offered = [master.offers[o] for o in sorted(fw.offers) if o in master.offers]
    out: dict[str, Any] = {
        "id": fw.id, "name": info.name, "pid": master.address_text(fw.address) if fw.address is not None else "",
        "hostname": info.hostname, "user": info.user, "role": info.roles[0] if info.roles else "*",
        "roles": list(info.roles), "principal": master.framework_principal(fw) or "",
        "active": fw.connected and fw.removed_at is None, "connected": fw.connected and fw.removed_at is None,
        "recovered": fw.address is None and fw.removed_at is None,
        "registered_time": fw.registered_at, "reregistered_time": fw.subscribed_at or fw.registered_at,
        "unregistered_time": fw.removed_at or 0.0, "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint, "capabilities": [c.name for c in info.capabilities],
        "labels": _labels(info.labels), "suppressed_roles": sorted(fw.suppressed),
        "offered_resources": resources(Resources.total([o.resources for o in offered])),
    }
    if not with_tasks:
        return out
    used = {k: from_millis(fw.used.get(k, 0)) for k in SHOWN}
    used.update((k, from_millis(v)) for k, v in fw.used.items() if k not in used)
    out["used_resources"] = out["resources"] = used
    out["offers"] = [{"id": o.offer.offer_id, "framework_id": o.framework_id, "slave_id": o.agent_id,
                      "role": o.role, "resources": resources(o.resources)} for o in offered]
    out["executors"] = []
    if parts:
        seen = viewer.acl is None or viewer.may(VIEW_TASKS, _user_of(fw))
        out["tasks"], out["unreachable_tasks"], out["completed_tasks"] = [], [], []
        out["_parts"] = {name: len(_task_list(fw, name)) if seen else 0 for name in TASK_LISTS}
        return out
    out["tasks"] = _tasks(fw, fw.tasks.values(), viewer)
    out["unreachable_tasks"] = _tasks(fw, fw.unreachable.values(), viewer)
    out["completed_tasks"] = _tasks(fw, fw.completed, viewer)
    return out


TASK_LISTS = ("tasks", "unreachable_tasks", "completed_tasks")


def _task_list(fw: FrameworkRec, name: str) -> Any:
    if name == "tasks":
        return fw.tasks.values()
    if name == "unreachable_tasks":
        return fw.unreachable.values()
    if name == "completed_tasks":
        return fw.completed
    raise ValueError(f"no task list {name!r}")


def agent(master: MasterCore, a: AgentRec) -> dict[str, Any]:
    """One agent as Mesos' ``/state`` and ``/slaves`` show it (kept with the agent until
    its resources or reachability change).  Shared: do not change what it answers."""
    seen = a.view
    if (seen is not None and seen[0] is a.allocated and seen[1] is a.offered and seen[2] is a.total
            and seen[3] == a.reachable and seen[4] is a.info and seen[5] == a.addr_text):
        return seen[6]
    info = a.info
    out = {
        "id": a.id, "pid": a.addr_text, "hostname": info.hostname,
        "http_address": info.http_address,
        "registered_time": a.registered_at, "active": a.reachable,
        "resources": resources(a.total), "used_resources": resources(a.allocated),
        "offered_resources": resources(a.offered), "unreserved_resources": resources(a.total),
        "reserved_resources": {}, "attributes": dict(info.attributes), "capabilities": list(info.capabilities),
        "version": VERSION,
    }
    a.view = (a.allocated, a.offered, a.total, a.reachable, a.info, a.addr_text, out)
    return out


def _visible_frameworks(master: MasterCore, frameworks: Iterable[FrameworkRec], viewer: Viewer) -> list[FrameworkRec]:
    if viewer.acl is None:
        return list(frameworks)
    return [f for f in frameworks if viewer.may(VIEW_FRAMEWORKS, _user_of(f))]


def _agents(master: MasterCore, viewer: Viewer) -> list[AgentRec]:
    if viewer.acl is not None and not viewer.may(VIEW_AGENTS):
        return []
    return sorted(master.agents.values(), key=lambda a: a.id)


def identity(master: MasterCore, now: float) -> dict[str, Any]:
    """Who this master is (the first keys of ``/state``)."""
    pid = master.flags.get("pid", "")
    return {
        "id": master.master_id, "pid": pid, "hostname": master.flags.get("hostname", ""),
        "http_address": master.flags.get("http_address", ""), "version": VERSION,
        "leader": pid, "start_time": master.started_at, "elected_time": master.started_at,
        "uptime_secs": now - master.started_at,
    }


def state(master: MasterCore, now: float, viewer: Viewer = EVERYONE, parts: bool = False) -> dict[str, Any]:
    """Mesos' ``/state``.  ``parts``: without its long lists (agents, each framework's
    tasks), which :func:`part` gives a page at a time; ``_parts`` says how long each is."""
    agents = _agents(master, viewer)
    reachable = sum(1 for a in master.agents.values() if a.reachable)
    out = identity(master, now)
    live = _visible_frameworks(master, sorted(master.frameworks.values(), key=_by_id), viewer)
    done = _visible_frameworks(master, reversed(master.completed_frameworks), viewer)
    out.update({
        "activated_slaves": reachable, "deactivated_slaves": 0,
        "unreachable_slaves": len(master.agents) - reachable,
        "slaves": [] if parts else [agent(master, a) for a in agents],
        "recovered_slaves": sorted(master.recovering) if viewer.acl is None or viewer.may(VIEW_AGENTS) else [],
        "frameworks": [framework(master, f, viewer, parts=parts) for f in live],
        "completed_frameworks": [framework(master, f, viewer, parts=parts) for f in done],
        "orphan_tasks": [], "unregistered_frameworks": [],
        "roles": roles(master, now)["roles"],
        "flags": flags(master),
    })
    if parts:
        out["_parts"] = {"slaves": len(agents)}
    return out


#: The most agents or tasks one page of a view holds (see :func:`part`).
PAGE = 5000


def part(master: MasterCore, viewer: Viewer, which: str, offset: int, limit: int = PAGE) -> list[dict[str, Any]]:
    """A page of one of a view's long lists: ``slaves``, or ``FRAMEWORK_ID/LIST`` (``tasks``,
    ``unreachable_tasks``, ``completed_tasks``; a completed framework's too), from
    ``offset`` in the master's own order.  Pages are rendered one message at a time, so
    that the master handles others in between: a view in pages is not a snapshot of one
    instant (a task that moves between lists meanwhile may show twice or not at all)."""
    from itertools import islice

    if offset < 0 or not 0 < limit <= PAGE:
        raise ValueError(f"offset must be at least 0 and limit in 1..{PAGE}")
    if which == "slaves":
        if viewer.acl is not None and not viewer.may(VIEW_AGENTS):
            return []
        return [agent(master, a) for a in islice(master.agents.values(), offset, offset + limit)]
    fid, _, name = which.partition("/")
    fw = master.frameworks.get(fid) or next((f for f in master.completed_frameworks if f.id == fid), None)
    if fw is None or name not in TASK_LISTS:
        raise ValueError(f"no such part: {which!r}")
    if not _visible_frameworks(master, [fw], viewer):
        return []
    return _tasks(fw, islice(_task_list(fw, name), offset, offset + limit), viewer)


def _by_id(f: FrameworkRec) -> str:
    return f.id


def state_summary(master: MasterCore, now: float, viewer: Viewer = EVERYONE) -> dict[str, Any]:
    """Mesos' ``/state-summary``: agents and frameworks with their tasks counted by state
    (a framework's completed tasks included), no tasks.  The counts are kept as tasks
    change: no running task is walked here."""
    zeros = dict.fromkeys([s.name for s in TaskState], 0)
    slaves_of: dict[str, list[str]] = {}
    agents = []
    for a in _agents(master, viewer):
        base = agent(master, a)
        key = (tuple(a.states.items()), tuple(a.frameworks))
        seen = a.summary
        if seen is not None and seen[0] is base and seen[1] == key:
            entry = seen[2]
        else:
            entry = dict(base)
            entry.update(zeros)
            for s, n in a.states.items():
                if n:
                    entry[s.name] = n
            entry["framework_ids"] = sorted(a.frameworks)
            a.summary = (base, key, entry)
        for fid in a.frameworks:
            slaves_of.setdefault(fid, []).append(a.id)
        agents.append(entry)
    fws = []
    for f in _visible_frameworks(master, sorted(master.frameworks.values(), key=_by_id), viewer):
        entry = framework(master, f, viewer, with_tasks=False)
        entry.update(zeros)
        for s, n in f.states.items():
            if n:
                entry[s.name] = n
        for t in f.completed:
            entry[t.state.name] += 1
        entry["slave_ids"] = slaves_of.get(f.id, [])
        fws.append(entry)
    out = identity(master, now)
    out.update({"slaves": agents, "frameworks": fws})
    return out


def frameworks_view(master: MasterCore, now: float, viewer: Viewer = EVERYONE,
                    framework_id: str | None = None, parts: bool = False) -> dict[str, Any]:
    """Mesos' ``/frameworks`` (``framework_id``: that one only; ``parts``: as :func:`state`)."""
    live = sorted(master.frameworks.values(), key=_by_id)
    done = list(reversed(master.completed_frameworks))
    if framework_id:
        live = [f for f in live if f.id == framework_id]
        done = [f for f in done if f.id == framework_id]
    return {"frameworks": [framework(master, f, viewer, parts=parts)
                           for f in _visible_frameworks(master, live, viewer)],
            "completed_frameworks": [framework(master, f, viewer, parts=parts)
                                     for f in _visible_frameworks(master, done, viewer)],
            "unregistered_frameworks": []}


def agents_view(master: MasterCore, now: float, viewer: Viewer = EVERYONE,
                slave_id: str | None = None) -> dict[str, Any]:
    """Mesos' ``/slaves`` (``slave_id``: that one only)."""
    agents = [a for a in _agents(master, viewer) if not slave_id or a.id == slave_id]
    return {"slaves": [agent(master, a) for a in agents if a.reachable],
            "recovered_slaves": [], "unreachable_slaves": [
                {"id": a.id, "hostname": a.info.hostname} for a in agents if not a.reachable]}


def tasks_view(master: MasterCore, now: float, viewer: Viewer = EVERYONE, limit: int = TASKS_LIMIT,
               offset: int = 0, order: str = "des", framework_id: str | None = None,
               task_id: str | None = None) -> dict[str, Any]:
    """Mesos' ``/tasks``: tasks of live and completed frameworks, by framework id, then
    active (in launch order), unreachable, completed (in completion order); ``order``
    ``asc``, or ``des`` (the reverse: newest first); ``offset`` and ``limit`` applied after
    the filters.  Only what the page holds is walked."""
    from itertools import islice

    if order not in ("asc", "des"):
        raise ValueError(f"order must be asc or des, not {order!r}")
    if not 0 < limit <= TASKS_MAX_LIMIT or offset < 0:
        raise ValueError(f"limit must be in 1..{TASKS_MAX_LIMIT} and offset at least 0")
    des = order == "des"
    fws = sorted([*master.frameworks.values(), *master.completed_frameworks], key=_by_id, reverse=des)
    picked: list[TaskRec] = []
    skip = offset
    for f in _visible_frameworks(master, fws, viewer):
        if len(picked) >= limit:
            break
        if framework_id and f.id != framework_id:
            continue
        if viewer.acl is not None and not viewer.may(VIEW_TASKS, _user_of(f)):
            continue
        lists: list[Any]
        if task_id:
            found = f.tasks.get(task_id) or f.unreachable.get(task_id)
            if found is None and task_id in f.completed_ids:
                found = next((t for t in f.completed if t.task_id == task_id), None)
            lists = [[found] if found is not None else []]
        else:
            lists = [f.tasks.values(), f.unreachable.values(), f.completed]
            if des:
                lists.reverse()
        for lst in lists:
            n = len(lst)
            if skip >= n:
                skip -= n
                continue
            source = reversed(lst) if des else iter(lst)
            for t in islice(source, skip, skip + limit - len(picked)):
                picked.append(t)
            skip = 0
            if len(picked) >= limit:
                break
    return {"tasks": [task(t) for t in picked]}


def roles(master: MasterCore, now: float) -> dict[str, Any]:
    """Mesos' ``/roles``: every role known (by weight, quota, frameworks or resources),
    with its weight, quota, allocated, offered and used resources and dominant share."""
    ledger = master.ledger
    names = set(ledger.roles()) | set(master.weights) | set(master.quotas)
    by_role: dict[str, list[str]] = {}
    for f in master.frameworks.values():
        for r in f.info.roles:
            by_role.setdefault(r, []).append(f.id)
            names.add(r)
    totals = _cluster_total(master)
    out = []
    for r in sorted(names):
        allocated = ledger.get(r, "allocated")
        q = master.quotas.get(r)
        share = 0.0
        a = allocated.scalar_map()
        for k, total in totals.items():
            if total > 0 and a.get(k, 0):
                share = max(share, a[k] / total)
        out.append({
            "name": r, "weight": master.weights.get(r, 1.0),
            "quota": {"role": r, "guarantee": q.to_dict()["guarantee"] if q else {},
                      "limit": q.to_dict()["limit"] if q else {}},
            "allocated": resources(allocated), "offered": resources(ledger.get(r, "offered")),
            "used": resources(ledger.get(r, "used")), "resources": resources(allocated),
            "dominant_share": round(share, 6), "frameworks": sorted(by_role.get(r, [])),
        })
    return {"roles": out}


def _cluster_total(master: MasterCore) -> dict[str, int]:
    """The reachable agents' scalars, summed (fixed-point millis)."""
    total: dict[str, int] = {}
    for a in master.agents.values():
        if a.reachable:
            for k, v in a.total.scalar_map().items():
                total[k] = total.get(k, 0) + v
    return total


def quota(master: MasterCore) -> dict[str, Any]:
    """Mesos' ``/quota``."""
    return {"infos": [{"role": r, **q.to_dict()} for r, q in sorted(master.quotas.items())]}


def weights(master: MasterCore) -> list[dict[str, Any]]:
    """Mesos' ``/weights``."""
    return [{"role": r, "weight": w} for r, w in sorted(master.weights.items())]


#: Settings never shown (where secrets are found).
SECRET_SETTINGS = frozenset({"secrets_file", "secrets"})


def flags(master: MasterCore) -> dict[str, Any]:
    """Mesos' ``/flags``: the master's settings, secrets left out, values as text."""
    return flags_of(master.flags)


def flags_of(settings: dict[str, Any]) -> dict[str, str]:
    """Settings as Mesos shows flags: secrets left out, values as text."""
    return {k: v if isinstance(v, str) else _flag_text(v)
            for k, v in sorted(settings.items()) if k not in SECRET_SETTINGS}


def _flag_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list, tuple)):
        import json
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def metrics(master: MasterCore, now: float, received: int = 0, sent: int = 0) -> dict[str, float]:
    """The master's half of ``/metrics/snapshot`` (the allocator gives the other half:
    :func:`actors.allocator.metrics.snapshot`; :func:`merge` joins them)."""
    out: dict[str, float] = {}
    active, ended = master.tasks.active, master.tasks.ended
    for s in ACTIVE_STATES:
        out["master/tasks_" + s.name[5:].lower()] = active.get(s, 0)
    for s in ENDED_STATES:
        out["master/tasks_" + s.name[5:].lower()] = ended.get(s, 0)
    reachable = 0
    for a in master.agents.values():
        if a.reachable:
            reachable += 1
    out["master/slaves_active"] = out["master/slaves_connected"] = reachable
    out["master/slaves_disconnected"] = out["master/slaves_unreachable"] = len(master.agents) - reachable
    out["master/slaves_inactive"] = 0
    out["master/slave_registrations_recovering"] = len(master.recovering)
    connected = sum(1 for f in master.frameworks.values() if f.connected)
    out["master/frameworks_active"] = out["master/frameworks_connected"] = connected
    out["master/frameworks_disconnected"] = out["master/frameworks_inactive"] = len(master.frameworks) - connected
    out["master/frameworks_completed"] = len(master.completed_frameworks)
    out["master/outstanding_offers"] = len(master.offers)
    out["master/elected"] = 1
    out["master/uptime_secs"] = now - master.started_at
    used: dict[str, int] = {}
    for r in master.ledger.roles():
        for k, v in master.ledger.get(r, "allocated").scalar_map().items():
            used[k] = used.get(k, 0) + v
    for k in SHOWN:
        out[f"master/{k}_used"] = from_millis(used.get(k, 0))
    out["master/messages_received"] = received
    out["master/messages_sent"] = sent
    for name, n in sorted(master.counters.items()):
        out[f"master/{name}"] = n
    for name, n in sorted(master.stats.items()):
        out[f"master/messages_{name}"] = n
    for reason, n in sorted(master.drops.items()):
        out[f"master/messages_dropped/{reason}"] = n
    return out


def merge(master_part: dict[str, float], allocator_part: dict[str, float]) -> dict[str, float]:
    """One ``/metrics/snapshot``: the master's and the allocator's figures, with
    ``master/<r>_total`` and ``_percent`` from the allocator's totals."""
    out = {**master_part, **allocator_part}
    for k in SHOWN:
        total = float(allocator_part.get(f"allocator/mesos/resources/{k}/total", 0.0))
        used = float(master_part.get(f"master/{k}_used", 0.0))
        out[f"master/{k}_total"] = total
        out[f"master/{k}_percent"] = used / total if total > 0 else 0.0
    return dict(sorted(out.items()))


def write_state(master: MasterCore, now: float, write: Callable[[bytes], Any]) -> None:
    """``/state`` as JSON, handed to ``write`` in pieces of at most :data:`PAGE` agents or
    tasks (the simulator's ``state.json``): neither the whole text nor a rendering of every
    task is held at once, and nothing is kept with the tasks afterwards."""
    head = state(master, now, parts=True)
    head.pop("_parts")
    lists: list[tuple[Any, str, Any]] = [(head, "slaves", master.agents.values())]
    recs = {f.id: f for f in [*master.frameworks.values(), *master.completed_frameworks]}
    for f in head["frameworks"] + head["completed_frameworks"]:
        f.pop("_parts")
        for name in TASK_LISTS:
            lists.append((f, name, _task_list(recs[f["id"]], name)))
    marks = {}
    for i, (holder, name, _) in enumerate(lists):
        holder[name] = f"@@{i}@@"
        marks[f'"@@{i}@@"'.encode()] = i
    text = orjson.dumps(head)
    at = 0
    for mark, i in sorted(marks.items(), key=lambda kv: text.index(kv[0])):
        where = text.index(mark, at)
        write(text[at:where])
        write(b"[")
        holder, name, source = lists[i]
        first = True
        batch: list[Any] = []
        for rec in source:
            batch.append(agent(master, rec) if name == "slaves" else _task(rec))
            if len(batch) >= PAGE:
                write((b"" if first else b",") + orjson.dumps(batch)[1:-1])
                first, batch = False, []
        if batch:
            write((b"" if first else b",") + orjson.dumps(batch)[1:-1])
        write(b"]")
        at = where + len(mark)
    write(text[at:])


#: What ``render`` answers: endpoint -> the view (Mesos' paths without the slash).
ENDPOINTS = ("state", "state-summary", "frameworks", "slaves", "tasks", "roles", "quota", "weights", "flags",
             "health", "version", "metrics")


def encode(value: Any) -> bytes:
    """A view as gzip-compressed JSON (the body of a :class:`~actors.protocol.messages.ViewReply`)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)   # wbits 31: the gzip format
    return packer.compress(orjson.dumps(value)) + packer.flush()


def _int(params: dict[str, Any], key: str, default: int) -> int:
    v = params.get(key)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be an integer, not {v!r}") from None


def render(master: MasterCore, now: float, args: dict[str, Any], received: int = 0, sent: int = 0) -> Any:
    """One view by name, for a host's server: ``args`` holds ``endpoint`` (one of
    :data:`ENDPOINTS`), ``params`` (the query string's values) and ``principal`` (the
    authenticated caller, or None).  ValueError for a bad request, KeyError for an
    unknown endpoint."""
    endpoint = args.get("endpoint")
    params = args.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("params must be a map")
    principal = args.get("principal")
    viewer = Viewer(principal if isinstance(principal, str) else None, master.acl)
    if endpoint == "state":
        which = params.get("part")
        if which == "head":
            return state(master, now, viewer, parts=True)
        if which:
            return part(master, viewer, str(which), _int(params, "offset", 0), _int(params, "limit", PAGE))
        return state(master, now, viewer)
    if endpoint == "state-summary":
        return state_summary(master, now, viewer)
    if endpoint == "frameworks":
        return frameworks_view(master, now, viewer, params.get("framework_id") or None,
                               parts=params.get("part") == "head")
    if endpoint == "slaves":
        return agents_view(master, now, viewer, params.get("slave_id") or None)
    if endpoint == "tasks":
        return tasks_view(master, now, viewer, _int(params, "limit", TASKS_LIMIT), _int(params, "offset", 0),
                          str(params.get("order") or "des"), params.get("framework_id") or None,
                          params.get("task_id") or None)
    if endpoint == "roles":
        return roles(master, now)
    if endpoint == "quota":
        return quota(master)
    if endpoint == "weights":
        return weights(master)
    if endpoint == "flags":
        return {"flags": flags(master)}
    if endpoint == "health":
        return {"healthy": True}
    if endpoint == "version":
        return {"version": VERSION, "build_user": "", "git_sha": ""}
    if endpoint == "metrics":
        return metrics(master, now, received, sent)
    raise KeyError(endpoint)


__all__ = ["ENDPOINTS", "render", "SCALAR_NAMES", "Viewer", "EVERYONE", "state", "state_summary", "frameworks_view", "agents_view",
           "tasks_view", "roles", "quota", "weights", "flags", "metrics", "merge", "task", "resources"]
