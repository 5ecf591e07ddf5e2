"""Following one master among candidates: what agents and frameworks share.

A :class:`MasterList` holds where masters may run (``candidates``, from the ``masters``
setting, else the one ``master`` address), which of them is tried now (``index``) and
the master followed (``master``).  When the followed master goes silent the next
candidate is tried; a master calling from an address not in the list (restarted
elsewhere, or a standby) takes the place of the candidate tried; and the actor's host may
send a fresh list (:class:`~actors.protocol.messages.Masters`, from the actor's own
principal).  Plain code: the actor reports through what it is given.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from actors.config import ConfigError, setting
from actors.protocol import messages as M


class Follower(Protocol):
    """What a :class:`MasterList` reports through: an actor, or a core."""

    component: ClassVar[str]
    name: str
    stats: Counter[str]
    log: logging.Logger

    def drop(self, reason: str, sender: Any = None) -> None: ...

    def address_of(self, text: str) -> Any: ...


def candidates_from(settings: dict[str, Any], parse: Callable[[str], Any]) -> list[Any]:
    """Where masters may run: the ``masters`` list, else the one ``master`` address."""
    masters = setting(settings, "masters", list, []) or [setting(settings, "master", str)]
    try:
        return [parse(str(t)) for t in masters]
    except (ValueError, TypeError) as e:
        raise ConfigError(f"masters: {e}") from None


class MasterList:
    """The candidates, the one tried now, and the master followed."""

    __slots__ = ("candidates", "index", "master")

    def __init__(self, candidates: list[Any] | None = None) -> None:
        self.candidates: list[Any] = candidates or []
        self.index = 0
        self.master: Any = self.candidates[0] if self.candidates else None

    def next(self) -> None:
        """Follow the next candidate, where there is another."""
        if len(self.candidates) > 1:
            self.index = (self.index + 1) % len(self.candidates)
            self.master = self.candidates[self.index]

    def follow(self, master: Any) -> None:
        """Follow ``master`` (the candidate it is, if it is one)."""
        self.master = master
        if master in self.candidates:
            self.index = self.candidates.index(master)

    def adopt(self, master: Any) -> None:
        """A master calls from an address the list does not name: it takes the place of
        the candidate tried now."""
        self.candidates[self.index] = master

    def take(self, m: M.Masters, sender: Any, who: Follower, following: bool, principal: str | None,
             own: str | None, authenticates: bool) -> bool:
        """A fresh list from the actor's host (``principal`` sent it; ``own`` is the actor's
        own).  The followed master stays followed where the list names it, or while the
        actor is registered with it.  True: it is not, and the actor is to look for the
        first master of the list now."""
        if authenticates and principal != own:
            who.stats["calls_wrong_principal"] += 1
            who.drop(f"MASTERS from principal {principal!r}, not this actor's own", sender)
            return False
        found: list[Any] = []
        try:
            for text in m.addresses:
                if not text:
                    raise ValueError("an empty address")
                addr = who.address_of(text)
                if addr not in found:
                    found.append(addr)
        except (ConfigError, ValueError, TypeError) as e:
            who.drop(f"MASTERS with an unusable address: {e}", sender)
            return False
        if not found:
            who.drop("MASTERS naming no master", sender)
            return False
        who.stats["master_lists"] += 1
        if self.master in found:
            self.candidates, self.index = found, found.index(self.master)
        elif following and self.master is not None:
            self.candidates, self.index = [self.master, *found], 0
        else:
            who.log.info("%s %s: masters now at %s; trying the first", who.component, who.name,
                         ", ".join(m.addresses))
            self.candidates, self.index, self.master = found, 0, found[0]
            return True
        return False
