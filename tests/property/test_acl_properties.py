"""ACL laws, and the master's launches under any ACL: a task reaches an agent exactly when
the ACL lets its framework's principal run it as its user."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.security.acl import ACL, ACTIONS, ROOT, RUN_TASKS
from tests.harness import SimHarness

PRINCIPALS = ["alice", "bob", "ops"]
USERS = ["alice", "bob", "nobody", ROOT, ""]
ROLES = ["*", "eng", "eng/web", "eng/web/api", "prod"]


def entity(names: list[str]) -> Any:
    return st.one_of(st.just({"type": "ANY"}), st.just({"type": "NONE"}),
                     st.lists(st.sampled_from([n for n in names if n]), min_size=1, max_size=3, unique=True)
                     .map(lambda v: {"values": v}))


OBJECTS = {"roles": [*ROLES, "eng/*"], "users": USERS, "framework_principals": PRINCIPALS}


def rules(action: str) -> Any:
    key = ACTIONS[action][0]
    if key == "agents":
        return st.lists(st.fixed_dictionaries({"principals": entity(PRINCIPALS)}), max_size=3)
    return st.lists(st.fixed_dictionaries({"principals": entity(PRINCIPALS), key: entity(OBJECTS[key])}),
                    max_size=4)


acl_docs = st.fixed_dictionaries({"permissive": st.booleans(), **{a: rules(a) for a in ACTIONS}})
requests = st.tuples(st.sampled_from(sorted(ACTIONS)), st.sampled_from([*PRINCIPALS, None]),
                     st.sampled_from(sorted({*USERS, *ROLES, *PRINCIPALS})))


@given(acl_docs, requests)
def test_root_is_granted_only_by_a_matching_rule_that_names_it(doc, req):
    acl = ACL.parse(doc)
    _, principal, _ = req
    d = acl.check(RUN_TASKS, principal, ROOT)
    if d.allowed:
        rule = acl.rules[RUN_TASKS][int(d.rule[len("run_tasks["):-1])]
        assert rule.object.names(ROOT) and rule.principals.matches(principal) and rule.grants


@given(acl_docs, requests, st.data())
def test_rules_added_after_the_deciding_one_change_nothing(doc, req, data):
    action, principal, obj = req
    acl = ACL.parse(doc)
    d = acl.check(action, principal, obj)
    more = dict(doc)
    more[action] = doc[action] + data.draw(rules(action))
    again = ACL.parse(more).check(action, principal, obj)
    if d.rule is not None:
        assert again == d
    elif again.rule is None:
        assert again.allowed == d.allowed


@given(acl_docs, requests)
def test_a_leading_none_rule_denies_everything(doc, req):
    action, principal, obj = req
    key = ACTIONS[action][0]
    denied = dict(doc)
    denied[action] = [{"principals": {"type": "NONE"}, key: {"type": "ANY"}}, *doc[action]]
    d = ACL.parse(denied).check(action, principal, obj)
    assert not d.allowed and d.rule == f"{action}[0]"


@given(acl_docs, requests)
def test_without_rules_only_permissive_decides(doc, req):
    action, principal, obj = req
    d = ACL.parse({"permissive": doc["permissive"]}).check(action, principal, obj)
    assert d.rule is None
    assert d.allowed == (doc["permissive"] and not (action == RUN_TASKS and obj == ROOT))


# --------------------------------------------------------------------------- the master's launches

launches = st.lists(st.tuples(st.sampled_from(["alice", "bob"]), st.sampled_from(USERS)), min_size=1, max_size=6)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), rules(RUN_TASKS), st.sampled_from(["", "alice"]), launches)
def test_a_task_reaches_an_agent_exactly_when_the_acl_allows_its_user(permissive, run_tasks, fw_user, tasks):
    doc = {"permissive": permissive, "register_agents": [{"principals": {"type": "ANY"}}],
           "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
           "run_tasks": run_tasks}
    acl = ACL.parse(doc)
    # The agents run root's tasks too: only the master's check is under test here.
    h = SimHarness(agents=2, authenticate=True, master_settings={"acls": doc},
                   agent_settings={"allow_root_tasks": True})
    # One framework per principal with tasks: each holds at most one agent's offer.
    fws = {p: h.probe(f"fw-{p}", principal=p, user=fw_user) for p in sorted({p for p, _ in tasks})}
    expected: dict[str, bool] = {}
    for p, fw in fws.items():
        mine = [(i, user) for i, (who, user) in enumerate(tasks) if who == p]
        if not mine:
            continue
        offer = h.wait_offers(fw)[0]
        specs = [{"task_id": f"t{i}", "duration": 1.0, "user": user} for i, user in mine]
        h.do(fw, "launch", offer_ids=[offer["offer_id"]], tasks=specs)
        for i, user in mine:
            expected[f"t{i}"] = acl.allows(RUN_TASKS, p, user or fw_user)

    def first_updates() -> dict[str, dict[str, Any]] | None:
        seen = {u["task_id"]: u for p, fw in fws.items() for u in reversed(h.events(fw)["updates"])}
        return seen if set(seen) >= set(expected) else None

    seen = h.wait(first_updates, "an update of every task")
    for tid, allowed in expected.items():
        u = seen[tid]
        if allowed:
            assert u["source"] != "SOURCE_MASTER", u
        else:
            assert (u["state"], u["source"], u["reason"]) == ("TASK_ERROR", "SOURCE_MASTER",
                                                              "REASON_TASK_UNAUTHORIZED"), u
    launched = sum(expected.values())
    assert h.master_state()["counters"]["tasks_launched"] == launched
    assert sum(h.host.actor(a).stats.get("tasks_refused_user", 0) for a in ("agent-0", "agent-1")) == 0
