"""Simulated workloads without a cluster: arrival processes checked on
:class:`actors.frameworks.batch.Arrival` directly (many samples, fixed seeds, tolerances
of several standard errors), task specifications and service-time strings, and their
refusals.  The same in small runs: tests/cluster/test_workloads.py.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.config import ConfigError
from actors.frameworks.batch import Arrival, parse_arrival, parse_task_spec
from sim import api
from sim.host import parse_service_time
from sim.scenario import ScenarioError
from tests.scenarios.workloads import ONE_TASK, phase_counts, write

# --------------------------------------------------------------------------- arrival processes


@pytest.mark.parametrize("text,kind,args", [
    (None, "at_once", (0.0, 0.0, 0.0)),
    ("at_once", "at_once", (0.0, 0.0, 0.0)),
    ("poisson(2.5)", "poisson", (2.5, 0.0, 0.0)),
    ("poisson( 4/s )", "poisson", (4.0, 0.0, 0.0)),
    ("uniform(10s, 2m)", "uniform", (10.0, 120.0, 0.0)),
    ("diurnal(3/s,1h,0.5)", "diurnal", (3.0, 3600.0, 0.5)),
])
def test_arrival_specifications_parse(text, kind, args):
    a = parse_arrival(text, "tasks[0]")
    assert (a.kind, a.a, a.b, a.c) == (kind, *args)


@pytest.mark.parametrize("bad", ["sometimes", "poisson(0)", "poisson(-1)", "poisson(1,2)", "poisson(x)",
                                 "uniform(5s)", "uniform(9s,1s)", "uniform(1s,forever)",
                                 "diurnal(1,1h)", "diurnal(1,0s,0.5)", "diurnal(1,1h,1.5)",
                                 "diurnal(1,1h,-0.1)"])
def test_bad_arrivals_are_refused_naming_the_spec(bad, tmp_path):
    with pytest.raises(ConfigError, match=r"tasks\[3\]: .*arrival"):
        parse_arrival(bad, "tasks[3]")
    body = f"""
    [[frameworks]]
    name = "b"
    tasks = 2
    task = {{ cpus = 1, mem = 64, duration = "1s", arrival = "{bad}" }}
    """
    with pytest.raises(ScenarioError, match=r"framework 'b': task: .*arrival"):
        api.load(write(tmp_path, body))


arrivals = st.one_of(
    st.just(Arrival("at_once")),
    st.builds(lambda r: Arrival("poisson", r), st.floats(0.01, 100)),
    st.builds(lambda lo, w: Arrival("uniform", lo, lo + w), st.floats(0, 1000), st.floats(0, 1000)),
    st.builds(lambda r, p, c: Arrival("diurnal", r, p, c), st.floats(0.01, 100), st.floats(0.1, 1e5),
              st.floats(0, 1)),
)


@given(arrival=arrivals, n=st.integers(0, 60), start=st.floats(0, 1e4), seed=st.integers(0, 2**32))
def test_arrival_times_obey_their_process(arrival, n, start, seed):
    times = arrival.times(n, start, random.Random(seed))
    assert len(times) == n
    assert times == sorted(times)
    if arrival.kind == "at_once":
        assert times == [start] * n
    elif arrival.kind == "uniform":
        assert all(start + arrival.a - 1e-9 <= t <= start + arrival.b + 1e-9 for t in times)
    else:
        assert all(t > start for t in times)


@pytest.mark.parametrize("rate,seed", [(0.5, 1), (4.0, 2), (40.0, 3)])
def test_poisson_gaps_are_exponential_with_mean_one_over_rate(rate, seed):
    n = 4000
    times = Arrival("poisson", rate).times(n, 100.0, random.Random(seed))
    gaps = [b - a for a, b in zip([100.0, *times], times, strict=False)]
    mean = statistics.fmean(gaps)
    # The standard error of the mean is 1/(rate sqrt(n)), 1.6% here: 6% is ~4 of them.
    assert mean == pytest.approx(1 / rate, rel=0.06)
    # Exponential, not merely the right mean: coefficient of variation 1, P(gap > mean) = 1/e.
    assert statistics.stdev(gaps) / mean == pytest.approx(1.0, abs=0.08)
    assert sum(g > 1 / rate for g in gaps) / n == pytest.approx(math.exp(-1), abs=0.03)


def test_diurnal_arrivals_follow_the_rate_over_the_period():
    rate, period, n = 2.0, 100.0, 6000
    times = Arrival("diurnal", rate, period, 0.8).times(n, 50.0, random.Random(11))
    # Over whole periods the mean rate is RATE.
    assert n / (times[-1] - 50.0) == pytest.approx(rate, rel=0.05)
    peak, trough = phase_counts(times, 50.0, period)
    # Expected: 1 + 0.8 x (2 sqrt 2 / pi) = 1.72 against 0.28 of the mean rate, a ratio of 6.1.
    assert peak / trough == pytest.approx(6.1, rel=0.25)
    assert peak / (n / 4) == pytest.approx(1.72, rel=0.08)
    # With no amplitude it is a plain Poisson process: no peak, no trough.
    flat = Arrival("diurnal", rate, period, 0.0).times(n, 50.0, random.Random(11))
    p0, t0 = phase_counts(flat, 50.0, period)
    assert p0 / t0 == pytest.approx(1.0, abs=0.12)


def test_uniform_arrivals_spread_over_their_window():
    times = Arrival("uniform", 10.0, 70.0).times(3000, 5.0, random.Random(5))
    assert 15.0 <= times[0] < 15.2 and 74.8 < times[-1] <= 75.0
    assert statistics.fmean(times) == pytest.approx(45.0, abs=1.0)
    # Each sixth of the window holds about a sixth of the arrivals.
    for k in range(6):
        inside = sum(15 + 10 * k <= t < 25 + 10 * k for t in times)
        assert inside == pytest.approx(500, abs=90)


@pytest.mark.parametrize("spec,words", [
    ({"cpus": 1, "mem": 64, "service": True, "duration": "5s"}, "a service runs until it is stopped"),
    ({"cpus": 1, "mem": 64}, "give a command, a duration, or service = true"),
    ({"cpus": 1, "mem": 64, "service": "yes"}, "service must be true or false"),
    ({"cpus": 1, "mem": 64, "duration": "exp(5s,6s)"}, "duration: exp takes one mean"),
    ({"cpus": 1, "mem": 64, "duration": "1s", "start": "soon"}, "start: not a duration"),
    ({"cpus": 0, "mem": 0, "duration": "1s"}, "a task needs some cpus or mem"),
])
def test_bad_task_specifications_are_refused(spec, words):
    with pytest.raises(ConfigError, match=r"tasks\[0\]: " + words.replace("(", r"\(")):
        parse_task_spec(spec, 0)


@pytest.mark.parametrize("text,parsed", [
    ("zero", ("zero", 0.0)), ("measured", ("measured", 0.0)), ("fixed(2ms)", ("fixed", 0.002)),
    (" fixed( 1.5s ) ", ("fixed", 1.5)), ("fixed(3)", ("fixed", 3.0)),
])
def test_service_time_strings(text, parsed):
    assert parse_service_time(text) == parsed


@pytest.mark.parametrize("bad,words", [
    ("fast", "service_time must be zero, fixed(DURATION) or measured, got 'fast'"),
    ("fixed()", "must be zero, fixed(DURATION) or measured"),
    ("fixed(2ms", "must be zero, fixed(DURATION) or measured"),
    ("fixed(-1s)", "not a duration: '-1s'"),
    ("fixed(2 parsecs)", "unknown duration unit"),
    (5, "got '5'"),
])
def test_bad_service_times_are_refused_with_a_reason(bad, words, tmp_path):
    path = write(tmp_path, ONE_TASK)
    with pytest.raises(ScenarioError) as e:
        api.load(path, {"service_time": bad})
    assert "[sim].service_time: " in str(e.value) and words in str(e.value)
