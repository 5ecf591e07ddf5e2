"""Benchmarks of the SimPy host.  They report figures; they never judge them.

``host``: the cost of one delivered message through the SimPy host - the
kernel's encode, the heap, the digest, the decode with validation and the
dispatch to a handler - against the floor for the same work with no kernel:
a bare SimPy event with a callback, plus ``msgpack`` pack and unpack of the
same message's wire form.  Both are measured in the same run, on the same
message, with the same number of events pending, so the ratio holds when the
machine's speed drifts.

Run: ``impresario bench host`` (or ``tox -e bench``).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgpack
import simpy

from actors.base import KernelActor, handles
from actors.ports import Addresses
from actors.protocol import messages as M
from actors.protocol.codec import encode
from actors.protocol.resources import Resources

from .host import BASE_PORTS, SimHost
from .network import ConstantNetwork

LATENCY = 0.0005


def sample_message() -> Any:
    """The message the kernel sends most: a status update on its way to the master."""
    status = M.TaskStatus("batch-12345", M.TaskState.TASK_RUNNING, M.Source.SOURCE_EXECUTOR, None, "",
                          "sim-S17", "batch-12345", 123.456, "c42-2",
                          container_status=M.ContainerStatus("c42", (), 0))
    return M.StatusUpdate("sim-0001", status, M.TaskState.TASK_RUNNING)


def sample_offer() -> Any:
    res = Resources.of(cpus=32, mem=131072, disk=1048576)
    return M.Offers(tuple(M.Offer(f"sim-O{i}", "sim-0001", f"sim-S{i}", f"agent-{i}", "eng/batch", res)
                          for i in range(4)))


class Sink(KernelActor):
    component = "sink"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @handles(M.StatusUpdate, M.Offers)
    def _any(self, m: Any, sender: Any) -> None:
        self.count += 1


class Source(KernelActor):
    component = "source"
    target: Any = None
    message: Any = None
    n = 0

    @handles(M.Query)
    def _go(self, m: M.Query, sender: Any) -> None:
        for _ in range(self.n):
            self.tell(self.target, self.message)


def through_host(message: Any, n: int) -> float:
    """Seconds per message: tell -> heap -> digest -> decode/validate -> handler."""
    host = SimHost(ConstantNetwork(LATENCY))
    sink = host.spawn(Sink, name="sink")
    src = host.spawn(Source, name="source")
    for addr, comp in ((sink, "sink"), (src, "source")):
        host.tell(addr, M.Configure(comp, comp, {}, BASE_PORTS))
    host.run()
    source = host.actor(src)
    source.target, source.message, source.n = sink, message, n
    host.tell(src, M.Query("go"))
    host.run(until=host.now + LATENCY * 1.01)  # the Query is delivered: n messages are now pending
    gc.collect()
    t0 = time.perf_counter()
    host.run()
    elapsed = time.perf_counter() - t0
    assert host.actor(sink).count == n
    # Sending happened before t0 (while handling the Query); time it the same way alone.
    t1 = time.perf_counter()
    for _ in range(n):
        encode(message)
    enc = time.perf_counter() - t1
    return (elapsed + enc) / n


def bare_simpy(message: Any, n: int) -> float:
    """Seconds per message for the floor: msgpack both ways and a SimPy callback delivery."""
    wire = msgpack.unpackb(encode(message))  # the same nested list the kernel puts on the wire
    env = simpy.Environment()
    got = [0]

    def deliver(ev: Any) -> None:
        msgpack.unpackb(ev._value)
        got[0] += 1

    t0 = time.perf_counter()
    for _ in range(n):
        ev = simpy.Event(env)
        ev._value = msgpack.packb(wire)
        ev._ok = True
        ev.callbacks.append(deliver)
        env.schedule(ev, delay=LATENCY)
    env.run()
    elapsed = time.perf_counter() - t0
    assert got[0] == n
    return elapsed / n


def _median(f: Callable[[], float], repeat: int) -> tuple[float, list[float]]:
    runs = [f() for _ in range(repeat)]
    return statistics.median(runs), runs


def bench_host(n: int = 100_000, repeat: int = 5, message: str = "status") -> dict[str, Any]:
    msg = sample_message() if message == "status" else sample_offer()
    # Interleave A and B so both see the same machine.
    host_runs, bare_runs = [], []
    for _ in range(repeat):
        host_runs.append(through_host(msg, n))
        bare_runs.append(bare_simpy(msg, n))
    h, b = statistics.median(host_runs), statistics.median(bare_runs)
    ratios = [x / y for x, y in zip(host_runs, bare_runs, strict=True)]
    return {
        "bench": "sim-host-message",
        "message": type(msg).__name__,
        "wire_bytes": len(encode(msg)),
        "messages": n,
        "repeat": repeat,
        "host_us_per_message": round(h * 1e6, 3),
        "bare_simpy_msgpack_us_per_message": round(b * 1e6, 3),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        "host_messages_per_second": round(1 / h),
    }


# --------------------------------------------------------------------------- authentication


def auth_payload(size: int = 216) -> bytes:
    """A status update's wire bytes, its message padded so that it is ``size`` bytes."""
    def wire(text: str) -> bytes:
        st = M.TaskStatus("hadoop-12345", M.TaskState.TASK_FINISHED, M.Source.SOURCE_EXECUTOR, None, text,
                          "sim-S1734", "hadoop-12345", 1234.5678, "c1734-9f2e4a1b",
                          container_status=M.ContainerStatus("c1734-9f2e4a1b", ("10.0.17.34",), 4242))
        return encode(M.StatusUpdate("sim-0003", st, M.TaskState.TASK_FINISHED))
    base = len(wire(""))
    text = "x" * max(0, size - base)
    while len(wire(text)) > size and text:   # the length's own header may grow
        text = text[:-1]
    return wire(text)


