"""Tasks run as a user, with real processes: the user a framework (or a task's command)
names, as the ACL allows; root only where both the ACL and the agent allow it.

A test user (with a group of its own, a supplementary group and a home directory)
is created for the module and removed after it; the tests need root for that and to
switch users, and skip saying so without it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from actors.ports import ContainerError
from actors.protocol import messages as M
from actors.protocol.resources import Resources
from tests.harness import RealHarness

pytestmark = pytest.mark.integration

ANY = {"type": "ANY"}
REPORT = ('id -u > uid; id -g > gid; id -G > groups; printf "%s\\n" "$HOME" > home; '
          'printf "%s\\n" "$USER" > user; touch made')


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def user() -> Iterator[tuple[pwd.struct_passwd, int]]:
    """A fresh unprivileged user (its passwd entry) and the gid of its supplementary group."""
    if os.geteuid() != 0:
        pytest.skip("creating a test user and running tasks as it needs root")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    name, extra = f"impr-t{os.getpid()}", f"impr-g{os.getpid()}"
    home = tempfile.mkdtemp(prefix="impresario-home-")
    os.chmod(home, 0o755)
    made_group = made_user = False
    try:
        _run("groupadd", extra)
        made_group = True
        _run("useradd", "--home-dir", home, "--no-create-home", "--shell", "/usr/sbin/nologin",
             "--user-group", "--groups", extra, name)
        made_user = True
        pw = pwd.getpwnam(name)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        yield pw, grp.getgrnam(extra).gr_gid
    finally:
        if made_user:
            subprocess.run(["userdel", name], capture_output=True)
        if made_group:
            subprocess.run(["groupdel", extra], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def work_dir() -> Iterator[str]:
    """A work directory the test user may reach (a pytest tmp_path's parents are private)."""
    path = tempfile.mkdtemp(prefix="impresario-runas-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cluster(work_dir: str, users: list[str], **agent_settings: Any) -> RealHarness:
    acls = {"permissive": False,
            "register_agents": [{"principals": ANY}],
            "register_frameworks": [{"principals": ANY, "roles": ANY}],
            "run_tasks": [{"principals": ANY, "users": {"values": users}}]}
    return RealHarness(agents=1, resources="cpus:2;mem:1024;disk:1024", work_dir=work_dir,
                       master_settings={"acls": acls}, agent_settings=agent_settings)


def sandbox_of(work_dir: str, task_id: str) -> str:
    found = [d for d, _, files in os.walk(work_dir) if "made" in files and f"/executors/{task_id}/" in d]
    assert len(found) == 1, found
    return found[0]


def read(sandbox: str, name: str) -> str:
    with open(os.path.join(sandbox, name)) as f:
        return f.read().strip()


def test_tasks_run_as_the_user_their_framework_or_command_names(user, work_dir):
    pw, extra_gid = user
    h = cluster(work_dir, [pw.pw_name, "root", "no-such-user-here"])
    try:
        fw = h.probe(user=pw.pw_name)                      # the framework's user
        o = h.wait_offers(fw)[0]
        h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[
            {"task_id": "by-framework", "command": REPORT},
            {"task_id": "by-command", "command": REPORT, "user": pw.pw_name},
            {"task_id": "forbidden", "command": "true", "user": "daemon"},
            {"task_id": "unknown", "command": "true", "user": "no-such-user-here"},
            {"task_id": "as-root", "command": "true", "user": "root"},
        ])
        for tid in ("by-framework", "by-command"):
            h.wait_update(fw, tid, "TASK_FINISHED")
            box = sandbox_of(work_dir, tid)
            assert (os.stat(box).st_uid, os.stat(box).st_gid) == (pw.pw_uid, pw.pw_gid)
            assert os.stat(os.path.join(box, "made")).st_uid == pw.pw_uid
            assert read(box, "uid") == str(pw.pw_uid) and read(box, "gid") == str(pw.pw_gid)
            assert set(read(box, "groups").split()) == {str(pw.pw_gid), str(extra_gid)}
            assert read(box, "home") == pw.pw_dir and read(box, "user") == pw.pw_name

        err = h.wait_update(fw, "forbidden", "TASK_ERROR")
        assert err["source"] == "SOURCE_MASTER" and err["reason"] == "REASON_TASK_UNAUTHORIZED"
        assert "may not run tasks as user 'daemon'" in err["message"]
        failed = h.wait_update(fw, "unknown", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert failed["message"] == "cannot run the task as user 'no-such-user-here': no such user on this host"
        # The ACL names root, but this agent does not run root's tasks (allow_root_tasks is off).
        root = h.wait_update(fw, "as-root", "TASK_ERROR")
        assert root["source"] == "SOURCE_AGENT" and root["reason"] == "REASON_TASK_UNAUTHORIZED"
        assert root["message"] == "task as-root: this agent does not run tasks as root (allow_root_tasks is off)"
    finally:
        h.stop()


def test_an_agent_that_allows_root_runs_a_task_as_root_where_the_acl_names_it(user, work_dir):
    h = cluster(work_dir, ["root"], allow_root_tasks=True)
    try:
        fw = h.probe()
        o = h.wait_offers(fw)[0]
        h.do(fw, "launch", offer_ids=[o["offer_id"]], tasks=[
            {"task_id": "as-root", "command": REPORT, "user": "root"},
            {"task_id": "unnamed", "command": "true"}])     # names no user: the ACL has no ANY
        h.wait_update(fw, "as-root", "TASK_FINISHED")
        assert read(sandbox_of(work_dir, "as-root"), "uid") == "0"
        err = h.wait_update(fw, "unnamed", "TASK_ERROR")
        assert "run tasks as the agent's user (a task that names no user)" in err["message"]
    finally:
        h.stop()


def test_a_sandbox_the_user_cannot_reach_fails_the_launch_saying_which_directory(user, tmp_path):
    from isolators.containerizer import Containerizer

    pw, _ = user
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    sandbox = str(closed / "sandbox")
    task = M.TaskInfo("t", "t", "a", Resources.of(cpus=0.1, mem=16), M.CommandInfo("true", user=pw.pw_name))
    c = Containerizer(None, {"containerizer": {"isolation": "posix"}})
    with pytest.raises(ContainerError) as e:
        c.launch("c1", task, sandbox)
    # The first directory on the way that the user may not search (pytest's own are private too).
    assert f"cannot run the task as user {pw.pw_name!r}: it cannot reach its sandbox {sandbox}: " in e.value.message
    assert "does not let it through" in e.value.message
    assert not c.running


def test_a_user_with_uid_0_that_is_not_named_root_is_refused(monkeypatch):
    import isolators.containerizer as cz

    fake = pwd.struct_passwd(("toor", "x", 0, 0, "", "/root", "/bin/sh"))
    real = pwd.getpwnam
    monkeypatch.setattr(cz.pwd, "getpwnam", lambda name: fake if name == "toor" else real(name))
    with pytest.raises(ContainerError, match=r"user 'toor': its uid is 0, and a task runs as root only when "
                                             r"it names root"):
        cz.run_as("toor")
    assert cz.run_as("") is None
    assert cz.run_as(pwd.getpwuid(os.geteuid()).pw_name) is None     # its own user: no switch
