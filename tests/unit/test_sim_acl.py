"""The [acls] table and the ACL keys of frameworks and agents, as the scenario loader reads
them.  ACLs enforced in runs: tests/cluster/test_acl.py.
"""

from __future__ import annotations

import pytest

from sim.scenario import ScenarioError, parse
from tests.scenarios.acl import ANY, scenario


def test_the_keys_are_parsed_and_passed_on():
    sc = parse(scenario(**{"agent.principal": "rack-1", "agent.allow_root_tasks": True}))
    assert sc.acls is not None and sc.acls["permissive"] is False
    assert sc.acls["register_frameworks"][0]["roles"] == {"values": ["eng/*"]}
    web, batch, _ = sc.frameworks
    assert (web.settings["principal"], web.settings["user"]) == ("alice", "alice")
    assert batch.settings["tasks"][0]["user"] == "root"
    assert sc.agent_settings == {"principal": "rack-1", "allow_root_tasks": True}
    assert parse(scenario(acls=None)).acls is None


@pytest.mark.parametrize("changes, message", [
    ({"acls": {"run_task": []}}, r"\[acls\]: unknown key 'run_task'"),
    ({"acls": {"run_tasks": [{"principals": ANY}]}}, r"\[acls\].run_tasks\[0\]: missing users"),
    ({"agent.principal": "a b"}, r"\[agent\].principal: invalid character ' '"),
    ({"agent.allow_root_tasks": "yes"}, r"\[agent\].allow_root_tasks must be true or false"),
])
def test_bad_keys_are_refused_saying_why(changes, message):
    with pytest.raises(ScenarioError, match=message):
        parse(scenario(**changes))


def test_bad_framework_keys_are_refused():
    doc = scenario()
    doc["frameworks"][0]["principal"] = "a/b"
    with pytest.raises(ScenarioError, match=r"framework 'web'.principal: invalid character '/'"):
        parse(doc)
    doc = scenario()
    doc["frameworks"][0]["user"] = "al ice"
    with pytest.raises(ScenarioError, match=r"framework 'web'.user must be a user name"):
        parse(doc)
