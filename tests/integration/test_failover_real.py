"""Fault tolerance on a real host: a master killed and started again from its registry, an
agent killed and started again from its checkpoint, its tasks' processes re-adopted.

Crashes are real: ``kill -9`` of a Thespian system's whole process group (admin, logger,
actors).  The tasks run in sessions of their own and must survive it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil
import pytest

from actors.frameworks.batch import make_task
from actors.protocol.resources import Resources
from impresario.cluster import AGENT_CLASS, LocalCluster, wait_for
from isolators.containerizer import Containerizer, default_isolation

pytestmark = pytest.mark.integration

PROBE = "tests.actors.probe:ProbeFramework"
PATIENCE = 180.0   # one condition, on a loaded two-core machine

def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _isolation(cgroups_root):
    names, _ = default_isolation()
    return {"isolation": names, "cgroups_root": cgroups_root}


@pytest.fixture
def clusters(tmp_path, cgroups_root):
    """Make real clusters with recovery on; every system is stopped and every task process
    recorded through :func:`track` is killed afterwards, whatever happened."""
    made = []
    pids = set()

    def make(agents, resources, agent_class=AGENT_CLASS, **agent_settings):
        c = LocalCluster(agents=agents, work_dir=str(tmp_path / f"work{len(made)}"), agent_resources=resources,
                         agent_settings={"containerizer": _isolation(cgroups_root), **agent_settings},
                         agent_class=agent_class)
        made.append(c)
        c.start(timeout=PATIENCE)
        return c

    make.pids = pids
    yield make
    for c in made:
        c.stop()
    for pid in pids:   # a task whose container was never destroyed (a failed test)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def events(c, fw):
    return c.query(fw, "events")


def wait(pred, what, timeout=PATIENCE):
    return wait_for(pred, timeout, interval=0.5, what=what)


def launch_on_every_agent(c, fw, per_agent, command, prefix="t"):
    def offers():
        ev = events(c, fw)
        out = {}
        for o in ev["offers"]:
            if o["offer_id"] in ev["outstanding_offers"]:
                out.setdefault(o["agent_id"], o)
        return list(out.values()) if len(out) >= c.n_agents else None

    ids = []
    for n, o in enumerate(wait(offers, f"an offer from each of {c.n_agents} agents")):
        tasks = [{"task_id": f"{prefix}{n}-{i}", "command": command, "cpus": 0.01, "mem": 16}
                 for i in range(per_agent)]
        assert c.client is not None
        c.client.query(fw, "do", action="launch", offer_ids=[o["offer_id"]], tasks=tasks)
        ids += [t["task_id"] for t in tasks]
    return ids


def running_pids(c, fw, ids):
    def all_running():
        seen = {u["task_id"]: u["pid"] for u in events(c, fw)["updates"] if u["state"] == "TASK_RUNNING"}
        bad = [u for u in events(c, fw)["updates"] if u["state"] not in ("TASK_RUNNING", "TASK_STAGING")]
        assert not bad, f"tasks ended: {bad[:3]}"
        return seen if all(t in seen for t in ids) else None
    pids = wait(all_running, f"{len(ids)} tasks to run")
    return {t: pids[t] for t in ids}


def master_tasks(c):
    return {t["id"]: t["state"] for t in c.state()["tasks"]}


# --------------------------------------------------------------------------- the containerizer alone


def _task(tid, command):
    return make_task(tid, "agent", Resources.of(cpus=0.1, mem=32), command=command)


def test_a_new_containerizer_readopts_a_running_container_and_can_kill_it(tmp_path, cgroups_root):
    settings = {"agent_id": "S1", "container_id": "c1", "work_dir": str(tmp_path / "work"),
                "containerizer": _isolation(cgroups_root)}
    old = Containerizer(None, settings)
    sandbox = str(tmp_path / "sb" / "c1")
    task = _task("t1", "echo started; sleep 600")
    pid = old.launch("c1", task, sandbox).pid
    new = None
    try:
        state = tmp_path / "work" / "meta" / "containers" / "S1" / "c1.json"
        assert state.exists() and "sandbox" not in str(state)
        # The executor is gone; a new one (another containerizer) takes the container over.
        new = Containerizer(None, settings)
        assert not new.recover("c9", task, sandbox)   # never launched: nothing recorded
        assert new.recover("c1", task, sandbox)
        assert new.next_check() is not None and new.reap() == []
        u = new.usage("c1")
        assert u is not None and u.mem_limit_bytes > 0
        wait_for(lambda: b"started" in new.output_tail("c1", 100), 30, what="the task's output")
        new.kill("c1")
        ex = wait_for(lambda: new.reap(), 60, interval=0.05, what="the killed task's exit")
        # Not our child, but its gate recorded how it ended: by the SIGTERM.
        assert [(e.container_id, e.status) for e in ex] == [("c1", -signal.SIGTERM)]
        assert not alive(pid)
        new.destroy("c1")
        assert not state.exists()
        assert not os.path.exists(tmp_path / "work" / "meta" / "containers" / "S1")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if new is not None:
            new.shutdown()
        old.shutdown()


def test_a_container_that_ended_or_whose_pid_was_reused_is_reported_ended(tmp_path, cgroups_root):
    settings = {"agent_id": "S1", "container_id": "g1", "work_dir": str(tmp_path / "work"),
                "containerizer": _isolation(cgroups_root)}
    old = Containerizer(None, settings)
    try:
        quick = old.launch("g1.1", _task("q", "true"), str(tmp_path / "sb" / "g1.1")).pid
        slow = old.launch("g1.2", _task("s", "sleep 600"), str(tmp_path / "sb" / "g1.2")).pid
        wait_for(lambda: not alive(quick), 30, what="the quick task to end")
        path = tmp_path / "work" / "meta" / "containers" / "S1" / "g1" / "g1.2.json"
        # A pid that names another process now (its start time differs) is not the task.
        path.write_text(path.read_text().replace('"create_time": ', '"create_time": 1'))
        new = Containerizer(None, settings)
        try:
            assert new.recover("g1.1", _task("q", "true"), str(tmp_path / "sb" / "g1.1"))
            assert new.recover("g1.2", _task("s", "sleep 600"), str(tmp_path / "sb" / "g1.2"))
            exits: dict[str, int | None] = {}

            def both():   # (an exit is reported once the container's logger has ended too)
                exits.update((e.container_id, e.status) for e in new.reap())
                return len(exits) == 2
            wait_for(both, 30, interval=0.05, what="both exits")
            # The quick one's gate recorded its status; the other's pid names a stranger: unknown.
            assert exits == {"g1.1": 0, "g1.2": None}
            if not any(n.startswith("cgroups/") for n in _isolation(cgroups_root)["isolation"]):
                # Without cgroups, a kill goes to the pid's process group: never to a stranger's.
                new.kill("g1.2", hard=True)
                assert alive(slow)
            # (With cgroups, what is left in the container's cgroup once its main process is
            # gone is killed: the cgroup holds only the container's processes.)
        finally:
            for cid in ("g1.1", "g1.2"):
                new.running.pop(cid, None)   # not ours to destroy: the old one still has them
    finally:
        old.shutdown()
    assert not alive(slow)


# --------------------------------------------------------------------------- a master crash


def test_the_master_is_killed_and_its_agents_and_framework_follow_the_new_one(clusters):
    c = clusters(1, "cpus:2;mem:2048;disk:2048")
    fw = c.start_framework(PROBE, "probe", {"failover_timeout": 3600.0}, own_system=True)
    wait(lambda: events(c, fw)["framework_id"], "the probe to subscribe")
    pids = running_pids(c, fw, launch_on_every_agent(c, fw, 2, "sleep 3600"))
    clusters.pids.update(pids.values())
    c.kill_master()
    c.restart_master(timeout=PATIENCE)

    def outcome():
        drops = {**c.query(c.agents[0], "stats")["drops"], **c.query(fw, "stats")["drops"]}
        assert not any("not from a master" in d for d in drops), drops
        return any(a["reachable"] for a in c.state()["agents"]) and events(c, fw)["connected"]
    wait(outcome, "the agent and the framework to follow the new master")


def test_the_master_is_killed_and_a_new_one_recovers_every_running_task_from_its_registry(clusters):
    c = clusters(2, "cpus:4;mem:4096;disk:4096")
    fw = c.start_framework(PROBE, "probe", {"failover_timeout": 3600.0}, own_system=True)
    wait(lambda: events(c, fw)["framework_id"], "the probe to subscribe")
    fid = events(c, fw)["framework_id"]
    ids = launch_on_every_agent(c, fw, 50, "sleep 3600")
    pids = running_pids(c, fw, ids)
    clusters.pids.update(pids.values())
    wait(lambda: sum(1 for s in master_tasks(c).values() if s == "TASK_RUNNING") == 100, "the master to see 100")
    old_master, old_id = c.master, c.master_id
    agent_ids = sorted(a["id"] for a in c.state()["agents"])
    n_updates = len(events(c, fw)["updates"])

    c.kill_master()
    assert all(alive(p) for p in pids.values()), "a task died with the master"

    t0 = time.monotonic()
    c.restart_master(timeout=PATIENCE)
    assert c.master != old_master and c.master_id != old_id

    def recovered():
        st = c.state()
        agents = sorted(a["id"] for a in st["agents"] if a["reachable"])
        tasks = {t["id"]: t["state"] for t in st["tasks"]}
        fws = {f["id"]: f for f in st["frameworks"]}
        return (agents == agent_ids and all(tasks.get(t) == "TASK_RUNNING" for t in ids)
                and fid in fws and fws[fid]["connected"])
    wait(recovered, "the new master to know both agents, the framework and its 100 running tasks")
    took = time.monotonic() - t0

    # The framework follows the new master, keeps its id, and believes every task running.
    ev = wait(lambda: (lambda e: e if e["connected"] and e["framework_id"] == fid else None)(events(c, fw)),
              "the framework to be subscribed to the new master")
    assert ev["framework_id"] == fid
    tracked = c.query(fw, "tasks")
    assert all(tracked.get(t) == "TASK_RUNNING" for t in ids), tracked
    later = ev["updates"][n_updates:]
    assert not [u for u in later if u["state"] != "TASK_RUNNING"], later[:5]
    assert all(alive(p) for p in pids.values())

    # And the cluster still works: a new task runs through the new master.
    wait(lambda: [o for o in events(c, fw)["offers"] if o["offer_id"] in events(c, fw)["outstanding_offers"]],
         "an offer from the new master")
    assert took < PATIENCE


# --------------------------------------------------------------------------- an agent crash


def test_an_agent_is_killed_and_restarted_from_its_checkpoint_with_its_tasks_still_running(clusters, tmp_path):
    c = clusters(1, "cpus:4;mem:4096;disk:4096")
    fw = c.start_framework(PROBE, "probe", {})
    wait(lambda: events(c, fw)["framework_id"], "the probe to subscribe")
    done = tmp_path / "done"
    ids = launch_on_every_agent(c, fw, 8, "sleep 3600")
    pids = running_pids(c, fw, ids)
    clusters.pids.update(pids.values())
    # One task that ends when told to, and a task group (two nested containers, one executor).
    offers = wait(lambda: [o for o in events(c, fw)["offers"] if o["offer_id"] in events(c, fw)["outstanding_offers"]],
                  "another offer")
    assert c.client is not None
    c.client.query(fw, "do", action="launch", offer_ids=[offers[0]["offer_id"]],
                   tasks=[{"task_id": "ender", "command": f"while [ ! -e {done} ]; do sleep 0.2; done",
                           "cpus": 0.01, "mem": 16}])
    pids.update(running_pids(c, fw, ["ender"]))
    offers = wait(lambda: [o for o in events(c, fw)["offers"] if o["offer_id"] in events(c, fw)["outstanding_offers"]],
                  "a third offer")
    c.client.query(fw, "do", action="launch_group", offer_ids=[offers[0]["offer_id"]], executor_id="group",
                   tasks=[{"task_id": f"g{i}", "command": "sleep 3600", "cpus": 0.01, "mem": 16} for i in range(2)])
    pids.update(running_pids(c, fw, ["g0", "g1"]))
    clusters.pids.update(pids.values())
    everything = [*ids, "ender", "g0", "g1"]
    before = c.query(c.agents[0], "state")
    assert before["registered"] and len(before["executors"]) == 10
    wait(lambda: c.query(c.agents[0], "state")["pending_updates"] == 0, "the updates to be acknowledged")
    n_updates = len(events(c, fw)["updates"])

    c.kill_agent(0)
    assert all(alive(p) for p in pids.values()), "a task died with its agent"
    c.restart_agent(0, timeout=PATIENCE)

    def recovered():
        st = c.query(c.agents[0], "state")
        tasks = {t: s for e in st["executors"] for t, s in e["tasks"].items()}
        return st if st["registered"] and all(tasks.get(t) == "TASK_RUNNING" for t in everything) else None
    after = wait(recovered, "the agent to recover its executors and tasks")
    assert after["agent_id"] == before["agent_id"]
    assert sorted((e["executor_id"], e["container_id"]) for e in after["executors"]) == \
        sorted((e["executor_id"], e["container_id"]) for e in before["executors"])
    assert all(alive(p) for p in pids.values())

    def master_sees():
        st = c.state()
        agents = [a for a in st["agents"] if a["reachable"]]
        tasks = {t["id"]: t["state"] for t in st["tasks"]}
        return len(agents) == 1 and agents[0]["id"] == before["agent_id"] and \
            all(tasks.get(t) == "TASK_RUNNING" for t in everything)
    wait(master_sees, "the master to see the agent under its old id, its tasks running")
    later = events(c, fw)["updates"][n_updates:]
    assert not [u for u in later if u["state"] != "TASK_RUNNING"], later[:5]

    # A re-adopted task that ends: its exit is reported with its status (its gate recorded it).
    done.write_text("")

    def ended():
        for u in events(c, fw)["updates"][n_updates:]:
            if u["task_id"] == "ender" and u["state"] not in ("TASK_RUNNING", "TASK_STAGING"):
                return u
        return None
    u = wait(ended, "the ender's exit to be reported")
    assert (u["state"], u["message"]) == ("TASK_FINISHED", "Command exited with status 0"), u
    assert not alive(pids["ender"])

    # Killing a re-adopted task reaches its process; the group's other task goes with it.
    c.client.query(fw, "do", action="kill", task_id=ids[0])
    c.client.query(fw, "do", action="kill", task_id="g0")

    def killed():
        states = {u["task_id"]: u["state"] for u in events(c, fw)["updates"][n_updates:]}
        return states if {states.get(ids[0]), states.get("g0"), states.get("g1")} == {"TASK_KILLED"} else None
    wait(killed, "the kills to be reported")
    wait(lambda: not alive(pids[ids[0]]) and not alive(pids["g0"]) and not alive(pids["g1"]),
         "the killed tasks' processes to end")
    assert all(alive(pids[t]) for t in ids[1:])


# --------------------------------------------------------------------------- the command line


def _task_processes(work_dir, main_only=False):
    """Live processes of tasks whose sandboxes are under ``work_dir`` (only each task's main
    process, its session's leader, with ``main_only``)."""
    out = []
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if env.get("IMPRESARIO_SANDBOX", "").startswith(str(work_dir)) and p.status() != psutil.STATUS_ZOMBIE \
                    and (not main_only or os.getsid(p.pid) == p.pid):
                out.append(p)
        except (psutil.Error, OSError):
            pass
    return out


def _listener(port):
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def test_impresario_agent_killed_and_started_again_recovers_its_tasks(run_cli, tmp_path, cgroups_root):
    import json
    import subprocess

    from tests.integration.conftest import impresario_cmd
    from tests.integration.test_cli import _free_port, _stop

    cmd = impresario_cmd()
    port, agent_port = _free_port(), _free_port()
    master_at = f"127.0.0.1:{port}"
    agent_dir = tmp_path / "a"
    agent_args = [*cmd, "agent", "--master", master_at, "--port", str(agent_port), "--http-port", "0", "--work-dir", str(agent_dir),
                  "--resources", "cpus:2;mem:1024;disk:1024", "--cgroups-root", cgroups_root]
    procs = []

    def start(args, name):
        out = open(tmp_path / f"{name}.out", "w")
        procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True))
        return procs[-1], tmp_path / f"{name}.out"

    def saw(path, words):
        return wait(lambda: words in path.read_text(), f"{words!r} in {path.name}")

    def state():
        code, out, err = run_cli("state", "--master", master_at)
        assert code == 0, err
        return json.loads(out)

    try:
        _, master_out = start([*cmd, "master", "--port", str(port), "--http-port", "0", "--work-dir", str(tmp_path / "m")], "master")
        saw(master_out, "impresario master")
        assert "registry " + str(tmp_path / "m" / "registry") in master_out.read_text()
        agent, agent_out = start(agent_args, "agent1")
        saw(agent_out, "registered with")
        settings = {"tasks": [{"name": "long", "count": 2, "cpus": 0.1, "mem": 32, "command": "sleep 3600"}]}
        start([*cmd, "framework", "actors.frameworks.batch:BatchFramework", "--master", master_at,
               "--settings", json.dumps(settings)], "framework")
        wait(lambda: sum(t["state"] == "TASK_RUNNING" for t in state()["tasks"]) == 2, "two tasks to run")
        agent_id = state()["agents"][0]["id"]
        tasks = wait(lambda: (lambda ps: ps if len(ps) == 2 else None)(_task_processes(agent_dir, True)),
                     "the tasks' processes")

        # kill -9: the agent's Thespian system (admin and actors: one process group) and the command.
        admin = _listener(agent_port)
        assert admin is not None
        os.killpg(os.getpgid(admin), signal.SIGKILL)
        agent.kill()
        agent.wait(timeout=60)
        wait(lambda: _listener(agent_port) is None, "the agent's system to be gone")
        assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tasks)

        _, again_out = start(agent_args, "agent2")
        saw(again_out, "recovered 2 tasks from its checkpoint")
        assert agent_id in again_out.read_text()

        def back():
            st = state()
            return [a["id"] for a in st["agents"] if a["reachable"]] == [agent_id] and \
                [t["state"] for t in st["tasks"]] == ["TASK_RUNNING"] * 2
        wait(back, "the master to see the agent back with its two tasks running")
        assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tasks)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                _stop(p)
        left = _task_processes(agent_dir)
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        admin = _listener(agent_port)
        if admin is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(admin), signal.SIGKILL)
    assert not left, "a clean stop of the recovered agent kills its re-adopted tasks"


