"""Cores: an actor's decisions as plain code, fed one message at a time.

A core holds an actor's state and its handlers.  It is given a message, who sent it
and the current time, and records what it decided in ``out``, in order: messages to
send, pre-encoded bytes to send, timers to arm, child actors to stop.  It never sends
anything itself, reads no clock and knows no host: the actor around it
(:class:`actors.base.CoreActor`) applies what it decided after each message, and a
test calls :meth:`Core.handle` and reads the list.

Timers are named.  Arming one replaces the pending one of that name: each carries a
token, and only the newest token fires (:meth:`Core.fire`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from actors.protocol import messages as M

#: What a core decided, one tuple each: (kind, a, b).
SEND = 0          # (SEND, address, message)
SEND_BYTES = 1    # (SEND_BYTES, address, wire bytes encoded once for many sends)
TIMER = 2         # (TIMER, name, (delay seconds, token))
STOP = 3          # (STOP, address of a child actor, None)

Effect = tuple[int, Any, Any]

#: The child of a core's logger that its task lines go to (see :meth:`Core.task_line`).
TASK_LOG = "tasks"

#: Log the first few drops of each reason, then one in this many.
DROP_LOG_EVERY = 1000
DROP_LOG_FIRST = 5


def record_drop(stats: Counter[str], drops: Counter[str], log: logging.Logger, who: str,
                reason: str, sender: Any) -> None:
    """A message dropped with a reason: counted, logged at a bounded rate, nothing else."""
    stats["dropped"] += 1
    key = reason if len(reason) <= 120 else reason[:120]
    n = drops[key] = drops[key] + 1
    if n <= DROP_LOG_FIRST or n % DROP_LOG_EVERY == 0:
        log.warning("%s dropped a message from %s: %s (%d so far)", who, sender, reason, n)


class Core:
    """The base of the master's and the agent's cores."""

    component: ClassVar[str] = "core"
    #: message type -> handler(core, message, sender)
    handlers: ClassVar[dict[type, Callable[[Any, Any, Any], None]]] = {}
    #: timer name -> what runs when it fires, handler(core)
    timer_handlers: ClassVar[dict[str, Callable[[Any], None]]] = {}

    def __init__(self, name: str, log: logging.Logger | None = None, stats: Counter[str] | None = None,
                 drops: Counter[str] | None = None) -> None:
        self.name = name
        self.log = log if log is not None else logging.getLogger(f"impresario.{self.component}")
        #: Task launches and state changes, one INFO line each (:meth:`task_line`): the
        #: ``tasks`` child of ``log`` (``impresario.master.tasks``, ``impresario.agent.tasks``).
        self.task_log = self.log.getChild(TASK_LOG)
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.drops: Counter[str] = drops if drops is not None else Counter()
        self.out: list[Effect] = []
        #: The time of the message or timer being handled.
        self.now = 0.0
        #: The authenticated principal of the message being handled (None: not authenticated).
        self.principal: str | None = None
        #: Whether the host authenticates what reaches this core (then ``principal`` is set).
        self.authenticates = False
        #: Whether :meth:`finish` has something to do once the message is handled.
        self.unfinished = False
        self._timers: dict[str, int] = {}
        self._timer_seq = 0

    # ------------------------------------------------------------------ what it decides

    def send(self, addr: Any, msg: Any) -> None:
        self.out.append((SEND, addr, msg))

    def send_bytes(self, addr: Any, data: bytes) -> None:
        self.out.append((SEND_BYTES, addr, data))

    def stop_child(self, addr: Any) -> None:
        self.out.append((STOP, addr, None))

    def set_timer(self, name: str, delay: float) -> None:
        """(Re)arm the timer ``name``: only the newest arming fires."""
        self._timer_seq += 1
        self._timers[name] = self._timer_seq
        self.out.append((TIMER, name, (max(0.0, float(delay)), self._timer_seq)))

    def cancel_timer(self, name: str) -> None:
        self._timers.pop(name, None)

    def timer_pending(self, name: str) -> bool:
        return name in self._timers

    def timer_token(self, name: str) -> int | None:
        """The token of the pending arming of ``name`` (what :meth:`fire` needs), or None."""
        return self._timers.get(name)

    def reply_error(self, addr: Any, call: str, message: str, fatal: bool = False) -> None:
        self.stats["errors_replied"] += 1
        self.send(addr, M.Error(message=message, call=call, fatal=fatal))

    def drop(self, reason: str, sender: Any = None) -> None:
        record_drop(self.stats, self.drops, self.log, f"{self.component} {self.name}", reason, sender)

    def task_line(self, task_id: str, framework_id: str, agent_id: str, what: Any, reason: Any = None,
                  message: Any = "", executor_id: str = "") -> None:
        """One INFO line for a task launched or a task's new state, on ``task_log``:
        ``task web.1 of framework F on agent A: TASK_FAILED (REASON_...): message`` (with
        ``(executor E)`` after the agent for a task of an executor other than its own).
        Nothing is formatted unless that level is on (the simulator keeps it off)."""
        if self.task_log.isEnabledFor(logging.INFO):
            self.task_log.info("task %s of framework %s on agent %s%s: %s%s%s", task_id, framework_id,
                               agent_id or "(none)",
                               f" (executor {executor_id})" if executor_id and executor_id != task_id else "",
                               what, f" ({reason})" if reason is not None else "",
                               f": {message}" if message else "")

    # ------------------------------------------------------------------ what it is given

    def handle(self, msg: Any, sender: Any, now: float, principal: str | None = None) -> list[Effect]:
        """Handle one message at ``now``; what was decided, in order."""
        self.now, self.principal = now, principal
        handler = self.handlers.get(type(msg))
        if handler is None:
            self.drop(f"{self.component} does not handle {type(msg).__name__}", sender)
        else:
            handler(self, msg, sender)
        self.finish()
        return self.take()

    def fire(self, name: str, token: int, now: float) -> list[Effect]:
        """A timer's wake-up: its handler runs if ``token`` is the newest arming of ``name``."""
        if self._timers.get(name) != token:
            self.stats["stale_timers"] += 1
            return self.take()
        del self._timers[name]
        self.now, self.principal = now, None
        self.timer_handlers[name](self)
        self.finish()
        return self.take()

    def finish(self) -> None:
        """A message or timer has been handled: send what the core kept until then (a core
        that keeps something sets ``unfinished``)."""
        self.unfinished = False

    def call(self, fn: Callable[..., None], now: float, *args: Any) -> list[Effect]:
        """Run ``fn(core, *args)`` at ``now``, outside any message (a start, a child that
        exited); what was decided, in order."""
        self.now, self.principal = now, None
        fn(self, *args)
        self.finish()
        return self.take()

    def take(self) -> list[Effect]:
        out, self.out = self.out, []
        return out


def sent(effects: list[Effect], kind: type | None = None, to: Any = None) -> list[Any]:
    """The messages in ``effects`` (of type ``kind``, to ``to``), for tests and tools."""
    return [msg for k, addr, msg in effects
            if k == SEND and (kind is None or isinstance(msg, kind)) and (to is None or addr == to)]
