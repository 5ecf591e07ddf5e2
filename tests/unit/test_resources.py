import pytest

from actors.protocol.resources import (
    EMPTY,
    ResourceError,
    Resources,
    check_role,
    normalize_ranges,
    ranges_subtract,
    role_ancestors,
    role_error,
    to_millis,
)


def test_fixed_point_has_no_float_drift():
    a = Resources.of(cpus=0.1)
    total = EMPTY
    for _ in range(10):
        total = total + a
    assert total == Resources.of(cpus=1)
    assert (Resources.of(cpus=0.1) + Resources.of(cpus=0.2)) - Resources.of(cpus=0.3) == EMPTY
    assert to_millis(0.1) == 100 and to_millis("2.5") == 2500 and to_millis(3) == 3000


def test_three_decimals_round():
    assert Resources.of(cpus=0.0004).is_empty()
    assert Resources.of(cpus=0.0005).millis("cpus") == 0  # banker's rounding of 0.5 millis
    assert Resources.of(cpus=0.0016).millis("cpus") == 2


def test_subtraction_requires_containment():
    with pytest.raises(ResourceError, match="not contained"):
        Resources.of(cpus=1) - Resources.of(cpus=2)
    with pytest.raises(ResourceError):
        Resources.of(cpus=1) - Resources.of(mem=1)
    assert Resources.of(cpus=1).minus_saturating(Resources.of(cpus=2, mem=5)) == EMPTY


def test_ranges_merge_and_subtract():
    assert normalize_ranges([(5, 9), (1, 3), (4, 4), (20, 25)]) == ((1, 9), (20, 25))
    assert ranges_subtract(((1, 10),), ((3, 4), (8, 12))) == ((1, 2), (5, 7))
    r = Resources.of(ports=[(31000, 31009)])
    left = r - Resources.of(ports=[(31003, 31003)])
    assert left.ranges("ports") == ((31000, 31002), (31004, 31009))
    assert r.contains(Resources.of(ports=[(31000, 31001), (31009, 31009)]))
    assert not left.contains(Resources.of(ports=[(31003, 31003)]))


def test_roles_must_match_except_for_empty():
    a = Resources.of(cpus=1, role="eng")
    b = Resources.of(cpus=1, role="ops")
    with pytest.raises(ResourceError, match="do not mix"):
        a + b
    assert not a.contains(b)
    assert a.contains(EMPTY)
    assert (a + EMPTY).role == "eng" and (EMPTY + a).role == "eng"
    assert a.with_role("*") == Resources.of(cpus=1)


def test_parse_and_text_form_round_trip():
    r = Resources.parse("cpus:4; mem:1024; disk:10; ports:[31000-32000,40000-40000]")
    assert r.cpus == 4 and r.mem == 1024 and r.ranges("ports") == ((31000, 32000), (40000, 40000))
    assert Resources.parse(str(r)) == r
    assert str(Resources.of(cpus=0.5, role="eng/web")) == "cpus:0.5{eng/web}"
    for bad in ["cpus", "cpus:x", "ports:[1-", "Bad:1", "cpus:-1"]:
        with pytest.raises(ResourceError):
            Resources.parse(bad)


def test_dominant_share_and_exclusion():
    total = Resources.of(cpus=10, mem=1000, gpus=2)
    alloc = Resources.of(cpus=1, mem=500, gpus=2)
    assert alloc.dominant_share(total) == 1.0
    assert alloc.dominant_share(total, exclude=["gpus"]) == 0.5


def test_immutable_and_hashable():
    r = Resources.of(cpus=1)
    with pytest.raises(AttributeError):
        r.x = 1
    assert {r: 1}[Resources.of(cpus=1)] == 1
    assert hash(EMPTY) == hash(Resources.of(role="eng"))


def test_role_validation_follows_mesos():
    for ok in ["*", "eng", "eng/frontend/ui", "a.b", "x-y"]:
        assert role_error(ok) is None, ok
        check_role(ok)
    for bad in ["", "/eng", "eng/", "eng//ui", "eng/./x", "eng/../x", "a/*", "-x", "a b", "a\tb"]:
        assert role_error(bad), bad
    assert role_ancestors("eng/frontend/ui") == ["eng", "eng/frontend", "eng/frontend/ui"]


def test_invalid_values_are_refused():
    with pytest.raises(ResourceError):
        Resources.of(cpus=float("nan"))
    with pytest.raises(ResourceError):
        Resources({"cpus": True})
    with pytest.raises(ResourceError):
        Resources({}, {"ports": [(5, 1)]})
    with pytest.raises(ResourceError):
        Resources({"ports": 1}, {"ports": [(1, 2)]})