# --------------------------------------------------------------------------- masters, from the command line


@pytest.fixture
def cli(tmp_path, run_cli):
    """Start ``impresario`` commands as processes of their own (output in files); afterwards
    stop them, kill every Thespian system still listening on a port handed out by
    ``cli.port()`` (their admins daemonize), and kill task processes left under tmp_path."""
    import subprocess

    from tests.integration.conftest import impresario_cmd
    from tests.integration.test_cli import _free_port, _stop

    class Cli:
        cmd = impresario_cmd()
        procs: list = []
        ports: list = []

        def port(self):
            self.ports.append(_free_port())
            return self.ports[-1]

        def start(self, name, *args):
            path = tmp_path / f"{name}.out"
            proc = subprocess.Popen([*self.cmd, *args], stdout=open(path, "w"), stderr=subprocess.STDOUT, text=True)
            self.procs.append(proc)
            return proc, path

        def saw(self, path, words):
            return wait(lambda: words in path.read_text(), f"{words!r} in {path.name}")

        def state(self, masters):
            code, out, err = run_cli("state", "--master", masters)
            assert code == 0, out + err
            return json.loads(out)

        def kill_system(self, port, proc):
            """kill -9 the Thespian system on ``port`` (its whole process group) and the command."""
            admin = _listener(port)
            assert admin is not None
            os.killpg(os.getpgid(admin), signal.SIGKILL)
            proc.kill()
            proc.wait(timeout=60)
            wait(lambda: _listener(port) is None, f"the system on port {port} to be gone")

    import json

    c = Cli()
    c.procs, c.ports = [], []
    yield c
    for p in reversed(c.procs):
        if p.poll() is None:
            _stop(p)
    for port in c.ports:
        admin = _listener(port)
        if admin is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(admin), signal.SIGKILL)
    for p in _task_processes(tmp_path):
        with contextlib.suppress(psutil.Error):
            p.kill()