def bench_auth(payload_bytes: int = 216, n: int = 100_000, repeat: int = 5) -> dict[str, Any]:
    """The cost of authenticating one message (``actors.security.auth``), in microseconds, the
    fastest of ``repeat`` rounds of ``n``: the HMAC-SHA256 alone (``hmac.digest``, and the
    kernel's prepared pads), sealing, and opening (parse, MAC, replay window)."""
    import hmac
    import timeit

    from actors.security.auth import Credentials, hmac_pads, mac

    payload = auth_payload(payload_bytes)
    creds = Credentials({"agent": bytes(range(32))})
    signer = creds.signer("agent", "agent-1734", time.time_ns())
    verifier = creds.verifier()
    sealed = [signer.seal(payload) for _ in range(n * repeat + 1)]
    signer.seq = 0
    it = iter(sealed)
    pads = hmac_pads(bytes(range(32)))

    def best(stmt: Callable[[], Any]) -> float:
        return min(timeit.repeat(stmt, number=n, repeat=repeat)) / n * 1e6

    env = sealed[0]
    return {
        "bench": "auth-message",
        "payload_bytes": len(payload),
        "envelope_bytes": len(env),
        "hmac_digest_us": round(best(lambda: hmac.digest(b"k" * 32, env[:-34], "sha256")), 3),
        "hmac_pads_us": round(best(lambda: mac(pads, env[:-34])), 3),
        "seal_us": round(best(lambda: signer.seal(payload)), 3),
        "open_us": round(best(lambda: verifier.open(next(it))), 3),
    }


# --------------------------------------------------------------------------- the allocator


def _synthetic(agents: int, frameworks: int, roles: int, policy_name: str = "drf",
               shape: str = "cpus:32;mem:131072;disk:1048576") -> Any:
    """Mesos' benchmark shape: every agent free, every framework wanting offers, frameworks
    spread evenly over flat roles."""
    from actors.allocator.actor import policy_class

    p = policy_class(policy_name)({"allocation_interval": 1.0, "seed": 1})
    total = Resources.parse(shape)
    for i in range(agents):
        p.add_agent(f"agent-{i:06d}", total, ())
    for j in range(frameworks):
        p.add_framework(f"fw-{j:05d}", [f"role-{j % roles:04d}"], [], [], ())
    return p


def _recover_all(p: Any, allocations: list[Any], now: float, refuse: float | None) -> None:
    for a in allocations:
        p.recover(M.Recovered(a.framework_id, a.agent_id, a.role, a.resources, refuse), now)


