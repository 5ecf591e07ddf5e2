"""The master's frameworks: SUBSCRIBE (and re-subscription by a failed-over scheduler),
heartbeats and the failover timeout of a scheduler gone silent, TEARDOWN and removal."""

from __future__ import annotations

import heapq
from typing import Any

from actors.master import validation as V
from actors.master.core import MasterCore
from actors.master.offers import rescind
from actors.master.records import FrameworkRec
from actors.protocol import messages as M
from actors.protocol.messages import TaskState
from actors.security.acl import TEARDOWN_FRAMEWORKS

TS = TaskState


def subscribe(master: MasterCore, m: M.Subscribe, sender: Any) -> None:
    info = m.framework_info
    err = V.framework_problem(info)
    if err:
        master.reply_error(sender, "SUBSCRIBE", err, fatal=True)
        return
    principal = master.principal_of(info.principal)
    err = V.subscription_refused(info, principal, master.authenticates, master.acl)
    if err:
        master.stats["frameworks_refused"] += 1
        master.log.warning("master: SUBSCRIBE of framework %r refused: %s", info.name, err)
        master.reply_error(sender, "SUBSCRIBE", err, fatal=True)
        return
    if master.acl is not None and principal is not None and not info.principal:
        info = _with_principal(info, principal)   # what agents and the registry see
    fid = info.id
    if fid:
        if fid in master.removed_frameworks:
            master.reply_error(sender, "SUBSCRIBE", f"framework {fid} has been removed", fatal=True)
            return
        fw = master.frameworks.get(fid)
        if fw is not None:
            bound = master.framework_principal(fw)
            if master.authenticates and bound is not None and bound != principal:
                master.stats["frameworks_refused"] += 1
                master.reply_error(sender, "SUBSCRIBE", f"framework {fid} belongs to principal {bound!r}, "
                                   f"not to principal {principal!r}", fatal=True)
                return
            if master.authenticates:
                fw.principal = principal
            _resubscribe(master, fw, info, m, sender)
            return
        # Unknown id: a framework re-subscribing after a master failover.
        fw = FrameworkRec(fid, info, sender, master.now)
        master.frameworks[fid] = fw
    else:
        master.next_framework += 1
        fid = f"{master.master_id}-{master.next_framework:04d}"
        fw = FrameworkRec(fid, _with_id(info, fid), sender, master.now)
        master.frameworks[fid] = fw
    if master.authenticates:
        fw.principal = principal
    now = master.now
    fw.suppressed = set(m.suppressed_roles)
    fw.in_allocator, fw.last_seen, fw.subscribed_at = True, now, now
    master.save_framework(fw)
    master.send(sender, M.Subscribed(fid, master.heartbeat_interval, master.master_id, len(master.recovering)))
    master.to_allocator(M.AllocAddFramework(fid, fw.info.roles, fw.info.capabilities,
                                            tuple(sorted(fw.suppressed)), ()))


def _resubscribe(master: MasterCore, fw: FrameworkRec, info: M.FrameworkInfo, m: M.Subscribe,
                 sender: Any) -> None:
    first_time = not fw.in_allocator
    if fw.connected and fw.address is not None and fw.address != sender:
        # A failed-over scheduler took over: the old one is told it is out (Mesos:
        # "Framework failed over").
        master.send(fw.address, M.Error("framework failed over to another scheduler", "", True))
    # Offers are rescinded and regenerated on every re-subscription (as in Mesos).
    for offer_id in sorted(fw.offers):
        rescind(master, offer_id, recover=True)
    roles_changed = info.roles != fw.info.roles
    now = master.now
    fw.info = _with_id(info, fw.id)
    fw.address = sender
    fw.connected = True
    fw.last_seen = fw.subscribed_at = now
    fw.failover_deadline = None
    fw.suppressed = set(m.suppressed_roles)
    master.save_framework(fw)
    master.send(sender, M.Subscribed(fw.id, master.heartbeat_interval, master.master_id,
                                     len(master.recovering)))
    fw.updates_sent = 0
    if first_time or roles_changed:
        # No allocations with it: the allocator has every one of this framework's
        # already - from the agents that re-registered with its tasks (AllocAddAgent),
        # or from its own offers - and charging them again would count them twice.
        if not first_time:
            master.to_allocator(M.AllocRemoveFramework(fw.id))
        fw.in_allocator = True
        master.to_allocator(M.AllocAddFramework(fw.id, fw.info.roles, fw.info.capabilities,
                                                tuple(sorted(fw.suppressed)), ()))
    else:
        master.to_allocator(M.AllocActivate(fw.id, True))


def _disconnect(master: MasterCore, fw: FrameworkRec, why: str) -> None:
    """The scheduler went silent: no offers while it is away, and its failover
    timeout starts.  Its tasks keep running."""
    master.log.warning("master: framework %s disconnected: %s", fw.id, why)
    fw.connected = False
    for offer_id in sorted(fw.offers):
        rescind(master, offer_id, recover=True, notify=False)
    if fw.in_allocator:
        master.to_allocator(M.AllocActivate(fw.id, False))
    master.start_failover(fw, master.now)
    if fw.address is not None:
        # Should it still be there (its answers lost), it re-subscribes at once.
        master.not_subscribed(fw.address, "", f"framework {fw.id} disconnected: {why}")


