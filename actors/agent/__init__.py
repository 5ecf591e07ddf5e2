"""The agent: a pure core (``core``: its state and shared verbs), its handlers by area,
the thin actor around them (``actor``), and its executors (``executor``).

The tables below are the whole of what the agent's core reacts to: each message type
and each timer, with the function that handles it.
"""

from actors.agent import executors, launches, registration, streams
from actors.agent.core import AgentCore
from actors.protocol import messages as M

AgentCore.handlers = {
    # registration and following the master (registration.py)
    M.AgentRegistered: registration.registered,
    M.AgentReregistered: registration.registered,
    M.AgentRefused: registration.refused,
    M.Ping: registration.ping,
    M.Masters: registration.masters,
    # launches and what the master asks of executors (launches.py)
    M.RunTask: launches.run_task,
    M.RunTaskGroup: launches.run_task_group,
    M.KillTask: launches.kill_task,
    M.ShutdownExecutor: launches.shutdown_executor,
    M.ShutdownFramework: launches.shutdown_framework,
    M.FrameworkToExecutor: launches.to_executor,
    # what executors say (executors.py)
    M.Configured: executors.configured,
    M.ExecSubscribe: executors.subscribe,
    M.ExecUpdate: executors.update,
    M.ExecMessage: executors.message,
    M.ExecUsage: executors.usage,
    # status update streams (streams.py)
    M.StatusUpdateAck: streams.acknowledged,
}

AgentCore.timer_handlers = {
    "register": registration.timer_register,
    "watch": registration.timer_watch,
    "retry": streams.timer_retry,
    "usage": executors.timer_usage,
    "executor_registration": executors.timer_registration,
}

__all__ = ["AgentCore"]