def bench_allocator(agents: int = 30_000, frameworks: int = 2_000, roles: int = 200, cycles: int = 5,
                    policy: str = "drf", decline_agents: int = 2_000, decline_frameworks: int = 200) -> dict[str, Any]:
    """Full allocation cycles on a synthetic cluster (figures in seconds).

    * ``cycle_seconds``: the median of ``cycles`` full cycles, each from the same state
      (every agent free, every framework wanting); between cycles every allocation is
      given back, untimed.
    * ``bare_pass_seconds``: a pass over the same agents that builds one offer each for a
      framework taken in turn, with no policy: the floor for any allocator here.
    * ``declined_round_seconds``: cycles after every framework declined every offer it got
      (refuse 1 h), round after round: each agent is hidden from one more framework.
    * ``all_declined_cycle_seconds``: a cycle once every framework has declined every agent
      (at ``decline_agents`` x ``decline_frameworks``, as MESOS-4694's benchmark: every
      (agent, framework) pair holds a filter, so that state alone is A x F entries).
    """
    import random as _random

    p = _synthetic(agents, frameworks, roles, policy)
    rng = _random.Random(1)
    times, bare = [], []
    offers = 0
    now = 0.0
    for _ in range(cycles):
        gc.collect()
        t0 = time.perf_counter()
        out = p.allocate(now, rng)
        times.append(time.perf_counter() - t0)
        offers = len(out)
        bare.append(_bare_pass(p))
        now += 1.0
        _recover_all(p, out, now, None)
    declined = []
    out = p.allocate(now, rng)
    for _ in range(min(cycles, 5)):
        now += 1.0
        _recover_all(p, out, now, 3600.0)
        gc.collect()
        t0 = time.perf_counter()
        out = p.allocate(now, rng)
        declined.append(time.perf_counter() - t0)
    # Every framework has declined every agent.
    q = _synthetic(decline_agents, decline_frameworks, max(1, min(roles, decline_frameworks)), policy)
    now = 0.0
    out = q.allocate(now, rng)
    _recover_all(q, out, now, 3600.0)
    for slot in q.agents.values():
        for fid, fw in q.frameworks.items():
            for role in fw.roles:
                if (fid, role) not in slot.filters:
                    q._set_filter(slot, fw, role, 3600.0, slot.free)
    q.demand_changed = True
    gc.collect()
    t0 = time.perf_counter()
    left = q.allocate(1.0, rng)
    all_declined = time.perf_counter() - t0
    cycle = statistics.median(times)
    bare_med = statistics.median(bare)
    return {
        "bench": "allocator-cycle",
        "policy": policy,
        "agents": agents, "frameworks": frameworks, "roles": roles,
        "offers_per_cycle": offers,
        "cycle_seconds": round(cycle, 4),
        "cycle_seconds_min_max": [round(min(times), 4), round(max(times), 4)],
        "bare_pass_seconds": round(bare_med, 4),
        "ratio_to_bare_pass": round(cycle / bare_med, 2),
        "declined_round_seconds": [round(t, 4) for t in declined],
        "all_declined": {"agents": decline_agents, "frameworks": decline_frameworks,
                         "filters": decline_agents * decline_frameworks,
                         "cycle_seconds": round(all_declined, 4), "offers": len(left)},
    }


def _bare_pass(p: Any) -> float:
    """One offer per agent, a framework taken in turn, no policy: the floor."""
    fids = [(f, fw.roles[0]) for f, fw in p.frameworks.items()]
    n = len(fids)
    t0 = time.perf_counter()
    out = []
    for i, (aid, slot) in enumerate(p.agents.items()):
        fid, role = fids[i % n]
        out.append(M.Allocation(fid, role, aid, slot.free.with_role(role)))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- a whole scenario


