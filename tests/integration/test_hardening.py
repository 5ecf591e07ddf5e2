"""The transport hardening in real processes: a local cluster's Thespian admin and actor
processes, attacked on their ports the way Thespian frames messages on the wire.

Without the hardening, the exploit frame below runs ``touch`` in the process that reads
it (shown in this process by :func:`test_the_exploit_frame_runs_code_where_plainly_unpickled`);
the cluster's processes - forked from this one after the hardening was installed - must
refuse it, log it and go on working.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess

import psutil
import pytest
from thespian.actors import ActorAddress
from thespian.system.messages.admin import PendingActor
from thespian.system.transport.IPBase import TCPv4ActorAddress
from thespian.system.transport.streamBuffer import ReceiveBuffer, ackDataErrMsg, toSendBuffer

from impresario.cluster import LocalCluster, wait_for
from impresario.realhost.system import address_text
from tests.integration.conftest import impresario_cmd
from tests.integration.test_cli import _stop, _wait_line

pytestmark = pytest.mark.integration

PATIENCE = 120.0   # one condition, on a loaded two-core machine
BATCH = "actors.frameworks.batch:BatchFramework"


class Touch:
    """Unpickles as ``os.system("touch PATH")``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def exploit_frame(path, sender_port=1):
    """One frame as Thespian's TCP transport sends it: ``b"<length>>"`` and the pickled
    ``(sender address, message)``, the message being the exploit."""
    sender = ActorAddress(TCPv4ActorAddress("127.0.0.1", sender_port, external=True))
    return toSendBuffer((sender, Touch(path)), pickle.dumps)


def send_frame(host_port, frame, timeout=PATIENCE):
    """Send one frame on a fresh connection; return (our address, the frame that came
    back: Thespian's acknowledgement)."""
    host, port = host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        me = "{}:{}".format(*s.getsockname()[:2])
        s.sendall(frame)
        reply = b""
        while b">" not in reply or len(reply) < reply.index(b">") + 1 + int(reply[:reply.index(b">")]):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return me, reply


def logged(cluster, words):
    try:
        with open(cluster.log_path) as f:
            return words in f.read()
    except FileNotFoundError:
        return False


def run_a_task(cluster, name):
    fw = cluster.start_framework(BATCH, name, {"tasks": [{"name": "t", "count": 1, "cpus": 0.1, "mem": 16,
                                                          "command": "echo still working"}]})
    s = wait_for(lambda: (lambda s: s if s["done"] else None)(cluster.query(fw, "summary")), PATIENCE,
                 what=f"{name}'s task to end")
    return s["tasks_finished"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(agents=1, work_dir=str(tmp_path_factory.mktemp("hardened")),
                     agent_resources="cpus:1;mem:512;disk:512")
    try:
        c.start(timeout=PATIENCE)
        yield c
    finally:
        c.stop()


def admin_port(cluster, i=0):
    return f"{cluster.bind}:{cluster.systems[i].port}"


# --------------------------------------------------------------------------- the exploit


def test_the_exploit_frame_runs_code_where_plainly_unpickled(tmp_path):
    # What Thespian 4.0.1 does with a frame, done here: the frame is a real exploit.
    target = tmp_path / "pwned"
    buf = ReceiveBuffer(pickle.loads)
    buf.addMore(exploit_frame(target))
    assert buf.isDone()
    buf.completed()
    assert target.exists()


@pytest.mark.parametrize("where", ["the master's admin", "the agent actor"])
def test_the_exploit_frame_is_refused_logged_and_the_cluster_works_on(cluster, tmp_path, where):
    target = tmp_path / "pwned"
    port = admin_port(cluster) if where == "the master's admin" else address_text(cluster.agents[0])
    me, reply = send_frame(port, exploit_frame(target))
    # Thespian acknowledges a frame after unpickling it: a refused one gets ACK+DATAERR.
    assert reply == ackDataErrMsg
    assert not target.exists()
    wait_for(lambda: logged(cluster, f"refused a frame from {me}: class posix.system is not allowed"),
             PATIENCE, what="the refusal in the cluster's log")
    assert run_a_task(cluster, f"after-{where.split()[-1]}") == 1
    assert not target.exists()


def test_a_peer_may_not_create_actors_outside_the_kernel(cluster):
    request = PendingActor("thespian.runcommand.RunCommand", None, 1, None, None)
    me, reply = send_frame(admin_port(cluster), toSendBuffer((ActorAddress(None), request), pickle.dumps))
    assert reply == ackDataErrMsg
    wait_for(lambda: logged(cluster, f"refused a frame from {me}: creating an actor of class "
                                     "'thespian.runcommand.RunCommand'"),
             PATIENCE, what="the refusal in the cluster's log")


# --------------------------------------------------------------------------- a frame too large


def _rss(procs):
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def test_an_oversized_frame_is_refused_without_reading_it(cluster):
    procs = cluster.systems[0].group_processes()   # the master's admin, logger and actors
    before = _rss(procs)
    chunk = b"\0" * 2**20
    sent, closed = 0, None
    with socket.create_connection(("127.0.0.1", cluster.systems[0].port), timeout=PATIENCE) as s:
        me = "{}:{}".format(*s.getsockname()[:2])
        try:
            s.sendall(b"%d>" % 2**30)    # declares 1 GiB
            while sent < 256 * 2**20:    # and streams up to a quarter of it
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError) as e:
            closed = e
    assert closed is not None, f"the connection stayed open for {sent >> 20} MiB"
    assert sent < 256 * 2**20
    grown = _rss(procs) - before
    assert grown < 64 * 2**20, f"the master's system grew by {grown >> 20} MiB"
    wait_for(lambda: logged(cluster, f"refused a frame from {me}: it declares {2**30} bytes"),
             PATIENCE, what="the refusal in the cluster's log")
    assert run_a_task(cluster, "after-oversize") == 1


# --------------------------------------------------------------------------- loopback only


def _listening(procs):
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        out.extend((p.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN)
    return out


def test_every_socket_of_a_local_cluster_listens_on_loopback_only(cluster):
    procs = [p for s in cluster.systems for p in s.group_processes()]
    assert len(procs) >= 6    # two admins, two loggers, master, allocator, agent
    sockets = _listening([*procs, psutil.Process()])
    ports = {port for _, _, port in sockets}
    assert {s.port for s in cluster.systems} <= ports
    assert {int(address_text(a).rsplit(":", 1)[1]) for a in (cluster.master, cluster.agents[0])} <= ports
    assert [s for s in sockets if s[1] != "127.0.0.1"] == []


def test_impresario_master_listens_where_told_and_says_so(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([*impresario_cmd(), "master", "--port", str(port), "--http-port", "0", "--work-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = _wait_line(proc, "impresario master", timeout=PATIENCE)
        assert f"listening on 127.0.0.1:{port} " in line, line
        pgid = os.getpgid(_listener(port))
        group = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
        sockets = _listening([*group, psutil.Process(proc.pid)])
        assert sockets and [s for s in sockets if s[1] != "127.0.0.1"] == []
    finally:
        _stop(proc)


def test_an_agent_of_a_remote_master_must_be_told_where_to_listen(run_cli):
    code, _out, err = run_cli("agent", "--master", "192.0.2.1:5050", timeout=120)
    assert code == 2 and "give --listen" in err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _listener(port):
    def find():
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid:
                return c.pid
        return None
    return wait_for(find, PATIENCE, what=f"a listener on port {port}")


