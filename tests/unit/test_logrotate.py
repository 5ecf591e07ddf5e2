"""The container logger's writer alone (isolators/logrotate.py): rotation at a size, the
files kept, reading a stream's tail back across a rotation, and the settings (the agent's
options, a task's environment).  The logger as a process: tests/integration/test_sandboxes.py."""

from __future__ import annotations

import os

import pytest

from isolators import logrotate
from isolators.logrotate import RotatingLog


def files(d):
    return {f: (d / f).read_bytes() for f in sorted(os.listdir(d))}


def test_a_stream_rotates_before_a_file_passes_its_size_and_keeps_count_old_files(tmp_path):
    log = RotatingLog(str(tmp_path / "stdout"), 100, 2)
    for i in range(40):
        log.write(b"line %02d .\n" % i)        # 10 bytes a line: 10 lines a file
    log.close()
    got = files(tmp_path)
    assert sorted(got) == ["stdout", "stdout.1", "stdout.2"]
    assert all(len(v) <= 100 for v in got.values())
    # stdout.1 is the newest of the old files; the first 10 lines went with the oldest.
    assert got["stdout.2"].startswith(b"line 10") and got["stdout.1"].startswith(b"line 20")
    assert got["stdout"].startswith(b"line 30") and got["stdout"].endswith(b"line 39 .\n")
    assert log.rotations == 3


def test_a_write_is_cut_after_the_last_whole_line_that_fits(tmp_path):
    log = RotatingLog(str(tmp_path / "out"), 16, 3)
    log.write(b"aaaaa\nbbbbb\nccccc\nddd")     # 21 bytes in one write
    log.write(b"dd\n")
    log.close()
    assert files(tmp_path) == {"out": b"ccccc\nddddd\n", "out.1": b"aaaaa\nbbbbb\n"}


def test_a_line_longer_than_a_file_is_cut_where_the_file_is_full(tmp_path):
    log = RotatingLog(str(tmp_path / "out"), 8, 5)
    log.write(b"x" * 20 + b"\n")
    log.close()
    assert files(tmp_path) == {"out": b"xxxx\n", "out.1": b"xxxxxxxx", "out.2": b"xxxxxxxx"}


def test_without_old_files_the_stream_starts_again_in_place(tmp_path):
    log = RotatingLog(str(tmp_path / "out"), 10, 0)
    log.write(b"12345678\n" * 3)
    log.close()
    assert files(tmp_path) == {"out": b"12345678\n"}


def test_a_file_found_over_its_size_is_rotated_at_the_first_write(tmp_path):
    (tmp_path / "out").write_bytes(b"old\n" * 10)
    log = RotatingLog(str(tmp_path / "out"), 20, 1)
    log.write(b"new\n")
    log.close()
    assert files(tmp_path) == {"out": b"new\n", "out.1": b"old\n" * 10}


def test_the_tail_reads_across_the_latest_rotation(tmp_path):
    log = RotatingLog(str(tmp_path / "stdout"), 12, 1)
    log.write(b"first line\n" + b"last\n")       # "first line\n" fills a file; "last" starts the next
    log.close()
    path = str(tmp_path / "stdout")
    assert logrotate.tail(path, 3) == b"st\n"
    assert logrotate.tail(path, 8) == b"ne\nlast\n"
    assert logrotate.tail(path, 100) == b"first line\nlast\n"
    assert logrotate.tail(str(tmp_path / "nothing"), 10) == b""


def test_pump_copies_each_pipe_into_its_log_until_both_close(tmp_path):
    pipes = [os.pipe(), os.pipe()]
    os.write(pipes[0][1], b"out 1\nout 2\nout 3\n")
    os.write(pipes[1][1], b"err\n")
    for _, w in pipes:
        os.close(w)
    logrotate.pump([(pipes[0][0], RotatingLog(str(tmp_path / "stdout"), 12, 3)),
                    (pipes[1][0], RotatingLog(str(tmp_path / "stderr"), 12, 3))])
    assert files(tmp_path) == {"stderr": b"err\n", "stdout": b"out 3\n", "stdout.1": b"out 1\nout 2\n"}


def test_the_logger_command_names_each_stream_its_pipe_size_count_and_file():
    argv = logrotate.command("/w/box", {"stdout": 7, "stderr": 9}, {"stdout": (4096, 2), "stderr": (8192, 0)},
                             owner=(1000, 100))
    assert argv[1:3] == ["-I", "-S"] and argv[3].endswith("logrotate.py")
    assert argv[4:] == ["--owner", "1000:100", "7:4096:2:/w/box/stdout", "9:8192:0:/w/box/stderr"]


# --------------------------------------------------------------------------- settings


def test_sizes_are_bytes_or_take_units_of_1024_and_are_at_least_a_page():
    assert logrotate.parse_size("4096") == 4096
    assert logrotate.parse_size("10MB") == logrotate.parse_size("10 MiB") == 10 * 2**20
    assert logrotate.parse_size("4.5KiB") == 4608
    assert logrotate.parse_size("64KiB") == 65536
    for bad in ("12", "lots", "10 parsecs", "-4096", ""):
        with pytest.raises(ValueError):
            logrotate.parse_size(bad)


def test_the_agent_options_give_each_stream_its_size_and_the_count():
    assert logrotate.configure({}) == {"stdout": (10 * 2**20, 5), "stderr": (10 * 2**20, 5)}
    assert logrotate.configure({"max_stdout_size": "1MiB", "max_stderr_size": 8192, "logrotate_count": 0}) == \
        {"stdout": (2**20, 0), "stderr": (8192, 0)}
    with pytest.raises(ValueError, match="max_stderr_size: "):
        logrotate.configure({"max_stderr_size": 100})
    with pytest.raises(ValueError, match="logrotate_count"):
        logrotate.configure({"logrotate_count": -1})


def test_a_task_changes_its_rotation_through_its_environment():
    defaults = logrotate.configure({})
    env = {"CONTAINER_LOGGER_MAX_STDOUT_SIZE": "64KiB", "CONTAINER_LOGGER_LOGROTATE_STDERR_OPTIONS": "rotate 2",
           "OTHER": "x"}
    assert logrotate.for_task(defaults, env) == {"stdout": (65536, 5), "stderr": (10 * 2**20, 2)}
    assert logrotate.for_task(defaults, {}) == defaults
    with pytest.raises(ValueError, match=r"CONTAINER_LOGGER_MAX_STDERR_SIZE: .*less than one page"):
        logrotate.for_task(defaults, {"CONTAINER_LOGGER_MAX_STDERR_SIZE": "12"})
    with pytest.raises(ValueError, match=r"CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS: only 'rotate N' .*'compress'"):
        logrotate.for_task(defaults, {"CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS": "rotate 3\ncompress"})
