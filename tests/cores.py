"""What a test of a core (``actors.core``) needs in place of a host."""

from __future__ import annotations

from typing import Any

from actors.ports import Addresses


class Names(Addresses):
    """Addresses that are their own text: a test names its peers with strings."""

    def format(self, addr: Any) -> str:
        return str(addr)

    def parse(self, text: str) -> Any:
        return text



def busy_master(agents: int, tasks: int, frameworks: int = 10, running: bool = True) -> Any:
    """A master core at scale (see :func:`sim.bench.busy_master`)."""
    from sim.bench import busy_master as build

    return build(agents, tasks, frameworks, running)
