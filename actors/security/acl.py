"""Authorization: access control lists in the shape of Mesos' local authorizer.

An ACL document (JSON on a real host, an ``[acls]`` table in a scenario) lists, per action
(:data:`ACTIONS`), rules of a subject (``principals``) and an object (roles, users or
framework principals).  The first rule that matches decides, granting unless one of its
entities is ``NONE``; when none matches, ``permissive`` decides (default true).  Root is
never granted by ``ANY`` nor by ``permissive``: only a ``run_tasks`` rule naming ``"root"``.

Pure code: no files.  The master reads the parsed document from its ``acls`` setting; an
agent may have one too (``run_tasks`` only).  See docs/security.md, 'Principals and ACLs'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.protocol.codec import id_error
from actors.protocol.resources import DEFAULT_ROLE, role_error

ANY = "ANY"
NONE = "NONE"
SOME = "SOME"
ROOT = "root"

REGISTER_AGENTS = "register_agents"
REGISTER_FRAMEWORKS = "register_frameworks"
RUN_TASKS = "run_tasks"
TEARDOWN_FRAMEWORKS = "teardown_frameworks"
UPDATE_WEIGHTS = "update_weights"
UPDATE_QUOTAS = "update_quotas"
VIEW_FRAMEWORKS = "view_frameworks"
VIEW_TASKS = "view_tasks"
VIEW_AGENTS = "view_agents"
ACCESS_SANDBOXES = "access_sandboxes"

#: action -> (its object's key, the kind of names the object holds)
ACTIONS: dict[str, tuple[str, str]] = {
    REGISTER_AGENTS: ("agents", "none"),
    REGISTER_FRAMEWORKS: ("roles", "role"),
    RUN_TASKS: ("users", "user"),
    TEARDOWN_FRAMEWORKS: ("framework_principals", "principal"),
    UPDATE_WEIGHTS: ("roles", "role"),
    UPDATE_QUOTAS: ("roles", "role"),
    # Reads over HTTP (docs/operators.md): frameworks, tasks and sandboxes by the user
    # they run as; agents as a whole.
    VIEW_FRAMEWORKS: ("users", "user"),
    VIEW_TASKS: ("users", "user"),
    VIEW_AGENTS: ("agents", "none"),
    ACCESS_SANDBOXES: ("users", "user"),
}
#: The most decisions an :class:`ACL` remembers (then it forgets them all).
CACHE_SIZE = 4096


class ACLError(ValueError):
    """An ACL document that cannot be used, and why (naming the place in it)."""


@dataclass(frozen=True, slots=True)
class Entity:
    """``ANY``, ``NONE``, or ``SOME`` names (and, for roles, subtrees: ``"eng/"`` for ``"eng/*"``)."""

    kind: str
    values: frozenset[str] = frozenset()
    subtrees: tuple[str, ...] = ()

    def matches(self, name: str | None) -> bool:
        if self.kind != SOME:
            return True
        if name is None:
            return False
        return name in self.values or any(name.startswith(p) for p in self.subtrees)

    def names(self, name: str) -> bool:
        """Whether the list names ``name`` itself (not through a subtree)."""
        return self.kind == SOME and name in self.values

    def to_dict(self) -> dict[str, Any]:
        if self.kind != SOME:
            return {"type": self.kind}
        return {"values": sorted(self.values) + sorted(p + "*" for p in self.subtrees)}


@dataclass(frozen=True, slots=True)
class Rule:
    action: str
    index: int
    principals: Entity
    object: Entity

    @property
    def name(self) -> str:
        return f"{self.action}[{self.index}]"

    @property
    def grants(self) -> bool:
        return self.principals.kind != NONE and self.object.kind != NONE


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request; false when denied.  ``reason`` says why, naming the
    principal, the object and the rule (``run_tasks[2]``) or the default that decided."""

    allowed: bool
    action: str
    principal: str | None
    object: str | None
    rule: str | None = None        #: the rule that decided; None: the default

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def reason(self) -> str:
        who = f"principal {self.principal!r}" if self.principal is not None else \
            "a caller with no principal"
        what = _request_text(self.action, self.object)
        if self.allowed:
            how = f"granted by the ACL rule {self.rule}" if self.rule else "granted: the ACL is permissive"
            return f"{who} may {what}: {how}"
        if self.rule is not None:
            how = f"denied by the ACL rule {self.rule}"
        elif self.action == RUN_TASKS and self.object == ROOT:
            how = "user 'root' is granted only by a run_tasks rule that names it"
        else:
            how = f"no {self.action} rule matches and the ACL is not permissive"
        return f"{who} may not {what}: {how}"


