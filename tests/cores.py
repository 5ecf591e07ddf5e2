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
