"""The SimPy host: the kernel's actor classes, unchanged, in virtual time.

Each actor gets a stand-in for its Thespian system reference (``_myRef``):

* ``actor_send`` schedules delivery after a latency drawn from the network
  model; delivery is a callback on the SimPy heap, not a process per actor
  (about 15x cheaper, see ``../shared/reference/SIMULATION.md``);
* ``wakeupAfter`` is a SimPy timeout delivering a ``WakeupMessage``;
* ``createActor`` instantiates the class at once and returns its address;
* the clock port reads ``env.now``.

Messages between kernel actors are the codec's bytes, exactly as on a real
host.  Every delivered message goes into a SHA-256 digest (virtual time,
sender, receiver, bytes), so the same scenario and seed give the same digest.

Thespian semantics reproduced: ``WakeupMessage`` to self with its payload;
``ActorExitRequest`` is delivered, then the actor and its children are gone
and the parent gets ``ChildActorExited``; messages to a gone actor are dead
letters (counted).  Unlike Thespian, an exception in a handler is not retried:
it stops the simulation, because in the kernel an exception is a bug.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from datetime import timedelta
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL
from thespian.actors import ActorAddress, ActorExitRequest, ChildActorExited, WakeupMessage

from actors.base import Addresses, load_object
from actors.codec import decode, encode, peek_tag

_pack_time = struct.Struct("<d").pack


class LatencyModel:
    """Network delay between two actors.  The spine's model is a constant per hop;
    messages between one pair of actors stay in order whatever the model."""

    constant = True

    def __init__(self, seconds: float = 0.0005) -> None:
        self.seconds = seconds

    def delay(self, src: str, dst: str) -> float:
        return self.seconds


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


class SimRef:
    """The stand-in for Thespian's per-actor system reference."""

    __slots__ = (
        "_child_seq",
        "address",
        "alive",
        "bkey",
        "children",
        "globalName",
        "host",
        "instance",
        "name",
        "parent",
    )

    def __init__(self, host: SimHost, name: str, instance: Any, parent: SimRef | None,
                 global_name: str | None) -> None:
        self.host = host
        self.name = name
        self.address = ActorAddress(name)
        self.globalName = global_name
        self.instance = instance
        self.parent = parent
        self.children: list[SimRef] = []
        self.alive = True
        self.bkey = name.encode() + b"\x00"
        self._child_seq = 0

    # -- the calls Thespian's Actor makes on _myRef
    def actor_send(self, target: ActorAddress, msg: Any) -> None:
        self.host.send(self, target, msg)

    def wakeupAfter(self, period: float | timedelta, payload: Any = None) -> None:
        self.host.wakeup(self, period, payload)

    def createActor(self, actor_class: Any, requirements: Any = None, globalName: str | None = None,
                    sourceHash: Any = None) -> ActorAddress:
        return self.host.spawn(actor_class, parent=self, global_name=globalName)

    def handleDeadLetters(self, address: ActorAddress, enable: bool) -> None:
        pass

    def notifyOnSystemRegistrationChanges(self, address: ActorAddress, enable: bool) -> None:
        pass

    def updateCapability(self, name: str, value: Any = None) -> None:
        pass

    def actorSystemShutdown(self) -> None:
        self.host.stop()

    def registerSourceAuthority(self, address: ActorAddress) -> None:
        raise NotImplementedError("the simulator loads no actor source")

    def loadActorSource(self, fname: str) -> Any:
        raise NotImplementedError("the simulator loads no actor source")

    def unloadActorSource(self, source_hash: Any) -> None:
        raise NotImplementedError("the simulator loads no actor source")

    def notifyOnSourceAvailability(self, address: ActorAddress, enable: bool) -> None:
        pass


