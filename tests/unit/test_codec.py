import msgpack
import pytest

from actors.protocol import codec
from actors.protocol import messages as M
from actors.protocol.codec import CodecError, decode, encode, peek_tag, tag_of
from actors.protocol.resources import Resources


def task(tid="t1", **kw):
    return M.TaskInfo(tid, tid, "", Resources.of(cpus=0.1, mem=32), M.CommandInfo("true"), **kw)


def test_every_annotation_has_a_wire_form():
    codec.validate_all()
    tags = codec.message_types()
    assert len(tags) == len(set(tags.values()))
    assert len(tags) >= 60


def test_round_trip_with_nested_union():
    m = M.Accept("fw", ("o1", "o2"), (M.Launch((task(),)), M.LaunchGroup(M.ExecutorInfo("e"), (task("t2"),))),
                 M.Filters(3.5))
    assert decode(encode(m)) == m
    assert peek_tag(encode(m)) == tag_of(M.Accept)
    assert peek_tag(encode(M.Configure("a", "b"))) == tag_of(M.Configure)


def test_envelope_is_versioned():
    raw = msgpack.unpackb(encode(M.Heartbeat()))
    assert raw[0] == codec.PROTOCOL_VERSION and raw[1] == tag_of(M.Heartbeat)
    with pytest.raises(CodecError, match="version 99 not supported"):
        decode(msgpack.packb([99, tag_of(M.Heartbeat), []]))


@pytest.mark.parametrize("raw,words", [
    (b"", "not a msgpack message"),
    (msgpack.packb({"a": 1}), "not an envelope"),
    (msgpack.packb([1, 9999, []]), "unknown message type tag 9999"),
    (msgpack.packb([1, tag_of(M.Kill), ["fw"]]), "Kill: expected an array of 4 fields"),
    (msgpack.packb([1, tag_of(M.Kill), ["fw", 7, "", None]]), "Kill.task_id: expected a string"),
    (msgpack.packb([1, tag_of(M.Kill), ["fw", "a/b", "", None]]), "Kill.task_id: invalid character '/'"),
    (msgpack.packb([1, tag_of(M.Kill), ["fw", "", "", None]]), "Kill.task_id: an id may not be empty"),
    (msgpack.packb([1, tag_of(M.Kill), ["fw", "t", "", -1.0]]), "must not be negative"),
    (msgpack.packb([1, tag_of(M.Revive), ["fw", ["eng//x"]]]), "invalid role"),
    (msgpack.packb([1, tag_of(M.Update), [["t", 77, 0, None, "", "", "", 0.0, "", b"", None, []]]]), "unknown TaskState 77"),
    (msgpack.packb([1, tag_of(M.Offers), [[["o", "f", "a", "h", "*", ["*", {"cpus": -5}, {}], []]]]]), "invalid resources"),
    (msgpack.packb([1, tag_of(M.Accept), ["fw", ["o"], [[9, []]], None]]), "unknown Launch/LaunchGroup tag 9"),
    (msgpack.packb([1, tag_of(M.Configure), ["a", "b", {1: 2}, []]], strict_types=False), "not a msgpack message"),
])
def test_bad_input_gets_a_clear_error(raw, words):
    with pytest.raises(CodecError, match=words):
        decode(raw)


def test_limits_are_enforced():
    with pytest.raises(CodecError, match="exceeds the limit"):
        decode(b"\x00" * (codec.MAX_MESSAGE_BYTES + 1))
    deep = 0
    for _ in range(40):
        deep = [deep]
    nested = msgpack.packb([1, tag_of(M.Configure), ["a", "b", deep, []]])
    with pytest.raises(CodecError, match="nested too deeply"):
        decode(nested)


def test_floats_must_be_finite_and_ints_are_accepted():
    raw = msgpack.packb([1, tag_of(M.Subscribed), ["fw", 15, "m", 0]])
    assert decode(raw).heartbeat_interval_seconds == 15.0
    with pytest.raises(CodecError, match="finite"):
        decode(msgpack.packb([1, tag_of(M.Subscribed), ["fw", float("inf"), "m", 0]]))


def test_only_registered_messages_encode():
    with pytest.raises(TypeError):
        encode(task())
    with pytest.raises(TypeError):
        encode(object())


# ---------------------------------------------------------------- interned values and shared resources

def _launch(command_wire, resources_wire=("*", {"cpus": 100, "mem": 32000}, {})):
    """The wire bytes of a RunTask whose task has this command and these resources."""
    fw = ["web", "", ["*"], [], 3600.0, "fw", "", "", True, []]
    ti = ["t1", "t1", "", list(resources_wire), command_wire, None, [], None]
    return msgpack.packb([1, tag_of(M.RunTask), [fw, ti]])


