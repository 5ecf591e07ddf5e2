"""The POSIX containerizer: a task is a process in its own session.

Each container's main process is started with ``start_new_session``, so the
task lives in a process group and session of its own: it survives the death of
its executor or agent (and can be re-adopted later), and a kill reaches the
whole group.  Its standard output and error go to ``stdout`` and ``stderr`` in
the task's sandbox directory.  No resource limits are set here: that is the
isolators' work (cgroups); this is what runs where there are none.

The executor polls :meth:`reap`; :meth:`next_check` answers a short period
while anything runs (50 ms at first, easing to 1 s for long tasks, and short
again right after a kill).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import IO, Any

from actors.messages import TaskInfo
from actors.ports import ContainerError, ContainerExit, Launched

FAST_POLL = 0.05
SLOW_POLL = 1.0
SHUTDOWN_GRACE = 2.0


@dataclass
class _Container:
    proc: subprocess.Popen[bytes]
    sandbox: str
    files: list[IO[bytes]] = field(default_factory=list)
    poll: float = FAST_POLL


class PosixContainerizer:
    def __init__(self, actor: Any, settings: dict[str, Any]) -> None:
        self.containers: dict[str, _Container] = {}
        self._exits: list[ContainerExit] = []

    def launch(self, container_id: str, task: TaskInfo, sandbox: str) -> Launched:
        if container_id in self.containers:
            raise ContainerError(f"container {container_id} exists already")
        cmd = task.command
        if cmd is None:
            raise ContainerError(f"task {task.task_id} has no command")
        if cmd.user and cmd.user != pwd.getpwuid(os.getuid()).pw_name:
            raise ContainerError(f"running tasks as user {cmd.user!r} is not supported by this containerizer")
        argv = ["/bin/sh", "-c", cmd.value] if cmd.shell else list(cmd.arguments or (cmd.value,))
        if not cmd.shell and not argv:
            raise ContainerError(f"task {task.task_id}: an empty command")
        try:
            os.makedirs(sandbox, exist_ok=True)
            out = open(os.path.join(sandbox, "stdout"), "ab")
            err = open(os.path.join(sandbox, "stderr"), "ab")
        except OSError as e:
            raise ContainerError(f"cannot create the sandbox {sandbox}: {e}") from None
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": sandbox,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "IMPRESARIO_SANDBOX": sandbox,
            "MESOS_SANDBOX": sandbox,
            "IMPRESARIO_TASK_ID": task.task_id,
            "IMPRESARIO_CONTAINER_ID": container_id,
        }
        env.update(dict(cmd.environment))
        executable = None if cmd.shell else cmd.value
        try:
            proc = subprocess.Popen(argv, executable=executable, cwd=sandbox, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True)
        except OSError as e:
            out.close()
            err.close()
            raise ContainerError(f"cannot start {argv[0]!r}: {e.strerror or e}") from None
        self.containers[container_id] = _Container(proc, sandbox, [out, err])
        return Launched(pid=proc.pid)

    def kill(self, container_id: str, hard: bool = False) -> None:
        c = self.containers.get(container_id)
        if c is None or c.proc.returncode is not None:
            return
        _signal_group(c.proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
        c.poll = FAST_POLL

    def reap(self) -> list[ContainerExit]:
        out, self._exits = self._exits, []
        for cid in sorted(self.containers):
            c = self.containers[cid]
            if c.proc.returncode is not None:
                continue
            rc = c.proc.poll()
            if rc is None:
                c.poll = min(SLOW_POLL, c.poll * 1.25)
                continue
            out.append(ContainerExit(cid, rc))
        return out

    def next_check(self) -> float | None:
        live = [c.poll for c in self.containers.values() if c.proc.returncode is None]
        return min(live) if live else None

    def output_tail(self, container_id: str, max_bytes: int) -> bytes:
        c = self.containers.get(container_id)
        if c is None or max_bytes <= 0:
            return b""
        for f in c.files:
            f.flush()
        try:
            with open(os.path.join(c.sandbox, "stdout"), "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                return f.read()
        except OSError:
            return b""

    def destroy(self, container_id: str) -> None:
        c = self.containers.pop(container_id, None)
        if c is None:
            return
        # The main process is gone; anything it left behind in its group goes too.
        _signal_group(c.proc.pid, signal.SIGKILL)
        if c.proc.returncode is None:
            try:
                c.proc.wait(timeout=SHUTDOWN_GRACE)
            except subprocess.TimeoutExpired:
                pass
        for f in c.files:
            f.close()

    def shutdown(self) -> None:
        live = [c for c in self.containers.values() if c.proc.returncode is None]
        for c in live:
            _signal_group(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for c in live:
            try:
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for cid in list(self.containers):
            self.destroy(cid)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
