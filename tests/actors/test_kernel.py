"""Kernel behaviour, tested the same way on the SimPy host and on real Thespian systems."""

import msgpack

BATCH = "actors.frameworks.batch:BatchFramework"


def finished(h, fw):
    return h.wait(lambda: (lambda s: s if s["done"] else None)(h.query(fw, "summary")), "the batch to finish")


def test_batch_tasks_run_to_completion(cluster):
    fw = cluster.framework(BATCH, "batch", tasks=[{"name": "t", "count": 6, "cpus": 0.5, "mem": 64,
                                                    "duration": 0.2}])
    s = finished(cluster, fw)
    assert s["tasks_submitted"] == 6 and s["tasks_finished"] == 6
    assert s["scheduling_latency"]["count"] == 6
    state = cluster.master_state()
    assert len(state["agents"]) == 2 and all(a["reachable"] for a in state["agents"])
    # Every task's resources came back.
    assert all(a["allocated"] == {} for a in state["agents"])
    assert {t["state"] for t in state["tasks"]} == {"TASK_FINISHED"}


def test_a_task_that_exits_1_is_failed(cluster):
    fw = cluster.framework(BATCH, "batch", tasks=[{"name": "ok", "cpus": 0.1, "mem": 32, "duration": 0.1},
                                                   {"name": "bad", "cpus": 0.1, "mem": 32, "duration": 0.1,
                                                    "exit_code": 1}])
    s = finished(cluster, fw)
    assert s["tasks_finished"] == 1 and s["tasks_failed"] == 1
    assert cluster.query(fw, "tasks") == {"ok": "TASK_FINISHED", "bad": "TASK_FAILED"}


def test_probe_sees_offers_and_launch_runs(cluster):
    fw = cluster.probe()
    offers = cluster.wait_offers(fw, 2)
    assert {o["resources"]["cpus"] for o in offers} == {4}
    o = offers[0]
    cluster.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "t1", "duration": 0.2}])
    running = cluster.wait_update(fw, "t1", "TASK_RUNNING")
    assert running["agent_id"] == o["agent_id"] and running["source"] == "SOURCE_EXECUTOR"
    done = cluster.wait_update(fw, "t1", "TASK_FINISHED")
    assert done["message"] == "Command exited with status 0"


def test_kill_ends_a_long_task(cluster):
    fw = cluster.probe()
    o = cluster.wait_offers(fw)[0]
    cluster.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "long", "duration": 3600, "grace": 1}])
    cluster.wait_update(fw, "long", "TASK_RUNNING")
    cluster.do(fw, "kill", task_id="long")
    killed = cluster.wait_update(fw, "long", "TASK_KILLED")
    assert killed["source"] == "SOURCE_EXECUTOR"
    cluster.wait(lambda: all(a["allocated"] == {} for a in cluster.master_state()["agents"]),
                 "the killed task's resources to come back")


def test_kill_of_an_unknown_task_says_lost(cluster):
    fw = cluster.probe()
    cluster.do(fw, "kill", task_id="nope")
    u = cluster.wait_update(fw, "nope", "TASK_LOST")
    assert u["reason"] == "REASON_TASK_UNKNOWN" and u["source"] == "SOURCE_MASTER"


def test_accept_of_an_unknown_offer_is_an_error_and_changes_nothing(cluster):
    fw = cluster.probe()
    cluster.wait_offers(fw, 2)
    before = cluster.master_state()
    cluster.do(fw, "launch", offer_ids=["no-such-offer"], agent_id="x", tasks=[{"task_id": "t", "duration": 1}])
    cluster.wait(lambda: cluster.events(fw)["errors"], "an error event")
    ev = cluster.events(fw)
    assert "offer no-such-offer is unknown" in ev["errors"][0] and ev["errors"][0].startswith("ACCEPT")
    lost = cluster.wait_update(fw, "t", "TASK_LOST")
    assert lost["reason"] == "REASON_INVALID_OFFERS"
    after = cluster.master_state()
    assert after["tasks"] == before["tasks"] == []
    assert [a["offered"] for a in after["agents"]] == [a["offered"] for a in before["agents"]]


def test_a_launch_bigger_than_its_offer_is_task_error(cluster):
    fw = cluster.probe()
    o = cluster.wait_offers(fw)[0]
    cluster.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "huge", "cpus": 64, "duration": 1}])
    u = cluster.wait_update(fw, "huge", "TASK_ERROR")
    assert u["reason"] == "REASON_TASK_INVALID" and "only" in u["message"] and "left of the offers" in u["message"]
    state = cluster.master_state()
    assert state["tasks"] == [] and all(a["allocated"] == {} for a in state["agents"])
    # The offer's resources went back and are offered again.
    cluster.do(fw, "revive")
    cluster.wait(lambda: any(x["agent_id"] == o["agent_id"] and x["offer_id"] != o["offer_id"]
                             for x in cluster.events(fw)["offers"]), "the agent to be offered again")