LONG_TASKS = '{"tasks": [{"name": "long", "count": 2, "cpus": 0.1, "mem": 32, "command": "sleep 3600"}]}'


def _running_on(st, n):
    agents = [a["id"] for a in st["agents"] if a["reachable"]]
    running = [t for t in st["tasks"] if t["state"] == "TASK_RUNNING"]
    connected = [f["id"] for f in st["frameworks"] if f["connected"]]
    return (agents, len(running), connected) if len(agents) == 1 and len(running) == n and connected else None


def test_impresario_master_killed_and_started_again_finds_its_agent_framework_and_tasks(cgroups_root, cli,
                                                                                        tmp_path):
    port, agent_port = cli.port(), cli.port()
    at = f"127.0.0.1:{port}"
    master_args = ["master", "--port", str(port), "--http-port", "0", "--work-dir", str(tmp_path / "m"), "--heartbeat-interval", "2"]
    master, out = cli.start("master1", *master_args)
    cli.saw(out, "impresario master")
    _, agent_out = cli.start("agent", "agent", "--master", at, "--port", str(agent_port), "--http-port", "0", "--work-dir",
                             str(tmp_path / "a"), "--resources", "cpus:2;mem:1024;disk:1024",
                             "--cgroups-root", cgroups_root)
    cli.saw(agent_out, "registered with")
    cli.start("framework", "framework", "actors.frameworks.batch:BatchFramework", "--master", at, "--settings", LONG_TASKS)
    before = wait(lambda: _running_on(cli.state(at), 2), "two tasks to run")
    pids = _task_processes(tmp_path / "a", True)
    assert len(pids) == 2

    cli.kill_system(port, master)
    assert all(p.is_running() for p in pids)
    _, out2 = cli.start("master2", *master_args)
    cli.saw(out2, "impresario master")
    # The new master (a new id, its actor at a new address) calls back the agent and the
    # framework its registry names: both follow it, and the tasks were never lost.
    after = wait(lambda: _running_on(cli.state(at), 2), "the new master to know the agent, the framework and "
                                                         "both tasks")
    assert after[0] == before[0] and after[2] == before[2]
    assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in pids)


