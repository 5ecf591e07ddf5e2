"""The SimPy host: the kernel's actor classes, unchanged, in virtual time.

:class:`SimHost` gives each actor a stand-in for its Thespian system reference
(:class:`SimRef`: ``actor_send``, ``wakeupAfter``, ``createActor``) and the ``clock``,
``store`` and ``addresses`` ports.  A delivery is a callback on the SimPy heap, not a process
per actor (about 15x cheaper, see ``../shared/reference/SIMULATION.md``), and every delivered
message goes into a SHA-256 digest.  :meth:`SimHost.authenticate` turns on ``sim.auth``;
``service_time`` (zero, fixed, measured) says how long a handler occupies its actor.  An
exception in a handler is not retried, unlike in Thespian: it stops the simulation.

See docs/simulation.md, 'How the simulator runs the actors' (and 'Service time',
'Authentication', 'Determinism').
"""

from __future__ import annotations

import gc
import hashlib
import re
import struct
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL
from thespian.actors import ActorAddress, ActorExitRequest, ChildActorExited, WakeupMessage

from actors.config import load_object
from actors.ports import Addresses, MemoryStore
from actors.protocol.codec import decode, encode, peek_tag
from actors.security.auth import AuthError, is_signed, payload_tag

from .auth import HARNESS_ORIGIN, HARNESS_PRINCIPAL, SimAuth
from .network import ConstantNetwork, Network

_pack_time = struct.Struct("<d").pack


class _Event:
    """A minimal SimPy event: what ``Environment.step`` needs and the payload."""

    __slots__ = ("_ok", "callbacks", "msg", "sender", "target")

    def __init__(self, callback: Callable[[Any], None], target: SimRef, sender: Any, msg: Any) -> None:
        # Inlined rather than subclassing simpy.Event: one allocation per message.
        self.callbacks = [callback]
        self._ok = True
        self.target = target
        self.sender = sender
        self.msg = msg


class _Delivery:
    """The event of one delivered message.  Its callback list is shared by every
    delivery (``Environment.step`` only reads it), which saves a list per message."""

    __slots__ = ("_ok", "callbacks", "msg", "sender", "target")

    def __init__(self, callbacks: list[Any], target: SimRef, sender: Any, msg: Any) -> None:
        self.callbacks = callbacks
        self._ok = True
        self.target = target
        self.sender = sender
        self.msg = msg


class SimRef:
    """The stand-in for Thespian's per-actor system reference."""

    __slots__ = ("address", "alive", "bkey", "busy", "children", "globalName", "host", "instance", "name",
                 "node", "parent", "queue", "_child_seq")

    def __init__(self, host: SimHost, name: str, instance: Any, parent: SimRef | None,
                 global_name: str | None, node: int) -> None:
        self.host = host
        self.name = name
        self.address = ActorAddress(name)
        self.globalName = global_name
        self.instance = instance
        self.parent = parent
        self.children: list[SimRef] = []
        self.alive = True
        self.bkey = name.encode() + b"\x00"
        self.node = node
        self.busy = False
        self.queue: deque[tuple[Any, SimRef]] | None = None
        self._child_seq = 0

    # -- the calls a kernel actor makes on _myRef, through Thespian's public Actor API
    # (send, wakeupAfter, createActor); nothing else is imitated, so an actor that needed
    # more of Thespian would fail here rather than be half served.
    def actor_send(self, target: ActorAddress, msg: Any) -> None:
        self.host.send(self, target, msg)

    def wakeupAfter(self, period: float | timedelta, payload: Any = None) -> None:
        self.host.wakeup(self, period, payload)

    def createActor(self, actor_class: Any, requirements: Any = None, globalName: str | None = None,
                    sourceHash: Any = None) -> ActorAddress:
        return self.host.spawn(actor_class, parent=self, global_name=globalName)