def test_a_reused_task_id_is_task_error(cluster):
    fw = cluster.probe()
    o1, o2 = cluster.wait_offers(fw, 2)[:2]
    cluster.do(fw, "launch", offer_ids=[o1["offer_id"]], tasks=[{"task_id": "same", "duration": 3600}])
    cluster.wait_update(fw, "same", "TASK_RUNNING")
    cluster.do(fw, "launch", offer_ids=[o2["offer_id"]], tasks=[{"task_id": "same", "duration": 1}])
    u = cluster.wait_update(fw, "same", "TASK_ERROR")
    assert "already in use" in u["message"]
    assert [t["state"] for t in cluster.master_state()["tasks"]] == ["TASK_RUNNING"]


def test_fractional_gpus_are_task_error(make_cluster):
    h = make_cluster(agents=1, resources="cpus:2;mem:1024;gpus:2")
    fw = h.probe(capabilities=["GPU_RESOURCES"])
    o = h.wait_offers(fw)[0]
    assert o["resources"]["gpus"] == 2
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "g", "gpus": 0.5, "duration": 1}])
    u = h.wait_update(fw, "g", "TASK_ERROR")
    assert "whole GPUs" in u["message"]


def test_gpu_agents_are_offered_only_to_gpu_frameworks(make_cluster):
    h = make_cluster(agents=1, resources="cpus:2;mem:1024;gpus:1")
    plain = h.probe("plain")
    aware = h.probe("aware", capabilities=["GPU_RESOURCES"])
    h.wait_offers(aware)
    h.sleep(2.0)
    assert h.events(plain)["offers"] == []


def test_task_group_arrives_atomically_and_fails_together(cluster):
    fw = cluster.probe()
    o = cluster.wait_offers(fw)[0]
    cluster.do(fw, "launch_group", offer_ids=[o["offer_id"]], executor_id="pod", tasks=[
        {"task_id": "web", "duration": 3600}, {"task_id": "sidecar", "duration": 0.3, "exit_code": 3}])
    web = cluster.wait_update(fw, "web", "TASK_RUNNING")
    side = cluster.wait_update(fw, "sidecar", "TASK_RUNNING")
    assert web["agent_id"] == side["agent_id"] == o["agent_id"]
    cluster.wait_update(fw, "sidecar", "TASK_FAILED")
    # The default executor's policy: a failed task takes its group down.
    cluster.wait_update(fw, "web", "TASK_KILLED")
    cluster.wait(lambda: all(a["allocated"] == {} for a in cluster.master_state()["agents"]),
                 "the pod's resources, executor included, to come back")


def test_an_invalid_task_group_launches_nothing(cluster):
    fw = cluster.probe()
    o = cluster.wait_offers(fw)[0]
    cluster.do(fw, "launch_group", offer_ids=[o["offer_id"]], executor_id="pod", tasks=[
        {"task_id": "a", "duration": 1}, {"task_id": "b", "cpus": 100, "duration": 1}])
    for tid in ("a", "b"):
        u = cluster.wait_update(fw, tid, "TASK_ERROR")
        assert u["reason"] == "REASON_TASK_GROUP_INVALID"
    assert cluster.master_state()["tasks"] == []


def test_status_updates_are_retried_until_acknowledged(make_cluster):
    h = make_cluster(agents=1, agent_settings={"status_update_retry_min": 0.5, "status_update_retry_max": 0.5})
    fw = h.probe(implicit_acknowledgements=False)
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "t", "duration": 0.2}])
    h.wait(lambda: sum(u["state"] == "TASK_RUNNING" for u in h.events(fw)["updates"]) >= 3,
           "RUNNING to be delivered again and again while unacknowledged")
    ups = h.events(fw)["updates"]
    # In order per task: nothing after RUNNING is delivered before RUNNING is acknowledged.
    assert {u["state"] for u in ups} == {"TASK_RUNNING"}
    assert len({u["uuid"] for u in ups}) == 1
    h.do(fw, "ack", uuid=ups[0]["uuid"])
    fin = h.wait_update(fw, "t", "TASK_FINISHED")
    h.do(fw, "ack", uuid=fin["uuid"])
    h.wait(lambda: h.query(h.agents[0], "state")["pending_updates"] == 0, "the agent's stream to drain")


