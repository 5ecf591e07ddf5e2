"""Where an agent's executors and containers keep their sandboxes: Mesos' layout.

    WORK_DIR/slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/<container>
    WORK_DIR/slaves/<agent>/frameworks/<framework>/executors/<executor>/runs/latest -> <container>

A command task runs in its executor's run directory; each task of a task group runs in a
nested container whose sandbox is ``<run>/containers/<nested container>``.  Plain strings
(ids never hold ``/``): the agent's core names the directory it shows, the executor the
sandbox it asks the containerizer for, and the host side makes them and the ``latest`` link.
"""

from __future__ import annotations

LATEST = "latest"


def executor_run(work_dir: str, agent_id: str, framework_id: str, executor_id: str, container_id: str) -> str:
    """The run directory of executor ``executor_id``'s container ``container_id``."""
    return (f"{work_dir}/slaves/{agent_id}/frameworks/{framework_id}/executors/{executor_id}"
            f"/runs/{container_id}")


def sandbox(run_dir: str, executor_container: str, container_id: str) -> str:
    """The sandbox of ``container_id``: the run directory itself for the executor's own
    container, ``<run>/containers/<id>`` for a container nested in it."""
    return run_dir if container_id == executor_container else f"{run_dir}/containers/{container_id}"


def run_of(sandbox_dir: str, executor_container: str, container_id: str) -> str:
    """The run directory a container's sandbox is in (the inverse of :func:`sandbox`)."""
    nested = f"/containers/{container_id}"
    if container_id != executor_container and sandbox_dir.endswith(nested):
        return sandbox_dir[:-len(nested)]
    return sandbox_dir
