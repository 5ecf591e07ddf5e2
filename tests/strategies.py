"""Hypothesis strategies for the protocol, derived from the message annotations.

Every registered message type gets a strategy built from its fields, so a new
message is covered by the codec properties the moment it is declared.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Union

from hypothesis import strategies as st

from actors.protocol import codec
from actors.protocol.resources import MAX_RANGE_VALUE, Resources

ID_ALPHABET = st.characters(min_codepoint=33, max_codepoint=0x2FF,
                            blacklist_characters="/\\\x7f", blacklist_categories=("Zs", "Cc"))
ids = st.text(ID_ALPHABET, min_size=1, max_size=24).filter(lambda s: s not in (".", ".."))
role_components = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=6)
roles = st.one_of(st.just("*"), st.lists(role_components, min_size=1, max_size=3).map("/".join))
scalar_names = st.sampled_from(["cpus", "mem", "disk", "gpus", "fpga", "net.bw"])
millis = st.integers(min_value=0, max_value=10**9)
intervals = st.tuples(st.integers(0, 65535), st.integers(0, 2000)).map(lambda t: (t[0], min(t[0] + t[1], MAX_RANGE_VALUE)))


@st.composite
def resources(draw: Any, role: Any = None, with_ranges: bool = True) -> Resources:
    scalars = draw(st.dictionaries(scalar_names, millis, max_size=4))
    rng = {}
    if with_ranges:
        rng = draw(st.dictionaries(st.sampled_from(["ports", "vlans"]), st.lists(intervals, max_size=4), max_size=2))
    r = draw(roles) if role is None else role
    return Resources.from_millis(scalars, {k: tuple(v) for k, v in rng.items()}, r)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

_cache: dict[Any, Any] = {}


def for_type(tp: Any) -> Any:
    """A strategy producing valid values of annotation ``tp``."""
    key = repr(tp)
    if key in _cache:
        return _cache[key]
    s = _build(tp)
    _cache[key] = s
    return s


def _deferred(tp: Any) -> Any:
    return st.deferred(lambda: for_type(tp))


def _build(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        for m in meta:
            if isinstance(m, codec.JsonMarker):
                return json_values
            if isinstance(m, codec._IdConstraint):
                return (st.just("") | ids) if m.allow_empty else ids
            if isinstance(m, codec._RoleConstraint):
                return roles
            if isinstance(m, codec._NonNegative):
                return st.integers(0, 10**6) if base is int else st.floats(0, 1e9, allow_nan=False)
        return for_type(base)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        return st.one_of([st.none() if a is type(None) else _deferred(a) for a in args])
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_deferred(args[0]), max_size=3).map(tuple)
        return st.tuples(*[for_type(a) for a in args])
    if tp is str:
        return st.text(max_size=16)
    if tp is int:
        return st.integers(-(2**63), 2**63 - 1)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is bool:
        return st.booleans()
    if tp is bytes:
        return st.binary(max_size=32)
    if tp is Resources:
        return resources()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {f.name: _deferred(hints[f.name]) for f in dataclasses.fields(tp)}
        return st.builds(tp, **fields)
    raise TypeError(f"no strategy for {tp!r}")


def messages() -> Any:
    """Any registered message, of any type."""
    return st.sampled_from(sorted(codec.message_types().items())).flatmap(lambda kv: for_type(kv[1]))
