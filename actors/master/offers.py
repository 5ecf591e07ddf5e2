"""The master's offers and launches: allocations turned into offers, offers declined,
rescinded or accepted, tasks and task groups validated and sent to their agents, and
launches not yet heard of sent again."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actors.master import validation as V
from actors.master.core import MasterCore
from actors.master.records import AgentRec, ExecutorRec, FrameworkRec, OfferRec, TaskRec
from actors.protocol import messages as M
from actors.protocol.messages import Reason, Source, TaskState
from actors.protocol.resources import DEFAULT_ROLE, EMPTY, Resources

TS = TaskState


def alloc_offers(master: MasterCore, m: M.AllocOffers, sender: Any) -> None:
    if sender != master.allocator or (master.authenticates and master.principal not in master.master_principals):
        master.drop("AllocOffers not from the allocator", sender)
        return
    now = master.now
    batches: dict[str, list[M.Offer]] = {}
    for a in m.allocations:
        fw = master.frameworks.get(a.framework_id)
        agent = master.agents.get(a.agent_id)
        if (fw is None or agent is None or not agent.reachable or not fw.connected
                or fw.address is None
                or not agent.total.contains(agent.allocated + agent.offered + a.resources.with_role(DEFAULT_ROLE))):
            # Stale: the framework or agent went away, or the view moved on.
            master.recover(a.framework_id, a.agent_id, a.role, a.resources, None)
            continue
        master.next_offer += 1
        offer_id = f"{master.master_id}-O{master.next_offer}"
        offer = M.Offer(offer_id, fw.id, agent.id, agent.info.hostname, a.role, a.resources,
                        agent.info.attributes)
        master.offers[offer_id] = OfferRec(offer, fw.id, agent.id, a.role, a.resources)
        fw.offers.add(offer_id)
        agent.offers.add(offer_id)
        agent.offered = agent.offered + a.resources.with_role(DEFAULT_ROLE)
        master.ledger.add(a.role, "offered", a.resources, now)
        batches.setdefault(fw.id, []).append(offer)
    for fid in sorted(batches):
        fw = master.frameworks[fid]
        master.counters["offers_sent"] += len(batches[fid])
        assert fw.address is not None
        master.send(fw.address, M.Offers(tuple(batches[fid])))


def take_offer(master: MasterCore, offer_id: str) -> OfferRec | None:
    """The offer is used up (accepted, declined or rescinded): no longer outstanding."""
    rec = master.offers.pop(offer_id, None)
    if rec is None:
        return None
    fw = master.frameworks.get(rec.framework_id)
    if fw is not None:
        fw.offers.discard(offer_id)
    agent = master.agents.get(rec.agent_id)
    if agent is not None:
        agent.offers.discard(offer_id)
        agent.offered = agent.offered.minus_saturating(rec.resources.with_role(DEFAULT_ROLE))
    master.ledger.sub(rec.role, "offered", rec.resources, master.now)
    return rec


def rescind(master: MasterCore, offer_id: str, recover: bool, notify: bool = True) -> None:
    rec = take_offer(master, offer_id)
    if rec is None:
        return
    master.counters["offers_rescinded"] += 1
    if recover:
        master.recover(rec.framework_id, rec.agent_id, rec.role, rec.resources, None)
    fw = master.frameworks.get(rec.framework_id)
    if notify and fw is not None and fw.connected and fw.address is not None:
        master.send(fw.address, M.Rescind(offer_id))


def decline(master: MasterCore, m: M.Decline, sender: Any) -> None:
    fw = master.framework_for(m.framework_id, sender, "DECLINE")
    if fw is None:
        return
    refuse = V.refuse_seconds(m.filters)
    for offer_id in m.offer_ids:
        rec = master.offers.get(offer_id)
        if rec is None or rec.framework_id != fw.id:
            master.stats["declined_unknown_offers"] += 1  # rescinded in flight: harmless
            continue
        take_offer(master, offer_id)
        master.counters["offers_declined"] += 1
        master.recover(fw.id, rec.agent_id, rec.role, rec.resources, refuse)


def accept(master: MasterCore, m: M.Accept, sender: Any) -> None:
    fw = master.framework_for(m.framework_id, sender, "ACCEPT")
    if fw is None:
        return
    refuse = V.refuse_seconds(m.filters)
    recs: list[OfferRec] = []
    unknown = None
    for offer_id in m.offer_ids:
        rec = master.offers.get(offer_id)
        if rec is None or rec.framework_id != fw.id:
            unknown = unknown or offer_id
            continue
        recs.append(rec)
    problem = V.accept_problem(m.offer_ids, unknown, [(r.agent_id, r.role) for r in recs])
    # The offers named are used up by this call, valid or not (as in Mesos).
    for rec in recs:
        take_offer(master, rec.offer.offer_id)
    if problem:
        for rec in recs:
            master.recover(fw.id, rec.agent_id, rec.role, rec.resources, None)
        master.reply_error(sender, "ACCEPT", problem)
        _drop_operations(master, fw, m.operations, Reason.REASON_INVALID_OFFERS, problem)
        return
    master.counters["offers_accepted"] += len(recs)
    agent = master.agents[recs[0].agent_id]
    role = recs[0].role
    available = EMPTY
    for rec in recs:
        available = available + rec.resources
    for op in m.operations:
        if isinstance(op, M.Launch):
            for task in op.task_infos:
                available = _launch_task(master, fw, agent, role, task, available)
        else:
            available = _launch_group(master, fw, agent, role, op, available)
    master.recover(fw.id, agent.id, role, available, refuse)


def _drop_operations(master: MasterCore, fw: FrameworkRec, ops: Iterable[M.Operation], reason: Reason,
                     why: str) -> None:
    state = TS.TASK_DROPPED if fw.partition_aware else TS.TASK_LOST
    for op in ops:
        tasks = op.task_infos if isinstance(op, M.Launch) else op.task_group
        for task in tasks:
            master.counters["tasks_refused"] += 1
            master.task_line(task.task_id, fw.id, task.agent_id, state, reason, why)
            master.send_update(fw, M.TaskStatus(task.task_id, state, Source.SOURCE_MASTER, reason,
                                                why, task.agent_id, "", master.now))


def _launch_task(master: MasterCore, fw: FrameworkRec, agent: AgentRec, role: str, task: M.TaskInfo,
                 available: Resources) -> Resources:
    problem, res = V.task_problem(fw, agent.id, role, task, set())
    if problem is None:
        problem = V.command_task_problem(task)
    reason = Reason.REASON_TASK_INVALID
    if problem is None and master.acl is not None:
        problem = V.user_unauthorized(master.acl, fw, master.framework_principal(fw), task)
        if problem is not None:
            reason = Reason.REASON_TASK_UNAUTHORIZED
    if problem is None and not available.contains(res):
        problem = (f"task {task.task_id} asks for {res} but only {available} "
                   f"is left of the offers")
    if problem is not None:
        _refuse_task(master, fw, task, reason, problem, agent.id)
        return available
    task = _with_agent(task, agent.id, res)
    t = TaskRec(fw.id, task, agent.id, task.task_id, role, res)
    _add_task(master, fw, agent, t)
    master.task_line(task.task_id, fw.id, agent.id, "launching")
    master.send(agent.address, M.RunTask(fw.info, task))
    return available - res


def _launch_group(master: MasterCore, fw: FrameworkRec, agent: AgentRec, role: str, op: M.LaunchGroup,
                  available: Resources) -> Resources:
    ex = op.executor
    seen: set[str] = set()
    prepared: list[tuple[M.TaskInfo, Resources]] = []
    ex_res = ex.resources
    if ex_res.role == DEFAULT_ROLE and role != DEFAULT_ROLE:
        ex_res = ex_res.with_role(role)
    problem = V.group_problem(op, ex_res, role)
    existing = agent.executors.get((fw.id, ex.executor_id))
    need = EMPTY if existing is not None else ex_res
    for task in op.task_group:
        if problem:
            break
        p, res = V.task_problem(fw, agent.id, role, task, seen)
        if p is None:
            p = V.group_task_problem(task, ex.executor_id)
        problem = p
        seen.add(task.task_id)
        need = need + res
        prepared.append((task, res))
    reason = Reason.REASON_TASK_GROUP_INVALID
    if problem is None and master.acl is not None:
        for task, _ in prepared:
            problem = V.user_unauthorized(master.acl, fw, master.framework_principal(fw), task)
            if problem is not None:
                reason = Reason.REASON_TASK_GROUP_UNAUTHORIZED
                break
    if problem is None and not available.contains(need):
        problem = f"the task group asks for {need} but only {available} is left of the offers"
    if problem is not None:
        for task in op.task_group:
            _refuse_task(master, fw, task, reason, problem, agent.id)
        return available
    ex = M.ExecutorInfo(ex.executor_id, fw.id, ex.type, ex_res, ex.name)
    if existing is None:
        ex_rec = ExecutorRec(fw.id, ex.executor_id, agent.id, role, ex_res)
        master.tasks.add_executor(agent, ex_rec)
        master.charge(agent, role, ex_res)
    else:
        ex_rec = existing
    group = []
    for task, res in prepared:
        task = _with_agent(task, agent.id, res, ex)
        t = TaskRec(fw.id, task, agent.id, ex.executor_id, role, res)
        _add_task(master, fw, agent, t, ex_rec)
        master.task_line(task.task_id, fw.id, agent.id, "launching", executor_id=ex.executor_id)
        group.append(task)
    master.send(agent.address, M.RunTaskGroup(fw.info, ex, tuple(group)))
    return available - need


def _refuse_task(master: MasterCore, fw: FrameworkRec, task: M.TaskInfo, reason: Reason, why: str,
                 agent_id: str) -> None:
    master.counters["tasks_refused"] += 1
    master.task_line(task.task_id, fw.id, agent_id, TS.TASK_ERROR, reason, why)
    master.send_update(fw, M.TaskStatus(task.task_id, TS.TASK_ERROR, Source.SOURCE_MASTER, reason,
                                        why, task.agent_id, "", master.now))


def _add_task(master: MasterCore, fw: FrameworkRec, agent: AgentRec, t: TaskRec,
              executor: ExecutorRec | None = None) -> None:
    master.tasks.place(fw, agent, t, executor)
    master.charge(agent, t.role, t.resources)
    master.counters["tasks_launched"] += 1
    master.launch_checks.append((master.now + master.launch_retry, fw.id, t.task_id))
    if not master.timer_pending("launches"):
        master.set_timer("launches", master.launch_retry)


def timer_launches(master: MasterCore) -> None:
    """Launches not yet heard of from their agent are sent again: a launch lost on the
    way would leave a task STAGING for ever.  The agent drops one it has already."""
    now = master.now
    q = master.launch_checks
    again: list[tuple[float, str, str]] = []
    while q and q[0][0] <= now + 1e-9:
        due, fid, tid = q.popleft()
        fw = master.frameworks.get(fid)
        t = fw.tasks.get(tid) if fw is not None else None
        if t is None or t.state != TS.TASK_STAGING:
            continue
        agent = master.agents.get(t.agent_id)
        if agent is None or not agent.reachable or fw is None:
            continue
        master.stats["launches_resent"] += 1
        if t.task.executor is None:
            master.send(agent.address, M.RunTask(fw.info, t.task))
        else:
            ex = t.task.executor
            group = tuple(x.task for x in agent.tasks.values()
                          if x.framework_id == fid and x.executor_id == t.executor_id
                          and x.state == TS.TASK_STAGING)
            master.send(agent.address, M.RunTaskGroup(fw.info, ex, group))
        again.append((now + min(600.0, 2 * (now - due + master.launch_retry)), fid, tid))
    q.extend(again)
    if q:
        master.set_timer("launches", max(0.0, min(x[0] for x in q) - now) if again else max(0.0, q[0][0] - now))


def revive_or_suppress(master: MasterCore, m: M.Revive | M.Suppress, sender: Any) -> None:
    call = "REVIVE" if isinstance(m, M.Revive) else "SUPPRESS"
    fw = master.framework_for(m.framework_id, sender, call)
    if fw is None:
        return
    bad = [r for r in m.roles if r not in fw.info.roles]
    if bad:
        master.reply_error(sender, call, f"roles {bad} are not the framework's")
        return
    roles = m.roles or fw.info.roles
    if isinstance(m, M.Revive):
        fw.suppressed.difference_update(roles)
        master.to_allocator(M.AllocRevive(fw.id, m.roles))
    else:
        fw.suppressed.update(roles)
        master.to_allocator(M.AllocSuppress(fw.id, m.roles))


def _with_agent(task: M.TaskInfo, agent_id: str, res: Resources,
                executor: M.ExecutorInfo | None = None) -> M.TaskInfo:
    return M.TaskInfo(task.task_id, task.name, agent_id, res, task.command,
                      executor if executor is not None else task.executor, task.labels,
                      task.kill_grace_seconds)