def bench_scenario(scenario: str, overrides: dict[str, Any] | None = None,
                   out: str | None = None, floor_messages: int = 200_000) -> dict[str, Any]:
    """Run a scenario end to end in a child process and report its figures: wall time,
    peak RSS of that process, events and messages per second, the tasks' outcome, and
    the run's cost per message against the bare floor (SimPy callback delivery plus
    msgpack both ways of a status update, measured here in the same session)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="impresario-bench-") as tmp:
        out_dir = out or os.path.join(tmp, "out")
        code = ("import gc, json, sys; from sim import api; "
                "api.run(sys.argv[1], json.loads(sys.argv[2]), out=sys.argv[3], plots=False); gc.freeze()")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, scenario, json.dumps(overrides or {}), out_dir])
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"the run of {scenario} exited with {proc.returncode}")
        with open(os.path.join(out_dir, "summary.json")) as fh:
            s = json.load(fh)
    floor = bare_simpy(sample_message(), floor_messages)
    messages = s["messages"]
    return {
        "bench": "sim-scenario",
        "scenario": s["scenario"],
        "overrides": overrides or {},
        "agents": s["agents"],
        "tasks_submitted": s["tasks_submitted"],
        "tasks_finished": s["tasks_finished"],
        "peak_tasks_running": s.get("peak_tasks_running"),
        "tasks_lost": s.get("tasks_lost"),
        "master_recovery_seconds": s.get("master_recovery_seconds"),
        "master_recoveries": s.get("master_recoveries"),
        "virtual_seconds": s["virtual_seconds"],
        "wall_seconds_run": s["wall_seconds"],
        "wall_seconds_process": round(wall, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "messages": messages,
        "events": s["events"],
        "events_per_second": s["events_per_second"],
        "us_per_message": round(s["wall_seconds"] / messages * 1e6, 3) if messages else None,
        "bare_floor_us_per_message": round(floor * 1e6, 3),
        "ratio_to_bare_floor": round(s["wall_seconds"] / messages / floor, 3) if messages else None,
        "scheduling_latency": s["scheduling_latency"],
        "tasks_per_second_wall": round(s["tasks_finished"] / s["wall_seconds"]) if s["wall_seconds"] else None,
    }


# --------------------------------------------------------------------------- operator views at scale


class Names(Addresses):
    """Addresses that are their own text (a core fed messages by hand names its peers so)."""

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


def bench_views(agents: int = 30_000, tasks: int = 250_000, frameworks: int = 10, repeat: int = 3,
                rate: float = 2_000.0, seconds: float = 10.0) -> dict[str, Any]:
    """What the master's views cost at scale, and what polling /state does to the master.

    A master core with ``agents`` agents and ``tasks`` running tasks (fed the messages a
    cluster sends); each view rendered ``repeat`` times (the first: nothing kept yet) and
    encoded as the master sends it (JSON, gzip).  Then ``seconds`` of status updates
    arriving at ``rate`` per second, handled in order, while a client polls ``/state``
    every second through the HTTP door's reuse window (max(1 s, 5 x render time)): each
    update's wait from its arrival to its handling, with polling and without."""
    from actors.master import views

    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(200_000, 20, 100)   # as the master's process (impresario.realhost.system)
    try:
        t0 = time.perf_counter()
        c = busy_master(agents, tasks, frameworks)
        out: dict[str, Any] = {"cluster": {"agents": agents, "tasks": tasks,
                                           "build_s": round(time.perf_counter() - t0, 2)}}
        for name in ("state", "state-summary", "metrics", "roles", "tasks", "frameworks", "slaves"):
            renders, encodes, size = [], [], 0
            for _ in range(repeat):
                a = time.perf_counter()
                value = views.render(c, 100.0, {"endpoint": name})
                b = time.perf_counter()
                body = views.encode(value)
                renders.append(b - a)
                encodes.append(time.perf_counter() - b)
                size = len(body)
            out[name] = {"first_ms": round((renders[0] + encodes[0]) * 1000, 1),
                         "render_ms": round(min(renders[1:] or renders) * 1000, 1),
                         "encode_ms": round(min(encodes[1:] or encodes) * 1000, 1),
                         "gzip_bytes": size}
        out["polling"] = {k: _updates_while_polling(c, rate, seconds, poll) for k, poll in
                          (("without", False), ("with", True))}
        return out
    finally:
        gc.unfreeze()
        gc.set_threshold(*old)


def _updates_while_polling(c: Any, rate: float, seconds: float, poll: bool) -> dict[str, Any]:
    """Status updates (RUNNING again: a status that changes nothing the views keep)
    arriving every 1/rate s of wall time, handled in order; where a poll of /state is due,
    its pages (as the HTTP door asks for them: :func:`impresario.realhost.endpoints.in_parts`)
    rendered one at a time, the updates that came meanwhile handled between two pages."""
    from actors.master import views
    from actors.protocol.messages import Source, TaskState

    running = [(f.id, t) for f in c.frameworks.values() for t in f.tasks.values()]
    waits: list[float] = []
    polls = pages = 0
    start = time.perf_counter()
    next_poll = start
    window = 1.0
    todo: list[dict[str, Any]] = []
    poll_started = 0.0
    i = 0
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            break
        due = start + i / rate
        if due <= now:
            fid, t = running[i % len(running)]
            s = M.TaskStatus(t.task_id, TaskState.TASK_RUNNING, Source.SOURCE_EXECUTOR, None, "", t.agent_id,
                             t.task_id, now, f"p{i}")
            c.handle(M.StatusUpdate(fid, s), "agent-0", now)
            c.take()
            waits.append(time.perf_counter() - due)
            i += 1
            continue
        if todo:   # one page of the poll in progress
            params = todo.pop(0)
            value = views.render(c, now, {"endpoint": "state", "params": params})
            views.encode(value)
            pages += 1
            if params == {"part": "head"}:
                for which, n in [("slaves", value["_parts"]["slaves"])] + [
                        (f"{f['id']}/{k}", m) for f in value["frameworks"] + value["completed_frameworks"]
                        for k, m in f["_parts"].items()]:
                    todo.extend({"part": which, "offset": str(o)} for o in range(0, n, views.PAGE))
            if not todo:
                window = max(1.0, 5 * (time.perf_counter() - poll_started))
                next_poll = time.perf_counter() + window
            continue
        if poll and now >= next_poll:
            polls += 1
            poll_started = now
            todo = [{"part": "head"}]
    waits.sort()
    return {"updates": len(waits), "polls": polls, "pages": pages, "poll_every_s": round(window, 2),
            "wait_p50_ms": round(waits[len(waits) // 2] * 1000, 2),
            "wait_p99_ms": round(waits[int(len(waits) * 0.99)] * 1000, 2),
            "wait_max_ms": round(waits[-1] * 1000, 2)}
