"""The HTTP door (impresario.realhost.http, .files) on loopback, over real sockets:
authentication, caps, timeouts, JSON errors, TLS, confinement of /files, Prometheus text."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from impresario.realhost.endpoints import file_routes
from impresario.realhost.files import Files
from impresario.realhost.http import Door, HttpAuth, Readers, Response, bearer_token, json_response

pytestmark = pytest.mark.integration

SECRETS = {"ops": b"s3cret", "agent": b"other"}


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None,
        context: Any = None) -> tuple[int, dict[str, Any] | bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            body = r.read()
            status, hdrs = r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        body, status, hdrs = e.read(), e.code, dict(e.headers)
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(body), hdrs
    return status, body, hdrs


def until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            return out
        out += data


def basic(principal: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode()}


@pytest.fixture
def door(tmp_path):
    calls = {"n": 0}

    def hello(r):
        calls["n"] += 1
        return json_response({"principal": r.principal, "params": r.params, "body": r.body.decode()})

    def boom(r):
        raise RuntimeError("a handler failed")

    d = Door("test", "127.0.0.1", 0, {"/hello": hello, "/boom": boom}, auth=HttpAuth(dict(SECRETS)),
             client_timeout=2.0).start()
    d.calls = calls
    yield d
    d.stop()


def test_requests_must_authenticate_when_the_door_has_secrets(door):
    status, body, hdrs = get(door.url + "/hello")
    assert status == 401 and "authentication required" in body["error"]
    assert hdrs["WWW-Authenticate"].startswith("Basic")
    assert get(door.url + "/hello", basic("ops", "wrong"))[0] == 401
    assert get(door.url + "/hello", basic("nobody", "s3cret"))[0] == 401
    assert get(door.url + "/hello", {"Authorization": "Basic !!!"})[0] == 401
    assert get(door.url + "/hello", {"Authorization": "Digest x"})[0] == 401
    status, body, _ = get(door.url + "/hello?x=1", basic("ops", "s3cret"))
    assert status == 200 and body["principal"] == "ops" and body["params"] == {"x": "1"}
    token = bearer_token("ops", SECRETS["ops"])
    assert get(door.url + "/hello", {"Authorization": f"Bearer {token}"})[1]["principal"] == "ops"
    forged = bearer_token("ops", SECRETS["agent"])
    assert get(door.url + "/hello", {"Authorization": f"Bearer {forged}"})[0] == 401
    assert door.calls["n"] == 2


def test_refusals_are_json_and_leave_the_door_up(door):
    auth = basic("ops", "s3cret")
    status, body, _ = get(door.url + "/nowhere", auth)
    assert status == 404 and body == {"error": "no such endpoint: /nowhere"}
    status, body, _ = get(door.url + "/boom", auth)
    assert status == 500 and "a handler failed" in body["error"]
    with socket.create_connection((door.host, door.port), timeout=30) as s:
        s.sendall(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nAuthorization: "
                  + auth["Authorization"].encode() + b"\r\n\r\n")
        answer = until_closed(s)
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than 1048576 bytes" in answer
    status, body, _ = get(door.url + "/hello", auth, data=b'{"a": 1}')
    assert status == 200 and body["body"] == '{"a": 1}'
    with socket.create_connection((door.host, door.port), timeout=30) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        answer = until_closed(s)
    assert answer.startswith(b"HTTP/1.1 400") and b'"error"' in answer
    assert get(door.url + "/hello", auth)[0] == 200


def test_a_slow_client_is_cut_off(door):
    with socket.create_connection((door.host, door.port), timeout=60) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")   # and never the end of the headers
        deadline = time.monotonic() + 60
        closed = False
        while time.monotonic() < deadline:
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except ConnectionResetError:
                closed = True
                break
    assert closed
    assert get(door.url + "/hello", basic("ops", "s3cret"))[0] == 200


def test_tls(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    d = Door("tls", "127.0.0.1", 0, {"/hello": lambda r: json_response({"ok": True})}, tls=(str(cert), str(key)))
    d.start()
    try:
        assert d.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        assert get(d.url + "/hello", context=context)[1] == {"ok": True}
        with pytest.raises(urllib.error.URLError):
            get(d.url + "/hello")   # not trusted without the certificate
        with socket.create_connection((d.host, d.port), timeout=30) as s:   # plain HTTP to a TLS door
            s.sendall(b"GET /hello HTTP/1.1\r\n\r\n")
            s.recv(4096)
        assert get(d.url + "/hello", context=context)[0] == 200
    finally:
        d.stop()


def files_door(tmp_path: Any) -> tuple[Door, str]:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "stdout").write_bytes(b"0123456789")
    (sandbox / "sub").mkdir()
    (sandbox / "sub" / "f").write_text("inside")
    (tmp_path / "secret").write_text("outside")
    os.symlink(tmp_path / "secret", sandbox / "escape")
    os.symlink(sandbox / "stdout", sandbox / "stdout.link")
    files = Files()
    files.attach("/sandbox", str(sandbox))
    files.attach("/slave/log", str(tmp_path / "agent.log"))
    (tmp_path / "agent.log").write_text("log line\n")
    return Door("files", "127.0.0.1", 0, file_routes(files)).start(), str(sandbox)


def test_files_read_tails_and_browses(tmp_path):
    d, sandbox = files_door(tmp_path)
    try:
        status, body, _ = get(d.url + "/files/read?path=/sandbox/stdout&offset=-1")
        assert status == 200 and body == {"data": "", "offset": 10}
        assert get(d.url + "/files/read?path=/sandbox/stdout&offset=4&length=3")[1] == {"data": "456", "offset": 4}
        assert get(d.url + "/files/read?path=/sandbox/stdout&offset=99")[1] == {"data": "", "offset": 10}
        with open(os.path.join(sandbox, "stdout"), "ab") as fh:
            fh.write(b"abc")
        assert get(d.url + "/files/read?path=/sandbox/stdout&offset=10")[1] == {"data": "abc", "offset": 10}
        listing = get(d.url + "/files/browse?path=/sandbox")[1]
        assert {e["path"] for e in listing} >= {"/sandbox/stdout", "/sandbox/sub"}
        assert all({"size", "mtime", "mode", "nlink", "uid", "gid"} <= set(e) for e in listing)
        status, body, hdrs = get(d.url + "/files/download?path=/sandbox/stdout")
        assert status == 200 and body == b"0123456789abc" and "attachment" in hdrs["Content-Disposition"]
        assert get(d.url + "/files/read?path=/sandbox/stdout.link&offset=0")[1]["data"] == "0123456789abc"
        assert get(d.url + "/files/read?path=/slave/log&offset=0")[1]["data"] == "log line\n"
        assert get(d.url + "/files/read?path=/sandbox/nothing")[0] == 404
        assert get(d.url + "/files/read?path=/sandbox/stdout&offset=x")[0] == 400
    finally:
        d.stop()


@pytest.mark.parametrize("path", [
    "/sandbox/../secret", "/sandbox/%2e%2e/secret", "/sandbox/%2E%2E%2Fsecret", "/sandbox/./stdout",
    "/sandbox/escape", "/etc/passwd", "/sandbox/sub/../../secret", "/sandbox/%00", "..%2fsecret",
    "/slave/log/../../secret",
])
def test_files_refuse_every_way_out(tmp_path, path):
    d, _ = files_door(tmp_path)
    try:
        for endpoint in ("read", "browse", "download"):
            status, body, _ = get(f"{d.url}/files/{endpoint}?path={path}&offset=0")
            assert status == 403, (endpoint, path, status, body)
    finally:
        d.stop()


def test_readers_share_one_answer_among_a_crowd():
    import threading

    made = []

    def make():
        made.append(1)
        return object(), lambda: None

    r = Readers(make, size=2, max_age=5.0)
    calls = []

    def fetch(c):
        calls.append(c)
        time.sleep(0.2)   # a slow answer, so that the others arrive while it is in flight
        return len(calls)

    out = []
    threads = [threading.Thread(target=lambda: out.append(r.read("k", fetch))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out == [1] * 20 and len(calls) == 1 and len(made) == 1
    assert r.read("other", fetch) == 2


def test_prometheus_text_parses_with_base_units():
    from prometheus_client.parser import text_string_to_metric_families

    from impresario.prometheus import exposition

    snap = {"master/tasks_running": 3, "master/tasks_finished": 7, "master/mem_total": 1024.0,
            "master/mem_used": 512.0, "master/mem_percent": 0.5, "master/uptime_secs": 12.5,
            "master/messages_dropped/a reason with \"quotes\"": 2,
            "allocator/mesos/roles/eng/web/shares/dominant": 0.25, "allocator/mesos/allocation_runs": 4,
            "allocator/mesos/allocation_run_ms/p99": 3.0}
    body, ctype = exposition(snap, {"buckets": [[0.001, 1], [0.01, 3], ["+Inf", 4]], "sum": 0.02})
    assert ctype.startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert fams["impresario_master_tasks_running"].type == "gauge"
    assert fams["impresario_master_tasks_finished"].type == "counter"
    assert fams["impresario_master_mem_capacity_bytes"].samples[0].value == 1024 * 2**20
    assert fams["impresario_master_mem_used_ratio"].samples[0].value == 0.5
    assert fams["impresario_master_uptime_seconds"].samples[0].value == 12.5
    dropped = fams["impresario_master_messages_dropped_by_reason"].samples[0]
    assert dropped.labels == {"reason": 'a reason with "quotes"'} and dropped.value == 2
    assert fams["impresario_allocator_role_dominant_share"].samples[0].labels == {"role": "eng/web"}
    hist = fams["impresario_allocator_allocation_run_seconds"]
    assert hist.type == "histogram"
    assert {s.labels.get("le"): s.value for s in hist.samples if s.name.endswith("_bucket")}["+Inf"] == 4


def test_a_port_in_use_is_refused():
    d = Door("a", "127.0.0.1", 0, {"/x": lambda r: Response(b"", content_type="text/plain")}).start()
    try:
        with pytest.raises(OSError):
            Door("b", "127.0.0.1", d.port, {})
        assert get(d.url + "/x")[0] == 200
    finally:
        d.stop()
