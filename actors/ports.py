"""The contracts of the ports injected into actors.

Actor logic depends on these interfaces only.  Implementations live in
``isolators/`` (a real host: processes, cgroups, NVML) and ``sim/`` (virtual
time); the wiring names them by dotted path in each actor's ``Configure``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from actors.protocol.codec import pack_value
from actors.protocol.messages import AssignedGpu, Reason, ResourceStatistics, TaskInfo
from actors.protocol.resources import Resources


class Addresses:
    """The address port: turns actor addresses into strings and back.

    Addresses travel inside messages (for instance the master's address in an
    agent's configuration) as strings; each host knows its own form.
    """

    def format(self, addr: Any) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def parse(self, text: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class ContainerError(Exception):
    """A container could not be launched (the task fails with this reason and message)."""

    def __init__(self, message: str, reason: Reason = Reason.REASON_CONTAINER_LAUNCH_FAILED) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Launched:
    pid: int = 0
    ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerExit:
    """A container's main process ended.

    ``status``: the exit code (>= 0), minus the signal number (< 0), or None if
    unknown.  ``reason``/``message``: set when the container was stopped for a
    limitation (memory, pids, ...), which then decides the task's reason.
    """

    container_id: str
    status: int | None
    reason: Reason | None = None
    message: str = ""


class Containerizer(Protocol):
    """Runs containers for an executor, and tells it when they end.

    The executor polls: after any change it asks :meth:`next_check` how long
    until :meth:`reap` may have news, and sets a timer for that.  A real host
    answers a short polling period while anything runs; the simulator answers
    the exact time of the next exit.

    A container outlives its executor: :meth:`destroy` ends it (and frees what it
    held) once the executor's terminal update for it has been taken in charge.

    ``gpus`` are the whole GPUs the agent gave the task (the containerizer
    isolates them); :meth:`usage` answers the container's measured usage, or
    None where nothing is measured (the simulator).
    """

    def launch(self, container_id: str, task: TaskInfo, sandbox: str,
               gpus: tuple[AssignedGpu, ...] = ()) -> Launched: ...

    def kill(self, container_id: str, hard: bool = False) -> None: ...

    def reap(self) -> list[ContainerExit]: ...

    def next_check(self) -> float | None: ...

    def usage(self, container_id: str) -> ResourceStatistics | None: ...

    def output_tail(self, container_id: str, max_bytes: int) -> bytes: ...

    def destroy(self, container_id: str) -> None: ...

    def shutdown(self) -> None: ...

    def recover(self, container_id: str, task: TaskInfo, sandbox: str) -> bool:
        """Re-attach to a container launched by an executor that is gone (its agent
        restarted): True if the container is still known - running, or ended with an
        exit that :meth:`reap` will report - else False."""
        ...


@dataclass(frozen=True, slots=True)
class Discovered:
    """What an agent's host has to offer."""

    resources: Resources
    hostname: str
    details: dict[str, Any]


class Discovery(Protocol):
    def __call__(self) -> Discovered: ...


class MessageAuth(Protocol):
    """The ``auth`` port (``actors.security.auth.Authenticator``): seals what the actor sends in a
    signed envelope, and opens what it receives, raising ``actors.security.auth.AuthError`` for
    a message that is not authentic or not fresh.  The host's factory gives it the
    actor's principal, its secret and those of the principals it may hear from, and an
    incarnation that grows with every start of the actor (``impresario.security`` on a
    real host, ``sim.auth`` in the simulator)."""

    def seal(self, payload: bytes) -> bytes: ...

    def open(self, data: bytes) -> tuple[str, bytes]:
        """(the sender's principal, the message's bytes)."""
        ...


class Store(Protocol):
    """Durable records of one actor: the master's registry, an agent's checkpoints.

    Keys are strings.  ``put`` takes a value the codec packs (an ``@value`` dataclass,
    a message, a string) and the store keeps it packed by :func:`actors.protocol.codec.pack_value`;
    ``load`` answers every record as those bytes, as last written, and the actor decodes
    them with :func:`actors.protocol.codec.unpack_value`.  What was written before ``flush``
    returned survives the actor's process.
    """

    def load(self) -> dict[str, bytes]: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def flush(self) -> None: ...


class MemoryStore:
    """A :class:`Store` in a dict that outlives the actor (the simulator keeps one per
    actor, as a host keeps a work directory).

    By default it keeps the values themselves and packs them when they are read back:
    the same bytes as a store that packs at once, without packing what is never read
    (most checkpoints of a simulated run are overwritten before any restart).  The
    values are immutable, so nothing changes them in between.  With ``pack_on_put``
    it packs at once, as a store on disk does: the writer pays for it, and a reader
    (a new master loading its registry) pays only for decoding.
    """

    def __init__(self, records: dict[str, Any] | None = None, pack_on_put: bool = False) -> None:
        self.records: dict[str, Any] = {} if records is None else records
        self.pack_on_put = pack_on_put
        self.writes = 0

    def load(self) -> dict[str, bytes]:
        out = {}
        for key, v in self.records.items():
            out[key] = v if type(v) is bytes else pack_value(v)
        return out

    def put(self, key: str, value: Any) -> None:
        self.records[key] = pack_value(value) if self.pack_on_put else value
        self.writes += 1

    def delete(self, key: str) -> None:
        self.records.pop(key, None)
        self.writes += 1

    def flush(self) -> None:
        pass
