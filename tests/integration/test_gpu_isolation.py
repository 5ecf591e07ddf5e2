"""GPU isolation without a GPU: real device cgroups (v1 devices, and a BPF device program
on the cgroup2 hierarchy) in front of mknod'd NVIDIA nodes (``c 195:N``).

Without a driver, opening a GPU node the task may use fails with ENXIO (no such
device); one it may not use fails with EPERM before the driver is asked.
The GPUs themselves come from a fake NVML behind pynvml's interface (the one
stand-in: for absent hardware).
"""

import errno
import os
import stat

import pytest

from actors.ports import ContainerError
from actors.protocol.messages import AssignedGpu
from tests.integration.conftest import need_controllers, need_root

pytestmark = pytest.mark.integration

PROBE = ("python3 -c \"import os\nfor m in (0, 1):\n    try:\n        os.close(os.open('{d}/nvidia%d' % m, os.O_RDWR))"
         "\n        print(m, 'opened')\n    except OSError as e:\n        print(m, e.errno)\n"
         "print(os.environ.get('NVIDIA_VISIBLE_DEVICES'), os.environ.get('CUDA_VISIBLE_DEVICES'))\"")


@pytest.fixture
def gpu_nodes(tmp_path):
    """Two NVIDIA device nodes, 195:0 and 195:1, in a folder of this test's own."""
    need_root("mknod")
    d = tmp_path / "dev"
    d.mkdir()
    for minor in (0, 1):
        os.mknod(d / f"nvidia{minor}", 0o666 | stat.S_IFCHR, os.makedev(195, minor))
    # Outside any task's cgroup, both nodes answer ENXIO: there is no driver behind them.
    for minor in (0, 1):
        with pytest.raises(OSError) as e:
            os.open(d / f"nvidia{minor}", os.O_RDWR)
        assert e.value.errno == errno.ENXIO
    return d


def _answers(text):
    lines = text.strip().splitlines()
    return {int(line.split()[0]): line.split()[1] for line in lines[:2]}, lines[2]


def test_a_task_opens_its_own_gpu_and_no_other(isolated_cluster, gpu_nodes):
    need_controllers("devices")
    h = isolated_cluster("cgroups/mem,gpu/nvidia", nvml="tests.fakes:EightGpus")
    agent = h.master_state()["agents"][0]
    assert agent["resources"]["gpus"] == 8        # discovered through the (fake) NVML
    fw = h.probe(capabilities=["GPU_RESOURCES"])
    o = h.wait_offers(fw)[0]
    h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[
        {"task_id": "gpu", "command": PROBE.format(d=gpu_nodes), "gpus": 1, "mem": 64},
        {"task_id": "plain", "command": PROBE.format(d=gpu_nodes), "mem": 64}])
    gpu = h.wait_update(fw, "gpu", "TASK_FINISHED")
    plain = h.wait_update(fw, "plain", "TASK_FINISHED")
    opened, env = _answers(gpu["data"])
    assert opened == {0: str(errno.ENXIO), 1: str(errno.EPERM)}   # its own GPU (minor 0) and another
    assert env == "GPU-00000000 GPU-00000000"
    opened, env = _answers(plain["data"])
    assert opened == {0: str(errno.EPERM), 1: str(errno.EPERM)} and env == "None None"


def test_a_bpf_device_program_isolates_the_same_way(runners, gpu_nodes):
    h = need_controllers()
    if h.v2 is None:
        pytest.skip("no cgroup2 hierarchy on this host to attach a BPF device program to")
    r = runners("cgroups/mem,gpu/nvidia", devices_backend="bpf")
    assert r.cz.isolators[0].version["devices"] == 2
    r.launch("c1", PROBE.format(d=gpu_nodes), mem=64, gpus=[AssignedGpu("c1", 0, 1, "GPU-1")])
    r.launch("c2", PROBE.format(d=gpu_nodes), mem=64)
    for cid in ("c1", "c2"):
        assert r.wait_exit(cid).status == 0
    assert _answers(r.output("c1")) == ({0: str(errno.EPERM), 1: str(errno.ENXIO)}, "GPU-1 GPU-1")
    assert _answers(r.output("c2"))[0] == {0: str(errno.EPERM), 1: str(errno.EPERM)}
    # Ordinary devices still work for the task: the default list is allowed.
    r.launch("c3", "head -c 4 /dev/urandom >/dev/null && echo ok", mem=64)
    assert r.wait_exit("c3").status == 0 and r.output("c3") == "ok\n"


