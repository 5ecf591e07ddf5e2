"""ACLs in the simulator: the [acls] table, principals and users per framework, [agent]
principal and allow_root_tasks - the master's and agents' own checks, run on virtual time.
"""

from __future__ import annotations

import copy

import pytest

from sim import api
from sim.runner import SimCluster
from sim.scenario import parse
from tests.scenarios.acl import BASE, scenario


@pytest.mark.parametrize("authenticate", [False, True])
def test_a_policy_is_enforced_the_same_with_claimed_or_authenticated_principals(authenticate):
    res = api.run(parse(scenario(**{"sim.authenticate": authenticate})), plots=False)
    s = res.summary
    web, batch, rogue = (s["per_framework"][n] for n in ("web", "batch", "rogue"))
    assert web["tasks_finished"] == 20 and "errors" not in web
    # bob may run tasks as anyone but root (ANY never grants it): every task is TASK_ERROR.
    assert batch["tasks_error"] == 10 and batch["tasks_finished"] == 0
    # eve may not register in prod: refused at SUBSCRIBE, and done (it can do nothing more).
    assert rogue["tasks_finished"] == rogue["tasks_running"] == rogue["tasks_error"] == 0
    assert rogue["errors"] == [
        "SUBSCRIBE: principal 'eve' may not register a framework in role 'prod': no register_frameworks rule "
        "matches and the ACL is not permissive"]
    assert s["virtual_seconds"] < 3600
    master = res.host.actor("master")
    assert master.stats["frameworks_refused"] == 1
    assert [(f["name"], f["principal"]) for f in master.query("state", {})["frameworks"]] == [("web", "alice"), ("batch", "bob")]


def test_the_agents_own_check_refuses_root_where_the_master_allows_it():
    acls = copy.deepcopy(BASE["acls"])
    acls["run_tasks"].insert(0, {"principals": {"values": ["bob"]}, "users": {"values": ["root"]}})
    doc = scenario(acls=acls)
    doc["frameworks"] = doc["frameworks"][:2]
    refused = api.run(parse(doc), plots=False).summary["per_framework"]["batch"]
    assert refused["tasks_error"] == 10
    allowed = api.run(parse({**doc, "agent": {"allow_root_tasks": True}}), plots=False).summary
    assert allowed["per_framework"]["batch"]["tasks_finished"] == 10


def test_an_agent_principal_the_acl_does_not_know_is_refused():
    acls = copy.deepcopy(BASE["acls"])
    acls["register_agents"] = [{"principals": {"values": ["rack-1"]}}]
    doc = scenario(acls=acls, **{"sim.authenticate": True, "sim.until": "60s"})
    c = SimCluster(parse({**doc, "agent": {"principal": "rack-2"}}))
    c.run()
    agents = [c.host.actor(n).core for n in c.agent_names]
    assert all(a.refused == "principal 'rack-2' may not register an agent: no register_agents rule matches and "
                            "the ACL is not permissive" for a in agents)
    assert c.host.actor("master").stats["agents_refused"] == 4
    ok = SimCluster(parse({**doc, "agent": {"principal": "rack-1"}}))
    ok.run()
    assert all(ok.host.actor(n).core.registered for n in ok.agent_names)


def test_a_permissive_acl_without_rules_changes_nothing_a_run_does():
    """Without authentication and with no principal claimed, an ACL that grants everything
    changes no message but the master's configuration (the digest covers that one)."""
    point = {"agents": 20, "frameworks.0.tasks": 200, "frameworks.1.tasks": 40}
    without = api.run("quickstart", point, plots=False).summary
    sc = api.load("quickstart", point)
    sc.acls = {"permissive": True}
    with_acl = api.run(sc, plots=False).summary
    for key in ("messages", "messages_by_type", "virtual_seconds", "scheduling_latency", "per_framework"):
        assert with_acl[key] == without[key], key
    assert with_acl["tasks_finished"] == without["tasks_finished"] == 240
