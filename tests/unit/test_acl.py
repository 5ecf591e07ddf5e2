"""ACLs (actors/security/acl.py): parsing with clear errors, first-match decisions, the root rule,
hierarchical roles, and the permissive default."""

from __future__ import annotations

import json

import pytest

from actors.security.acl import (
    ACL,
    CACHE_SIZE,
    REGISTER_AGENTS,
    REGISTER_FRAMEWORKS,
    RUN_TASKS,
    TEARDOWN_FRAMEWORKS,
    UPDATE_QUOTAS,
    UPDATE_WEIGHTS,
    ACLError,
    parse_acl,
)

ANY = {"type": "ANY"}
NONE = {"type": "NONE"}


def vals(*names: str) -> dict[str, list[str]]:
    return {"values": list(names)}


EXAMPLE = {
    "permissive": False,
    "register_agents": [{"principals": vals("agent")}],
    "register_frameworks": [
        {"principals": vals("alice"), "roles": vals("eng/*", "*")},
        {"principals": vals("bob"), "roles": vals("prod")},
        {"principals": ANY, "roles": vals("prod")},       # nobody else... (a NONE would say it)
    ],
    "run_tasks": [
        {"principals": vals("alice"), "users": vals("alice", "nobody")},
        {"principals": vals("ops"), "users": vals("root")},
        {"principals": vals("ops"), "users": ANY},
    ],
    "teardown_frameworks": [{"principals": vals("ops"), "framework_principals": ANY}],
}


# --------------------------------------------------------------------------- parsing


def test_the_example_parses_and_round_trips():
    acl = ACL.parse(EXAMPLE)
    assert acl.permissive is False
    assert [r.name for r in acl.rules[RUN_TASKS]] == ["run_tasks[0]", "run_tasks[1]", "run_tasks[2]"]
    again = ACL.parse(acl.to_dict())
    assert again.to_dict() == acl.to_dict()
    assert ACL.loads(json.dumps(EXAMPLE)).to_dict() == acl.to_dict()
    assert parse_acl(None) is None and parse_acl(EXAMPLE).to_dict() == acl.to_dict()


def test_an_empty_document_is_permissive_and_has_no_rules():
    acl = ACL.parse({})
    assert acl.permissive is True
    assert all(not rules for rules in acl.rules.values())
    assert acl.allows(REGISTER_FRAMEWORKS, "anyone", "eng")


@pytest.mark.parametrize("doc, message", [
    ([], r"acls: expected an object of actions, got list"),
    ({"register_framework": []}, r"acls: unknown key 'register_framework' \(known: .*register_frameworks"),
    ({"permissive": "yes"}, r"acls.permissive must be true or false, got 'yes'"),
    ({"run_tasks": {"principals": ANY}}, r"acls.run_tasks must be a list of rules"),
    ({"run_tasks": ["alice"]}, r"acls.run_tasks\[0\] must be an object with principals and users"),
    ({"run_tasks": [{"users": ANY}]}, r"acls.run_tasks\[0\]: missing principals"),
    ({"run_tasks": [{"principals": ANY}]}, r"acls.run_tasks\[0\]: missing users"),
    ({"run_tasks": [{"principals": ANY, "users": ANY, "roles": ANY}]},
     r"acls.run_tasks\[0\]: unknown key 'roles' \(expected principals and users\)"),
    ({"run_tasks": [{"principals": {"values": ["a"], "type": "ANY"}, "users": ANY}]},
     r'acls.run_tasks\[0\].principals must be \{"values": \[...\]\}'),
    ({"run_tasks": [{"principals": {"type": "SOME"}, "users": ANY}]},
     r'acls.run_tasks\[0\].principals.type must be "ANY" or "NONE", got \'SOME\''),
    ({"run_tasks": [{"principals": {"values": []}, "users": ANY}]},
     r"acls.run_tasks\[0\].principals.values must be a non-empty list of names"),
    ({"run_tasks": [{"principals": vals("a"), "users": {"values": [7]}}]},
     r"acls.run_tasks\[0\].users.values\[0\] must be a string, got int"),
    ({"run_tasks": [{"principals": vals("a/b"), "users": ANY}]},
     r"acls.run_tasks\[0\].principals.values\[0\]: invalid character '/'"),
    ({"run_tasks": [{"principals": vals("a"), "users": vals("al ice")}]},
     r"acls.run_tasks\[0\].users.values\[0\]: invalid user name 'al ice'"),
    ({"register_frameworks": [{"principals": ANY, "roles": vals("eng/")}]},
     r"acls.register_frameworks\[0\].roles.values\[0\]: invalid role 'eng/'"),
    ({"register_frameworks": [{"principals": ANY, "roles": vals("*/*")}]},
     r"acls.register_frameworks\[0\].roles.values\[0\]: the default role has no subroles"),
    ({"register_frameworks": [{"principals": ANY, "roles": vals("a/*/b")}]},
     r"acls.register_frameworks\[0\].roles.values\[0\]: invalid role 'a/\*/b'"),
    ({"register_agents": [{"principals": ANY, "agents": vals("host1")}]},
     r'acls.register_agents\[0\].agents: only \{"type": "ANY"\} or \{"type": "NONE"\}'),
])
def test_a_bad_document_is_refused_saying_where_and_why(doc, message):
    with pytest.raises(ACLError, match=message):
        ACL.parse(doc)


