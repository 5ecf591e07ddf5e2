"""cgroups on this host, for real: memory, CPU and process limits, kills, nesting, usage.

They run as root where the hierarchies exist (v1 here and on CI) and skip,
saying why, elsewhere.  Each test has a cgroups root of its own, and fails if
any cgroup is left under it.
"""

import os
import signal
import subprocess
import time

import psutil
import pytest

from impresario.cluster import wait_for
from tests.integration.conftest import gone as _gone
from tests.integration.conftest import need_controllers

pytestmark = pytest.mark.integration

CGROUPS = "cgroups/cpu,cgroups/mem,cgroups/pids"


def test_a_task_past_its_memory_is_oom_killed_and_reported_while_its_neighbour_runs(isolated_cluster):
    need_controllers("memory")
    h = isolated_cluster(CGROUPS)
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[
        {"task_id": "neighbour", "command": "sleep 600", "mem": 64},
        {"task_id": "hog", "command": "python3 -c 'bytearray(256 * 2**20)'", "mem": 64}])
    neighbour = h.wait_update(fw, "neighbour", "TASK_RUNNING")
    failed = h.wait_update(fw, "hog", "TASK_FAILED")
    assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert failed["message"].startswith("Memory limit exceeded: Requested: 64 MiB")
    # The neighbour was not touched: still running, in the master's eyes and on the host.
    assert not _gone(neighbour["pid"])
    states = {t["id"]: t["state"] for t in h.master_state()["tasks"]}
    assert states["neighbour"] == "TASK_RUNNING"
    h.do(fw, "kill", task_id="neighbour")
    h.wait_update(fw, "neighbour", "TASK_KILLED")


def _cpu_seconds(runner, cid):
    s = runner.cz.usage(cid)
    return s.timestamp, s.cpus_user_time_secs + s.cpus_system_time_secs, s.cpus_nr_throttled


def test_a_cpu_spinner_limited_to_a_fifth_of_a_cpu_uses_at_most_three_tenths(runners):
    need_controllers("cpu")
    r = runners(CGROUPS)
    r.launch("c1", "while :; do :; done", cpus=0.2)
    # It runs: its cgroup has counted CPU time.
    wait_for(lambda: _cpu_seconds(r, "c1")[1] > 0.05, 60, what="the spinner to spin")
    t0, cpu0, throttled0 = _cpu_seconds(r, "c1")
    # A window of several seconds, measured by the cgroup's own accounting.
    wait_for(lambda: (r.poll(), time.time() - t0 >= 6.0)[1], 60, interval=0.25, what="a 6 s window")
    t1, cpu1, throttled1 = _cpu_seconds(r, "c1")
    rate = (cpu1 - cpu0) / (t1 - t0)
    print(f"spinner: {cpu1 - cpu0:.3f} CPU-s over {t1 - t0:.2f} s = {rate:.3f} CPU-s/s, "
          f"throttled {throttled1 - throttled0} periods")
    assert rate <= 0.3
    assert cpu1 > cpu0 and throttled1 > throttled0   # it ran, and the quota is what held it back
    assert "c1" not in r.exits


def test_without_the_cfs_quota_a_spinner_is_not_throttled(runners):
    need_controllers("cpu")
    r = runners(CGROUPS, cfs_quota=False)
    r.launch("c1", "while :; do :; done", cpus=0.2)
    wait_for(lambda: _cpu_seconds(r, "c1")[1] > 0.5, 120, what="the spinner to spin")
    assert _cpu_seconds(r, "c1")[2] == 0
    d = os.path.join("/sys/fs/cgroup/cpu", r.cz.isolators[0].root, "agent", "c1")
    if os.path.isdir(d):  # v1: the share is there, the quota is not
        assert open(os.path.join(d, "cpu.cfs_quota_us")).read().strip() == "-1"
        assert open(os.path.join(d, "cpu.shares")).read().strip() == "204"


def test_a_fork_bomb_is_contained_by_the_pids_limit(runners):
    need_controllers("pids")
    r = runners(CGROUPS, pids_max=64)
    baseline = len(psutil.pids())
    # The task's main process stays while the bomb it lit forks on.
    r.launch("c1", "bomb() { bomb | bomb & }; bomb; sleep 600")
    seen = set()
    most = 0

    def ended():
        nonlocal most
        most = max(most, len(psutil.pids()))
        seen.update(r.cz.isolators[0].processes(r.container("c1")) or [])
        # The host answers meanwhile.
        assert subprocess.run(["true"], timeout=60).returncode == 0
        r.poll()
        return r.exits.get("c1")

    ex = wait_for(ended, 120, interval=0.02, what="the fork bomb to be stopped")
    assert ex.reason is not None and ex.reason.name == "REASON_CONTAINER_LIMITATION"
    assert "Process limit reached" in ex.message and "pids.max" in ex.message
    assert most <= baseline + 64 + 64, (baseline, most)   # 64 for the bomb, the rest for the host's own
    assert len(seen) > 1
    r.cz.destroy("c1")
    assert all(_gone(p) for p in seen)


