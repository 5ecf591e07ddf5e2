"""One msgpack codec with a versioned envelope.

Wire form of a message: ``[version, tag, body]`` where ``body`` is the array
of the message's fields in declaration order.  Nested values (dataclasses,
``Resources``) are arrays too; a union (``Operation``) is ``[tag, body]``.

Encoding is one ``msgpack.packb`` call: dataclass values are flattened by a
``default`` hook that returns their fields as a tuple (``operator.attrgetter``,
so the work stays in C).  Decoding unpacks with size limits set, then rebuilds
every value through converters compiled once per class from its annotations,
validating types, ranges and sizes on the way.  Whatever the input, decoding
raises only :class:`CodecError`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import operator
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import msgpack

from .resources import ResourceError, Resources, role_error

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 2**20
MAX_STR = 1 * 2**20
MAX_BIN = 16 * 2**20
MAX_ARRAY = 2**20
MAX_MAP = 2**16
MAX_JSON_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class CodecError(ValueError):
    """Bytes that are not a valid message of this protocol version."""


# --------------------------------------------------------------------------- field constraints


class Constraint:
    """Metadata for ``Annotated[str, ...]`` fields: a check returning an error or None."""

    def check(self, value: Any) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError


class _IdConstraint(Constraint):
    def __init__(self, allow_empty: bool) -> None:
        self.allow_empty = allow_empty

    def check(self, value: str) -> str | None:
        if not value:
            return None if self.allow_empty else "an id may not be empty"
        return id_error(value)


class _RoleConstraint(Constraint):
    def check(self, value: str) -> str | None:
        return role_error(value)


class _NonNegative(Constraint):
    def check(self, value: float) -> str | None:
        return None if value >= 0 else f"must not be negative, got {value}"


_ID_BAD = re.compile(r"[/\\\x00-\x20\x7f]|\s")


def id_error(value: str) -> str | None:
    """Why ``value`` is not a valid id (task, framework, agent, offer, executor), or None."""
    if len(value) > 255:
        return "an id may have at most 255 characters"
    if value in (".", ".."):
        return f"{value!r} is not a valid id"
    bad = _ID_BAD.search(value)
    if bad:
        return f"invalid character {bad.group()!r} in id {value!r}"
    return None


Id = typing.Annotated[str, _IdConstraint(allow_empty=False)]
OptId = typing.Annotated[str, _IdConstraint(allow_empty=True)]
Role = typing.Annotated[str, _RoleConstraint()]
Seconds = typing.Annotated[float, _NonNegative()]
Count = typing.Annotated[int, _NonNegative()]


class JsonMarker:
    """Marks a field holding a plain msgpack-native tree (maps with string keys)."""


Json = typing.Annotated[Any, JsonMarker()]


# --------------------------------------------------------------------------- registry

_TAGS: dict[int, type] = {}            # top-level message tag -> class
_ENCODERS: dict[type, Callable[[Any], Any]] = {}
_DECODERS: dict[type, Callable[[Any], Any]] = {}
_UNION_TAGS: dict[type, int] = {}


def message(tag: int) -> Callable[[type], type]:
    """Register a frozen dataclass as a top-level message with ``tag``."""

    def register(cls: type) -> type:
        if tag in _TAGS:
            raise RuntimeError(f"tag {tag} used by {_TAGS[tag].__name__} and {cls.__name__}")
        _check_dataclass(cls)
        cls.TAG = tag  # type: ignore[attr-defined]
        _TAGS[tag] = cls
        _ENCODERS[cls] = _field_getter(cls)
        return cls

    return register


def value(cls: type) -> type:
    """Register a frozen dataclass as a nested value type."""
    _check_dataclass(cls)
    _ENCODERS[cls] = _field_getter(cls)
    return cls


def union_member(tag: int) -> Callable[[type], type]:
    """Register a frozen dataclass as a member of a tagged union (encoded ``[tag, body]``)."""

    def register(cls: type) -> type:
        _check_dataclass(cls)
        _UNION_TAGS[cls] = tag
        getter = _field_getter(cls)
        _ENCODERS[cls] = lambda o: (tag, getter(o))
        return cls

    return register


def _check_dataclass(cls: type) -> None:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} must be a frozen dataclass")
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} must be slotted")


def _field_getter(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    names = [f.name for f in dataclasses.fields(cls)]
    if not names:
        return lambda o: ()
    if len(names) == 1:
        name = names[0]
        return lambda o: (getattr(o, name),)
    return operator.attrgetter(*names)  # returns a tuple: the fields, in order


def message_types() -> dict[int, type]:
    """Every registered top-level message type, by tag."""
    return dict(_TAGS)


# --------------------------------------------------------------------------- encoding


def _default(obj: Any) -> Any:
    enc = _ENCODERS.get(type(obj))
    if enc is not None:
        return enc(obj)
    if isinstance(obj, Resources):
        return obj.to_wire()
    raise TypeError(f"cannot encode a value of type {type(obj).__name__}")


_packer_options = {"default": _default, "use_bin_type": True, "strict_types": False}


def encode(msg: Any) -> bytes:
    """The wire bytes for a registered message value."""
    tag = getattr(type(msg), "TAG", None)
    if tag is None or _TAGS.get(tag) is not type(msg):
        raise TypeError(f"{type(msg).__name__} is not a registered message")
    return msgpack.packb((PROTOCOL_VERSION, tag, msg), **_packer_options)


# --------------------------------------------------------------------------- decoding


def peek_tag(data: bytes) -> int | None:
    """The message tag of wire bytes without decoding the body (None if not readable)."""
    # [version, tag, body]: fixarray(3), a positive fixint version, then the tag as a
    # positive fixint (< 128) or uint8 (0xcc) or uint16 (0xcd).
    if len(data) < 3 or data[0] != 0x93 or data[1] >= 0x80:
        return None
    t = data[2]
    if t < 0x80:
        return t
    if t == 0xCC and len(data) >= 4:
        return data[3]
    if t == 0xCD and len(data) >= 5:
        return (data[3] << 8) | data[4]
    return None


def decode(data: bytes) -> Any:
    """Validate and rebuild a message from wire bytes; raises only :class:`CodecError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        env = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True,
            max_str_len=MAX_STR, max_bin_len=MAX_BIN, max_array_len=MAX_ARRAY,
            max_map_len=MAX_MAP, max_ext_len=0,
        )
    except Exception as e:
        raise CodecError(f"not a msgpack message: {type(e).__name__}: {e}") from None
    if type(env) is not list or len(env) != 3:
        raise CodecError("not an envelope: expected [version, tag, body]")
    version, tag, body = env
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise CodecError(f"protocol version {version!r} not supported (this side speaks {PROTOCOL_VERSION})")
    cls = _TAGS.get(tag) if type(tag) is int else None
    if cls is None:
        raise CodecError(f"unknown message type tag {tag!r}")
    try:
        return _decoder_for(cls)(body)
    except CodecError:
        raise
    except Exception as e:  # a value our converters did not foresee: still only a CodecError
        raise CodecError(f"{cls.__name__}: invalid value ({type(e).__name__}: {e})") from None


def _decoder_for(cls: type) -> Callable[[Any], Any]:
    dec = _DECODERS.get(cls)
    if dec is None:
        dec = _build_dataclass_decoder(cls)
        _DECODERS[cls] = dec
    return dec


def _fail(msg: str) -> typing.NoReturn:
    raise CodecError(msg)


def _build_dataclass_decoder(cls: type) -> Callable[[Any], Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    convs = [_converter(hints[f.name], f"{cls.__name__}.{f.name}") for f in fields]
    n = len(names)
    pairs = list(zip(names, convs, strict=True))
    cname = cls.__name__

    def decode_dataclass(v: Any) -> Any:
        if type(v) is not list or len(v) != n:
            _fail(f"{cname}: expected an array of {n} fields")
        try:
            return cls(*[c(x) for c, x in zip(convs, v, strict=True)])
        except CodecError:
            for (name, c), x in zip(pairs, v, strict=True):
                try:
                    c(x)
                except CodecError as e:
                    raise CodecError(f"{cname}.{name}: {e}") from None
            raise

    return decode_dataclass


def _converter(tp: Any, where: str) -> Callable[[Any], Any]:
    """A function validating one wire value against annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        if any(isinstance(m, JsonMarker) for m in meta):
            return _json_value
        inner = _converter(base, where)
        checks = [m for m in meta if isinstance(m, Constraint)]
        if not checks:
            return inner

        def constrained(v: Any) -> Any:
            x = inner(v)
            for c in checks:
                err = c.check(x)
                if err:
                    _fail(err)
            return x

        return constrained
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) < len(args):  # Optional[X]
            inner = _converter(non_none[0] if len(non_none) == 1 else Union[tuple(non_none)], where)  # noqa: UP007
            return lambda v: None if v is None else inner(v)
        return _union_converter(non_none, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0], where)

            def seq(v: Any) -> tuple[Any, ...]:
                if type(v) is not list:
                    _fail(f"expected an array, got {_tname(v)}")
                return tuple([item(x) for x in v])

            return seq
        items = [_converter(a, where) for a in args]
        n = len(items)

        def fixed(v: Any) -> tuple[Any, ...]:
            if type(v) is not list or len(v) != n:
                _fail(f"expected an array of {n}, got {_tname(v)}")
            return tuple([c(x) for c, x in zip(items, v, strict=True)])

        return fixed
    if tp is str:
        return _str
    if tp is int:
        return _int
    if tp is float:
        return _float
    if tp is bool:
        return _bool
    if tp is bytes:
        return _bytes
    if tp is Resources:
        return _resources
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_converter(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp in _UNION_TAGS:
            return _union_converter([tp], where)
        return lambda v: _decoder_for(tp)(v)
    raise TypeError(f"{where}: no wire form for annotation {tp!r}")


def _tname(v: Any) -> str:
    return type(v).__name__


def _str(v: Any) -> str:
    if type(v) is not str:
        _fail(f"expected a string, got {_tname(v)}")
    return v


def _int(v: Any) -> int:
    if type(v) is not int:
        _fail(f"expected an integer, got {_tname(v)}")
    return v


def _float(v: Any) -> float:
    t = type(v)
    if t is float:
        if not math.isfinite(v):
            _fail(f"expected a finite number, got {v!r}")
        return v
    if t is int:
        return float(v)
    _fail(f"expected a number, got {_tname(v)}")


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        _fail(f"expected a boolean, got {_tname(v)}")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        _fail(f"expected bytes, got {_tname(v)}")
    return v


def _resources(v: Any) -> Resources:
    try:
        return Resources.from_wire(v)
    except ResourceError as e:
        raise CodecError(f"invalid resources: {e}") from None


def _enum_converter(tp: type[enum.Enum]) -> Callable[[Any], Any]:
    members = {m.value: m for m in tp}
    vtype = type(next(iter(members))) if members else int

    def conv(v: Any) -> Any:
        if type(v) is not vtype:
            _fail(f"expected a {tp.__name__}, got {_tname(v)}")
        m = members.get(v)
        if m is None:
            _fail(f"unknown {tp.__name__} {v!r}")
        return m

    return conv


def _union_converter(members: list[Any], where: str) -> Callable[[Any], Any]:
    by_tag: dict[int, type] = {}
    for m in members:
        if m not in _UNION_TAGS:
            raise TypeError(f"{where}: {m!r} is not a registered union member")
        by_tag[_UNION_TAGS[m]] = m
    names = "/".join(m.__name__ for m in members)

    def conv(v: Any) -> Any:
        if type(v) is not list or len(v) != 2 or type(v[0]) is not int:
            _fail(f"expected a tagged {names}")
        cls = by_tag.get(v[0])
        if cls is None:
            _fail(f"unknown {names} tag {v[0]!r}")
        return _decoder_for(cls)(v[1])

    return conv


def _json_value(v: Any, depth: int = 0) -> Any:
    if depth > MAX_JSON_DEPTH:
        _fail("value nested too deeply")
    t = type(v)
    if v is None or t is bool or t is str or t is int:
        return v
    if t is float:
        if not math.isfinite(v):
            _fail("non-finite number")
        return v
    if t is list:
        for x in v:
            _json_value(x, depth + 1)
        return v
    if t is dict:
        for k, x in v.items():
            if type(k) is not str:
                _fail("map keys must be strings")
            _json_value(x, depth + 1)
        return v
    _fail(f"unsupported value of type {_tname(v)}")


def validate_all() -> None:
    """Compile every decoder now (import-time check that every annotation has a wire form)."""
    for cls in list(_TAGS.values()) + list(_UNION_TAGS):
        _decoder_for(cls)
