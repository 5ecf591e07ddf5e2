"""The simulator from Python: load a scenario, change what you like, run, read the results.

::

    from sim import api

    result = api.run("scenarios/quickstart.toml", {"cluster.agents": 50, "sim.seed": 3},
                     out="results/qs-50")
    rows = api.sweep("scenarios/quickstart.toml", {"seed": [1, 2, 3]}, out="results/qs-sweep")

Overrides are dotted keys into the scenario's tables, with short keys (:data:`SHORT`), and
are validated as a file is.  See docs/simulation.md, 'The Python API'.
"""

from __future__ import annotations

import copy
import itertools
import os
import tomllib
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .runner import Result
from .runner import run as _run
from .scenario import Scenario, ScenarioError, find, parse

SHORT = {"seed": "sim.seed", "allocator": "sim.allocator", "until": "sim.until", "agents": "cluster.agents",
         "service_time": "sim.service_time", "latency": "sim.latency"}


def raw(path_or_name: str) -> tuple[dict[str, Any], str]:
    """The scenario file's tables, unvalidated, and its path."""
    path = find(path_or_name)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh), path
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML: {e}") from None


def override(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the dotted ``key`` set to ``value``."""
    out = copy.deepcopy(data)
    parts = SHORT.get(key, key).split(".")
    cur: Any = out
    try:
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(cur, list):
                cur = cur[int(part)]
            elif isinstance(cur, dict):
                if part not in cur:
                    cur[part] = [] if nxt.isdigit() else {}
                cur = cur[part]
            else:
                raise TypeError(f"{part!r} is inside {cur!r}, not a table")
        last = parts[-1]
        if isinstance(cur, list):
            cur[int(last)] = value
        elif isinstance(cur, dict):
            cur[last] = value
        else:
            raise TypeError(f"{last!r} is inside {cur!r}, not a table")
    except (IndexError, ValueError, TypeError) as e:
        # A list index that is not a number or not there, or a key inside a plain value.
        why = f"no such list item ({e})" if isinstance(e, IndexError | ValueError) else str(e)
        raise ScenarioError(f"override {key!r}: {why}") from None
    return out


def load(path_or_name: str, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a scenario, apply ``overrides``, validate it."""
    data, path = raw(path_or_name)
    for k, v in (overrides or {}).items():
        data = override(data, k, v)
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        return parse(data, name=name, path=path)
    except ScenarioError as e:
        raise ScenarioError(f"{path}: {e}") from None


def run(scenario: Scenario | str, overrides: dict[str, Any] | None = None, out: str | None = None,
        seed: int | None = None, progress: bool = False, plots: bool = True) -> Result:
    """Run a scenario (a path, a name in ./scenarios, or a loaded :class:`Scenario`)."""
    sc = load(scenario, overrides) if isinstance(scenario, str) else scenario
    return _run(sc, seed=seed, out_dir=out, progress=progress, plots=plots)


def expand(params: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the swept values, in a stable order."""
    keys = list(params)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(params[k] for k in keys))]


def label(point: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items()) or "run"


def _one(args: tuple[str, dict[str, Any], str | None]) -> dict[str, Any]:
    path, point, out = args
    res = run(path, point, out=os.path.join(out, _safe(label(point))) if out else None)
    s = res.summary
    row: dict[str, Any] = {"run": label(point), **point}
    for k in ("tasks_submitted", "tasks_finished", "tasks_failed", "tasks_lost", "tasks_running", "tasks_pending",
              "virtual_seconds", "wall_seconds", "messages", "offers", "peak_master_queue"):
        row[k] = s[k]
    lat = s["scheduling_latency"]
    row["latency_p50"], row["latency_p99"] = lat["p50"], lat["p99"]
    for fw, v in s["per_framework"].items():
        row[f"latency_p50[{fw}]"] = v["scheduling_latency"]["p50"]
    for role, v in s["roles"].items():
        row[f"mean_share[{role}]"] = v["mean_share"]
    row["digest"] = s["digest"][:12]
    return row


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in text)


def sweep(path: str, params: dict[str, list[Any]], out: str | None = None,
          processes: int | None = None) -> list[dict[str, Any]]:
    """Run the scenario once per combination of ``params``, in parallel processes; one row each."""
    points = expand(params)
    for p in points:
        load(path, p)  # every point must be valid before anything runs
    work = [(path, p, out) for p in points]
    n = processes or min(len(points), os.cpu_count() or 1)
    if n <= 1 or len(points) == 1:
        return [_one(w) for w in work]
    with ProcessPoolExecutor(max_workers=n) as pool:
        return list(pool.map(_one, work))


def parse_sweep(items: list[str]) -> dict[str, list[Any]]:
    """``["seed=1..10", "allocator=drf,random"]`` -> ``{"seed": [1..10], "allocator": [...]}``."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--sweep takes KEY=VALUES (a..b or a,b,c), got {item!r}")
        if ".." in values and "," not in values:
            lo, _, hi = values.partition("..")
            try:
                a, b = int(lo), int(hi)
            except ValueError:
                raise ValueError(f"--sweep {key}: a range is two integers, got {values!r}") from None
            out[key] = list(range(a, b + 1))
        else:
            out[key] = [_value(v.strip()) for v in _split_top(values) if v.strip()]
        if not out[key]:
            raise ValueError(f"--sweep {key}: no values in {values!r}")
    return out


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses and brackets: ``uniform(1m,2m),fixed(1m)``
    is two values."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["cluster.agents=3000", "sim.until=1h"]`` -> ``{"cluster.agents": 3000, "sim.until": "1h"}``
    (numbers and true/false become numbers and booleans; the rest stays text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        out[key.strip()] = _value(text.strip())
    return out


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text in ("true", "false"):
        return text == "true"
    return text
