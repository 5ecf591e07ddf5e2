"""Registration, and following the master.

The agent registers with the first of its masters (the ``master`` setting, or the
``masters`` list tried in turn); the master then pings it every ``ping_interval_seconds``.
A ping naming another master id (a restarted master, or a standby taking over), or one
that says the master does not know the agent, makes the agent re-register after a random
delay in [0, ``registration_backoff``], so that a whole cluster does not come at once; a
master silent for ``master_ping_timeouts`` intervals is taken for lost, and the agent
re-registers, trying the candidates in turn.  After every (re-)registration the pending
status updates are sent again.
"""

from __future__ import annotations

from typing import Any

from actors.agent import recovery, streams
from actors.agent.core import AgentCore
from actors.protocol import messages as M
from actors.protocol.codec import encode
from actors.protocol.messages import TaskState

TS = TaskState
VERSION = "0.1.0"


def start(agent: AgentCore) -> None:
    """The agent starts: restored from its checkpoint where there is one, it registers."""
    agent.started_at = agent.now
    # A fresh value at every start: a master that sees a new one at a known address
    # knows the agent restarted.
    # The clock makes it differ between starts (the random stream is seeded by name).
    agent.ctag = f"{int(agent.now * 1e6) % 2**32:08x}{agent.rng.getrandbits(16):04x}"
    agent.incarnation = f"{agent.now:.6f}-{agent.ctag}"
    if agent.checkpoint is not None:
        recovery.restore(agent)
    register(agent)


def register(agent: AgentCore) -> None:
    """Register (with an id: re-register, with what runs here) with the master followed."""
    master = agent.masters.master
    assert master is not None
    if agent.agent_id:
        info = M.AgentInfo(agent.info.hostname, agent.info.resources, agent.info.attributes,
                           agent.agent_id, agent.info.capabilities, agent.info.http_address)
        agent.send(master, M.ReregisterAgent(info, tuple(agent.frameworks.values()), executor_infos(agent),
                                             agent_tasks(agent), VERSION, agent.incarnation))
    else:
        agent.send(master, M.RegisterAgent(agent.info, VERSION, agent.incarnation))
    agent.register_attempts += 1
    # Mesos: random in [0, b * 2^n], capped at a minute.
    cap = min(60.0, agent.backoff * 2 ** min(agent.register_attempts, 16))
    agent.set_timer("register", agent.backoff + agent.rng.uniform(0, cap))


def timer_register(agent: AgentCore) -> None:
    if not agent.registered and not agent.refused:
        if agent.register_attempts:
            agent.masters.next()
        register(agent)


def master_changed(agent: AgentCore, master: Any, master_id: str, why: str) -> None:
    """Another master (or the same one, restarted) leads: re-register with it after a
    random delay, so that a whole cluster does not arrive at once."""
    if not agent.registered and master == agent.masters.master and agent.timer_pending("register") \
            and agent.master_id == master_id:
        return  # on it already
    agent.log.info("agent %s: %s; re-registering", agent.name, why)
    agent.stats["master_changes"] += 1
    agent.registered = False
    agent.masters.follow(master)
    agent.master_id = master_id
    agent.register_attempts = 0
    agent.cancel_timer("watch")
    agent.set_timer("register", agent.rng.uniform(0, agent.backoff))


def look_for_master_now(agent: AgentCore) -> None:
    if not agent.refused:
        agent.register_attempts = 0
        register(agent)


def timer_watch(agent: AgentCore) -> None:
    if not agent.registered or agent.refused:
        return
    timeout = agent.ping_interval * agent.ping_timeouts
    idle = agent.now - agent.last_ping_at
    if idle < timeout - 1e-9:
        agent.set_timer("watch", timeout - idle)
        return
    agent.log.warning("agent %s: no ping from the master for %.0f s; re-registering", agent.name, idle)
    agent.stats["master_lost"] += 1
    agent.registered = False
    agent.register_attempts = 0
    agent.masters.next()
    register(agent)


def executor_infos(agent: AgentCore) -> tuple[M.ExecutorInfo, ...]:
    return tuple(e.info for _, e in sorted(agent.executors.items()) if not e.info.resources.is_empty())


