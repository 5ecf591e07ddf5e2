"""HTTP benchmarks on a real host: they report figures and never fail on a time
(``tox -e bench``; ``IMPRESARIO_BENCH_SECONDS`` shortens the polling, default 60)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time

import pytest

from tests.integration.conftest import impresario_cmd
from tests.integration.test_cli import _free_port, _stop, _wait_line
from tests.integration.test_http_cluster import http_of

pytestmark = pytest.mark.bench


def test_200_clients_poll_metrics_snapshot(tmp_path):
    """200 clients, each on its own kept-alive connection, polling the master's
    /metrics/snapshot back to back: every answer must be a 200 with the metrics."""
    seconds = float(os.environ.get("IMPRESARIO_BENCH_SECONDS", "60"))
    port = _free_port()
    cmd = impresario_cmd()
    master = subprocess.Popen([*cmd, "master", "--port", str(port), "--http-port", "0", "--work-dir",
                               str(tmp_path / "m")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    agent = None
    try:
        url = http_of(_wait_line(master, "impresario master "))
        agent = subprocess.Popen([*cmd, "agent", "--master", f"127.0.0.1:{port}", "--port", str(_free_port()),
                                  "--http-port", "0", "--work-dir", str(tmp_path / "a"),
                                  "--resources", "cpus:2;mem:1024;disk:1024"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_line(agent, "registered with")
        host, _, p = url.removeprefix("http://").partition(":")
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def client() -> None:
            mine, bad = [], []
            conn = http.client.HTTPConnection(host, int(p), timeout=60)
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    conn.request("GET", "/metrics/snapshot")
                    r = conn.getresponse()
                    body = r.read()
                    if r.status != 200 or "master/elected" not in json.loads(body):
                        bad.append(f"status {r.status}")
                except (OSError, http.client.HTTPException, ValueError) as e:
                    bad.append(f"{type(e).__name__}: {e}")
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(p), timeout=60)
                mine.append(time.perf_counter() - t0)
            conn.close()
            with lock:
                latencies.extend(mine)
                errors.extend(bad)

        threads = [threading.Thread(target=client) for _ in range(200)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
        took = time.perf_counter() - started
        latencies.sort()
        n = len(latencies)
        figures = {"clients": 200, "seconds": round(took, 1), "requests": n, "errors": len(errors),
                   "requests_per_s": round(n / took, 1),
                   "p50_ms": round(latencies[n // 2] * 1000, 1), "p99_ms": round(latencies[int(n * 0.99)] * 1000, 1),
                   "max_ms": round(latencies[-1] * 1000, 1), "first_errors": errors[:3]}
        print("\n" + json.dumps(figures))
        assert n > 0 and not errors
    finally:
        if agent is not None:
            _stop(agent)
        _stop(master)
