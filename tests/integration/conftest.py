import os
import shutil
import subprocess
import sys
import uuid

import pytest


def impresario_cmd():
    exe = shutil.which("impresario")
    return [exe] if exe else [sys.executable, "-m", "impresario.cli"]


@pytest.fixture
def run_cli(tmp_path):
    """Run the impresario command line in a fresh process; returns (code, stdout, stderr)."""

    def run(*args, timeout=300, env=None):
        e = dict(os.environ, **(env or {}))
        p = subprocess.run([*impresario_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                           cwd=os.path.join(os.path.dirname(__file__), "..", ".."), env=e)
        return p.returncode, p.stdout, p.stderr

    return run


# --------------------------------------------------------------------------- isolation on this host


def gone(pid):
    """The process has ended (a zombie counts: it runs nothing)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def need_root(what="cgroups, device nodes and network namespaces"):
    if os.geteuid() != 0:
        pytest.skip(f"needs root for {what}")


def need_controllers(*controllers):
    """Skip, saying why, unless this host has cgroup hierarchies holding ``controllers``."""
    from isolators.cgroups import detect

    need_root()
    h = detect()
    missing = [c for c in controllers if h.version_of(c) is None]
    if missing:
        pytest.skip(f"no cgroup hierarchy on this host holds {', '.join(missing)} ({h.describe()})")
    return h


def _cgroup_dirs_under(root):
    from isolators.cgroups import detect

    h = detect()
    out = []
    for mount in sorted(set(h.v1.values()) | ({h.v2} if h.v2 else set())):
        top = os.path.join(mount, root)
        for d, subdirs, _ in os.walk(top, topdown=False):
            out.extend(os.path.join(d, s) for s in subdirs)
        if os.path.isdir(top):
            out.append(top)
    return out


@pytest.fixture
def cgroups_root():
    """A cgroups root of this test's own; afterwards nothing may be left below it."""
    root = f"impresario-test-{uuid.uuid4().hex[:8]}"
    yield root
    dirs = _cgroup_dirs_under(root)
    leftovers = [d for d in dirs if os.path.basename(d) != root]
    for d in dirs:  # leave the host clean either way
        try:
            os.rmdir(d)
        except OSError:
            pass
    assert not leftovers, f"cgroups left behind: {leftovers}"


class Runner:
    """Drives a real-host containerizer the way an executor does (launch, reap, destroy)."""

    def __init__(self, opts, sandboxes, agent="agent", parent="c1"):
        from isolators.containerizer import Containerizer

        self.cz = Containerizer(None, {"agent_id": agent, "container_id": parent, "containerizer": opts})
        self.sandboxes = str(sandboxes)
        self.exits = {}

    def launch(self, cid, command, cpus=0.1, mem=32, gpus=(), labels=()):
        from actors.frameworks.batch import make_task
        from actors.protocol.resources import Resources

        task = make_task(cid, "agent", Resources.of(cpus=cpus, mem=mem), command=command, labels=tuple(labels))
        return self.cz.launch(cid, task, os.path.join(self.sandboxes, cid), tuple(gpus))

    def poll(self):
        for ex in self.cz.reap():
            self.exits[ex.container_id] = ex

    def wait_exit(self, cid, timeout=120):
        from impresario.cluster import wait_for

        def ended():
            self.poll()
            return self.exits.get(cid)
        return wait_for(ended, timeout, interval=0.05, what=f"container {cid} to end")

    def output(self, cid, name="stdout"):
        with open(os.path.join(self.sandboxes, cid, name)) as f:
            return f.read()

    def container(self, cid):
        return self.cz.running[cid].c


@pytest.fixture
def runners(tmp_path, cgroups_root):
    """Make containerizers with an isolation list; every one is shut down afterwards."""
    made = []

    def make(isolation, agent="agent", parent="c1", **opts):
        r = Runner({"isolation": isolation, "cgroups_root": cgroups_root, **opts}, tmp_path / "sandboxes",
                   agent=agent, parent=parent)
        made.append(r)
        return r

    yield make
    for r in made:
        r.cz.shutdown()


@pytest.fixture
def real():
    """A real one-agent cluster with the default isolation."""
    from tests.harness import RealHarness

    h = RealHarness(agents=1, resources="cpus:2;mem:1024;disk:1024")
    yield h
    h.stop()


@pytest.fixture
def isolated_cluster(cgroups_root):
    """A real one-agent cluster whose agent isolates with the given list."""
    from tests.harness import RealHarness

    made = []

    def make(isolation, resources="cpus:2;mem:1024;disk:1024", usage_interval=5.0, **extra):
        containerizer = {"isolation": isolation, "cgroups_root": cgroups_root,
                         **extra.pop("containerizer", {})}
        h = RealHarness(agents=1, resources=resources,
                        agent_settings={"containerizer": containerizer, "usage_interval": usage_interval, **extra})
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
