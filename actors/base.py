"""The base of every kernel actor: one door, one clock, tokened timers, ports.

A :class:`KernelActor` is a plain ``thespian.actors.Actor`` that reaches the world only
through :meth:`~KernelActor.tell` (the codec's bytes, sent with ``Actor.send``),
:meth:`~KernelActor.set_timer` (named timers with tokens: Thespian's wake-ups cannot be
cancelled), :meth:`~KernelActor.now` and the ports named in its first ``Configure``.
Every byte string it receives is authenticated (with an ``auth`` port), decoded and
validated at one door, :meth:`~KernelActor.receiveMessage`; what fails, or comes before
configuration, or has no handler, is dropped with a counted reason and changes nothing.
:class:`CoreActor` is the thin shell around a pure core (:mod:`actors.core`).
See docs/architecture.md ('One actor, two hosts', 'Cores and shells') and
docs/security.md ('Authenticated messages').
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from thespian.actors import (
    Actor,
    ActorAddress,
    ActorExitRequest,
    ActorSystemMessage,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    WakeupMessage,
)

from actors.config import ConfigError, load_object
from actors.core import SEND, SEND_BYTES, TIMER, Core, Effect, record_drop
from actors.following import MasterList, candidates_from
from actors.ports import Addresses
from actors.protocol import messages as M
from actors.protocol.codec import CodecError, decode, encode
from actors.security.auth import AuthError, is_signed, payload_of

H = TypeVar("H", bound=Callable[..., Any])



def handles(*types: type) -> Callable[[H], H]:
    """Mark a method as the handler of one or more message types."""

    def mark(fn: H) -> H:
        fn._handles = types  # type: ignore[attr-defined]
        return fn

    return mark


class KernelActor(Actor):
    """Base class of the master, allocator, agent, executors and frameworks."""

    component: ClassVar[str] = "actor"
    _handlers: ClassVar[dict[type, Callable[..., None]]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.name = ""
        self.settings: dict[str, Any] = {}
        self.ports: dict[str, Any] = {}
        self.port_paths: tuple[tuple[str, str], ...] = ()
        self.configured = False
        self.stats: Counter[str] = Counter()
        self.received = 0
        self.sent = 0
        self.drops: Counter[str] = Counter()
        self.log = logging.getLogger(f"impresario.{self.component}")
        self._rng: random.Random | None = None
        self._rng_seed: str | int = 0
        self._clock: Callable[[], float] = _unconfigured_clock
        self._timers: dict[str, int] = {}
        self._timer_seq = 0
        self._addresses: Addresses | None = None
        # The auth port's two calls (None: no auth port, nothing sealed or checked).
        self._seal: Callable[[bytes], bytes] | None = None
        self._open: Callable[[bytes], tuple[str, bytes]] | None = None
        #: The authenticated principal of the message being handled (None: not authenticated).
        self.peer_principal: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, Callable[..., None]] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for t in getattr(attr, "_handles", ()):
                    table[t] = attr
        cls._handlers = table

    @property
    def rng(self) -> random.Random:
        """This actor's random stream, seeded by the scenario seed and the actor's name
        (made on first use: most executors never draw from it)."""
        r = self._rng
        if r is None:
            r = self._rng = random.Random(self._rng_seed)
        return r

    # ------------------------------------------------------------------ the door

    #: An actor may answer some bytes before they are decoded (the master: a retried
    #: re-registration, byte for byte one it handled): a callable (bytes, sender) giving
    #: True when it took care of them.  Called after authentication.
    _before_decode: Callable[[bytes, ActorAddress], bool] | None = None

    def receiveMessage(self, msg: Any, sender: ActorAddress) -> None:
        if type(msg) is bytes:
            self.received += 1
            if self._open is not None:
                try:
                    self.peer_principal, msg = self._open(msg)
                except AuthError as e:
                    self.stats["auth_refused"] += 1
                    self.stats["auth_refused_" + e.reason] += 1
                    self.drop(f"authentication failed: {e}", sender)
                    return
            if self._before_decode is not None and self._before_decode(msg, sender):
                return
            try:
                m = decode(msg)
            except CodecError as e:
                if self._open is not None or not is_signed(msg):
                    self.drop(f"undecodable message: {e}", sender)
                    return
                try:
                    m = decode(payload_of(msg))   # opened, not authenticated (see above)
                except (AuthError, CodecError) as e2:
                    self.drop(f"undecodable signed message: {e2}", sender)
                    return
            handler = self._handlers.get(type(m))
            if handler is None:
                self.drop(f"{self.component} does not handle {type(m).__name__}", sender)
                return
            if not self.configured and type(m) is not M.Configure and type(m) is not M.Query:
                self.drop(f"{type(m).__name__} before configuration", sender)
                return
            handler(self, m, sender)
        elif isinstance(msg, WakeupMessage):
            self._wakeup(msg.payload)
        elif isinstance(msg, ActorExitRequest):
            self.on_exit_request()
        elif isinstance(msg, ChildActorExited):
            self.on_child_exited(msg.childAddress)
        elif isinstance(msg, PoisonMessage):
            self.drop(f"a message we sent made its receiver fail: {msg.details}", sender)
        elif isinstance(msg, DeadEnvelope):
            self.stats["dead_letters"] += 1
        elif isinstance(msg, ActorSystemMessage):
            pass
        else:
            self.drop(f"not a kernel message: {type(msg).__name__}", sender)

    def drop(self, reason: str, sender: Any = None) -> None:
        """Drop a message with a reason: counted, logged at a bounded rate, nothing else."""
        record_drop(self.stats, self.drops, self.log, f"{self.component} {self.name}", reason, sender)

    @property
    def authenticates(self) -> bool:
        """Whether this actor checks who sent what it receives (it has an ``auth`` port):
        then ``peer_principal`` is the authenticated sender of the message being handled."""
        return self._open is not None

    # ------------------------------------------------------------------ sending

    def tell(self, addr: ActorAddress, msg: Any) -> None:
        """Encode ``msg`` and send it to ``addr``."""
        self.sent += 1
        if self._seal is None:
            self.send(addr, encode(msg))
        else:
            self.send(addr, self._seal(encode(msg)))

    def tell_encoded(self, addr: ActorAddress, data: bytes) -> None:
        """Send bytes encoded once for many sends (a message that does not change); with
        an auth port they are sealed at each send."""
        self.sent += 1
        if self._seal is None:
            self.send(addr, data)
        else:
            self.send(addr, self._seal(data))

    def reply_error(self, addr: ActorAddress, call: str, message: str, fatal: bool = False) -> None:
        self.stats["errors_replied"] += 1
        self.tell(addr, M.Error(message=message, call=call, fatal=fatal))

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """The host's clock: wall time on a real host, virtual time in the simulator."""
        return self._clock()

    def set_timer(self, name: str, delay: float) -> None:
        """(Re)arm the timer ``name``: ``timer_<name>()`` runs after ``delay`` seconds.

        Arming a pending timer replaces it: only the newest wake-up counts.
        """
        self._timer_seq += 1
        self._timers[name] = self._timer_seq
        # Seconds as a float (Thespian converts them itself): a timedelta would round the
        # delay to whole microseconds, and a timer could fire just before its time.
        self.wakeupAfter(max(0.0, float(delay)), payload=(name, self._timer_seq))

    def cancel_timer(self, name: str) -> None:
        self._timers.pop(name, None)

    def timer_pending(self, name: str) -> bool:
        return name in self._timers

    def _wakeup(self, payload: Any) -> None:
        if type(payload) is not tuple or len(payload) != 2:
            return
        name, token = payload
        if self._timers.get(name) != token:
            self.stats["stale_timers"] += 1
            return
        del self._timers[name]
        getattr(self, "timer_" + name)()

    # ------------------------------------------------------------------ configuration

    @handles(M.Configure)
    def _on_configure(self, m: M.Configure, sender: ActorAddress) -> None:
        if self.configured:
            self.tell(sender, M.Configured(self.component, self.name, error="already configured"))
            return
        if m.component != self.component:
            err = f"this actor is a {self.component}, not a {m.component}"
            self.tell(sender, M.Configured(self.component, m.name, error=err))
            return
        try:
            settings = dict(m.settings) if isinstance(m.settings, dict) else None
            if settings is None:
                raise ConfigError("settings must be a map")
            self.name = m.name
            self.settings = settings
            seed = settings.get("seed", 0)
            self._rng, self._rng_seed = None, f"{seed}:{m.name}"
            ports: dict[str, Any] = {}
            for port_name, path in m.ports:
                factory = load_object(path)
                ports[port_name] = factory(self, settings)
            if "clock" not in ports or "addresses" not in ports:
                raise ConfigError("the clock and addresses ports are required")
            self.ports = ports
            self.port_paths = tuple(m.ports)
            self._clock = ports["clock"]
            self._addresses = ports["addresses"]
            auth = ports.get("auth")
            if auth is not None:
                self._seal, self._open = auth.seal, auth.open
            self.configure(settings, sender)
        except (ConfigError, ValueError, TypeError, KeyError) as e:
            self.ports = {}
            self.log.error("%s %s: configuration refused: %s", self.component, m.name, e)
            # Signed when the auth port was made (a configurer that authenticates drops an
            # unsigned answer), then forgotten with the rest of the configuration.
            self.tell(sender, M.Configured(self.component, m.name, error=str(e)))
            self._seal = self._open = None
            return
        self.configured = True
        if settings.get("acknowledge_configuration", True):
            self.tell(sender, M.Configured(self.component, self.name))
        self.started()

    def configure(self, settings: dict[str, Any], sender: ActorAddress) -> None:
        """Read settings (raise :class:`ConfigError` on bad ones).  No sending here."""

    def started(self) -> None:
        """Called once, after a successful configuration: start timers, register, ..."""

    def address_of(self, text: str) -> ActorAddress:
        if self._addresses is None:
            raise ConfigError("no address port")
        return self._addresses.parse(text)

    def master_candidates(self, settings: dict[str, Any]) -> list[ActorAddress]:
        """Where masters may run: the ``masters`` list, else the one ``master`` address."""
        return candidates_from(settings, self.address_of)

    def address_text(self, addr: ActorAddress) -> str:
        if self._addresses is None:
            raise ConfigError("no address port")
        return self._addresses.format(addr)

    # ------------------------------------------------------------------ queries

    @handles(M.Query)
    def _on_query(self, m: M.Query, sender: ActorAddress) -> None:
        try:
            result = self.query(m.what, m.args if isinstance(m.args, dict) else {})
        except KeyError:
            self.tell(sender, M.QueryReply(m.what, None, error=f"{self.component} cannot answer {m.what!r}"))
            return
        except ValueError as e:   # a view asked for with bad arguments
            self.tell(sender, M.QueryReply(m.what, None, error=f"bad request: {e}"))
            return
        if type(result) is M.ViewReply:
            self.tell(sender, result)
            return
        self.tell(sender, M.QueryReply(m.what, result))

    def query(self, what: str, args: dict[str, Any]) -> Any:
        """Answer a query with a plain (msgpack-native) value; KeyError if unknown."""
        if what == "stats":
            return {"component": self.component, "name": self.name,
                    "configured": self.configured,
                    "stats": {"received": self.received, "sent": self.sent, **self.stats},
                    "drops": dict(self.drops)}
        raise KeyError(what)

    # ------------------------------------------------------------------ life cycle

    def on_exit_request(self) -> None:
        """The actor is being stopped (ActorExitRequest)."""

    def on_child_exited(self, child: ActorAddress) -> None:
        """A child actor exited."""