def _request_text(action: str, obj: str | None) -> str:
    if action == REGISTER_AGENTS:
        return "register an agent"
    if action == VIEW_AGENTS:
        return "view agents"
    if action in (VIEW_FRAMEWORKS, VIEW_TASKS, ACCESS_SANDBOXES):
        what = {VIEW_FRAMEWORKS: "view frameworks", VIEW_TASKS: "view tasks",
                ACCESS_SANDBOXES: "access sandboxes"}[action]
        return f"{what} of user {obj!r}" if obj else f"{what} that name no user"
    if action == REGISTER_FRAMEWORKS:
        return f"register a framework in role {obj!r}"
    if action == RUN_TASKS:
        return f"run tasks as user {obj!r}" if obj else "run tasks as the agent's user (a task that names no user)"
    if action == TEARDOWN_FRAMEWORKS:
        return f"tear down a framework of principal {obj!r}" if obj else "tear down a framework with no principal"
    if action == UPDATE_WEIGHTS:
        return f"update the weight of role {obj!r}"
    if action == UPDATE_QUOTAS:
        return f"update the quota of role {obj!r}"
    return f"{action} {obj!r}"


class ACL:
    """Parsed ACLs: :meth:`check` answers a request with a :class:`Decision`."""

    __slots__ = ("_cache", "permissive", "rules")

    def __init__(self, permissive: bool = True, rules: Mapping[str, tuple[Rule, ...]] | None = None) -> None:
        self.permissive = permissive
        self.rules: dict[str, tuple[Rule, ...]] = {a: tuple((rules or {}).get(a, ())) for a in ACTIONS}
        self._cache: dict[tuple[str, str | None, str | None], Decision] = {}

    # ------------------------------------------------------------------ parsing

    @classmethod
    def parse(cls, doc: Any, where: str = "acls") -> ACL:
        """An ACL from its document (a parsed JSON object); :class:`ACLError` says what is wrong."""
        if isinstance(doc, ACL):
            return doc
        if not isinstance(doc, Mapping):
            raise ACLError(f"{where}: expected an object of actions, got {type(doc).__name__}")
        known = {"permissive", *ACTIONS}
        for key in doc:
            if key not in known:
                raise ACLError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        permissive = doc.get("permissive", True)
        if type(permissive) is not bool:
            raise ACLError(f"{where}.permissive must be true or false, got {permissive!r}")
        rules: dict[str, tuple[Rule, ...]] = {}
        for action, (obj_key, kind) in ACTIONS.items():
            items = doc.get(action, [])
            if not isinstance(items, list | tuple):
                raise ACLError(f"{where}.{action} must be a list of rules")
            parsed = []
            for i, item in enumerate(items):
                here = f"{where}.{action}[{i}]"
                if not isinstance(item, Mapping):
                    raise ACLError(f"{here} must be an object with principals and {obj_key}")
                for key in item:
                    if key not in ("principals", obj_key):
                        raise ACLError(f"{here}: unknown key {key!r} (expected principals and {obj_key})")
                if "principals" not in item:
                    raise ACLError(f"{here}: missing principals")
                if obj_key not in item and kind != "none":
                    raise ACLError(f"{here}: missing {obj_key}")
                subject = _entity(item["principals"], f"{here}.principals", "principal")
                obj = _entity(item.get(obj_key, {"type": ANY}), f"{here}.{obj_key}", kind)
                parsed.append(Rule(action, i, subject, obj))
            rules[action] = tuple(parsed)
        return cls(permissive, rules)

    @classmethod
    def loads(cls, text: str | bytes, where: str = "acls") -> ACL:
        """An ACL from JSON text."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ACLError(f"{where}: not JSON: {e}") from None
        return cls.parse(doc, where)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"permissive": self.permissive}
        for action, (obj_key, _) in ACTIONS.items():
            if self.rules[action]:
                out[action] = [{"principals": r.principals.to_dict(), obj_key: r.object.to_dict()}
                               for r in self.rules[action]]
        return out

    # ------------------------------------------------------------------ deciding

    def check(self, action: str, principal: str | None, obj: str | None = None) -> Decision:
        """May ``principal`` (None: none known) do ``action`` on ``obj``?"""
        key = (action, principal, obj)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        decision = self._decide(action, principal, obj)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = decision
        return decision

    def _decide(self, action: str, principal: str | None, obj: str | None) -> Decision:
        root = action == RUN_TASKS and obj == ROOT
        for rule in self.rules[action]:
            if not rule.principals.matches(principal):
                continue
            o = rule.object
            if root and o.kind == ANY and rule.grants:
                continue          # ANY never grants root: only a rule naming it does
            if not o.matches(obj):
                continue
            return Decision(rule.grants, action, principal, obj, rule.name)
        return Decision(self.permissive and not root, action, principal, obj)

    def allows(self, action: str, principal: str | None, obj: str | None = None) -> bool:
        return self.check(action, principal, obj).allowed

    def first_denial(self, action: str, principal: str | None, objects: Any) -> Decision | None:
        """The first of ``objects`` that ``principal`` may not ``action`` on (its decision), or None."""
        for obj in objects:
            d = self.check(action, principal, obj)
            if not d.allowed:
                return d
        return None


def parse_acl(doc: Any, where: str = "acls") -> ACL | None:
    """An ACL from a setting's value; None for None (no authorization at all)."""
    if doc is None:
        return None
    return ACL.parse(doc, where)