class Inbox:
    """A pseudo-actor for the harness: collects what is sent to it, decoded (and, with
    authentication on, authenticated: a message refused goes to ``refused``)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ActorAddress]] = []
        self.open: Callable[[bytes], tuple[str, bytes]] | None = None
        self.refused: list[tuple[AuthError, ActorAddress]] = []

    def receiveMessage(self, msg: Any, sender: ActorAddress) -> None:
        if type(msg) is bytes:
            if self.open is not None and is_signed(msg):
                try:
                    msg = self.open(msg)[1]
                except AuthError as e:
                    self.refused.append((e, sender))
                    return
            msg = decode(msg)
        self.items.append((msg, sender))

    def take(self, kind: type | None = None) -> list[Any]:
        out = [m for m, _ in self.items if kind is None or isinstance(m, kind)]
        self.items = [(m, s) for m, s in self.items if not (kind is None or isinstance(m, kind))]
        return out


_FIXED_RE = re.compile(r"^\s*fixed\s*\(\s*([^)]+)\)\s*$")


def parse_service_time(text: str) -> tuple[str, float]:
    """``zero`` | ``fixed(2ms)`` | ``measured`` -> (kind, seconds)."""
    from actors.protocol.units import parse_duration

    text = str(text).strip()
    if text in ("zero", "measured"):
        return text, 0.0
    m = _FIXED_RE.match(text)
    if m:
        return "fixed", parse_duration(m.group(1).strip())
    raise ValueError(f"service_time must be zero, fixed(DURATION) or measured, got {text!r}")


class SimHost:
    """A SimPy environment hosting kernel actors."""

    def __init__(self, network: Network | None = None, service_time: str = "zero") -> None:
        self.env = simpy.Environment()
        self.network = network or ConstantNetwork()
        self.service, self.service_fixed = parse_service_time(service_time)
        self.refs: dict[str, SimRef] = {}
        # Durable records by actor (registry, checkpoints): they outlive crashes, as a
        # host's disk outlives its processes.
        self.stores: dict[str, dict[str, Any]] = {}
        # The containers of each simulated host, by agent name (sim.containerizer).
        self.containers: dict[str, Any] = {}
        self.global_names: dict[str, ActorAddress] = {}
        self.messages = 0
        self.messages_by_tag: dict[int | None, int] = {}
        self.dead_letters = 0
        self.lost = 0                 # dropped by the network (cuts, loss)
        self.busy_seconds: dict[str, float] = {}
        self.gc_seconds_excluded = 0.0   # collector pauses left out of measured service times
        self.peak_queue: dict[str, int] = {}
        self.digest = hashlib.sha256()
        self._last_delivery: dict[tuple[str, str], float] = {}
        self._seq = 0
        self._stopped = False
        self._outbox: list[tuple[str, Any, Any, Any]] | None = None  # sends of the handler running
        self._deliver_cbs = [self._deliver]
        self.inbox = Inbox()
        self.inbox_ref = self._register("harness", self.inbox, None, None, 0)
        self.events = 0
        self.auth: SimAuth | None = None        # see authenticate()
        self._harness_seal: Callable[[bytes], bytes] | None = None

    def authenticate(self, seed: int) -> SimAuth:
        """Turn authentication on: secrets for this seed, kept here for the ``auth`` port
        (``sim.auth:authenticator``); the harness signs what it sends from now on."""
        if self.auth is None:
            self.auth = SimAuth(seed)
            port = self.auth.authenticator(HARNESS_PRINCIPAL, HARNESS_ORIGIN, self.env._now)
            self._harness_seal = port.seal
            self.inbox.open = port.open
        return self.auth

    # ------------------------------------------------------------------ actors

    def _register(self, name: str, instance: Any, parent: SimRef | None, gname: str | None,
                  node: int) -> SimRef:
        if name in self.refs:
            raise ValueError(f"an actor named {name!r} exists already")
        ref = SimRef(self, name, instance, parent, gname, node)
        self.refs[name] = ref
        instance._myRef = ref
        if parent is not None:
            parent.children.append(ref)
        return ref

    def spawn(self, actor_class: Any, name: str | None = None, parent: SimRef | None = None,
              global_name: str | None = None, kind: str = "control", node: int | None = None) -> ActorAddress:
        """Create an actor now and return its address (``name`` defaults to a derived one).
        A top-level actor gets a host of ``kind`` in the network; a child shares its parent's."""
        if global_name and global_name in self.global_names:
            return self.global_names[global_name]
        cls = load_object(actor_class) if isinstance(actor_class, str) else actor_class
        if name is None:
            if parent is None:
                self._seq += 1
                name = f"{cls.__name__.lower()}-{self._seq}"
            else:
                parent._child_seq += 1
                name = f"{parent.name}/{parent._child_seq}"
        if node is None:
            node = parent.node if parent is not None else self.network.place(name, kind)
        ref = self._register(name, cls(), parent, global_name, node)
        if global_name:
            self.global_names[global_name] = ref.address
        return ref.address

    def ref(self, addr: ActorAddress | str) -> SimRef:
        key = addr if isinstance(addr, str) else addr.addressDetails
        return self.refs[key]

    def actor(self, addr: ActorAddress | str) -> Any:
        return self.ref(addr).instance

    def crash(self, addr: ActorAddress | str) -> None:
        """A fault: the actor and its children vanish, without a word to anyone.

        As processes that die, they take what they held with them: their state is released
        at once (reading a crashed actor's attributes afterwards is an error).  Kept, it
        would stay for good - actors are built before the run, when the collector freezes
        the heap - and a successor would fill fresh memory instead of reusing theirs."""
        ref = self.refs.get(addr if isinstance(addr, str) else addr.addressDetails)
        if ref is not None and ref.alive:
            gone = [ref]
            for r in gone:
                gone.extend(r.children)
            self._remove(ref, notify=False)
            for r in gone:
                r.queue = None
                state = getattr(r.instance, "__dict__", None)
                if state is not None:
                    state.clear()

    # ------------------------------------------------------------------ messages

    def send(self, src: SimRef, target: ActorAddress, msg: Any, extra: float = 0.0,
             local: bool = False) -> None:
        if self._outbox is not None and src is not self.inbox_ref:
            self._outbox.append(("send", src, target, msg))  # leaves when the handler ends
            return
        ref = self.refs.get(target._aaddr)   # the address's name (ActorAddress.addressDetails)
        if ref is None or not ref.alive:
            self.dead_letters += 1
            return
        net = self.network
        delay = 0.0 if local else net.delay(src.node, ref.node)
        if delay is None:
            self.lost += 1
            return
        env = self.env
        at = env._now + delay + extra
        if not net.constant:
            # Messages between two actors stay in order, whatever the delays drawn: one
            # drawn earlier than the pair's last is delivered at that same instant, after
            # it (the heap breaks ties by insertion).  The instant itself is kept, not
            # recomputed as now + (last - now), which may round one ulp before it.
            key = (src.name, ref.name)
            last = self._last_delivery.get(key, 0.0)
            if at < last:
                at = last
            self._last_delivery[key] = at
        # env.schedule, inlined: this is the hottest line of a simulation.
        queue: list[Any] = env._queue
        heappush(queue, (at, NORMAL, next(env._eid), _Delivery(self._deliver_cbs, ref, src, msg)))

    def tell_at(self, at: float, target: ActorAddress, msg: Any) -> None:
        """Send ``msg`` from the harness at virtual time ``at`` (an operator call)."""
        data = encode(msg) if type(msg) is not bytes else msg
        self.call_at(at, lambda: self.tell(target, data))

    def call_at(self, at: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` (harness code: faults, samples) at virtual time ``at``."""
        self._schedule(_Event(lambda ev: fn(), self.inbox_ref, self.inbox_ref, None),
                       max(0.0, at - self.env._now))

    def _schedule(self, ev: _Event, delay: float) -> None:
        env = self.env
        queue: list[Any] = env._queue
        heappush(queue, (env._now + delay, NORMAL, next(env._eid), ev))

    def tell(self, target: ActorAddress, msg: Any, local: bool = False) -> None:
        """Send from the harness (replies come back to ``self.inbox``).  ``local``: from
        the target's own host (its launcher's Configure), at once and whatever the network.

        Kernel message values are encoded here, as any sender would, and with
        authentication on, sealed (bytes included: :meth:`send` sends bytes as they are)."""
        if type(msg) is not bytes and hasattr(type(msg), "TAG"):
            msg = encode(msg)
        if self._harness_seal is not None and type(msg) is bytes:
            msg = self._harness_seal(msg)
        self.send(self.inbox_ref, target, msg, local=local)

    def _deliver(self, ev: _Event) -> None:
        ref = ev.target
        if not ref.alive:
            self.dead_letters += 1
            return
        msg = ev.msg
        sender: SimRef = ev.sender
        if self.service != "zero":
            self._arrive(ref, msg, sender)
            return
        if type(msg) is bytes:
            self.messages += 1
            by_tag = self.messages_by_tag
            tag = peek_tag(msg)
            if tag is None:
                tag = payload_tag(msg)   # a signed envelope's
            by_tag[tag] = by_tag.get(tag, 0) + 1
            # The digest: virtual time, sender, receiver, the bytes.
            self.digest.update(_pack_time(self.env._now) + sender.bkey + ref.bkey + msg)
            ref.instance.receiveMessage(msg, sender.address)
            return
        ref.instance.receiveMessage(msg, sender.address)
        if isinstance(msg, ActorExitRequest):
            self._exit(ref)

    # -- with a service time: one message at a time, from the actor's own queue

    def _arrive(self, ref: SimRef, msg: Any, sender: SimRef) -> None:
        if ref.busy:
            q = ref.queue
            if q is None:
                q = ref.queue = deque()
            q.append((msg, sender))
            if len(q) > self.peak_queue.get(ref.name, 0):
                self.peak_queue[ref.name] = len(q)
            return
        self._serve(ref, msg, sender)

    def _serve(self, ref: SimRef, msg: Any, sender: SimRef) -> None:
        if type(msg) is bytes:
            self.messages += 1
            tag = peek_tag(msg)
            if tag is None:
                tag = payload_tag(msg)   # a signed envelope's
            self.messages_by_tag[tag] = self.messages_by_tag.get(tag, 0) + 1
            self.digest.update(_pack_time(self.env._now) + sender.bkey + ref.bkey + msg)
        outbox: list[tuple[str, Any, Any, Any]] = []
        self._outbox = outbox
        if self.service == "measured":
            g0 = _GC_PAUSE[0]
            t0 = time.thread_time()
            try:
                ref.instance.receiveMessage(msg, sender.address)
            finally:
                self._outbox = None
            # The collector's pauses are not the actor's: one process holds the whole
            # simulated cluster, and a pause scales with all of it.
            paused = _GC_PAUSE[0] - g0
            cost = time.thread_time() - t0 - paused
            if paused:
                self.gc_seconds_excluded += paused
                cost = max(cost, 0.0)
        else:
            try:
                ref.instance.receiveMessage(msg, sender.address)
            finally:
                self._outbox = None
            cost = self.service_fixed
        if ref is self.inbox_ref:
            cost = 0.0
        self.busy_seconds[ref.name] = self.busy_seconds.get(ref.name, 0.0) + cost
        for what, a, b, c in outbox:
            if what == "send":
                self.send(a, b, c, extra=cost)
            else:
                self._schedule(_Event(self._deliver, a, a, c), b + cost)
        if isinstance(msg, ActorExitRequest):
            self._exit(ref)
            return
        ref.busy = True
        self._schedule(_Event(self._done, ref, ref, None), cost)

    def _done(self, ev: _Event) -> None:
        ref = ev.target
        ref.busy = False
        if not ref.alive:
            return
        q = ref.queue
        if q:
            msg, sender = q.popleft()
            self._serve(ref, msg, sender)

    # ------------------------------------------------------------------ timers and exits

    def wakeup(self, ref: SimRef, period: float | timedelta, payload: Any) -> None:
        seconds = period.total_seconds() if isinstance(period, timedelta) else float(period)
        msg = WakeupMessage(period, payload)
        if self._outbox is not None:
            self._outbox.append(("wakeup", ref, max(0.0, seconds), msg))
            return
        self._schedule(_Event(self._deliver, ref, ref, msg), max(0.0, seconds))

    def _exit(self, ref: SimRef) -> None:
        for child in list(ref.children):
            if child.alive:
                child.instance.receiveMessage(ActorExitRequest(), ref.address)
                self._exit(child)
        self._remove(ref, notify=True)

    def _remove(self, ref: SimRef, notify: bool) -> None:
        for child in list(ref.children):
            if child.alive:
                self._remove(child, notify=False)
        ref.alive = False
        if self.refs.get(ref.name) is ref:
            del self.refs[ref.name]
        if ref.globalName:
            self.global_names.pop(ref.globalName, None)
        parent = ref.parent
        if parent is not None:
            if ref in parent.children:
                parent.children.remove(ref)
            if notify and parent.alive:
                self._schedule(_Event(self._deliver, parent, ref, ChildActorExited(ref.address)), 0.0)

    # ------------------------------------------------------------------ running

    @property
    def now(self) -> float:
        return float(self.env.now)

    def stop(self) -> None:
        self._stopped = True

    def run(self, until: float | None = None, stop_when: Callable[[], bool] | None = None,
            check_every: int = 1, progress: Callable[[], None] | None = None,
            progress_every: int = 200_000) -> None:
        """Step the simulation until ``until`` (virtual seconds), no events are left,
        or ``stop_when()`` is true (checked every ``check_every`` events); call
        ``progress()`` every ``progress_every`` events."""
        timing = self.service == "measured" and _gc_timer not in gc.callbacks
        if timing:
            gc.callbacks.append(_gc_timer)
        try:
            with RelaxedCollector():
                self._run(until, stop_when, check_every, progress, progress_every)
        finally:
            if timing:
                gc.callbacks.remove(_gc_timer)

    def _run(self, until: float | None, stop_when: Callable[[], bool] | None, check_every: int,
             progress: Callable[[], None] | None, progress_every: int) -> None:
        env = self.env
        step = env.step
        queue = env._queue
        n = 0
        p = 0
        try:
            while queue and not self._stopped:
                if until is not None and queue[0][0] > until:
                    env._now = until
                    break
                step()
                p += 1
                if stop_when is not None:
                    n += 1
                    if n >= check_every:
                        n = 0
                        if stop_when():
                            break
                if p >= progress_every:
                    self.events += p
                    p = 0
                    if progress is not None:
                        progress()
        finally:
            self.events += p

    def run_until_reply(self, kind: type, timeout: float = 60.0,
                        match: Callable[[Any], bool] | None = None) -> Any:
        """Run until the harness inbox holds a message of ``kind`` (for which ``match``
        holds, if given); take it out and return it."""
        deadline = self.env.now + timeout
        found: list[Any] = []

        def have() -> bool:
            for i, (m, _) in enumerate(self.inbox.items):
                if isinstance(m, kind) and (match is None or match(m)):
                    found.append(m)
                    del self.inbox.items[i]
                    return True
            return False

        if not have():
            self.run(until=deadline, stop_when=have)
        if not found:
            raise TimeoutError(f"no {kind.__name__} within {timeout} virtual seconds")
        return found[0]

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


# --------------------------------------------------------------------------- the garbage collector

#: While a simulation runs, the cyclic collector looks at the young generation only
#: every GC_YOUNG_THRESHOLD allocations instead of every 700.  A large simulation
#: holds millions of long-lived objects (tasks, offers, queued events) and allocates
#: as many short-lived ones, so the default thresholds spend a quarter of the run
#: re-scanning survivors; the objects that exist when the run starts are frozen out
#: of collection altogether.  Nothing about the results changes: the simulation
#: holds no finalizers, so when the collector runs cannot be observed.
GC_YOUNG_THRESHOLD = 200_000


_GC_PAUSE = [0.0, 0.0]   # thread CPU seconds spent in the collector so far; when the last pause began


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _GC_PAUSE[1] = time.thread_time()
    else:
        _GC_PAUSE[0] += time.thread_time() - _GC_PAUSE[1]


class RelaxedCollector:
    """Raise the collector's thresholds (and freeze what exists) for the outermost run."""

    depth = 0

    def __enter__(self) -> None:
        RelaxedCollector.depth += 1
        self.old: tuple[int, ...] | None = None
        if RelaxedCollector.depth == 1 and gc.isenabled():
            self.old = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(GC_YOUNG_THRESHOLD, self.old[0]), max(20, self.old[1]),
                             max(100, self.old[2]))

    def __exit__(self, *exc: object) -> None:
        RelaxedCollector.depth -= 1
        if self.old is not None:
            gc.set_threshold(*self.old)
            gc.unfreeze()


# --------------------------------------------------------------------------- ports for the simulator


class SimAddresses(Addresses):
    def format(self, addr: ActorAddress) -> str:
        return str(addr.addressDetails)

    def parse(self, text: str) -> ActorAddress:
        return ActorAddress(text)


def clock(actor: Any, settings: dict[str, Any]) -> Callable[[], float]:
    env = actor._myRef.host.env
    return lambda: env._now


def store(actor: Any, settings: dict[str, Any]) -> MemoryStore:
    """The actor's durable records: one dict per component and name, kept by the host.
    The master's registry is packed as it is written (few writes, all read by the next
    master); agents' checkpoints only if they are read back (many writes, most never read)."""
    host = actor._myRef.host
    return MemoryStore(host.stores.setdefault(f"{actor.component}:{actor.name}", {}),
                       pack_on_put=actor.component == "master")


def addresses(actor: Any, settings: dict[str, Any]) -> Addresses:
    return SimAddresses()


#: The ports every actor gets in the simulator.
BASE_PORTS: tuple[tuple[str, str], ...] = (
    ("clock", "sim.host:clock"),
    ("addresses", "sim.host:addresses"),
)
