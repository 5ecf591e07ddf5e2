"""The master's operator calls (weights and quota) and its views (state, summary)."""

from __future__ import annotations

from typing import Any

from actors.allocator.quota import Quota, QuotaError, validate
from actors.allocator.quota import from_wire as quota_from_wire
from actors.master.core import VERSION, MasterCore
from actors.master.offers import rescind
from actors.protocol import messages as M
from actors.security.acl import UPDATE_QUOTAS, UPDATE_WEIGHTS


def update_weights(master: MasterCore, m: M.UpdateWeights, sender: Any) -> None:
    bad = [(r, w) for r, w in m.weights if not w > 0]
    if bad:
        master.reply_error(sender, "UPDATE_WEIGHTS", f"weights must be positive: {bad}")
        return
    if master.acl is not None:
        denied = master.acl.first_denial(UPDATE_WEIGHTS, master.principal_of(), [r for r, _ in m.weights])
        if denied is not None:
            master.reply_error(sender, "UPDATE_WEIGHTS", denied.reason)
            return
    for role, w in m.weights:
        master.weights[role] = w
    if master.registry is not None:
        master.registry.put("weights", M.AllocUpdateWeights(tuple(sorted(master.weights.items()))))
    master.to_allocator(M.AllocUpdateWeights(m.weights))
    master.send(sender, M.QueryReply("weights", dict(sorted(master.weights.items()))))


def update_quota(master: MasterCore, m: M.UpdateQuota, sender: Any) -> None:
    if master.acl is not None:
        decision = master.acl.check(UPDATE_QUOTAS, master.principal_of(), m.role)
        if not decision:
            master.reply_error(sender, "UPDATE_QUOTA", decision.reason)
            return
    try:
        quota = Quota(quota_from_wire(m.guarantee, "guarantee"), quota_from_wire(m.limit, "limit"))
        new = dict(master.quotas)
        if quota.is_empty():
            new.pop(m.role, None)
        else:
            new[m.role] = quota
        validate(new)
    except QuotaError as e:
        master.reply_error(sender, "UPDATE_QUOTA", str(e))
        return
    master.quotas = new
    if master.registry is not None:
        if quota.is_empty():
            master.registry.delete("quota/" + m.role)
        else:
            master.registry.put("quota/" + m.role, M.AllocUpdateQuota(m.role, m.guarantee, m.limit))
    master.to_allocator(M.AllocUpdateQuota(m.role, m.guarantee, m.limit))
    # Outstanding offers of the role's subtree go back, to be made again under the new quota.
    for offer_id in sorted(master.offers):
        rec = master.offers[offer_id]
        if rec.role == m.role or rec.role.startswith(m.role + "/"):
            rescind(master, offer_id, recover=True)
    master.send(sender, M.QueryReply("quota", {r: q.to_dict() for r, q in sorted(master.quotas.items())}))


def summary(master: MasterCore, now: float) -> dict[str, Any]:
    """A few figures: agents, frameworks, offers, counters, the roles' shares."""
    return {
        "master_id": master.master_id,
        "agents": sum(1 for a in master.agents.values() if a.reachable),
        "agents_unreachable": sum(1 for a in master.agents.values() if not a.reachable),
        "agents_recovering": len(master.recovering),
        "recovered_at": master.recovered_at,
        "frameworks": len(master.frameworks),
        "outstanding_offers": len(master.offers),
        "counters": dict(master.counters),
        "roles": master.ledger.view(now),
        "uptime_seconds": now - master.started_at,
    }


def state(master: MasterCore, now: float) -> dict[str, Any]:
    """Everything the master knows: agents, frameworks, tasks, roles, weights, quota."""
    return {
        "master_id": master.master_id,
        "http_address": master.flags.get("http_address", ""),
        "version": VERSION,
        "uptime_seconds": now - master.started_at,
        "agents": [
            {"id": a.id, "hostname": a.info.hostname, "reachable": a.reachable,
             "address": a.addr_text, "resources": a.total.to_dict(),
             "allocated": a.allocated.to_dict(), "offered": a.offered.to_dict(),
             "tasks": len(a.tasks), "attributes": dict(a.info.attributes), "principal": a.principal}
            for a in sorted(master.agents.values(), key=lambda a: a.id)
        ],
        "frameworks": [
            {"id": f.id, "name": f.info.name, "roles": list(f.info.roles),
             "capabilities": [str(c) for c in f.info.capabilities], "connected": f.connected,
             "active_tasks": len(f.tasks), "unreachable_tasks": len(f.unreachable),
             "completed_tasks": len(f.completed), "offers": len(f.offers),
             "suppressed_roles": sorted(f.suppressed), "principal": master.framework_principal(f),
             "user": f.info.user}
            for f in sorted(master.frameworks.values(), key=lambda f: f.id)
        ],
        "tasks": [
            {"id": t.task_id, "framework_id": t.framework_id, "agent_id": t.agent_id,
             "executor_id": t.executor_id, "role": t.role, "state": str(t.state),
             "resources": t.resources.to_dict()}
            for f in sorted(master.frameworks.values(), key=lambda f: f.id)
            for t in [*f.tasks.values(), *f.unreachable.values(), *f.completed]
        ],
        "roles": master.ledger.view(now),
        "weights": dict(sorted(master.weights.items())),
        "quotas": {r: q.to_dict() for r, q in sorted(master.quotas.items())},
        "counters": dict(master.counters),
    }
