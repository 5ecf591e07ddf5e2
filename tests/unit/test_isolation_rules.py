"""What limits to set, without writing them: the pure half of the isolators."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.agent.gpus import GpuPool
from isolators import bpf
from isolators.cgroups import IsolationError, parse_mounts
from isolators.cni import parse_network, result_addresses
from isolators.containerizer import default_isolation, gate_script, parse_isolation
from isolators.gpu import driver_libraries
from isolators.limits import (
    DEFAULT_DEVICES,
    DeviceRule,
    allowed,
    cfs_quota_us,
    cpu_max,
    cpu_shares,
    cpu_weight,
    gpu_rules,
    memory_limit_bytes,
    parse_rule,
    private_dev_setup,
)

# --------------------------------------------------------------------------- cpu, memory


def test_cpu_numbers_follow_mesos():
    assert cpu_shares(0.2) == 204 and cpu_shares(2) == 2048 and cpu_shares(0) == 2
    assert cpu_weight(0.2) == 20 and cpu_weight(0) == 1 and cpu_weight(500) == 10000
    assert cfs_quota_us(0.2, True) == 20_000 and cfs_quota_us(0.001, True) == 1_000
    assert cfs_quota_us(4, False) == -1
    assert cpu_max(1.5, True) == "150000 100000" and cpu_max(1.5, False) == "max 100000"


def test_memory_limit_has_mesos_floor():
    assert memory_limit_bytes(64) == 64 * 2**20
    assert memory_limit_bytes(1) == 32 * 2**20


# --------------------------------------------------------------------------- devices


def test_device_rules_read_and_write_the_v1_form():
    for text in ("a", "c 195:0 rwm", "c 136:* rwm", "b *:* m", "c 1:3 r"):
        assert parse_rule(text).v1() == text
    with pytest.raises(ValueError):
        parse_rule("c 195 rwm")
    with pytest.raises(ValueError):
        DeviceRule("c", 1, 3, "rx")


def test_the_default_list_denies_every_gpu_and_allows_the_usual_nodes():
    assert not allowed(DEFAULT_DEVICES, "c", 195, 0, "rw")
    assert allowed(DEFAULT_DEVICES, "c", 1, 3, "rw")        # /dev/null
    assert allowed(DEFAULT_DEVICES, "c", 136, 7, "rw")      # a pts
    assert allowed(DEFAULT_DEVICES, "c", 195, 0, "m")       # mknod alone is allowed, as in Mesos
    own = list(DEFAULT_DEVICES) + gpu_rules([2], [(195, 255, "nvidiactl"), (508, 0, "nvidia-uvm")])
    assert allowed(own, "c", 195, 2, "rw") and allowed(own, "c", 195, 255, "rw") and allowed(own, "c", 508, 0, "r")
    assert not allowed(own, "c", 195, 3, "r")


rules = st.builds(DeviceRule, st.sampled_from("abc"), st.none() | st.integers(0, 300),
                  st.none() | st.integers(0, 300), st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]))
requests = st.tuples(st.sampled_from("bc"), st.integers(0, 300), st.integers(0, 300),
                     st.sampled_from(["r", "w", "m", "rw", "rwm"]))


@given(st.lists(rules, max_size=6), st.lists(requests, min_size=1, max_size=10))
def test_the_bpf_program_decides_as_the_allow_list(allow, reqs):
    program = bpf.device_program(allow)
    assert len(program) % 8 == 0
    for dev_type, major, minor, access in reqs:
        assert bpf.run_program(program, dev_type, major, minor, access) == int(
            allowed(allow, dev_type, major, minor, access)), (allow, dev_type, major, minor, access)


def test_an_empty_allow_list_denies_everything():
    program = bpf.device_program([])
    assert bpf.run_program(program, "c", 1, 3, "r") == 0


# --------------------------------------------------------------------------- hierarchies

THIS_HOST = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
SYSTEMD_V1 = """\
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
"""
PURE_V2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"


def test_a_cgroup2_mount_with_only_hugetlb_is_not_taken_for_v2():
    h = parse_mounts(THIS_HOST, lambda m: ["hugetlb"])
    assert h.version_of("cpu") == 1 and h.version_of("memory") == 1 and h.version_of("pids") == 1
    assert h.v1["cpu"] == "/sys/fs/cgroup/cpu" and h.v1["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    assert h.v2 == "/sys/fs/cgroup/unified" and h.v2_controllers == {"hugetlb"}
    assert "systemd" not in h.v1


def test_v2_is_taken_where_it_holds_the_controllers():
    h = parse_mounts(PURE_V2, lambda m: ["cpuset", "cpu", "io", "memory", "pids"])
    assert h.version_of("cpu") == h.version_of("memory") == h.version_of("pids") == 2
    assert h.version_of("devices") is None
    co = parse_mounts(SYSTEMD_V1, lambda m: [])
    assert co.v1["cpu"] == co.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct" and co.v2 is None
    assert parse_mounts("", lambda m: []).version_of("memory") is None


# --------------------------------------------------------------------------- isolation lists


def test_isolation_names_expand_and_order():
    assert parse_isolation("cgroups") == ["cgroups/cpu", "cgroups/mem", "cgroups/pids"]
    assert parse_isolation("network/cni, gpu/nvidia,cgroups/mem") == [
        "cgroups/mem", "cgroups/devices", "gpu/nvidia", "network/cni"]   # gpu/nvidia brings devices
    assert parse_isolation(["posix"]) == ["posix/cpu", "posix/mem", "posix/rlimits"]


def test_an_unknown_isolator_is_named():
    with pytest.raises(IsolationError, match="unknown isolator 'cgroups/cpuset'"):
        parse_isolation("cgroups/cpu,cgroups/cpuset")
    with pytest.raises(IsolationError, match="names no isolator"):
        parse_isolation(" , ")


def test_without_root_the_default_is_posix(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    names, why = default_isolation()
    assert names == ["posix/cpu", "posix/mem", "posix/rlimits"] and "not running as root" in why
    monkeypatch.setattr("os.geteuid", lambda: 0)
    names, why = default_isolation(parse_mounts(SYSTEMD_V1, lambda m: []))
    assert names[0] == "posix/cpu" and "pids" in why


def test_the_gate_runs_setup_then_the_task():
    script = gate_script(["mount --bind /a /b"])
    lines = script.splitlines()
    assert lines[0].startswith("read -r gate") and lines[-1] == 'exec "$@" </dev/null'
    assert "mount --bind /a /b ||" in lines[2] and "exit 125" in lines[2]


# --------------------------------------------------------------------------- GPUs


def test_gpus_are_whole_and_lowest_first():
    pool = GpuPool([{"index": i, "minor": 10 + i, "uuid": f"GPU-{i}"} for i in range(4)])
    a = pool.take("f", "a", 2)
    assert [(g.index, g.minor, g.uuid) for g in a] == [(0, 10, "GPU-0"), (1, 11, "GPU-1")]
    assert pool.take("f", "b", 3) is None and pool.free == [2, 3]   # nothing taken on a refusal
    assert pool.take("f", "c", 0) == ()
    pool.give_back("f", "a")
    assert [g.index for g in pool.take("f", "b", 3)] == [0, 1, 2]
    assert GpuPool.unbacked(2).take("f", "x", 2)[1].uuid == ""


def test_driver_libraries_from_ldconfig():
    text = """2 libs found in cache `/etc/ld.so.cache'
\tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1
\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
"""
    assert driver_libraries(text) == {"lib64": ["/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"],
                                      "lib": ["/usr/lib/i386-linux-gnu/libcuda.so.1"]}


# --------------------------------------------------------------------------- CNI


def test_cni_configurations_and_results():
    net = parse_network('{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "x"}]}', "f")
    assert net.name == "n" and [p["type"] for p in net.plugins] == ["bridge", "x"]
    single = parse_network('{"name": "m", "type": "ptp"}', "g")
    assert single.plugins[0]["type"] == "ptp" and single.version == "0.4.0"
    for bad, why in (("{", "not JSON"), ('{"type": "x"}', "name"), ('{"name": "n", "plugins": []}', "non-empty"),
                     ('{"name": "n", "plugins": [{}]}', "type")):
        with pytest.raises(ValueError, match=why):
            parse_network(bad, "bad.conf")
    assert result_addresses({"ips": [{"address": "10.1.2.3/24"}, {"address": "fd00::3/64"}]}) == [
        "10.1.2.3", "fd00::3"]
    assert result_addresses({"ip4": {"ip": "10.9.0.2/16"}}) == ["10.9.0.2"]


def test_a_private_dev_holds_the_named_allowed_nodes_only():
    cmds = private_dev_setup(list(DEFAULT_DEVICES) + gpu_rules([3], [(195, 255, "nvidiactl")]))
    assert cmds[0].startswith("mount -t tmpfs") and cmds[0].endswith(" /dev")
    nodes = [c.split()[3] for c in cmds if c.startswith("mknod")]
    assert nodes == ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                     "/dev/console", "/dev/tty0", "/dev/tty1", "/dev/net/tun", "/dev/nvidiactl", "/dev/nvidia3"]
    assert "mknod -m 666 /dev/nvidia3 c 195 3" in cmds