class Inbox:
    """A pseudo-actor for the harness: collects what is sent to it, decoded."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ActorAddress]] = []

    def receiveMessage(self, msg: Any, sender: ActorAddress) -> None:
        self.items.append((decode(msg) if type(msg) is bytes else msg, sender))

    def take(self, kind: type | None = None) -> list[Any]:
        out = [m for m, _ in self.items if kind is None or isinstance(m, kind)]
        self.items = [(m, s) for m, s in self.items if not (kind is None or isinstance(m, kind))]
        return out


class SimHost:
    """A SimPy environment hosting kernel actors."""

    def __init__(self, latency: LatencyModel | None = None) -> None:
        self.env = simpy.Environment()
        self.latency = latency or LatencyModel()
        self.refs: dict[str, SimRef] = {}
        self.global_names: dict[str, ActorAddress] = {}
        self.messages = 0
        self.messages_by_tag: dict[int | None, int] = {}
        self.dead_letters = 0
        self.digest = hashlib.sha256()
        self._last_delivery: dict[tuple[str, str], float] = {}
        self._seq = 0
        self._stopped = False
        self.inbox = Inbox()
        self.inbox_ref = self._register("harness", self.inbox, None, None)

    # ------------------------------------------------------------------ actors

    def _register(self, name: str, instance: Any, parent: SimRef | None, gname: str | None) -> SimRef:
        if name in self.refs:
            raise ValueError(f"an actor named {name!r} exists already")
        ref = SimRef(self, name, instance, parent, gname)
        self.refs[name] = ref
        instance._myRef = ref
        if parent is not None:
            parent.children.append(ref)
        return ref

    def spawn(self, actor_class: Any, name: str | None = None, parent: SimRef | None = None,
              global_name: str | None = None) -> ActorAddress:
        """Create an actor now and return its address (``name`` defaults to a derived one)."""
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
        ref = self._register(name, cls(), parent, global_name)
        if global_name:
            self.global_names[global_name] = ref.address
        return ref.address

    def ref(self, addr: ActorAddress | str) -> SimRef:
        key = addr if isinstance(addr, str) else addr.addressDetails
        return self.refs[key]

    def actor(self, addr: ActorAddress | str) -> Any:
        return self.ref(addr).instance

    # ------------------------------------------------------------------ messages

    def send(self, src: SimRef, target: ActorAddress, msg: Any) -> None:
        ref = self.refs.get(target.addressDetails)
        if ref is None or not ref.alive:
            self.dead_letters += 1
            return
        delay = self.latency.delay(src.name, ref.name)
        env = self.env
        if not self.latency.constant:
            key = (src.name, ref.name)
            at = env._now + delay
            last = self._last_delivery.get(key, 0.0)
            if at < last:
                delay = last - env._now
                at = last
            self._last_delivery[key] = at
        # env.schedule, inlined: this is the hottest line of a simulation.
        queue: list[Any] = env._queue
        heappush(queue, (env._now + delay, NORMAL, next(env._eid), _Event(self._deliver, ref, src, msg)))

    def tell_at(self, at: float, target: ActorAddress, msg: Any) -> None:
        """Send ``msg`` from the harness at virtual time ``at`` (an operator call, a fault)."""
        data = encode(msg) if type(msg) is not bytes else msg
        self._schedule(_Event(lambda ev: self.send(self.inbox_ref, target, data), self.inbox_ref,
                              self.inbox_ref, None), max(0.0, at - self.env._now))

    def _schedule(self, ev: _Event, delay: float) -> None:
        env = self.env
        queue: list[Any] = env._queue
        heappush(queue, (env._now + delay, NORMAL, next(env._eid), ev))

    def tell(self, target: ActorAddress, msg: Any) -> None:
        """Send from the harness (replies come back to ``self.inbox``).

        Kernel message values are encoded here, as any sender would."""
        if type(msg) is not bytes and hasattr(type(msg), "TAG"):
            msg = encode(msg)
        self.send(self.inbox_ref, target, msg)

    def _deliver(self, ev: _Event) -> None:
        ref = ev.target
        if not ref.alive:
            self.dead_letters += 1
            return
        msg = ev.msg
        sender: SimRef = ev.sender
        if type(msg) is bytes:
            self.messages += 1
            by_tag = self.messages_by_tag
            tag = peek_tag(msg)
            by_tag[tag] = by_tag.get(tag, 0) + 1
            # The digest: virtual time, sender, receiver, the bytes.
            self.digest.update(_pack_time(self.env._now) + sender.bkey + ref.bkey + msg)
            ref.instance.receiveMessage(msg, sender.address)
            return
        ref.instance.receiveMessage(msg, sender.address)
        if isinstance(msg, ActorExitRequest):
            self._exit(ref)

    def wakeup(self, ref: SimRef, period: float | timedelta, payload: Any) -> None:
        seconds = period.total_seconds() if isinstance(period, timedelta) else float(period)
        self._schedule(_Event(self._deliver_wakeup, ref, ref, WakeupMessage(period, payload)), max(0.0, seconds))

    def _deliver_wakeup(self, ev: _Event) -> None:
        ref = ev.target
        if ref.alive:
            ref.instance.receiveMessage(ev.msg, ref.address)

    def _exit(self, ref: SimRef) -> None:
        for child in list(ref.children):
            if child.alive:
                child.instance.receiveMessage(ActorExitRequest(), ref.address)
                self._exit(child)
        ref.alive = False
        del self.refs[ref.name]
        if ref.globalName:
            self.global_names.pop(ref.globalName, None)
        parent = ref.parent
        if parent is not None:
            parent.children.remove(ref)
            if parent.alive:
                self._schedule(_Event(self._deliver, parent, ref, ChildActorExited(ref.address)), 0.0)

    # ------------------------------------------------------------------ running

    @property
    def now(self) -> float:
        return float(self.env.now)

    def stop(self) -> None:
        self._stopped = True

    def run(self, until: float | None = None, stop_when: Callable[[], bool] | None = None,
            check_every: int = 1) -> None:
        """Step the simulation until ``until`` (virtual seconds), no events are left,
        or ``stop_when()`` is true (checked every ``check_every`` events)."""
        env = self.env
        step = env.step
        queue = env._queue
        n = 0
        while queue and not self._stopped:
            if until is not None and queue[0][0] > until:
                env._now = until
                break
            step()
            if stop_when is not None:
                n += 1
                if n >= check_every:
                    n = 0
                    if stop_when():
                        break

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


# --------------------------------------------------------------------------- ports for the simulator


class SimAddresses(Addresses):
    def format(self, addr: ActorAddress) -> str:
        return str(addr.addressDetails)

    def parse(self, text: str) -> ActorAddress:
        return ActorAddress(text)


def clock(actor: Any, settings: dict[str, Any]) -> Callable[[], float]:
    env = actor._myRef.host.env
    return lambda: env._now


def addresses(actor: Any, settings: dict[str, Any]) -> Addresses:
    return SimAddresses()


#: The ports every actor gets in the simulator.
BASE_PORTS: tuple[tuple[str, str], ...] = (
    ("clock", "sim.host:clock"),
    ("addresses", "sim.host:addresses"),
)
