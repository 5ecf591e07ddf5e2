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

from actors.protocol.resources import ResourceError, Resources, forget_resource_shapes, role_error

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
        _MSG_TAGS[cls] = tag
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


def tag_of(cls: type) -> int:
    """The wire tag of a registered message type."""
    return _MSG_TAGS[cls]


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


_MSG_TAGS: dict[type, int] = {}
_packb = msgpack.Packer(**_packer_options).pack


def encode(msg: Any) -> bytes:
    """The wire bytes for a registered message value."""
    tag = _MSG_TAGS.get(type(msg))
    if tag is None:
        raise TypeError(f"{type(msg).__name__} is not a registered message")
    return _packb((PROTOCOL_VERSION, tag, msg))


def pack_value(value: Any) -> bytes:
    """The msgpack bytes of a value type (``@value`` dataclass, ``Resources``, a tuple of
    them) without an envelope: for records kept on disk (registry, checkpoints)."""
    return _packb((PROTOCOL_VERSION, value))


def unpack_value(cls: type, data: Any) -> Any:
    """The ``cls`` value ``pack_value`` wrote, validated as a message would be; raises
    only :class:`CodecError`."""
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_MESSAGE_BYTES:
        raise CodecError("expected a packed value")
    try:
        env = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=False, max_str_len=MAX_STR,
                              max_bin_len=MAX_BIN, max_array_len=MAX_ARRAY, max_map_len=MAX_MAP)
    except Exception as e:
        raise CodecError(f"not a packed value: {type(e).__name__}: {e}") from None
    if type(env) is not tuple or len(env) != 2 or env[0] != PROTOCOL_VERSION:
        raise CodecError("not a packed value of this protocol version")
    try:
        return _decoder_for(cls)(env[1])
    except CodecError:
        raise
    except Exception as e:
        raise CodecError(f"{cls.__name__}: invalid value ({type(e).__name__}: {e})") from None


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


#: Small messages that repeat byte for byte (pings, pongs, heartbeats) are decoded once:
#: a message value is immutable, so the same bytes can give the same value.
_MEMO: dict[bytes, Any] = {}
_MEMO_TAGS: set[int] = set()
MEMO_MAX_BYTES = 64
MEMO_MAX_ENTRIES = 200_000


#: Value types decoded once per distinct wire form (commands, framework infos: a cluster
#: has few of them and sends them over and over), at most INTERN_MAX of each.
_INTERNED: set[type] = set()
INTERN_MAX = 4096
_INTERN_MEMOS: list[dict[Any, Any]] = []


def intern_values(*classes: type) -> None:
    """Decode these value types once per distinct wire form: a later equal one gives the
    same (immutable) value.  Their fields must be strings, numbers, enums, or arrays of
    strings or of fixed string tuples (no Resources, maps or nested values): equal wire
    forms must then be the same input, but for numbers and booleans (``1 == True``), whose
    types are checked again on every hit.  Call before any decoder is compiled."""
    for cls in classes:
        _interned_checks(cls)   # raises TypeError on a field that cannot be interned
        if cls in _DECODERS:
            raise RuntimeError(f"{cls.__name__}: its decoder is compiled already")
        _INTERNED.add(cls)


def forget_decoded() -> None:
    """Forget every value decoded once and shared (repeated small messages, interned
    values, resource shapes): each is built again when it next arrives.  For tests that
    need room in the bounded memos, and for a process that wants the memory back."""
    _MEMO.clear()
    for memo in _INTERN_MEMOS:
        memo.clear()
    forget_resource_shapes()


