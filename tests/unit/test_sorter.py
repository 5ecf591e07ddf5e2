"""One contract for every sorter, then what is particular to each."""

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.allocator.sorter import SORTERS, DRFSorter, RandomSorter, make_sorter

TOTAL = {"cpus": 100_000, "mem": 1_000_000}


@pytest.fixture(params=sorted(SORTERS))
def sorter(request):
    s = make_sorter(request.param, rng=random.Random(1))
    s.set_total(TOTAL)
    return s


def test_order_yields_each_active_client_once(sorter):
    for name in "abcde":
        sorter.add(name)
    for name in "abd":
        sorter.activate(name)
    assert sorted(sorter.order()) == ["a", "b", "d"]
    sorter.deactivate("b")
    sorter.remove("d")
    assert list(sorter.order()) == ["a"]
    assert sorter.first() == "a"


def test_stopping_early_loses_nothing(sorter):
    for name in "abcdef":
        sorter.add(name)
        sorter.activate(name)
    it = sorter.order()
    next(it)
    next(it)
    it.close()
    assert sorted(sorter.order()) == list("abcdef")


def test_allocations_are_kept_per_client(sorter):
    sorter.add("a")
    sorter.allocated("a", {"cpus": 2000})
    sorter.allocated("a", {"cpus": 1000, "mem": 5})
    sorter.unallocated("a", {"cpus": 3000})
    assert sorter.allocation("a") == {"mem": 5}
    with pytest.raises(KeyError):
        sorter.add("a")


def test_an_unknown_sorter_is_refused():
    with pytest.raises(ValueError, match="unknown sorter 'fifo'"):
        make_sorter("fifo")


def test_drf_orders_by_weighted_dominant_share_then_name():
    s = DRFSorter()
    s.set_total(TOTAL)
    for name, w in (("a", 1.0), ("b", 2.0), ("c", 1.0)):
        s.add(name, w)
        s.activate(name)
    s.allocated("a", {"cpus": 10_000})          # share 0.1
    s.allocated("b", {"mem": 300_000})          # share 0.3 / 2 = 0.15
    s.allocated("c", {"cpus": 5_000, "mem": 100_000})  # dominant: mem 0.1 -> ties with a
    assert list(s.order()) == ["a", "c", "b"]
    s.update_weight("b", 4.0)                   # 0.075
    assert list(s.order()) == ["b", "a", "c"]


def test_drf_excludes_named_resources_from_shares():
    s = DRFSorter(excluded=["gpus"])
    s.set_total({"cpus": 10_000, "gpus": 2_000})
    for name in "ab":
        s.add(name)
        s.activate(name)
    s.allocated("a", {"gpus": 2_000})
    s.allocated("b", {"cpus": 1_000})
    assert s.share("a") == 0.0 and list(s.order()) == ["a", "b"]


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 5000), st.booleans()), max_size=60))
def test_drf_order_is_sorted_by_share_after_any_history(ops):
    s = DRFSorter()
    s.set_total(TOTAL)
    for name in "abcdefgh":
        s.add(name)
    for name, cpus, flip in ops:
        if flip:
            (s.deactivate if s.is_active(name) else s.activate)(name)
        else:
            s.allocated(name, {"cpus": cpus})
    got = list(s.order())
    expected = sorted((n for n in "abcdefgh" if s.is_active(n)), key=lambda n: (s.share(n), n))
    assert got == expected


def test_random_sorter_follows_weights_and_its_seed():
    def firsts(seed):
        s = RandomSorter(rng=random.Random(seed))
        for name, w in (("a", 1.0), ("b", 3.0)):
            s.add(name, w)
            s.activate(name)
        return Counter(s.first() for _ in range(4000))

    c = firsts(7)
    assert 0.70 < c["b"] / 4000 < 0.80          # 3/4 expected
    assert firsts(7) == c and firsts(8) != c
