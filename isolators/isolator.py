"""The isolator life cycle, as in Mesos (``include/mesos/slave/isolator.hpp``).

A containerizer runs each container through its isolators, in table order: ``recover``,
``prepare`` (raise :class:`~actors.ports.ContainerError` to fail the launch), ``isolate``
(the process waits at the gate), ``watch`` (a :class:`Limitation`, or None), ``update``,
``usage``, ``cleanup`` (which may see a container never prepared, or only in part).
Every step has a harmless default.  The per-container record is :class:`Container`; each
isolator keeps its own state in ``container.state`` under its name.

See docs/isolation.md, 'The isolator life cycle'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.protocol.messages import AssignedGpu, Reason, TaskInfo

from .limits import DeviceRule

#: The wrapper that gives a task a mount namespace of its own.
UNSHARE_MOUNT = ["unshare", "--mount", "--propagation", "private", "--"]


@dataclass(frozen=True, slots=True)
class Limitation:
    """A limit the container broke: its task fails with this reason and message."""

    reason: Reason
    message: str


@dataclass
class Container:
    """What the containerizer and its isolators know of one container."""

    id: str                      #: the executor's container id ("c3", or "c3.1" when nested)
    path: tuple[str, ...]        #: a host-unique name in parts: (agent, container[, nested])
    task: TaskInfo
    sandbox: str
    gpus: tuple[AssignedGpu, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: directories appended to PATH-like variables (``PATH``, ``LD_LIBRARY_PATH``)
    env_paths: dict[str, list[str]] = field(default_factory=dict)
    #: argv prefixes that enter namespaces (``nsenter --net=...``, ``unshare --mount``)
    wrappers: list[list[str]] = field(default_factory=list)
    #: shell commands run inside those namespaces before the task (mounts)
    setup: list[str] = field(default_factory=list)
    #: argv prefixes the gate execs the task through (``setpriv ...``)
    exec_wrappers: list[list[str]] = field(default_factory=list)
    #: the devices the task may use, when device isolation is on
    devices: list[DeviceRule] = field(default_factory=list)
    #: the devices are isolated by a private /dev of the task's own, made at the gate
    private_dev: bool = False
    ip_addresses: list[str] = field(default_factory=list)
    pid: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def cpus(self) -> float:
        return float(self.task.resources.cpus)

    @property
    def mem(self) -> float:
        return float(self.task.resources.mem)

    def flat_name(self, sep: str = "-") -> str:
        return sep.join(self.path)

    def wrap(self, wrapper: list[str]) -> None:
        """Run the task's process through ``wrapper`` (once, however many isolators ask)."""
        if wrapper not in self.wrappers:
            self.wrappers.append(wrapper)


class Isolator:
    """An isolator with every step at its harmless default."""

    name = "isolator"

    def recover(self, containers: list[Container]) -> None:
        """Containers known after a restart (nothing to do by default)."""

    def prepare(self, c: Container) -> None:
        """Before the process exists."""

    def isolate(self, c: Container, pid: int) -> None:
        """The process exists and waits at the gate."""

    def watch(self, c: Container) -> Limitation | None:
        return None

    def update(self, c: Container, resources: Any) -> None:
        """The container's resources changed."""

    def usage(self, c: Container, stats: dict[str, float]) -> None:
        """Add measured statistics to ``stats``."""

    def processes(self, c: Container) -> list[int] | None:
        """Every process of the container, if this isolator can tell (cgroups can)."""
        return None

    def signal(self, c: Container, sig: int) -> bool:
        """Signal every process of the container; False if this isolator cannot."""
        return False

    def cleanup(self, c: Container) -> None:
        """The container is gone (or was never fully prepared)."""
