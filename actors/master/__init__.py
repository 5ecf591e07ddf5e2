"""The master: a pure core (``core``: its state and shared verbs), its handlers by
area, and the thin actor around them (``actor``).

The tables below are the whole of what the master reacts to: each message type and
each timer, with the function that handles it.
"""

from actors.master import agents, frameworks, offers, operator, updates
from actors.master.core import MasterCore
from actors.protocol import messages as M

MasterCore.handlers = {
    # agents (agents.py)
    M.RegisterAgent: agents.register,
    M.ReregisterAgent: agents.reregister,
    M.Pong: agents.pong,
    # frameworks (frameworks.py)
    M.Subscribe: frameworks.subscribe,
    M.HeartbeatReply: frameworks.heartbeat_reply,
    M.Teardown: frameworks.teardown,
    # offers and launches (offers.py)
    M.AllocOffers: offers.alloc_offers,
    M.Decline: offers.decline,
    M.Accept: offers.accept,
    M.Revive: offers.revive_or_suppress,
    M.Suppress: offers.revive_or_suppress,
    # task traffic (updates.py)
    M.StatusUpdate: updates.status_update,
    M.UsageReport: updates.usage_report,
    M.Acknowledge: updates.acknowledge,
    M.Reconcile: updates.reconcile,
    M.Kill: updates.kill,
    M.Shutdown: updates.shutdown,
    M.Message: updates.message,
    M.ExitedExecutor: updates.exited_executor,
    M.ExecutorToFramework: updates.executor_message,
    # operator calls (operator.py)
    M.UpdateWeights: operator.update_weights,
    M.UpdateQuota: operator.update_quota,
}

MasterCore.timer_handlers = {
    "ping": agents.timer_ping,
    "heartbeat": frameworks.timer_heartbeat,
    "failover": frameworks.timer_failover,
    "launches": offers.timer_launches,
    "agent_reregister": MasterCore.timer_agent_reregister,
}

__all__ = ["MasterCore"]
