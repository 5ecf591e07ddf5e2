"""network/cni with Debian's real CNI plugins (containernetworking-plugins: bridge,
host-local): a task in a network namespace of its own, reachable from the host
while it runs, and nothing left once it is gone.  The tests make their own
bridge, subnet, configuration and IPAM folder, and remove them."""

import json
import os
import subprocess
import uuid

import pytest

from actors.ports import ContainerError
from impresario.cluster import wait_for
from isolators.cni import DEFAULT_PLUGIN_DIRS, NETWORK_LABEL
from tests.integration.conftest import need_root

pytestmark = pytest.mark.integration

SUBNET = "10.231.87.0/24"


def _plugins_dir():
    for d in DEFAULT_PLUGIN_DIRS.split(":"):
        if os.path.exists(os.path.join(d, "bridge")) and os.path.exists(os.path.join(d, "host-local")):
            return d
    pytest.skip("the CNI plugins (bridge, host-local) are not installed: apt-get install containernetworking-plugins")


def _netns():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _ping(ip):
    return subprocess.run(["ping", "-c", "1", "-W", "2", ip], capture_output=True).returncode == 0


@pytest.fixture
def cni(tmp_path):
    """A CNI configuration folder with one bridge network; the bridge is deleted afterwards."""
    need_root("network namespaces")
    plugins = _plugins_dir()
    if subprocess.run(["which", "ping"], capture_output=True).returncode:
        pytest.skip("ping is not installed: apt-get install iputils-ping")
    tag = uuid.uuid4().hex[:6]
    conf_dir = tmp_path / "cni"
    conf_dir.mkdir()
    bridge = f"impbr{tag}"
    net = {"cniVersion": "1.0.0", "name": f"test-{tag}", "plugins": [{
        "type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "dataDir": str(tmp_path / "ipam")}}]}
    (conf_dir / "10-test.conflist").write_text(json.dumps(net))
    opts = {"cni_config_dir": str(conf_dir), "cni_plugins_dir": plugins}
    agent = f"cni{tag}"
    before = set(_netns().splitlines())
    yield {"opts": opts, "network": net["name"], "dir": conf_dir, "ipam": tmp_path / "ipam", "agent": agent}
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
    left = [line for line in _netns().splitlines() if line not in before and line.startswith("impresario-")]
    for line in left:
        subprocess.run(["ip", "netns", "delete", line.split()[0]], capture_output=True)
    assert not left, f"network namespaces left behind: {left}"


def test_a_task_gets_an_address_the_host_can_ping_and_it_is_gone_after(isolated_cluster, cni):
    h = isolated_cluster("cgroups/mem,network/cni", containerizer=cni["opts"])
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[
        {"task_id": "web", "command": "sleep 600", "labels": {NETWORK_LABEL: cni["network"]}},
        {"task_id": "host", "command": "sleep 600"}])
    running = h.wait_update(fw, "web", "TASK_RUNNING")
    assert len(running["ip_addresses"]) == 1
    ip = running["ip_addresses"][0]
    assert ip.startswith("10.231.87.")
    assert wait_for(lambda: _ping(ip), 60, what=f"{ip} to answer")
    # Its own namespace, with its own interface; its neighbour stays on the host's network.
    web_ns = os.readlink(f"/proc/{running['pid']}/ns/net")
    host = h.wait_update(fw, "host", "TASK_RUNNING")
    assert web_ns != os.readlink("/proc/self/ns/net") == os.readlink(f"/proc/{host['pid']}/ns/net")
    assert h.wait_update(fw, "host", "TASK_RUNNING")["ip_addresses"] == []
    ours = [line.split()[0] for line in _netns().splitlines() if running["agent_id"] in line]
    assert len(ours) == 1
    h.do(fw, "kill", task_id="web")
    h.wait_update(fw, "web", "TASK_KILLED")
    h.wait(lambda: ours[0] not in _netns(), "the task's namespace to go")
    assert not _ping(ip)
    # host-local gave the address back.
    assert not [f for f in os.listdir(cni["ipam"] / cni["network"]) if f.startswith("10.")]
    h.do(fw, "kill", task_id="host")


def test_a_missing_plugin_fails_the_launch_clearly_and_leaves_nothing(runners, cni):
    bad = {"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": "no-such-plugin"}]}
    (cni["dir"] / "20-broken.conflist").write_text(json.dumps(bad))
    r = runners("cgroups/mem,network/cni", agent=cni["agent"], **cni["opts"])
    with pytest.raises(ContainerError) as e:
        r.launch("c1", "sleep 600", labels=[(NETWORK_LABEL, "broken")])
    assert "plugin 'no-such-plugin' not found" in e.value.message
    assert e.value.reason.name == "REASON_CONTAINER_LAUNCH_FAILED"
    assert cni["agent"] not in _netns()


