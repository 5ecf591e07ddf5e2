"""The scenarios in scenarios/ load and say what they claim (sizes, shapes, health checks)
without running.  Runs of them (the big ones at a tenth): tests/cluster/test_shipped_scenarios.py.
"""

import glob
import os

import pytest

from actors.protocol.resources import Resources
from actors.protocol.units import parse_size
from sim.scenario import load
from tests.scenarios.shipped import SCENARIOS, path


@pytest.mark.parametrize("file", sorted(glob.glob(os.path.join(SCENARIOS, "*.toml"))),
                         ids=lambda p: os.path.basename(p))
def test_every_shipped_scenario_is_valid(file):
    sc = load(file)
    assert sc.agents > 0 and sc.frameworks


def test_twitter_30k_is_the_seed_talks_cluster():
    sc = load(path("twitter-30k"))
    assert sc.agents == 30_000
    assert all(g.resources == Resources.parse("cpus:32;mem:131072;disk:1048576") for g in sc.groups)
    assert sc.tasks == 250_000
    assert len(sc.frameworks) >= 4 and all("/" in r for f in sc.frameworks for r in f.roles)
    assert {f.roles[0].split("/")[0] for f in sc.frameworks} == {"services", "batch"}
    # The cluster holds every task at once (the peak is all of them), each running 10 to
    # 20 minutes after arriving in the first 10.
    specs = [spec for f in sc.frameworks for spec in f.settings["tasks"]]
    assert sum(spec["count"] for spec in specs) == 250_000
    assert sum(spec["count"] * spec["cpus"] for spec in specs) <= 30_000 * 32
    assert sum(spec["count"] * parse_size(spec["mem"]) for spec in specs) <= 30_000 * 128 * 1024
    assert {(spec["duration"], spec["arrival"]) for spec in specs} == {("uniform(10m,20m)", "uniform(0s,10m)")}


def test_apple_and_paper_scenarios_say_what_they_measure():
    apple = load(path("apple-50k"))
    assert apple.tasks == 50_000 and apple.service_time == "measured"
    paper = load(path("mesos-paper-scaling"))
    assert max(paper.sweep["cluster.agents"]) == 50_000
    assert paper.service_time == "measured"
