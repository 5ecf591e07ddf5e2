"""The transport hardening's pieces, in this process: the restricted unpickler and its
allowlist, the actor-class gate, the capped receive buffer, the bind address."""

from __future__ import annotations

import builtins
import importlib
import logging
import os
import pickle
import socket
import subprocess
from datetime import timedelta

import pytest
from thespian.actors import (
    ActorAddress,
    ActorExitRequest,
    ActorSystemConventionUpdate,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    ValidatedSource,
    ValidateSource,
    WakeupMessage,
)
from thespian.system import multiprocCommon
from thespian.system.logdirector import LogAggregator, LoggerExitRequest, LoggerFileDup
from thespian.system.messages import admin as A
from thespian.system.messages import convention as C
from thespian.system.messages.multiproc import EndpointConnected, LoggerConnected
from thespian.system.transport import ForwardMessage, TCPTransport
from thespian.system.transport.IPBase import RoutedTCPv4ActorAddress, TCPv4ActorAddress
from thespian.system.transport.streamBuffer import ReceiveBuffer, toSendBuffer

from impresario.realhost import hardening
from impresario.realhost.hardening import (
    BadFrameHeader,
    GuardedReceiveBuffer,
    RateLimit,
    RefusedFrame,
)


@pytest.fixture(autouse=True)
def restore_settings():
    """Each test leaves the process's hardening settings (and the address Thespian
    publishes) as it found them."""
    s = hardening._settings
    saved = (s.listen, s.max_frame, s.packages)
    env = os.environ.get("THESPIAN_BASE_IPADDR")
    hardening._limit = RateLimit()
    yield
    s.listen, s.max_frame, s.packages = saved
    if env is None:
        os.environ.pop("THESPIAN_BASE_IPADDR", None)
    else:
        os.environ["THESPIAN_BASE_IPADDR"] = env


def addr(port=4321):
    return ActorAddress(TCPv4ActorAddress("127.0.0.1", port, external=True))


CAPS = {"Admin Port": 5050, "Convention Address.IPv4": ("127.0.0.1", 5050), "impresario.master": True,
        "Python Version": (3, 11, 7, "final", 0), "Thespian Generation": (3, 10), "Thespian Version": "1"}


