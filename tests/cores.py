"""What a test of a core (``actors.core``) needs in place of a host."""

from __future__ import annotations

from typing import Any

from actors.ports import Addresses


class Names(Addresses):
    """Addresses that are their own text: a test names its peers with strings."""

    def format(self, addr: Any) -> str:
        return str(addr)

    def parse(self, text: str) -> Any:
        return text


def busy_master(agents: int, tasks: int, frameworks: int = 10, running: bool = True) -> Any:
    """A master core that has registered ``agents`` agents and launched ``tasks`` tasks
    over ``frameworks`` frameworks (RUNNING unless ``running`` is false), fed the messages
    an actual cluster sends - for views and benchmarks at scale."""
    from actors.core import sent
    from actors.master.core import MasterCore
    from actors.protocol import messages as M
    from actors.protocol.messages import Source, TaskState
    from actors.protocol.resources import Resources

    c = MasterCore({"master_id": "m", "allocator": "allocator"}, Names())
    c.start(0.0)
    c.take()
    per_agent = -(-tasks // agents)
    agent_ids = []
    for i in range(agents):
        info = M.AgentInfo(f"host-{i}", Resources({"cpus": 32, "mem": 131072, "disk": 1_000_000}),
                           (("rack", f"r{i % 40}"),))
        (reply,) = sent(c.handle(M.RegisterAgent(info, "0.1.0", f"inc-{i}"), f"agent-{i}", 1.0), M.AgentRegistered)
        agent_ids.append(reply.agent_id)
    fids = []
    for j in range(frameworks):
        fi = M.FrameworkInfo(f"fw-{j}", user="nobody", roles=(f"team{j % 4}",))
        (reply,) = sent(c.handle(M.Subscribe(fi), f"sched-{j}", 2.0), M.Subscribed)
        fids.append((reply.framework_id, f"sched-{j}", f"team{j % 4}"))
    launched = 0
    shape = Resources({"cpus": 0.5, "mem": 512})   # one object, as the codec shares equal values
    for i, agent_id in enumerate(agent_ids):
        n = min(per_agent, tasks - launched)
        if n <= 0:
            break
        fid, sched, role = fids[i % frameworks]
        res = Resources({"cpus": 32, "mem": 131072, "disk": 1_000_000}, role=role)
        out = c.handle(M.AllocOffers((M.Allocation(fid, role, agent_id, res),)), "allocator", 3.0)
        (offers,) = sent(out, M.Offers)
        offer = offers.offers[0]
        infos = tuple(M.TaskInfo(f"t{launched + k}", f"task-{launched + k}", "",
                                 shape, M.CommandInfo("sleep 1000"),
                                 labels=(("app", "bench"),))
                      for k in range(n))
        c.handle(M.Accept(fid, (offer.offer_id,), (M.Launch(infos),)), sched, 4.0)
        if running:
            for t in infos:
                s = M.TaskStatus(t.task_id, TaskState.TASK_RUNNING, Source.SOURCE_EXECUTOR, None, "", agent_id,
                                 t.task_id, 5.0, f"u-{t.task_id}")
                c.handle(M.StatusUpdate(fid, s), f"agent-{i}", 5.0)
        launched += n
    c.take()
    return c
