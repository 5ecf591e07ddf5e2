"""The exit status of a re-adopted task, on a real host.

Where recovery state is recorded (a work directory), the gate runs the task as its child and
writes its exit status next to the container's state file; a new containerizer that
re-adopted the container reports that status, not None.  These tests hand containers over
from one containerizer (the executor that is gone) to another (the one started again).
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil
import pytest

from actors.frameworks.batch import make_task
from actors.protocol.resources import Resources
from impresario.cluster import wait_for
from isolators.containerizer import Containerizer, default_isolation, read_status

pytestmark = pytest.mark.integration

PATIENCE = 60.0


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _task(tid, command):
    return make_task(tid, "agent", Resources.of(cpus=0.1, mem=32), command=command)


class Handover:
    """Containerizers of one agent's executor ``c1`` that share a work directory."""

    def __init__(self, tmp_path, cgroups_root, isolation):
        names = default_isolation()[0] if isolation == "default" else [isolation]
        self.tmp = tmp_path
        self.settings = {"agent_id": "S1", "container_id": "c1", "work_dir": str(tmp_path / "work"),
                         "containerizer": {"isolation": names, "cgroups_root": cgroups_root}}
        self.made = []
        self.pids = []
        self.tasks = {}

    def containerizer(self):
        cz = Containerizer(None, self.settings)
        self.made.append(cz)
        return cz

    def sandbox(self, cid):
        return str(self.tmp / "sb" / cid)

    def launch(self, cz, cid, command):
        self.tasks[cid] = _task(cid, command)
        pid = cz.launch(cid, self.tasks[cid], self.sandbox(cid)).pid
        self.pids.append(pid)
        return pid

    def recover(self, cz, cid):
        assert cz.recover(cid, self.tasks[cid], self.sandbox(cid))

    def state_file(self, cid, suffix=".json"):
        return self.tmp / "work" / "meta" / "containers" / "S1" / (cid + suffix)

    def close(self):
        for cz in reversed(self.made):   # the new ones first; the old ones reap their children
            cz.shutdown()
        for pid in self.pids:            # a container left behind by a failed test
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture(params=["default", "posix"])
def handover(tmp_path, cgroups_root, request):
    """Kills reach a container through its cgroups (where the host has them, as root), or
    through its process group (the POSIX fallback)."""
    h = Handover(tmp_path, cgroups_root, request.param)
    yield h
    h.close()


def reap_one(cz, cid):
    exits = wait_for(lambda: cz.reap(), PATIENCE, interval=0.05, what=f"container {cid} to end")
    assert [e.container_id for e in exits] == [cid]
    return exits[0]


def task_process(pid):
    """The task's process: the gate's child."""
    def child():
        kids = psutil.Process(pid).children()
        return kids[0] if kids else None
    return wait_for(child, PATIENCE, interval=0.02, what="the task's process")


# --------------------------------------------------------------------------- the task ends after its re-adoption


@pytest.mark.parametrize("code", [0, 3])
def test_a_readopted_task_that_exits_reports_its_exit_status(handover, code):
    go = handover.tmp / "go"
    old = handover.containerizer()
    pid = handover.launch(old, "c1", f"while [ ! -e {go} ]; do sleep 0.05; done; exit {code}")
    new = handover.containerizer()
    handover.recover(new, "c1")
    assert new.reap() == []
    go.write_text("")
    ex = reap_one(new, "c1")
    assert (ex.status, ex.reason) == (code, None)
    assert not alive(pid)
    status = handover.state_file("c1", ".status")
    assert status.exists()   # next to the state file, out of the sandbox
    assert sorted(os.listdir(handover.sandbox("c1"))) == ["stderr", "stdout"]
    new.destroy("c1")
    assert not status.exists() and not handover.state_file("c1").exists()


def test_a_readopted_task_killed_by_the_new_containerizer_ends_by_its_signal(handover):
    old = handover.containerizer()
    pid = handover.launch(old, "c1", "echo started; sleep 600")
    new = handover.containerizer()
    handover.recover(new, "c1")
    wait_for(lambda: b"started" in new.output_tail("c1", 100), PATIENCE, what="the task's output")
    new.kill("c1")
    assert reap_one(new, "c1").status == -signal.SIGTERM
    assert not alive(pid)
    new.destroy("c1")


