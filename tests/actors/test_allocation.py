"""Allocation through the whole kernel, on both hosts: roles, quota, operator calls."""

from actors.protocol import messages as M
from actors.protocol.codec import encode


def offered_cpus(h, fw):
    ev = h.events(fw)
    return sum(o["resources"].get("cpus", 0) for o in ev["offers"] if o["offer_id"] in ev["outstanding_offers"])


def test_a_quota_limit_holds_through_the_master(make_cluster):
    h = make_cluster(agents=2, resources="cpus:4;mem:4096;disk:1024",
                     master_settings={"quotas": {"capped": {"limit": {"cpus": 3}}}})
    fw = h.probe(roles=["capped"])
    h.wait(lambda: offered_cpus(h, fw) == 3, "offers chopped to the limit")
    h.sleep(2.0)
    assert offered_cpus(h, fw) == 3
    state = h.master_state()
    assert state["quotas"] == {"capped": {"guarantee": {}, "limit": {"cpus": 3.0}}}
    assert state["roles"]["capped"]["offered"]["cpus"] == 3


def test_update_quota_rescinds_and_reoffers_under_the_new_limit(make_cluster):
    h = make_cluster(agents=2, resources="cpus:4;mem:4096;disk:1024")
    fw = h.probe(roles=["eng"])
    h.wait(lambda: offered_cpus(h, fw) == 8, "the whole cluster offered")
    h.send_raw(h.master, encode(M.UpdateQuota("eng", (), (("cpus", 5000),))))
    h.wait(lambda: h.events(fw)["rescinds"], "the offers to be rescinded")
    h.wait(lambda: offered_cpus(h, fw) == 5, "offers within the new limit")
    # A bad configuration is refused and changes nothing.
    h.send_raw(h.master, encode(M.UpdateQuota("eng", (("cpus", 9000),), (("cpus", 5000),))))
    h.sleep(1.0)
    assert h.master_state()["quotas"]["eng"]["limit"] == {"cpus": 5.0}


def test_update_weights_through_the_master(make_cluster):
    h = make_cluster(agents=1)
    h.send_raw(h.master, encode(M.UpdateWeights((("eng", 3.0), ("ops", 0.5)))))
    h.wait(lambda: h.master_state()["weights"] == {"eng": 3.0, "ops": 0.5}, "the weights")
    state = h.query(h.master, "state")
    assert state["weights"]["eng"] == 3.0


def test_a_multi_role_framework_is_offered_per_role(make_cluster):
    h = make_cluster(agents=2)
    fw = h.probe(roles=["a", "b"])
    offers = h.wait_offers(fw, 2)
    assert sorted(o["role"] for o in offers) == ["a", "b"]
    o = next(x for x in offers if x["role"] == "b")
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "in-b", "duration": 3600, "role": "b"}])
    h.wait_update(fw, "in-b", "TASK_RUNNING")
    assert h.master_state()["roles"]["b"]["allocated"]["cpus"] == 0.1
