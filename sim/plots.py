"""PNG plots of a run's time series, where matplotlib is installed (the ``plot`` extra)."""

from __future__ import annotations

import os
from typing import Any


def plot(samples: list[dict[str, Any]], out_dir: str) -> dict[str, str]:
    """Write utilization.png, roles.png and tasks.png; nothing (and no error) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    if not samples:
        return {}
    t = [row["time"] / 60 for row in samples]
    files: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        files[name.removesuffix(".png")] = path

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for key in ("util_cpus", "util_mem", "util_disk", "util_gpus"):
        if key in samples[0]:
            ax.plot(t, [row.get(key, 0) for row in samples], label=key.removeprefix("util_"))
    ax.set(xlabel="virtual minutes", ylabel="allocated / total", title="Utilization", ylim=(0, 1.05))
    ax.legend(loc="best")
    save(fig, "utilization.png")

    roles = [k for k in samples[0] if k.startswith("alloc_cpus[")]
    if roles:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.stackplot(t, [[row.get(k, 0) for row in samples] for k in roles],
                     labels=[k[len("alloc_cpus["):-1] for k in roles])
        ax.set(xlabel="virtual minutes", ylabel="cpus allocated", title="Allocation per role")
        ax.legend(loc="upper left", fontsize="small")
        save(fig, "roles.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, [row["tasks_running"] for row in samples], label="running")
    ax.plot(t, [row["tasks_pending"] for row in samples], label="pending")
    ax.set(xlabel="virtual minutes", ylabel="tasks", title="Tasks")
    ax.legend(loc="best")
    save(fig, "tasks.png")
    return files
