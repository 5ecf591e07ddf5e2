"""Resource arithmetic laws: a commutative monoid with exact, contained subtraction."""

from hypothesis import assume, given
from hypothesis import strategies as st

from actors.protocol.resources import EMPTY, ResourceError, Resources, ranges_subtract
from tests.strategies import resources

same_role = st.shared(st.sampled_from(["*", "eng", "eng/web"]), key="role").flatmap(lambda r: resources(role=r))


@given(same_role, same_role)
def test_addition_commutes(a, b):
    assert a + b == b + a


@given(same_role, same_role, same_role)
def test_addition_associates(a, b, c):
    assert (a + b) + c == a + (b + c)


@given(same_role)
def test_empty_is_neutral(a):
    assert a + EMPTY == a and EMPTY + a == a and a - EMPTY == a and a - a == EMPTY


scalars_same_role = st.shared(st.sampled_from(["*", "eng"]), key="r2").flatmap(
    lambda r: resources(role=r, with_ranges=False))


@given(same_role, same_role)
def test_sum_contains_its_parts(a, b):
    s = a + b
    assert s.contains(a) and s.contains(b)
    assert (s - b) + b == s


@given(scalars_same_role, scalars_same_role)
def test_subtraction_undoes_addition_of_scalars(a, b):
    assert (a + b) - b == a


@given(same_role, same_role)
def test_ranges_behave_as_sets(a, b):
    # Ranges are sets: adding what is there already adds nothing, so (a + b) - b is
    # a without what it shared with b.
    left = (a + b) - b
    assert left.scalars_only() == a.scalars_only()
    for name in set(a.names()) | set(b.names()):
        assert left.ranges(name) == ranges_subtract(a.ranges(name), b.ranges(name))


@given(same_role, same_role)
def test_subtraction_needs_containment(a, b):
    if a.contains(b):
        assert (a - b) + b == a
        assert (a - b).contains(EMPTY)
    else:
        try:
            a - b
        except ResourceError:
            return
        raise AssertionError("subtracting what is not contained must fail")


@given(same_role, same_role)
def test_containment_is_a_partial_order(a, b):
    assert a.contains(a)
    if a.contains(b) and b.contains(a):
        assert a == b


@given(same_role, same_role)
def test_saturating_subtraction_never_goes_negative(a, b):
    d = a.minus_saturating(b)
    assert a.contains(d)
    assume(not d.is_empty())
    for name, m in d.scalar_items():
        assert 0 < m <= a.millis(name)


@given(resources())
def test_wire_form_round_trips(a):
    assert Resources.from_wire([a.role, dict(a.scalar_items()), {k: [list(x) for x in v] for k, v in a.range_items()}]) == a


@given(resources(with_ranges=False))
def test_text_form_round_trips(a):
    assert Resources.parse(str(a).split("{")[0], a.role) == a


@given(st.lists(same_role, max_size=8))
def test_total_is_the_sum_given_one_role(items):
    expected = EMPTY
    for r in items:
        expected = expected + r
    got = Resources.total(items, "eng")
    assert got == expected.with_role("eng") and got.role == "eng"
