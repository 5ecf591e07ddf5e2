"""The allocator under random histories, against the reference model and the invariants.

A Hypothesis state machine drives the optimized policy (actors.allocator.hierarchical)
and the model (allocator_model.py) through the same events: agents and
frameworks coming and going, offers declined with filters, used, partly
returned, finished; suppress, revive, deactivation; weight and quota
changes; time passing.  After every allocation run the two must have made the
same allocations in the same order, and after every step:

* nothing is allocated twice: on every agent the allocations add up to at
  most its total, and free + allocated = total;
* no role exceeds its quota limit (its subtree included);
* a role below its guarantee is served before roles above theirs: no agent
  keeps allocatable resources that an eligible framework of an unmet role
  could take;
* the next offer went to the role, then the framework, with the lowest
  weighted dominant share among those not filtering or suppressed (the model
  decides each offer from the definition);
* a filter is honoured until it expires;
* GPU agents never reach frameworks without GPU_RESOURCES.
"""

import random

import hypothesis.strategies as st
from hypothesis import event, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.allocator.hierarchical import HierarchicalPolicy
from actors.allocator.quota import Quota
from actors.config import ConfigError
from actors.protocol import messages as M
from actors.protocol.resources import Resources
from tests.property.allocator_model import Model, contains

ROLES = ["a", "a/x", "a/y", "b", "b/z/w", "c"]
SHAPES = [{"cpus": 4000, "mem": 4_096_000}, {"cpus": 8000, "mem": 2_048_000},
          {"cpus": 2000, "mem": 8_192_000, "gpus": 1000}, {"cpus": 1000, "mem": 64_000}]


def res(d):
    return Resources.from_millis(d)