def test_decline_filter_keeps_an_agent_away_until_it_expires(make_cluster):
    h = make_cluster(agents=1)
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    declined_at = h.now()
    h.do(fw, "decline", offer_ids=[o["offer_id"]], refuse_seconds=3)
    h.wait(lambda: len(h.events(fw)["offers"]) >= 2, "the agent to be offered again", timeout=h.patience)
    again = h.events(fw)["offers"][1]
    assert again["at"] - declined_at >= 3.0 - 0.01


def test_suppress_stops_offers_and_revive_brings_them_back(make_cluster):
    h = make_cluster(agents=1)
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    h.do(fw, "suppress")
    h.do(fw, "decline", offer_ids=[o["offer_id"]], refuse_seconds=0)
    h.sleep(3.0)
    assert len(h.events(fw)["offers"]) == 1
    h.do(fw, "revive")
    h.wait(lambda: len(h.events(fw)["offers"]) >= 2, "offers after REVIVE")


def test_reconciliation_answers_for_known_and_unknown_tasks(cluster):
    fw = cluster.probe()
    o = cluster.wait_offers(fw)[0]
    cluster.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "r", "duration": 3600}])
    cluster.wait_update(fw, "r", "TASK_RUNNING")
    n = len(cluster.events(fw)["updates"])
    cluster.do(fw, "reconcile")
    cluster.wait(lambda: len(cluster.events(fw)["updates"]) > n, "implicit reconciliation")
    u = cluster.events(fw)["updates"][n]
    assert (u["task_id"], u["state"], u["reason"]) == ("r", "TASK_RUNNING", "REASON_RECONCILIATION")
    cluster.do(fw, "reconcile", tasks=[["ghost", o["agent_id"]]])
    ghost = cluster.wait_update(fw, "ghost", "TASK_LOST")
    assert ghost["reason"] == "REASON_RECONCILIATION"


def test_partition_aware_frameworks_hear_task_gone(make_cluster):
    h = make_cluster(agents=1)
    fw = h.probe(capabilities=["PARTITION_AWARE"])
    o = h.wait_offers(fw)[0]
    h.do(fw, "reconcile", tasks=[["ghost", o["agent_id"]], ["ghost2", "no-such-agent"]])
    h.wait_update(fw, "ghost", "TASK_GONE")
    h.wait_update(fw, "ghost2", "TASK_UNKNOWN")


def test_teardown_kills_tasks_and_refuses_the_framework_afterwards(cluster):
    fw = cluster.probe()
    o = cluster.wait_offers(fw)[0]
    cluster.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[{"task_id": "x", "duration": 3600}])
    cluster.wait_update(fw, "x", "TASK_RUNNING")
    cluster.do(fw, "teardown")
    cluster.wait(lambda: cluster.master_state()["frameworks"] == [], "the framework to be removed")
    cluster.wait(lambda: all(a["allocated"] == {} and a["tasks"] == 0 for a in cluster.master_state()["agents"]),
                 "its resources to come back")
    cluster.wait(lambda: all(not e["tasks"] or all(s == "TASK_KILLED" for s in e["tasks"].values())
                             for e in [x for a in cluster.agents for x in cluster.query(a, "state")["executors"]]),
                 "the agents to kill its tasks")
    cluster.do(fw, "resubscribe")
    cluster.wait(lambda: any("has been removed" in e for e in cluster.events(fw)["errors"]), "refusal")


def test_bad_bytes_are_dropped_with_a_reason_and_change_nothing(cluster):
    fw = cluster.probe()
    cluster.wait_offers(fw, 2)
    before = cluster.master_state()
    cluster.send_raw(cluster.master, b"\x93\x01\x7f\x90")                       # unknown tag
    cluster.send_raw(cluster.master, msgpack.packb([1, 3, ["fw", 5, [], None]]))  # ill-typed ACCEPT
    cluster.send_raw(cluster.master, b"garbage")
    cluster.wait(lambda: cluster.query(cluster.master, "stats")["stats"].get("dropped", 0) >= 3, "three drops")
    drops = cluster.query(cluster.master, "stats")["drops"]
    assert any("unknown message type tag 127" in d for d in drops)
    assert any("Accept.offer_ids" in d for d in drops)
    after = cluster.master_state()
    for k in ("agents", "frameworks", "tasks"):
        assert after[k] == before[k]


def test_calls_from_another_address_are_refused(cluster):
    fw = cluster.probe()
    fid = cluster.events(fw)["framework_id"]
    from actors.protocol import messages as M
    from actors.protocol.codec import encode
    cluster.send_raw(cluster.master, encode(M.Teardown(fid)))  # not the framework's address
    cluster.sleep(1.0)
    assert [f["id"] for f in cluster.master_state()["frameworks"]] == [fid]
