"""Sandboxes on a real host: Mesos' layout with its ``latest`` link, the directory the agent
shows, and each task's stdout and stderr written by a logger process and rotated at a size
(see docs/isolation.md, 'Sandboxes and the container logger')."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil
import pytest

from impresario.cluster import LocalCluster, wait_for
from isolators.containerizer import default_isolation
from tests.integration.conftest import gone

pytestmark = pytest.mark.integration

PATIENCE = 180.0   # one condition, on a loaded two-core machine
MiB = 2**20
# 100 MiB of 64-byte lines (the last one cut short), then a last line of its own.
CHATTY = ("yes 'a line of chatter, padded to sixty-four bytes with dots .......' | head -c 104857000; "
          "echo; echo THE-END")


def agent_state(h):
    return h.query(h.agents[0], "state")


def files_of(sandbox, stream):
    """``stream`` and its rotated files in ``sandbox``: {name: size}."""
    return {f: os.path.getsize(os.path.join(sandbox, f)) for f in os.listdir(sandbox)
            if f == stream or f.startswith(stream + ".")}


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


def test_a_task_printing_100_mib_keeps_its_stdout_within_the_rotation_bounds(real):
    fw = real.probe()
    o = real.wait_offers(fw)[0]
    real.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "chatty", "command": CHATTY}])
    done = real.wait_update(fw, "chatty", "TASK_FINISHED")
    # The tail sent with the terminal status is the end of the output, read across rotations.
    assert done["data"].endswith("THE-END\n")
    ex = real.wait(lambda: next((e for e in agent_state(real)["completed_executors"]
                                 if e["executor_id"] == "chatty"), None), "the executor to complete")
    files = files_of(ex["directory"], "stdout")
    # The defaults: 10 MiB a file, 5 old files kept.
    assert sorted(files) == ["stdout", "stdout.1", "stdout.2", "stdout.3", "stdout.4", "stdout.5"], files
    assert all(size <= 10 * MiB for size in files.values()), files
    assert sum(files.values()) <= 10 * MiB * 6
    last = read(os.path.join(ex["directory"], "stdout"))
    assert last.endswith(b"\nTHE-END\n") and last.count(b"dots .......\n") > 1000


def test_a_task_sets_its_own_rotation_through_its_environment(real):
    fw = real.probe()
    o = real.wait_offers(fw)[0]
    env = {"CONTAINER_LOGGER_MAX_STDOUT_SIZE": "64KiB", "CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS": "rotate 2"}
    real.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[
        {"task_id": "own", "env": env,
         "command": "yes 'sixteen bytes..' | head -c 1048576; head -c 102400 /dev/zero >&2; echo last"},
        {"task_id": "bad", "env": {"CONTAINER_LOGGER_MAX_STDERR_SIZE": "12"}, "command": "true"}])
    real.wait_update(fw, "own", "TASK_FINISHED")
    failed = real.wait_update(fw, "bad", "TASK_FAILED")
    assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "CONTAINER_LOGGER_MAX_STDERR_SIZE" in failed["message"], failed["message"]
    ex = real.wait(lambda: next((e for e in agent_state(real)["completed_executors"]
                                 if e["executor_id"] == "own"), None), "the executor to complete")
    out = files_of(ex["directory"], "stdout")
    assert sorted(out) == ["stdout", "stdout.1", "stdout.2"], out
    assert all(size <= 64 * 1024 for size in out.values()), out
    # (1 MiB is 16 full files: "last" may be alone in a new one)
    newest = read(os.path.join(ex["directory"], "stdout.1")) + read(os.path.join(ex["directory"], "stdout"))
    assert newest.endswith(b"sixteen bytes..\nlast\n")
    # stderr keeps the agent's defaults: one file, all of it.
    assert files_of(ex["directory"], "stderr") == {"stderr": 102400}


# --------------------------------------------------------------------------- across a restart


def logger_of(sandbox):
    """The logger process writing into ``sandbox``."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any(a.endswith("logrotate.py") for a in cmd) and any(a.endswith(f"{sandbox}/stdout") for a in cmd):
            return p
    return None


def first_line(path):
    """(None: not there, between two steps of a rotation)"""
    try:
        with open(path, "rb") as f:
            return f.readline()
    except FileNotFoundError:
        return None


@pytest.fixture
def cluster(tmp_path, cgroups_root):
    names, _ = default_isolation()
    c = LocalCluster(agents=1, work_dir=str(tmp_path / "work"), agent_resources="cpus:2;mem:1024;disk:1024",
                     agent_settings={"containerizer": {"isolation": names, "cgroups_root": cgroups_root,
                                                       "max_stdout_size": 16384, "logrotate_count": 2}})
    pids = []
    c.task_pids = pids
    try:
        c.start(timeout=PATIENCE)
        yield c
    finally:
        c.stop()
        for pid in pids:   # a task left behind by a failed test (its logger ends with it)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def test_rotation_goes_on_while_the_agent_and_its_executors_are_down_and_after_they_restart(cluster, tmp_path):
    c = cluster
    fw = c.start_framework("tests.actors.probe:ProbeFramework", "probe", {})

    def events():
        return c.query(fw, "events")

    def wait(pred, what):
        return wait_for(pred, PATIENCE, interval=0.05, what=what)

    wait(lambda: events()["framework_id"], "the probe to subscribe")
    offer = wait(lambda: [o for o in events()["offers"] if o["offer_id"] in events()["outstanding_offers"]],
                 "an offer")[0]
    stop = tmp_path / "stop"
    command = (f"i=0; while [ ! -e {stop} ]; do i=$((i + 1)); "
               f"echo \"line $i, padded to be a little longer ...............\"; sleep 0.002; done; echo THE-END")
    c.client.query(fw, "do", action="launch", offer_ids=[offer["offer_id"]],
                   tasks=[{"task_id": "talker", "command": command}])
    running = wait(lambda: next((u for u in events()["updates"]
                                 if u["task_id"] == "talker" and u["state"] == "TASK_RUNNING"), None), "RUNNING")
    c.task_pids.append(running["pid"])
    (ex,) = c.query(c.agents[0], "state")["executors"]
    box = ex["directory"]
    wait(lambda: os.path.exists(f"{box}/stdout.1"), "a first rotation")
    logger = logger_of(box)
    assert logger is not None

    c.kill_agent(0)
    # Nobody of the agent is left, and the task's output is still written and rotated.
    at_kill = first_line(f"{box}/stdout.1")
    wait(lambda: first_line(f"{box}/stdout.1") not in (None, at_kill), "a rotation while the agent is down")
    assert logger.is_running()

    c.restart_agent(0, timeout=PATIENCE)
    wait(lambda: (lambda st: st["registered"] and st["executors"]
                  and st["executors"][0]["tasks"] == {"talker": "TASK_RUNNING"})(c.query(c.agents[0], "state")),
         "the agent to recover the task")
    at_restart = first_line(f"{box}/stdout.1")
    wait(lambda: first_line(f"{box}/stdout.1") not in (None, at_restart), "a rotation after the restart")
    files = files_of(box, "stdout")
    assert sorted(files) == ["stdout", "stdout.1", "stdout.2"] and all(s <= 16384 for s in files.values()), files

    stop.write_text("")
    done = wait(lambda: next((u for u in events()["updates"]
                              if u["task_id"] == "talker" and u["state"] == "TASK_FINISHED"), None), "FINISHED")
    assert done["data"].endswith("THE-END\n")
    wait(lambda: gone(logger.pid), "the logger to end")
