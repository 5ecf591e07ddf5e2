"""Transport hardening for Thespian's TCP transport, installed before any ActorSystem starts.

Thespian 4.0.1 binds every socket to all interfaces and unpickles every frame it reads.
:func:`install` patches the transport in the process about to start a system: frames are
unpickled only through the :data:`ALLOWED` classes (:class:`RestrictedUnpickler`), actors are
created only from admitted packages, oversized frames are refused from their header, sockets
bind the configured address, and shutdown or exit requests are taken only from this host.
It pins Thespian's start method to ``fork`` so that the admin, logger and actor processes
inherit the patch.  It authenticates nobody: the kernel's own authentication does that.

See docs/security.md, 'Transport hardening'.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from thespian.actors import ActorExitRequest
from thespian.system import multiprocCommon
from thespian.system.messages.admin import PendingActor, SystemShutdown
from thespian.system.transport import IPBase, TCPTransport

LOGGER = "impresario.hardening"
ANY_ADDRESS = "0.0.0.0"
DEFAULT_MAX_FRAME = 64 * 2**20
#: The longest length header accepted ("<digits>>"): 20 digits is far beyond any cap.
MAX_HEADER = 20
#: Packages whose actor classes may be created on request, whatever else is admitted.
KERNEL_PACKAGES = ("actors",)

_ADDRESSES = [
    ("thespian.actors", "ActorAddress"),
    ("thespian.system.transport.IPBase", "TCPv4ActorAddress"),
    # An address's family and socket type are IntEnum members.
    ("socket", "AddressFamily"),
    ("socket", "SocketKind"),
]
_MESSAGES = [
    # Delivered to actors.
    ("thespian.actors", "ActorExitRequest"),
    ("thespian.actors", "ChildActorExited"),
    ("thespian.actors", "PoisonMessage"),
    ("thespian.actors", "DeadEnvelope"),
    # Between a system's handle, its admin and its actors.
    ("thespian.system.messages.admin", "QueryExists"),
    ("thespian.system.messages.admin", "QueryAck"),
    ("thespian.system.messages.admin", "SystemShutdown"),
    ("thespian.system.messages.admin", "SystemShutdownCompleted"),
    ("thespian.system.messages.admin", "PendingActor"),
    ("thespian.system.messages.admin", "PendingActorResponse"),
    ("thespian.system.messages.multiproc", "EndpointConnected"),
    ("thespian.system.messages.multiproc", "LoggerConnected"),
    # Between the admins of a convention.
    ("thespian.system.messages.convention", "ConventionRegister"),
    ("thespian.system.messages.convention", "ConventionDeRegister"),
    # To a system's logger process, and from a member's logger to the leader's.
    ("thespian.system.logdirector", "LoggerExitRequest"),
    ("thespian.system.logdirector", "LogAggregator"),
    ("logging", "LogRecord"),
]
_VALUES = [
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
]
#: Every (module, name) an incoming frame may name: the classes that travel between the
#: processes of multiprocTCPBase systems in Thespian 4.0.1 (read from its source, and
#: recorded in running clusters: a local cluster with tasks, agents killed and started
#: again, frameworks in systems of their own; master, agent, state, execute, framework,
#: weights and quota as separate processes).  Refused, though in Thespian: source
#: loading (ValidateSource, ValidatedSource, LoadedSource, UnloadedSource,
#: SourceHashTransfer*) and the source authority (RegisterSourceAuthority,
#: NotifyOnSourceAvailability); thespian.runcommand; LoggerFileDup (a logger would
#: append to a file the message names) and SetLogging; the status queries of Thespian's
#: shell; and what serves only features the kernel does not use: wake-ups (delivered
#: in-process, never over TCP: from a peer they would fire an actor's timers),
#: capability updates, dead-letter and registration subscriptions, pre-registration
#: (ConventionInvite), and admin routing (ForwardMessage, which makes a process relay a
#: frame to addresses the peer chooses, and the routed address classes).
ALLOWED: frozenset[tuple[str, str]] = frozenset(_ADDRESSES + _MESSAGES + _VALUES)


class HardeningError(ValueError):
    """The hardening cannot be installed as asked (an address this host cannot bind)."""


class RefusedFrame(pickle.UnpicklingError):
    """An incoming frame was refused; the transport drops it."""


class BadFrameHeader(ValueError):
    """A frame's length header is refused: more bytes than allowed, or not a length."""


