"""Workload traces: the Google cluster-usage 2011 task_events and the Standard Workload Format.

:func:`read` reads a whole trace once (tasks are paired across lines) and returns its tasks
in submission order as plain maps (``time`` after the trace's first submission, ``id``,
``cpus``, ``mem`` in MiB, ``duration``, ``exit_code``), with requests scaled to or capped at
the scenario's largest agent.  :class:`TraceWorkload` hands them out one arrival at a time
as a framework's ``workload`` port.

See docs/simulation.md, 'Trace replay' (the formats' columns, and how each is read).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from typing import IO, Any

FORMATS = ("google2011", "swf")


class TraceError(ValueError):
    pass


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_google2011(path: str, agent_cpus: float, agent_mem: float) -> list[dict[str, Any]]:
    submit: dict[tuple[str, str], float] = {}
    start: dict[tuple[str, str], float] = {}
    req: dict[tuple[str, str], tuple[float, float]] = {}
    runs: dict[tuple[str, str], int] = {}
    done: list[dict[str, Any]] = []
    with _open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue   # a blank line (files joined together, an editor's last newline)
            cols = line.rstrip("\r\n").split(",")
            if len(cols) != 13:
                raise TraceError(f"{path}:{n}: expected 13 columns, got {len(cols)}")
            try:
                t = int(cols[0]) / 1e6
                event = int(cols[5])
            except ValueError:
                raise TraceError(f"{path}:{n}: time and event type must be integers") from None
            key = (cols[2], cols[3])
            if event == 0:
                submit.setdefault(key, t)
                try:
                    cpu = float(cols[9]) if cols[9] else 0.0
                    mem = float(cols[10]) if cols[10] else 0.0
                except ValueError:
                    raise TraceError(f"{path}:{n}: CPU and memory requests must be numbers") from None
                req[key] = (cpu, mem)
            elif event == 1:
                start[key] = t
            elif event == 2:
                start.pop(key, None)  # evicted: pending again until its next SCHEDULE
            elif event in (3, 4, 5, 6) and key in start and key in submit:
                cpu, mem = req.get(key, (0.0, 0.0))
                # A task resubmitted after it ended (FAIL, KILL...) runs again: a task of its own.
                again = runs[key] = runs.get(key, 0) + 1
                done.append({
                    "submit": submit[key], "id": f"{key[0]}-{key[1]}" + (f".{again - 1}" if again > 1 else ""),
                    "cpus": max(0.001, round(cpu * agent_cpus, 3)),
                    "mem": max(1.0, round(mem * agent_mem, 1)),
                    "duration": max(0.0, t - start.pop(key)), "exit_code": 0 if event == 4 else 1,
                })
                submit.pop(key, None)
    return _normalise(done)


def read_swf(path: str, agent_cpus: float, agent_mem: float) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    with _open(path) as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            cols = line.split()
            if len(cols) < 11:
                raise TraceError(f"{path}:{n}: expected at least 11 fields, got {len(cols)}")
            try:
                job, submit, run = cols[0], float(cols[1]), float(cols[3])
                procs = int(cols[7]) if int(cols[7]) > 0 else int(cols[4])
                mem_kb = float(cols[9]) if float(cols[9]) > 0 else float(cols[6])
                status = int(cols[10])
            except ValueError:
                raise TraceError(f"{path}:{n}: fields must be numbers") from None
            if run < 0 or procs <= 0:
                continue  # unknown run time or size: nothing to replay
            tasks.append({
                "submit": submit, "id": f"job{job}",
                "cpus": float(min(procs, agent_cpus)),
                "mem": max(1.0, min(mem_kb * procs / 1024, agent_mem)) if mem_kb > 0 else 128.0,
                "duration": run, "exit_code": 0 if status == 1 else 1,
            })
    return _normalise(tasks)


def _normalise(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tasks.sort(key=lambda x: (x["submit"], x["id"]))
    t0 = tasks[0]["submit"] if tasks else 0.0
    for x in tasks:
        x["time"] = x.pop("submit") - t0
    return tasks


def read(path: str, fmt: str, agent_cpus: float, agent_mem: float) -> list[dict[str, Any]]:
    if fmt not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r} (known: {', '.join(FORMATS)})")
    if not os.path.exists(path):
        raise TraceError(f"no trace file {path}")
    reader = read_google2011 if fmt == "google2011" else read_swf
    return reader(path, agent_cpus, agent_mem)


class TraceWorkload:
    """The ``workload`` port: a framework's arrivals, read from a trace file."""

    def __init__(self, actor: Any, settings: dict[str, Any]) -> None:
        t = settings.get("trace") or {}
        self.tasks = read(str(t.get("path")), str(t.get("format")), float(t.get("agent_cpus", 32)),
                          float(t.get("agent_mem", 131072)))
        limit = t.get("limit")
        if limit is not None:
            self.tasks = self.tasks[: int(limit)]
        scale = float(t.get("time_scale", 1.0))
        if scale != 1.0:
            for x in self.tasks:
                x["time"] *= scale

    def arrivals(self) -> Iterator[dict[str, Any]]:
        yield from self.tasks


def trace_workload(actor: Any, settings: dict[str, Any]) -> TraceWorkload:
    return TraceWorkload(actor, settings)
