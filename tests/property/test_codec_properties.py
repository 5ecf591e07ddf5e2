"""The codec: every message round-trips; arbitrary bytes raise only CodecError."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.protocol import codec
from actors.protocol.codec import CodecError, decode, encode
from tests.strategies import for_type, messages


@given(messages())
def test_every_message_round_trips(m):
    assert decode(encode(m)) == m


@pytest.mark.parametrize("cls", [cls for _, cls in sorted(codec.message_types().items())],
                         ids=lambda c: c.__name__)
@settings(max_examples=10)
@given(data=st.data())
def test_each_message_type_round_trips(cls, data):
    # Every registered type, by name: a new message is covered the moment it is declared.
    m = data.draw(for_type(cls))
    assert decode(encode(m)) == m


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_codec_errors(raw):
    try:
        decode(raw)
    except CodecError:
        pass


@given(messages(), st.data())
def test_truncated_messages_raise_only_codec_errors(m, data):
    raw = encode(m)
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        decode(raw[:cut])
    except CodecError:
        pass


@given(messages(), st.data())
def test_mutated_messages_raise_only_codec_errors(m, data):
    raw = bytearray(encode(m))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        out = decode(bytes(raw))
    except CodecError:
        return
    # What decodes is a valid value of a registered type: it encodes again.
    assert type(out) in codec.message_types().values()
    encode(out)


json_like = st.recursive(st.none() | st.integers() | st.text(max_size=5) | st.binary(max_size=5)
                         | st.floats() | st.booleans(),
                         lambda c: st.lists(c, max_size=3) | st.dictionaries(st.integers() | st.text(max_size=3), c, max_size=3),
                         max_leaves=10)


@given(st.sampled_from(sorted(codec.message_types())), json_like)
def test_well_formed_envelopes_with_wrong_bodies_raise_only_codec_errors(tag, body):
    try:
        raw = msgpack.packb([1, tag, body], strict_types=False)
    except (ValueError, TypeError, OverflowError):
        return
    try:
        decode(raw)
    except CodecError:
        pass
