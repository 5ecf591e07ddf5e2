import random

import pytest

from actors.protocol.units import UnitError, parse_distribution, parse_duration, parse_size


@pytest.mark.parametrize("text,mib", [
    ("64MiB", 64), ("2GiB", 2048), ("1TiB", 2**20), ("512MB", 512e6 / 2**20), ("1.5GB", 1.5e9 / 2**20),
    (512, 512), ("512", 512), ("0.5GiB", 512), ("1024KiB", 1),
])
def test_sizes(text, mib):
    assert parse_size(text) == pytest.approx(mib)


@pytest.mark.parametrize("bad", ["", "MiB", "12 parsecs", "-1", "1e3MB", None, True, float("inf")])
def test_bad_sizes(bad):
    with pytest.raises(UnitError):
        parse_size(bad)


@pytest.mark.parametrize("text,seconds", [
    ("500ms", 0.5), ("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), (45, 45), ("1.5", 1.5),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "s", "10 fortnights", "-5s", None])
def test_bad_durations(bad):
    with pytest.raises(UnitError):
        parse_duration(bad)


def test_distributions_sample_within_their_law():
    rng = random.Random(1)
    u = parse_distribution("uniform(10s, 2m)")
    assert all(10 <= u.sample(rng) <= 120 for _ in range(200))
    e = parse_distribution("exp(60s)")
    mean = sum(e.sample(rng) for _ in range(5000)) / 5000
    assert 54 < mean < 66
    assert parse_distribution("90s").sample(rng) == 90
    assert str(parse_distribution("uniform(10m,20m)")) == "uniform(10m,20m)"
    for bad in ["exp()", "uniform(5s)", "uniform(9s,1s)", "gauss(1s)"]:
        with pytest.raises(UnitError):
            parse_distribution(bad)
