"""The command line, end to end, as a user runs it: real processes, real Thespian systems."""

import json
import signal
import socket
import subprocess
import time

import psutil
import pytest

from tests.integration.conftest import impresario_cmd

pytestmark = pytest.mark.integration

COUNTS = ("tasks_finished", "tasks_failed", "tasks_killed", "tasks_error", "tasks_lost", "tasks_running",
          "tasks_pending")


def test_local_runs_50_real_tasks(run_cli, tmp_path):
    code, out, err = run_cli("local", "--tasks", "50", "--command", "sleep 0.2; echo done", "--out", str(tmp_path))
    assert code == 0, out + err
    assert "50/50 FINISHED" in out
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["host"] == "real" and s["tasks_finished"] == 50
    assert sum(s[k] for k in COUNTS) == s["tasks_submitted"] == 50
    assert s["messages"] > 50 * 4


def test_local_with_the_defaults(run_cli):
    code, out, err = run_cli("local")
    assert code == 0, out + err
    assert "10/10 FINISHED" in out


def test_local_reports_a_failing_task_and_exits_1(run_cli):
    code, out, err = run_cli("local", "--tasks", "1", "--command", "echo bye; exit 1")
    assert code == 1, out + err
    assert "0/1 FINISHED, 1 FAILED" in out
    assert "TASK_FAILED REASON_COMMAND_EXECUTOR_FAILED Command exited with status 1" in out


def test_execute_shows_output_and_state(run_cli):
    code, out, err = run_cli("execute", "--local", "--cpus", "0.2", "--mem", "64MiB", "--",
                             "sh", "-c", "echo hello from a task")
    assert code == 0, out + err
    assert "hello from a task\n" in out and "TASK_FINISHED" in out
    code, out, err = run_cli("execute", "--local", "--", "sh -c 'exit 7'")
    assert code == 1 and "TASK_FAILED (REASON_COMMAND_EXECUTOR_FAILED): Command exited with status 7" in out


def test_sim_quickstart_writes_a_summary(run_cli, tmp_path):
    code, out, err = run_cli("sim", "scenarios/quickstart.toml", "--out", str(tmp_path))
    assert code == 0, out + err
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["tasks_submitted"] == 2500 and s["tasks_finished"] == 2500
    assert sum(s[k] for k in COUNTS) == s["tasks_submitted"]
    for key in ("virtual_seconds", "wall_seconds", "messages", "digest", "roles", "scheduling_latency"):
        assert key in s
    assert set(s["roles"]) == {"eng/batch", "eng/web"}
    assert set(s["roles"]["eng/batch"]["mean_allocated"]) == {"cpus", "mem", "disk", "gpus"}
    assert s["scheduling_latency"]["p50"] <= s["scheduling_latency"]["p90"] <= s["scheduling_latency"]["p99"]


