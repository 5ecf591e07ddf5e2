"""Authenticated messages (actors/security/auth.py) and the secrets file of a real host
(impresario/security.py): every refusal reason, the replay window, restarts, the
table's bound, the file's checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from types import SimpleNamespace

import msgpack
import pytest

from actors.config import ConfigError
from actors.protocol import messages as M
from actors.protocol.codec import encode, peek_tag
from actors.security.auth import (
    MAC_BYTES,
    REASONS,
    Authenticator,
    AuthError,
    Credentials,
    Signer,
    Verifier,
    hmac_pads,
    is_signed,
    mac,
    parse,
    payload_of,
    payload_tag,
)
from impresario import security
from impresario.security import SecretsError, load_secrets, parse_secrets

SECRETS = {"master": b"m" * 32, "agent": b"a" * 32, "operator": b"o" * 32}
PAYLOAD = encode(M.StatusUpdate("fw-1", M.TaskStatus("task-1", M.TaskState.TASK_RUNNING, M.Source.SOURCE_EXECUTOR,
                                                     None, "running", "agent-1", "task-1", 12.5, "u-1"),
                                M.TaskState.TASK_RUNNING))


def creds() -> Credentials:
    return Credentials(SECRETS)


def refused(v: Verifier, data: bytes) -> str:
    with pytest.raises(AuthError) as e:
        v.open(data)
    assert e.value.reason in REASONS
    return e.value.reason


def envelope(*fields: object, mac_bytes: bytes = b"\0" * MAC_BYTES) -> bytes:
    """An envelope with chosen fields (and a MAC that does not check)."""
    return msgpack.packb([*fields, mac_bytes], use_bin_type=True)


# --------------------------------------------------------------------------- sealing and opening


def test_a_sealed_message_opens_to_its_principal_and_payload():
    c = creds()
    s = c.signer("agent", "agent-7", 12345)
    env = s.seal(PAYLOAD)
    assert is_signed(env) and not is_signed(PAYLOAD)
    assert c.verifier().open(env) == ("agent", PAYLOAD)


def test_the_wire_form_and_the_mac():
    c = creds()
    env = c.signer("master", "master", 2**64 - 1).seal(PAYLOAD)
    fields = msgpack.unpackb(env, raw=False)
    assert fields[:6] == [2, "master", "master", 2**64 - 1, 1, PAYLOAD]
    # The MAC: HMAC-SHA256 with the principal's secret over every byte before the mac field.
    assert fields[6] == env[-32:] == hmac.digest(SECRETS["master"], env[:-34], "sha256")
    assert env[-34:-32] == b"\xc4\x20"
    assert parse(env) == ("master", "master", 2**64 - 1, 1, PAYLOAD)
    assert payload_of(env) == PAYLOAD


@pytest.mark.parametrize("key", [b"k", b"k" * 32, b"k" * 64, b"k" * 65, bytes(range(256)) * 3])
def test_the_prepared_pads_give_the_standard_hmac(key):
    for data in (b"", b"x", bytes(range(256)) * 5):
        assert mac(hmac_pads(key), data) == hmac.new(key, data, hashlib.sha256).digest()


def test_sequence_numbers_count_from_one_and_each_seal_differs():
    s = creds().signer("agent", "a", 1)
    e1, e2 = s.seal(PAYLOAD), s.seal(PAYLOAD)
    assert e1 != e2 and parse(e1)[3] == 1 and parse(e2)[3] == 2 and s.seq == 2


def test_payload_tag_reads_the_tag_inside_the_envelope():
    for m in (M.Ping("m1", True), M.Pong("a1"), M.Configure("agent", "agent-0"), M.Heartbeat("m")):
        data = encode(m)
        for principal, origin in (("agent", "x"), ("agent", "o" * 40), ("agent", "o" * 300)):
            c = Credentials({"agent": b"k"})
            env = c.signer(principal, origin, 2**40).seal(data)
            assert payload_tag(env) == peek_tag(data)
    assert payload_tag(PAYLOAD) is None and payload_tag(b"\x97\x02") is None


def test_signers_check_what_they_are_given():
    for principal, origin, inc in (("", "o", 1), ("a/b", "o", 1), ("a", "", 1), ("a", "o" * 1025, 1),
                                   ("a", "o", -1), ("a", "o", 2**64), ("a", "o", 1.5)):
        with pytest.raises(ValueError):
            Signer(principal, origin, inc, b"k")
    with pytest.raises(ValueError):
        Signer("a", "o", 1, b"")
    with pytest.raises(ValueError):
        Credentials({"a b": b"k"})
    with pytest.raises(ValueError):
        creds().signer("nobody", "o", 1)


# --------------------------------------------------------------------------- every refusal reason


def test_an_unsigned_message_is_refused():
    assert refused(creds().verifier(), PAYLOAD) == "unsigned"


@pytest.mark.parametrize("data", [
    b"", b"\x97", b"\x97\x02", b"garbage" * 10, bytes(300),
    envelope(2, 7, "o", 1, 1, PAYLOAD),                      # principal not a string
    envelope(2, "", "o", 1, 1, PAYLOAD),                     # empty principal
    envelope(2, "p" * 256, "o", 1, 1, PAYLOAD),              # too long
    envelope(2, "agent", "", 1, 1, PAYLOAD),                 # empty origin
    envelope(2, "agent", "o" * 1025, 1, 1, PAYLOAD),         # origin too long
    envelope(2, "agent", "o", -1, 1, PAYLOAD),               # negative incarnation
    envelope(2, "agent", "o", "1", 1, PAYLOAD),              # incarnation not an integer
    envelope(2, "agent", "o", 1, 0, PAYLOAD),                # seq 0
    envelope(2, "agent", "o", 1, 1.0, PAYLOAD),              # seq not an integer
    envelope(2, "agent", "o", 1, 1, "text"),                 # payload not bytes
    envelope(2, "agent", "o", 1, 1, PAYLOAD, mac_bytes=b"\0" * 31),   # MAC too short
    envelope(2, "agent", "o", 1, 1, PAYLOAD, mac_bytes=b"\0" * 33),   # MAC too long
    envelope(2, "agent", "o", 1, 1, PAYLOAD)[:-1],           # truncated
    envelope(2, "agent", "o", 1, 1, PAYLOAD) + b"\0",        # trailing bytes
    msgpack.packb([2, "agent", "o", 1, 1, PAYLOAD, b"x" * 40 + b"\xc4\x20" + b"\0" * 32]),  # MAC field too long
    msgpack.packb([2, "agent", "o", 1, 1, PAYLOAD, b"\0" * 32, b"\0" * 32]),  # 8 fields
])
def test_malformed_envelopes_are_refused(data):
    assert refused(creds().verifier(), data) in ("malformed", "unsigned")


def test_a_non_bytes_value_is_refused():
    assert refused(creds().verifier(), bytearray(creds().signer("agent", "o", 1).seal(PAYLOAD))) == "malformed"


def test_an_unknown_principal_is_refused():
    env = Credentials({"intruder": b"i" * 32}).signer("intruder", "x", 1).seal(PAYLOAD)
    assert refused(creds().verifier(), env) == "unknown_principal"


def test_a_wrong_secret_is_a_bad_mac():
    forged = Credentials({"master": b"guess" * 8}).signer("master", "master", 1).seal(PAYLOAD)
    v = creds().verifier()
    assert refused(v, forged) == "bad_mac"
    assert v.peers == {}          # nothing was learnt from it


def test_a_replayed_message_is_refused():
    v = creds().verifier()
    env = creds().signer("agent", "agent-1", 5).seal(PAYLOAD)
    assert v.open(env)[0] == "agent"
    with pytest.raises(AuthError, match="already seen") as e:
        v.open(env)
    assert e.value.reason == "replayed"


# --------------------------------------------------------------------------- the replay window


def test_reordering_within_the_window_is_accepted_once():
    s = creds().signer("agent", "a", 1)
    envs = [s.seal(PAYLOAD) for _ in range(6)]
    v = creds().verifier(window=8)
    for i in (3, 0, 1, 5, 4, 2):
        v.open(envs[i])
    for env in envs:
        assert refused(v, env) == "replayed"


def test_a_sequence_number_below_the_window_is_refused_even_unseen():
    s = creds().signer("agent", "a", 1)
    envs = [s.seal(PAYLOAD) for _ in range(20)]          # seq 1..20
    v = creds().verifier(window=8)
    v.open(envs[19])                                     # seq 20: the window is 13..20
    v.open(envs[12])                                     # seq 13: the oldest in the window
    with pytest.raises(AuthError, match="older than the last 8"):
        v.open(envs[11])                                 # seq 12
    v.open(envs[15])


def test_a_jump_beyond_the_window_forgets_what_was_below():
    s = creds().signer("agent", "a", 1)
    envs = [s.seal(PAYLOAD) for _ in range(30)]
    v = creds().verifier(window=4)
    v.open(envs[0])
    v.open(envs[29])                                     # seq 30: the window is 27..30
    assert refused(v, envs[0]) == "replayed"
    assert refused(v, envs[25]) == "replayed"            # seq 26: below it
    v.open(envs[27])


def test_a_restart_with_a_larger_incarnation_is_accepted_and_the_old_one_refused_after():
    c = creds()
    old = c.signer("agent", "agent-3", 1000)
    old_envs = [old.seal(PAYLOAD) for _ in range(5)]
    v = c.verifier()
    v.open(old_envs[0])
    v.open(old_envs[1])
    new = c.signer("agent", "agent-3", 2000)             # the same origin, started again
    new_env = new.seal(PAYLOAD)
    assert parse(new_env)[3] == 1                        # seq 1 again: its own numbering
    assert v.open(new_env)[0] == "agent"
    for env in old_envs[2:]:                             # never seen, but of the old incarnation
        with pytest.raises(AuthError, match="older than one already heard from") as e:
            v.open(env)
        assert e.value.reason == "old_incarnation"
    v.open(new.seal(PAYLOAD))
    assert refused(v, new_env) == "replayed"


def test_origins_and_principals_are_numbered_apart():
    c = creds()
    a, b = c.signer("agent", "agent-1", 1), c.signer("agent", "agent-2", 1)
    m = c.signer("master", "agent-1", 1)                 # the same origin, another principal
    v = c.verifier()
    for s in (a, b, m):
        v.open(s.seal(PAYLOAD))                          # seq 1 of each is fresh
    assert len(v.peers) == 3


def test_a_refused_message_changes_nothing():
    c = creds()
    s = c.signer("agent", "a", 1)
    v = c.verifier()
    v.open(s.seal(PAYLOAD))
    good = s.seal(PAYLOAD)                               # seq 2
    bad = bytearray(good)
    bad[-1] ^= 1
    before = {k: list(st) for k, st in v.peers.items()}
    assert refused(v, bytes(bad)) == "bad_mac"
    old_inc = c.signer("agent", "a", 0).seal(PAYLOAD)
    assert refused(v, old_inc) == "old_incarnation"
    assert {k: list(st) for k, st in v.peers.items()} == before
    v.open(good)                                          # still fresh


def test_the_table_is_bounded_and_forgets_the_peer_silent_the_longest():
    c = creds()
    v = c.verifier(max_peers=3)
    signers = {n: c.signer("agent", n, 1) for n in ("a", "b", "c", "d")}
    first = {n: s.seal(PAYLOAD) for n, s in signers.items()}
    for n in ("a", "b", "c"):
        v.open(first[n])
    v.open(signers["a"].seal(PAYLOAD))                   # a is used again: b is now the oldest
    v.open(first["d"])
    assert len(v.peers) == 3 and v.evicted == 1
    assert ("agent", "b") not in v.peers and ("agent", "a") in v.peers
    assert refused(v, first["a"]) == "replayed"          # still remembered
    # The limit of replay protection: a forgotten peer's old message is accepted once more.
    assert v.open(first["b"])[0] == "agent"
    assert refused(v, first["b"]) == "replayed"


def test_a_verifier_knows_a_secret_added_later_and_a_changed_one():
    c = Credentials({"agent": b"a" * 32})
    v = c.verifier()
    late = Credentials({"late": b"l" * 32}).signer("late", "x", 1).seal(PAYLOAD)
    assert refused(v, late) == "unknown_principal"
    c.add("late", b"l" * 32)
    assert v.open(late)[0] == "late"
    c.add("agent", b"new" * 10)                            # rotated
    assert refused(v, Credentials({"agent": b"a" * 32}).signer("agent", "y", 1).seal(PAYLOAD)) == "bad_mac"
    assert v.open(Credentials({"agent": b"new" * 10}).signer("agent", "y", 1).seal(PAYLOAD))[0] == "agent"


def test_reasons_do_not_repeat_what_an_unknown_sender_chose():
    # An actor counts its drops by reason: texts made of a stranger's bytes would make
    # that count grow without bound.
    v = creds().verifier()
    texts = set()
    for i in range(5):
        env = Credentials({f"who{i}": b"k"}).signer(f"who{i}", f"o{i}", i).seal(PAYLOAD)
        with pytest.raises(AuthError) as e:
            v.open(env)
        texts.add(str(e.value))
    assert len(texts) == 1


# --------------------------------------------------------------------------- the secrets file


def write_secrets(path, doc, mode=0o600):
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    os.chmod(path, mode)
    return str(path)


GOOD = {"credentials": [{"principal": "master", "secret": "s3cret-master"},
                        {"principal": "agent", "secret": "s3cret-agent"}]}


def test_a_private_secrets_file_is_read(tmp_path):
    c = load_secrets(write_secrets(tmp_path / "secrets.json", GOOD))
    assert c.secrets == {"master": b"s3cret-master", "agent": b"s3cret-agent"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620, 0o602, 0o610, 0o601, 0o700 | 0o040])
def test_a_secrets_file_its_group_or_others_may_use_is_refused(tmp_path, mode):
    path = write_secrets(tmp_path / "secrets.json", GOOD, mode)
    with pytest.raises(SecretsError, match=r"group or others may read or change it .*chmod 600"):
        load_secrets(path)


def test_a_secrets_file_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "secrets.json", GOOD)
    if os.getuid() == 0:
        os.chown(path, 65534, 65534)       # root may own it; nobody may not
    else:
        monkeypatch.setattr(os, "getuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(SecretsError, match="owned by uid"):
        load_secrets(path)


def test_a_secrets_file_owned_by_root_is_accepted(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "secrets.json", GOOD)
    if os.getuid() != 0:
        pytest.skip("only root can give a file to root")
    monkeypatch.setattr(os, "getuid", lambda: 1234)        # another user runs impresario
    assert "agent" in load_secrets(path)


@pytest.mark.parametrize("doc, match", [
    ("not json", "not JSON"),
    ({"credential": []}, "expected"),
    ({"credentials": {}}, "expected"),
    ({"credentials": [{"principal": "a"}]}, "expected"),
    ({"credentials": [{"principal": "a", "secret": "s", "x": 1}]}, "expected"),
    ({"credentials": [{"principal": "a/b", "secret": "s"}]}, "invalid character"),
    ({"credentials": [{"principal": "", "secret": "s"}]}, "non-empty"),
    ({"credentials": [{"principal": "a", "secret": ""}]}, "non-empty string"),
    ({"credentials": [{"principal": "a", "secret": 5}]}, "non-empty string"),
    ({"credentials": [{"principal": "a", "secret": "s"}, {"principal": "a", "secret": "t"}]}, "twice"),
])
def test_a_secrets_file_of_the_wrong_shape_is_refused(tmp_path, doc, match):
    with pytest.raises(SecretsError, match=match):
        load_secrets(write_secrets(tmp_path / "secrets.json", doc))


def test_no_file_a_directory_a_fifo_and_a_huge_file_are_refused(tmp_path):
    with pytest.raises(SecretsError, match="cannot open"):
        load_secrets(str(tmp_path / "none.json"))
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(SecretsError, match="not a regular file"):
        load_secrets(str(d))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(SecretsError, match="not a regular file"):
        load_secrets(str(fifo))                             # refused, without waiting for a writer
    big = write_secrets(tmp_path / "big.json", " " * (security.MAX_SECRETS_FILE_BYTES + 1))
    with pytest.raises(SecretsError, match="larger than"):
        load_secrets(big)


def test_parse_secrets_reads_bytes_and_text():
    assert parse_secrets(json.dumps(GOOD).encode()).secrets == parse_secrets(json.dumps(GOOD)).secrets


def test_the_real_host_port_factory(tmp_path):
    path = write_secrets(tmp_path / "secrets.json", GOOD)
    actor = SimpleNamespace(name="agent-3", component="agent")
    t0 = time.time_ns()
    first = security.authenticator(actor, {"principal": "agent", "secrets_file": path})
    assert isinstance(first, Authenticator) and first.principal == "agent"
    assert first.signer.origin == "agent-3" and t0 <= first.signer.incarnation <= time.time_ns()
    # The master's port opens what the agent's seals; an agent started again is heard
    # from, and its former incarnation no longer.
    master = security.authenticator(SimpleNamespace(name="master"), {"principal": "master", "secrets_file": path})
    old = first.seal(PAYLOAD)
    assert master.open(first.seal(PAYLOAD)) == ("agent", PAYLOAD)
    again = security.authenticator(actor, {"principal": "agent", "secrets_file": path})
    assert again.signer.incarnation > first.signer.incarnation
    assert master.open(again.seal(PAYLOAD))[0] == "agent"
    assert refused(master.verifier, old) == "old_incarnation"


@pytest.mark.parametrize("settings, match", [
    ({"secrets_file": "/x"}, "missing setting 'principal'"),
    ({"principal": "agent"}, "missing setting 'secrets_file'"),
    ({"principal": "nobody", "secrets_file": None}, "no secret for principal 'nobody'"),
    ({"principal": "agent", "secrets_file": "/no/such/file"}, "cannot open"),
])
def test_the_real_host_port_factory_refuses_with_a_reason(tmp_path, settings, match):
    if "secrets_file" in settings and settings["secrets_file"] is None:
        settings = {**settings, "secrets_file": write_secrets(tmp_path / "s.json", GOOD)}
    with pytest.raises(ConfigError, match=match):
        security.authenticator(SimpleNamespace(name="agent-0"), settings)
