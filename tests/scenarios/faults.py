"""Shared by tests/unit and tests/cluster: faults."""

from __future__ import annotations

import copy
from typing import Any

from sim.scenario import Scenario, parse

BASE: dict[str, Any] = {
    "sim": {"seed": 7, "until": "30m"},
    "cluster": {"agents": 20, "agent": {"cpus": 4, "mem": "8GiB", "disk": "100GiB"}},
    "frameworks": [{"name": "b", "tasks": 300,
                    "task": {"cpus": 1, "mem": "1GiB", "duration": "uniform(60s,120s)"}}],
}


def scenario(*faults: dict[str, Any], network: dict[str, Any] | None = None, seed: int = 7) -> Scenario:
    d = copy.deepcopy(BASE)
    d["sim"]["seed"] = seed
    if faults:
        d["faults"] = list(faults)
    if network is not None:
        d["network"] = network
    return parse(d, "faults")
