"""The ``impresario`` command line.

::

    impresario local [--agents N] [--tasks M] [--out DIR]      a whole cluster on loopback, one batch
    impresario sim SCENARIO.toml [--out DIR] [--seed N]        a scenario in virtual time
    impresario master [--port 5050] [--listen IP] [--work-dir DIR]   a master for a real cluster
    impresario agent --master HOST:PORT[,HOST:PORT...] [--port 5051] [--work-dir DIR]   an agent joining it
    impresario state [--master HOST:PORT]                      the master's state, as JSON
    impresario execute (--master HOST:PORT | --local) --cpus X --mem SIZE -- CMD [ARG...]
    impresario framework package.module:Class --master HOST:PORT
    impresario weights ROLE=WEIGHT ... / quota ROLE --guarantee R --limit R   operator calls
    impresario bench host | allocator | scenario NAME          figures, as JSON lines

Exit status: 0 on success (``local`` and ``execute``: only if every task
FINISHED), 1 when the work failed, 2 for bad usage or a configuration that
cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import sys
import time
import uuid
from typing import Any

from actors.protocol.units import UnitError, parse_size

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BATCH = "actors.frameworks.batch:BatchFramework"
MASTERS_HELP = ("HOST:PORT of the master; several (comma-separated, or the option repeated): the first that "
                "answers is joined, the others are fallen back on, in order, when it goes silent")


class UsageError(Exception):
    pass


def _size(text: str) -> float:
    try:
        return parse_size(text)
    except UnitError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _frame_size(text: str) -> int:
    size = int(_size(text) * 2**20)
    if size < 1024:
        raise argparse.ArgumentTypeError(f"too small for Thespian's own messages: {text!r}")
    return size


def _log_size(text: str) -> int:
    from isolators.logrotate import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _number(text: str, kind: type = float, least: float = 0, above: bool = False) -> Any:
    """``text`` as a ``kind`` at least ``least`` (above it, with ``above``), or a usage error."""
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {'whole ' if kind is int else ''}number: {text!r}") from None
    if v < least or (above and v == least):
        bound = f"be above {least}" if above else ("not be negative" if least == 0 else f"be at least {least}")
        raise argparse.ArgumentTypeError(f"must {bound}: {text!r}")
    return v


def _positive(text: str) -> float:
    return float(_number(text))


def _above_zero(text: str) -> float:
    return float(_number(text, above=True))


def _at_least_one(text: str) -> int:
    return int(_number(text, int, 1))


def _hostport(text: str, default_port: int = 5050) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _hostports(text: str) -> list[tuple[str, int]]:
    """``HOST:PORT``, or several separated by commas: masters, tried in that order."""
    parts = [t.strip() for t in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {text!r}")
    return [_hostport(t) for t in parts]


def _masters(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The ``--master`` addresses given (each once, in order), else the local default."""
    out: list[tuple[str, int]] = []
    for hp in args.master or [("127.0.0.1", 5050)]:
        if hp not in out:
            out.append(hp)
    return out


def _say(*parts: Any) -> None:
    print(*parts, flush=True)


def _containerizer(args: argparse.Namespace) -> dict[str, Any]:
    """The containerizer options from the command line, checked on this host before anything
    starts: an unknown isolator, or one that cannot work here, is a usage error naming it."""
    from isolators.cgroups import IsolationError
    from isolators.containerizer import (
        build_isolators,
        default_isolation,
        describe_isolation,
        parse_isolation,
    )

    opts: dict[str, Any] = {"cfs_quota": args.cfs_quota}
    for key in ("cgroups_root", "pids_max", "cni_config_dir", "cni_plugins_dir", "cni_network",
                "nvidia_driver_volume", "max_stdout_size", "max_stderr_size", "logrotate_count"):
        if getattr(args, key, None) is not None:
            opts[key] = getattr(args, key)
    try:
        if args.isolation:
            names, why = parse_isolation(args.isolation), "as asked"
        else:
            names, why = default_isolation()
            why = f"the default here: {why}"
        opts["isolation"] = names
        build_isolators(opts)
    except IsolationError as e:
        raise UsageError(str(e)) from None
    _say(f"  isolation: {describe_isolation(names)} ({why})")
    return opts


# --------------------------------------------------------------------------- local


def cmd_local(args: argparse.Namespace) -> int:
    from .cluster import LocalCluster, wait_for
    from .summary import real_summary, write_summary

    if args.agents < 1 or args.tasks < 0:
        raise UsageError("--agents must be at least 1 and --tasks not negative")
    spec = {"name": "task", "count": args.tasks, "cpus": args.cpus, "mem": args.mem, "command": args.command}
    mem_text = f"{args.mem:g} MiB"
    _say(f"impresario local: {args.agents} agents, {args.tasks} tasks of `{args.command}` "
         f"({args.cpus:g} cpus, {mem_text} each)")
    t0 = time.monotonic()
    agent_settings = {"containerizer": _containerizer(args)}
    cluster = LocalCluster(agents=args.agents, work_dir=args.work_dir, log_level=args.log_level,
                           agent_settings=agent_settings, max_frame=args.max_frame)
    try:
        cluster.start(timeout=args.timeout)
        assert cluster.master is not None
        _say(f"  master {cluster.master_id} and {args.agents} agents up in {time.monotonic() - t0:.1f} s "
             f"(Thespian multiprocTCPBase listening on {cluster.bind} only); work dir {cluster.work_dir}")
        _say(f"  tasks run as user {_user()}, in their own sessions; logs in {cluster.log_path}")
        if cluster.auth is not None:
            _say(f"  messages signed: secrets generated in {cluster.secrets_file} (principals "
                 f"{', '.join(cluster.auth.principals)}); ACLs permissive (none given)")
        started = time.monotonic()
        fw = cluster.start_framework(BATCH, "batch", {"tasks": [spec] if args.tasks else [],
                                                      "keep_results": True})

        def done() -> dict[str, Any] | None:
            s = cluster.query(fw, "summary")
            return s if s["done"] else None

        try:
            s = wait_for(done, args.timeout, interval=0.1, what="the tasks to end")
        except TimeoutError:
            s = cluster.query(fw, "summary")
            _say(f"  timed out after {args.timeout:.0f} s")
        elapsed = time.monotonic() - started
        summary = real_summary(cluster, [(fw, s)], elapsed, time.monotonic() - t0)
        ok = s["tasks_finished"] == s["tasks_submitted"] and s["done"]
        lat = s["scheduling_latency"]
        _say(f"  {s['tasks_finished']}/{s['tasks_submitted']} FINISHED, {s['tasks_failed']} FAILED, "
             f"{s['tasks_killed']} KILLED, {s['tasks_error']} ERROR, {s['tasks_lost']} LOST "
             f"in {elapsed:.1f} s")
        if lat["count"]:
            _say(f"  scheduling latency p50 {lat['p50']:.3f} s, p90 {lat['p90']:.3f} s, p99 {lat['p99']:.3f} s")
        if not ok:
            for tid, r in sorted(cluster.query(fw, "results").items()):
                if r["state"] != "TASK_FINISHED":
                    _say(f"  {tid}: {r['state']} {r['reason'] or ''} {r['message']}")
        if args.out:
            path = write_summary(args.out, summary)
            _say(f"  summary written to {path}")
        return EXIT_OK if ok else EXIT_FAILED
    finally:
        cluster.stop()
        if args.work_dir is None and not args.keep_work_dir:
            _remove_tree(cluster.work_dir)