class _Settings:
    def __init__(self) -> None:
        self.listen = "127.0.0.1"
        self.max_frame = DEFAULT_MAX_FRAME
        self.packages: tuple[str, ...] = KERNEL_PACKAGES
        self.installed = False


_settings = _Settings()
_lock = threading.Lock()


# --------------------------------------------------------------------------- warnings


class RateLimit:
    """At most ``burst`` warnings per ``interval`` seconds; counts what it held back."""

    def __init__(self, burst: int = 5, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self.window = -interval
        self.used = 0
        self.held = 0

    def take(self) -> int | None:
        """None: stay quiet.  Otherwise log, mentioning the returned number held back."""
        now = self.clock()
        if now - self.window >= self.interval:
            self.window, self.used = now, 0
        if self.used >= self.burst:
            self.held += 1
            return None
        self.used += 1
        held, self.held = self.held, 0
        return held


_limit = RateLimit()
_warned = 0   # warnings logged by this process


def _warn(peer: str, what: str) -> None:
    global _warned
    held = _limit.take()
    if held is None:
        return
    more = f" ({held} more refused since the last warning)" if held else ""
    # Looked up on each use: Thespian replaces the logging manager in its processes, and
    # forwards what is logged there to the system's log.
    logging.getLogger(LOGGER).warning("refused a frame from %s: %s%s", peer, what, more)
    _warned += 1


# --------------------------------------------------------------------------- unpickling


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the classes in :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise RefusedFrame(f"class {module}.{name} is not allowed")
        return super().find_class(module, name)


def admits_actor_class(class_name: Any) -> bool:
    """May a peer ask this system to create an actor of ``class_name``?"""
    if not isinstance(class_name, str):
        return False
    module = class_name.rpartition(".")[0]
    if not module or module == "thespian" or module.startswith("thespian."):
        return False
    return any(module == p or module.startswith(p + ".") for p in _settings.packages)


#: Messages the kernel sends only within a host: taken from this host's own addresses only.
LOCAL_ONLY = (SystemShutdown, ActorExitRequest)
_local_addresses: set[str] | None = None


def local_addresses() -> set[str]:
    """This host's IPv4 addresses (read once)."""
    global _local_addresses
    if _local_addresses is None:
        import psutil

        found = {"127.0.0.1"}
        try:
            for addrs in psutil.net_if_addrs().values():
                found.update(a.address for a in addrs if a.family == socket.AF_INET)
        except OSError:
            pass
        _local_addresses = found
    return _local_addresses


def _remote_host(peer: str) -> str | None:
    """The host of a ``HOST:PORT`` peer that is not this host; None for this host, or for a
    peer we sent to ourselves (its answers come back on our own connection)."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return None
    if host.startswith("127.") or host in local_addresses():
        return None
    return host


def check_frame(frame: Any, peer: str = "a peer") -> None:
    """Refuse an unpickled frame whose message asks what no peer (or no remote peer) may ask."""
    msg = frame[1] if isinstance(frame, tuple) and len(frame) == 2 else frame
    if isinstance(msg, LOCAL_ONLY) and _remote_host(peer) is not None:
        raise RefusedFrame(f"{type(msg).__name__} from another host")
    if isinstance(msg, PendingActor):
        if getattr(msg, "sourceHash", None) is not None:
            raise RefusedFrame("an actor from loaded source")
        if not admits_actor_class(msg.actorClassName):
            raise RefusedFrame(f"creating an actor of class {msg.actorClassName!r}, outside "
                               f"{', '.join(_settings.packages)}")


def loads(data: bytes, peer: str = "a peer") -> Any:
    """Unpickle one frame's payload, or raise :class:`RefusedFrame` after a warning."""
    try:
        frame = RestrictedUnpickler(io.BytesIO(data)).load()
        check_frame(frame, peer)
    except RefusedFrame as e:
        _warn(peer, str(e))
        raise
    return frame


class _Serializer:
    """Stands in for the ``pickle`` module in TCPTransport: restricted ``loads``."""

    dumps = staticmethod(pickle.dumps)
    loads = staticmethod(loads)


class GuardedReceiveBuffer:
    """Thespian's ``ReceiveBuffer`` (a frame is ``b"<length>>" + pickle``), capped.

    The length header is checked as soon as its ``>`` arrives: a frame larger than the
    cap, or a header that is not a plain decimal length, raises :class:`BadFrameHeader`
    and Thespian closes the connection - nothing of the body is buffered.
    """

    def __init__(self, serializer: Any = None, peer: str = "a peer we sent to") -> None:
        self.peer = peer
        self._head = b""
        self._size: int | None = None
        self._body = bytearray()
        self._extra = b""
        self._done: tuple[Any, bytes] | None = None

    def addMore(self, buf: bytes) -> None:  # Thespian's names, as its ReceiveBuffer has them
        if not isinstance(buf, bytes | bytearray):
            raise TypeError(f"expected bytes, got {type(buf).__name__}")
        if self._size is None:
            mark = buf.find(b">")
            head = self._head + bytes(buf if mark < 0 else buf[:mark])
            if mark < 0:
                if len(head) > MAX_HEADER:
                    self._refuse(f"no length header within {MAX_HEADER} bytes")
                self._head = head
                return
            self._size = self._declared(head)
            buf = buf[mark + 1:]
        want = self._size - len(self._body)
        if want > 0:
            self._body += buf[:want]
        self._extra += bytes(buf[max(want, 0):])

    def _declared(self, head: bytes) -> int:
        if not head.isdigit() or len(head) > MAX_HEADER:
            self._refuse(f"the length header {head[:MAX_HEADER]!r} is not a length")
        size = int(head)
        if size > _settings.max_frame:
            self._refuse(f"it declares {size} bytes, more than the {_settings.max_frame} allowed; "
                         "connection closed")
        return size

    def _refuse(self, why: str) -> None:
        _warn(self.peer, why)
        raise BadFrameHeader(why)

    def is_empty(self) -> bool:
        return not self._head and self._size is None

    def remainingAmount(self) -> int:
        if self._size is None:
            return MAX_HEADER
        return self._size - len(self._body)

    def isDone(self) -> bool:
        return self._size is not None and len(self._body) == self._size

    def removeExtra(self) -> None:
        self._extra = b""

    def completed(self) -> tuple[Any, bytes] | None:
        if not self.isDone():
            return None
        if self._done is None:   # Thespian may ask twice (a frame arriving as an ACK)
            self._done = (loads(bytes(self._body), self.peer), self._extra)
        return self._done[0], self._extra


# --------------------------------------------------------------------------- patches


def _peer_of(sock: Any) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except (OSError, AttributeError, TypeError, ValueError):
        return "an unknown peer"


def _bind_args(self: Any) -> tuple[Any, ...]:
    """``IPActorAddress.bindArgs``: the configured address instead of all interfaces."""
    name = self.bindname
    if _settings.listen != ANY_ADDRESS and self.af == socket.AF_INET and name[0] in ("", ANY_ADDRESS):
        return ((_settings.listen, name[1]),)
    return (name,)


def _fork_context(capabilities: dict[str, Any]) -> Any:
    asked = capabilities.get("Process Startup Method", "fork")
    if asked != "fork":
        logging.getLogger(LOGGER).warning(
            "Process Startup Method %r ignored: the transport hardening reaches Thespian's "
            "processes only through fork", asked)
    return multiprocessing.get_context("fork")


def _patch() -> None:
    TCPTransport.serializer = _Serializer
    TCPTransport.ReceiveBuffer = GuardedReceiveBuffer
    incoming_init = TCPTransport.TCPIncoming_Common.__init__

    def init(self: Any, rmt_addr: Any, base_sock: Any, rcv_buf: Any = None) -> None:
        incoming_init(self, rmt_addr, base_sock, rcv_buf)
        if isinstance(self._rData, GuardedReceiveBuffer):
            self._rData.peer = _peer_of(base_sock)

    TCPTransport.TCPIncoming_Common.__init__ = init
    handle = TCPTransport.TCPTransport._handlePossibleIncoming

    def handle_then_send_warnings(self: Any, *args: Any, **kw: Any) -> Any:
        # A refusal is found while the transport holds its processing flag, where Thespian's
        # log forwarding only queues the warning; an idle admin would keep it queued until
        # its next message.  Send it now, as Thespian itself sends from here.
        before = _warned
        try:
            return handle(self, *args, **kw)
        finally:
            if _warned != before:
                exclusive = bool(kw.get("has_exclusive_flag", False))
                while self._canSendNow() and self._runQueued(has_exclusive_flag=exclusive):
                    pass

    TCPTransport.TCPTransport._handlePossibleIncoming = handle_then_send_warnings
    IPBase.IPActorAddress.bindArgs = property(_bind_args)
    multiprocCommon.get_multiproc_context = _fork_context


def resolve_listen(listen: str) -> str:
    """The IPv4 address ``listen`` names, checked bindable here; ``0.0.0.0`` as it is."""
    if listen in ("", ANY_ADDRESS):
        return ANY_ADDRESS
    try:
        address = str(socket.getaddrinfo(listen, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    except (OSError, UnicodeError) as e:
        raise HardeningError(f"cannot listen on {listen!r}: {e}") from None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError as e:
            raise HardeningError(f"cannot listen on {listen} ({address}): {e.strerror or e}") from None
    return address


def install(listen: str, max_frame: int | None = None, actor_packages: Iterable[str] = ()) -> str:
    """Harden Thespian's TCP transport in this process (and the processes it forks).

    Call before starting an ActorSystem; calling again is harmless and updates the
    settings for systems started afterwards.  ``listen``: the address every socket binds
    and Thespian publishes (``"0.0.0.0"``: all interfaces, publishing
    ``$THESPIAN_BASE_IPADDR`` if set, else what Thespian finds).  ``max_frame``: the largest frame accepted, in bytes (None: keep the current,
    :data:`DEFAULT_MAX_FRAME` at first).  ``actor_packages``: packages, besides the
    kernel's ``actors``, whose actor classes a peer may ask this system to create (added
    to those named before).  Returns the address listened on.
    """
    address = resolve_listen(listen)
    if max_frame is not None and max_frame < 1024:
        raise HardeningError(f"a frame cap of {max_frame} bytes is too small for Thespian's own messages")
    admit_actor_packages(*actor_packages)
    with _lock:
        _settings.listen = address
        if max_frame is not None:
            _settings.max_frame = int(max_frame)
        if address == ANY_ADDRESS:
            if os.environ.get("THESPIAN_BASE_IPADDR") in ("", ANY_ADDRESS):
                del os.environ["THESPIAN_BASE_IPADDR"]
        else:
            os.environ["THESPIAN_BASE_IPADDR"] = address
            IPBase.thisSystem.add_local_addr(address)
        if not _settings.installed:
            _patch()
            _settings.installed = True
    return address


def admit_actor_packages(*packages: str) -> None:
    """Let peers ask for actors of these packages too (systems started afterwards)."""
    with _lock:
        for name in (p.strip(".") for p in packages):
            if name and not any(name == q or name.startswith(q + ".") for q in _settings.packages):
                _settings.packages = (*_settings.packages, name)


def installed() -> bool:
    return _settings.installed


def settings() -> dict[str, Any]:
    """The settings in force in this process: listen, max_frame, actor_packages."""
    return {"listen": _settings.listen, "max_frame": _settings.max_frame,
            "actor_packages": list(_settings.packages)}
