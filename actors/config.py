"""Settings and plug-ins: what an actor is configured with, read with a clear error."""

from __future__ import annotations

import importlib
from typing import Any


class ConfigError(ValueError):
    """Settings or ports an actor cannot start with."""


_LOADED: dict[str, Any] = {}


def load_object(path: str) -> Any:
    """Import ``"package.module:name"`` (or ``"package.module.name"``); each path once."""
    if type(path) is str:
        hit = _LOADED.get(path)
        if hit is not None:
            return hit
    if not isinstance(path, str) or not path:
        raise ConfigError(f"not a dotted path: {path!r}")
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    else:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise ConfigError(f"not a dotted path: {path!r} (expected package.module:name)")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"cannot import {mod_name!r} for {path!r}: {e}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{mod_name!r} has no attribute {attr!r}") from None
    _LOADED[path] = obj
    return obj


def setting(settings: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """Read one setting with a type check, raising :class:`ConfigError` with the key's name."""
    if key not in settings:
        if default is ...:
            raise ConfigError(f"missing setting {key!r}")
        return default
    v = settings[key]
    if kind is float and type(v) is int:
        v = float(v)
    if not isinstance(v, kind) or (kind is not bool and type(v) is bool and kind in (int, float)):
        raise ConfigError(f"setting {key!r} has the wrong type: {type(v).__name__}")
    return v