def test_a_bad_configuration_or_a_failed_add_leaves_nothing(runners, cni):
    (cni["dir"] / "30-garbage.conf").write_text("{ not json")
    r = runners("cgroups/mem,network/cni", agent=cni["agent"], **cni["opts"])
    with pytest.raises(ContainerError) as e:
        r.launch("c1", "sleep 600", labels=[(NETWORK_LABEL, "garbage")])
    assert "no network named 'garbage'" in e.value.message and "not JSON" in e.value.message
    # A real plugin that refuses: the bridge plugin with an impossible subnet.
    refused = {"cniVersion": "1.0.0", "name": "refused", "plugins": [{
        "type": "bridge", "bridge": "impbrbad0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/33"}]],
                                                          "dataDir": str(cni["ipam"])}}]}
    (cni["dir"] / "40-refused.conflist").write_text(json.dumps(refused))
    try:
        with pytest.raises(ContainerError) as e:
            r.launch("c2", "sleep 600", labels=[(NETWORK_LABEL, "refused")])
        assert "plugin 'bridge' ADD on network 'refused' failed" in e.value.message
        assert cni["agent"] not in _netns()   # DEL ran and the namespace was deleted
    finally:
        subprocess.run(["ip", "link", "delete", "impbrbad0"], capture_output=True)
    assert r.cz.running == {}


def test_a_task_groups_tasks_share_one_namespace_like_a_pod(isolated_cluster, cni):
    h = isolated_cluster("cgroups/mem,network/cni", containerizer=cni["opts"])
    fw = h.probe()
    o = h.wait_offers(fw)[0]
    label = {NETWORK_LABEL: cni["network"]}
    h.do(fw, "launch_group", offer_ids=[o["offer_id"]], executor_id="pod", tasks=[
        {"task_id": "server", "command": "python3 -m http.server --bind 127.0.0.1 18080", "labels": label,
         "mem": 64},
        {"task_id": "client", "command": "sleep 600", "labels": label}])
    server = h.wait_update(fw, "server", "TASK_RUNNING")
    client = h.wait_update(fw, "client", "TASK_RUNNING")
    assert server["ip_addresses"] == client["ip_addresses"] and len(server["ip_addresses"]) == 1
    ns = os.readlink(f"/proc/{server['pid']}/ns/net")
    assert ns == os.readlink(f"/proc/{client['pid']}/ns/net") != os.readlink("/proc/self/ns/net")
    # They reach each other on the namespace's own loopback.
    def served():
        p = subprocess.run(["nsenter", f"--net=/proc/{client['pid']}/ns/net", "--", "python3", "-c",
                            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:18080/', timeout=5)"],
                           capture_output=True)
        return p.returncode == 0
    assert wait_for(served, 60, what="the client to reach the server on localhost")
    assert wait_for(lambda: _ping(server["ip_addresses"][0]), 60, what="the pod to answer")
    ours = [line.split()[0] for line in _netns().splitlines() if server["agent_id"] in line]
    assert len(ours) == 1
    h.do(fw, "kill", task_id="client")
    h.wait_update(fw, "server", "TASK_KILLED")   # the group goes down together
    h.wait(lambda: ours[0] not in _netns(), "the pod's namespace to go")
