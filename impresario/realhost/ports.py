"""Ports for the real host: the wall clock and Thespian TCP addresses.

On a real host every kernel actor runs in a Thespian ``multiprocTCPBase``
system; an actor's address is the TCP endpoint of its own process, written
``"IP:PORT"`` when it travels inside a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from thespian.actors import ActorAddress
from thespian.system.transport.IPBase import TCPv4ActorAddress

from actors.config import ConfigError
from actors.ports import Addresses

SYSTEM_BASE = "multiprocTCPBase"


class TcpAddresses(Addresses):
    def format(self, addr: ActorAddress) -> str:
        details = addr.addressDetails
        sockname = getattr(details, "sockname", None)
        if sockname is None:
            return str(details)
        host, port = sockname[0], sockname[1]
        return f"{host}:{port}"

    def parse(self, text: str) -> ActorAddress:
        return parse_tcp_address(text)


def parse_tcp_address(text: str) -> ActorAddress:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"not an actor address (HOST:PORT): {text!r}")
    return ActorAddress(TCPv4ActorAddress(host, int(port), external=True))


def clock(actor: Any, settings: dict[str, Any]) -> Callable[[], float]:
    return time.time


def stopwatch(actor: Any, settings: dict[str, Any]) -> Callable[[], float]:
    """A monotonic clock for timing work (the allocator's runs), in seconds."""
    return time.perf_counter


def addresses(actor: Any, settings: dict[str, Any]) -> Addresses:
    return TcpAddresses()


#: The ports every actor gets on a real host.
BASE_PORTS: tuple[tuple[str, str], ...] = (
    ("clock", "impresario.realhost.ports:clock"),
    ("addresses", "impresario.realhost.ports:addresses"),
    ("stopwatch", "impresario.realhost.ports:stopwatch"),
)