def as_dict(r):
    return dict(r.scalar_items())


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.p = HierarchicalPolicy({"allocation_interval": 1.0, "seed": 3})
        self.m = Model()
        self.now = 0.0
        self.runs = 0
        self.n_agents = 0
        self.n_frameworks = 0
        self.outstanding = []   # (fid, role, agent, dict): offered, not answered yet
        self.in_use = []        # launched
        self.filters_seen = []  # (agent, fid, role, until, refused)

    # -------------------------------------------------------------- cluster
    @rule(shape=st.sampled_from(SHAPES))
    def add_agent(self, shape):
        aid = f"s{self.n_agents}"
        self.n_agents += 1
        self.p.add_agent(aid, res(shape), ())
        self.m.add_agent(aid, shape)

    @precondition(lambda self: self.m.agents)
    @rule(data=st.data())
    def remove_agent(self, data):
        aid = data.draw(st.sampled_from(sorted(self.m.agents)))
        self.p.remove_agent(aid)
        self.m.remove_agent(aid)
        self.outstanding = [x for x in self.outstanding if x[2] != aid]
        self.in_use = [x for x in self.in_use if x[2] != aid]

    @rule(roles=st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True), gpu=st.booleans(),
          data=st.data())
    def add_framework(self, roles, gpu, data):
        fid = f"f{self.n_frameworks}"
        self.n_frameworks += 1
        suppressed = data.draw(st.lists(st.sampled_from(roles), unique=True, max_size=len(roles) - 1))
        caps = [M.Capability.GPU_RESOURCES] if gpu else []
        self.p.add_framework(fid, roles, caps, suppressed, ())
        self.m.add_framework(fid, roles, gpu, suppressed)

    @precondition(lambda self: self.m.frameworks)
    @rule(data=st.data())
    def remove_framework(self, data):
        fid = data.draw(st.sampled_from(sorted(self.m.frameworks)))
        # As the master does: its offers and tasks come back first, then it goes.
        for x in [x for x in self.outstanding + self.in_use if x[0] == fid]:
            self._recover(x, x[3], None)
        self.outstanding = [x for x in self.outstanding if x[0] != fid]
        self.in_use = [x for x in self.in_use if x[0] != fid]
        self.p.remove_framework(fid)
        self.m.remove_framework(fid)

    @precondition(lambda self: self.m.frameworks)
    @rule(data=st.data(), revive=st.booleans())
    def suppress_or_revive(self, data, revive):
        fid = data.draw(st.sampled_from(sorted(self.m.frameworks)))
        roles = data.draw(st.lists(st.sampled_from(self.m.frameworks[fid]["roles"]), unique=True))
        if revive:
            self.p.revive(fid, roles)
            self.m.revive(fid, roles)
        else:
            self.p.suppress(fid, roles)
            self.m.suppress(fid, roles)

    @precondition(lambda self: self.m.frameworks)
    @rule(data=st.data(), active=st.booleans())
    def activate(self, data, active):
        fid = data.draw(st.sampled_from(sorted(self.m.frameworks)))
        self.p.activate(fid, active)
        self.m.activate(fid, active)

    @rule(role=st.sampled_from(ROLES), w=st.sampled_from([0.5, 1.0, 2.0, 3.0]))
    def weight(self, role, w):
        self.p.update_weight(role, w)
        self.m.update_weight(role, w)

    @rule(role=st.sampled_from(ROLES),
          g=st.sampled_from([{}, {"cpus": 2000}, {"cpus": 4000, "mem": 1_000_000}, {"mem": 6_000_000}]),
          lim=st.sampled_from([{}, {"cpus": 3000}, {"cpus": 6000}, {"mem": 5_000_000}, {"cpus": 12000}]))
    def quota(self, role, g, lim):
        try:
            self.p.update_quota(role, Quota(dict(g), dict(lim)))
        except ConfigError:
            return  # refused: nothing changed
        self.m.update_quota(role, g, lim)

    # -------------------------------------------------------------- allocation and answers
    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]))
    def allocate(self, dt):
        self.now += dt
        self.runs += 1
        seed = self.runs * 7919
        before = {aid: self.m.free(aid) for aid in self.m.agents}
        active_filters = {k: v for k, v in self.m.filters.items() if v[0] > self.now}
        got = [(a.framework_id, a.role, a.agent_id, as_dict(a.resources))
               for a in self.p.allocate(self.now, random.Random(seed))]
        want = self.m.allocate(self.now, random.Random(seed).getrandbits(32).to_bytes(4, "big"))
        assert got == want
        event(f"allocations in a run: {min(len(got), 5)}{'+' if len(got) >= 5 else ''}")
        if self.m.quotas:
            event("a run with quota")
        per_agent = {}
        for fid, role, aid, d in got:
            assert all(r.role == role for r in [res(d).with_role(role)])
            per_agent.setdefault(aid, []).append(d)
            # GPU agents only reach GPU-capable frameworks.
            if self.m.agents[aid]["gpu"]:
                assert self.m.frameworks[fid]["gpu"]
            # A filter is honoured until it expires.
            assert (aid, fid, role) not in active_filters
        for aid, ds in per_agent.items():
            total = {}
            for d in ds:
                for k, v in d.items():
                    total[k] = total.get(k, 0) + v
            assert contains(before[aid], total), "offered more than was free"
        self.outstanding.extend(got)
        self._guarantees_served()

    def _guarantees_served(self):
        """Right after a run, no agent keeps resources that would serve an unmet guarantee
        (some of what the role misses) and that an eligible framework of the role could take."""
        m = self.m
        for role, miss in m.unmet().items():
            if m.path_blocked(role):
                continue
            for aid in m.agents:
                free = m.free(aid)
                if not m.allocatable(free) or m.pick(aid, role) is None:
                    continue
                pick = m.pick(aid, role)
                offer = m.within_limits({k: min(v, miss[k]) if k in miss else v for k, v in free.items()}, pick[1])
                helps = offer is not None and m.allocatable(offer) and any(offer.get(k) for k in miss)
                assert not helps, (role, aid, free, miss, pick)

    def _recover(self, x, d, refuse):
        fid, role, aid, _ = x
        item = M.Recovered(fid, aid, role, res(d).with_role(role), refuse)
        self.p.recover(item, self.now)
        self.m.recover(fid, aid, role, d, refuse, self.now)

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data(), refuse=st.sampled_from([None, 0.0, 2.0, 30.0]))
    def decline(self, data, refuse):
        x = data.draw(st.sampled_from(self.outstanding))
        self.outstanding.remove(x)
        self._recover(x, x[3], refuse)

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data(), refuse=st.sampled_from([None, 5.0]))
    def launch_part(self, data, refuse):
        x = data.draw(st.sampled_from(self.outstanding))
        self.outstanding.remove(x)
        fid, role, aid, d = x
        used = {k: v // 2 for k, v in d.items() if v // 2}
        rest = {k: v - used.get(k, 0) for k, v in d.items() if v - used.get(k, 0)}
        if rest:
            self._recover(x, rest, refuse)
        if used:
            self.in_use.append((fid, role, aid, used))

    @precondition(lambda self: self.in_use)
    @rule(data=st.data())
    def finish(self, data):
        x = data.draw(st.sampled_from(self.in_use))
        self.in_use.remove(x)
        self._recover(x, x[3], None)

    # -------------------------------------------------------------- invariants
    @invariant()
    def resources_add_up(self):
        for aid, a in self.p.agents.items():
            assert a.total.contains(a.allocated)
            summed = Resources()
            for r in a.alloc.values():
                summed = summed + r
            assert summed == a.allocated
            assert as_dict(a.allocated) == self.m.allocated(aid)
        free = {}
        for a in self.p.agents.values():
            for k, v in (a.total - a.allocated).scalar_items():
                free[k] = free.get(k, 0) + v
        assert {k: v for k, v in self.p.free_total.items() if v} == free

    @invariant()
    def no_role_exceeds_its_limit(self):
        for role, (_, lim) in self.m.quotas.items():
            alloc = self.m.subtree_alloc(role)
            # Limits bind what the allocator hands out; only a lowered limit can leave a
            # role above it (until its tasks end), and then it is blocked.
            if any(alloc.get(k, 0) > v for k, v in lim.items()):
                assert self.p.nodes[role].blocked


TestAllocator = AllocatorMachine.TestCase
TestAllocator.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
