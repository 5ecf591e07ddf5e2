"""The agent's actor: the thin shell around :class:`~actors.agent.core.AgentCore`.

It builds the core from its configuration and gives it what only an actor has: a
``spawn`` port that creates an executor as a child actor and answers its address, its
discovery and checkpoint ports, and its random stream.  It hands the core every message
and wake-up with the time and the sender's principal (:class:`~actors.base.CoreActor`),
tells it when a child exits, and sends what it decided; a child the core stops gets an
``ActorExitRequest``.

What the agent does is described in the area modules of :mod:`actors.agent`.
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorAddress

from actors.agent import executors, registration, views
from actors.agent.core import AgentCore
from actors.base import CoreActor
from actors.protocol import messages as M


class Agent(CoreActor):
    component = "agent"
    core_class = AgentCore

    def __init__(self) -> None:
        super().__init__()
        self.core: AgentCore | None = None

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        assert self._addresses is not None
        auth = self.ports.get("auth")
        self.core = AgentCore(settings, self._addresses, self.createActor, self.rng, self.name,
                              discovery=self.ports.get("discovery"), checkpoint=self.ports.get("checkpoint"),
                              own_principal=auth.principal if auth is not None else None,
                              port_paths=self.port_paths, log=self.log, stats=self.stats, drops=self.drops)
        self.core.authenticates = self.authenticates
        self.core.flags.setdefault("pid", self.address_text(self.myAddress))

    def started(self) -> None:
        assert self.core is not None
        self.apply(self.core.call(registration.start, self.now()))

    def on_child_exited(self, child: ActorAddress) -> None:
        if self.core is not None:
            self.apply(self.core.call(executors.exited, self.now(), child))

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "state" and self.configured and self.core is not None:
            return self.core.state()
        if what == "view" and self.configured and self.core is not None:
            return M.ViewReply(what, views.encode(views.render(self.core, self.now(), args)))
        return super().query(what, args)
