"""The protocol: every value and message the kernel's actors exchange.

Names follow Mesos v1 where one exists (SUBSCRIBE, OFFERS, ACCEPT, ...; TASK_STAGING ...
TASK_UNREACHABLE), so that Mesos users recognise them.  Every message is a frozen, slotted
dataclass registered with the codec under a numeric tag (``@message(tag)``), grouped by
protocol: 1-49 scheduler calls (framework -> master), 50-99 scheduler events (master ->
framework), 100-149 the agent protocol (master <-> agent), 150-199 the executor protocol
(agent <-> executor), 200-249 master <-> allocator, 250-299 configuration, operator calls
and queries.  A tag is never reused for another meaning: a changed meaning is a new tag or
a new protocol version.  What a framework uses of them: docs/frameworks.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from actors.protocol.codec import (
    Count,
    Id,
    Json,
    OptId,
    Role,
    Seconds,
    intern_values,
    memoize,
    message,
    union_member,
    value,
)
from actors.protocol.resources import EMPTY, Resources

Labels = tuple[tuple[str, str], ...]

# --------------------------------------------------------------------------- enumerations


class TaskState(enum.IntEnum):
    """Task states with Mesos' names and numbers (``include/mesos/v1/mesos.proto``)."""

    TASK_STAGING = 6
    TASK_STARTING = 0
    TASK_RUNNING = 1
    TASK_KILLING = 8
    TASK_FINISHED = 2
    TASK_FAILED = 3
    TASK_KILLED = 4
    TASK_ERROR = 7
    TASK_LOST = 5
    TASK_DROPPED = 9
    TASK_UNREACHABLE = 10
    TASK_GONE = 11
    TASK_GONE_BY_OPERATOR = 12
    TASK_UNKNOWN = 13

    def __str__(self) -> str:
        return self.name

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({
    TaskState.TASK_FINISHED, TaskState.TASK_FAILED, TaskState.TASK_KILLED,
    TaskState.TASK_ERROR, TaskState.TASK_LOST, TaskState.TASK_DROPPED,
    TaskState.TASK_GONE, TaskState.TASK_GONE_BY_OPERATOR,
})

#: States only frameworks with the PARTITION_AWARE capability are shown; the
#: others see TASK_LOST in their place.
PARTITION_AWARE_STATES = frozenset({
    TaskState.TASK_DROPPED, TaskState.TASK_UNREACHABLE, TaskState.TASK_GONE,
    TaskState.TASK_GONE_BY_OPERATOR, TaskState.TASK_UNKNOWN,
})


class Source(enum.IntEnum):
    SOURCE_MASTER = 0
    SOURCE_AGENT = 1
    SOURCE_EXECUTOR = 2

    def __str__(self) -> str:
        return self.name


