"""summary.json for a run on a real host, in the same shape as the simulator's.

On a real host ``virtual_seconds`` is the run's elapsed time on the wall
clock, ``digest`` is null (no single observer sees every message), and
``messages`` counts what the master, the allocator, the agents and the
frameworks received.
"""

from __future__ import annotations

import os
from typing import Any

from actors.frameworks.results import TASK_COUNTS, roles_view, summary_text


def real_summary(cluster: Any, frameworks: list[tuple[Any, dict[str, Any]]], elapsed: float,
                 wall: float) -> dict[str, Any]:
    counts = dict.fromkeys(TASK_COUNTS, 0)
    for _, s in frameworks:
        for k in TASK_COUNTS:
            counts[k] += s[k]
    actors = [cluster.master, cluster.allocator, *cluster.agents, *[a for a, _ in frameworks]]
    messages = 0
    for addr in actors:
        try:
            messages += cluster.query(addr, "stats")["stats"].get("received", 0)
        except Exception:  # an actor that cannot answer now still leaves the rest counted
            pass
    master = cluster.query(cluster.master, "summary")
    state = cluster.query(cluster.master, "state")
    latency = frameworks[0][1]["scheduling_latency"] if len(frameworks) == 1 else None
    return {
        "scenario": "local",
        "host": "real",
        "seed": None,
        "agents": len(cluster.agents),
        "frameworks": len(frameworks),
        **counts,
        "virtual_seconds": round(elapsed, 6),
        "wall_seconds": round(wall, 3),
        "messages": messages,
        "digest": None,
        "roles": roles_view(master["roles"], state.get("weights", {}), state.get("quotas", {}),
                            _total(state)),
        "scheduling_latency": latency,
    }


def _total(state: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for a in state.get("agents", []):
        if a.get("reachable"):
            for k, v in a.get("resources", {}).items():
                if isinstance(v, int | float):
                    out[k] = out.get(k, 0.0) + v
    return out


def write_summary(out_dir: str, summary: dict[str, Any]) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "summary.json")
    with open(path, "w") as fh:
        fh.write(summary_text(summary))
    return path
