"""A user's own framework class, from docs/examples, on both hosts and from a scenario."""

import os
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples")


@pytest.fixture(autouse=True)
def examples_on_path():
    from impresario.realhost import hardening

    sys.path.insert(0, os.path.abspath(EXAMPLES))  # forked actor processes inherit it
    hardening.admit_actor_packages("hello_framework")  # a user's framework, on a real host
    yield
    sys.path.remove(os.path.abspath(EXAMPLES))


def test_the_example_framework_runs_on_both_hosts(cluster):
    fw = cluster.framework("hello_framework:Hello", "hello", count=4)
    s = cluster.wait(lambda: (lambda s: s if s["done"] else None)(cluster.query(fw, "summary")), "hello to finish")
    assert s["tasks_finished"] == 4 and s["tasks_submitted"] == 4


def test_the_example_scenario_runs(tmp_path):
    from sim.runner import run
    from sim.scenario import load
    result = run(load(os.path.join(EXAMPLES, "hello.toml")), out_dir=str(tmp_path))
    assert result.summary["tasks_finished"] == 5


def test_a_scenario_can_name_its_allocator_policy():
    from sim.runner import run
    from sim.scenario import ScenarioError, parse
    base = {"cluster": {"agents": 2, "agent": {"cpus": 2, "mem": "1GiB"}},
            "frameworks": [{"name": "b", "tasks": 4, "task": {"cpus": 1, "mem": 64, "duration": "5s"}}]}
    sc = parse({**base, "sim": {"allocator": "tests.actors.policies:LastAgentFirst"}})
    result = run(sc)
    assert result.summary["tasks_finished"] == 4
    assert result.host.actor("allocator").policy.runs_seen > 0
    with pytest.raises(ScenarioError, match=r"unknown allocator .fair-ish. \(known: drf, random"):
        parse({**base, "sim": {"allocator": "fair-ish"}})
