"""The master's actor: the thin shell around :class:`~actors.master.core.MasterCore`.

It builds the core from its configuration, hands it every message with the time and
the sender's authenticated principal, and sends what the core decided
(:class:`~actors.base.CoreActor`).  One thing it does at the door, before decoding: an
agent retries its re-registration while it waits for an answer, and after a failover
the master's queue holds many such retries, each as large as the agent's share of the
cluster.  A retry that is byte for byte the last re-registration the core accepted from
that agent is answered without decoding it (``reregistrations_retried``).

What the master does is described in docs/architecture.md and docs/fault-tolerance.md;
who may do what in docs/security.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

from thespian.actors import ActorAddress

from actors.base import CoreActor, handles
from actors.core import SEND
from actors.master import agents, operator, views
from actors.master.core import MasterCore
from actors.protocol import messages as M
from actors.protocol.codec import peek_tag, tag_of

_REREGISTER_TAG = tag_of(M.ReregisterAgent)
assert _REREGISTER_TAG < 0x80   # a positive fixint on the wire

MASTER_CAPABILITY = "impresario.master"


class Master(CoreActor):
    component = "master"
    core_class = MasterCore

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any], requirements: dict[str, Any]) -> bool:
        """On a real host a master lives only in a system that declares itself the master's
        (so that agents can find it through the convention by its global name)."""
        return bool(capabilities.get(MASTER_CAPABILITY))

    def __init__(self) -> None:
        super().__init__()
        self.core: MasterCore | None = None
        # The digest of the last re-registration the core accepted from each agent (and
        # back), and the digest of the one being handled.
        self._rereg_digests: dict[bytes, str] = {}
        self._rereg_digest_of: dict[str, bytes] = {}
        self._rereg_digest_now: bytes | None = None

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        assert self._addresses is not None
        self.core = MasterCore(settings, self._addresses, self.ports.get("registry"), self.name, self.log,
                               self.stats, self.drops)
        self.core.authenticates = self.authenticates
        self.core.flags.setdefault("pid", self.address_text(self.myAddress))

    def started(self) -> None:
        assert self.core is not None
        self.apply(self.core.start(self.now()))

    # ------------------------------------------------------------------ retried re-registrations

    def _before_decode(self, data: bytes, sender: ActorAddress) -> bool:
        if len(data) < 3 or data[2] != _REREGISTER_TAG or peek_tag(data) != _REREGISTER_TAG:
            return False   # (the tag is a one-byte integer, third in the envelope)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        self._rereg_digest_now = digest
        agent_id = self._rereg_digests.get(digest)
        core = self.core
        if agent_id is None or core is None or not self.configured:
            return False
        if agent_id not in core.agents:
            del self._rereg_digests[digest]   # forgotten since
            self._rereg_digest_of.pop(agent_id, None)
            return False
        core.now, core.principal = self.now(), self.peer_principal
        if not agents.retried_reregistration(core, agent_id, sender):
            core.take()
            return False
        self._rereg_digest_now = None
        core.finish()
        self.apply(core.take())
        return True

    @handles(M.ReregisterAgent)
    def _reregister(self, m: M.ReregisterAgent, sender: ActorAddress) -> None:
        digest, self._rereg_digest_now = self._rereg_digest_now, None   # of these bytes
        core = self.core
        assert core is not None
        core.now, core.principal = self.now(), self.peer_principal
        agents.reregister(core, m, sender)
        core.finish()
        effects = core.take()
        if digest is not None:
            for kind, addr, msg in effects:
                if kind == SEND and type(msg) is M.AgentReregistered and addr == sender:
                    old = self._rereg_digest_of.get(msg.agent_id)
                    if old is not None:
                        self._rereg_digests.pop(old, None)
                    self._rereg_digests[digest] = msg.agent_id
                    self._rereg_digest_of[msg.agent_id] = digest
                    break
        self.apply(effects)

    # ------------------------------------------------------------------ views

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if self.core is not None and self.configured:
            if what == "state":
                return operator.state(self.core, self.now())
            if what == "summary":
                return operator.summary(self.core, self.now())
            if what == "view":
                value = views.render(self.core, self.now(), args, self.received, self.sent)
                return M.ViewReply(what, views.encode(value))
        return super().query(what, args)
