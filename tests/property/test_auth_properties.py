"""Authenticated messages: any tampering with a signed envelope is refused, and a
verifier raises nothing but AuthError whatever it is given."""

import hashlib
import hmac

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from actors.protocol import messages as M  # noqa: F401  (registers the message types messages() draws)
from actors.protocol.codec import encode
from actors.security.auth import MAC_BYTES, REASONS, AuthError, Credentials, hmac_pads, mac
from tests.strategies import messages

SECRETS = {"master": b"m" * 32, "agent": b"a" * 32, "framework:web": b"w" * 32}
principals = st.sampled_from(sorted(SECRETS))
origins = st.text(min_size=1, max_size=40)
incarnations = st.integers(0, 2**64 - 1)
payloads = st.one_of(messages().map(encode), st.binary(max_size=300))


@st.composite
def sealed(draw):
    """A signed envelope, its fields, and a verifier that has never seen it."""
    c = Credentials(SECRETS)
    principal, origin, inc = draw(principals), draw(origins), draw(incarnations)
    signer = c.signer(principal, origin, inc)
    signer.seq = draw(st.integers(0, 2**40))
    payload = draw(payloads)
    env = signer.seal(payload)
    return env, (principal, origin, inc, signer.seq, payload), c


def refused(c, data):
    """The reason ``data`` is refused by a fresh verifier (only AuthError may come out)."""
    try:
        c.verifier().open(data)
    except AuthError as e:
        assert e.reason in REASONS
        return e.reason
    return None


@given(sealed())
def test_a_sealed_envelope_opens(s):
    env, (principal, _, _, _, payload), c = s
    assert c.verifier().open(env) == (principal, payload)


@given(sealed(), st.data())
def test_any_flipped_bit_is_refused(s, data):
    env, _, c = s
    i = data.draw(st.integers(0, len(env) * 8 - 1))
    bad = bytearray(env)
    bad[i // 8] ^= 1 << (i % 8)
    assert refused(c, bytes(bad)) is not None


@given(sealed(), principals, st.data())
def test_a_changed_principal_or_origin_is_refused(s, other, data):
    env, (principal, origin, inc, seq, payload), c = s
    new_origin = data.draw(origins.filter(lambda o: o != origin))
    mac_field = env[-MAC_BYTES:]
    for p, o in ((other, origin), (principal, new_origin), ("intruder", origin)):
        if (p, o) == (principal, origin):
            continue
        forged = msgpack.packb([2, p, o, inc, seq, payload, mac_field], use_bin_type=True)
        assert refused(c, forged) in ("bad_mac", "unknown_principal")


@given(sealed(), st.data())
def test_a_changed_field_is_refused(s, data):
    env, (principal, origin, inc, seq, payload), c = s
    mac_field = env[-MAC_BYTES:]
    field = data.draw(st.sampled_from(["incarnation", "seq", "payload"]))
    fields = [2, principal, origin, inc, seq, payload, mac_field]
    if field == "incarnation":
        fields[3] = data.draw(incarnations.filter(lambda x: x != inc))
    elif field == "seq":
        fields[4] = data.draw(st.integers(1, 2**64 - 1).filter(lambda x: x != seq))
    else:
        fields[5] = data.draw(st.binary(max_size=300).filter(lambda x: x != payload))
    assert refused(c, msgpack.packb(fields, use_bin_type=True)) == "bad_mac"


@given(sealed(), st.integers(1, MAC_BYTES), st.binary(min_size=1, max_size=40))
def test_a_truncated_or_extended_mac_is_refused(s, cut, extra):
    env, (principal, origin, inc, seq, payload), c = s
    mac_field = env[-MAC_BYTES:]
    assert refused(c, env[:-cut]) is not None                       # bytes cut off the end
    assert refused(c, env + extra) is not None                      # bytes added after it
    for other in (mac_field[:-cut], mac_field + extra):              # a shorter or longer mac field
        fields = [2, principal, origin, inc, seq, payload, other]
        assert refused(c, msgpack.packb(fields, use_bin_type=True)) is not None


@given(sealed(), st.data())
def test_mutated_envelopes_raise_only_auth_errors(s, data):
    env, _, c = s
    raw = bytearray(env)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    reason = refused(c, bytes(raw))
    assert reason is not None or bytes(raw) == env


@given(st.binary(max_size=600))
def test_random_bytes_raise_only_auth_errors(raw):
    assert refused(Credentials(SECRETS), raw) is not None


@given(st.lists(st.integers(1, 60), max_size=80), st.integers(1, 16))
def test_the_window_accepts_exactly_the_fresh_sequence_numbers(order, window):
    # A reference model: a number is fresh if never accepted and within `window` of the
    # highest accepted.
    c = Credentials(SECRETS)
    signer = c.signer("agent", "a", 1)
    envs = {n: None for n in range(1, 61)}
    for n in envs:
        envs[n] = signer.seal(b"x")
    v = c.verifier(window=window)
    seen: set[int] = set()
    for n in order:
        fresh = n not in seen and (not seen or n > max(seen) - window)
        try:
            v.open(envs[n])
            accepted = True
        except AuthError as e:
            assert e.reason == "replayed"
            accepted = False
        assert accepted == fresh, (n, sorted(seen))
        if accepted:
            seen.add(n)


@given(st.binary(min_size=1, max_size=200), st.binary(max_size=500))
def test_the_prepared_pads_give_the_standard_hmac(key, data):
    assert mac(hmac_pads(key), data) == hmac.new(key, data, hashlib.sha256).digest()