@pytest.mark.parametrize("standby_at_start", [True, False], ids=["standby-running", "standby-started-later"])
def test_an_agent_and_a_framework_fall_back_on_the_next_master_of_their_list(cgroups_root, cli, tmp_path,
                                                                            standby_at_start):
    p1, p2, agent_port = cli.port(), cli.port(), cli.port()
    m1, m2 = f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"
    fast = ["--agent-ping-timeout", "1", "--heartbeat-interval", "1"]
    master1, out1 = cli.start("master1", "master", "--port", str(p1), "--http-port", "0", "--work-dir", str(tmp_path / "m1"), *fast)
    standby = ["master", "--port", str(p2), "--http-port", "0", "--work-dir", str(tmp_path / "m2"), *fast]
    cli.saw(out1, "impresario master")
    if standby_at_start:
        cli.saw(cli.start("master2", *standby)[1], "impresario master")
    _, agent_out = cli.start("agent", "agent", "--master", f"{m1},{m2}", "--port", str(agent_port), "--http-port", "0",
                             "--work-dir", str(tmp_path / "a"), "--resources", "cpus:2;mem:1024;disk:1024",
                             "--cgroups-root", cgroups_root)
    cli.saw(agent_out, "registered with")
    if standby_at_start:
        assert f"registered with {m1} (1 other master to fall back on)" in agent_out.read_text()
    else:
        assert f"master {m2} left out for now (not reachable" in agent_out.read_text()
    cli.start("framework", "framework", "actors.frameworks.batch:BatchFramework", "--master", m1, "--master", m2,
              "--settings", LONG_TASKS)
    before = wait(lambda: _running_on(cli.state(m1), 2), "two tasks to run through the first master")
    if not standby_at_start:
        cli.saw(cli.start("master2", *standby)[1], "impresario master")
    assert cli.state(m2)["agents"] == []
    pids = _task_processes(tmp_path / "a", True)

    cli.kill_system(p1, master1)
    # Silence: the agent (after 6 ping intervals) and the framework (after 5 heartbeats)
    # turn to the next master of their list - a standby started after them is looked up
    # by their command then - which has no registry: it learns the agent, its tasks and
    # the framework from them.
    after = wait(lambda: _running_on(cli.state(m2), 2), "the second master to know the agent, the framework "
                                                        "and both tasks")
    assert after[0] == before[0] and after[2] == before[2]
    assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in pids)
    # And "state" with both addresses asks the first that answers.
    assert _running_on(cli.state(f"{m1},{m2}"), 2) == after
