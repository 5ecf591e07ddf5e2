"""Thespian systems on a real host: start one (or join a convention), create actors in
it, talk to kernel actors from outside, and end it for sure.

Every system is started with the transport hardening installed first
(:mod:`impresario.realhost.hardening`).  Thespian admins daemonize into a process group
of their own, which their actors share: :meth:`System.kill` ends one as a crash would,
:meth:`System.shutdown` asks it to stop and kills what is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import psutil
from thespian.actors import ActorAddress, ActorSystem

from actors.protocol import messages as M
from actors.protocol.codec import CodecError, decode, encode
from actors.security.auth import Authenticator, AuthError, is_signed, payload_of

from . import hardening
from .ports import BASE_PORTS, SYSTEM_BASE, TcpAddresses

log = logging.getLogger("impresario.cluster")

#: An actor's address on a real host (what System.create answers).
Address: TypeAlias = ActorAddress


class KernelError(RuntimeError):
    """A kernel actor refused its configuration or did not answer."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_defs(path: str | None, level: str = "INFO") -> dict[str, Any]:
    """Thespian's logging set-up for actor processes: a file, and errors to stderr."""
    handlers: dict[str, Any] = {
        "stderr": {"class": "logging.StreamHandler", "level": "ERROR", "formatter": "plain"},
    }
    if path:
        handlers["file"] = {"class": "logging.FileHandler", "filename": path, "level": level,
                            "formatter": "plain"}
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": handlers,
        "root": {"handlers": sorted(handlers), "level": level},
        "disable_existing_loggers": False,
    }


class System:
    """One Thespian system started by this process, and how to end it for sure.

    The transport hardening (:mod:`impresario.realhost.hardening`) is installed first: the system's
    sockets bind ``listen`` only (``"0.0.0.0"``: every interface, only when asked for),
    frames larger than ``max_frame`` bytes are refused, and only Thespian's own protocol
    classes are unpickled.  ``actor_packages``: packages besides ``actors`` whose actor
    classes this system may be asked to create."""

    def __init__(self, caps: dict[str, Any], logdefs: dict[str, Any] | None, listen: str = "127.0.0.1",
                 max_frame: int | None = None, actor_packages: Iterable[str] = ()) -> None:
        self.listen = hardening.install(listen, max_frame, actor_packages)
        me = psutil.Process()
        before = {p.pid for p in me.children()}
        self.asys = ActorSystem(SYSTEM_BASE, caps, logDefs=logdefs or False, transientUnique=True)
        self.port = caps.get("Admin Port")
        self.admin_pids = sorted(p.pid for p in me.children() if p.pid not in before)
        # The admin daemonizes into a process group of its own, which its actors share.
        self.pgids = sorted({g for g in (_pgid(pid) for pid in self.admin_pids)
                             if g is not None and g != os.getpgid(0)})
        self.killed = False

    def create(self, class_name: str, global_name: str | None = None,
               requirements: dict[str, Any] | None = None) -> Address:
        """Create an actor of ``class_name`` (``package.module.Class``) in this system, or
        in the convention's system whose capabilities meet ``requirements``; with
        ``global_name``, the one registered under that name if there is one."""
        return self.asys.createActor(class_name.replace(":", "."), targetActorRequirements=requirements,
                                     globalName=global_name)

    def client(self, auth: Authenticator | None = None) -> Client:
        """A client of this system's external context (signing with ``auth``, if given)."""
        return Client(self.asys, auth)

    def processes(self) -> list[psutil.Process]:
        out = []
        for pid in self.admin_pids:
            try:
                p = psutil.Process(pid)
                out.append(p)
                out.extend(p.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return out

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL the whole system at once - its admin, logger and actors, which share the
        admin's process group - as a crash would, and wait until they are gone.  Tasks run
        in sessions of their own and are not touched."""
        procs = self.group_processes()
        for pgid in self.pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        psutil.wait_procs(procs, timeout=timeout)
        for pid in self.admin_pids:   # our own child, left a zombie when the admin daemonized
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        self.killed = True

    def group_processes(self) -> list[psutil.Process]:
        """Every live process of this system's process groups."""
        groups = set(self.pgids)
        return [p for p in psutil.process_iter() if p.pid != os.getpid() and _pgid(p.pid) in groups]

    def shutdown(self, timeout: float = 20.0) -> None:
        if self.killed:
            return   # nothing of it is left (its process groups' ids may name others by now)
        procs = self.processes()
        try:
            self.asys.shutdown()
        except Exception as e:  # the admin may already be gone
            log.warning("shutting down the system on port %s: %s", self.port, e)
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)


