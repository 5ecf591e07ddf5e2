"""What the master refuses, as free functions: each returns the problem (a sentence
for the caller) or None, and changes nothing (as Mesos' ``validation.hpp``)."""

from __future__ import annotations

from actors.master.records import FrameworkRec
from actors.protocol import messages as M
from actors.protocol.messages import Capability
from actors.protocol.resources import DEFAULT_ROLE, EMPTY, Resources
from actors.security.acl import ACL, REGISTER_FRAMEWORKS, RUN_TASKS


def framework_problem(info: M.FrameworkInfo) -> str | None:
    """Why a SUBSCRIBE's framework info cannot be taken."""
    if not info.name:
        return "a framework needs a name"
    if not info.roles:
        return "a framework needs at least one role"
    if len(set(info.roles)) != len(info.roles):
        return "a framework's roles must be distinct"
    if len(info.roles) > 1 and Capability.MULTI_ROLE not in info.capabilities:
        return "several roles need the MULTI_ROLE capability"
    return None


def subscription_refused(info: M.FrameworkInfo, principal: str | None, authenticated: bool,
                         acl: ACL | None) -> str | None:
    """Why ``principal`` may not subscribe ``info``: the principal it names must be the one
    it authenticated as, and ``register_frameworks`` must grant every role."""
    if authenticated and info.principal and info.principal != principal:
        return (f"the framework names principal {info.principal!r} but authenticated as "
                f"principal {principal!r}")
    if acl is not None:
        denied = acl.first_denial(REGISTER_FRAMEWORKS, principal, info.roles)
        if denied is not None:
            return denied.reason
    return None


def accept_problem(offer_ids: tuple[str, ...], unknown: str | None, found: list[tuple[str, str]]) -> str | None:
    """Why an ACCEPT cannot use its offers: ``unknown`` is the first offer it names that is
    not (or no longer) the framework's, ``found`` the (agent, role) of those that are."""
    problem = None
    if not offer_ids:
        problem = "ACCEPT names no offer"
    if len(set(offer_ids)) != len(offer_ids):
        problem = "ACCEPT names an offer twice"
    if problem is None and unknown is not None:
        problem = f"offer {unknown} is unknown, was rescinded, or is not this framework's"
    if not problem and len({agent for agent, _ in found}) > 1:
        problem = "the offers of one ACCEPT must come from one agent"
    if not problem and len({role for _, role in found}) > 1:
        problem = "the offers of one ACCEPT must be allocated to one role"
    return problem


def task_problem(fw: FrameworkRec, agent_id: str, role: str, task: M.TaskInfo,
                 seen: set[str]) -> tuple[str | None, Resources]:
    """Why ``task`` cannot run on ``agent_id`` from an offer for ``role``; else its
    resources, in that role."""
    tid = task.task_id
    if tid in fw.tasks or tid in fw.unreachable or tid in fw.completed_ids or tid in seen:
        return f"task id {tid!r} is already in use by this framework", EMPTY
    if task.agent_id and task.agent_id != agent_id:
        return f"task {tid} names agent {task.agent_id} but the offer is on {agent_id}", EMPTY
    res = task.resources
    if res.role == DEFAULT_ROLE and role != DEFAULT_ROLE:
        res = res.with_role(role)
    elif res.role != role:
        return f"task {tid} uses resources of role {res.role!r} in an offer for {role!r}", EMPTY
    if res.is_empty():
        return f"task {tid} asks for no resources", EMPTY
    if res.millis("gpus") % 1000:
        return f"task {tid} asks for {res.gpus} gpus: only whole GPUs can be allocated", EMPTY
    return None, res


def command_task_problem(task: M.TaskInfo) -> str | None:
    """Why ``task`` cannot be a LAUNCH's command task."""
    if task.executor is not None:
        return "LAUNCH runs a command task: use LAUNCH_GROUP for a task with an executor"
    if task.command is None:
        return f"task {task.task_id} has no command"
    return None


def group_problem(op: M.LaunchGroup, ex_res: Resources, role: str) -> str | None:
    """Why a LAUNCH_GROUP's executor cannot run from an offer for ``role``."""
    ex = op.executor
    if not op.task_group:
        return "LAUNCH_GROUP with an empty task group"
    if ex.type != M.ExecutorType.DEFAULT:
        return "a task group runs under the DEFAULT executor"
    if ex_res.role != role:
        return f"executor resources of role {ex_res.role!r} in an offer for {role!r}"
    return None


def group_task_problem(task: M.TaskInfo, executor_id: str) -> str | None:
    """Why ``task`` cannot be one of a group run by ``executor_id``."""
    if task.command is None:
        return f"task {task.task_id} has no command"
    if task.executor is not None and task.executor.executor_id != executor_id:
        return f"task {task.task_id} names another executor"
    return None


def user_unauthorized(acl: ACL, fw: FrameworkRec, principal: str | None, task: M.TaskInfo) -> str | None:
    """Why the framework (as ``principal``) may not run ``task`` as its user (the
    command's, else the framework's), or None."""
    user = (task.command.user if task.command is not None else "") or fw.info.user
    decision = acl.check(RUN_TASKS, principal, user)
    return None if decision else f"task {task.task_id}: {decision.reason}"


def refuse_seconds(filters: M.Filters | None) -> float:
    """Mesos: default 5 s; negative means the default; over a year is clamped to a year."""
    if filters is None:
        return 5.0
    r = filters.refuse_seconds
    if r < 0:
        return 5.0
    return min(r, 365 * 86400.0)
