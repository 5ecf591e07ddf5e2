"""The built-in batch framework: runs a workload of command tasks to completion.

Its settings (``tasks`` specifications with their arrival processes, ``trace``,
``stop_services_at``, ``hold_seconds``, ``batch_seconds``, ``max_retries``, ...) are in
docs/frameworks.md, 'The batch framework'.  Placement is first fit over pending tasks
grouped by shape; arrivals are one sorted stream with one timer; unused offers are held
while more work is due (a REVIVE would bring back every declined offer), then declined,
and offers suppressed once nothing more comes.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from actors.config import ConfigError
from actors.frameworks.base import Framework
from actors.protocol import messages as M
from actors.protocol.messages import TaskState
from actors.protocol.resources import ResourceError, Resources
from actors.protocol.units import (
    Distribution,
    UnitError,
    parse_distribution,
    parse_duration,
    parse_size,
)

TS = TaskState
DURATION_LABEL = "impresario.sim/duration"
EXIT_CODE_LABEL = "impresario.sim/exit_code"
RETRY_STATES = frozenset({TS.TASK_FAILED, TS.TASK_LOST, TS.TASK_DROPPED, TS.TASK_GONE})
SPEC_KEYS = {"name", "count", "cpus", "mem", "disk", "gpus", "command", "duration", "exit_code", "labels",
             "arrival", "start", "service", "user"}


@dataclass(slots=True)
class Arrival:
    kind: str             # at_once | poisson | uniform | diurnal
    a: float = 0.0
    b: float = 0.0
    c: float = 0.0

    def times(self, n: int, start: float, rng: Any) -> list[float]:
        if self.kind == "at_once":
            return [start] * n
        if self.kind == "uniform":
            return sorted(start + rng.uniform(self.a, self.b) for _ in range(n))
        out = []
        t = start
        if self.kind == "poisson":
            for _ in range(n):
                t += rng.expovariate(self.a)
                out.append(t)
            return out
        # diurnal: thinning of a Poisson process at the peak rate.
        peak = self.a * (1 + abs(self.c))
        while len(out) < n:
            t += rng.expovariate(peak)
            rate = self.a * (1 + self.c * math.sin(2 * math.pi * (t - start) / self.b))
            if rng.random() * peak <= rate:
                out.append(t)
        return out


_ARRIVAL = re.compile(r"^\s*(poisson|uniform|diurnal)\s*\(([^)]*)\)\s*$")


def parse_arrival(value: Any, where: str) -> Arrival:
    if value is None or value == "at_once":
        return Arrival("at_once")
    m = _ARRIVAL.match(str(value))
    if not m:
        raise ConfigError(f"{where}: arrival must be at_once, poisson(RATE), uniform(LOW,HIGH) or "
                          f"diurnal(RATE,PERIOD,AMPLITUDE), got {value!r}")
    kind, args = m.group(1), [x.strip() for x in m.group(2).split(",")]
    try:
        if kind == "poisson" and len(args) == 1:
            rate = float(args[0].removesuffix("/s"))
            if rate > 0:
                return Arrival("poisson", rate)
        elif kind == "uniform" and len(args) == 2:
            lo, hi = parse_duration(args[0]), parse_duration(args[1])
            if lo <= hi:
                return Arrival("uniform", lo, hi)
        elif kind == "diurnal" and len(args) == 3:
            rate, period, amp = float(args[0].removesuffix("/s")), parse_duration(args[1]), float(args[2])
            if rate > 0 and period > 0 and 0 <= amp <= 1:
                return Arrival("diurnal", rate, period, amp)
    except (ValueError, UnitError):
        pass
    raise ConfigError(f"{where}: invalid arrival {value!r}")


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
    service: bool = False
    user: str = ""             #: whom the tasks run as ("": the framework's user)


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
    unknown = sorted(set(spec) - SPEC_KEYS)
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
    service = spec.get("service", False)
    if not isinstance(service, bool):
        raise ConfigError(f"tasks[{index}]: service must be true or false")
    duration = None
    if "duration" in spec:
        if service:
            raise ConfigError(f"tasks[{index}]: a service runs until it is stopped: give no duration")
        try:
            duration = parse_distribution(spec["duration"])
        except UnitError as e:
            raise ConfigError(f"tasks[{index}]: duration: {e}") from None
    if command is None and duration is None and not service:
        raise ConfigError(f"tasks[{index}]: give a command, a duration, or service = true")
    exit_code = spec.get("exit_code")
    if exit_code is not None and (type(exit_code) is not int or not 0 <= exit_code <= 255):
        raise ConfigError(f"tasks[{index}]: exit_code must be 0..255")
    labels = spec.get("labels", {})
    if not isinstance(labels, dict):
        raise ConfigError(f"tasks[{index}]: labels must be a map")
    name = spec.get("name", f"task{index}")
    if not isinstance(name, str) or not name or "/" in name or " " in name:
        raise ConfigError(f"tasks[{index}]: name must be a non-empty id prefix")
    user = spec.get("user", "")
    if not isinstance(user, str) or any(c.isspace() or c in ":/" for c in user):
        raise ConfigError(f"tasks[{index}]: user must be a user name")
    arrival = parse_arrival(spec.get("arrival"), f"tasks[{index}]")
    try:
        start = parse_duration(spec.get("start", 0))
    except UnitError as e:
        raise ConfigError(f"tasks[{index}]: start: {e}") from None
    return {
        "name": name, "resources": resources, "command": command, "duration": duration,
        "exit_code": exit_code, "labels": tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        "service": service, "arrival": arrival, "start": start, "user": user,
    }, count


def make_task(task_id: str, agent_id: str, resources: Resources, command: str | None = None,
              duration: float | None = None, exit_code: int | None = None,
              labels: tuple[tuple[str, str], ...] = (), time_scale: float = 1.0,
              kill_grace_seconds: float | None = None, service: bool = False, user: str = "") -> M.TaskInfo:
    """A command task that runs the same way on both hosts.

    With a ``duration`` and no ``command`` it runs ``sleep <duration x time_scale>``
    on a real host; the simulator reads the duration label.  An ``exit_code``
    makes the command end with that code (and the simulated container too).  A
    ``service`` with no command sleeps forever on a real host.  ``user``: whom it runs as
    (its command's user; "" for the framework's).
    """
    all_labels = list(labels)
    if duration is not None:
        all_labels.append((DURATION_LABEL, repr(round(duration, 6))))
        if command is None:
            command = f"sleep {round(duration * time_scale, 3)}"
    elif service and command is None:
        command = "sleep infinity"
    if exit_code is not None:
        all_labels.append((EXIT_CODE_LABEL, str(exit_code)))
        command = f"{command or 'true'}; exit {exit_code}"
    if command is None:
        raise ValueError(f"task {task_id}: give a command or a duration")
    return M.TaskInfo(task_id, task_id, agent_id, resources, M.CommandInfo(command, user=user),
                      labels=tuple(all_labels), kill_grace_seconds=kill_grace_seconds)


class BatchFramework(Framework):
    """Runs a workload of command tasks; done when every one is terminal and no more come."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[Shape] = []
        self.queues: dict[Any, deque[Pending]] = {}
        self.attempts: dict[str, Pending] = {}
        self.time_scale = 1.0
        self.refuse_seconds = 5.0
        self.hold_seconds = 30.0
        self.batch_seconds = 0.1
        self._received = 0.0
        self.max_retries = 0
        self.teardown_when_done = False
        self.total_tasks = 0
        self.stop_services_at: float | None = None
        self._services_stopped = False
        self.services: dict[str, str] = {}     # running service task -> agent
        self.trace = False
        self._specs: list[tuple[Shape, list[str], Arrival, float]] = []
        self._arrivals: list[tuple[float, int, Pending]] = []   # a heap of future submissions
        self._stream: Iterator[tuple[float, Pending]] | None = None
        self._streamed: tuple[float, Pending] | None = None
        self._arrival_seq = 0
        self._trace_shapes: dict[tuple[int, int, int, int], Shape] = {}
        self._start = 0.0
        self._suppressing = False
        self.keep_results = False
        self.results: dict[str, dict[str, Any]] = {}

    def setup(self, settings: dict[str, Any]) -> None:
        specs = settings.get("tasks", [])
        if not isinstance(specs, list):
            raise ConfigError("tasks must be a list")
        self.time_scale = float(settings.get("time_scale", 1.0))
        self.refuse_seconds = float(settings.get("refuse_seconds", 5.0))
        self.hold_seconds = float(settings.get("hold_seconds", 30.0))
        self.batch_seconds = float(settings.get("batch_seconds", 0.1))
        self.max_retries = int(settings.get("max_retries", 0))
        self.teardown_when_done = bool(settings.get("teardown_when_done", False))
        self.keep_results = bool(settings.get("keep_results", False))
        stop = settings.get("stop_services_at")
        if stop is not None and (isinstance(stop, bool) or not isinstance(stop, int | float) or stop < 0):
            raise ConfigError(f"stop_services_at: seconds (a number, at least 0), got {stop!r}")
        self.stop_services_at = float(stop) if stop is not None else None
        self.trace = bool(settings.get("trace"))
        if self.trace and "workload" not in self.ports:
            raise ConfigError("a trace needs a workload port (e.g. sim.traces:trace_workload)")
        seen: set[str] = set()
        for i, spec in enumerate(specs):
            fields, count = parse_task_spec(spec, i)
            arrival, start = fields.pop("arrival"), fields.pop("start")
            shape = Shape(i, **fields)
            ids = [shape.name] if count == 1 else [f"{shape.name}-{n}" for n in range(count)]
            clash = next((t for t in ids if t in seen), None)
            if clash is not None:
                raise ConfigError(f"two tasks would be called {clash!r}: give the specs distinct names")
            seen.update(ids)
            self.shapes.append(shape)
            self._specs.append((shape, ids, arrival, start))
        self.total_tasks = len(seen)

    def started(self) -> None:
        self._start = now = self.now()
        for shape, ids, arrival, start in self._specs:
            times = arrival.times(len(ids), now + start, self.rng)
            for t, tid in zip(times, ids, strict=True):
                dur = shape.duration.sample(self.rng) if shape.duration is not None else None
                self._arrivals.append((t, self._next_seq(), Pending(tid, shape, dur)))
        self._specs = []
        heapq.heapify(self._arrivals)
        if self.trace:
            self._stream = self._trace_arrivals()
            self._pull_stream()
        self._submit_due()
        if self.is_done():
            self.done_at = now
        if self.stop_services_at is not None:
            self.set_timer("stop_services", self.stop_services_at)
        super().started()

    def _next_seq(self) -> int:
        self._arrival_seq += 1
        return self._arrival_seq

    # ------------------------------------------------------------------ arrivals

    def _trace_arrivals(self) -> Iterator[tuple[float, Pending]]:
        for task in self.ports["workload"].arrivals():
            res = Resources.of(cpus=task["cpus"], mem=task["mem"], disk=task.get("disk", 0))
            key = (res.millis("cpus"), res.millis("mem"), res.millis("disk"), task.get("exit_code") or 0)
            shape = self._trace_shapes.get(key)
            if shape is None:
                shape = Shape(len(self.shapes), self.name, res, None, None, task.get("exit_code"), ())
                self.shapes.append(shape)
                self._trace_shapes[key] = shape
            self.total_tasks += 1
            yield self._start + task["time"], Pending(task["id"], shape, task["duration"])

    def _pull_stream(self) -> None:
        """Keep exactly one trace arrival waiting in the heap (the trace is read lazily)."""
        if self._stream is None:
            return
        item = next(self._stream, None)
        if item is None:
            self._stream = None
            return
        t, p = item
        heapq.heappush(self._arrivals, (t, self._next_seq(), p))

    def _submit_due(self) -> None:
        now = self.now()
        arrivals = self._arrivals
        added = False
        killed = False
        while arrivals and arrivals[0][0] <= now + 1e-9:
            _, _, p = heapq.heappop(arrivals)
            if p.shape.service and self._services_stopped:
                # A service due after the services were stopped: it ends as it arrives.
                self.tracker.submit(p.task_id, now)
                self.tracker.update(p.task_id, TS.TASK_KILLED, now)
                killed = True
            else:
                self._enqueue(p, now)
                added = True
            if self._stream is not None:
                self._pull_stream()
        if arrivals:
            self.set_timer("arrive", max(0.0, arrivals[0][0] - now))
        if killed:
            self._check_done()
        if added:
            if self.offers:
                # Launch into the offers held for this, after a short batching window.
                if not self.timer_pending("schedule"):
                    self.set_timer("schedule", self.batch_seconds)
            else:
                self._revive()

    def timer_arrive(self) -> None:
        self._submit_due()

    def timer_schedule(self) -> None:
        self._schedule()
        self._release()

    def timer_hold(self) -> None:
        if self._arrivals and self._arrivals[0][0] <= self.now() + 1e-9:
            # The next arrival is due: its own timer may land a rounding error later, and
            # holding "until it arrives" would re-arm this timer at 0 s for ever.
            self._submit_due()
        self._release()

    def _enqueue(self, p: Pending, now: float) -> None:
        self.attempts[p.task_id] = p
        self.tracker.submit(p.task_id, now)
        self.queues.setdefault(p.shape.key, deque()).append(p)

    def timer_stop_services(self) -> None:
        self.stop_services_at = None
        self._services_stopped = True
        for tid in sorted(self.services):
            self.kill(tid, self.services[tid])
        for q in self.queues.values():
            for p in list(q):
                if p.shape.service:
                    q.remove(p)
                    self.tracker.update(p.task_id, TS.TASK_KILLED, self.now())
        self._check_done()

    # ------------------------------------------------------------------ scheduling

    def pending_count(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def subscribed(self, framework_id: str) -> None:
        self._suppressing = False
        if not self.pending_count():
            self._suppress()

    def resource_offers(self, offers: list[M.Offer]) -> None:
        # Offers are kept (self.offers) while work is on its way: launching into a held
        # offer needs no REVIVE, and a REVIVE clears filters, bringing back every offer
        # just declined (Aurora and Marathon hold offers for the same reason).
        self._received = self.now()
        self._schedule()
        self._release()

    def _more_soon(self) -> bool:
        """Work pending, or arriving within the hold window."""
        if self.pending_count():
            return True
        return bool(self._arrivals) and self._arrivals[0][0] <= self.now() + self.hold_seconds

    def _schedule(self) -> None:
        """Launch what is pending into the held offers, oldest offer first."""
        if not self.pending_count():
            return
        more = bool(self._arrivals) or self._stream is not None
        unusable = []
        for offer_id in list(self.offers):
            offer = self.offers[offer_id]
            tasks = self._fill(offer)
            if tasks:
                # What is left of the offer comes back next cycle; while more work is on
                # its way, without a filter, so that it can be held again.
                self.launch(offer, tasks, 0.0 if more else self.refuse_seconds)
            elif self.pending_count():
                unusable.append(offer_id)
            if not self.pending_count():
                break
        if unusable:
            # Too small for anything waiting: holding it would only keep it from others.
            self.decline(unusable, self.refuse_seconds)

    def _release(self) -> None:
        """Decline held offers that no work needs soon; suppress when nothing more comes."""
        if self._more_soon():
            if self.offers and not self.pending_count() and self._arrivals:
                # Look again when the next task arrives, or when the hold runs out.
                self.set_timer("hold", min(self.hold_seconds, max(0.0, self._arrivals[0][0] - self.now())))
            elif self.pending_count() and not self.offers:
                self._revive()
            return
        if self.offers:
            self.decline(list(self.offers), self.refuse_seconds)
        if not self._arrivals and self._stream is None:
            self._suppress()
        elif self._arrivals and not self.timer_pending("arrive"):
            self.set_timer("arrive", max(0.0, self._arrivals[0][0] - self.now()))

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
                if p.shape.service:
                    self.services[p.task_id] = offer.agent_id
        return out

    def _task_info(self, p: Pending, offer: M.Offer, res: Resources) -> M.TaskInfo:
        shape = p.shape
        return make_task(p.task_id, offer.agent_id, res, command=shape.command, duration=p.duration,
                         exit_code=shape.exit_code, labels=shape.labels, time_scale=self.time_scale,
                         service=shape.service, user=shape.user)

    def _suppress(self) -> None:
        if not self._suppressing and self.connected:
            self._suppressing = True
            self.suppress()

    def _revive(self) -> None:
        if self._suppressing and self.connected:
            self._suppressing = False
            self.revive()

    def offer_rescinded(self, offer_id: str) -> None:
        if self.pending_count() and not self.offers:
            self._revive()

    def status_update(self, status: M.TaskStatus) -> None:
        if not status.state.terminal:
            return
        self.services.pop(status.task_id, None)
        if self.keep_results:
            self.results[status.task_id] = {
                "state": str(status.state), "reason": str(status.reason) if status.reason else None,
                "message": status.message, "agent_id": status.agent_id,
                "output": status.data.decode(errors="replace")}
        p = self.attempts.get(status.task_id)
        if status.state in RETRY_STATES and p is not None and p.attempt < self.max_retries:
            retry = Pending(f"{p.task_id.split('~')[0]}~{p.attempt + 1}", p.shape, p.duration, p.attempt + 1)
            self._enqueue(retry, self.now())
            if self.offers:
                self._schedule()
            else:
                self._revive()
            return
        self._check_done()

    def _check_done(self) -> None:
        if self.is_done() and self.done_at is None:
            self.done_at = self.now()
            self._release()
            if self.teardown_when_done:
                self.teardown()

    def is_done(self) -> bool:
        if not self.configured:
            return False
        if self.fatal_error and not self.framework_id:
            return True     # refused for good before it ever subscribed: nothing will happen
        return (self.tracker.outstanding == 0 and not self.pending_count() and not self._arrivals
                and self._stream is None)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["pending_in_queue"] = self.pending_count()
        out["arrivals_to_come"] = len(self._arrivals)
        return out

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "results":
            return self.results
        return super().query(what, args)