class Reason(enum.StrEnum):
    """Why a task changed state (Mesos' ``TaskStatus.Reason`` names)."""

    REASON_COMMAND_EXECUTOR_FAILED = "REASON_COMMAND_EXECUTOR_FAILED"
    REASON_CONTAINER_LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
    REASON_CONTAINER_LIMITATION = "REASON_CONTAINER_LIMITATION"
    REASON_CONTAINER_LIMITATION_DISK = "REASON_CONTAINER_LIMITATION_DISK"
    REASON_CONTAINER_LIMITATION_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
    REASON_CONTAINER_PREEMPTED = "REASON_CONTAINER_PREEMPTED"
    REASON_CONTAINER_UPDATE_FAILED = "REASON_CONTAINER_UPDATE_FAILED"
    REASON_MAX_COMPLETION_TIME_REACHED = "REASON_MAX_COMPLETION_TIME_REACHED"
    REASON_EXECUTOR_REGISTRATION_TIMEOUT = "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    REASON_EXECUTOR_REREGISTRATION_TIMEOUT = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT"
    REASON_EXECUTOR_TERMINATED = "REASON_EXECUTOR_TERMINATED"
    REASON_EXECUTOR_UNREGISTERED = "REASON_EXECUTOR_UNREGISTERED"
    REASON_FRAMEWORK_REMOVED = "REASON_FRAMEWORK_REMOVED"
    REASON_GC_ERROR = "REASON_GC_ERROR"
    REASON_INVALID_FRAMEWORKID = "REASON_INVALID_FRAMEWORKID"
    REASON_INVALID_OFFERS = "REASON_INVALID_OFFERS"
    REASON_MASTER_DISCONNECTED = "REASON_MASTER_DISCONNECTED"
    REASON_RECONCILIATION = "REASON_RECONCILIATION"
    REASON_RESOURCES_UNKNOWN = "REASON_RESOURCES_UNKNOWN"
    REASON_AGENT_DISCONNECTED = "REASON_AGENT_DISCONNECTED"
    REASON_AGENT_REMOVED = "REASON_AGENT_REMOVED"
    REASON_AGENT_REMOVED_BY_OPERATOR = "REASON_AGENT_REMOVED_BY_OPERATOR"
    REASON_AGENT_REREGISTERED = "REASON_AGENT_REREGISTERED"
    REASON_AGENT_RESTARTED = "REASON_AGENT_RESTARTED"
    REASON_AGENT_UNKNOWN = "REASON_AGENT_UNKNOWN"
    REASON_TASK_KILLED_DURING_LAUNCH = "REASON_TASK_KILLED_DURING_LAUNCH"
    REASON_TASK_GROUP_INVALID = "REASON_TASK_GROUP_INVALID"
    REASON_TASK_GROUP_UNAUTHORIZED = "REASON_TASK_GROUP_UNAUTHORIZED"
    REASON_TASK_INVALID = "REASON_TASK_INVALID"
    REASON_TASK_UNAUTHORIZED = "REASON_TASK_UNAUTHORIZED"
    REASON_TASK_UNKNOWN = "REASON_TASK_UNKNOWN"


class Capability(enum.StrEnum):
    """Framework capabilities (``FrameworkInfo.Capability.Type``)."""

    REVOCABLE_RESOURCES = "REVOCABLE_RESOURCES"
    TASK_KILLING_STATE = "TASK_KILLING_STATE"
    GPU_RESOURCES = "GPU_RESOURCES"
    SHARED_RESOURCES = "SHARED_RESOURCES"
    PARTITION_AWARE = "PARTITION_AWARE"
    MULTI_ROLE = "MULTI_ROLE"
    RESERVATION_REFINEMENT = "RESERVATION_REFINEMENT"
    REGION_AWARE = "REGION_AWARE"


class ExecutorType(enum.StrEnum):
    COMMAND = "COMMAND"   #: one task, one command (Mesos' command executor)
    DEFAULT = "DEFAULT"   #: a task group, each task a nested container (Mesos' default executor)


# --------------------------------------------------------------------------- values


@value
@dataclass(frozen=True, slots=True)
class CommandInfo:
    """What to run.  ``shell`` runs ``value`` through ``/bin/sh -c``; otherwise
    ``value`` is the program and ``arguments`` its argv (argv[0] included)."""

    value: str
    shell: bool = True
    arguments: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    user: str = ""


@value
@dataclass(frozen=True, slots=True)
class ExecutorInfo:
    executor_id: Id
    framework_id: OptId = ""
    type: ExecutorType = ExecutorType.DEFAULT
    resources: Resources = EMPTY
    name: str = ""


