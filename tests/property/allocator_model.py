"""A reference model of the hierarchical allocator, written from the definitions.

No heaps, no counters, no indexes, no caches: every decision is recomputed
from the state.  It is slow and obviously right (or at least plainly
wrong): the optimized policy must agree with it on every allocation run.

Resources here are plain ``{name: millis}`` maps (scalars only).
"""

from __future__ import annotations

from zlib import crc32

SELF = "\x00self"


def add(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return {k: v for k, v in out.items() if v}


def sub(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) - v
    assert all(v >= 0 for v in out.values()), (a, b)
    return {k: v for k, v in out.items() if v}


def contains(a, b):
    return all(a.get(k, 0) >= v for k, v in b.items())


def cap(res, caps):
    return {k: (min(v, caps[k]) if k in caps else v) for k, v in res.items() if (min(v, caps[k]) if k in caps else v) > 0}


def ancestors(role):
    parts = role.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def under(role, top):
    return top == "" or role == top or role.startswith(top + "/")


class Model:
    def __init__(self, interval=1.0, mins=({"cpus": 10}, {"mem": 32_000})):
        self.interval = interval
        self.mins = list(mins)
        self.agents = {}       # id -> {"total": {...}, "alloc": {(fid, role): {...}}, "gpu": bool}
        self.frameworks = {}   # fid -> {"roles": [...], "gpu": bool, "suppressed": set(), "active": True}
        self.weights = {}
        self.quotas = {}       # role -> (guarantee, limit)
        self.filters = {}      # (agent, fid, role) -> (until, refused)
        self.known = set()     # every role the policy has a node for (nodes are never removed)

    # ------------------------------------------------------------- events
    def _know(self, role):
        self.known.update(ancestors(role))

    def add_agent(self, aid, total):
        self.agents[aid] = {"total": dict(total), "alloc": {}, "gpu": total.get("gpus", 0) > 0}

    def remove_agent(self, aid):
        self.agents.pop(aid)
        self.filters = {k: v for k, v in self.filters.items() if k[0] != aid}

    def add_framework(self, fid, roles, gpu, suppressed):
        self.frameworks[fid] = {"roles": list(roles), "gpu": gpu, "suppressed": set(suppressed), "active": True}
        for r in roles:
            self._know(r)

    def remove_framework(self, fid):
        self.frameworks.pop(fid)
        self.filters = {k: v for k, v in self.filters.items() if k[1] != fid}

    def suppress(self, fid, roles):
        fw = self.frameworks[fid]
        fw["suppressed"].update([r for r in (roles or fw["roles"]) if r in fw["roles"]])

    def revive(self, fid, roles):
        fw = self.frameworks[fid]
        for r in (roles or fw["roles"]):
            if r in fw["roles"]:
                fw["suppressed"].discard(r)
                self.filters = {k: v for k, v in self.filters.items() if not (k[1] == fid and k[2] == r)}

    def activate(self, fid, active):
        self.frameworks[fid]["active"] = active

    def update_weight(self, role, w):
        self._know(role)
        self.weights[role] = w

    def update_quota(self, role, guarantee, limit):
        self._know(role)
        if not guarantee and not limit:
            self.quotas.pop(role, None)
        else:
            self.quotas[role] = (dict(guarantee), dict(limit))

    def recover(self, fid, aid, role, res, refuse, now):
        a = self.agents.get(aid)
        if a is None:
            return
        held = a["alloc"].get((fid, role))
        if held is None:
            return
        res = {k: min(v, held.get(k, 0)) for k, v in res.items() if min(v, held.get(k, 0)) > 0}
        left = sub(held, res)
        if left:
            a["alloc"][(fid, role)] = left
        else:
            del a["alloc"][(fid, role)]
        free = self.free(aid)
        for key, (_, refused) in list(self.filters.items()):
            if key[0] == aid and not contains(refused, free):
                del self.filters[key]
        fw = self.frameworks.get(fid)
        if refuse and refuse > 0 and fw is not None and role in fw["roles"] and contains(res, free):
            self.filters[(aid, fid, role)] = (now + max(refuse, self.interval), dict(res))

    # ------------------------------------------------------------- views
    def total(self):
        t = {}
        for a in self.agents.values():
            t = add(t, a["total"])
        return t

    def allocated(self, aid):
        out = {}
        for v in self.agents[aid]["alloc"].values():
            out = add(out, v)
        return out

    def free(self, aid):
        return sub(self.agents[aid]["total"], self.allocated(aid))

    def free_total(self):
        t = {}
        for aid in self.agents:
            t = add(t, self.free(aid))
        return t

    def subtree_alloc(self, role):
        out = {}
        for a in self.agents.values():
            for (_, r), v in a["alloc"].items():
                if under(r, role):
                    out = add(out, v)
        return out

    def own_alloc(self, role):
        out = {}
        for a in self.agents.values():
            for (_, r), v in a["alloc"].items():
                if r == role:
                    out = add(out, v)
        return out

    def fw_alloc(self, fid, role):
        out = {}
        for a in self.agents.values():
            out = add(out, a["alloc"].get((fid, role), {}))
        return out

    def share(self, alloc, weight):
        total = self.total()
        best = 0.0
        for k, v in alloc.items():
            if total.get(k, 0) > 0:
                best = max(best, v / total[k])
        return best / weight

    def allocatable(self, res):
        return any(contains(res, m) for m in self.mins)

    def blocked(self, role):
        q = self.quotas.get(role)
        if not q or not q[1]:
            return False
        alloc = self.subtree_alloc(role)
        return any(alloc.get(k, 0) >= lim for k, lim in q[1].items())

    def path_blocked(self, role):
        return any(self.blocked(r) for r in ancestors(role))

    def wants(self, fid, role):
        fw = self.frameworks[fid]
        return fw["active"] and role not in fw["suppressed"]

    def children(self, node):
        depth = 0 if node == "" else node.count("/") + 1
        return sorted(r for r in self.known if r.count("/") == depth and under(r, node) and r != node)

    def has_own_frameworks(self, role):
        return any(role in fw["roles"] for fw in self.frameworks.values()) or any(
            r == role for a in self.agents.values() for (_, r) in a["alloc"])

    # ------------------------------------------------------------- a run
    def eligible(self, aid, within):
        a = self.agents[aid]
        out = []
        for fid, fw in self.frameworks.items():
            for role in fw["roles"]:
                if not under(role, within) or not self.wants(fid, role) or self.path_blocked(role):
                    continue
                if (aid, fid, role) in self.filters:
                    continue
                if a["gpu"] and not fw["gpu"]:
                    continue
                out.append((fid, role))
        return out

    def pick(self, aid, within=""):
        pairs = self.eligible(aid, within)
        if not pairs:
            return None
        node = within
        while True:
            kids = self.children(node)
            if not kids:
                # Choose among this role's own frameworks.
                fws = [fid for fid, r in pairs if r == node]
                if not fws:
                    return None
                return min(fws, key=lambda f: (self.share(self.fw_alloc(f, node), 1.0), f)), node
            options = []
            for c in kids:
                if any(under(r, c) for _, r in pairs):
                    options.append(((self.share(self.subtree_alloc(c), self.weights.get(c, 1.0)), c), c))
            if node and any(r == node for _, r in pairs):
                options.append(((self.share(self.own_alloc(node), 1.0), SELF), SELF))
            if not options:
                return None
            _, choice = min(options)
            if choice == SELF:
                fws = [fid for fid, r in pairs if r == node]
                return min(fws, key=lambda f: (self.share(self.fw_alloc(f, node), 1.0), f)), node
            node = choice

    def unmet(self):
        out = {}
        for role, (g, _) in self.quotas.items():
            if not g:
                continue
            alloc = self.subtree_alloc(role)
            miss = {k: v - alloc.get(k, 0) for k, v in g.items() if v > alloc.get(k, 0)}
            if miss:
                out[role] = miss
        return out

    def required_headroom(self):
        guaranteed = [r for r, (g, _) in self.quotas.items() if g]

        def need(role):
            g = self.quotas[role][0]
            alloc = self.subtree_alloc(role)
            mine = {k: max(0, v - alloc.get(k, 0)) for k, v in g.items()}
            below = {}
            for d in guaranteed:
                if d != role and under(d, role) and not any(
                        x in guaranteed for x in ancestors(d)[len(ancestors(role)):-1]):
                    below = add(below, need(d))
            return {k: max(mine.get(k, 0), below.get(k, 0)) for k in set(mine) | set(below)}

        total = {}
        for r in guaranteed:
            if not any(x in guaranteed for x in ancestors(r)[:-1]):
                total = add(total, need(r))
        return {k: v for k, v in total.items() if v > 0}

    def limit_left(self, role):
        left = None
        for r in ancestors(role):
            q = self.quotas.get(r)
            if q and q[1]:
                left = left if left is not None else {}
                alloc = self.subtree_alloc(r)
                for k, lim in q[1].items():
                    room = lim - alloc.get(k, 0)
                    left[k] = min(left.get(k, room), room)
        return left

    def within_limits(self, offer, role):
        left = self.limit_left(role)
        if left is None:
            return offer
        if any(v <= 0 and offer.get(k, 0) > 0 for k, v in left.items()):
            return None
        return cap(offer, left)

    def give(self, fid, role, aid, offer, out):
        a = self.agents[aid]
        a["alloc"][(fid, role)] = add(a["alloc"].get((fid, role), {}), offer)
        out.append((fid, role, aid, dict(offer)))

    def role_share(self, role):
        return self.share(self.subtree_alloc(role), self.weights.get(role, 1.0))

    def order(self, salt):
        key = crc32(salt)
        return sorted(self.agents, key=lambda aid: crc32(aid.encode(), key))

    def allocate(self, now, salt):
        self.filters = {k: v for k, v in self.filters.items() if v[0] > now}
        if not any(self.wants(f, r) for f, fw in self.frameworks.items() for r in fw["roles"]):
            return []
        order = self.order(salt)
        out = []
        if self.quotas:
            unmet = self.unmet()
            for aid in order:
                if not unmet:
                    break
                progress = True
                while progress and unmet:
                    progress = False
                    for role in sorted(unmet, key=lambda r: (self.role_share(r), r)):
                        miss = unmet.get(role)
                        if not miss:
                            continue
                        available = self.free(aid)
                        if not self.allocatable(available):
                            break
                        if not any(self.wants(f, r) for f, fw in self.frameworks.items() for r in fw["roles"]
                                   if under(r, role)) or self.path_blocked(role):
                            continue
                        pick = self.pick(aid, role)
                        if pick is None:
                            continue
                        fid, leaf = pick
                        offer = self.within_limits(cap(available, miss), leaf)
                        if offer is None or not self.allocatable(offer) or not any(offer.get(k) for k in miss):
                            continue
                        self.give(fid, leaf, aid, offer, out)
                        unmet = self.unmet()
                        progress = True
            headroom = self.required_headroom() or None
        else:
            headroom = None
        limited = any(q[1] for q in self.quotas.values())
        for aid in order:
            available = self.free(aid)
            while self.allocatable(available):
                pick = self.pick(aid)
                if pick is None:
                    break
                fid, role = pick
                offer = available
                if headroom is not None:
                    ft = self.free_total()
                    offer = cap(offer, {k: max(0, ft.get(k, 0) - need) for k, need in headroom.items()})
                if limited:
                    capped = self.within_limits(offer, role)
                    if capped is None:
                        break
                    offer = capped
                if offer != available and not self.allocatable(offer):
                    break
                self.give(fid, role, aid, offer, out)
                if headroom is not None:
                    headroom = self.required_headroom() or None
                if offer == available:
                    break
                available = self.free(aid)
        return out
