"""The seed's example: four roles share one cluster, and each role's share follows its weight."""

import os

from sim.runner import run
from sim.scenario import load

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "scenarios", "roles.toml")


def test_shares_follow_weights():
    sc = load(ROLES)
    sc.until = 240.0              # a shorter run than the file's: the shares settle at once
    sc.groups[0].count = 40
    s = run(sc).summary
    weights = {r: v["weight"] for r, v in s["roles"].items()}
    assert weights == {"frontend": 4.0, "backend": 3.0, "storage": 2.0, "analytics": 1.0}
    total_w = sum(weights.values())
    for role, v in s["roles"].items():
        assert abs(v["mean_share"] - weights[role] / total_w) < 0.03, (role, v["mean_share"])
    order = sorted(s["roles"], key=lambda r: s["roles"][r]["mean_share"])
    assert order == ["analytics", "storage", "backend", "frontend"]
    # Every role still had work waiting at the end: fairness, not demand, set the shares.
    assert s["tasks_pending"] > 0


def test_an_operator_call_in_a_scenario_changes_shares_mid_run():
    from sim.scenario import parse
    base = {
        "sim": {"until": "6m"},
        "cluster": {"agents": 20, "agent": {"cpus": 4, "mem": "16GiB"}},
        "roles": [{"name": "a"}, {"name": "b"}],
        "frameworks": [{"name": n, "roles": [n], "tasks": 3000,
                        "task": {"cpus": 1, "mem": "1GiB", "duration": "exp(30s)"}} for n in ("a", "b")],
        "operator": [{"at": "1m", "update_weights": {"a": 3.0}},
                     {"at": "1m", "update_quota": {"role": "b", "limit": {"cpus": 10}}}],
    }
    s = run(parse(base)).summary
    # After the first minute a is weighted 3 to 1, and b is capped at 10 of 80 cpus.
    assert s["roles"]["a"]["mean_share"] > 0.7
    assert s["roles"]["b"]["allocated"]["cpus"] <= 10
    assert s["roles"]["b"]["quota"] == {"guarantee": {}, "limit": {"cpus": 10.0}}
