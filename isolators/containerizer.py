"""The containerizer of a real host: a task is a process, isolated by the isolators named
in the agent's ``--isolation`` list (:data:`ISOLATORS`; an unknown name is refused at start-up).

:meth:`Containerizer.launch` prepares every isolator, starts the task in a session of its
own waiting at a gate (:func:`gate_script`), isolates it, then opens the gate; a failed step
cleans up what was prepared.  :meth:`reap` polls the isolators' ``watch``; :meth:`kill` and
:meth:`destroy` end a container; :meth:`recover` re-adopts one after an agent restart, from
the state file written before its gate opened (same pid *and* start time).  Where state is
recorded the gate stays as the main process and writes the task's exit status: that pid is
not the task's, and an exit code of 128 + N reads as death by signal N.  A task that names a
user runs as it (:func:`run_as`).  See docs/isolation.md, 'Launching and recovery' (and
docs/fault-tolerance.md, 'Agent recovery'; docs/security.md, 'Tasks run as a user').
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import psutil

from actors.agent import paths
from actors.ports import ContainerError, ContainerExit, Launched
from actors.protocol.messages import AssignedGpu, ResourceStatistics, TaskInfo

from . import logrotate
from .cgroups import CgroupsIsolator, Hierarchies, IsolationError, detect
from .cni import CniIsolator, find_network
from .gpu import NvidiaGpuIsolator
from .isolator import Container, Isolator, Limitation
from .limits import private_dev_setup
from .posix import PosixCpu, PosixMem, PosixRlimits

log = logging.getLogger("impresario.containerizer")

FAST_POLL = 0.05
SLOW_POLL = 1.0
SHUTDOWN_GRACE = 2.0
#: How long an ended container's exit waits for its logger to write the last of its output
#: (the logger ends when every process holding the task's pipes has ended).
LOGGER_DRAIN = 3.0
GATE_STATUS = 125   # the gate's exit status when it was never opened
STATE_VERSION = 1   # of the container state files written for recovery


def _signals(*names: str) -> frozenset[int]:
    return frozenset(int(getattr(signal, n)) for n in names if hasattr(signal, n))


#: Signals whose default action ends a process; a gate that records its task's status takes
#: an exit status of 128 + one of them for that signal (as the shell reports it), and ends by it.
FATAL_SIGNALS = tuple(sorted(
    int(n) for n in signal.valid_signals()
    if int(n) < 128 and int(n) not in _signals("SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN",
                                                "SIGTTOU", "SIGURG", "SIGWINCH")))
#: Those a recording gate catches, so that a signal sent to the whole container does not end it
#: before its task: all but SIGKILL and the faults (a shell caught in a fault of its own would loop).
TRAPPED_SIGNALS = tuple(n for n in FATAL_SIGNALS
                        if n not in _signals("SIGKILL", "SIGILL", "SIGTRAP", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGSYS"))
_STATUS = re.compile(rb"-?[0-9]{1,4}\n")

#: Names an ``--isolation`` list may hold, in the order their isolators run.
ISOLATORS = ("cgroups/cpu", "cgroups/mem", "cgroups/pids", "cgroups/devices", "gpu/nvidia", "network/cni",
             "posix/cpu", "posix/mem", "posix/rlimits")
ALIASES = {
    "cgroups": ("cgroups/cpu", "cgroups/mem", "cgroups/pids"),
    "posix": ("posix/cpu", "posix/mem", "posix/rlimits"),
}
#: An isolator that needs another: the GPU isolator grants devices through cgroups/devices.
IMPLIES = {"gpu/nvidia": ("cgroups/devices",)}
CGROUPS_DEFAULT = ALIASES["cgroups"]
POSIX_DEFAULT = ALIASES["posix"]


# --------------------------------------------------------------------------- isolation lists


def parse_isolation(spec: str | Iterable[str]) -> list[str]:
    """``"cgroups/cpu,cgroups/mem"`` (or a list) -> names in run order; loud on unknown names."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        expanded = ALIASES.get(item, (item,))
        for name in expanded:
            if name not in ISOLATORS:
                raise IsolationError(f"unknown isolator {name!r} in --isolation (known: "
                                     f"{', '.join(ISOLATORS)}; or {', '.join(sorted(ALIASES))})")
            names.append(name)
            names.extend(IMPLIES.get(name, ()))
    if not names:
        raise IsolationError("--isolation names no isolator")
    return [n for n in ISOLATORS if n in set(names)]