class CoreActor(KernelActor):
    """A thin actor around a pure core (:mod:`actors.core`).

    The door authenticates and decodes as for any kernel actor, then hands each message
    the core handles to it with the time and the sender's principal, and sends what the
    core decided, in order.  Timers are the core's: each wake-up goes to it."""

    #: The core class: each message type in its ``handlers`` goes to it (unless the actor
    #: handles the type itself).
    core_class: ClassVar[type[Core] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.core: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.core_class is not None:
            table = dict(cls._handlers)
            for t, fn in cls.core_class.handlers.items():
                table.setdefault(t, _to_core(fn))
            cls._handlers = table

    def _wakeup(self, payload: Any) -> None:
        if type(payload) is not tuple or len(payload) != 2 or self.core is None:
            return
        effects = self.core.fire(payload[0], payload[1], self._clock())
        if effects:
            self.apply(effects)

    def apply(self, effects: list[Effect]) -> None:
        """Do what the core decided, in order (the hot path: ``tell`` inlined)."""
        seal, send = self._seal, self.send
        for kind, a, b in effects:
            if kind == SEND:
                data = encode(b)
            elif kind == SEND_BYTES:
                data = b
            elif kind == TIMER:
                self.wakeupAfter(b[0], payload=(a, b[1]))
                continue
            else:
                send(a, ActorExitRequest())
                continue
            self.sent += 1
            send(a, data if seal is None else seal(data))


def _to_core(fn: Callable[[Any, Any, Any], None]) -> Callable[[CoreActor, Any, ActorAddress], None]:
    """The door's handler for a message type a core handles with ``fn``."""

    def to_core(self: CoreActor, m: Any, sender: ActorAddress) -> None:
        core = self.core
        core.now = self._clock()
        core.principal = self.peer_principal
        fn(core, m, sender)
        if core.unfinished:
            core.finish()
        out = core.out
        if out:
            core.out = []
            self.apply(out)

    return to_core


class FollowsMasters(KernelActor):
    """A kernel actor that follows one master among candidates (the frameworks).

    ``masters`` (:class:`~actors.following.MasterList`, from the ``masters`` setting, see
    :meth:`master_candidates`) are tried in turn when the followed master goes silent.
    Its host may send a fresh list (:class:`~actors.protocol.messages.Masters`, from the
    actor's own principal): a master that was not running when the actor started, or one
    restarted at a new address without a registry to call the actor back from, is found
    that way."""

    def __init__(self) -> None:
        super().__init__()
        self.masters = MasterList()

    def following_master(self) -> bool:
        """Whether the actor is registered (subscribed) with its master now."""
        raise NotImplementedError

    def look_for_master_now(self) -> None:
        """Register (subscribe) with ``self.masters.master`` now, having lost the last one."""
        raise NotImplementedError

    @handles(M.Masters)
    def _on_masters(self, m: M.Masters, sender: ActorAddress) -> None:
        auth = self.ports.get("auth")
        if self.masters.take(m, sender, self, self.following_master(), self.peer_principal,
                             auth.principal if auth is not None else None, self._open is not None):
            self.look_for_master_now()


def _unconfigured_clock() -> float:
    raise ConfigError("no clock before configuration")
