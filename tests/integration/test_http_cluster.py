"""A real cluster's HTTP endpoints: `impresario master` and two `impresario agent`s as
processes on loopback (free ports), tasks running, every endpoint read over real HTTP;
a task's stdout tailed through /files/read while it prints; secrets and ACLs at the door."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.conftest import impresario_cmd
from tests.integration.test_cli import _free_port, _stop, _wait_line
from tests.schemas import check_metrics, check_state

pytestmark = pytest.mark.integration

CHATTY = "for i in $(seq 1 40); do echo line $i; sleep 0.25; done"


def get(url: str, auth: tuple[str, str] | None = None, headers: dict[str, str] | None = None,
        raw: bool = False) -> tuple[int, Any]:
    h = dict(headers or {})
    if auth is not None:
        h["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, headers=h)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kw: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            body, status, ctype = r.read(), r.status, r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        body, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
    if raw or not ctype.startswith("application/json"):
        return status, body
    return status, json.loads(body)


def wait_for(what: str, check: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def http_of(line: str) -> str:
    m = re.search(r"HTTP (https?://[0-9.:]+)", line)
    assert m, line
    return m.group(1)


class Cluster:
    def __init__(self, tmp_path: Any, extra: list[str] | None = None, agent_extra: list[str] | None = None) -> None:
        self.port = _free_port()
        self.cmd = impresario_cmd()
        self.procs: list[subprocess.Popen[str]] = []
        extra = extra or []
        self.master = self.start(["master", "--port", str(self.port), "--http-port", "0", "--work-dir",
                                  str(tmp_path / "m"), *extra])
        self.url = http_of(_wait_line(self.master, "impresario master "))
        self.agent_urls = []
        for i in range(2):
            a = self.start(["agent", "--master", f"127.0.0.1:{self.port}", "--port", str(_free_port()),
                            "--http-port", "0", "--work-dir", str(tmp_path / f"a{i}"),
                            "--resources", "cpus:2;mem:1024;disk:1024", *(agent_extra or [])])
            self.agent_urls.append(http_of(_wait_line(a, "registered with")))
        self.master_at = f"127.0.0.1:{self.port}"

    def start(self, args: list[str]) -> subprocess.Popen[str]:
        p = subprocess.Popen([*self.cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        return p

    def framework(self, command: str, *extra: str) -> subprocess.Popen[str]:
        settings = {"tasks": [{"name": "chatty", "count": 1, "cpus": 0.1, "mem": 32, "command": command}]}
        return self.start(["framework", "actors.frameworks.batch:BatchFramework", "--master", self.master_at,
                           "--settings", json.dumps(settings), *extra])

    def stop(self) -> None:
        for p in reversed(self.procs):
            _stop(p)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def running_task(url: str, name: str, auth: tuple[str, str] | None = None) -> dict[str, Any] | None:
    status, state = get(url + "/state", auth)
    assert status == 200, state
    for f in state["frameworks"]:
        for t in f["tasks"]:
            if t["name"].startswith(name) and t["state"] == "TASK_RUNNING":
                return {"task": t, "state": state}
    return None


def test_every_endpoint_of_a_running_cluster(cluster, tmp_path):
    fw = cluster.framework(CHATTY)
    try:
        found = wait_for("running task", lambda: running_task(cluster.url, "chatty"))
        task, state = found["task"], found["state"]
        check_state(state)
        assert state["activated_slaves"] == 2 and state["http_address"] == cluster.url
        agent = next(a for a in state["slaves"] if a["id"] == task["slave_id"])
        assert agent["http_address"] in cluster.agent_urls
        status, astate = get(agent["http_address"] + "/state")
        assert status == 200 and astate["id"] == agent["id"]
        (ex,) = [e for f in astate["frameworks"] for e in f["executors"]
                 if any(t["id"] == task["id"] for t in e["tasks"])]
        assert {"id", "framework_id", "container", "directory", "tasks"} <= set(ex)
        stdout = ex["directory"] + "/stdout"

        # A tail, as Mesos' pailer: the length first, then what comes after it.
        status, first = get(f"{agent['http_address']}/files/read?path={stdout}&offset=-1")
        assert status == 200 and first["data"] == ""
        offset, seen, reads_with_data = first["offset"], "", 0
        deadline = time.monotonic() + 120
        while "line 40\n" not in seen and time.monotonic() < deadline:
            status, got = get(f"{agent['http_address']}/files/read?path={stdout}&offset={offset}")
            assert status == 200 and got["offset"] == offset
            if got["data"]:
                reads_with_data += 1
                seen += got["data"]
                offset += len(got["data"].encode())
            time.sleep(0.3)
        assert "line 40\n" in seen and reads_with_data >= 2   # it came in while the task printed
        numbers = [int(x) for x in re.findall(r"line (\d+)", seen)]
        assert numbers == list(range(numbers[0], 41))
        assert fw.wait(timeout=120) == 0
    finally:
        _stop(fw)

    status, state = get(cluster.url + "/state")
    check_state(state)
    done = [t for f in state["frameworks"] for t in f["completed_tasks"] if t["name"].startswith("chatty")]
    assert [t["state"] for t in done] == ["TASK_FINISHED"]
    for path in ("/state-summary", "/frameworks", "/slaves", "/agents", "/tasks?limit=5&order=asc", "/roles",
                 "/quota", "/weights", "/flags", "/version", "/master/state"):
        status, body = get(cluster.url + path)
        assert status == 200 and isinstance(body, (dict, list)), (path, status, body)
    assert len(get(cluster.url + "/slaves")[1]["slaves"]) == 2
    assert get(cluster.url + "/tasks?task_id=" + task["id"])[1]["tasks"][0]["state"] == "TASK_FINISHED"
    assert get(cluster.url + "/tasks?limit=zero")[0] == 400
    assert get(cluster.url + "/nothing")[0] == 404
    assert get(cluster.url + "/health", raw=True)[0] == 200
    status, _ = get(cluster.url + "/redirect", raw=True)
    assert status == 307
    status, metrics = get(cluster.url + "/metrics/snapshot")
    check_metrics(metrics)
    assert metrics["master/tasks_finished"] >= 1 and metrics["master/slaves_active"] == 2
    assert metrics["allocator/mesos/allocation_runs"] >= 1 and metrics["master/cpus_total"] == 4
    status, text = get(cluster.url + "/metrics", raw=True)
    from prometheus_client.parser import text_string_to_metric_families

    names = {f.name for f in text_string_to_metric_families(text.decode())}
    assert {"impresario_master_tasks_running", "impresario_master_tasks_finished",
            "impresario_allocator_allocation_run_seconds"} <= names
    status, log = get(cluster.url + "/files/read?path=/master/log&offset=0")
    assert status == 200 and "master" in log["data"]
    status, zipped = get(cluster.url + "/state", headers={"Accept-Encoding": "gzip"}, raw=True)
    import gzip
    assert json.loads(gzip.decompress(zipped))["id"] == state["id"]

    a = agent["http_address"]
    for path in ("/state", "/flags", "/containers", "/monitor/statistics", "/metrics/snapshot"):
        status, body = get(a + path)
        assert status == 200, (path, body)
    assert get(a + "/metrics/snapshot")[1]["slave/tasks_finished"] >= 1
    assert get(a + "/health", raw=True)[0] == 200
    listing = get(f"{a}/files/browse?path={ex['directory']}")[1]
    assert {e["path"].rsplit("/", 1)[1] for e in listing} >= {"stdout", "stderr"}
    status, data = get(f"{a}/files/download?path={stdout}", raw=True)
    assert status == 200 and data.startswith(b"line 1\n")
    assert get(f"{a}/files/read?path=/slave/log&offset=0")[0] == 200
    for bad in (ex["directory"] + "/../../../../../../etc/passwd", "/etc/passwd",
                ex["directory"].replace("/runs/", "/runs/%2e%2e/%2e%2e/")):
        assert get(f"{a}/files/read?path={bad}&offset=0")[0] == 403, bad


def test_secrets_and_acls_at_the_http_door(tmp_path):
    from impresario.security import generate_secrets, load_secrets

    secrets = str(tmp_path / "secrets.json")
    generate_secrets(secrets)
    creds = load_secrets(secrets).secrets
    acls = tmp_path / "acls.json"
    acls.write_text(json.dumps({
        "permissive": True,
        "view_frameworks": [{"principals": {"values": ["agent"]}, "users": {"type": "NONE"}}],
        "view_tasks": [{"principals": {"values": ["agent"]}, "users": {"type": "NONE"}}],
        "view_agents": [{"principals": {"values": ["framework"]}, "agents": {"type": "NONE"}}],
        "access_sandboxes": [{"principals": {"values": ["framework"]}, "users": {"type": "NONE"}}],
    }))
    c = Cluster(tmp_path, ["--secrets", secrets, "--acls", str(acls)], ["--secrets", secrets, "--acls", str(acls)])
    operator = ("operator", creds["operator"].decode())
    try:
        assert get(c.url + "/state")[0] == 401
        assert get(c.url + "/state", ("operator", "wrong"))[0] == 401
        assert get(c.agent_urls[0] + "/state")[0] == 401
        fw = c.start(["framework", "actors.frameworks.batch:BatchFramework", "--master", c.master_at,
                      "--secrets", secrets, "--principal", "framework", "--settings",
                      json.dumps({"tasks": [{"name": "chatty", "count": 1, "cpus": 0.1, "mem": 32,
                                             "command": "echo hi; sleep 600"}]})])
        found = wait_for("running task", lambda: running_task(c.url, "chatty", operator))
        state = found["state"]
        assert state["slaves"] and state["frameworks"]
        status, as_agent = get(c.url + "/state", ("agent", creds["agent"].decode()))
        assert status == 200 and as_agent["frameworks"] == [] and len(as_agent["slaves"]) == 2
        status, as_fw = get(c.url + "/state", ("framework", creds["framework"].decode()))
        assert status == 200 and as_fw["slaves"] == [] and as_fw["frameworks"]
        assert get(c.url + "/tasks", ("agent", creds["agent"].decode()))[1]["tasks"] == []
        from impresario.realhost.http import bearer_token

        token = bearer_token("operator", creds["operator"])
        assert get(c.url + "/metrics/snapshot", headers={"Authorization": f"Bearer {token}"})[0] == 200
        agent_url = next(a["http_address"] for a in state["slaves"] if a["id"] == found["task"]["slave_id"])
        ex = next(e for f in get(agent_url + "/state", operator)[1]["frameworks"] for e in f["executors"])
        stdout = ex["directory"] + "/stdout"
        assert get(agent_url + "/state", ("framework", creds["framework"].decode()))[0] == 403
        status, _ = get(f"{agent_url}/files/read?path={stdout}&offset=0", ("framework", creds["framework"].decode()))
        assert status == 403
        status, got = get(f"{agent_url}/files/read?path={stdout}&offset=0", operator)
        assert status == 200 and got["data"].startswith("hi")
        _stop(fw)
    finally:
        c.stop()