def default_isolation(h: Hierarchies | None = None) -> tuple[list[str], str]:
    """cgroups cpu, mem and pids where this process is root and the host has them, else
    posix; with the reason, for the log."""
    if os.geteuid() != 0:
        return list(POSIX_DEFAULT), "not running as root, so no cgroups"
    h = h or detect()
    missing = [ctl for ctl in ("cpu", "memory", "pids") if h.version_of(ctl) is None]
    if missing:
        return list(POSIX_DEFAULT), f"no cgroup hierarchy holds {', '.join(missing)} ({h.describe()})"
    return list(CGROUPS_DEFAULT), f"root, cgroups available ({h.describe()})"


def describe_isolation(names: list[str]) -> str:
    """One plain line for the log: what is isolated, and what is not."""
    text = ",".join(names)
    if not any(n.startswith("cgroups/") for n in names):
        text += (" (the POSIX fallback: CPU is not limited, memory is enforced only by polling the task's "
                 "processes, rlimits cap its data segment; no device, process-count or network isolation)")
    return text


def isolation_names(opts: dict[str, Any]) -> list[str]:
    spec = opts.get("isolation")
    return parse_isolation(spec) if spec else default_isolation()[0]


def build_isolators(opts: dict[str, Any], hierarchies: Hierarchies | None = None) -> list[Isolator]:
    """The isolators an ``isolation`` list names, configured from the containerizer options."""
    names = isolation_names(opts)
    out: list[Isolator] = []
    subsystems = [n.split("/", 1)[1] for n in names if n.startswith("cgroups/")]
    if subsystems:
        out.append(CgroupsIsolator(
            subsystems, hierarchies or detect(), root=str(opts.get("cgroups_root", "impresario")),
            cfs_quota=bool(opts.get("cfs_quota", True)), limit_swap=bool(opts.get("limit_swap", True)),
            pids_max=int(opts.get("pids_max", 1024)), devices_backend=str(opts.get("devices_backend", "auto"))))
    factories: dict[str, Callable[[dict[str, Any]], Isolator]] = {
        "gpu/nvidia": NvidiaGpuIsolator, "network/cni": CniIsolator,
        "posix/cpu": PosixCpu, "posix/mem": PosixMem, "posix/rlimits": PosixRlimits,
    }
    out.extend(factories[n](opts) for n in names if n in factories)
    return out


# --------------------------------------------------------------------------- the containerizer

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(text: str) -> str:
    name = _SAFE.sub("_", text)
    return name if name.strip(".") else "_"


def gate_script(setup: list[str], exec_wrappers: Iterable[list[str]] = (), status_path: str | None = None) -> str:
    """The shell that holds a new process until its isolation is in place, runs the setup
    commands (in the task's namespaces), then execs the task.

    With ``status_path`` (recovery state is recorded) it runs the task as its child instead,
    and stays as the container's main process: it writes the task's exit status to
    ``status_path`` (an exit code, or minus a signal's number), then ends the same way - it
    re-raises the signal that killed the task on itself - so that its parent sees what it
    would have seen of the task.  Its own messages go nowhere (the task's stderr is the
    task's), and it catches the signals that would end it before the task (a SIGTERM to the
    whole container: the task's graceful shutdown is not cut short); caught, not ignored, so
    that the task starts with every signal at its default."""
    lines = ['read -r gate || exit 125', '[ "$gate" = go ] || exit 125']
    lines += [f'{cmd} || {{ echo "impresario: container setup failed: {cmd}" >&2; exit 125; }}'
              for cmd in setup]
    prefix = "".join(shlex.join(w) + " " for w in exec_wrappers)
    if status_path is None:
        lines.append(f'exec {prefix}"$@" </dev/null')
        return "\n".join(lines)
    trapped = " ".join(map(str, TRAPPED_SIGNALS))
    fatal = "|".join(str(128 + n) for n in FATAL_SIGNALS)
    lines += [
        "exec 3>&2 2>/dev/null",
        f"trap : {trapped}",
        # The subshell execs the task with the task's stderr: the redirections are the child's.
        f'( exec {prefix}"$@" ) </dev/null 2>&3 3>&-',
        "rc=$?",
        f"trap - {trapped}",
        f"case $rc in {fatal}) st=-$((rc - 128)) ;; *) st=$rc ;; esac",
        # A builtin: no fork, so it is written even when the container has no pid to spare.
        f"printf '%s\\n' \"$st\" >{shlex.quote(status_path)}",
        'case $st in -*) ulimit -c 0; kill -$((rc - 128)) $$ ;; esac',
        "exit $rc",
    ]
    return "\n".join(lines)


