"""The master's agents: registration and re-registration, health checks, and agents
cut off (unreachable) or gone for good (removed)."""

from __future__ import annotations

from typing import Any

from actors.master.core import MasterCore
from actors.master.offers import rescind
from actors.master.records import AgentRec, ExecutorRec, FrameworkRec, TaskRec
from actors.protocol import messages as M
from actors.protocol.messages import Reason, TaskState
from actors.protocol.resources import DEFAULT_ROLE, Resources
from actors.security.acl import REGISTER_AGENTS

TS = TaskState


def register(master: MasterCore, m: M.RegisterAgent, sender: Any) -> None:
    addr_text = master.address_text(sender)
    if unauthorized(master, sender, addr_text, ""):
        return
    known = master.agent_by_addr.get(addr_text)
    if known is not None and known in master.agents:
        old = master.agents[known]
        if not m.incarnation or m.incarnation == old.incarnation:
            # A retried registration: answer again, change nothing.
            master.send(sender, M.AgentRegistered(known, master.master_id, master.ping_interval))
            return
        # A new incarnation at a known address: the agent restarted without its
        # checkpoint, and what ran under the old id is gone with it.
        remove(master, old, Reason.REASON_AGENT_RESTARTED, f"agent {old.id} restarted as a new agent")
    lost = master.unreachable_by_addr.get(addr_text)
    if lost is not None and lost in master.agents:
        remove(master, master.agents[lost], Reason.REASON_AGENT_RESTARTED,
               f"agent {lost}, unreachable, came back as a new agent")
    for old_id in [i for i, ar in master.recovering.items() if ar.address == addr_text]:
        # The registry's agent at this address will not re-register: it came back new.
        master.log.warning("master: agent %s came back as a new agent; removing it", old_id)
        master.recovered(old_id)
        master.removed_agents.add(old_id)
        master.unsave("agent/" + old_id)
    total = m.agent_info.resources
    if total.role != DEFAULT_ROLE or total.is_empty():
        master.send(sender, M.AgentRefused("an agent must offer unreserved resources"))
        return
    if total.millis("gpus") % 1000:
        master.send(sender, M.AgentRefused("gpus must be a whole number"))
        return
    master.next_agent += 1
    agent_id = f"{master.master_id}-S{master.next_agent}"
    admit(master, agent_id, sender, addr_text, m.agent_info, total, m.incarnation)
    master.send(sender, M.AgentRegistered(agent_id, master.master_id, master.ping_interval))
    master.to_allocator(M.AllocAddAgent(agent_id, total, (), m.agent_info.capabilities))


def admit(master: MasterCore, agent_id: str, sender: Any, addr_text: str, info: M.AgentInfo,
          total: Resources, incarnation: str, save: bool = True) -> AgentRec:
    rec = AgentRec(agent_id, sender, addr_text, info, total, master.now, incarnation=incarnation,
                   principal=master.principal_of())
    master.agents[agent_id] = rec
    master.agent_by_addr[addr_text] = agent_id
    schedule_ping(master, agent_id)
    if save:
        master.save_agent(rec)
    return rec


def retried_reregistration(master: MasterCore, agent_id: str, sender: Any) -> bool:
    """A re-registration the host recognised as a retry of the last one handled from
    ``agent_id`` (the same bytes): answered again - the agent is alive - where the agent
    is still known, reachable, at the same address and of the same principal.  False: it
    is to be handled in full."""
    rec = master.agents.get(agent_id)
    if rec is None or not rec.reachable:
        return False
    if master.authenticates and rec.principal != master.principal:
        return False   # decoded, checked and dropped as any other
    if master.address_text(sender) != rec.addr_text:
        return False   # the agent moved: the full path updates its address
    rec.missed_pings, rec.pong_pending = 0, False
    master.stats["reregistrations_retried"] += 1
    master.send(sender, M.AgentReregistered(agent_id, master.master_id, master.ping_interval))
    return True