def _entity(spec: Any, where: str, kind: str) -> Entity:
    if not isinstance(spec, Mapping) or len(spec) != 1 or not ({"values", "type"} & set(spec)):
        raise ACLError(f'{where} must be {{"values": [...]}}, {{"type": "ANY"}} or {{"type": "NONE"}}')
    if "type" in spec:
        t = spec["type"]
        if t not in (ANY, NONE):
            raise ACLError(f'{where}.type must be "ANY" or "NONE", got {t!r}')
        return Entity(t)
    if kind == "none":
        raise ACLError(f'{where}: only {{"type": "ANY"}} or {{"type": "NONE"}} (an agent is named by its principal)')
    values = spec["values"]
    if not isinstance(values, list | tuple) or not values:
        raise ACLError(f"{where}.values must be a non-empty list of names")
    names: set[str] = set()
    subtrees: list[str] = []
    for j, v in enumerate(values):
        here = f"{where}.values[{j}]"
        if not isinstance(v, str):
            raise ACLError(f"{here} must be a string, got {type(v).__name__}")
        if kind == "role" and v.endswith("/*"):
            parent = v[:-2]
            err = role_error(parent) if parent != DEFAULT_ROLE else "the default role has no subroles"
            if err:
                raise ACLError(f"{here}: {err}")
            if parent + "/" not in subtrees:
                subtrees.append(parent + "/")
            continue
        err = _name_error(v, kind)
        if err:
            raise ACLError(f"{here}: {err}")
        names.add(v)
    return Entity(SOME, frozenset(names), tuple(subtrees))


def _name_error(v: str, kind: str) -> str | None:
    if kind == "role":
        return role_error(v)
    if not v:
        return f"a {kind} name is a non-empty string"
    if kind == "principal":
        return id_error(v)
    if len(v) > 255 or any(c.isspace() or ord(c) < 32 or c in ":/" for c in v):
        return f"invalid user name {v!r}"
    return None


__all__ = ["ACL", "ACLError", "ACTIONS", "ANY", "Decision", "Entity", "NONE", "REGISTER_AGENTS",
           "REGISTER_FRAMEWORKS", "ROOT", "RUN_TASKS", "Rule", "TEARDOWN_FRAMEWORKS", "UPDATE_QUOTAS",
           "UPDATE_WEIGHTS", "parse_acl"]
