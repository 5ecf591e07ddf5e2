"""What a test of a core (``actors.core``) needs in place of a host: addresses that are
their own text, and a master core fed the messages of a cluster at scale."""

from __future__ import annotations

from sim.bench import Names, busy_master

__all__ = ["Names", "busy_master"]