def reregister(master: MasterCore, m: M.ReregisterAgent, sender: Any) -> None:
    if unauthorized(master, sender, None, m.agent_info.id):
        return
    info = m.agent_info
    agent_id = info.id
    if not agent_id:
        master.send(sender, M.AgentRefused("re-registration needs the agent's id"))
        return
    addr_text = master.address_text(sender)
    rec = master.agents.get(agent_id)
    if rec is not None and rec.reachable:
        # Still known and reachable: a retried re-registration, or the agent moved.
        if rec.addr_text != addr_text:
            master.agent_by_addr.pop(rec.addr_text, None)
            rec.address, rec.addr_text = sender, addr_text
            master.agent_by_addr[addr_text] = agent_id
            master.save_agent(rec)
        rec.missed_pings, rec.pong_pending = 0, False
        if info.http_address != rec.info.http_address:   # restarted with another HTTP port
            old = rec.info
            rec.info = M.AgentInfo(old.hostname, old.resources, old.attributes, old.id, old.capabilities,
                                   info.http_address)
            master.save_agent(rec)
        if m.incarnation and m.incarnation != rec.incarnation:
            # The agent restarted and recovered: what it does not report did not survive.
            rec.incarnation = m.incarnation
            _drop_missing(master, rec, {(at.framework_id, at.task.task_id) for at in m.tasks})
        master.send(sender, M.AgentReregistered(agent_id, master.master_id, master.ping_interval))
        return
    other = master.agent_by_addr.get(addr_text)
    if other is not None and other != agent_id and other in master.agents:
        # Another agent registered from this address since: this one is older news.
        remove(master, master.agents[other], Reason.REASON_AGENT_RESTARTED,
               f"agent {other} was replaced at {addr_text} by agent {agent_id}")
    lost_before: set[tuple[str, str]] = set()
    if rec is not None:
        lost_before = rec.lost_tasks
        forget(master, rec)
    known = master.recovering.get(agent_id)
    # The registry's record as the agent tells it again (after a failover): not rewritten.
    unchanged = known is not None and known.reachable and known.address == addr_text and known.info == info
    master.recovered(agent_id)
    now = master.now
    total = info.resources.with_role(DEFAULT_ROLE)
    rec = admit(master, agent_id, sender, addr_text, info, total, m.incarnation, save=not unchanged)
    for fi in m.frameworks:
        if fi.id and fi.id not in master.frameworks and fi.id not in master.removed_frameworks:
            # Learned from the agent: the framework may re-subscribe and keep its tasks.
            master.frameworks[fi.id] = FrameworkRec(fi.id, fi, None, now, connected=False)
    # What the agent holds, summed per framework and role: charged once per role, and
    # told to the allocator as one allocation per framework and role (a failover brings
    # every agent back at once: this loop is the new master's cost of a cluster).
    held: dict[tuple[str, str], list[Resources]] = {}
    used: dict[str, list[Resources]] = {}
    tasks = master.tasks
    for ex in m.executors:
        fw = master.frameworks.get(ex.framework_id)
        if fw is None or ex.resources.is_empty():
            continue
        role = ex.resources.role
        tasks.add_executor(rec, ExecutorRec(ex.framework_id, ex.executor_id, agent_id, role, ex.resources))
        held.setdefault((ex.framework_id, role), []).append(ex.resources)
    for fi in m.frameworks:
        fw = master.frameworks.get(fi.id)
        if fw is not None and not fw.connected and fw.failover_deadline is None:
            master.start_failover(fw, now)
    reported: set[tuple[str, str]] = set()
    running, terminal = TS.TASK_RUNNING, M.TERMINAL_STATES
    executors = rec.executors
    for at in m.tasks:
        fid, task = at.framework_id, at.task
        tid = task.task_id
        fw = master.frameworks.get(fid)
        if lost_before:
            reported.add((fid, tid))
        if fw is None:
            continue
        if at.state in terminal:
            # Ended while the agent was away: its update is still on its way (or was
            # acknowledged already); the task is no longer unreachable.
            gone = tasks.reached(fw, tid)
            if gone is not None:
                tasks.set_state(gone, at.state)
                tasks.complete(fw, gone)
            continue
        t = tasks.reached(fw, tid)
        res = task.resources
        role = res.role
        if t is None:
            t = TaskRec(fid, task, agent_id, at.executor_id, role, res, at.state)
            was_unreachable = False
        else:
            tasks.set_state(t, at.state)
            t.released, t.agent_id = False, agent_id
            was_unreachable = True
        tasks.place(fw, rec, t, executors.get((fid, at.executor_id)) if executors else None)
        key = (fid, role)
        items = held.get(key)
        if items is None:
            held[key] = [res]
        else:
            items.append(res)
        if at.state is running:
            if t.running:
                master.count_used(t, res, now)
            else:
                t.running, t.used = True, res
                items = used.get(role)
                if items is None:
                    used[role] = [res]
                else:
                    items.append(res)
        if was_unreachable and fw.connected and fw.address is not None:
            # The framework was told the task was unreachable (or lost): it is back.
            # (After a master failover the framework reconciles; the agent resends
            # its own unacknowledged updates.)
            why = f"agent {agent_id} re-registered"
            master.task_line(tid, fid, agent_id, at.state, Reason.REASON_AGENT_REREGISTERED, why, t.executor_id)
            master.send_update(fw, master.master_status(t, at.state, Reason.REASON_AGENT_REREGISTERED, why))
    allocated: list[M.Allocation] = []
    role_sums: dict[str, Resources] = {}
    held_count: dict[str, int] = {}
    for (fid, role), items in sorted(held.items()):
        res = items[0] if len(items) == 1 else Resources.total(items, role)
        allocated.append(M.Allocation(fid, role, agent_id, res))
        prev = role_sums.get(role)
        role_sums[role] = res if prev is None else Resources.total([prev, res], role)
        held_count[role] = held_count.get(role, 0) + len(items)
    if role_sums:
        # A new record: what it holds is all it has allocated (the sum of charge's).
        rec.allocated = Resources.total(list(role_sums.values()), DEFAULT_ROLE)
    for role, res in role_sums.items():
        master.ledger.add(role, "allocated", res, now)
    for role, items in used.items():
        # Every resource the role holds here is a running task's: its use is its sum.
        same = held_count[role] == len(items)
        master.ledger.add(role, "used", role_sums[role] if same else Resources.total(items, role), now)
    for fid, tid in sorted(lost_before - reported):
        # Cut off with the agent, and not on it any more: gone for good.
        fw = master.frameworks.get(fid)
        t = tasks.reached(fw, tid) if fw is not None else None
        if fw is not None and t is not None:
            master.tasks.set_state(t, TS.TASK_GONE)
            why = f"agent {agent_id} re-registered without the task"
            master.task_line(tid, fid, agent_id, TS.TASK_GONE, Reason.REASON_AGENT_REREGISTERED, why, t.executor_id)
            master.send_update(fw, master.master_status(t, TS.TASK_GONE, Reason.REASON_AGENT_REREGISTERED, why))
            tasks.complete(fw, t)
    master.send(sender, M.AgentReregistered(agent_id, master.master_id, master.ping_interval))
    if master.removed_frameworks:
        for fid in sorted({fi.id for fi in m.frameworks} | {at.framework_id for at in m.tasks}):
            if fid in master.removed_frameworks:
                master.send(sender, M.ShutdownFramework(fid))  # removed while the agent was away
    master.to_allocator(M.AllocAddAgent(agent_id, total, tuple(allocated), info.capabilities))