def test_a_sigterm_to_the_container_waits_for_the_tasks_own_graceful_end(handover):
    ready, got, release = handover.tmp / "ready", handover.tmp / "got", handover.tmp / "release"
    old = handover.containerizer()
    pid = handover.launch(old, "c1", f"trap 'touch {got}; while [ ! -e {release} ]; do sleep 0.05; done; exit 7' TERM; "
                                     f"touch {ready}; while :; do sleep 0.05; done")
    new = handover.containerizer()
    handover.recover(new, "c1")
    wait_for(ready.exists, PATIENCE, interval=0.02, what="the task to set its trap")
    new.kill("c1")   # SIGTERM to every process of the container, the gate's included
    wait_for(got.exists, PATIENCE, interval=0.02, what="the task to take the SIGTERM")
    # The task is shutting down: its container has not ended under it.
    assert new.reap() == [] and alive(pid)
    release.write_text("")
    assert reap_one(new, "c1").status == 7
    new.destroy("c1")


# --------------------------------------------------------------------------- the task ended while nobody watched


def test_a_task_that_ended_while_nobody_watched_reports_its_exit_status(handover):
    go = handover.tmp / "go"
    old = handover.containerizer()
    quick = handover.launch(old, "c1.1", f"while [ ! -e {go} ]; do sleep 0.05; done; exit 0")
    failing = handover.launch(old, "c1.2", f"while [ ! -e {go} ]; do sleep 0.05; done; exit 3")
    go.write_text("")
    wait_for(lambda: not alive(quick) and not alive(failing), PATIENCE, what="both tasks to end")
    new = handover.containerizer()
    handover.recover(new, "c1.1")
    handover.recover(new, "c1.2")
    assert {e.container_id: e.status for e in new.reap()} == {"c1.1": 0, "c1.2": 3}
    new.destroy("c1.1")
    new.destroy("c1.2")


def test_a_task_killed_by_a_signal_while_nobody_watched_reports_the_signal(handover):
    old = handover.containerizer()
    pid = handover.launch(old, "c1", "sleep 600")
    task_process(pid).send_signal(signal.SIGKILL)   # the task alone: its gate records how it ended
    wait_for(lambda: not alive(pid), PATIENCE, what="the gate to end")
    new = handover.containerizer()
    handover.recover(new, "c1")
    assert reap_one(new, "c1").status == -signal.SIGKILL
    new.destroy("c1")


def test_a_container_sigkilled_whole_while_nobody_watched_has_an_unknown_status(handover):
    old = handover.containerizer()
    pid = handover.launch(old, "c1", "sleep 600")
    task = task_process(pid)
    os.killpg(pid, signal.SIGKILL)   # the gate too: nothing is written
    wait_for(lambda: not alive(pid) and not alive(task.pid), PATIENCE, what="the container to end")
    assert not handover.state_file("c1", ".status").exists()
    new = handover.containerizer()
    handover.recover(new, "c1")
    assert reap_one(new, "c1").status is None
    new.destroy("c1")


# --------------------------------------------------------------------------- the executor that launched it


def test_the_launching_containerizer_sees_the_tasks_status_and_output_as_before(handover):
    cz = handover.containerizer()
    handover.launch(cz, "c1", "echo out; echo err >&2; exit 3")
    ex = reap_one(cz, "c1")
    assert ex.status == 3 and read_status(str(handover.state_file("c1", ".status"))) == 3
    assert open(os.path.join(handover.sandbox("c1"), "stdout")).read() == "out\n"
    assert open(os.path.join(handover.sandbox("c1"), "stderr")).read() == "err\n"
    cz.destroy("c1")

    pid = handover.launch(cz, "c2", "sleep 600")
    task = task_process(pid)
    # The gate caught signals: its task starts with none of them ignored.
    ignored = int(next(line for line in open(f"/proc/{task.pid}/status") if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & ((1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGHUP - 1)))
    cz.kill("c2")
    assert reap_one(cz, "c2").status == -signal.SIGTERM   # the gate ended by its task's signal
    assert open(os.path.join(handover.sandbox("c2"), "stderr")).read() == ""   # and said nothing
    cz.destroy("c2")
    assert not os.path.exists(handover.tmp / "work" / "meta" / "containers" / "S1")


def test_without_a_work_directory_the_gate_execs_the_task(tmp_path, cgroups_root):
    names, _ = default_isolation()
    cz = Containerizer(None, {"agent_id": "S1", "container_id": "c1",
                              "containerizer": {"isolation": names, "cgroups_root": cgroups_root}})
    pid = None
    try:
        pid = cz.launch("c1", _task("c1", "sleep 600"), str(tmp_path / "sb" / "c1")).pid
        # The main process is the task itself (``sh -c``), once the gate has exec'd it.
        wait_for(lambda: psutil.Process(pid).cmdline() == ["/bin/sh", "-c", "sleep 600"], PATIENCE, interval=0.02,
                 what="the gate to exec the task")
    finally:
        cz.shutdown()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
