"""Authenticated messages in the simulator: the kernel's own ``actors.security.auth``, with
secrets made in memory for the scenario.

``[sim] authenticate = true`` gives every actor the ``auth`` port (:func:`authenticator`);
the harness signs as ``operator``.  :class:`SimAuth` derives one secret per principal from the
seed, names principals (:func:`principal_for`), and gives incarnations from the virtual
clock, always above the last one for the same name.  Nothing is drawn from an actor's random
stream, so turning authentication on changes no random draw of the run.

See docs/simulation.md, 'Authentication'.
"""

from __future__ import annotations

import hashlib
from typing import Any

from actors.config import ConfigError
from actors.security.auth import Authenticator, Credentials, principal_error

AUTH_PORT = ("auth", "sim.auth:authenticator")
HARNESS_PRINCIPAL = "operator"
HARNESS_ORIGIN = "harness"


def principal_for(component: str, settings: dict[str, Any]) -> str:
    """The principal an actor signs as in the simulator."""
    given = settings.get("principal")
    if given is not None:
        return str(given)
    if component in ("master", "allocator"):
        return "master"
    if component in ("agent", "executor"):
        return "agent"
    if component == "framework":
        return f"framework:{settings.get('name', '')}"
    return component


class SimAuth:
    """A simulation's secrets and the incarnations it gave out."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.credentials = Credentials()
        self.incarnations: dict[str, int] = {}
        self.add(HARNESS_PRINCIPAL)

    def secret(self, principal: str) -> bytes:
        return hashlib.sha256(f"impresario-sim-secret\0{self.seed}\0{principal}".encode()).digest()

    def add(self, principal: str) -> None:
        """Declare ``principal`` (with its secret), if it is not yet."""
        if principal not in self.credentials:
            self.credentials.add(principal, self.secret(principal))

    def incarnation(self, name: str, now: float) -> int:
        digest = hashlib.blake2b(f"{self.seed}:{name}".encode(), digest_size=8).digest()
        inc = int(now * 1e9) + (int.from_bytes(digest, "big") & (2**20 - 1))
        last = self.incarnations.get(name)
        if last is not None and inc <= last:
            inc = last + 1
        self.incarnations[name] = inc
        return inc

    def authenticator(self, principal: str, origin: str, now: float) -> Authenticator:
        err = principal_error(principal)
        if err:
            raise ConfigError(f"principal {principal!r}: {err}")
        self.add(principal)
        signer = self.credentials.signer(principal, origin, self.incarnation(origin, now))
        return Authenticator(signer, self.credentials.verifier())


def authenticator(actor: Any, settings: dict[str, Any]) -> Authenticator:
    """The ``auth`` port factory for the simulator."""
    host = actor._myRef.host
    auth: SimAuth | None = getattr(host, "auth", None)
    if auth is None:
        raise ConfigError("the auth port needs a simulation with authentication on ([sim] authenticate = true)")
    return auth.authenticator(principal_for(actor.component, settings), actor.name, host.env._now)
