"""Finding masters on a real host: join the convention of the first master that
answers, look a master's actor up at a ``HOST:PORT``, and watch for masters again while
an agent (or a framework) has lost its own.

The kernel's actors notice a lost master themselves (by their heartbeats); a
convention is used only to look a master's actor up by its global name.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from actors.protocol import messages as M

from .hardening import resolve_listen
from .system import Address, Client, KernelError, System, address_text, free_port, log_defs

MASTER_CLASS = "actors.master.actor.Master"
MASTER_GLOBAL_NAME = "impresario-master"
#: The capability a master's system declares (see actors.master.actor.MASTER_CAPABILITY).
MASTER_SYSTEM = {"impresario.master": True}


def join(masters: list[tuple[str, int]], listen: str | None, port: int | None, log_path: str | None,
         log_level: str, max_frame: int | None = None, actor_packages: tuple[str, ...] = (),
         timeout: float = 30.0, auth: Any = None, principal: str = "operator") -> tuple[System, Address, tuple[str, int]]:
    """Start a Thespian system joined to the convention of the first of ``masters`` that
    answers; find the master actor there.  Returns the system, the master's address and
    the ``HOST:PORT`` it was found at.

    It listens on ``listen``; by default on loopback for a master there, else on this
    host's address on the route to the master."""
    failures = []
    for host, mport in masters:
        try:
            with socket.create_connection((host, mport), timeout=5):
                pass
        except OSError as e:
            failures.append(f"{host}:{mport} ({e.strerror or e})")
            continue
        bind = resolve_listen(listen or ("127.0.0.1" if is_loopback(host) else route_to(host, mport)))
        system = System({"Admin Port": port or free_port(bind), "Convention Address.IPv4": (host, mport)},
                        log_defs(log_path, log_level), bind, max_frame, actor_packages)
        addr, why = find_master(system, timeout, auth, principal)
        if addr is not None:
            return system, addr, (host, mport)
        system.shutdown()
        failures.append(f"{host}:{mport} ({why})")
    raise KernelError("no master at " + "; ".join(failures))


def find_master(system: System, timeout: float, auth: Any, principal: str) -> tuple[Address | None, str]:
    """The configured master actor of the convention ``system`` joined, found by its global
    name; or None and why not."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            addr = system.create(MASTER_CLASS, MASTER_GLOBAL_NAME, MASTER_SYSTEM)
            stats = system.client(auth.client(principal) if auth is not None else None).query(
                addr, "stats", timeout=10)
            if stats.get("configured"):
                return addr, ""
            last = "the master there is not configured"
        except Exception as e:  # not joined yet, or nobody there
            last = str(e) or type(e).__name__
        time.sleep(0.5)
    if auth is None:
        last += "; a master that authenticates drops unsigned calls: give --secrets FILE"
    return None, last


def look_up(host: str, port: int, listen: str, max_frame: int | None, auth: Any,
            principal: str) -> tuple[str | None, str]:
    """The address of the master actor at ``host:port``, found through a short-lived system
    joined to its convention; or None and why not."""
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        return None, f"not reachable: {e.strerror or e}"
    system = System({"Admin Port": free_port(listen), "Convention Address.IPv4": (host, port)}, None, listen,
                    max_frame)
    try:
        addr, why = find_master(system, 15.0, auth, principal)
    finally:
        system.shutdown()
    return (address_text(addr), "") if addr is not None else (None, why)


def other_masters(masters: list[tuple[str, int]], found_at: tuple[str, int], master: Address, listen: str,
                  max_frame: int | None, auth: Any, principal: str) -> tuple[list[str], list[str]]:
    """Where masters may run, for an agent or a framework to follow: the master it joined,
    then every other of ``masters`` (in their order, from the one after it) whose master
    actor answers now; and a line for each left out because it does not answer now (see
    :class:`MasterWatch` for how it is found later)."""
    out = [address_text(master)]
    left_out = []
    i = masters.index(found_at)
    for host, mport in masters[i + 1:] + masters[:i]:
        addr, why = look_up(host, mport, listen, max_frame, auth, principal)
        if addr is None:
            left_out.append(f"master {host}:{mport} left out for now ({why})")
        elif addr not in out:
            out.append(addr)
    return out, left_out


class MasterWatch:
    """The host's part in finding masters: while its agent (framework) has lost its master,
    look the configured masters up again, at most every ``every`` seconds, and tell the
    actor where they run now (:class:`actors.protocol.messages.Masters`).  Thus a master
    that was not running when the command started, or one restarted at a new address
    without a registry to call its agents back from, is found."""

    def __init__(self, masters: list[tuple[str, int]], listen: str, max_frame: int | None, auth: Any,
                 principal: str, client: Client, actor: Address, every: float = 30.0) -> None:
        self.masters, self.listen, self.max_frame = masters, listen, max_frame
        self.auth, self.principal, self.client, self.actor, self.every = auth, principal, client, actor, every
        self.lost_since: float | None = None
        self.next_look = 0.0

    def check(self, lost: bool) -> None:
        """Called every few seconds with whether the actor has lost its master."""
        now = time.monotonic()
        if not lost:
            self.lost_since = None
            return
        if self.lost_since is None:
            self.lost_since = now
            return
        if now < self.next_look:
            return
        self.next_look = now + self.every
        found = []
        for host, port in self.masters:
            addr, _ = look_up(host, port, self.listen, self.max_frame, self.auth, self.principal)
            if addr is not None and addr not in found:
                found.append(addr)
        if found:
            self.client.tell(self.actor, M.Masters(tuple(found)))


def route_to(host: str, port: int) -> str:
    """This host's address on the route to ``host`` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return str(s.getsockname()[0])
    except OSError as e:
        raise KernelError(f"no route to {host}: {e.strerror or e}; give --listen") from None


def is_loopback(host: str) -> bool:
    try:
        return socket.gethostbyname(host).startswith("127.")
    except OSError:
        return False