class Reduces:
    """Pickles as a call of ``func(*args)``: what an attacker puts in a frame."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


# --------------------------------------------------------------------------- exploits


def test_the_exploit_runs_under_plain_pickle_and_is_refused_here(tmp_path):
    target = tmp_path / "pwned"
    frame = pickle.dumps((addr(), Reduces(os.system, f"touch {target}")))
    pickle.loads(frame)                      # what Thespian 4.0.1 does with it
    assert target.exists()
    target.unlink()
    with pytest.raises(RefusedFrame, match=r"class posix\.system is not allowed"):
        hardening.loads(frame)
    assert not target.exists()


@pytest.mark.parametrize("make,named", [
    (lambda p: Reduces(builtins.exec, f"open({str(p)!r}, 'w').close()"), "builtins.exec"),
    (lambda p: Reduces(builtins.eval, f"open({str(p)!r}, 'w')"), "builtins.eval"),
    (lambda p: Reduces(builtins.open, str(p), "w"), "io.open"),
    (lambda p: Reduces(subprocess.call, ["touch", str(p)]), "subprocess.call"),
    (lambda p: Reduces(subprocess.Popen, ["touch", str(p)]), "subprocess.Popen"),
])
def test_code_running_pickles_are_refused_before_they_run(tmp_path, make, named):
    target = tmp_path / "pwned"
    frame = pickle.dumps((addr(), make(target)))
    with pytest.raises(RefusedFrame, match=named.replace(".", r"\.")):
        hardening.loads(frame)
    assert not target.exists()


def test_getattr_chains_are_refused():
    # The classic way around a module allowlist: fetch a callable off an allowed object.
    frame = pickle.dumps(Reduces(getattr, A.QueryExists(), "__class__"))
    with pytest.raises(RefusedFrame, match=r"builtins\.getattr"):
        hardening.loads(frame)


def test_old_protocols_reconstructor_is_refused():
    frame = pickle.dumps(A.QueryExists(), protocol=1)   # copy_reg._reconstructor
    with pytest.raises(RefusedFrame, match=r"copy_?reg\._reconstructor"):
        hardening.loads(frame)


def test_thespian_runcommand_is_refused():
    from thespian import runcommand

    for obj in (runcommand.Command("touch", ["/tmp/x"]), runcommand.CommandAbort()):
        with pytest.raises(RefusedFrame, match=r"thespian\.runcommand"):
            hardening.loads(pickle.dumps((addr(), obj)))


@pytest.mark.parametrize("msg", [
    ValidateSource("hash", b"PK\x03\x04zip"),
    ValidatedSource("hash", b"PK\x03\x04zip"),
    A.RegisterSourceAuthority(addr()),
    A.NotifyOnSourceAvailability(addr(), True),
    C.SourceHashTransferRequest("hash"),
    C.SourceHashTransferReply("hash", b"zip"),
    LoggerFileDup(),
    ForwardMessage(ActorExitRequest(), addr(1), addr(2)),
    WakeupMessage(timedelta(seconds=60), payload=("failover", 1)),
    ActorSystemConventionUpdate(addr(1), CAPS, True),
    A.HandleDeadLetters(addr(1), True),
    A.CapabilityUpdate("impresario.master", True),
    A.NewCapabilities(CAPS, addr(1)),
    C.ConventionInvite(),
    C.NotifyOnSystemRegistration(addr(1), True),
    RoutedTCPv4ActorAddress("127.0.0.1", 1, addr(2), False, external=True),
])
def test_source_loading_and_other_unused_thespian_messages_are_refused(msg):
    with pytest.raises(RefusedFrame, match="is not allowed"):
        hardening.loads(pickle.dumps((addr(), msg)))


def test_a_refusal_is_logged_naming_class_and_peer(caplog):
    with caplog.at_level(logging.WARNING, logger=hardening.LOGGER), pytest.raises(RefusedFrame):
        hardening.loads(pickle.dumps(Reduces(os.system, "true")), peer="10.1.2.3:4567")
    assert "refused a frame from 10.1.2.3:4567: class posix.system is not allowed" in caplog.text


def test_warnings_are_rate_limited_and_say_how_many_were_held_back():
    now = [0.0]
    limit = RateLimit(burst=2, interval=60.0, clock=lambda: now[0])
    assert [limit.take(), limit.take(), limit.take(), limit.take()] == [0, 0, None, None]
    now[0] = 61.0
    assert limit.take() == 2
    assert limit.take() == 0


# --------------------------------------------------------------------------- Thespian's own protocol

SENDER = addr(5050)


def _log_record():
    r = logging.LogRecord("actors.master.actor", logging.WARNING, "master.py", 10, "agent %s lost", None, None)
    r.msg, r.args = r.getMessage(), None
    r.__dict__["actorAddress"] = str(SENDER)
    return r


PROTOCOL = [
    ActorExitRequest(),
    ChildActorExited(addr(1)),
    PoisonMessage(b"\x93\x01\x02", "Traceback: ..."),
    DeadEnvelope(addr(1), b"payload"),
    A.QueryExists(),
    A.QueryAck("system", "4.0.1", False),
    A.SystemShutdown(),
    A.SystemShutdownCompleted(),
    A.PendingActor("actors.master.actor.Master", None, 1, {"impresario.master": True}, "impresario-master"),
    A.PendingActorResponse(addr(1), 1, "impresario-master", actualAddress=addr(2)),
    EndpointConnected(7),
    LoggerConnected(),
    C.ConventionRegister(addr(1), CAPS, firstTime=True),
    C.ConventionDeRegister(addr(1)),
    LoggerExitRequest(),
    LogAggregator(addr(1)),
    _log_record(),
    b"\x93\x01msgpack payload",
    {"set": {1, 2}, "frozen": frozenset({3}), "bytes": bytearray(b"x"), "c": 1j},
]


def _same(a, b):
    if isinstance(a, logging.LogRecord):
        return type(b) is logging.LogRecord and a.__dict__ == b.__dict__
    if hasattr(a, "__dict__") and type(a).__eq__ is object.__eq__:
        return type(a) is type(b) and a.__dict__ == b.__dict__
    return a == b


@pytest.mark.parametrize("msg", PROTOCOL, ids=lambda m: type(m).__name__)
def test_thespian_protocol_frames_round_trip_through_the_capped_buffer(msg):
    wire = toSendBuffer((SENDER, msg), pickle.dumps)
    buf = GuardedReceiveBuffer()
    for i in range(0, len(wire), 7):        # as the socket delivers it: in pieces
        assert not buf.isDone()
        buf.addMore(wire[i:i + 7])
    assert buf.isDone()
    (sender, got), extra = buf.completed()
    assert sender == SENDER and extra == b""
    assert _same(msg, got)


def test_every_allowed_name_exists_in_this_thespian():
    for module, name in hardening.ALLOWED:
        assert isinstance(getattr(importlib.import_module(module), name), type), (module, name)


def test_the_acks_round_trip():
    from thespian.system.transport.streamBuffer import ackDataErrMsg, ackMsg

    for raw, text in ((ackMsg, "ACK"), (ackDataErrMsg, "ACK+DATAERR")):
        buf = GuardedReceiveBuffer()
        buf.addMore(raw)
        assert buf.completed() == (text, b"")


def test_a_second_frame_on_the_same_connection_is_kept_as_extra():
    one = toSendBuffer((SENDER, A.QueryExists()), pickle.dumps)
    two = toSendBuffer((SENDER, A.SystemShutdown()), pickle.dumps)
    buf = GuardedReceiveBuffer()
    buf.addMore(one + two[:5])
    buf.addMore(two[5:])
    (_, msg), extra = buf.completed()
    assert isinstance(msg, A.QueryExists) and extra == two


# --------------------------------------------------------------------------- creating actors


@pytest.mark.parametrize("name,ok", [
    ("actors.master.actor.Master", True),
    ("actors.agent.actor.Agent", True),
    ("actorsx.evil.Actor", False),
    ("thespian.runcommand.RunCommand", False),
    ("thespian.troupe.Troupe", False),
    ("subprocess.Popen", False),
    ("os.system", False),
    ("Master", False),
    (A.QueryExists, False),
])
def test_which_actor_classes_a_peer_may_ask_for(name, ok):
    hardening._settings.packages = hardening.KERNEL_PACKAGES
    assert hardening.admits_actor_class(name) is ok
    frame = pickle.dumps((SENDER, A.PendingActor(name, None, 1, None, None)))
    if ok:
        assert isinstance(hardening.loads(frame)[1], A.PendingActor)
    else:
        with pytest.raises(RefusedFrame, match="creating an actor of class"):
            hardening.loads(frame)


def test_named_packages_are_admitted_but_never_thespian():
    hardening._settings.packages = hardening.KERNEL_PACKAGES
    hardening.admit_actor_packages("mypkg.frameworks", "thespian")
    assert hardening.admits_actor_class("mypkg.frameworks.hello.Hello")
    assert not hardening.admits_actor_class("mypkg.other.Hello")
    assert not hardening.admits_actor_class("thespian.runcommand.RunCommand")


def test_an_actor_from_loaded_source_is_refused():
    msg = A.PendingActor("actors.master.actor.Master", None, 1, None, None, sourceHash="abc")
    with pytest.raises(RefusedFrame, match="loaded source"):
        hardening.loads(pickle.dumps((SENDER, msg)))


# --------------------------------------------------------------------------- frame size


def test_plain_thespian_buffers_whatever_a_header_declares():
    # The flaw being closed: 1 GiB declared, and the buffer waits for all of it.
    buf = ReceiveBuffer()
    buf.addMore(b"1073741824>" + b"x" * 1000)
    assert not buf.isDone() and buf.remainingAmount() == 2**30 - 1000


def test_a_frame_over_the_cap_is_refused_from_its_header(caplog):
    hardening._settings.max_frame = 2**20
    buf = GuardedReceiveBuffer(peer="10.0.0.9:1234")
    with caplog.at_level(logging.WARNING, logger=hardening.LOGGER), \
            pytest.raises(BadFrameHeader, match="declares 1073741824 bytes"):
        buf.addMore(b"1073741824>" + b"x" * 1000)
    assert len(buf._body) == 0
    assert "refused a frame from 10.0.0.9:1234: it declares 1073741824 bytes" in caplog.text


def test_a_frame_at_the_cap_is_accepted():
    payload = pickle.dumps((SENDER, b"x" * 5000))
    hardening._settings.max_frame = len(payload)
    buf = GuardedReceiveBuffer()
    buf.addMore(f"{len(payload)}>".encode() + payload)
    assert buf.completed()[0][1] == b"x" * 5000


@pytest.mark.parametrize("head", [b"-5>", b" 12>", b"1_000>", b">", b"0x10>", b"12" * 11 + b">"])
def test_a_header_that_is_not_a_plain_length_is_refused(head):
    with pytest.raises(BadFrameHeader):
        GuardedReceiveBuffer().addMore(head + b"payload")


def test_a_header_that_never_ends_is_refused():
    buf = GuardedReceiveBuffer()
    buf.addMore(b"1" * 15)
    with pytest.raises(BadFrameHeader, match="no length header"):
        buf.addMore(b"1" * 15)


def test_trailing_data_that_is_not_bytes_is_refused():
    # Thespian hands a decoded frame back to addMore when extra data followed it.
    with pytest.raises(TypeError):
        GuardedReceiveBuffer().addMore((SENDER, "message"))


# --------------------------------------------------------------------------- the patches


def test_install_patches_the_transport_and_binds_the_address_asked():
    assert hardening.install("localhost", max_frame=2**20, actor_packages=["mypkg"]) == "127.0.0.1"
    assert hardening.installed()
    assert TCPTransport.ReceiveBuffer is GuardedReceiveBuffer
    with pytest.raises(RefusedFrame):
        TCPTransport.serializer.loads(pickle.dumps(Reduces(os.system, "true")))
    assert os.environ["THESPIAN_BASE_IPADDR"] == "127.0.0.1"
    assert hardening.settings() == {"listen": "127.0.0.1", "max_frame": 2**20,
                                    "actor_packages": [*hardening._settings.packages]}
    assert "mypkg" in hardening.settings()["actor_packages"]
    published = TCPv4ActorAddress(None, 5050, external=True)
    assert published.bindname == ("", 5050)               # Thespian: every interface
    assert published.bindArgs == (("127.0.0.1", 5050),)   # here: the address asked
    assert TCPv4ActorAddress(None, 0, external=True).sockname[0] == "127.0.0.1"


def test_all_interfaces_only_when_asked():
    hardening.install("0.0.0.0")
    assert TCPv4ActorAddress(None, 5050, external=True).bindArgs == (("", 5050),)
    hardening.install("127.0.0.1")
    assert TCPv4ActorAddress(None, 5050, external=True).bindArgs == (("127.0.0.1", 5050),)


def test_an_address_this_host_cannot_bind_is_refused_at_install():
    with pytest.raises(hardening.HardeningError, match=r"cannot listen on 192\.0\.2\.1"):
        hardening.install("192.0.2.1")    # TEST-NET-1: never this host's


def test_thespian_processes_start_by_fork_whatever_is_asked():
    hardening.install("127.0.0.1")
    for caps in ({}, {"Process Startup Method": "spawn"}, {"Process Startup Method": "forkserver"}):
        assert multiprocCommon.get_multiproc_context(caps).get_start_method() == "fork"


def test_an_incoming_connection_knows_its_peer():
    hardening.install("127.0.0.1")
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        inc = TCPTransport.TCPIncoming(ActorAddress(None), conn)
        try:
            assert inc._rData.peer == "{}:{}".format(*client.getsockname()[:2])
        finally:
            inc.close()


@pytest.mark.parametrize("msg", [A.SystemShutdown(), ActorExitRequest()])
def test_a_shutdown_or_an_exit_request_is_taken_from_this_host_only(msg):
    data = pickle.dumps(msg)
    local = sorted(hardening.local_addresses())[0]
    for peer in ("127.0.0.1:40000", f"{local}:40000", "a peer we sent to"):
        assert type(hardening.loads(data, peer)) is type(msg)
    with pytest.raises(RefusedFrame, match="from another host"):
        hardening.loads(data, "192.0.2.7:40000")        # TEST-NET-1: never this host
    # Other messages from another host are not concerned.
    assert type(hardening.loads(pickle.dumps(A.QueryExists()), "192.0.2.7:40000")) is A.QueryExists
