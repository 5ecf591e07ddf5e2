"""Shared by tests/unit and tests/cluster: traces."""

from __future__ import annotations

import gzip
import os
import textwrap
from pathlib import Path
from typing import Any

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "scenarios", "traces")
GOOGLE_SAMPLE = os.path.abspath(os.path.join(SAMPLES, "google2011-sample.csv.gz"))
SWF_SAMPLE = os.path.abspath(os.path.join(SAMPLES, "sample.swf"))

SUBMIT, SCHEDULE, EVICT, FAIL, FINISH, KILL, LOST, UPDATE = 0, 1, 2, 3, 4, 5, 6, 8


def g(t: float, job: int, index: int, event: int, cpu: Any = 0.25, mem: Any = 0.5) -> str:
    """One task_events row: 13 columns, microseconds."""
    machine = "" if event == SUBMIT else "4711"
    return f"{round(t * 1e6)},,{job},{index},{machine},{event},user,2,0,{cpu},{mem},0.0001,0"


def put(path: Path, lines: list[str]) -> str:
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return str(path)


GOOGLE = [
    g(600, 7, 2, SUBMIT, 0.125, 0.25),
    g(601, 7, 2, SCHEDULE, 0.125, 0.25),
    g(603, 7, 2, EVICT, 0.125, 0.25),            # evicted, resubmitted, scheduled again
    g(603.5, 7, 2, SUBMIT, 0.125, 0.25),
    g(604, 7, 2, SCHEDULE, 0.125, 0.25),
    g(605, 7, 0, SUBMIT),
    g(606, 7, 1, SUBMIT, 0.5, 1.0),
    g(607, 7, 0, SCHEDULE),
    g(607.5, 7, 0, UPDATE),                     # an update changes nothing
    g(610, 7, 1, SCHEDULE, 0.5, 1.0),
    g(612, 9, 0, SUBMIT, "", ""),                # requests unknown: the smallest task
    g(613, 9, 0, SCHEDULE, "", ""),
    g(614, 7, 2, FINISH, 0.125, 0.25),
    g(615, 7, 1, FAIL, 0.5, 1.0),
    g(616, 9, 1, SUBMIT),                        # never scheduled: skipped
    g(617, 9, 2, SUBMIT),
    g(618, 9, 2, SCHEDULE),                      # never ends within the trace: skipped
    g(619, 9, 3, FINISH),                        # ends without a SUBMIT: skipped
    g(620, 9, 0, KILL, "", ""),
    g(637, 7, 0, FINISH),
    g(650, 9, 4, SUBMIT),
    g(651, 9, 4, SCHEDULE),
    g(652, 9, 4, LOST),
]


SWF = """\
; Version: 2.2
; MaxProcs: 64

;  job submit wait run alloc avgcpu usedmem reqprocs reqtime reqmem status ...
1   100  5  60  2  -1  1024  4  120  2048  1  1 1 -1 1 1 -1 -1
2   130  0  30  8  -1  4096  -1 60   -1    0  1 1 -1 1 1 -1 -1
3   110  0  90  1  -1  -1    1  100  -1    5  1 1 -1 1 1 -1 -1
4   140  0  -1  1  -1  -1    1  100  -1    1  1 1 -1 1 1 -1 -1
5   150  0  10  -1 -1  -1   -1  100  -1    1  1 1 -1 1 1 -1 -1
6   160  0  20  64 -1  1048576 64 100 1048576 1  1 1 -1 1 1 -1 -1
7   170  0   0  1  -1  512   1  100  512   1
"""


# --------------------------------------------------------------------------- scenarios


def scenario(dir_: str | Path, body: str, *, agents: int = 2, cpus: int = 8, mem: str = "16GiB", until: str = "2h",
             name: str = "replay.toml") -> str:
    os.makedirs(dir_, exist_ok=True)
    text = textwrap.dedent(f"""\
        [sim]
        seed = 4
        until = "{until}"
        [cluster]
        agents = {agents}
        agent = {{ cpus = {cpus}, mem = "{mem}", disk = "100GiB" }}
        """) + textwrap.dedent(body)
    path = os.path.join(dir_, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path