#: The collector's thresholds in a master's processes (see :func:`relax_collector`).
RELAXED_GC = (200_000, 20, 100)


def relax_collector() -> None:
    """Collect cycles less often in this process and those it forks from now on (a master's
    system): a master of a large cluster holds millions of long-lived objects, and a view of
    it (``/state``) makes hundreds of thousands more at once; with the default thresholds
    the collector re-scans the survivors over and over (measured: 3.3 s for a first
    ``/state`` at 30,000 agents, 1.2 s with these).  The simulator does the same."""
    import gc

    gc.freeze()
    gc.set_threshold(*RELAXED_GC)


def module_of(class_name: str) -> str:
    """The module of ``package.module.Class`` (or ``package.module:Class``)."""
    return class_name.replace(":", ".").rpartition(".")[0]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


class Client:
    """Talks to kernel actors from outside, through one system's external context.

    With ``auth`` (an :class:`~actors.security.auth.Authenticator`, e.g. from :meth:`Auth.client`)
    everything it sends is signed, and an answer is taken only if it is authentic."""

    def __init__(self, asys: ActorSystem, auth: Authenticator | None = None) -> None:
        self.asys = asys
        self.auth = auth

    def _out(self, msg: Any) -> bytes:
        data = encode(msg)
        return data if self.auth is None else self.auth.seal(data)

    def _in(self, reply: bytes) -> Any:
        """The message an answer holds; AuthError for one that is not authentic (signed
        by nobody we know, replayed, or unsigned while this client signs)."""
        if is_signed(reply):
            reply = self.auth.open(reply)[1] if self.auth is not None else payload_of(reply)
        elif self.auth is not None:
            raise AuthError("unsigned", "an unsigned answer")
        try:
            return decode(reply)
        except CodecError as e:
            raise KernelError(f"an undecodable answer: {e}") from None

    def tell(self, addr: ActorAddress, msg: Any) -> None:
        self.asys.tell(addr, self._out(msg))

    def ask(self, addr: ActorAddress, msg: Any, expect: type | tuple[type, ...], timeout: float = 30.0,
            match: Callable[[Any], bool] | None = None) -> Any:
        """Send ``msg`` and wait for an answer of type ``expect`` (for which ``match`` holds).

        Anything else arriving meanwhile (a late answer to an earlier tell, say) is
        set aside: the external context is shared by everything this client sends.
        """
        deadline = time.monotonic() + timeout
        reply = self.asys.ask(addr, self._out(msg), timeout)
        while True:
            if reply is None:
                raise KernelError(f"no answer to {type(msg).__name__} within {timeout:.0f} s")
            if type(reply) is bytes:
                try:
                    decoded = self._in(reply)
                except AuthError as e:
                    log.warning("an answer that is not authentic, ignored: %s", e)
                    decoded = None
                if decoded is not None and isinstance(decoded, expect) and (match is None or match(decoded)):
                    return decoded
                log.debug("set aside while waiting for %s: %r", expect, decoded)
            left = deadline - time.monotonic()
            if left <= 0:
                raise KernelError(f"no answer to {type(msg).__name__} within {timeout:.0f} s")
            reply = self.asys.listen(left)

    def configure(self, addr: ActorAddress, component: str, name: str, settings: dict[str, Any],
                  ports: tuple[tuple[str, str], ...] = BASE_PORTS, timeout: float = 60.0) -> None:
        reply = self.ask(addr, M.Configure(component, name, settings, ports), M.Configured, timeout)
        if reply.error:
            raise KernelError(f"{name}: configuration refused: {reply.error}")

    def view(self, addr: ActorAddress, timeout: float = 30.0, **args: Any) -> bytes:
        """A view (``Query("view", args)``): its gzip-compressed JSON; KernelError with the
        actor's reason where it refused (``bad request: ...`` for bad arguments)."""
        reply = self.ask(addr, M.Query("view", args), (M.ViewReply, M.QueryReply), timeout,
                         match=lambda r: r.what == "view")
        if reply.error:
            raise KernelError(reply.error)
        if type(reply) is not M.ViewReply:
            raise KernelError("an answer that is not a view")
        return reply.body

    def query(self, addr: ActorAddress, what: str, timeout: float = 30.0, **args: Any) -> Any:
        reply = self.ask(addr, M.Query(what, args), M.QueryReply, timeout, match=lambda r: r.what == what)
        if reply.error:
            raise KernelError(reply.error)
        return reply.result


def address_text(addr: ActorAddress) -> str:
    return TcpAddresses().format(addr)