def test_sim_refuses_a_bad_scenario_naming_the_key(run_cli, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[cluster]\nagents = 2\n[[frameworks]]\nname = "x"\ntasks = 1\ntask = { cpus = 1, mem = 1, durration = "1s" }\n')
    code, _out, err = run_cli("sim", str(p))
    assert code == 2
    assert "unknown key 'durration'" in err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc):
    """Stop a long-running impresario process and everything it started."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=20)
    for p in alive:
        p.kill()


def _wait_line(proc, words, timeout=60):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            lines.append(line)
            if words in line:
                return line
        elif proc.poll() is not None:
            break
    raise AssertionError(f"never saw {words!r}; got {lines!r}")


def test_master_agent_state_and_execute_as_separate_processes(run_cli, tmp_path):
    port = _free_port()
    cmd = impresario_cmd()
    master = subprocess.Popen([*cmd, "master", "--port", str(port), "--http-port", "0", "--work-dir", str(tmp_path / "m")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    agent = None
    try:
        _wait_line(master, "impresario master")
        agent = subprocess.Popen([*cmd, "agent", "--master", f"127.0.0.1:{port}", "--port", str(_free_port()), "--http-port", "0",
                                  "--work-dir", str(tmp_path / "a"), "--resources", "cpus:2;mem:1024;disk:1024"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_line(agent, "registered with")
        code, out, err = run_cli("state", "--master", f"127.0.0.1:{port}")
        assert code == 0, err
        state = json.loads(out)
        assert [a["resources"] for a in state["agents"]] == [{"cpus": 2, "mem": 1024, "disk": 1024}]
        code, out, err = run_cli("execute", "--master", f"127.0.0.1:{port}", "--", "echo", "from", "afar")
        assert code == 0, out + err
        assert "from afar" in out
        code, out, err = run_cli("framework", "actors.frameworks.batch:BatchFramework", "--master", f"127.0.0.1:{port}",
                                 "--settings", json.dumps({"tasks": [{"name": "x", "count": 3, "cpus": 0.5,
                                                                      "mem": 32, "command": "true"}]}))
        assert code == 0, out + err
        assert '"tasks_finished": 3' in out
        state = json.loads(run_cli("state", "--master", f"127.0.0.1:{port}")[1])
        assert sorted(f["name"] for f in state["frameworks"]) == ["BatchFramework", "execute"]
    finally:
        if agent is not None:
            _stop(agent)
        _stop(master)


def test_a_master_with_secrets_authenticates_agents_frameworks_and_operators(run_cli, tmp_path):
    from impresario.security import generate_secrets
    secrets = str(tmp_path / "secrets.json")
    generate_secrets(secrets)
    port = _free_port()
    cmd = impresario_cmd()
    master = subprocess.Popen([*cmd, "master", "--port", str(port), "--http-port", "0", "--work-dir", str(tmp_path / "m"),
                               "--secrets", secrets],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    agent = None
    try:
        assert "signed as 'master'" in _wait_line(master, "impresario master: messages")
        agent = subprocess.Popen([*cmd, "agent", "--master", f"127.0.0.1:{port}", "--port", str(_free_port()), "--http-port", "0",
                                  "--work-dir", str(tmp_path / "a"), "--resources", "cpus:2;mem:1024;disk:1024",
                                  "--secrets", secrets],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_line(agent, "registered with")
        code, out, err = run_cli("state", "--master", f"127.0.0.1:{port}", "--secrets", secrets)
        assert code == 0, err
        assert len(json.loads(out)["agents"]) == 1
        code, out, err = run_cli("execute", "--master", f"127.0.0.1:{port}", "--secrets", secrets,
                                 "--", "echo", "signed")
        assert code == 0 and "signed" in out, out + err
        # The same principals with other secrets: nothing they send is taken.
        forged = str(tmp_path / "forged.json")
        generate_secrets(forged)
        code, out, err = run_cli("state", "--master", f"127.0.0.1:{port}", "--secrets", forged, timeout=120)
        assert code == 2 and "no master at" in err
        code, out, err = run_cli("state", "--master", f"127.0.0.1:{port}", timeout=120)
        assert code == 2 and "give --secrets" in err
        state = json.loads(run_cli("state", "--master", f"127.0.0.1:{port}", "--secrets", secrets)[1])
        assert [f["name"] for f in state["frameworks"]] == ["execute"]
    finally:
        if agent is not None:
            _stop(agent)
        _stop(master)


def test_a_master_off_loopback_needs_secrets_and_a_private_secrets_file(run_cli, tmp_path):
    code, _out, err = run_cli("master", "--listen", "0.0.0.0", "--port", str(_free_port()),
                              "--work-dir", str(tmp_path / "m"))
    assert code == 2 and "--secrets" in err and "--insecure" in err
    from impresario.security import generate_secrets
    secrets = tmp_path / "secrets.json"
    generate_secrets(str(secrets))
    secrets.chmod(0o644)
    code, _out, err = run_cli("master", "--port", str(_free_port()), "--work-dir", str(tmp_path / "m"),
                              "--secrets", str(secrets))
    assert code == 2 and "chmod 600" in err


def test_state_without_a_master_fails_clearly(run_cli):
    code, _out, err = run_cli("state", "--master", f"127.0.0.1:{_free_port()}", timeout=120)
    assert code == 2 and "no master at" in err


def test_operator_calls_weights_and_quota(run_cli):
    from impresario.cluster import LocalCluster
    with LocalCluster(agents=1, agent_resources="cpus:4;mem:4096;disk:1024") as c:
        master = f"127.0.0.1:{c.systems[0].port}"
        # The cluster signs its messages: an operator call without the secrets goes unanswered.
        code, out, err = run_cli("weights", "eng=2", "--master", master, timeout=120)
        assert code == 2 and "--secrets" in err
        master = f"127.0.0.1:{c.systems[0].port}", "--secrets", c.secrets_file
        code, out, err = run_cli("weights", "eng=2", "ops=0.5", "--master", *master)
        assert code == 0, err
        assert json.loads(out) == {"eng": 2.0, "ops": 0.5}
        code, out, err = run_cli("quota", "eng", "--guarantee", "cpus:1;mem:512", "--limit", "cpus:2;mem:1GiB",
                                 "--master", *master)
        assert code == 0, err
        assert json.loads(out) == {"eng": {"guarantee": {"cpus": 1.0, "mem": 512.0},
                                           "limit": {"cpus": 2.0, "mem": 1024.0}}}
        code, out, err = run_cli("quota", "eng/web", "--guarantee", "cpus:3", "--master", *master)
        assert code == 1 and "refused" in err and "exceed" in err
        state = c.state()
        assert state["weights"] == {"eng": 2.0, "ops": 0.5}
        assert state["quotas"]["eng"]["limit"] == {"cpus": 2.0, "mem": 1024.0}
        code, out, err = run_cli("quota", "eng", "--remove", "--master", *master)
        assert code == 0 and json.loads(out) == {}


def test_execute_reports_a_task_past_its_memory_with_the_memory_reason(run_cli):
    from tests.integration.conftest import need_controllers

    need_controllers("cpu", "memory", "pids")
    code, out, err = run_cli("execute", "--local", "--cpus", "0.2", "--mem", "64MiB", "--",
                             "python3", "-c", "bytearray(256 * 2**20)")
    assert code == 1, out + err
    assert "isolation: cgroups/cpu,cgroups/mem,cgroups/pids" in out
    assert "TASK_FAILED (REASON_CONTAINER_LIMITATION_MEMORY): Memory limit exceeded" in out


def test_an_unknown_isolator_is_named_at_start_up(run_cli):
    code, _out, err = run_cli("agent", "--master", f"127.0.0.1:{_free_port()}",
                              "--isolation", "cgroups/cpu,cgroups/blkio")
    assert code == 2 and "unknown isolator 'cgroups/blkio'" in err
    code, _out, err = run_cli("local", "--isolation", "posix/cpu,gpu/amd")
    assert code == 2 and "unknown isolator 'gpu/amd'" in err
