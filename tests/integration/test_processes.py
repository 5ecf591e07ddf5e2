"""What happens to real processes: sessions, kills, sandboxes, clean shutdown."""

import os
import time

import psutil
import pytest

from tests.harness import RealHarness
from tests.integration.conftest import gone as _gone

pytestmark = pytest.mark.integration


def test_a_task_runs_in_its_own_session_and_kill_ends_its_whole_group(real):
    fw = real.probe()
    o = real.wait_offers(fw)[0]
    # The task starts a grandchild in its process group: the kill must reach both.
    real.do(fw, "launch", offer_ids=[o["offer_id"]],
            tasks=[{"task_id": "tree", "command": "sleep 600 & sleep 600; wait", "grace": 1}])
    running = real.wait_update(fw, "tree", "TASK_RUNNING")
    pid = running["pid"]
    assert pid and os.getsid(pid) == pid and os.getpgid(pid) == pid
    # The main process is the gate that records the task's status; the task (its shell) and
    # the two sleeps are its process group.
    group = real.wait(lambda: (lambda g: g if sorted(p.name() for p in g) == ["sh", "sleep", "sleep"] else None)(
        [p for p in psutil.process_iter() if _pgid(p) == pid and p.pid != pid]), "the task's processes")
    real.do(fw, "kill", task_id="tree")
    killed = real.wait_update(fw, "tree", "TASK_KILLED")
    assert killed["source"] == "SOURCE_EXECUTOR"
    real.wait(lambda: _gone(pid) and all(_gone(p.pid) for p in group), "the task's processes to end")


def _pgid(p):
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, psutil.NoSuchProcess):
        return None


def test_a_task_that_ignores_sigterm_is_killed_after_its_grace(real):
    fw = real.probe()
    o = real.wait_offers(fw)[0]
    real.do(fw, "launch", offer_ids=[o["offer_id"]],
            tasks=[{"task_id": "stubborn", "command": "trap '' TERM; sleep 600 & wait; sleep 600", "grace": 1.5}])
    pid = real.wait_update(fw, "stubborn", "TASK_RUNNING")["pid"]
    real.wait(lambda: any(_pgid(p) == pid and p.pid != pid for p in psutil.process_iter()), "the sleep")
    t0 = time.monotonic()
    real.do(fw, "kill", task_id="stubborn")
    real.wait_update(fw, "stubborn", "TASK_KILLED")
    assert time.monotonic() - t0 >= 1.0   # SIGTERM was ignored: it took the SIGKILL after the grace
    real.wait(lambda: _gone(pid), "the task to end")


def test_output_lands_in_the_sandbox(real):
    fw = real.probe()
    o = real.wait_offers(fw)[0]
    real.do(fw, "launch", offer_ids=[o["offer_id"]],
            tasks=[{"task_id": "talk", "command": "echo out; echo err >&2; pwd"}])
    real.wait_update(fw, "talk", "TASK_FINISHED")
    work = real.cluster.work_dir
    outs = [os.path.join(d, f) for d, _, fs in os.walk(work) for f in fs if f == "stdout"]
    assert len(outs) == 1
    sandbox = os.path.dirname(outs[0])
    assert "/frameworks/" in sandbox and "/executors/talk/runs/" in sandbox
    assert open(outs[0]).read() == f"out\n{sandbox}\n"
    assert open(os.path.join(sandbox, "stderr")).read() == "err\n"


def test_stopping_a_cluster_leaves_no_process_behind():
    h = RealHarness(agents=2)
    procs = [p for s in h.cluster.systems for p in s.processes()]
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "forever", "command": "sleep 600"}])
    pid = h.wait_update(fw, "forever", "TASK_RUNNING")["pid"]
    procs += [p for s in h.cluster.systems for p in s.processes()]
    assert len(procs) > 4
    h.stop()
    assert all(_gone(p.pid) for p in procs)
    assert _gone(pid)
