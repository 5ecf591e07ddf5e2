"""The built-in batch framework: runs a list of command tasks to completion.

Settings (beside the framework's own):

``tasks``
    a list of task specifications, each a map with ``cpus``, ``mem`` (MiB or a
    size string), optional ``disk``, ``gpus``, and either ``command`` (a shell
    command) or ``duration`` (a number of seconds or a distribution such as
    ``"exp(60s)"`` / ``"uniform(10s,120s)"``), optional ``count`` (default 1),
    ``name`` (the id prefix), ``exit_code`` and ``labels``.  A task with a
    duration and no command runs ``sleep <duration x time_scale>`` on a real
    host; in the simulator the containerizer reads the duration from the task's
    ``impresario.sim/duration`` label.
``time_scale``
    multiplies durations for the real host's ``sleep`` (default 1).
``refuse_seconds``
    the filter sent with offers it cannot use (default 5).
``max_retries``
    how many times a task that failed or was lost is resubmitted (default 0).
``teardown_when_done``
    end the framework (TEARDOWN) once every task is terminal (default false).
``keep_results``
    keep each task's final status (state, reason, message, output tail) for the
    ``results`` query (default false: at scale that is memory for nothing).

Placement is first fit over the pending tasks grouped by shape, oldest shape
first, so one offer costs a few checks however many tasks wait.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from . import messages as M
from .base import ConfigError
from .framework import Framework
from .messages import TaskState
from .resources import ResourceError, Resources
from .units import Distribution, UnitError, parse_distribution, parse_size

TS = TaskState
DURATION_LABEL = "impresario.sim/duration"
EXIT_CODE_LABEL = "impresario.sim/exit_code"
RETRY_STATES = frozenset({TS.TASK_FAILED, TS.TASK_LOST, TS.TASK_DROPPED, TS.TASK_GONE})


@dataclass(slots=True)
class Shape:
    """One task specification: everything but the id and the sampled duration."""

    key: int
    name: str
    resources: Resources
    command: str | None
    duration: Distribution | None
    exit_code: int | None
    labels: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Pending:
    task_id: str
    shape: Shape
    duration: float | None
    attempt: int = 0


def parse_task_spec(spec: Any, index: int) -> tuple[dict[str, Any], int]:
    """Validate one task specification; returns (normalised fields, count)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"tasks[{index}] must be a map")
    known = {"name", "count", "cpus", "mem", "disk", "gpus", "command", "duration", "exit_code", "labels"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"tasks[{index}]: unknown key {unknown[0]!r}")
    try:
        cpus = float(spec.get("cpus", 0))
        mem = parse_size(spec.get("mem", 0))
        disk = parse_size(spec.get("disk", 0))
        gpus = float(spec.get("gpus", 0))
        resources = Resources.of(cpus=cpus, mem=mem, disk=disk, gpus=gpus)
    except (ValueError, TypeError, UnitError, ResourceError) as e:
        raise ConfigError(f"tasks[{index}]: {e}") from None
    if resources.is_empty():
        raise ConfigError(f"tasks[{index}]: a task needs some cpus or mem")
    if gpus != int(gpus):
        raise ConfigError(f"tasks[{index}]: gpus must be a whole number, got {gpus}")
    count = spec.get("count", 1)
    if type(count) is not int or count < 0:
        raise ConfigError(f"tasks[{index}]: count must be a non-negative integer")
    command = spec.get("command")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise ConfigError(f"tasks[{index}]: command must be a non-empty string")
    duration = None
    if "duration" in spec:
        try:
            duration = parse_distribution(spec["duration"])
        except UnitError as e:
            raise ConfigError(f"tasks[{index}]: duration: {e}") from None
    if command is None and duration is None:
        raise ConfigError(f"tasks[{index}]: give a command or a duration")
    exit_code = spec.get("exit_code")
    if exit_code is not None and (type(exit_code) is not int or not 0 <= exit_code <= 255):
        raise ConfigError(f"tasks[{index}]: exit_code must be 0..255")
    labels = spec.get("labels", {})
    if not isinstance(labels, dict):
        raise ConfigError(f"tasks[{index}]: labels must be a map")
    name = spec.get("name", f"task{index}")
    if not isinstance(name, str) or not name or "/" in name or " " in name:
        raise ConfigError(f"tasks[{index}]: name must be a non-empty id prefix")
    return {
        "name": name, "resources": resources, "command": command, "duration": duration,
        "exit_code": exit_code, "labels": tuple(sorted((str(k), str(v)) for k, v in labels.items())),
    }, count


def make_task(task_id: str, agent_id: str, resources: Resources, command: str | None = None,
              duration: float | None = None, exit_code: int | None = None,
              labels: tuple[tuple[str, str], ...] = (), time_scale: float = 1.0,
              kill_grace_seconds: float | None = None) -> M.TaskInfo:
    """A command task that runs the same way on both hosts.

    With a ``duration`` and no ``command`` it runs ``sleep <duration x time_scale>``
    on a real host; the simulator reads the duration label.  An ``exit_code``
    makes the command end with that code (and the simulated container too).
    """
    all_labels = list(labels)
    if duration is not None:
        all_labels.append((DURATION_LABEL, repr(round(duration, 6))))
        if command is None:
            command = f"sleep {round(duration * time_scale, 3)}"
    if exit_code is not None:
        all_labels.append((EXIT_CODE_LABEL, str(exit_code)))
        command = f"{command or 'true'}; exit {exit_code}"
    if command is None:
        raise ValueError(f"task {task_id}: give a command or a duration")
    return M.TaskInfo(task_id, task_id, agent_id, resources, M.CommandInfo(command),
                      labels=tuple(all_labels), kill_grace_seconds=kill_grace_seconds)


