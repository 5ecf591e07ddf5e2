"""Sandboxes on a real host: Mesos' layout with its ``latest`` link, and the directory the
agent shows (see docs/isolation.md, 'Sandboxes')."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.integration


def agent_state(h):
    return h.query(h.agents[0], "state")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_sandboxes_follow_mesos_layout_with_a_latest_link_and_the_agent_shows_them(real):
    fw = real.probe()
    o = real.wait_offers(fw)[0]
    real.do(fw, "launch", offer_ids=[o["offer_id"]],
            tasks=[{"task_id": "talk", "command": "pwd; echo err >&2"},
                   {"task_id": "stay", "command": "sleep 600"}])
    real.wait_update(fw, "stay", "TASK_RUNNING")
    real.wait_update(fw, "talk", "TASK_FINISHED")
    fid = real.events(fw)["framework_id"]
    st = agent_state(real)
    (stay,) = [e for e in st["executors"] if e["executor_id"] == "stay"]
    work = os.path.join(real.cluster.work_dir, "agent-0")
    assert stay["directory"] == (f"{work}/slaves/{st['agent_id']}/frameworks/{fid}/executors/stay"
                                 f"/runs/{stay['container_id']}")
    assert os.path.isdir(stay["directory"])
    # The finished one is among the completed executors, with its directory.
    talk = real.wait(lambda: next((e for e in agent_state(real)["completed_executors"]
                                   if e["executor_id"] == "talk"), None), "talk among the completed executors")
    assert talk["tasks"] == {"talk": "TASK_FINISHED"}
    runs = os.path.dirname(talk["directory"])
    assert os.readlink(os.path.join(runs, "latest")) == talk["container_id"]
    assert read(os.path.join(talk["directory"], "stdout")) == f"{talk['directory']}\n".encode()
    assert read(os.path.join(talk["directory"], "stderr")) == b"err\n"

    # A task group's tasks run in nested sandboxes of their executor's run.
    o = real.wait_offers(fw)[0]
    real.do(fw, "launch_group", offer_ids=[o["offer_id"]], executor_id="grp",
            tasks=[{"task_id": f"g{i}", "command": "pwd"} for i in range(2)])
    for i in range(2):
        real.wait_update(fw, f"g{i}", "TASK_FINISHED")
    grp = real.wait(lambda: next((e for e in agent_state(real)["completed_executors"]
                                  if e["executor_id"] == "grp"), None), "the group among the completed executors")
    cid = grp["container_id"]
    assert os.readlink(os.path.join(os.path.dirname(grp["directory"]), "latest")) == cid
    for i in range(2):
        box = os.path.join(grp["directory"], "containers", f"{cid}.{i + 1}")
        assert read(os.path.join(box, "stdout")) == f"{box}\n".encode()
    real.do(fw, "kill", task_id="stay")
    real.wait_update(fw, "stay", "TASK_KILLED")
