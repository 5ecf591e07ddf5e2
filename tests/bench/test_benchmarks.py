"""Benchmarks: they report figures (run with ``tox -e bench`` or ``pytest -m bench -s``).

Nothing here asserts a time: a slow machine is not a failure.  What is
checked is that every measured message was delivered.
"""

import json

import pytest

from sim.bench import bench_host

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("message", ["status", "offers"])
def test_sim_host_cost_per_message(message):
    figures = bench_host(n=100_000 if message == "status" else 40_000, repeat=5, message=message)
    print("\n" + json.dumps(figures))
    assert figures["messages"] > 0 and figures["host_us_per_message"] > 0


def test_allocator_cycle_at_scale():
    from sim.bench import bench_allocator
    figures = bench_allocator(30_000, 2_000, 200, cycles=5, decline_agents=2_000, decline_frameworks=2_000)
    print("\n" + json.dumps(figures))
    assert figures["offers_per_cycle"] == 30_000