def agent_tasks(agent: AgentCore) -> tuple[M.AgentTask, ...]:
    """What runs here, as a re-registration reports it."""
    out = []
    for (fid, eid), e in sorted(agent.executors.items()):
        for tid, task in sorted(e.tasks.items()):
            out.append(M.AgentTask(fid, eid, task, e.states.get(tid, TS.TASK_STAGING)))
    # Ended tasks whose executors are gone, their last updates not yet acknowledged.
    for (fid, tid), stream in sorted(agent.streams.items()):
        if stream.task is not None and stream.pending and (fid, tid) not in agent.task_index:
            last = stream.pending[-1].status
            out.append(M.AgentTask(fid, last.executor_id or tid, stream.task, last.state))
    return tuple(out)


# ---------------------------------------------------------------------- handlers


def registered(agent: AgentCore, m: M.AgentRegistered | M.AgentReregistered, sender: Any) -> None:
    if not agent.from_master(sender, type(m).__name__):
        return
    if agent.agent_id and m.agent_id != agent.agent_id:
        agent.drop(f"registered as {m.agent_id} but this agent is {agent.agent_id}", sender)
        return
    first = not agent.registered
    if not first and m.master_id == agent.master_id:
        return  # an answer to a retry
    if agent.agent_id and not first:
        agent.stats["master_changes"] += 1
    again = bool(agent.agent_id)
    if m.agent_id != agent.agent_id or m.master_id != agent.master_id or not again:
        recovery.save_agent(agent, m.agent_id, m.master_id)
    agent.agent_id = m.agent_id
    agent.master_id = m.master_id
    agent.ping_interval = m.ping_interval_seconds
    agent.registered = True
    agent.last_ping_at = agent.now
    agent.cancel_timer("register")
    agent.set_timer("watch", agent.ping_interval * agent.ping_timeouts)
    if again:
        agent.reregistrations += 1
    else:
        agent.log.info("agent %s registered as %s", agent.name, agent.agent_id)
    # Anything queued while unregistered (or sent to a master that is gone) goes out now.
    streams.resend_all(agent)


def refused(agent: AgentCore, m: M.AgentRefused, sender: Any) -> None:
    if agent.registered:
        # It answers a registration: this agent is registered, and has made none since.
        agent.drop("AgentRefused while registered", sender)
        return
    if agent.from_master(sender, "AgentRefused"):
        agent.refused = m.message
        agent.cancel_timer("register")
        agent.log.error("agent %s: the master refused registration: %s", agent.name, m.message)


def ping(agent: AgentCore, m: M.Ping, sender: Any) -> None:
    if agent.authenticates and agent.principal not in agent.master_principals:
        # Only a master's principal is followed: nobody else can call this agent over.
        agent.not_a_master("Ping", sender)
        return
    masters = agent.masters
    current = sender == masters.master   # one comparison: the health check is the hottest message
    if not current and sender not in masters.candidates:
        if not m.master_id or m.master_id == agent.master_id:
            agent.drop("Ping not from a master", sender)
            return
        # A master restarted elsewhere (on a real host its actor has a new address) or a
        # standby not in the list calls this agent back; it takes the place of the one
        # this agent followed.
        agent.stats["masters_adopted"] += 1
        masters.adopt(sender)
    if not current or not m.connected or (agent.master_id and m.master_id != agent.master_id):
        if agent.refused:
            return
        why = "the master does not know this agent" if not m.connected else f"master {m.master_id} leads"
        master_changed(agent, sender, m.master_id, why)
        return
    agent.last_ping_at = agent.now
    if agent.pong_for != agent.agent_id:
        agent.pong_for, agent.pong_bytes = agent.agent_id, encode(M.Pong(agent.agent_id))
    agent.send_bytes(sender, agent.pong_bytes)


def masters(agent: AgentCore, m: M.Masters, sender: Any) -> None:
    """A fresh list of masters from the agent's host."""
    if agent.masters.take(m, sender, agent, agent.registered, agent.principal, agent.own_principal,
                          agent.authenticates):
        look_for_master_now(agent)