def timer_failover(master: MasterCore) -> None:
    now = master.now
    master.failover_timer_at = None
    heap = master.failover_heap
    while heap and heap[0][0] <= now + 1e-9:
        deadline, fid = heapq.heappop(heap)
        fw = master.frameworks.get(fid)
        if fw is not None and not fw.connected and fw.failover_deadline == deadline:
            remove(master, fw, f"did not re-subscribe within its failover timeout "
                               f"of {fw.info.failover_timeout:g} s")
    if heap:
        master.failover_timer_at = heap[0][0]
        master.set_timer("failover", max(0.0, heap[0][0] - now))


def heartbeat_reply(master: MasterCore, m: M.HeartbeatReply, sender: Any) -> None:
    fw = master.frameworks.get(m.framework_id)
    if fw is not None and fw.connected and fw.address == sender and \
            (not master.authenticates or master.principal == fw.principal):
        fw.last_seen = master.now


def timer_heartbeat(master: MasterCore) -> None:
    now = master.now
    silent_for = master.heartbeat_interval * master.max_missed_heartbeats
    for fid in sorted(master.frameworks):
        fw = master.frameworks[fid]
        if fw.connected and fw.address is not None:
            if now - fw.last_seen > silent_for + 1e-9:
                _disconnect(master, fw, f"no answer to {master.max_missed_heartbeats} heartbeats")
                continue
            master.heartbeat(fw)
    master.set_timer("heartbeat", master.heartbeat_interval)


def teardown(master: MasterCore, m: M.Teardown, sender: Any) -> None:
    fw = master.frameworks.get(m.framework_id)
    if master.acl is not None and fw is not None:
        own = (master.principal == master.framework_principal(fw) if master.authenticates
               else fw.address == sender)
        if not own:
            _operator_teardown(master, fw, sender)
            return
    fw = master.framework_for(m.framework_id, sender, "TEARDOWN")
    if fw is not None:
        remove(master, fw, "torn down by its scheduler")


def _operator_teardown(master: MasterCore, fw: FrameworkRec, sender: Any) -> None:
    """A TEARDOWN from another principal than the framework's (an operator; without
    authentication, from another address than its scheduler's): it needs
    ``teardown_frameworks`` for the framework's principal.  Answered either way."""
    assert master.acl is not None
    principal = master.principal_of()
    decision = master.acl.check(TEARDOWN_FRAMEWORKS, principal, master.framework_principal(fw))
    if not decision:
        master.stats["teardowns_refused"] += 1
        master.log.warning("master: TEARDOWN of framework %s refused: %s", fw.id, decision.reason)
        master.reply_error(sender, "TEARDOWN", f"framework {fw.id}: {decision.reason}")
        return
    remove(master, fw, f"torn down by principal {principal!r}")
    master.send(sender, M.QueryReply("teardown", {"framework_id": fw.id}))


def remove(master: MasterCore, fw: FrameworkRec, why: str) -> None:
    """The framework is gone: its offers, tasks and executors end, its resources go back."""
    master.log.info("master: removing framework %s: %s", fw.id, why)
    now = master.now
    tasks = master.tasks
    for offer_id in sorted(fw.offers):
        rescind(master, offer_id, recover=True, notify=False)
    agents_touched = set()
    for t in list(fw.tasks.values()):
        agent = master.agents.get(t.agent_id)
        if agent is not None:
            agents_touched.add(agent.id)
            if not t.released:
                master.release(agent, t, now, recover=True)
            tasks.unplace(agent, fw.id, t)
    for agent_id in sorted(agents_touched | {a.id for a in master.agents.values()
                                             if any(k[0] == fw.id for k in a.executors)}):
        agent = master.agents[agent_id]
        for key in [k for k in agent.executors if k[0] == fw.id]:
            ex = tasks.remove_executor(agent, key)
            assert ex is not None
            master.uncharge(agent, ex.role, ex.resources)
            master.recover(fw.id, agent.id, ex.role, ex.resources, None)
        if agent.reachable:
            master.send(agent.address, M.ShutdownFramework(fw.id))
    ended = list(fw.tasks.values()) + list(fw.unreachable.values())
    for t in ended:
        if not t.state.terminal:
            tasks.set_state(t, TS.TASK_KILLED)
            master.task_line(t.task_id, fw.id, t.agent_id, TS.TASK_KILLED, None, "its framework was removed",
                             t.executor_id)
    tasks.clear_framework(fw)
    for t in ended:
        tasks.complete(fw, t)
    fw.connected = False
    fw.removed_at = now
    master.completed_frameworks.append(fw)
    del master.frameworks[fw.id]
    master.removed_frameworks.add(fw.id)
    master.unsave("framework/" + fw.id)
    if master.registry is not None:
        master.registry.put("removed/" + fw.id, fw.id)
    master.to_allocator(M.AllocRemoveFramework(fw.id))


def _with_principal(info: M.FrameworkInfo, principal: str) -> M.FrameworkInfo:
    return M.FrameworkInfo(info.name, info.user, info.roles, info.capabilities, info.failover_timeout,
                           info.id, principal, info.hostname, info.checkpoint, info.labels)


def _with_id(info: M.FrameworkInfo, fid: str) -> M.FrameworkInfo:
    return M.FrameworkInfo(info.name, info.user, info.roles, info.capabilities, info.failover_timeout,
                           fid, info.principal, info.hostname, info.checkpoint, info.labels)