@value
@dataclass(frozen=True, slots=True)
class TaskInfo:
    task_id: Id
    name: str
    agent_id: OptId
    resources: Resources
    command: CommandInfo | None = None
    executor: ExecutorInfo | None = None
    labels: Labels = ()
    kill_grace_seconds: Seconds | None = None

    def label(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return default


@value
@dataclass(frozen=True, slots=True)
class ContainerStatus:
    container_id: str = ""
    ip_addresses: tuple[str, ...] = ()
    executor_pid: int = 0


@value
@dataclass(frozen=True, slots=True)
class TaskStatus:
    task_id: Id
    state: TaskState
    source: Source = Source.SOURCE_MASTER
    reason: Reason | None = None
    message: str = ""
    agent_id: OptId = ""
    executor_id: OptId = ""
    timestamp: float = 0.0
    uuid: str = ""             #: non-empty: a reliable update, retried until acknowledged
    data: bytes = b""
    container_status: ContainerStatus | None = None
    labels: Labels = ()


@value
@dataclass(frozen=True, slots=True)
class FrameworkInfo:
    name: str
    user: str = ""
    roles: tuple[Role, ...] = ("*",)
    capabilities: tuple[Capability, ...] = ()
    failover_timeout: Seconds = 7 * 86400.0
    id: OptId = ""
    principal: str = ""
    hostname: str = ""
    checkpoint: bool = True
    labels: Labels = ()

    def has(self, cap: Capability) -> bool:
        return cap in self.capabilities


@value
@dataclass(frozen=True, slots=True)
class AgentInfo:
    hostname: str
    resources: Resources
    attributes: Labels = ()
    id: OptId = ""
    capabilities: tuple[str, ...] = ("MULTI_ROLE", "HIERARCHICAL_ROLE")
    http_address: str = ""     #: where its HTTP endpoints are (``http://host:port``), if it has them


@value
@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: Id
    framework_id: Id
    agent_id: Id
    hostname: str
    role: Role
    resources: Resources
    attributes: Labels = ()


@value
@dataclass(frozen=True, slots=True)
class Filters:
    """How long declined resources stay away from the framework (Mesos default 5 s)."""

    refuse_seconds: float = 5.0


@union_member(1)
@dataclass(frozen=True, slots=True)
class Launch:
    task_infos: tuple[TaskInfo, ...]


@union_member(2)
@dataclass(frozen=True, slots=True)
class LaunchGroup:
    executor: ExecutorInfo
    task_group: tuple[TaskInfo, ...]


Operation = Union[Launch, LaunchGroup]  # noqa: UP007 - the codec reads this annotation


@value
@dataclass(frozen=True, slots=True)
class AssignedGpu:
    """A whole GPU an agent gave a task: NVML index, device minor number, UUID."""

    task_id: Id
    index: Count
    minor: Count
    uuid: str = ""


@value
@dataclass(frozen=True, slots=True)
class ResourceStatistics:
    """A container's measured usage (Mesos' ``ResourceStatistics`` names).

    Times are cumulative seconds since the container started; ``timestamp``
    is the host's clock when sampled.
    """

    timestamp: float
    cpus_user_time_secs: Seconds = 0.0
    cpus_system_time_secs: Seconds = 0.0
    cpus_limit: Seconds = 0.0
    cpus_nr_periods: Count = 0
    cpus_nr_throttled: Count = 0
    cpus_throttled_time_secs: Seconds = 0.0
    mem_rss_bytes: Count = 0
    mem_total_bytes: Count = 0
    mem_limit_bytes: Count = 0
    processes: Count = 0


@value
@dataclass(frozen=True, slots=True)
class TaskUsage:
    """One task's usage: the raw statistics, and ``used`` (cpus as a rate over the last
    sampling interval, mem as resident MiB), what the master counts as the role's use."""

    framework_id: Id
    executor_id: Id
    task_id: Id
    statistics: ResourceStatistics
    used: Resources = EMPTY


@value
@dataclass(frozen=True, slots=True)
class ReconcileTask:
    task_id: Id
    agent_id: OptId = ""


# --------------------------------------------------------------------------- scheduler calls


@message(1)
@dataclass(frozen=True, slots=True)
class Subscribe:
    framework_info: FrameworkInfo
    suppressed_roles: tuple[Role, ...] = ()


@message(2)
@dataclass(frozen=True, slots=True)
class Teardown:
    framework_id: Id


@message(3)
@dataclass(frozen=True, slots=True)
class Accept:
    framework_id: Id
    offer_ids: tuple[Id, ...]
    operations: tuple[Operation, ...]
    filters: Filters | None = None


@message(4)
@dataclass(frozen=True, slots=True)
class Decline:
    framework_id: Id
    offer_ids: tuple[Id, ...]
    filters: Filters | None = None


@message(5)
@dataclass(frozen=True, slots=True)
class Revive:
    framework_id: Id
    roles: tuple[Role, ...] = ()


@message(6)
@dataclass(frozen=True, slots=True)
class Suppress:
    framework_id: Id
    roles: tuple[Role, ...] = ()


@message(7)
@dataclass(frozen=True, slots=True)
class Kill:
    framework_id: Id
    task_id: Id
    agent_id: OptId = ""
    grace_seconds: Seconds | None = None


@message(8)
@dataclass(frozen=True, slots=True)
class Shutdown:
    framework_id: Id
    executor_id: Id
    agent_id: Id


@message(9)
@dataclass(frozen=True, slots=True)
class Acknowledge:
    framework_id: Id
    agent_id: Id
    task_id: Id
    uuid: str


@message(10)
@dataclass(frozen=True, slots=True)
class Reconcile:
    framework_id: Id
    tasks: tuple[ReconcileTask, ...] = ()


@message(11)
@dataclass(frozen=True, slots=True)
class Message:
    """Scheduler call MESSAGE: opaque data for one of the framework's executors."""

    framework_id: Id
    agent_id: Id
    executor_id: Id
    data: bytes


@message(12)
@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    """The framework's answer to a HEARTBEAT: the master's sign that it is still there
    (Mesos learns it from the scheduler's open connection)."""

    framework_id: Id


# --------------------------------------------------------------------------- scheduler events


@message(50)
@dataclass(frozen=True, slots=True)
class Subscribed:
    """``agents_recovering``: how many agents a master that failed over still waits for; a
    framework reconciles once they are back (a heartbeat says so), not while the master's
    queue is full of their re-registrations."""

    framework_id: Id
    heartbeat_interval_seconds: Seconds
    master_id: str
    agents_recovering: int = 0


@message(51)
@dataclass(frozen=True, slots=True)
class Offers:
    offers: tuple[Offer, ...]


@message(52)
@dataclass(frozen=True, slots=True)
class Rescind:
    offer_id: Id


@message(53)
@dataclass(frozen=True, slots=True)
class Update:
    status: TaskStatus


@message(58)
@dataclass(frozen=True, slots=True)
class Updates:
    """Scheduler event UPDATE, several at once: the master's answers to a reconciliation
    (one message for up to :data:`UPDATES_BATCH` tasks; none of them is to be acknowledged)."""

    statuses: tuple[TaskStatus, ...]


#: The most statuses one :class:`Updates` carries.
UPDATES_BATCH = 1000


@message(54)
@dataclass(frozen=True, slots=True)
class MessageEvent:
    """Scheduler event MESSAGE: opaque data from an executor."""

    agent_id: Id
    executor_id: Id
    data: bytes


@message(55)
@dataclass(frozen=True, slots=True)
class Failure:
    """An agent was removed (no executor id) or an executor terminated."""

    agent_id: OptId
    executor_id: OptId = ""
    status: int | None = None


@message(56)
@dataclass(frozen=True, slots=True)
class Error:
    """The master refused a call, or ends the framework's subscription."""

    message: str
    call: str = ""          #: the refused call's type, when the error answers a call
    fatal: bool = False     #: True: the subscription is over
    resubscribe: bool = False  #: True: the master does not count this scheduler as subscribed: SUBSCRIBE again


@message(57)
@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent to every subscribed framework each ``heartbeat_interval_seconds``; it names
    the master, so a framework notices a new one and re-subscribes.  ``updates`` counts the
    status updates the master sent it since it subscribed: messages between two actors
    arrive in order, so a framework that heard fewer lost some and reconciles."""

    master_id: str = ""
    updates: int = 0
    agents_recovering: int = 0


# --------------------------------------------------------------------------- agent protocol


@value
@dataclass(frozen=True, slots=True)
class AgentTask:
    """A task as an agent reports it when it re-registers."""

    framework_id: Id
    executor_id: Id
    task: TaskInfo
    state: TaskState


@message(100)
@dataclass(frozen=True, slots=True)
class RegisterAgent:
    agent_info: AgentInfo
    version: str = ""
    incarnation: str = ""    #: new at every agent start: a new one at a known address means a restart


@message(101)
@dataclass(frozen=True, slots=True)
class ReregisterAgent:
    agent_info: AgentInfo
    frameworks: tuple[FrameworkInfo, ...] = ()
    executors: tuple[ExecutorInfo, ...] = ()
    tasks: tuple[AgentTask, ...] = ()
    version: str = ""
    incarnation: str = ""


@message(102)
@dataclass(frozen=True, slots=True)
class AgentRegistered:
    agent_id: Id
    master_id: str
    ping_interval_seconds: Seconds


@message(103)
@dataclass(frozen=True, slots=True)
class AgentReregistered:
    agent_id: Id
    master_id: str
    ping_interval_seconds: Seconds


@message(104)
@dataclass(frozen=True, slots=True)
class RunTask:
    framework: FrameworkInfo
    task: TaskInfo


@message(105)
@dataclass(frozen=True, slots=True)
class RunTaskGroup:
    framework: FrameworkInfo
    executor: ExecutorInfo
    task_group: tuple[TaskInfo, ...]


@message(106)
@dataclass(frozen=True, slots=True)
class KillTask:
    framework_id: Id
    task_id: Id
    grace_seconds: Seconds | None = None


@message(107)
@dataclass(frozen=True, slots=True)
class ShutdownExecutor:
    framework_id: Id
    executor_id: Id


@message(108)
@dataclass(frozen=True, slots=True)
class ShutdownFramework:
    framework_id: Id


@message(109)
@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A task status travelling agent -> master (reliable when ``status.uuid`` is set)."""

    framework_id: Id
    status: TaskStatus
    latest_state: TaskState | None = None


@message(110)
@dataclass(frozen=True, slots=True)
class StatusUpdateAck:
    agent_id: Id
    framework_id: Id
    task_id: Id
    uuid: str


@message(111)
@dataclass(frozen=True, slots=True)
class Ping:
    master_id: str
    connected: bool = True


@message(112)
@dataclass(frozen=True, slots=True)
class Pong:
    agent_id: OptId


@message(113)
@dataclass(frozen=True, slots=True)
class FrameworkToExecutor:
    agent_id: Id
    framework_id: Id
    executor_id: Id
    data: bytes


@message(114)
@dataclass(frozen=True, slots=True)
class ExecutorToFramework:
    agent_id: Id
    framework_id: Id
    executor_id: Id
    data: bytes


@message(115)
@dataclass(frozen=True, slots=True)
class ExitedExecutor:
    agent_id: Id
    framework_id: Id
    executor_id: Id
    status: int | None = None


@message(116)
@dataclass(frozen=True, slots=True)
class AgentRefused:
    """The master will not admit this agent (a clear reason; the agent stops trying)."""

    message: str


@message(117)
@dataclass(frozen=True, slots=True)
class UsageReport:
    """Agent -> master: the latest measured usage of running tasks, batched."""

    agent_id: Id
    usages: tuple[TaskUsage, ...]


# --------------------------------------------------------------------------- executor protocol


@message(150)
@dataclass(frozen=True, slots=True)
class ExecSubscribe:
    """Executor -> agent, once configured (Mesos executor call SUBSCRIBE)."""

    framework_id: Id
    executor_id: Id
    unacknowledged_updates: tuple[TaskStatus, ...] = ()


@message(151)
@dataclass(frozen=True, slots=True)
class ExecSubscribed:
    framework_id: Id
    executor_id: Id
    agent_id: Id


@message(152)
@dataclass(frozen=True, slots=True)
class ExecLaunch:
    task: TaskInfo
    gpus: tuple[AssignedGpu, ...] = ()   #: the GPUs the agent gave the task


@message(153)
@dataclass(frozen=True, slots=True)
class ExecLaunchGroup:
    executor: ExecutorInfo
    task_group: tuple[TaskInfo, ...]
    gpus: tuple[AssignedGpu, ...] = ()   #: the GPUs the agent gave the group's tasks


@message(154)
@dataclass(frozen=True, slots=True)
class ExecKill:
    task_id: Id
    grace_seconds: Seconds | None = None


@message(155)
@dataclass(frozen=True, slots=True)
class ExecAcknowledged:
    task_id: Id
    uuid: str


@message(156)
@dataclass(frozen=True, slots=True)
class ExecShutdown:
    grace_seconds: Seconds | None = None


@message(157)
@dataclass(frozen=True, slots=True)
class ExecUpdate:
    """Executor -> agent: a task status (executor call UPDATE)."""

    status: TaskStatus


@message(158)
@dataclass(frozen=True, slots=True)
class ExecMessage:
    """Opaque data between a framework's scheduler and its executor, either way."""

    data: bytes


@message(159)
@dataclass(frozen=True, slots=True)
class ExecUsage:
    """Executor -> agent: its running tasks' measured usage."""

    usages: tuple[TaskUsage, ...]


# --------------------------------------------------------------------------- durable records


@value
@dataclass(frozen=True, slots=True)
class AgentRecord:
    """The master's registry entry of an agent: where it is, and whether it was reachable."""

    address: str
    info: AgentInfo
    reachable: bool = True


@value
@dataclass(frozen=True, slots=True)
class FrameworkRecord:
    """The master's registry entry of a framework: its scheduler's address and info."""

    address: str
    info: FrameworkInfo


@value
@dataclass(frozen=True, slots=True)
class AgentCheckpoint:
    """An agent's own record: the id the master gave it, and which master."""

    agent_id: Id
    master_id: str = ""


@value
@dataclass(frozen=True, slots=True)
class ExecutorCheckpoint:
    """An agent's record of one executor: enough to re-create it after a restart and
    re-attach it to its containers.  ``states`` holds the tasks' terminal states only
    (the others are what their containers say)."""

    framework_id: Id
    info: ExecutorInfo
    container_id: str
    default: bool                       #: the default executor (task groups), else a command executor
    tasks: tuple[TaskInfo, ...] = ()
    groups: tuple[Count, ...] = ()      #: the launch group of each task (default executor)
    states: tuple[tuple[str, TaskState], ...] = ()
    gpus: tuple[AssignedGpu, ...] = ()


@value
@dataclass(frozen=True, slots=True)
class UpdatesCheckpoint:
    """An agent's record of the status updates of one task not yet acknowledged."""

    updates: tuple[StatusUpdate, ...]
    task: TaskInfo | None = None


@value
@dataclass(frozen=True, slots=True)
class RecoveredTask:
    task: TaskInfo
    container_id: str
    group: Count = 0
    state: TaskState = TaskState.TASK_STAGING   #: terminal: nothing to re-attach


@message(160)
@dataclass(frozen=True, slots=True)
class ExecRecover:
    """Agent -> a re-created executor: the tasks it had before the agent restarted; it
    re-attaches to their containers (or reports them gone)."""

    tasks: tuple[RecoveredTask, ...]


# --------------------------------------------------------------------------- allocator protocol


@value
@dataclass(frozen=True, slots=True)
class Allocation:
    framework_id: Id
    role: Role
    agent_id: Id
    resources: Resources


@value
@dataclass(frozen=True, slots=True)
class Recovered:
    """Resources coming back to the allocator: declined, unused, or freed by a task."""

    framework_id: Id
    agent_id: Id
    role: Role
    resources: Resources
    refuse_seconds: Seconds | None = None


@message(200)
@dataclass(frozen=True, slots=True)
class AllocAddAgent:
    agent_id: Id
    total: Resources
    allocated: tuple[Allocation, ...] = ()
    capabilities: tuple[str, ...] = ()


@message(201)
@dataclass(frozen=True, slots=True)
class AllocRemoveAgent:
    agent_id: Id


@message(202)
@dataclass(frozen=True, slots=True)
class AllocAddFramework:
    framework_id: Id
    roles: tuple[Role, ...]
    capabilities: tuple[Capability, ...] = ()
    suppressed_roles: tuple[Role, ...] = ()
    allocated: tuple[Allocation, ...] = ()


@message(203)
@dataclass(frozen=True, slots=True)
class AllocRemoveFramework:
    framework_id: Id


@message(204)
@dataclass(frozen=True, slots=True)
class AllocRecover:
    items: tuple[Recovered, ...]


@message(205)
@dataclass(frozen=True, slots=True)
class AllocSuppress:
    framework_id: Id
    roles: tuple[Role, ...] = ()


@message(206)
@dataclass(frozen=True, slots=True)
class AllocRevive:
    framework_id: Id
    roles: tuple[Role, ...] = ()


@message(207)
@dataclass(frozen=True, slots=True)
class AllocUpdateWeights:
    weights: tuple[tuple[Role, float], ...]


@message(208)
@dataclass(frozen=True, slots=True)
class AllocOffers:
    """Allocator -> master: the result of an allocation run."""

    allocations: tuple[Allocation, ...]


@message(210)
@dataclass(frozen=True, slots=True)
class AllocUpdateQuota:
    """Quota of one role: fixed-point amounts; empty guarantee and limit remove it."""

    role: Role
    guarantee: tuple[tuple[str, Count], ...] = ()
    limit: tuple[tuple[str, Count], ...] = ()


@message(209)
@dataclass(frozen=True, slots=True)
class AllocActivate:
    """The framework is (re)connected (active) or disconnected (inactive)."""

    framework_id: Id
    active: bool


# --------------------------------------------------------------------------- configuration and operator


@message(250)
@dataclass(frozen=True, slots=True)
class Configure:
    """The first message every kernel actor receives: who it is and its ports.

    ``ports`` maps a port name to a factory's dotted path (``"package.module:name"``);
    the factory is called with the actor and ``settings`` and returns the port.
    """

    component: str
    name: str
    settings: Json = field(default_factory=dict)
    ports: tuple[tuple[str, str], ...] = ()


@message(251)
@dataclass(frozen=True, slots=True)
class Configured:
    component: str
    name: str
    error: str = ""


@message(252)
@dataclass(frozen=True, slots=True)
class Query:
    """Ask an actor for a view of its state (``state``, ``summary``, ``done``, ...)."""

    what: str
    args: Json = field(default_factory=dict)


@message(253)
@dataclass(frozen=True, slots=True)
class QueryReply:
    what: str
    result: Json
    error: str = ""


@message(258)
@dataclass(frozen=True, slots=True)
class ViewReply:
    """The answer to ``Query("view", ...)``: a view rendered as JSON, gzip-compressed
    (large views cross hosts and processes in a fraction of their size), or an error."""

    what: str
    body: bytes = b""
    error: str = ""


@message(254)
@dataclass(frozen=True, slots=True)
class UpdateWeights:
    """Operator call UPDATE_WEIGHTS."""

    weights: tuple[tuple[Role, float], ...]


@message(257)
@dataclass(frozen=True, slots=True)
class Masters:
    """The host to its agent or framework: where masters run now (actor addresses, in
    the order to try them), looked up again by the host from its configured master
    addresses.  Taken only from the actor's own principal."""

    addresses: tuple[str, ...]


@message(256)
@dataclass(frozen=True, slots=True)
class UpdateQuota:
    """Operator call UPDATE_QUOTA: a role's guarantee and limit (fixed-point amounts;
    both empty: no quota).  Answered with a QueryReply("quota") or an ERROR."""

    role: Role
    guarantee: tuple[tuple[str, Count], ...] = ()
    limit: tuple[tuple[str, Count], ...] = ()


# The health checks and heartbeats repeat byte for byte: decode each distinct one once.
memoize(Ping, Pong, Heartbeat)
intern_values(CommandInfo, FrameworkInfo)