def test_bad_json_is_refused():
    with pytest.raises(ACLError, match=r"acls: not JSON"):
        ACL.loads("{permissive: true")


def test_register_agents_needs_no_object():
    acl = ACL.parse({"permissive": False, "register_agents": [{"principals": vals("agent")},
                                                              {"principals": ANY, "agents": NONE}]})
    assert acl.allows(REGISTER_AGENTS, "agent")
    d = acl.check(REGISTER_AGENTS, "intruder")
    assert not d and d.rule == "register_agents[1]"
    assert d.reason == ("principal 'intruder' may not register an agent: denied by the ACL rule "
                        "register_agents[1]")


# --------------------------------------------------------------------------- deciding


def test_the_first_matching_rule_decides():
    allow_first = ACL.parse({"permissive": False, "register_frameworks": [
        {"principals": vals("alice"), "roles": vals("prod")},
        {"principals": ANY, "roles": NONE}]})
    deny_first = ACL.parse({"permissive": True, "register_frameworks": [
        {"principals": ANY, "roles": NONE},
        {"principals": vals("alice"), "roles": vals("prod")}]})
    assert allow_first.check(REGISTER_FRAMEWORKS, "alice", "prod").rule == "register_frameworks[0]"
    assert allow_first.allows(REGISTER_FRAMEWORKS, "alice", "prod")
    assert not allow_first.allows(REGISTER_FRAMEWORKS, "alice", "dev")      # rule 1: NONE
    assert not allow_first.allows(REGISTER_FRAMEWORKS, "bob", "prod")
    d = deny_first.check(REGISTER_FRAMEWORKS, "alice", "prod")
    assert not d and d.rule == "register_frameworks[0]"


def test_none_as_the_subject_denies_everyone_it_follows():
    # Mesos' "only alice may use prod": alice's rule, then NONE for prod.
    acl = ACL.parse({"register_frameworks": [
        {"principals": vals("alice"), "roles": vals("prod")},
        {"principals": NONE, "roles": vals("prod")}]})
    assert acl.allows(REGISTER_FRAMEWORKS, "alice", "prod")
    assert not acl.allows(REGISTER_FRAMEWORKS, "bob", "prod")
    assert not acl.allows(REGISTER_FRAMEWORKS, None, "prod")
    assert acl.allows(REGISTER_FRAMEWORKS, "bob", "dev")                    # permissive


def test_permissive_decides_when_no_rule_matches():
    rules = {"register_frameworks": [{"principals": vals("alice"), "roles": vals("eng")}]}
    strict = ACL.parse({**rules, "permissive": False})
    lax = ACL.parse({**rules, "permissive": True})
    for acl in (strict, lax):
        assert acl.allows(REGISTER_FRAMEWORKS, "alice", "eng")
    assert lax.allows(REGISTER_FRAMEWORKS, "bob", "eng")
    d = strict.check(REGISTER_FRAMEWORKS, "bob", "eng")
    assert not d and d.rule is None
    assert d.reason == ("principal 'bob' may not register a framework in role 'eng': no register_frameworks "
                        "rule matches and the ACL is not permissive")
    assert lax.check(REGISTER_FRAMEWORKS, "bob", "eng").reason.endswith("granted: the ACL is permissive")


def test_a_request_without_a_principal_is_matched_by_any_only():
    acl = ACL.parse({"permissive": False, "register_frameworks": [
        {"principals": vals("alice"), "roles": ANY},
        {"principals": ANY, "roles": vals("public")}]})
    assert not acl.allows(REGISTER_FRAMEWORKS, None, "eng")
    assert acl.allows(REGISTER_FRAMEWORKS, None, "public")
    assert acl.check(REGISTER_FRAMEWORKS, None, "eng").reason.startswith("a caller with no principal may not")


