import pytest

from tests.harness import RealHarness, SimHarness


@pytest.fixture(params=["sim", pytest.param("real", marks=pytest.mark.slow)])
def make_cluster(request):
    """Build a small cluster on one host or the other; every one built is stopped."""
    built = []

    def make(**kw):
        h = (SimHarness if request.param == "sim" else RealHarness)(**kw)
        built.append(h)
        return h

    yield make
    for h in built:
        h.stop()


@pytest.fixture
def cluster(make_cluster):
    return make_cluster()