def _auth(args: argparse.Namespace) -> Any:
    """The cluster's secrets (``--secrets``), checked now: an :class:`~impresario.security.Auth`,
    or None."""
    from .security import Auth, SecretsError

    path = getattr(args, "secrets", None)
    if not path:
        return None
    try:
        return Auth(path)
    except (SecretsError, ValueError) as e:
        raise UsageError(str(e)) from None


def _signs_as(auth: Any, principal: str) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """Settings and extra ports that make an actor sign as ``principal`` (none without secrets)."""
    from .security import AUTH_PORT, SecretsError

    if auth is None:
        return {}, ()
    try:
        return auth.settings(principal), (AUTH_PORT,)
    except SecretsError as e:
        raise UsageError(str(e)) from None


def _client(system: Any, auth: Any, principal: str) -> Any:
    from .security import SecretsError

    try:
        return system.client(auth.client(principal) if auth is not None else None)
    except SecretsError as e:
        raise UsageError(str(e)) from None


def _base_ports() -> tuple[tuple[str, str], ...]:
    from .realhost.ports import BASE_PORTS

    return BASE_PORTS


def _read_acls(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            acls = json.load(fh)
    except (OSError, ValueError) as e:
        raise UsageError(f"--acls {path}: {getattr(e, 'strerror', None) or e}") from None
    from actors.security.acl import ACL, ACLError

    try:
        ACL.parse(acls)   # checked here, for a clear message before anything starts
    except ACLError as e:
        raise UsageError(f"--acls {path}: {e}") from None
    return acls


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def _remove_tree(path: str) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- sim


def cmd_sim(args: argparse.Namespace) -> int:
    from sim import api
    from sim import scenario as S

    try:
        path = S.find(args.scenario)
        sc = S.load(path)
    except S.ScenarioError as e:
        raise UsageError(str(e)) from None
    # A framework or policy class named in the scenario may live next to it, or here.
    for d in (os.getcwd(), os.path.dirname(os.path.abspath(path))):
        if d not in sys.path:
            sys.path.insert(0, d)
    out = args.out or os.path.join("results", sc.name)
    try:
        params = api.parse_sweep(args.sweep or [])
        fixed = api.parse_overrides(args.set or [])
    except ValueError as e:
        raise UsageError(str(e)) from None
    for key, value in fixed.items():
        params.setdefault(key, [value])
    if args.seed is not None:
        params.setdefault("seed", [args.seed])
    params = {**sc.sweep, **params} if (sc.sweep or params) else {}
    if params and any(len(v) > 1 for v in params.values()):
        return _sweep(path, sc, params, out)
    overrides = {k: v[0] for k, v in params.items()}
    if overrides:
        try:
            sc = api.load(path, overrides)
        except S.ScenarioError as e:
            raise UsageError(str(e)) from None
    traces = sum(1 for f in sc.frameworks if f.settings.get("trace"))
    work = f"{sc.tasks} task{'s' * (sc.tasks != 1)}" + (f" + {traces} trace{'s' * (traces != 1)}" if traces else "")
    _say(f"impresario sim: {sc.name} ({path}): {sc.agents} agent{'s' * (sc.agents != 1)}, "
         f"{len(sc.frameworks)} framework{'s' * (len(sc.frameworks) != 1)}, {work}, seed {sc.seed}")
    progress = not args.quiet and (args.progress or sys.stderr.isatty())
    try:
        result = api.run(sc, out=out, progress=progress, plots=not args.no_plots)
    except ValueError as e:
        raise UsageError(str(e)) from None
    s = result.summary
    _say(f"  {s['tasks_finished']} finished, {s['tasks_failed']} failed, {s['tasks_killed']} killed, "
         f"{s['tasks_error']} error, {s['tasks_lost']} lost, {s['tasks_running']} running, "
         f"{s['tasks_pending']} pending (of {s['tasks_submitted']})")
    _say(f"  {s['virtual_seconds']:.1f} virtual s in {s['wall_seconds']:.1f} wall s; "
         f"{s['messages']} messages, {s['events_per_second'] or 0:,} events/s; digest {s['digest'][:16]}")
    lat = s["scheduling_latency"]
    if lat["count"]:
        _say(f"  scheduling latency p50 {lat['p50']:.3f} s, p90 {lat['p90']:.3f} s, p99 {lat['p99']:.3f} s")
    for role, r in s["roles"].items():
        m = r["mean_allocated"]
        _say(f"  role {role} (weight {r['weight']:g}): mean share {r['mean_share']:.3f}; mean allocated "
             f"{m['cpus']:.1f} cpus, {m['mem'] / 1024:.1f} GiB mem")
    if s["faults"]:
        _say(f"  {len(s['faults'])} fault actions; {s['messages_lost']} messages lost in the network")
    _say(f"  results in {out}: {', '.join(sorted(os.path.basename(f) for f in result.files.values()))}")
    args.leaves_a_big_heap = True
    return EXIT_OK


def _sweep(path: str, sc: Any, params: dict[str, list[Any]], out: str) -> int:
    from sim import api
    from sim import scenario as S

    n = 1
    for v in params.values():
        n *= len(v)
    _say(f"impresario sim: sweeping {sc.name} over {', '.join(params)}: {n} runs, "
         f"{min(n, os.cpu_count() or 1)} at a time")
    try:
        rows = api.sweep(path, params, out)
    except S.ScenarioError as e:
        raise UsageError(str(e)) from None
    cols = ["run", "tasks_finished", "virtual_seconds", "wall_seconds", "latency_p50", "latency_p99",
            "messages", "digest"]
    cols += sorted({k for r in rows for k in r if k.startswith(("latency_p50[", "mean_share["))})
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "sweep.json"), "w") as fh:
        json.dump(rows, fh, indent=2)
    import csv
    with open(os.path.join(out, "sweep.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}), restval="")
        w.writeheader()
        w.writerows(rows)
    table = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(cols)]
    _say("  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in table:
        _say("  " + "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)))
    _say(f"  results in {out}: sweep.csv, sweep.json, and one folder per run")
    return EXIT_OK


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


# --------------------------------------------------------------------------- a real cluster


def cmd_master(args: argparse.Namespace) -> int:
    from .cluster import ALLOCATOR_CLASS, MASTER_PORTS
    from .realhost.masters import MASTER_CLASS, MASTER_GLOBAL_NAME
    from .realhost.ports import BASE_PORTS
    from .realhost.system import System, address_text, log_defs, relax_collector

    listen = _listen(args.listen)
    if not args.secrets and not args.insecure and not listen.startswith("127."):
        raise UsageError(f"a master listening on {listen} must authenticate: give --secrets FILE (see "
                         "docs/security.md), or --insecure to accept anyone who can reach it")
    auth = _auth(args)
    acls = _read_acls(args.acls)
    work_dir = args.work_dir
    os.makedirs(work_dir, exist_ok=True)
    log_path = os.path.join(work_dir, "master.log")
    door = _http_door("master", args.http_listen or listen, args.http_port, args)
    relax_collector()
    system = System({"Admin Port": args.port, "impresario.master": True}, log_defs(log_path, args.log_level),
                    listen, args.max_frame)
    try:
        auth_settings, auth_ports = _signs_as(auth, args.principal)
        client = _client(system, auth, args.principal)
        master = system.create(MASTER_CLASS, MASTER_GLOBAL_NAME)
        allocator = system.create(ALLOCATOR_CLASS)
        master_id = args.master_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        client.configure(allocator, "allocator", "allocator",
                         {"master": address_text(master), "seed": uuid.uuid4().int % 2**31,
                          "allocation_interval": args.allocation_interval, **auth_settings},
                         _base_ports() + auth_ports)
        settings: dict[str, Any] = {"master_id": master_id, "allocator": address_text(allocator),
                                    "work_dir": work_dir, "store_fsync": args.fsync,
                                    "agent_ping_timeout": args.agent_ping_timeout,
                                    "max_agent_ping_timeouts": args.max_agent_ping_timeouts,
                                    "heartbeat_interval": args.heartbeat_interval,
                                    "agent_reregister_timeout": args.agent_reregister_timeout,
                                    "hostname": socket.gethostname(), "http_address": door.url,
                                    "port": args.port, **auth_settings}
        if acls is not None:
            settings["acls"] = acls
        from .realhost.endpoints import serve_master

        serve_master(door, system, master, allocator, auth, args.principal, log_path)
        client.configure(master, "master", "master", settings,
                         (MASTER_PORTS if args.registry else BASE_PORTS) + auth_ports)
        registry = f"registry {os.path.join(work_dir, 'registry')}" if args.registry else "no registry"
        _say(f"impresario master {master_id} listening on {system.listen}:{args.port}{_everywhere(system)} "
             f"(actor {address_text(master)}); HTTP {door.url}; log {log_path}; {registry}; Ctrl-C to stop")
        if auth is not None:
            _say(f"impresario master: messages signed as {args.principal!r} ({args.secrets}); ACLs "
                 f"{'from ' + args.acls if acls is not None else 'permissive (none given)'}")
        else:
            _say("impresario master: messages NOT authenticated (no --secrets)"
                 + ("; --insecure: anyone who can reach it may act on this cluster" if args.insecure else ""))
        _until_signal(lambda: None)
        _say("impresario master: stopping")
        return EXIT_OK
    finally:
        door.stop()
        system.shutdown()


def _http_door(name: str, host: str, port: int, args: argparse.Namespace) -> Any:
    """The HTTP door bound now (so that a port in use is refused before anything starts),
    served once its routes are known; a usage error for a port in use or a bad TLS pair."""
    from .realhost.http import Door

    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("give both --tls-cert and --tls-key, or neither")
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    try:
        return Door(name, host, port, {}, tls=tls)
    except OSError as e:
        raise UsageError(f"cannot serve HTTP on {host}:{port}: {e.strerror or e}") from None
    except ValueError as e:
        raise UsageError(f"cannot serve HTTP on {host}:{port}: {e}") from None


def _until_signal(check: Any, every: float = 5.0) -> None:
    """Wait for SIGINT or SIGTERM, calling ``check()`` every ``every`` seconds."""
    stop = {"now": False}

    def handler(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    next_check = time.monotonic() + every
    while not stop["now"]:
        time.sleep(0.5)
        if time.monotonic() >= next_check and not stop["now"]:
            try:
                check()
            except Exception as e:  # the actor or the lookup failed this time: try again later
                log_line = f"impresario: looking for the master failed this time: {e}"
                print(log_line, file=sys.stderr, flush=True)
            next_check = time.monotonic() + every


def _standby_text(candidates: list[str]) -> str:
    n = len(candidates) - 1
    return f" ({n} other master{'s' if n > 1 else ''} to fall back on)" if n else ""


def _join_masters(*args: Any, **kw: Any) -> Any:
    """:func:`impresario.realhost.masters.join`, a bad listen address a usage error."""
    from .realhost.hardening import HardeningError
    from .realhost.masters import join

    try:
        return join(*args, **kw)
    except HardeningError as e:
        raise UsageError(str(e)) from None


def _follow_list(*args: Any) -> list[str]:
    """Where masters run (:func:`impresario.realhost.masters.other_masters`), saying which
    were left out for now."""
    from .realhost.masters import other_masters

    found, left_out = other_masters(*args)
    for line in left_out:
        _say(f"  {line}")
    return found


def _watch(*args: Any) -> Any:
    from .realhost.masters import MasterWatch

    return MasterWatch(*args)


def _loopback(host: str) -> bool:
    from .realhost.masters import is_loopback

    return is_loopback(host)


def _listen(address: str) -> str:
    """``address`` resolved and checked bindable, or a usage error naming it."""
    from .realhost.hardening import HardeningError, resolve_listen

    try:
        return resolve_listen(address)
    except HardeningError as e:
        raise UsageError(str(e)) from None


def _everywhere(system: Any) -> str:
    from .realhost.hardening import ANY_ADDRESS

    return " (every interface, as asked)" if system.listen == ANY_ADDRESS else ""


def cmd_agent(args: argparse.Namespace) -> int:
    from .cluster import (
        AGENT_CLASS,
        AGENT_PORTS,
        EXECUTOR_PORTS,
        RECOVERING_AGENT_PORTS,
        USAGE_INTERVAL,
    )
    from .realhost.system import address_text

    masters = _masters(args)
    away = [h for h, _ in masters if not _loopback(h)]
    if not args.listen and away:
        raise UsageError(f"the master {away[0]} is not on this host's loopback: give --listen, "
                         "this host's address on the cluster's network")
    containerizer = _containerizer(args)
    auth = _auth(args)
    auth_settings, auth_ports = _signs_as(auth, args.principal)
    os.makedirs(args.work_dir, exist_ok=True)
    log_path = os.path.join(args.work_dir, "agent.log")
    acls = _read_acls(args.acls)
    door = _http_door("agent", args.http_listen or _listen(args.listen or "127.0.0.1"), args.http_port, args)
    system, master, at = _join_masters(masters, args.listen, args.port, log_path, args.log_level, args.max_frame,
                               auth=auth, principal=args.principal)
    try:
        candidates = _follow_list(masters, at, master, system.listen, args.max_frame, auth, args.principal)
        agent = system.create(AGENT_CLASS)
        settings: dict[str, Any] = {"master": address_text(master), "masters": candidates, "work_dir": args.work_dir,
                                    "executor_ports": EXECUTOR_PORTS + [list(p) for p in auth_ports],
                                    **auth_settings, "output_tail_bytes": 16384,
                                    "seed": uuid.uuid4().int % 2**31, "containerizer": containerizer,
                                    "usage_interval": USAGE_INTERVAL, "store_fsync": args.fsync,
                                    "http_address": door.url}
        if acls is not None:
            settings["acls"] = acls
        if args.reserved_mem is not None:
            settings["reserved_mem"] = args.reserved_mem
        if args.reserved_disk is not None:
            settings["reserved_disk"] = args.reserved_disk
        if args.resources:
            settings["resources"] = args.resources
        if args.hostname:
            settings["hostname"] = args.hostname
        if args.attributes:
            settings["attributes"] = dict(kv.split(":", 1) for kv in args.attributes.split(";") if kv)
        client = _client(system, auth, args.principal)
        from actors.security.acl import ACL

        from .realhost.endpoints import serve_agent

        serve_agent(door, system, agent, auth, args.principal, args.work_dir, log_path,
                    ACL.parse(acls) if acls is not None else None)
        # Named by host and port, as Mesos names agents: two agents of one host must differ
        # (the name is also where their signed messages say they come from).
        client.configure(agent, "agent", f"{args.hostname or socket.gethostname()}:{args.port}", settings,
                         (RECOVERING_AGENT_PORTS if args.checkpoint else AGENT_PORTS) + auth_ports)
        from .cluster import wait_for
        state = wait_for(lambda: (lambda s: s if s["registered"] or s["refused"] else None)(
            client.query(agent, "state")), 60, what="registration")
        if state["refused"]:
            _say(f"impresario agent: refused by the master: {state['refused']}")
            return EXIT_FAILED
        offered = ";".join(f"{k}:{v}" for k, v in state["resources"].items())
        tasks = sum(len(e["tasks"]) for e in state["executors"])
        recovered = f"recovered {tasks} tasks from its checkpoint, " if tasks else ""
        _say(f"impresario agent {state['agent_id']} listening on {system.listen}:{args.port}{_everywhere(system)} "
             f"registered with {at[0]}:{at[1]}{_standby_text(candidates)}, {recovered}offering {offered}; "
             f"HTTP {door.url}; log {log_path}; Ctrl-C to stop")
        watch = _watch(masters, system.listen, args.max_frame, auth, args.principal, client, agent)

        def check() -> None:
            st = client.query(agent, "state")
            watch.check(not st["registered"] and not st["refused"])
        _until_signal(check)
        return EXIT_OK
    finally:
        door.stop()
        system.shutdown()


def cmd_state(args: argparse.Namespace) -> int:

    auth = _auth(args)
    system, master, _ = _join_masters(_masters(args), None, None, None, "WARNING", args.max_frame, auth=auth,
                              principal=args.principal)
    try:
        state = _client(system, auth, args.principal).query(master, "state")
        json.dump(state, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    finally:
        system.shutdown()


def cmd_weights(args: argparse.Namespace) -> int:
    from actors.protocol import messages as M
    from actors.protocol.resources import role_error


    weights = []
    for item in args.weights:
        role, sep, value = item.partition("=")
        try:
            w = float(value)
        except ValueError:
            w = -1.0
        if not sep or role_error(role) or not w > 0:
            raise UsageError(f"expected ROLE=WEIGHT with a valid role and a positive weight, got {item!r}")
        weights.append((role, w))
    auth = _auth(args)
    system, master, _ = _join_masters(_masters(args), None, None, None, "WARNING", args.max_frame, auth=auth,
                              principal=args.principal)
    try:
        reply = _client(system, auth, args.principal).ask(master, M.UpdateWeights(tuple(weights)), (M.QueryReply, M.Error))
        return _operator_reply(reply)
    finally:
        system.shutdown()


def cmd_quota(args: argparse.Namespace) -> int:
    from actors.allocator.quota import Quota, QuotaError, parse_amounts
    from actors.protocol import messages as M


    def parse(text: str | None, what: str) -> dict[str, int]:
        if not text:
            return {}
        try:
            return parse_amounts(text, f"--{what}")
        except QuotaError as e:
            raise UsageError(str(e)) from None

    quota = Quota(parse(args.guarantee, "guarantee"), parse(args.limit, "limit"))
    if quota.is_empty() and not args.remove:
        raise UsageError("give --guarantee and/or --limit, or --remove")
    auth = _auth(args)
    system, master, _ = _join_masters(_masters(args), None, None, None, "WARNING", args.max_frame, auth=auth,
                              principal=args.principal)
    try:
        reply = _client(system, auth, args.principal).ask(master, M.UpdateQuota(args.role, *quota.to_wire()), (M.QueryReply, M.Error))
        return _operator_reply(reply)
    finally:
        system.shutdown()


def _operator_reply(reply: Any) -> int:
    from actors.protocol import messages as M

    if isinstance(reply, M.Error):
        print(f"impresario: refused: {reply.message}", file=sys.stderr)
        return EXIT_FAILED
    json.dump(reply.result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


# --------------------------------------------------------------------------- execute and framework


def cmd_execute(args: argparse.Namespace) -> int:
    from .cluster import LocalCluster, wait_for
    from .realhost.system import address_text

    if not args.command:
        raise UsageError("give the command after --: impresario execute --local -- CMD [ARG...]")
    command = args.command[0] if len(args.command) == 1 else shlex.join(args.command)
    spec: dict[str, Any] = {"name": args.name, "cpus": args.cpus, "mem": args.mem, "command": command}
    if args.gpus:
        spec["gpus"] = args.gpus
    settings = {"tasks": [spec], "keep_results": True, "capabilities": ["GPU_RESOURCES"] if args.gpus else []}
    cluster = None
    system = None
    try:
        if args.local:
            cluster = LocalCluster(agents=1, log_level=args.log_level, max_frame=args.max_frame,
                                   agent_settings={"containerizer": _containerizer(args)})
            cluster.start()
            _say(f"impresario execute: a local cluster (1 agent) listening on {cluster.bind} only, its "
                 f"messages signed with generated secrets; the task runs as user {_user()}")
            fw = cluster.start_framework(BATCH, "execute", settings)
            client = cluster.client
        else:
            auth = _auth(args)
            auth_settings, auth_ports = _signs_as(auth, args.principal)
            masters = _masters(args)
            system, master, at = _join_masters(masters, None, None, None, "WARNING", args.max_frame, auth=auth,
                                       principal=args.principal)
            candidates = _follow_list(masters, at, master, system.listen, args.max_frame, auth, args.principal)
            fw = system.create(BATCH)
            client = _client(system, auth, args.principal)
            client.configure(fw, "framework", "execute", {"master": address_text(master), "masters": candidates,
                                                          "name": "execute",
                                                          **settings, **auth_settings}, _base_ports() + auth_ports)
        assert client is not None
        _say(f"  launching `{command}` ({args.cpus:g} cpus, {args.mem:g} MiB"
             f"{f', {args.gpus:g} gpus' if args.gpus else ''})")
        try:
            wait_for(lambda: client.query(fw, "summary")["done"], args.timeout, interval=0.1, what="the task")
        except TimeoutError:
            _say(f"  no terminal state within {args.timeout:.0f} s")
            return EXIT_FAILED
        results = client.query(fw, "results")
        r = results.get(args.name)
        if r is None:
            _say("  the task ended without a status")
            return EXIT_FAILED
        if r["output"]:
            sys.stdout.write(r["output"])
            if not r["output"].endswith("\n"):
                sys.stdout.write("\n")
        reason = f" ({r['reason']})" if r["reason"] else ""
        _say(f"{r['state']}{reason}: {r['message']}")
        return EXIT_OK if r["state"] == "TASK_FINISHED" else EXIT_FAILED
    finally:
        if cluster is not None:
            cluster.stop()
            _remove_tree(cluster.work_dir)
        if system is not None:
            system.shutdown()


def cmd_framework(args: argparse.Namespace) -> int:
    from actors.base import ConfigError, load_object

    from .cluster import wait_for
    from .realhost.system import address_text

    sys.path.insert(0, os.getcwd())  # the user's package, importable in the actor processes too
    try:
        cls = load_object(args.class_path)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    settings = json.loads(args.settings) if args.settings else {}
    if not isinstance(settings, dict):
        raise UsageError("--settings must be a JSON object")
    if args.role:
        settings["roles"] = args.role
    auth = _auth(args)
    auth_settings, auth_ports = _signs_as(auth, args.principal)
    masters = _masters(args)
    system, master, at = _join_masters(masters, args.listen, None, None, args.log_level, args.max_frame,
                               actor_packages=(cls.__module__,), auth=auth, principal=args.principal)
    try:
        candidates = _follow_list(masters, at, master, system.listen, args.max_frame, auth, args.principal)
        fw = system.create(f"{cls.__module__}.{cls.__qualname__}")
        client = _client(system, auth, args.principal)
        name = args.name or cls.__name__
        client.configure(fw, "framework", name, {"master": address_text(master), "masters": candidates,
                                                 "name": name,
                                                 **auth_settings, **settings}, _base_ports() + auth_ports)
        _say(f"impresario framework {name} ({args.class_path}) subscribed to {at[0]}:{at[1]}{_standby_text(candidates)}, "
             f"listening on {system.listen}{_everywhere(system)}")
        stop = {"now": False}
        signal.signal(signal.SIGINT, lambda *a: stop.update(now=True))
        signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
        watch = _watch(masters, system.listen, args.max_frame, auth, args.principal, client, fw)
        next_check = [time.monotonic() + 5.0]

        def finished() -> Any:
            if stop["now"]:
                return True
            x = client.query(fw, "summary")
            if time.monotonic() >= next_check[0]:
                watch.check(not x["connected"] and not x["done"])
                next_check[0] = time.monotonic() + 5.0
            return x if x["done"] else None
        try:
            s = wait_for(finished, args.timeout, interval=0.5, what="the framework to finish")
        except TimeoutError:
            s = client.query(fw, "summary")
        if isinstance(s, dict):
            _say(json.dumps({k: v for k, v in s.items() if k.startswith("tasks_")}))
        return EXIT_OK
    finally:
        system.shutdown()


# --------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    from sim.bench import bench_allocator, bench_host, bench_scenario

    if args.what == "scenario":
        if not args.scenario:
            print("impresario bench scenario: name a scenario (e.g. twitter-30k)", file=sys.stderr)
            return EXIT_USAGE
        from sim.api import parse_overrides
        from sim.scenario import find
        try:
            path, overrides = find(args.scenario), parse_overrides(args.set or [])
        except (OSError, ValueError) as e:
            print(f"impresario bench scenario: {e}", file=sys.stderr)
            return EXIT_USAGE
        print(json.dumps(bench_scenario(path, overrides)), flush=True)
    elif args.what == "views":
        from sim.bench import bench_views

        print(json.dumps(bench_views(args.agents, args.tasks, repeat=args.repeat)), flush=True)
    elif args.what == "host":
        for message in args.message or ["status", "offers"]:
            print(json.dumps(bench_host(args.messages, args.repeat, message)), flush=True)
    else:
        print(json.dumps(bench_allocator(args.agents, args.frameworks, args.roles, args.repeat, args.allocator,
                                         args.decline_agents, args.decline_frameworks)), flush=True)
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _isolation_options(q: argparse.ArgumentParser, agent: bool = False) -> None:
    q.add_argument("--isolation", metavar="LIST",
                   help="isolators, comma-separated: cgroups/cpu, cgroups/mem, cgroups/pids, cgroups/devices, "
                        "gpu/nvidia, network/cni, posix/cpu, posix/mem, posix/rlimits; or cgroups, posix "
                        "(default: cgroups/cpu,cgroups/mem,cgroups/pids as root where cgroups exist, else posix)")
    q.add_argument("--cfs-quota", action=argparse.BooleanOptionalAction, default=True,
                   help="a hard CPU limit (CFS quota) at each task's cpus; --no-cfs-quota leaves only the "
                        "proportional share (default: on)")
    q.add_argument("--cgroups-root", help="the cgroup that holds the tasks' cgroups (default impresario)")
    q.add_argument("--pids-max", type=int, help="most processes and threads per task (default 1024)")
    q.add_argument("--max-stdout-size", type=_log_size, metavar="SIZE",
                   help="rotate a task's stdout in its sandbox before it passes this size: bytes, or 10MB, "
                        "512KiB (default 10MB; a task's CONTAINER_LOGGER_MAX_STDOUT_SIZE overrides it)")
    q.add_argument("--max-stderr-size", type=_log_size, metavar="SIZE",
                   help="the same for stderr (default 10MB; CONTAINER_LOGGER_MAX_STDERR_SIZE)")
    q.add_argument("--logrotate-count", type=lambda t: _number(t, int), metavar="N",
                   help="rotated files kept of each stream, stdout.1 the newest (default 5; a task's "
                        "CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS='rotate N' overrides it)")
    if agent:
        q.add_argument("--cni-config-dir", help="CNI network configurations (default /etc/impresario/cni)")
        q.add_argument("--cni-plugins-dir", help="CNI plugins, colon-separated (default /usr/lib/cni:/opt/cni/bin)")
        q.add_argument("--cni-network", help="the network a task joins without an impresario.cni/network label")
        q.add_argument("--nvidia-driver-volume",
                       help="the NVIDIA driver volume mounted at /usr/local/nvidia (default: built under "
                            "/var/run/impresario/gpu)")


def _tls_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--tls-cert", metavar="FILE", help="serve HTTP over TLS with this certificate (PEM; with --tls-key)")
    q.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")


def _auth_options(q: argparse.ArgumentParser, principal: str) -> None:
    q.add_argument("--secrets", metavar="FILE",
                   help="the cluster's secrets file (JSON credentials, chmod 600): messages are signed and "
                        "checked (see docs/security.md)")
    q.add_argument("--principal", default=principal,
                   help=f"the principal to sign as, one of the secrets file's (default {principal})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="impresario", description=__doc__.split("::")[0].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"impresario {__version__}")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="level of the actors' log file (default INFO)")
    p.add_argument("--max-frame", type=_frame_size, metavar="SIZE",
                   help="refuse a Thespian frame larger than this: 64MiB, 1GiB, or MiB (default 64MiB)")
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND")
    sub.required = True

    q = sub.add_parser("local", help="run a master, an allocator and N agents on loopback, and one batch of tasks",
                       description="Start a master, an allocator and N agents as real Thespian systems on "
                                   "127.0.0.1, run M command tasks through the batch framework, print a summary. "
                                   "Exits 0 only if every task FINISHED.")
    q.add_argument("--agents", type=int, default=2, help="agents, each in its own Thespian system (default 2)")
    q.add_argument("--tasks", type=int, default=10, help="tasks to run (default 10)")
    q.add_argument("--command", default="sleep 0.5", help="each task's shell command (default 'sleep 0.5')")
    q.add_argument("--cpus", type=_positive, default=0.1, help="cpus per task (default 0.1)")
    q.add_argument("--mem", type=_size, default=32.0, help="memory per task: 64MiB, 1GiB, or MiB (default 32)")
    q.add_argument("--out", help="write summary.json into this folder")
    q.add_argument("--work-dir", help="the agents' work directory (default: a temporary one, removed after)")
    q.add_argument("--keep-work-dir", action="store_true", help="keep the temporary work directory (sandboxes, log)")
    q.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)")
    _isolation_options(q)
    q.set_defaults(func=cmd_local)

    q = sub.add_parser("sim", help="run a scenario in the SimPy host (virtual time)",
                       description="Run SCENARIO (a TOML file, or the name of one in ./scenarios) in virtual "
                                   "time and write DIR/summary.json (default DIR: results/<scenario name>).")
    q.add_argument("scenario")
    q.add_argument("--out", help="output folder")
    q.add_argument("--seed", type=int, help="override the scenario's seed")
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field of the scenario: cluster.agents=3000, frameworks.0.tasks=7000, "
                        "sim.until=1h (repeatable; dotted keys as in the Python API)")
    q.add_argument("--sweep", action="append", metavar="KEY=VALUES",
                   help="run once per value, in parallel: seed=1..10, allocator=drf,random, "
                        "cluster.agents=100,1000 (repeatable: every combination)")
    q.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")
    q.add_argument("--quiet", action="store_true", help="no progress display")
    q.add_argument("--no-plots", action="store_true", help="write no PNG plots (they need matplotlib)")
    q.set_defaults(func=cmd_sim)

    q = sub.add_parser("master", help="run a master (and its allocator) for a real cluster")
    q.add_argument("--port", type=int, default=5050, help="the master system's port; agents join here (default 5050)")
    q.add_argument("--listen", default="127.0.0.1",
                   help="the address to listen on and publish; 0.0.0.0 listens on every interface "
                        "(default 127.0.0.1)")
    q.add_argument("--work-dir", default="/var/tmp/impresario-master",
                   help="the log and the registry (WORK_DIR/registry); a master started again with the same "
                        "one recovers the cluster from it (default /var/tmp/impresario-master)")
    q.add_argument("--registry", action=argparse.BooleanOptionalAction, default=True,
                   help="keep a registry of agents and frameworks for failover (default: on)")
    q.add_argument("--fsync", action="store_true",
                   help="sync each registry record to disk, so that it survives a crash of the host, not only "
                        "of the master's processes (default: off)")
    q.add_argument("--master-id", help="this master's id (default: hostname and a random suffix)")
    q.add_argument("--allocation-interval", type=float, default=1.0, help="seconds between batch allocations")
    q.add_argument("--agent-ping-timeout", type=_above_zero, default=15.0,
                   help="seconds between the master's pings of each agent (default 15, as Mesos)")
    q.add_argument("--max-agent-ping-timeouts", type=_at_least_one, default=5,
                   help="pings an agent may miss before it is unreachable (default 5); an agent takes the master "
                        "for lost after one more interval of silence")
    q.add_argument("--heartbeat-interval", type=_above_zero, default=15.0,
                   help="seconds between the master's heartbeats to each framework (default 15); a framework "
                        "takes the master for lost after 5 silent intervals")
    q.add_argument("--agent-reregister-timeout", type=_above_zero, default=600.0,
                   help="after a failover, seconds the agents of the registry have to re-register before they "
                        "are unreachable (default 600)")
    _auth_options(q, "master")
    q.add_argument("--acls", metavar="FILE",
                   help="the ACLs (JSON, Mesos-like: register_agents, register_frameworks, run_tasks, "
                        "teardown_frameworks, view_frameworks, view_tasks, view_agents, access_sandboxes; "
                        "default: everything allowed)")
    q.add_argument("--http-port", type=int, default=5060,
                   help="the port of the master's HTTP endpoints (/state, /metrics, ...; default 5060; 0: any free one)")
    q.add_argument("--http-listen", help="the address HTTP listens on (default: --listen's)")
    _tls_options(q)
    q.add_argument("--insecure", action="store_true",
                   help="listen on a non-loopback address without --secrets (anyone who reaches it may "
                        "act on the cluster)")
    q.set_defaults(func=cmd_master)

    q = sub.add_parser("agent", help="run an agent that joins a master")
    q.add_argument("--master", type=_hostports, action="extend", required=True, help=MASTERS_HELP)
    q.add_argument("--port", type=int, default=5051, help="this agent system's port (default 5051)")
    q.add_argument("--listen",
                   help="the address to listen on and publish; 0.0.0.0 listens on every interface "
                        "(default: loopback for a master on loopback, else required)")
    q.add_argument("--work-dir", default="/var/tmp/impresario-agent",
                   help="sandboxes, the log and the checkpoints (WORK_DIR/meta); an agent started again with "
                        "the same one recovers its tasks (default /var/tmp/impresario-agent)")
    q.add_argument("--checkpoint", action=argparse.BooleanOptionalAction, default=True,
                   help="checkpoint the agent's tasks and updates, so that a restart re-attaches to the "
                        "running tasks (default: on)")
    q.add_argument("--fsync", action="store_true",
                   help="sync each checkpoint to disk, so that it survives a crash of the host, not only of "
                        "the agent's processes (default: off)")
    q.add_argument("--resources", help="override discovery, Mesos style: 'cpus:4;mem:8192;disk:10000'")
    q.add_argument("--attributes", help="'rack:r1;zone:a'")
    q.add_argument("--hostname", help="the hostname to advertise")
    q.add_argument("--reserved-mem", type=_size, help="memory kept for the host (default: min(1GiB, half))")
    q.add_argument("--reserved-disk", type=_size, help="disk kept for the host (default: min(5GiB, half))")
    q.add_argument("--http-port", type=int, default=5061,
                   help="the port of the agent's HTTP endpoints (/state, /files, ...; default 5061; 0: any free "
                        "one; two agents on one host need two)")
    q.add_argument("--http-listen", help="the address HTTP listens on (default: --listen's, else loopback)")
    _tls_options(q)
    q.add_argument("--acls", metavar="FILE",
                   help="ACLs for this agent (JSON as the master's): run_tasks, and over HTTP view_agents and "
                        "access_sandboxes")
    _isolation_options(q, agent=True)
    _auth_options(q, "agent")
    q.set_defaults(func=cmd_agent)

    q = sub.add_parser("state", help="print the master's state as JSON")
    q.add_argument("--master", type=_hostports, action="extend",
                   help="HOST:PORT (default 127.0.0.1:5050); several, comma-separated: the first that answers")
    _auth_options(q, "operator")
    q.set_defaults(func=cmd_state)

    q = sub.add_parser("execute", help="run one command task, like mesos-execute",
                       description="Run one command task and show its output (the last 16 KiB), its terminal "
                                   "state and reason. Exits 0 only if it FINISHED.")
    where = q.add_mutually_exclusive_group(required=True)
    where.add_argument("--master", type=_hostports, action="extend", help=MASTERS_HELP)
    where.add_argument("--local", action="store_true", help="start a one-agent cluster on loopback for it")
    q.add_argument("--cpus", type=_positive, default=0.1)
    q.add_argument("--mem", type=_size, default=64.0, help="64MiB, 1GiB, or MiB")
    q.add_argument("--gpus", type=_positive, default=0)
    q.add_argument("--name", default="execute", help="the task's id")
    q.add_argument("--timeout", type=float, default=600.0)
    _isolation_options(q)
    _auth_options(q, "framework")
    q.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    q.set_defaults(func=cmd_execute)

    q = sub.add_parser("framework", help="run your own framework class against a master")
    q.add_argument("class_path", help="package.module:Class (a subclass of actors.frameworks.base.Framework)")
    q.add_argument("--master", type=_hostports, action="extend", required=True, help=MASTERS_HELP)
    q.add_argument("--name", help="the framework's name (default: the class name)")
    q.add_argument("--role", action="append", help="a role to subscribe with (repeatable)")
    q.add_argument("--settings", help="the framework's settings, a JSON object")
    q.add_argument("--listen", help="the address to listen on (default: loopback for a master on loopback, "
                                    "else this host's address on the route to the master)")
    q.add_argument("--timeout", type=float, default=7 * 86400.0, help="stop after this many seconds")
    _auth_options(q, "framework")
    q.set_defaults(func=cmd_framework)

    q = sub.add_parser("bench", help="measure the kernel's speed; prints one JSON line per figure",
                       description="host: the SimPy host's cost per delivered message (codec, heap, digest, "
                                   "dispatch) against bare SimPy callback delivery plus msgpack of the same "
                                   "message, measured in the same run.")
    q.add_argument("what", choices=["host", "allocator", "scenario", "views"])
    q.add_argument("scenario", nargs="?", help="scenario: the scenario to run end to end (a file or a name)")
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="scenario: override a field, as the Python API does (repeatable)")
    q.add_argument("--messages", type=int, default=100_000, help="host: messages per measured run")
    q.add_argument("--repeat", type=int, default=5, help="measured runs or cycles (the median is reported)")
    q.add_argument("--message", action="append", choices=["status", "offers"],
                   help="host: which message (repeatable; default: both)")
    q.add_argument("--agents", type=int, default=30_000, help="allocator, views: agents (default 30000)")
    q.add_argument("--tasks", type=int, default=250_000, help="views: running tasks (default 250000)")
    q.add_argument("--frameworks", type=int, default=2_000, help="allocator: frameworks (default 2000)")
    q.add_argument("--roles", type=int, default=200, help="allocator: roles (default 200)")
    q.add_argument("--allocator", default="drf", help="allocator: the policy (drf, random, or a dotted path)")
    q.add_argument("--decline-agents", type=int, default=2_000,
                   help="allocator: agents in the every-framework-declined-every-agent case")
    q.add_argument("--decline-frameworks", type=int, default=2_000,
                   help="allocator: frameworks in that case")
    q.set_defaults(func=cmd_bench)

    q = sub.add_parser("weights", help="change role weights (operator call UPDATE_WEIGHTS)")
    q.add_argument("weights", nargs="+", metavar="ROLE=WEIGHT")
    q.add_argument("--master", type=_hostports, action="extend",
                   help="HOST:PORT (default 127.0.0.1:5050); several, comma-separated: the first that answers")
    _auth_options(q, "operator")
    q.set_defaults(func=cmd_weights)

    q = sub.add_parser("quota", help="set a role's quota (operator call UPDATE_QUOTA)")
    q.add_argument("role")
    q.add_argument("--guarantee", help="resources set aside first: 'cpus:10;mem:20480'")
    q.add_argument("--limit", help="never exceeded, descendants included: 'cpus:100;mem:204800'")
    q.add_argument("--remove", action="store_true", help="remove the role's quota")
    q.add_argument("--master", type=_hostports, action="extend",
                   help="HOST:PORT (default 127.0.0.1:5050); several, comma-separated: the first that answers")
    _auth_options(q, "operator")
    q.set_defaults(func=cmd_quota)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "command", None) and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    try:
        code = int(args.func(args))
        if argv is None and getattr(args, "leaves_a_big_heap", False):
            # The command line, after a simulation: tens of millions of objects that the
            # interpreter's last collection would walk (half a minute at 30,000 agents)
            # to free nothing.  Frozen, they are left for the process's end to reclaim.
            import gc
            gc.freeze()
        return code
    except UsageError as e:
        print(f"impresario {args.command_name}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (``impresario sim ... | head``): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as e:
        from .realhost.system import KernelError
        if isinstance(e, KernelError | TimeoutError):
            print(f"impresario {args.command_name}: {e}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
