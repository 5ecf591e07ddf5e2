"""Shared by tests/unit and tests/cluster: results."""

import csv
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(ROOT, "scenarios", "quickstart.toml")

# quickstart, shrunk: 10 agents of 16 cpus, 40 + 10 tasks; every task ends by about 210 s.
SMALL = {"agents": 10, "frameworks.0.tasks": 40, "frameworks.1.tasks": 10, "until": "10m",
         "sim.sample_every": "30s"}

SMALL_TOML = """
[sim]
seed = 1
until = "10m"
sample_every = "30s"

[cluster]
agents = 8
agent = { cpus = 4, mem = "16GiB", disk = "100GiB" }

[[roles]]
name = "a"
weight = 2

[[roles]]
name = "b"

[[frameworks]]
name = "fa"
roles = ["a"]
tasks = 30
task = { cpus = 1, mem = "1GiB", duration = "exp(60s)" }

[[frameworks]]
name = "fb"
roles = ["b"]
tasks = 30
task = { cpus = 1, mem = "1GiB", duration = "uniform(30s,90s)" }
"""


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