@pytest.fixture
def room():
    """Room in the bounded memos, whatever ran before in this process."""
    codec.forget_decoded()


def test_an_interned_command_is_decoded_once_and_shared(room):
    cmd = ["sleep 1234.5", True, ["a", "b"], [["K", "V"]], ""]
    a, b = decode(_launch(cmd)), decode(_launch(cmd))
    assert a.task.command == M.CommandInfo("sleep 1234.5", True, ("a", "b"), (("K", "V"),))
    assert a.task.command is b.task.command          # the same value: decoded once
    assert a.framework is b.framework
    assert a.task.resources is b.task.resources      # a shape seen before: the same Resources


@pytest.mark.parametrize("shell", [1, 1.0])
def test_an_interned_value_still_checks_types_on_a_hit(room, shell):
    # (..., True, ...) is interned first; (..., 1, ...) is equal to it as a tuple but not
    # a boolean, and must be refused as it would be on a first decode.
    decode(_launch(["sleep 99", True, [], [], ""]))
    with pytest.raises(CodecError, match=r"CommandInfo\.shell: expected a boolean"):
        decode(_launch(["sleep 99", shell, [], [], ""]))


def test_a_float_field_of_an_interned_value_refuses_a_boolean_on_a_hit(room):
    fw = ["web", "", ["*"], [], 1.0, "fw", "", "", True, []]
    ok = msgpack.packb([1, tag_of(M.Subscribe), [fw, []]])
    bad = msgpack.packb([1, tag_of(M.Subscribe), [[*fw[:4], True, *fw[5:]], []]])
    assert decode(ok).framework_info.failover_timeout == 1.0
    with pytest.raises(CodecError, match="failover_timeout: expected a number, got bool"):
        decode(bad)


@pytest.mark.parametrize("wire,words", [
    (("*", {"cpus": 100.0, "mem": 32000}, {}), "invalid fixed-point amount for 'cpus'"),
    (("*", {"cpus": True, "mem": 32000}, {}), "invalid fixed-point amount for 'cpus'"),
    (("*", {"cpus": 100, "mem": 32000}, 0), "scalars and ranges must be maps"),
    (("*", {"cpus": 100, "mem": [1]}, {}), "invalid fixed-point amount for 'mem'"),
])
def test_shared_resources_are_only_given_for_the_same_valid_form(room, wire, words):
    decode(_launch(["true", True, [], [], ""], ("*", {"cpus": 100, "mem": 32000}, {})))
    with pytest.raises(CodecError, match=words):
        decode(_launch(["true", True, [], [], ""], wire))


@pytest.mark.parametrize("labels,words", [
    ([["k"]], "TaskInfo.labels: expected arrays of 2 strings"),
    ([["k", 1]], "TaskInfo.labels: expected arrays of 2 strings"),
    (["kv"], "TaskInfo.labels: expected arrays of 2 strings"),
    ({"k": "v"}, "TaskInfo.labels: expected an array, got dict"),
])
def test_string_pairs_are_checked_in_place(labels, words):
    fw = ["web", "", ["*"], [], 3600.0, "fw", "", "", True, []]
    ti = ["t1", "t1", "", ["*", {"cpus": 100}, {}], None, None, labels, None]
    with pytest.raises(CodecError, match=words):
        decode(msgpack.packb([1, tag_of(M.RunTask), [fw, ti]]))


def test_json_arrays_decode_as_lists():
    m = decode(encode(M.Configure("a", "b", {"x": [1, [2, {"y": [3]}]]})))
    assert m.settings == {"x": [1, [2, {"y": [3]}]]}
    assert type(m.settings["x"]) is list and type(m.settings["x"][1][1]["y"]) is list


def test_only_plain_values_may_be_interned():
    with pytest.raises(TypeError, match="cannot be interned"):
        codec.intern_values(M.TaskInfo)          # holds Resources
    codec.validate_all()
    with pytest.raises(RuntimeError, match="compiled already"):
        codec.intern_values(M.Ping)


def test_forgetting_what_was_decoded_makes_the_next_decode_build_it_again():
    cmd = ["sleep 4321", True, [], [], ""]
    a = decode(_launch(cmd))
    codec.forget_decoded()
    b = decode(_launch(cmd))
    assert a == b and a.task.command is not b.task.command and a.task.resources is not b.task.resources
