"""The real host's Store: records in files (isolators/store.py)."""

import os
import stat

import pytest

from actors.config import ConfigError
from actors.ports import MemoryStore
from actors.protocol import messages as M
from actors.protocol.codec import CodecError, pack_value, unpack_value
from isolators.store import FileStore, checkpoint, decode_key, encode_key, registry


def test_a_value_comes_back_as_the_bytes_the_codec_packed(tmp_path):
    s = FileStore(str(tmp_path / "r"))
    rec = M.AgentCheckpoint("m1-S3", "m1")
    s.put("agent", rec)
    s.put("weights", "just a string")
    loaded = s.load()
    assert loaded == {"agent": pack_value(rec), "weights": pack_value("just a string")}
    assert unpack_value(M.AgentCheckpoint, loaded["agent"]) == rec
    # The same bytes as the simulator's store: the actors cannot tell them apart.
    for pack_on_put in (False, True):   # (True: a master's registry, packed as written)
        mem = MemoryStore(pack_on_put=pack_on_put)
        mem.put("agent", rec)
        mem.put("weights", "just a string")
        assert mem.load() == loaded
        assert (type(mem.records["agent"]) is bytes) is pack_on_put
    # A second store on the same directory (the restarted actor) reads the same.
    assert FileStore(str(tmp_path / "r")).load() == loaded


def test_bytes_are_written_as_they_are_and_a_put_replaces(tmp_path):
    s = FileStore(str(tmp_path))
    s.put("k", b"\x00raw")
    s.put("k", b"second")
    assert s.load() == {"k": b"second"}


def test_delete_removes_the_record_and_a_missing_one_is_no_error(tmp_path):
    s = FileStore(str(tmp_path))
    s.put("a", b"1")
    s.put("b", b"2")
    s.delete("a")
    s.delete("a")
    s.delete("never")
    assert s.load() == {"b": b"2"}


@pytest.mark.parametrize("key", ["agent/sim-S3", "ex/fw-1/exec 1", "up/f/../../etc/passwd", ".hidden",
                                 "..", "a%2Fb", "ünïcode/ταυ", "tab\tand\nnewline", "x" * 100 + "/" + "y" * 300])
def test_odd_keys_round_trip_and_stay_inside_the_directory(tmp_path, key):
    d = tmp_path / "store"
    s = FileStore(str(d))
    s.put(key, b"v")
    s.put("plain", b"p")
    assert s.load() == {key: b"v", "plain": b"p"}
    names = os.listdir(d)
    assert len(names) == 2
    assert all("/" not in n and not n.startswith(".") and len(n.encode()) <= 255 for n in names)
    assert sorted(os.listdir(tmp_path)) == ["store"]
    s.delete(key)
    assert s.load() == {"plain": b"p"}


def test_key_encoding_is_reversible_and_plain_keys_stay_readable():
    assert encode_key("ex/f1/e-1.x_y") == "ex%2Ff1%2Fe-1.x_y"
    assert encode_key(".a") == "%2Ea"
    for key in ["a/b", "%", "%%41", " ", "é"]:
        assert decode_key(encode_key(key)) == key
    with pytest.raises(ValueError):
        encode_key("")
    with pytest.raises(ValueError):
        decode_key("bad%zz")


def test_writes_leave_no_temporary_file_and_load_removes_a_crashed_writes(tmp_path):
    s = FileStore(str(tmp_path), fsync=True)
    for i in range(20):
        s.put(f"up/f/t{i % 3}", pack_value(str(i)))
    s.flush()
    assert sorted(os.listdir(tmp_path)) == sorted(encode_key(f"up/f/t{i}") for i in range(3))
    # A writer killed before its rename leaves a temporary file: never a record, and cleared.
    (tmp_path / ".up%2Ff%2Ft0.999.0.tmp").write_bytes(b"half a rec")
    assert set(s.load()) == {"up/f/t0", "up/f/t1", "up/f/t2"}
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_a_corrupt_file_is_loaded_as_its_bytes_and_the_decoder_refuses_it(tmp_path):
    s = FileStore(str(tmp_path))
    s.put("agent", M.AgentCheckpoint("a", "m"))
    (tmp_path / "agent").write_bytes(b"\xc1garbage")
    (tmp_path / "fw%2Fx").write_bytes(b"")
    loaded = s.load()
    assert loaded == {"agent": b"\xc1garbage", "fw/x": b""}
    for raw in loaded.values():
        with pytest.raises(CodecError):
            unpack_value(M.AgentCheckpoint, raw)


def test_foreign_files_are_skipped(tmp_path):
    s = FileStore(str(tmp_path))
    (tmp_path / "bad%zz").write_bytes(b"x")
    (tmp_path / "#0000").write_bytes(b"\x00\x00\x00\x01kv")   # a hashed name that does not match its key
    (tmp_path / "sub").mkdir()
    s.put("ok", b"1")
    assert s.load() == {"ok": b"1"}


def test_the_directories_are_private(tmp_path):
    s = FileStore(str(tmp_path / "a" / "registry"))
    s.put("k", b"v")
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "registry").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "registry" / "k").st_mode) == 0o600


def test_port_factories_put_the_records_in_the_work_directory(tmp_path):
    reg = registry(None, {"work_dir": str(tmp_path / "m")})
    assert reg.directory == str(tmp_path / "m" / "registry") and not reg.fsync
    ck = checkpoint(None, {"work_dir": str(tmp_path / "a"), "store_fsync": True})
    assert ck.directory == str(tmp_path / "a" / "meta" / "agent") and ck.fsync
    assert checkpoint(None, {"checkpoint_dir": str(tmp_path / "c")}).directory == str(tmp_path / "c")
    with pytest.raises(ConfigError):
        registry(None, {"work_dir": str(tmp_path / "m"), "store_fsync": "yes"})
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot use"):
        checkpoint(None, {"work_dir": str(tmp_path / "file")})
