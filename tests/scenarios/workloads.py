"""Shared by tests/unit and tests/cluster: workloads."""

from __future__ import annotations

import textwrap
from pathlib import Path

CLUSTER = """
[cluster]
agents = {agents}
agent = {{ cpus = {cpus}, mem = "{mem}", disk = "100GiB" }}
"""


def write(tmp_path: Path, body: str, *, seed: int = 7, until: str = "2h", agents: int = 4, cpus: int = 16,
          mem: str = "32GiB", name: str = "w.toml", sim_extra: str = "") -> str:
    text = f'[sim]\nseed = {seed}\nuntil = "{until}"\n{sim_extra}\n'
    text += CLUSTER.format(agents=agents, cpus=cpus, mem=mem) + textwrap.dedent(body)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def phase_counts(times: list[float], start: float, period: float) -> tuple[int, int]:
    """Arrivals within the quarter period around the peak (phase 1/4) and the trough (3/4)."""
    peak = trough = 0
    for t in times:
        phase = ((t - start) / period) % 1.0
        if 0.125 <= phase < 0.375:
            peak += 1
        elif 0.625 <= phase < 0.875:
            trough += 1
    return peak, trough


# --------------------------------------------------------------------------- service time

ONE_TASK = """
[[frameworks]]
name = "b"
tasks = 1
task = { cpus = 1, mem = 128, duration = "10s" }
"""
