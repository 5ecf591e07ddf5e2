"""Which whole GPUs a task gets: the agent's pool of GPU devices (pure logic).

The agent offers ``gpus`` as a number; the devices behind it come from
discovery (NVML: index, minor number, UUID).  A task asking for N GPUs gets
the N free devices with the lowest indexes, and gives them back when it
ends.  The containerizer isolates what was assigned: the device cgroup grants
those minors only, and the task sees them in ``NVIDIA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from actors.protocol.messages import AssignedGpu

Key = tuple[str, str]   # (framework id, task id)


class GpuPool:
    def __init__(self, devices: Iterable[Mapping[str, Any]]) -> None:
        self.devices = {int(d["index"]): (int(d["minor"]), str(d.get("uuid", ""))) for d in devices}
        self.free = sorted(self.devices)
        self.held: dict[Key, list[int]] = {}

    @classmethod
    def unbacked(cls, n: int) -> GpuPool:
        """``n`` GPUs declared (``--resources gpus:N``) with no device discovered behind them."""
        return cls({"index": i, "minor": i, "uuid": ""} for i in range(n))

    def __len__(self) -> int:
        return len(self.devices)

    def take(self, framework_id: str, task_id: str, n: int) -> tuple[AssignedGpu, ...] | None:
        """Assign ``n`` GPUs to the task, or None if fewer are free (nothing changes then)."""
        key = (framework_id, task_id)
        if n <= 0 or key in self.held:
            return () if n <= 0 else None
        if len(self.free) < n:
            return None
        taken, self.free = self.free[:n], self.free[n:]
        self.held[key] = taken
        return tuple(AssignedGpu(task_id, i, *self.devices[i]) for i in taken)

    def claim(self, framework_id: str, task_id: str, gpus: tuple[AssignedGpu, ...]) -> bool:
        """Hold again the GPUs a recovered task had (after an agent restart); False if one of
        them is no longer this agent's or is held already (nothing changes then)."""
        want = [g.index for g in gpus if g.task_id == task_id]
        key = (framework_id, task_id)
        if not want or key in self.held:
            return not want
        if any(i not in self.free for i in want):
            return False
        self.free = [i for i in self.free if i not in want]
        self.held[key] = sorted(want)
        return True

    def give_back(self, framework_id: str, task_id: str) -> None:
        taken = self.held.pop((framework_id, task_id), None)
        if taken:
            self.free = sorted(self.free + taken)

    def view(self) -> dict[str, Any]:
        return {"free": list(self.free), "held": {f"{f}/{t}": v for (f, t), v in sorted(self.held.items())}}
