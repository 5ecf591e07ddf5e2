"""Shared by tests/unit and tests/cluster: acl."""

from __future__ import annotations

import copy
from typing import Any

ANY = {"type": "ANY"}

BASE: dict[str, Any] = {
    "sim": {"seed": 5, "until": "1h"},
    "cluster": {"agents": 4, "agent": {"cpus": 4, "mem": "8GiB", "disk": "10GiB"}},
    "frameworks": [
        {"name": "web", "roles": ["eng/web"], "principal": "alice", "user": "alice", "tasks": 20,
         "task": {"cpus": 1, "mem": "1GiB", "duration": "30s"}},
        {"name": "batch", "roles": ["eng/batch"], "principal": "bob", "tasks": 10,
         "task": {"cpus": 1, "mem": "1GiB", "duration": "30s", "user": "root"}},
        {"name": "rogue", "roles": ["prod"], "principal": "eve", "tasks": 5,
         "task": {"cpus": 1, "mem": "1GiB", "duration": "30s"}},
    ],
    "acls": {
        "permissive": False,
        "register_agents": [{"principals": ANY}],
        "register_frameworks": [{"principals": {"values": ["alice", "bob"]}, "roles": {"values": ["eng/*"]}}],
        "run_tasks": [{"principals": {"values": ["alice"]}, "users": {"values": ["alice"]}},
                      {"principals": {"values": ["bob"]}, "users": ANY}],
    },
}


def scenario(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        table, _, name = key.partition(".")
        if value is None:
            doc[table].pop(name) if name else doc.pop(table)
        elif name:
            doc.setdefault(table, {})[name] = value
        else:
            doc[table] = value
    return doc