def read_status(path: str | None) -> int | None:
    """The exit status a gate wrote to ``path``, or None: no file (the gate was killed before
    its task ended, or it never ran the task), or not one line holding a status."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            text = f.read(64)
    except OSError:
        return None
    return int(text) if _STATUS.fullmatch(text) else None


class _Adopted:
    """The main process of a container re-adopted after a restart: not a child of this
    process, so it is watched through psutil, and its exit status is the one its gate wrote
    to ``status_path`` (None if it wrote none).  Shaped like the part of ``Popen`` the
    containerizer uses (``pid``, ``returncode``, ``wait``); :meth:`ended` stands for ``poll``."""

    def __init__(self, pid: int, create_time: float, proc: psutil.Process | None,
                 status_path: str | None = None) -> None:
        self.pid = pid
        self.create_time = create_time
        self.proc = proc          # None: it had ended before it was re-adopted
        self.status_path = status_path
        self.gone = False
        self.returncode: int | None = None   # known once it has ended, if its gate wrote it
        if proc is None:
            self._end()

    def _end(self) -> None:
        self.gone = True
        # The gate wrote the status before it exited: an ended gate's file is complete.
        self.returncode = read_status(self.status_path)

    def owns_pid(self) -> bool:
        """The pid still names this process (running, or a zombie): signalling its process
        group cannot reach a stranger that got the pid again."""
        return _same_process(self.pid, self.create_time) is not None

    def ended(self) -> bool:
        if not self.gone:
            assert self.proc is not None
            try:
                # Not ours to reap: a zombie waits for its new parent, and runs nothing.
                if self.proc.status() == psutil.STATUS_ZOMBIE or not self.proc.is_running():
                    self._end()
            except psutil.NoSuchProcess:
                self._end()
            except psutil.Error:
                pass
        return self.gone

    def wait(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended():
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.01)


@dataclass
class _Running:
    c: Container
    proc: subprocess.Popen[bytes] | _Adopted
    logger: subprocess.Popen[bytes] | _Adopted | None = None   # the container logger's process
    poll: float = FAST_POLL
    limitation: Limitation | None = None
    ended: bool = False       # the main process has ended, with ``status``
    status: int | None = None
    drain_until: float | None = None
    reported: bool = False


class Containerizer:
    """The ``containerizer`` port of an executor on a real host."""

    def __init__(self, actor: Any, settings: dict[str, Any]) -> None:
        opts = settings.get("containerizer") or {}
        if not isinstance(opts, dict):
            raise IsolationError("the containerizer setting must be a map")
        self.agent_id = str(settings.get("agent_id") or "agent")
        self.parent = str(settings.get("container_id") or "")
        self.isolators = build_isolators(opts)
        try:
            self.rotation = logrotate.configure(opts)
        except ValueError as e:
            raise IsolationError(f"the container logger: {e}") from None
        self.running: dict[str, _Running] = {}
        # Where the state files for recovery go: the agent's work directory, out of the tasks'
        # sandboxes (a task must not be able to point a later executor at another process).
        work_dir = settings.get("work_dir")
        self.state_dir = os.path.join(str(work_dir), "meta", "containers") if work_dir else None

    # ------------------------------------------------------------------ launching

    def _path(self, container_id: str) -> tuple[str, ...]:
        if self.parent and container_id.startswith(self.parent + "."):
            return safe_name(self.agent_id), safe_name(self.parent), safe_name(container_id)
        return safe_name(self.agent_id), safe_name(container_id)

    def launch(self, container_id: str, task: TaskInfo, sandbox: str,
               gpus: tuple[AssignedGpu, ...] = ()) -> Launched:
        if container_id in self.running:
            raise ContainerError(f"container {container_id} exists already")
        argv = _argv(task)
        user = run_as(task.command.user if task.command is not None else "")
        try:
            rotation = logrotate.for_task(self.rotation, dict(task.command.environment) if task.command else {})
        except ValueError as e:
            raise ContainerError(f"the task's container logger: {e}") from None
        try:
            os.makedirs(sandbox, exist_ok=True)
            for name in logrotate.STREAMS:   # there from the start, and the user's (give_sandbox)
                os.close(os.open(os.path.join(sandbox, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        except OSError as e:
            raise ContainerError(f"cannot create the sandbox {sandbox}: {e.strerror or e}") from None
        if user is not None:
            give_sandbox(sandbox, user)
        self._link_latest(container_id, sandbox)
        c = Container(container_id, self._path(container_id), task, sandbox,
                      tuple(g for g in gpus if g.task_id == task.task_id))
        prepared: list[Isolator] = []
        proc = None
        logger = None
        ends: list[int] = []        # the pipes' write ends, this process's copies
        try:
            for iso in self.isolators:
                prepared.append(iso)
                iso.prepare(c)
            env = _environment(task, container_id, sandbox, c, user)
            if not task.command or not task.command.shell:
                _check_program(argv[0], env["PATH"])
            wrappers = [arg for w in c.wrappers for arg in w]
            setup = c.setup + (private_dev_setup(c.devices) if c.private_dev else [])
            exec_wrappers = c.exec_wrappers + ([user.wrapper()] if user is not None else [])
            gate = gate_script(setup, exec_wrappers, self._status_path(container_id))
            logger, ends = self._start_logger(c, rotation, user)
            try:
                proc = subprocess.Popen([*wrappers, "/bin/sh", "-c", gate, "impresario-gate",
                                         *argv], cwd=sandbox, env=env, stdin=subprocess.PIPE,
                                        stdout=ends[0], stderr=ends[1], start_new_session=True,
                                        close_fds=True)
            except OSError as e:
                raise ContainerError(f"cannot start {argv[0]!r}: {e.strerror or e}") from None
            finally:
                _close(ends)   # the task holds them now: the logger ends when it has ended
            c.pid = proc.pid
            for iso in self.isolators:
                iso.isolate(c, proc.pid)
            self._save_state(c, logger)
        except BaseException as e:
            _close(ends)
            if proc is not None:
                proc.kill()
                proc.wait()
            self._cleanup(c, prepared)
            self._forget_state(container_id)
            if logger is not None:
                _end_logger(logger, time.monotonic() + SHUTDOWN_GRACE, container_id)
            if isinstance(e, OSError):
                raise ContainerError(f"cannot isolate container {container_id}: {e}") from None
            raise
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        self.running[container_id] = _Running(c, proc, logger)
        return Launched(pid=proc.pid, ip_addresses=tuple(c.ip_addresses))

    def _start_logger(self, c: Container, rotation: dict[str, logrotate.Rotation],
                      user: RunAs | None) -> tuple[subprocess.Popen[bytes], list[int]]:
        """The container's logger process (:mod:`isolators.logrotate`), reading two new pipes
        into the sandbox; and the pipes' write ends, for the task."""
        pipes = [os.pipe() for _ in logrotate.STREAMS]
        reads = dict(zip(logrotate.STREAMS, (r for r, _ in pipes), strict=True))
        try:
            owner = (user.uid, user.gid) if user is not None else None
            proc = subprocess.Popen(logrotate.command(c.sandbox, reads, rotation, owner), cwd="/",
                                    env={"PATH": os.defpath}, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    pass_fds=tuple(reads.values()), close_fds=True, start_new_session=True)
        except OSError as e:
            _close([fd for pair in pipes for fd in pair])
            raise ContainerError(f"cannot start the container logger: {e.strerror or e}") from None
        _close(list(reads.values()))
        return proc, [w for _, w in pipes]

    def _link_latest(self, container_id: str, sandbox: str) -> None:
        """``runs/latest`` names the executor's newest run (Mesos' layout; only where the
        sandbox is in it)."""
        run = paths.run_of(sandbox, self.parent, container_id)
        runs, name = os.path.split(run)
        if os.path.basename(runs) != "runs":
            return
        link = os.path.join(runs, paths.LATEST)
        try:
            if os.readlink(link) == name:
                return
        except OSError:
            pass
        tmp = f"{link}.{os.getpid()}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(name, tmp)
            os.replace(tmp, link)
        except OSError as e:
            log.warning("container %s: cannot point %s at its run: %s", container_id, link, e)

    # ------------------------------------------------------------------ watching

    def _watch(self, r: _Running) -> Limitation | None:
        for iso in self.isolators:
            lim = iso.watch(r.c)
            if lim is not None:
                return lim
        return None

    def reap(self) -> list[ContainerExit]:
        out = []
        for cid in sorted(self.running):
            r = self.running[cid]
            if r.reported:
                continue
            if not r.ended and not self._ended(cid, r):
                continue
            if not _logger_ended(r.logger):
                # The last of the task's output may still be in its pipes: the exit (and the
                # output tail sent with it) waits for the logger, a little.
                now = time.monotonic()
                if r.drain_until is None:
                    r.drain_until = now + LOGGER_DRAIN
                if now < r.drain_until:
                    r.poll = FAST_POLL
                    continue
                log.warning("container %s: its logger still runs %.0f s after its end: a process outside "
                            "the container holds the task's output open", cid, LOGGER_DRAIN)
            r.reported = True
            lim = r.limitation
            out.append(ContainerExit(cid, r.status, lim.reason, lim.message) if lim else ContainerExit(cid, r.status))
        return out

    def _ended(self, cid: str, r: _Running) -> bool:
        """Whether the container's main process has ended (its status then in ``r.status``);
        a limit broken meanwhile ends the container."""
        if r.limitation is None:
            r.limitation = self._watch(r)
            if r.limitation is not None:
                log.info("container %s: %s", cid, r.limitation.message)
                self._signal(r, signal.SIGKILL)
                r.poll = FAST_POLL
        if isinstance(r.proc, _Adopted):
            ended = r.proc.ended()
            rc = r.proc.returncode   # what its gate wrote, if it did
        else:
            rc = r.proc.poll()
            ended = rc is not None
        if not ended:
            r.poll = min(SLOW_POLL, r.poll * 1.25)
            return False
        if r.limitation is None:
            # What the main process left behind goes now (destroy would end it anyway), so
            # that a limit it broke meanwhile is known before the exit is judged.
            self._signal(r, signal.SIGKILL)
            r.limitation = self._watch(r)
        r.ended, r.status = True, rc
        return True

    def next_check(self) -> float | None:
        live = [r.poll for r in self.running.values() if not r.reported]
        return min(live) if live else None

    def usage(self, container_id: str) -> ResourceStatistics | None:
        r = self.running.get(container_id)
        if r is None or r.reported:
            return None
        stats: dict[str, float] = {}
        for iso in self.isolators:
            iso.usage(r.c, stats)
        if not stats:
            return None
        values: dict[str, Any] = {k: (int(v) if k in _COUNTS else float(v)) for k, v in stats.items()}
        return ResourceStatistics(time.time(), **values)

    # ------------------------------------------------------------------ ending

    def _signal(self, r: _Running, sig: int) -> None:
        for iso in self.isolators:
            if iso.signal(r.c, sig):
                return
        if isinstance(r.proc, _Adopted) and not r.proc.owns_pid():
            return   # gone for good: its pid may name another process by now
        _signal_tree(r.proc.pid, sig)

    def kill(self, container_id: str, hard: bool = False) -> None:
        r = self.running.get(container_id)
        if r is None or r.proc.returncode is not None or (isinstance(r.proc, _Adopted) and r.proc.ended()):
            return
        self._signal(r, signal.SIGKILL if hard else signal.SIGTERM)
        r.poll = FAST_POLL

    def _cleanup(self, c: Container, isolators: list[Isolator]) -> None:
        for iso in reversed(isolators):
            try:
                iso.cleanup(c)
            except Exception as e:  # cleanup must go on with the others
                log.error("container %s: %s cleanup failed: %s", c.id, iso.name, e)

    def destroy(self, container_id: str, logger_deadline: float | None = None) -> None:
        """End the container: what is left of it is killed, its isolators clean up, and its
        logger (which then reads the end of its pipes) is waited for until ``logger_deadline``
        (a monotonic time; default: a grace period from now)."""
        r = self.running.pop(container_id, None)
        if r is None:
            return
        # The main process is gone; anything it left behind goes too.
        self._signal(r, signal.SIGKILL)
        if r.proc.returncode is None:
            try:
                r.proc.wait(timeout=SHUTDOWN_GRACE)
            except subprocess.TimeoutExpired:
                pass
        self._cleanup(r.c, self.isolators)
        self._forget_state(container_id)
        _end_logger(r.logger, logger_deadline if logger_deadline is not None else time.monotonic() + SHUTDOWN_GRACE,
                    container_id)

    # ------------------------------------------------------------------ recovery

    def _state_path(self, container_id: str, suffix: str = ".json") -> str | None:
        if self.state_dir is None:
            return None
        *dirs, last = self._path(container_id)
        return os.path.join(self.state_dir, *dirs, last + suffix)

    def _status_path(self, container_id: str) -> str | None:
        """Where the gate writes its task's exit status (recording only): next to the state
        file, out of the task's sandbox, so that no task can forge it."""
        return self._state_path(container_id, ".status")

    def _save_state(self, c: Container, logger: subprocess.Popen[bytes] | None = None) -> None:
        """What :meth:`recover` needs, written atomically before the task runs."""
        path = self._state_path(c.id)
        if path is None:
            return
        try:
            create_time = psutil.Process(c.pid).create_time()
        except psutil.Error as e:
            raise ContainerError(f"container {c.id}: its process vanished before it ran: {e}") from None
        record: dict[str, Any] = {"version": STATE_VERSION, "container_id": c.id, "pid": c.pid,
                                  "create_time": create_time, "ip_addresses": list(c.ip_addresses)}
        cgroups = c.state.get("cgroups")
        if cgroups:
            record["cgroups"] = dict(cgroups)
        cni = c.state.get("network/cni")
        if cni:
            record["cni"] = {"network": cni["net"].name, "netns": cni["netns"], "result": cni["result"],
                             "added": cni["added"]}
        if logger is not None:
            with contextlib.suppress(psutil.Error):   # (ended already: nothing to wait for)
                record["logger"] = {"pid": logger.pid, "create_time": psutil.Process(logger.pid).create_time()}
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):   # one left by an earlier container of this id
                os.unlink(str(self._status_path(c.id)))
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                json.dump(record, f)
            os.replace(tmp, path)
        except (OSError, TypeError, ValueError) as e:
            raise ContainerError(f"container {c.id}: cannot record its state for recovery in {path}: {e}") from None

    def _forget_state(self, container_id: str) -> None:
        path = self._state_path(container_id)
        if path is None or self.state_dir is None:
            return
        for name in (path, self._status_path(container_id)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(name))   # (both are paths: there is a state dir)
        # The emptied folders of a task group and of the agent go too.
        parent = os.path.dirname(path)
        while parent.startswith(self.state_dir + os.sep):
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)

    def _load_state(self, container_id: str) -> dict[str, Any] | None:
        path = self._state_path(container_id)
        if path is None:
            return None
        try:
            with open(path) as f:
                record = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("container %s: its state file %s is unreadable: %s", container_id, path, e)
            return None
        if not (isinstance(record, dict) and record.get("version") == STATE_VERSION
                and record.get("container_id") == container_id and type(record.get("pid")) is int
                and record["pid"] > 0 and isinstance(record.get("create_time"), int | float)):
            log.warning("container %s: its state file %s is not one this containerizer wrote", container_id, path)
            return None
        return record

    def recover(self, container_id: str, task: TaskInfo, sandbox: str) -> bool:
        """Re-attach to a container launched by an executor that is gone, from its state
        file: True if the container is known - its main process still running (the same pid
        with the same start time), or ended, with an exit that :meth:`reap` reports with the
        status its gate recorded (None if it recorded none) - else False (nothing was
        recorded: the task is lost)."""
        if container_id in self.running:
            return True
        record = self._load_state(container_id)
        if record is None:
            return False
        c = Container(container_id, self._path(container_id), task, sandbox)
        c.pid = record["pid"]
        c.ip_addresses = [str(a) for a in record.get("ip_addresses") or []]
        names = {iso.name for iso in self.isolators}
        cgroups = record.get("cgroups")
        if "cgroups" in names and isinstance(cgroups, dict):
            c.state["cgroups"] = {str(k): str(v) for k, v in cgroups.items()}
        cni = record.get("cni")
        if isinstance(cni, dict):
            self._recover_cni(c, cni)
        proc = _same_process(c.pid, float(record["create_time"]))
        with contextlib.suppress(psutil.Error):
            if proc is not None and proc.status() == psutil.STATUS_ZOMBIE:
                proc = None
        for iso in self.isolators:
            iso.recover([c])
        adopted = _Adopted(c.pid, float(record["create_time"]), proc, self._status_path(container_id))
        self.running[container_id] = _Running(c, adopted, _adopt_logger(record.get("logger")))
        log.info("container %s: re-adopted (pid %d, %s)", container_id, c.pid, "running" if proc is not None else
                 f"ended meanwhile, status {'unknown' if adopted.returncode is None else adopted.returncode}")
        return True

    def _recover_cni(self, c: Container, saved: dict[str, Any]) -> None:
        """The network of a re-adopted container, so that its cleanup takes it down."""
        iso = next((i for i in self.isolators if isinstance(i, CniIsolator)), None)
        if iso is None:
            return
        netns = str(saved.get("netns", ""))
        state = iso.shared.get(netns)
        if state is None:
            try:
                net = find_network(iso.config_dir, str(saved.get("network", "")))
            except ContainerError as e:
                log.warning("container %s: its network cannot be recovered (%s): it will not be taken down",
                            c.id, e)
                return
            state = {"net": net, "netns": netns, "result": saved.get("result"),
                     "added": int(saved.get("added", 0)), "users": set()}
            iso.shared[netns] = state
        state["users"].add(c.id)
        c.state[iso.name] = state

    def shutdown(self) -> None:
        live = [r for r in self.running.values() if r.proc.returncode is None]
        for r in live:
            self._signal(r, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for r in live:
            try:
                r.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for cid in list(self.running):
            self.destroy(cid, deadline)

    def output_tail(self, container_id: str, max_bytes: int) -> bytes:
        """The last ``max_bytes`` of the task's stdout, across its latest rotation (the
        logger has written it all by the time :meth:`reap` reports the exit)."""
        r = self.running.get(container_id)
        if r is None or max_bytes <= 0:
            return b""
        return logrotate.tail(os.path.join(r.c.sandbox, "stdout"), max_bytes)


_COUNTS = frozenset({"cpus_nr_periods", "cpus_nr_throttled", "mem_rss_bytes", "mem_total_bytes",
                     "mem_limit_bytes", "processes"})


class RunAs(NamedTuple):
    """Whom a task runs as, when not as the executor's own user."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def wrapper(self) -> list[str]:
        """The exec wrapper that switches to this user (as the gate's last)."""
        groups = f"--groups={','.join(map(str, self.groups))}" if self.groups else "--clear-groups"
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", groups, "--"]


def run_as(name: str) -> RunAs | None:
    """The user a task names, resolved on this host; None: run it as this process's user
    (it names none, or this process's own).  :class:`ContainerError` says why it cannot run."""
    if not name:
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise ContainerError(f"cannot run the task as user {name!r}: no such user on this host") from None
    except UnicodeError:
        raise ContainerError(f"cannot run the task as user {name!r}: not a valid user name") from None
    if pw.pw_uid == 0 and name != "root":
        raise ContainerError(f"cannot run the task as user {name!r}: its uid is 0, and a task runs as root "
                             "only when it names root")
    if pw.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        me = _user_name(os.geteuid())
        raise ContainerError(f"cannot run the task as user {name!r}: this agent runs as {me}, not as root, "
                             "and cannot switch users")
    if shutil.which("setpriv") is None:
        raise ContainerError(f"cannot run the task as user {name!r}: setpriv (util-linux) is not installed")
    try:
        groups = tuple(sorted(set(os.getgrouplist(name, pw.pw_gid))))
    except OSError as e:
        raise ContainerError(f"cannot run the task as user {name!r}: its groups: {e.strerror or e}") from None
    return RunAs(name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir)


def give_sandbox(sandbox: str, user: RunAs) -> None:
    """Make ``sandbox`` (and its output files) the user's, after checking that the user can
    reach it: each directory above it must grant the user search permission."""
    blocked = _first_closed(os.path.dirname(os.path.abspath(sandbox)), user)
    if blocked is not None:
        path, mode = blocked
        raise ContainerError(f"cannot run the task as user {user.name!r}: it cannot reach its sandbox "
                             f"{sandbox}: {path} (mode {mode:04o}) does not let it through; make the "
                             f"agent's work directory and the directories above it searchable "
                             f"(chmod o+x)")
    try:
        for path in (sandbox, os.path.join(sandbox, "stdout"), os.path.join(sandbox, "stderr")):
            os.chown(path, user.uid, user.gid)
    except OSError as e:
        raise ContainerError(f"cannot give the sandbox {sandbox} to user {user.name!r}: "
                             f"{e.strerror or e}") from None


def _first_closed(directory: str, user: RunAs) -> tuple[str, int] | None:
    """The first directory from ``/`` down to ``directory`` that ``user`` may not search
    (by its owner, group and other bits: POSIX ACLs are not read), and its mode; or None."""
    parts: list[str] = []
    d = directory
    while True:
        parts.append(d)
        up = os.path.dirname(d)
        if up == d:
            break
        d = up
    groups = set(user.groups) | {user.gid}
    for path in reversed(parts):
        try:
            st = os.stat(path)
        except OSError:
            return None        # not there yet: made by makedirs below, with the umask's modes
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid == user.uid:
            ok = mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = mode & stat.S_IXGRP
        else:
            ok = mode & stat.S_IXOTH
        if not ok:
            return path, mode
    return None


def _user_name(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _argv(task: TaskInfo) -> list[str]:
    cmd = task.command
    if cmd is None:
        raise ContainerError(f"task {task.task_id} has no command")
    if cmd.shell:
        return ["/bin/sh", "-c", cmd.value]
    if not cmd.value:
        raise ContainerError(f"task {task.task_id}: an empty command")
    # The gate execs the program by name: argv[0] is the program itself.
    return [cmd.value, *cmd.arguments[1:]]


def _check_program(program: str, path: str) -> None:
    if shutil.which(program, path=path) is None:
        raise ContainerError(f"cannot start {program!r}: No such file or directory")


def _environment(task: TaskInfo, container_id: str, sandbox: str, c: Container,
                 user: RunAs | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": sandbox,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "IMPRESARIO_SANDBOX": sandbox,
        "MESOS_SANDBOX": sandbox,
        "IMPRESARIO_TASK_ID": task.task_id,
        "IMPRESARIO_CONTAINER_ID": container_id,
    }
    if user is not None:
        env["USER"] = env["LOGNAME"] = user.name
        if os.path.isdir(user.home):
            env["HOME"] = user.home
    if task.command is not None:
        env.update(dict(task.command.environment))
    env.update(c.env)
    for name, dirs in c.env_paths.items():
        env[name] = ":".join([p for p in (env.get(name, ""),) if p] + dirs)
    return env


def _same_process(pid: int, create_time: float) -> psutil.Process | None:
    """The process ``pid`` if it is still the one started at ``create_time`` (else None)."""
    try:
        p = psutil.Process(pid)
        return p if abs(p.create_time() - create_time) < 0.05 else None
    except psutil.Error:
        return None


def _signal_tree(pid: int, sig: int) -> None:
    """Without cgroups: the process group of the task, and its descendants elsewhere."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    for p in descendants:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def _adopt_logger(saved: Any) -> _Adopted | None:
    """The logger of a re-adopted container, from its state record: still running, or ended."""
    if not (isinstance(saved, dict) and type(saved.get("pid")) is int and saved["pid"] > 0
            and isinstance(saved.get("create_time"), int | float)):
        return None
    return _Adopted(saved["pid"], float(saved["create_time"]), _same_process(saved["pid"], float(saved["create_time"])))


def _close(fds: list[int]) -> None:
    """Close these descriptors, once: the list is emptied."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _logger_ended(logger: subprocess.Popen[bytes] | _Adopted | None) -> bool:
    if logger is None:
        return True
    if isinstance(logger, _Adopted):
        return logger.ended()
    return logger.poll() is not None


def _end_logger(logger: subprocess.Popen[bytes] | _Adopted | None, deadline: float, container_id: str) -> None:
    """Wait until ``deadline`` for a container's logger to end (its pipes are closed once the
    container's processes are gone); one still running then is left to end by itself."""
    if logger is None or isinstance(logger, _Adopted):
        return          # not this process's child: nothing to reap
    try:
        logger.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        log.warning("container %s: its logger (pid %d) still runs: a process outside the container "
                    "holds the task's output open", container_id, logger.pid)