def _interned_checks(cls: type) -> list[str]:
    """For an interned class: the checks a memo hit must pass (exact types of numbers)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    checks: list[str] = []
    for i, f in enumerate(dataclasses.fields(cls)):
        tp = hints[f.name]
        optional = False
        if typing.get_origin(tp) in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"{cls.__name__}.{f.name}: a union cannot be interned")
            tp, optional = args[0], True
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        check = None
        if tp is str or (isinstance(tp, type) and issubclass(tp, enum.Enum) and not issubclass(tp, int)):
            pass
        elif tp is bool:
            check = f"v[{i}].__class__ is _bool"
        elif tp is int or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
            check = f"v[{i}].__class__ is _int"
        elif tp is float:
            check = f"v[{i}].__class__ is not _bool"
        elif typing.get_origin(tp) is tuple and len(typing.get_args(tp)) == 2 \
                and typing.get_args(tp)[1] is Ellipsis:
            item = typing.get_args(tp)[0]
            if typing.get_origin(item) is typing.Annotated:
                item = typing.get_args(item)[0]
            if not (item is str or _str_pair(item)
                    or (isinstance(item, type) and issubclass(item, enum.Enum) and not issubclass(item, int))):
                raise TypeError(f"{cls.__name__}.{f.name}: an array of {item!r} cannot be interned")
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: {tp!r} cannot be interned")
        if check is not None:
            checks.append(f"(v[{i}] is None or {check})" if optional else check)
    return checks


def memoize(*classes: type) -> None:
    """Decode these message types once per distinct (small) byte string."""
    for cls in classes:
        _MEMO_TAGS.add(_MSG_TAGS[cls])


def decode(data: bytes) -> Any:
    """Validate and rebuild a message from wire bytes; raises only :class:`CodecError`."""
    if type(data) is bytes and len(data) <= MEMO_MAX_BYTES:
        hit = _MEMO.get(data)
        if hit is not None:
            return hit
        if peek_tag(data) in _MEMO_TAGS:
            value = _decode(data)
            if len(_MEMO) < MEMO_MAX_ENTRIES:
                _MEMO[data] = value
            return value
    return _decode(data)


def _decode(data: bytes) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        env = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=False,
            max_str_len=MAX_STR, max_bin_len=MAX_BIN, max_array_len=MAX_ARRAY,
            max_map_len=MAX_MAP, max_ext_len=0,
        )
    except Exception as e:
        raise CodecError(f"not a msgpack message: {type(e).__name__}: {e}") from None
    if type(env) is not tuple or len(env) != 3:
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
        dec = _compile_dataclass_decoder(cls)
        _DECODERS[cls] = dec
    return dec


def _fail(msg: str) -> typing.NoReturn:
    raise CodecError(msg)


def _tname(v: Any) -> str:
    return type(v).__name__


# --------------------------------------------------------------------------- the decoder compiler
#
# Each dataclass gets one straight-line function, generated from its
# annotations: unpack the field array, check and convert each field in place,
# then fill the slots of a new object directly (no __init__ call).  Nested
# dataclasses, sequences of non-strings and unions call helpers compiled the
# same way.  Every failure raises CodecError naming the field.

_ROLE_CACHE: set[str] = {"*"}
_ROLE_CACHE_MAX = 10_000


def _check_role_cached(value: str, where: str) -> None:
    err = role_error(value)
    if err:
        _fail(f"{where}: {err}")
    if len(_ROLE_CACHE) < _ROLE_CACHE_MAX:
        _ROLE_CACHE.add(value)


def _id_fail(value: str, where: str) -> typing.NoReturn:
    _fail(f"{where}: {id_error(value) or 'an id may not be empty'}")


def _float_fail(v: Any, where: str) -> typing.NoReturn:
    if type(v) is float:
        _fail(f"{where}: expected a finite number, got {v!r}")
    _fail(f"{where}: expected a number, got {_tname(v)}")


def _resources_at(v: Any, where: str) -> Resources:
    try:
        return Resources.from_wire(v)
    except ResourceError as e:
        raise CodecError(f"{where}: invalid resources: {e}") from None


def _json_at(v: Any, where: str) -> Any:
    try:
        return _json_value(v)
    except CodecError as e:
        raise CodecError(f"{where}: {e}") from None


def _str_pair(tp: Any) -> bool:
    """``tp`` is a fixed tuple of plain strings (``tuple[str, str]``)."""
    return typing.get_origin(tp) is tuple and all(a is str for a in typing.get_args(tp))


class _Compiler:
    def __init__(self) -> None:
        self.ns: dict[str, Any] = {
            "CodecError": CodecError, "_fail": _fail, "_tname": _tname, "_isfinite": math.isfinite,
            "_id_bad": _ID_BAD.search, "_id_fail": _id_fail, "_roles_ok": _ROLE_CACHE,
            "_check_role": _check_role_cached, "_float_fail": _float_fail,
            "_resources": _resources_at, "_json": _json_at, "_new": object.__new__,
            "_arr": tuple, "_str": str, "_int": int, "_float": float, "_bool": bool, "_bytes": bytes,
            "_tuple": tuple, "_none": None,
        }
        self.n = 0

    def bind(self, obj: Any, hint: str = "o") -> str:
        self.n += 1
        name = f"_{hint}{self.n}"
        self.ns[name] = obj
        return name

    def emit(self, tp: Any, var: str, where: str, out: list[str], pad: str) -> None:
        """Append lines that check ``var`` against ``tp`` and rebind it to the converted value."""
        w = repr(where)
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *meta = typing.get_args(tp)
            if any(isinstance(m, JsonMarker) for m in meta):
                out.append(f"{pad}{var} = _json({var}, {w})")
                return
            self.emit(base, var, where, out, pad)
            for m in meta:
                if isinstance(m, _IdConstraint):
                    if m.allow_empty:
                        out.append(f"{pad}if {var} and (len({var}) > 255 or {var} == '.' or {var} == '..' "
                                   f"or _id_bad({var})): _id_fail({var}, {w})")
                    else:
                        out.append(f"{pad}if not {var} or len({var}) > 255 or {var} == '.' or {var} == '..' "
                                   f"or _id_bad({var}): _id_fail({var}, {w})")
                elif isinstance(m, _RoleConstraint):
                    out.append(f"{pad}if {var} not in _roles_ok: _check_role({var}, {w})")
                elif isinstance(m, _NonNegative):
                    out.append(f"{pad}if {var} < 0: _fail({w} + ': must not be negative, got ' + repr({var}))")
                elif isinstance(m, Constraint):
                    c = self.bind(m, "c")
                    out.append(f"{pad}_err = {c}.check({var})")
                    out.append(f"{pad}if _err: _fail({w} + ': ' + _err)")
            return
        if origin in (Union, types.UnionType):
            args = typing.get_args(tp)
            non_none = [a for a in args if a is not type(None)]
            if len(non_none) < len(args):
                out.append(f"{pad}if {var} is not None:")
                inner = non_none[0] if len(non_none) == 1 else Union[tuple(non_none)]  # noqa: UP007
                self.emit(inner, var, where, out, pad + "    ")
                return
            fn = self.bind(self.union(non_none, where), "u")
            out.append(f"{pad}{var} = {fn}({var})")
            return
        if origin is tuple:
            args = typing.get_args(tp)
            out.append(f"{pad}if {var}.__class__ is not _arr: "
                       f"_fail({w} + ': expected an array, got ' + _tname({var}))")
            if len(args) == 2 and args[1] is Ellipsis:
                item = args[0]
                # Arrays arrive as tuples: strings, and fixed tuples of plain strings
                # (labels, environment), are checked where they lie and kept as they are.
                if item is str:
                    out.append(f"{pad}for _x in {var}:")
                    out.append(f"{pad}    if _x.__class__ is not _str: "
                               f"_fail({w} + ': expected strings, got ' + _tname(_x))")
                elif _str_pair(item):
                    n = len(typing.get_args(item))
                    cond = " or ".join(f"_x[{i}].__class__ is not _str" for i in range(n))
                    out.append(f"{pad}for _x in {var}:")
                    out.append(f"{pad}    if _x.__class__ is not _arr or len(_x) != {n} or {cond}: "
                               f"_fail({w} + ': expected arrays of {n} strings')")
                elif isinstance(item, type) and dataclasses.is_dataclass(item) and item not in _UNION_TAGS:
                    # An array of values: their decoder straight in the loop, one handler
                    # to name the field on a failure.
                    fn = self.bind(_decoder_for(item), "d")
                    out.append(f"{pad}try:")
                    out.append(f"{pad}    {var} = _tuple([{fn}(_x) for _x in {var}])")
                    out.append(f"{pad}except CodecError as _ce:")
                    out.append(f"{pad}    _fail({w} + ': ' + str(_ce))")
                else:
                    fn = self.bind(self.function(item, where), "f")
                    out.append(f"{pad}{var} = _tuple([{fn}(_x) for _x in {var}])")
                return
            fns = [self.bind(self.function(a, f"{where}[{i}]"), "f") for i, a in enumerate(args)]
            out.append(f"{pad}if len({var}) != {len(args)}: "
                       f"_fail({w} + ': expected an array of {len(args)}')")
            out.append(f"{pad}{var} = (" + "".join(f"{fn}({var}[{i}]), " for i, fn in enumerate(fns)) + ")")
            return
        simple = {str: "_str", int: "_int", bool: "_bool", bytes: "_bytes"}
        if tp in simple:
            kind = {str: "a string", int: "an integer", bool: "a boolean", bytes: "bytes"}[tp]
            out.append(f"{pad}if {var}.__class__ is not {simple[tp]}: "
                       f"_fail({w} + ': expected {kind}, got ' + _tname({var}))")
            return
        if tp is float:
            out.append(f"{pad}if {var}.__class__ is _float:")
            out.append(f"{pad}    if not _isfinite({var}): _float_fail({var}, {w})")
            out.append(f"{pad}elif {var}.__class__ is _int: {var} = _float({var})")
            out.append(f"{pad}else: _float_fail({var}, {w})")
            return
        if tp is Resources:
            out.append(f"{pad}{var} = _resources({var}, {w})")
            return
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            members = {m.value: m for m in tp}
            vtype = type(next(iter(members)))
            table = self.bind(members, "e")
            vt = self.bind(vtype, "t")
            out.append(f"{pad}_m = {table}.get({var}) if {var}.__class__ is {vt} else None")
            out.append(f"{pad}if _m is None: _fail({w} + ': unknown {tp.__name__} ' + repr({var}))")
            out.append(f"{pad}{var} = _m")
            return
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if tp in _UNION_TAGS:
                fn = self.bind(self.union([tp], where), "u")
            else:
                fn = self.bind(_decoder_for(tp), "d")
            out.append(f"{pad}try:")
            out.append(f"{pad}    {var} = {fn}({var})")
            out.append(f"{pad}except CodecError as _ce:")
            out.append(f"{pad}    _fail({w} + ': ' + str(_ce))")
            return
        raise TypeError(f"{where}: no wire form for annotation {tp!r}")

    def function(self, tp: Any, where: str) -> Callable[[Any], Any]:
        """A compiled converter for one value of annotation ``tp``."""
        out = ["def conv(x):"]
        self.emit(tp, "x", where, out, "    ")
        out.append("    return x")
        return self.compile(out, "conv", where)

    def union(self, members: list[Any], where: str) -> Callable[[Any], Any]:
        by_tag: dict[int, Callable[[Any], Any]] = {}
        for m in members:
            if m not in _UNION_TAGS:
                raise TypeError(f"{where}: {m!r} is not a registered union member")
            by_tag[_UNION_TAGS[m]] = _decoder_for(m)
        names = "/".join(m.__name__ for m in members)

        def conv(v: Any) -> Any:
            if type(v) is not tuple or len(v) != 2 or type(v[0]) is not int:
                _fail(f"{where}: expected a tagged {names}")
            dec = by_tag.get(v[0])
            if dec is None:
                _fail(f"{where}: unknown {names} tag {v[0]!r}")
            return dec(v[1])

        return conv

    def dataclass(self, cls: type) -> Callable[[Any], Any]:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = dataclasses.fields(cls)
        n = len(fields)
        cname = cls.__name__
        c = self.bind(cls, "cls")
        out = ["def dec(v):",
               f"    if v.__class__ is not _arr or len(v) != {n}: "
               f"_fail('{cname}: expected an array of {n} fields')"]
        names = [f"f{i}" for i in range(n)]
        memo = None
        if cls in _INTERNED:
            shared: dict[Any, Any] = {}
            _INTERN_MEMOS.append(shared)
            memo = self.bind(shared, "memo")
            checks = " and ".join(["o is not None", *_interned_checks(cls)])
            out[1:1] = ["    try:", f"        o = {memo}.get(v)",
                        "    except TypeError:",   # holds a map: not an input of this type
                        "        o = None",
                        f"    if {checks}: return o"]
        if n:
            out.append(f"    {', '.join(names)}, = v")
        for i, f in enumerate(fields):
            self.emit(hints[f.name], names[i], f"{cname}.{f.name}", out, "    ")
        out.append(f"    o = _new({c})")
        for i, f in enumerate(fields):
            setter = self.bind(cls.__dict__[f.name].__set__, "s")  # the slot's descriptor
            out.append(f"    {setter}(o, {names[i]})")
        if memo is not None:
            out.append(f"    if len({memo}) < {INTERN_MAX}: {memo}[v] = o")
        out.append("    return o")
        return self.compile(out, "dec", cname)

    def compile(self, lines: list[str], name: str, where: str) -> Callable[[Any], Any]:
        source = "\n".join(lines)
        code = compile(source, f"<codec {where}>", "exec")
        exec(code, self.ns)
        fn: Callable[[Any], Any] = self.ns.pop(name)
        return fn


_COMPILER = _Compiler()


def _compile_dataclass_decoder(cls: type) -> Callable[[Any], Any]:
    return _COMPILER.dataclass(cls)


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
    if t is tuple:   # arrays arrive as tuples; a JSON tree holds lists
        return [_json_value(x, depth + 1) for x in v]
    if t is dict:
        for k, x in v.items():
            if type(k) is not str:
                _fail("map keys must be strings")
            v[k] = _json_value(x, depth + 1)
        return v
    _fail(f"unsupported value of type {_tname(v)}")


def validate_all() -> None:
    """Compile every decoder now (import-time check that every annotation has a wire form)."""
    for cls in list(_TAGS.values()) + list(_UNION_TAGS):
        _decoder_for(cls)