def test_roles_match_hierarchically_below_a_parent_only():
    acl = ACL.parse({"permissive": False, "register_frameworks": [
        {"principals": vals("alice"), "roles": vals("eng/*", "*")}]})
    ok = lambda role: acl.allows(REGISTER_FRAMEWORKS, "alice", role)   # noqa: E731
    assert ok("eng/web") and ok("eng/web/api") and ok("*")
    assert not ok("eng") and not ok("engineering/web") and not ok("ops") and not ok("eng-web")


def test_root_is_granted_only_by_a_rule_that_names_it():
    acl = ACL.parse(EXAMPLE)
    assert acl.allows(RUN_TASKS, "ops", "root")                              # run_tasks[1] names root
    assert acl.check(RUN_TASKS, "ops", "root").rule == "run_tasks[1]"
    assert acl.allows(RUN_TASKS, "ops", "postgres")                          # run_tasks[2]: ANY
    # ANY never grants root, nor does permissive.
    for doc in ({"permissive": True},
                {"permissive": True, "run_tasks": [{"principals": ANY, "users": ANY}]},
                {"permissive": False, "run_tasks": [{"principals": vals("alice"), "users": ANY}]}):
        any_acl = ACL.parse(doc)
        d = any_acl.check(RUN_TASKS, "alice", "root")
        assert not d and d.rule is None, doc
        assert d.reason == ("principal 'alice' may not run tasks as user 'root': user 'root' is granted "
                            "only by a run_tasks rule that names it")
        assert any_acl.allows(RUN_TASKS, "alice", "alice")
    # An ANY rule is skipped for root, and a later rule naming root decides.
    later = ACL.parse({"permissive": False, "run_tasks": [
        {"principals": ANY, "users": ANY}, {"principals": vals("ops"), "users": vals("root")}]})
    assert later.check(RUN_TASKS, "ops", "root").rule == "run_tasks[1]"
    assert not later.allows(RUN_TASKS, "alice", "root")
    # NONE matches root, and denies.
    denied = ACL.parse({"run_tasks": [{"principals": ANY, "users": NONE},
                                      {"principals": ANY, "users": vals("root")}]})
    assert denied.check(RUN_TASKS, "ops", "root").rule == "run_tasks[0]"
    assert not denied.allows(RUN_TASKS, "ops", "root")


def test_a_task_that_names_no_user_is_checked_as_the_empty_user():
    acl = ACL.parse({"permissive": False, "run_tasks": [
        {"principals": vals("alice"), "users": vals("alice")},
        {"principals": vals("bob"), "users": ANY}]})
    assert not acl.allows(RUN_TASKS, "alice", "")
    assert acl.allows(RUN_TASKS, "bob", "")
    assert "run tasks as the agent's user (a task that names no user)" in acl.check(RUN_TASKS, "alice", "").reason


def test_teardown_and_operator_actions():
    acl = ACL.parse({**EXAMPLE,
                     "update_weights": [{"principals": vals("ops"), "roles": vals("eng/*")}],
                     "update_quotas": [{"principals": vals("ops"), "roles": ANY}]})
    assert acl.allows(TEARDOWN_FRAMEWORKS, "ops", "alice")
    assert acl.allows(TEARDOWN_FRAMEWORKS, "ops", None)
    d = acl.check(TEARDOWN_FRAMEWORKS, "alice", "bob")
    assert not d and d.reason.startswith("principal 'alice' may not tear down a framework of principal 'bob'")
    assert acl.allows(UPDATE_WEIGHTS, "ops", "eng/web") and not acl.allows(UPDATE_WEIGHTS, "ops", "prod")
    assert acl.first_denial(UPDATE_WEIGHTS, "ops", ["eng/a", "prod", "x"]).object == "prod"
    assert acl.first_denial(UPDATE_WEIGHTS, "ops", ["eng/a"]) is None
    assert acl.allows(UPDATE_QUOTAS, "ops", "prod") and not acl.allows(UPDATE_QUOTAS, "alice", "prod")


def test_decisions_are_the_same_from_the_cache_and_past_its_size():
    acl = ACL.parse(EXAMPLE)
    first = acl.check(RUN_TASKS, "alice", "nobody")
    assert acl.check(RUN_TASKS, "alice", "nobody") is first
    for i in range(CACHE_SIZE + 10):
        assert not acl.allows(RUN_TASKS, "alice", f"u{i}")
    assert acl.check(RUN_TASKS, "alice", "nobody") == first and first.allowed
    with pytest.raises(ValueError, match="unknown action"):
        acl.check("launch_rockets", "alice", "x")
