"""The command line's own parsing: master lists and the master's timing options."""

import pytest

from impresario.cli import _masters, parser


def parse(*argv):
    return parser().parse_args(list(argv))


def test_master_lists_comma_separated_or_repeated_keep_their_order_once_each():
    args = parse("agent", "--master", "10.0.0.1:5050,10.0.0.9", "--master", "10.0.0.1:5050", "--master", "h:7")
    assert _masters(args) == [("10.0.0.1", 5050), ("10.0.0.9", 5050), ("h", 7)]
    args = parse("framework", "m:C", "--master", "a:1", "--master", "b:2,c:3")
    assert _masters(args) == [("a", 1), ("b", 2), ("c", 3)]


def test_state_asks_the_local_master_by_default():
    assert _masters(parse("state")) == [("127.0.0.1", 5050)]
    assert _masters(parse("weights", "eng=2", "--master", "x:1")) == [("x", 1)]


@pytest.mark.parametrize("bad", ["a:1,", ",a:1", "a:1,,b:2", "a:0", "a:x", ":5050"])
def test_a_bad_master_list_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as e:
        parse("agent", "--master", bad)
    assert e.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_the_masters_timing_options():
    args = parse("master", "--agent-ping-timeout", "1.5", "--max-agent-ping-timeouts", "3",
                 "--heartbeat-interval", "2", "--agent-reregister-timeout", "60")
    assert (args.agent_ping_timeout, args.max_agent_ping_timeouts, args.heartbeat_interval,
            args.agent_reregister_timeout) == (1.5, 3, 2.0, 60.0)
    args = parse("master")
    assert (args.agent_ping_timeout, args.max_agent_ping_timeouts, args.heartbeat_interval,
            args.agent_reregister_timeout) == (15.0, 5, 15.0, 600.0)
    for flag, bad in [("--agent-ping-timeout", "0"), ("--heartbeat-interval", "-1"),
                      ("--max-agent-ping-timeouts", "0"), ("--agent-reregister-timeout", "soon")]:
        with pytest.raises(SystemExit):
            parse("master", flag, bad)


def test_the_container_logger_options_reach_the_containerizer_and_bad_ones_are_usage_errors(capsys):
    from impresario.cli import _containerizer

    args = parse("agent", "--master", "a:1", "--isolation", "posix", "--max-stdout-size", "1MiB",
                 "--max-stderr-size", "8192", "--logrotate-count", "2")
    opts = _containerizer(args)
    assert (opts["max_stdout_size"], opts["max_stderr_size"], opts["logrotate_count"]) == (2**20, 8192, 2)
    assert "max_stdout_size" not in _containerizer(parse("agent", "--master", "a:1", "--isolation", "posix"))
    for flag, bad in [("--max-stdout-size", "12"), ("--max-stderr-size", "lots"), ("--logrotate-count", "-1")]:
        with pytest.raises(SystemExit):
            parse("agent", "--master", "a:1", flag, bad)
        assert flag in capsys.readouterr().err