def test_the_driver_volume_is_mounted_read_only_in_the_task_only(runners, tmp_path):
    need_root("mount namespaces")
    volume = tmp_path / "nvidia-driver"
    (volume / "bin").mkdir(parents=True)
    (volume / "bin" / "nvidia-smi").write_text("#!/bin/sh\necho fake nvidia-smi\n")
    (volume / "bin" / "nvidia-smi").chmod(0o755)
    target = "/usr/local/nvidia"
    existed = os.path.exists(target)
    r = runners("gpu/nvidia", nvidia_driver_volume=str(volume))
    try:
        r.launch("c1", "nvidia-smi; touch /usr/local/nvidia/x 2>/dev/null || echo read-only; echo $PATH",
                 labels=[("com.nvidia.volumes.needed", "nvidia_driver")])
        assert r.wait_exit("c1").status == 0
        out = r.output("c1").splitlines()
        assert out[:2] == ["fake nvidia-smi", "read-only"] and out[2].endswith(":/usr/local/nvidia/bin")
        # The mount was the task's own: the host does not see it.
        assert target not in open("/proc/self/mountinfo").read()
        r.cz.destroy("c1")
    finally:
        if not existed and os.path.isdir(target):
            os.rmdir(target)


PRIVATE_PROBE = ("python3 -c \"import os\nfor p in ('/dev/nvidia0', '/dev/nvidia1', '{d}/nvidia1'):\n    try:\n"
                 "        os.close(os.open(p, os.O_RDWR))\n        print(p, 'opened')\n    except OSError as e:\n"
                 "        print(p, e.errno)\ntry:\n    os.mknod('/tmp/x-{tag}', 0o600 | 0o20000, os.makedev(195, 1))\n"
                 "    print('mknod', 0)\nexcept OSError as e:\n    print('mknod', e.errno)\n"
                 "print(sorted(os.listdir('/dev')))\"")


def test_the_private_dev_fallback_holds_only_the_tasks_nodes_and_no_mknod(runners, gpu_nodes):
    need_controllers("memory")
    r = runners("cgroups/mem,gpu/nvidia", devices_backend="private-dev")
    tag = os.urandom(4).hex()
    r.launch("c1", PRIVATE_PROBE.format(d=gpu_nodes, tag=tag), mem=64, gpus=[AssignedGpu("c1", 0, 0, "GPU-0")])
    assert r.wait_exit("c1").status == 0, r.output("c1", "stderr")
    lines = r.output("c1").splitlines()
    answers = dict(line.rsplit(" ", 1) for line in lines[:4])
    assert answers["/dev/nvidia0"] == str(errno.ENXIO)        # its own GPU: there, no driver behind it
    assert answers["/dev/nvidia1"] == str(errno.ENOENT)       # another GPU: not in its /dev
    assert answers["mknod"] == str(errno.EPERM)               # and it cannot make one
    # The weaker part, as documented: a node on another filesystem stays reachable.
    assert answers[f"{gpu_nodes}/nvidia1"] == str(errno.ENXIO)
    devs = eval(lines[4])
    assert {"null", "zero", "urandom", "pts", "shm", "ptmx", "nvidia0"} <= set(devs) and "sda" not in devs
    assert not os.path.exists(f"/tmp/x-{tag}")
    assert "impresario-dev" not in open("/proc/self/mountinfo").read()   # the host's /dev is untouched


def test_gpus_declared_but_not_discovered_are_refused(runners):
    need_controllers("devices")
    r = runners("gpu/nvidia")
    with pytest.raises(ContainerError, match=r"declared .* not discovered through NVML"):
        r.launch("c1", "true", gpus=[AssignedGpu("c1", 0, 0, "")])
    assert r.cz.running == {}