def test_kill_reaches_every_process_of_the_cgroup_even_one_that_left_the_session(runners):
    need_controllers("pids")
    r = runners(CGROUPS)
    # The subshell forks a new session's sleep and exits: the sleep is an orphan, in no
    # process group or tree of the task's - only its cgroup knows it.
    r.launch("c1", "(setsid sleep 600 &); sleep 600")
    c = r.container("c1")

    def orphans():
        out = []
        for p in r.cz.isolators[0].processes(c) or []:
            try:
                if os.getsid(p) != c.pid and c.pid not in [a.pid for a in psutil.Process(p).parents()]:
                    out.append(p)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        return out

    escaped = wait_for(orphans, 60, interval=0.05, what="the sleep that left the task's session and tree")
    procs = [*escaped, c.pid]
    r.cz.kill("c1")   # SIGTERM to every process in the cgroup
    ex = r.wait_exit("c1")
    assert ex.status == -signal.SIGTERM
    wait_for(lambda: all(_gone(p) for p in procs), 60, what="every process of the cgroup to end")
    r.cz.destroy("c1")


def test_a_task_groups_tasks_get_nested_cgroups_and_all_go_away(isolated_cluster):
    need_controllers("memory")
    h = isolated_cluster(CGROUPS)
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch_group", offer_ids=[o["offer_id"]], executor_id="pod", tasks=[
        {"task_id": "web", "command": "sleep 600", "mem": 48}, {"task_id": "side", "command": "sleep 600"}])
    web = h.wait_update(fw, "web", "TASK_RUNNING")
    side = h.wait_update(fw, "side", "TASK_RUNNING")
    paths = {}
    for name, u in (("web", web), ("side", side)):
        lines = open(f"/proc/{u['pid']}/cgroup").read().splitlines()
        paths[name] = next(line.split(":", 2)[2] for line in lines if line.split(":")[1] == "memory")
    root = h.cluster.agent_settings["containerizer"]["cgroups_root"]
    parts = {n: p.strip("/").split("/") for n, p in paths.items()}
    assert parts["web"][0] == root and parts["web"][:3] == parts["side"][:3]   # root / agent / executor
    assert parts["web"][3].startswith(parts["web"][2] + ".") and parts["web"][3] != parts["side"][3]
    limit = f"/sys/fs/cgroup/memory{paths['web']}/memory.limit_in_bytes"
    if os.path.exists(limit):
        assert int(open(limit).read()) == 48 * 2**20
    h.do(fw, "kill", task_id="web")
    h.wait_update(fw, "side", "TASK_KILLED")   # the group goes down together


def test_measured_usage_reaches_the_masters_role_accounting(isolated_cluster):
    need_controllers("cpu", "memory")
    h = isolated_cluster(CGROUPS, usage_interval=0.5)
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch", offer_ids=[o["offer_id"]],
         tasks=[{"task_id": "spin", "command": "while :; do :; done", "cpus": 0.2, "mem": 64}])
    h.wait_update(fw, "spin", "TASK_RUNNING")

    def measured():
        used = h.master_state()["roles"]["*"]["used"]
        # Allocated: 0.2 cpus, 64 MiB. A shell loop holds a few MiB; its CPU is a rate.
        return used if 0 < used["cpus"] <= 0.3 and 0 < used["mem"] < 16 else None

    used = h.wait(measured, "the spinner's measured usage in the master's accounting")
    print("used as the master counts it:", used)
    h.do(fw, "kill", task_id="spin")
    h.wait_update(fw, "spin", "TASK_KILLED")
    h.wait(lambda: h.master_state()["roles"]["*"]["used"]["cpus"] == 0, "the role's use to drop to 0")


def test_the_posix_fallback_polls_memory_and_sets_rlimits(runners, tmp_path):
    r = runners("posix")
    # Grows by 8 MiB every 50 ms, touching every page: the poll sees it pass 64 MiB.
    grow = "import time\nb = []\nwhile True:\n    b.append(bytearray(8 * 2**20))\n    time.sleep(0.05)\n"
    script = tmp_path / "grow.py"
    script.write_text(grow)
    launched = r.launch("c1", f"exec python3 {script}", mem=64)
    limits = open(f"/proc/{launched.pid}/limits").read()
    data = next(line for line in limits.splitlines() if line.startswith("Max data size"))
    assert data.split()[3] == str(64 * 2**20)   # RLIMIT_DATA at the memory limit
    ex = r.wait_exit("c1")
    if ex.reason is None:
        # RLIMIT_DATA stopped the allocation first: the interpreter says so.
        assert "MemoryError" in r.output("c1", "stderr")
    else:
        assert ex.reason.name == "REASON_CONTAINER_LIMITATION_MEMORY" and "polling" in ex.message
    r.cz.destroy("c1")


def test_v2_writes_weight_quota_memory_and_pids(runners):
    h = need_controllers("cpu", "memory", "pids")
    if not all(h.version_of(c) == 2 for c in ("cpu", "memory", "pids")):
        pytest.skip(f"no cgroup2 hierarchy holds cpu, memory and pids on this host ({h.describe()})")
    r = runners(CGROUPS, pids_max=100)
    r.launch("c1", "sleep 600", cpus=0.5, mem=96)
    d = r.container("c1").state["cgroups"]["v2"]
    assert open(os.path.join(d, "cpu.weight")).read().strip() == "50"
    assert open(os.path.join(d, "cpu.max")).read().split() == ["50000", "100000"]
    assert int(open(os.path.join(d, "memory.max")).read()) == 96 * 2**20
    assert open(os.path.join(d, "pids.max")).read().strip() == "100"
    r.launch("c2", "python3 -c 'bytearray(256 * 2**20)'", mem=64)
    ex = r.wait_exit("c2")
    assert ex.reason is not None and ex.reason.name == "REASON_CONTAINER_LIMITATION_MEMORY"
