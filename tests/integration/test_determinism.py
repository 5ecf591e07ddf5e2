"""Same scenario and seed: the same digest, across fresh processes and hash seeds."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SCENARIO = """
[sim]
seed = 5
until = "1h"
[cluster]
agents = 20
agent = { cpus = 8, mem = "16GiB", disk = "100GiB" }
[[roles]]
name = "x/y"
weight = 2
[[frameworks]]
name = "one"
roles = ["x/y"]
tasks = 300
task = { cpus = 1, mem = "1GiB", duration = "exp(30s)" }
[[frameworks]]
name = "two"
tasks = 100
task = { cpus = 2, mem = "2GiB", duration = "uniform(10s,60s)" }
"""


def digest(path, out, hashseed, seed=None):
    args = [sys.executable, "-m", "impresario.cli", "sim", str(path), "--out", str(out)]
    if seed is not None:
        args += ["--seed", str(seed)]
    env = dict(os.environ, PYTHONHASHSEED=str(hashseed))
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=300,
                   cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    return json.loads((out / "summary.json").read_text())


def test_same_seed_same_digest_other_seed_other_digest(tmp_path):
    path = tmp_path / "det.toml"
    path.write_text(SCENARIO)
    a = digest(path, tmp_path / "a", hashseed=1)
    b = digest(path, tmp_path / "b", hashseed=4242)
    c = digest(path, tmp_path / "c", hashseed=1, seed=6)
    assert a["digest"] == b["digest"]
    assert a["messages"] == b["messages"] and a["virtual_seconds"] == b["virtual_seconds"]
    assert c["digest"] != a["digest"]
    assert a["tasks_finished"] == b["tasks_finished"] == 400
