"""The DRF policy as a pure object: told what happened, asked what to allocate."""

import random

from actors.allocator.hierarchical import HierarchicalPolicy
from actors.protocol import messages as M
from actors.protocol.resources import Resources

R = Resources.parse


def policy(**settings):
    return HierarchicalPolicy({"allocation_interval": 1.0, **settings})


def allocate(p, now=0.0):
    return p.allocate(now, random.Random(0))


def test_each_free_agent_goes_whole_to_the_lowest_weighted_share():
    p = policy(weights={"gold": 3.0})
    for i in range(8):
        p.add_agent(f"a{i}", R("cpus:4;mem:4096"), ())
    p.add_framework("f1", ["gold"], [], [], ())
    p.add_framework("f2", ["bronze"], [], [], ())
    out = allocate(p)
    assert len(out) == 8
    assert all(a.resources == R("cpus:4;mem:4096", a.role) for a in out)
    by_role = {r: sum(1 for a in out if a.role == r) for r in ("gold", "bronze")}
    # Weighted DRF: gold's share divided by 3 stays the lowest until it holds about 3x bronze.
    assert by_role == {"gold": 6, "bronze": 2}


def test_frameworks_within_a_role_share_by_drf():
    p = policy()
    for i in range(6):
        p.add_agent(f"a{i}", R("cpus:2;mem:1024"), ())
    for f in ("f1", "f2", "f3"):
        p.add_framework(f, ["r"], [], [], ())
    out = allocate(p)
    assert sorted(sum(1 for a in out if a.framework_id == f) for f in ("f1", "f2", "f3")) == [2, 2, 2]


def test_a_refusal_hides_no_larger_offers_until_it_expires():
    p = policy()
    p.add_agent("a", R("cpus:4;mem:4096"), ())
    p.add_framework("f", ["*"], [], [], ())
    [a] = allocate(p)
    p.recover(M.Recovered("f", "a", "*", a.resources, refuse_seconds=10), now=0.0)
    assert allocate(p, now=1.0) == []        # the same resources: filtered
    assert allocate(p, now=9.9) == []
    [again] = allocate(p, now=10.0)          # expired
    assert again.resources == a.resources


def test_a_refusal_does_not_hide_more_resources():
    p = policy()
    p.add_agent("a", R("cpus:4;mem:4096"), ())
    p.add_framework("f", ["*"], [], [], ())
    [a] = allocate(p)
    # The framework launched 3 cpus and refused the rest...
    used = R("cpus:3;mem:1024")
    p.recover(M.Recovered("f", "a", "*", a.resources - used, refuse_seconds=60), now=0.0)
    assert allocate(p, now=1.0) == []
    # ...then its task ended: the larger free amount is offered at once.
    p.recover(M.Recovered("f", "a", "*", used, refuse_seconds=None), now=2.0)
    [b] = allocate(p, now=2.0)
    assert b.resources == R("cpus:4;mem:4096")


def test_suppress_and_revive():
    p = policy()
    p.add_agent("a", R("cpus:1;mem:128"), ())
    p.add_framework("f", ["*"], [], [], ())
    p.suppress("f", [])
    assert allocate(p) == []
    p.revive("f", [])
    assert len(allocate(p)) == 1


def test_gpu_agents_reach_only_gpu_frameworks():
    p = policy()
    p.add_agent("gpu", R("cpus:8;mem:8192;gpus:2"), ())
    p.add_agent("cpu", R("cpus:8;mem:8192"), ())
    p.add_framework("plain", ["*"], [], [], ())
    out = allocate(p)
    assert [(a.framework_id, a.agent_id) for a in out] == [("plain", "cpu")]
    p.add_framework("aware", ["*"], [M.Capability.GPU_RESOURCES], [], ())
    out = allocate(p)
    assert [(a.framework_id, a.agent_id) for a in out] == [("aware", "gpu")]


def test_crumbs_are_not_offered():
    p = policy()
    p.add_agent("a", R("cpus:1;mem:64"), ())
    p.add_framework("f", ["*"], [], [], ())
    [_a] = allocate(p)
    # Give back a crumb only: below both minimums (cpus 0.01, mem 32).
    p.recover(M.Recovered("f", "a", "*", R("cpus:0.005;mem:16"), None), now=1)
    assert allocate(p, now=1) == []


def test_a_run_looks_only_at_changed_agents_unless_demand_changed():
    p = policy()
    for i in range(50):
        p.add_agent(f"a{i}", R("cpus:1;mem:128"), ())
    p.add_framework("f", ["*"], [], [], ())
    assert len(allocate(p)) == 50
    calls = []
    orig = p.allocatable
    p.allocatable = lambda free: calls.append(1) or orig(free)
    p.recover(M.Recovered("f", "a7", "*", R("cpus:1;mem:128", "*"), None), now=1)
    assert [a.agent_id for a in allocate(p, now=1)] == ["a7"]
    assert len(calls) == 1
    calls.clear()
    p.add_framework("g", ["*"], [], [], ())  # new demand: every agent is looked at again
    allocate(p, now=2)
    assert len(calls) == 50


def test_removing_an_agent_takes_its_allocations_with_it():
    p = policy()
    p.add_agent("a", R("cpus:4;mem:1024"), ())
    p.add_framework("f", ["r"], [], [], ())
    allocate(p)
    assert p.nodes["r"].alloc == {"cpus": 4000, "mem": 1024000}
    p.remove_agent("a")
    assert p.nodes["r"].alloc == {} and p.total == {} and p.free_total == {}
