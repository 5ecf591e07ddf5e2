import os

import pytest
from hypothesis import HealthCheck, settings

from impresario.realhost import hardening

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("campaign", deadline=None, max_examples=10_000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The transport hardening lets peers create actors of the kernel's own classes only; the
# tests create theirs too (probes, policies, subclasses of the kernel's actors).
hardening.admit_actor_packages("tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration tests (real processes, cgroups, namespaces) and benchmarks are slow:
    ``-m "not slow"`` leaves them out with the rest of the slow tier (see docs/testing.md)."""
    for item in items:
        if item.get_closest_marker("integration") is not None or item.get_closest_marker("bench") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def no_cgroup_left_behind():
    """Tasks started by the command line use the default cgroups root, ``impresario``:
    whatever the session creates there must be gone at its end (and the root with it,
    if the session made it)."""
    from tests.integration.conftest import _cgroup_dirs_under

    before = set(_cgroup_dirs_under("impresario"))
    yield
    after = _cgroup_dirs_under("impresario")
    new = [d for d in after if d not in before]
    leaked = [d for d in new if os.path.basename(d) != "impresario"]
    for d in new:
        try:
            os.rmdir(d)
        except OSError:
            pass
    assert not leaked, f"cgroups left behind under the default root: {leaked}"


@pytest.fixture
def small_toml(tmp_path):
    """A small scenario file (tests/scenarios/results.py: SMALL_TOML) in the test's folder."""
    from tests.scenarios.results import SMALL_TOML

    p = tmp_path / "small.toml"
    p.write_text(SMALL_TOML)
    return p