class BatchFramework(Framework):
    """Runs a fixed list of command tasks; done when every one is terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[Shape] = []
        self.queues: dict[int, deque[Pending]] = {}
        self.attempts: dict[str, Pending] = {}
        self.time_scale = 1.0
        self.refuse_seconds = 5.0
        self.max_retries = 0
        self.teardown_when_done = False
        self.total_tasks = 0
        self._ids: list[list[str]] = []
        self._suppressing = False
        self.keep_results = False
        self.results: dict[str, dict[str, Any]] = {}

    def setup(self, settings: dict[str, Any]) -> None:
        specs = settings.get("tasks", [])
        if not isinstance(specs, list):
            raise ConfigError("tasks must be a list")
        self.time_scale = float(settings.get("time_scale", 1.0))
        self.refuse_seconds = float(settings.get("refuse_seconds", 5.0))
        self.max_retries = int(settings.get("max_retries", 0))
        self.teardown_when_done = bool(settings.get("teardown_when_done", False))
        self.keep_results = bool(settings.get("keep_results", False))
        self._ids = []
        seen: set[str] = set()
        for i, spec in enumerate(specs):
            fields, count = parse_task_spec(spec, i)
            shape = Shape(i, **fields)
            ids = [shape.name] if count == 1 else [f"{shape.name}-{n}" for n in range(count)]
            clash = next((t for t in ids if t in seen), None)
            if clash is not None:
                raise ConfigError(f"two tasks would be called {clash!r}: give the specs distinct names")
            seen.update(ids)
            self.shapes.append(shape)
            self._ids.append(ids)
        self.total_tasks = len(seen)

    def started(self) -> None:
        # Submission happens now, so latencies count from the start of the run.
        now = self.now()
        for shape, ids in zip(self.shapes, self._ids, strict=True):
            q = self.queues.setdefault(shape.key, deque())
            for tid in ids:
                dur = shape.duration.sample(self.rng) if shape.duration is not None else None
                p = Pending(tid, shape, dur)
                q.append(p)
                self.attempts[tid] = p
                self.tracker.submit(tid, now)
        self._ids = []
        if not self.attempts:
            self.done_at = now
        super().started()

    # ------------------------------------------------------------------ scheduling

    def pending_count(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def subscribed(self, framework_id: str) -> None:
        if not self.pending_count():
            self._suppress()

    def resource_offers(self, offers: list[M.Offer]) -> None:
        for offer in offers:
            tasks = self._fill(offer)
            if tasks:
                self.launch(offer, tasks, self.refuse_seconds)
            else:
                self.decline([offer.offer_id], self.refuse_seconds)
        if not self.pending_count():
            self._suppress()

    def _fill(self, offer: M.Offer) -> list[M.TaskInfo]:
        left = offer.resources
        out: list[M.TaskInfo] = []
        # Shapes in the order they were specified; within a shape, oldest first.
        for key in sorted(self.queues):
            q = self.queues[key]
            while q:
                need = q[0].shape.resources.with_role(offer.role)
                if not left.contains(need):
                    break
                p = q.popleft()
                left = left - need
                out.append(self._task_info(p, offer, need))
        return out

    def _task_info(self, p: Pending, offer: M.Offer, res: Resources) -> M.TaskInfo:
        shape = p.shape
        return make_task(p.task_id, offer.agent_id, res, command=shape.command, duration=p.duration,
                         exit_code=shape.exit_code, labels=shape.labels, time_scale=self.time_scale)

    def _suppress(self) -> None:
        if not self._suppressing and self.connected:
            self._suppressing = True
            self.suppress()

    def _revive(self) -> None:
        if self._suppressing and self.connected:
            self._suppressing = False
            self.revive()

    def status_update(self, status: M.TaskStatus) -> None:
        if not status.state.terminal:
            return
        if self.keep_results:
            self.results[status.task_id] = {
                "state": str(status.state), "reason": str(status.reason) if status.reason else None,
                "message": status.message, "agent_id": status.agent_id,
                "output": status.data.decode(errors="replace")}
        p = self.attempts.get(status.task_id)
        if status.state in RETRY_STATES and p is not None and p.attempt < self.max_retries:
            retry = Pending(f"{p.task_id.split('~')[0]}~{p.attempt + 1}", p.shape, p.duration, p.attempt + 1)
            self.attempts[retry.task_id] = retry
            self.tracker.submit(retry.task_id, self.now())
            self.queues.setdefault(p.shape.key, deque()).append(retry)
            self._revive()
            return
        if self.is_done() and self.done_at is None:
            self.done_at = self.now()
            if self.teardown_when_done:
                self.teardown()

    def is_done(self) -> bool:
        if not self.configured:
            return False
        return self.tracker.outstanding == 0 and not self.pending_count()

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["pending_in_queue"] = self.pending_count()
        return out

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "results":
            return self.results
        return super().query(what, args)