def unauthorized(master: MasterCore, sender: Any, addr_text: str | None, agent_id: str) -> bool:
    """Refuse an agent's (re-)registration that its principal may not make (``AgentRefused``,
    nothing changed), or drop one that claims an agent another principal registered."""
    principal = master.principal_of()
    if master.authenticates:
        if agent_id:
            claimed = [master.agents.get(agent_id)]
        else:
            assert addr_text is not None
            claimed = [master.agents.get(i) for i in (master.agent_by_addr.get(addr_text),
                                                      master.unreachable_by_addr.get(addr_text)) if i]
        for rec in claimed:
            if rec is not None and rec.principal is not None and rec.principal != principal:
                master.stats["calls_wrong_principal"] += 1
                master.drop(f"agent registration from principal {principal!r} for an agent of "
                            f"principal {rec.principal!r}", sender)
                return True
    if master.acl is not None:
        decision = master.acl.check(REGISTER_AGENTS, principal)
        if not decision:
            master.stats["agents_refused"] += 1
            master.log.warning("master: agent registration refused: %s", decision.reason)
            master.send(sender, M.AgentRefused(decision.reason))
            return True
    return False


def _drop_missing(master: MasterCore, rec: AgentRec, reported: set[tuple[str, str]]) -> None:
    """Tasks the master placed on a restarted agent that its recovery does not know
    (their launch was lost with the old agent): TASK_DROPPED (TASK_LOST)."""
    now = master.now
    for key in sorted(set(rec.tasks) - reported):
        t = rec.tasks[key]
        fw = master.frameworks.get(key[0])
        if t.state.terminal or fw is None:
            continue
        master.release(rec, t, now, recover=True)
        master.tasks.set_state(t, TS.TASK_DROPPED)
        why = f"agent {rec.id} restarted without the task"
        master.task_line(t.task_id, fw.id, rec.id, TS.TASK_DROPPED, Reason.REASON_AGENT_RESTARTED, why, t.executor_id)
        master.send_update(fw, master.master_status(t, TS.TASK_DROPPED, Reason.REASON_AGENT_RESTARTED, why))
        master.tasks.finish(fw, rec, t)


# ---------------------------------------------------------------------- health checks

def schedule_ping(master: MasterCore, agent_id: str) -> None:
    due = master.now + master.ping_interval
    master.ping_queue.append((due, agent_id))
    if not master.timer_pending("ping"):
        master.set_timer("ping", master.ping_interval)


