"""``/metrics`` for Prometheus: a ``/metrics/snapshot`` (Mesos' names, flat JSON) written
in the text exposition format through ``prometheus_client``.

Names follow Prometheus' practice: an ``impresario_`` prefix, ``/`` as ``_``, base units
(seconds, bytes, ratios 0-1), ``_total`` on counters; a role, resource or reason is a
label, not part of the name.  The allocator's run time is a histogram of seconds.  The
full mapping is in docs/operators.md ('Prometheus').
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

PREFIX = "impresario_"
#: The classic text format (0.0.4), which every Prometheus server reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MIB = 2**20
#: Snapshot names (after ``master/`` or ``slave/``) that count since start: counters.
_COUNTED = re.compile(r"^(tasks_(finished|failed|killed|lost|error|dropped|gone|gone_by_operator)"
                      r"|messages_.*|offers_.*|tasks_launched|tasks_refused|status_updates|executors_terminated"
                      r"|valid_.*|invalid_.*)$")
_RESOURCE = re.compile(r"^(master|slave)/(cpus|mem|disk|gpus)_(total|used|percent)$")


def _name(text: str) -> str:
    return PREFIX + re.sub(r"[^a-zA-Z0-9_]", "_", text.replace("/", "_"))


class _Families:
    def __init__(self) -> None:
        self.by_name: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

    def add(self, kind: str, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        fam = self.by_name.get(name)
        if fam is None:
            fam = self.by_name[name] = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, doc, labels=sorted(labels))
        fam.add_metric([labels[k] for k in sorted(labels)], value)


def families(snapshot: dict[str, Any], histogram: dict[str, Any] | None = None) -> list[Metric]:
    """The snapshot's figures as Prometheus metric families."""
    out = _Families()
    for key, value in sorted(snapshot.items()):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        v = float(value)
        m = _RESOURCE.match(key)
        if m:
            who, res, kind = m.groups()
            unit = "_bytes" if res in ("mem", "disk") else ""
            scale = MIB if unit else 1
            if kind == "percent":
                out.add("gauge", _name(f"{who}/{res}_used_ratio"), f"{key}: used / total", {}, v)
            else:
                name = "capacity" if kind == "total" else "used"
                out.add("gauge", _name(f"{who}/{res}_{name}{unit}"), f"{key} (in {'bytes' if unit else res})",
                        {}, v * scale)
            continue
        if key.startswith("master/messages_dropped/"):
            out.add("counter", _name("master/messages_dropped_by_reason"), "messages dropped, by reason",
                    {"reason": key.split("/", 2)[2]}, v)
            continue
        if key.startswith("allocator/mesos/allocation_run_ms"):
            continue   # the histogram below
        m = re.match(r"^allocator/mesos/roles/(.+)/shares/dominant$", key)
        if m:
            out.add("gauge", _name("allocator/role_dominant_share"), "a role's dominant share (0-1)",
                    {"role": m.group(1)}, v)
            continue
        m = re.match(r"^allocator/mesos/quota/roles/(.+)/resources/([^/]+)/([^/]+)$", key)
        if m:
            role, res, kind = m.groups()
            out.add("gauge", _name(f"allocator/quota_{kind}"), f"a role's quota {kind} (mem, disk in bytes)",
                    {"role": role, "resource": res}, v * _scale(res))
            continue
        m = re.match(r"^allocator/mesos/resources/([^/]+)/([^/]+)$", key)
        if m:
            res, kind = m.groups()
            out.add("gauge", _name(f"allocator/resources_{'capacity' if kind == 'total' else kind}"),
                    f"the cluster's {kind} resources (mem, disk in bytes)", {"resource": res}, v * _scale(res))
            continue
        if key == "allocator/mesos/allocation_runs":
            out.add("counter", _name("allocator/allocation_runs"), "allocation runs", {}, v)
            continue
        if key.endswith("/uptime_secs"):
            out.add("gauge", _name(key[: -len("_secs")] + "_seconds"), key, {}, v)
            continue
        who, _, rest = key.partition("/")
        if _COUNTED.match(rest):
            out.add("counter", _name(key), key, {}, v)
        else:
            out.add("gauge", _name(key), key, {}, v)
    fams: list[Metric] = list(out.by_name.values())
    if histogram:
        buckets = [(_le(b), float(n)) for b, n in histogram["buckets"]]
        fams.append(HistogramMetricFamily(_name("allocator/allocation_run_seconds"),
                                          "how long allocation runs take", buckets=buckets,
                                          sum_value=float(histogram["sum"])))
    return fams


def _scale(resource: str) -> float:
    return MIB if resource in ("mem", "disk") else 1


def _le(bound: float | str) -> str:
    return "+Inf" if bound in ("+Inf", float("inf")) else repr(float(bound))


class _Snapshot(Collector):
    def __init__(self, fams: Iterable[Metric]) -> None:
        self.fams = list(fams)

    def collect(self) -> Iterator[Metric]:
        yield from self.fams


def exposition(snapshot: dict[str, Any], histogram: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """The text exposition of a snapshot, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families(snapshot, histogram)))
    return generate_latest(registry), CONTENT_TYPE
