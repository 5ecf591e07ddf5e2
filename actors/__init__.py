"""The kernel: protocol, resources and the actors (master, allocator, agent, executors, framework).

Nothing here imports ``isolators`` or ``sim``: actor logic reaches the world only
through its context (send, timers, now) and injected ports.
"""