def timer_ping(master: MasterCore) -> None:
    now = master.now
    q = master.ping_queue
    while q and q[0][0] <= now + 1e-9:
        _, agent_id = q.popleft()
        rec = master.agents.get(agent_id)
        if rec is None or not rec.reachable:
            continue
        if rec.pong_pending:
            rec.missed_pings += 1
            if rec.missed_pings >= master.max_missed_pings:
                mark_unreachable(master, rec, f"agent {agent_id} missed {rec.missed_pings} pings")
                continue
        rec.pong_pending = True
        master.send_bytes(rec.address, master.ping_bytes)
        q.append((now + master.ping_interval, agent_id))
    if q:
        master.set_timer("ping", max(0.0, q[0][0] - now))


def pong(master: MasterCore, m: M.Pong, sender: Any) -> None:
    rec = master.agent_from(sender, "Pong")
    if rec is not None:
        rec.pong_pending = False
        rec.missed_pings = 0


# ---------------------------------------------------------------------- cut off, gone

def mark_unreachable(master: MasterCore, rec: AgentRec, why: str, gone: Reason | None = None) -> None:
    """Cut the agent off: its tasks become TASK_UNREACHABLE (TASK_LOST for frameworks
    that are not partition-aware) - or, with ``gone``, TASK_GONE for good."""
    if gone is None:
        master.log.warning("master: %s; marking it unreachable", why)
    now = master.now
    tasks = master.tasks
    rec.reachable = False
    master.agent_by_addr.pop(rec.addr_text, None)
    master.unreachable_by_addr[rec.addr_text] = rec.id
    master.save_agent(rec)
    for offer_id in sorted(rec.offers):
        rescind(master, offer_id, recover=False)
    master.to_allocator(M.AllocRemoveAgent(rec.id))
    for (fid, _tid), t in sorted(rec.tasks.items()):
        fw = master.frameworks.get(fid)
        if fw is None:
            continue
        if not t.released:
            master.release(rec, t, now, recover=False)
        tasks.leave(fw, t)
        if t.state.terminal:
            # Ended already, its update not yet acknowledged: the agent will resend it.
            tasks.complete(fw, t)
            continue
        if gone is not None:
            master.tasks.set_state(t, TS.TASK_GONE)
            master.task_line(t.task_id, fid, rec.id, TS.TASK_GONE, gone, why, t.executor_id)
            master.send_update(fw, master.master_status(t, TS.TASK_GONE, gone, why))
            tasks.complete(fw, t)
            continue
        tasks.cut_off(fw, rec, t)
        state = TS.TASK_UNREACHABLE if fw.partition_aware else TS.TASK_LOST
        master.tasks.set_state(t, state)
        master.task_line(t.task_id, fid, rec.id, state, Reason.REASON_AGENT_REMOVED, why, t.executor_id)
        master.send_update(fw, master.master_status(t, state, Reason.REASON_AGENT_REMOVED, why))
    for ex in rec.executors.values():
        master.uncharge(rec, ex.role, ex.resources)
    tasks.clear_agent(rec)
    for fw in master.frameworks.values():
        if fw.connected and fw.address is not None:
            master.send(fw.address, M.Failure(rec.id))


def remove(master: MasterCore, rec: AgentRec, reason: Reason, why: str) -> None:
    """The agent is gone for good (it restarted as a new agent): its tasks are GONE
    (TASK_LOST for frameworks that are not partition-aware)."""
    master.log.warning("master: %s; removing agent %s", why, rec.id)
    if rec.reachable:
        mark_unreachable(master, rec, why, gone=reason)
    for fid, tid in sorted(rec.lost_tasks):
        fw = master.frameworks.get(fid)
        t = master.tasks.reached(fw, tid) if fw is not None else None
        if fw is not None and t is not None:
            master.tasks.set_state(t, TS.TASK_GONE)
            master.task_line(tid, fid, rec.id, TS.TASK_GONE, reason, why, t.executor_id)
            master.send_update(fw, master.master_status(t, TS.TASK_GONE, reason, why))
            master.tasks.complete(fw, t)
    rec.lost_tasks.clear()
    forget(master, rec)
    master.removed_agents.add(rec.id)
    master.unsave("agent/" + rec.id)


def forget(master: MasterCore, rec: AgentRec) -> None:
    master.agents.pop(rec.id, None)
    if master.agent_by_addr.get(rec.addr_text) == rec.id:
        del master.agent_by_addr[rec.addr_text]
    if master.unreachable_by_addr.get(rec.addr_text) == rec.id:
        del master.unreachable_by_addr[rec.addr_text]
