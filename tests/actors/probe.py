"""A framework a test drives from outside, the same way on both hosts.

It keeps every offer (it declines nothing on its own), records every event,
and performs actions asked for through ``Query("do", {...})``.  Events come
back through ``Query("events")``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from actors.frameworks.base import Framework
from actors.frameworks.batch import make_task
from actors.protocol import messages as M
from actors.protocol.resources import Resources


def status_dict(s: M.TaskStatus) -> dict[str, Any]:
    return {"task_id": s.task_id, "state": str(s.state), "reason": str(s.reason) if s.reason else None,
            "message": s.message, "agent_id": s.agent_id, "uuid": s.uuid, "source": str(s.source),
            "data": s.data.decode(errors="replace"),
            "pid": s.container_status.executor_pid if s.container_status else 0,
            "ip_addresses": list(s.container_status.ip_addresses) if s.container_status else []}


def offer_dict(o: M.Offer) -> dict[str, Any]:
    return {"offer_id": o.offer_id, "agent_id": o.agent_id, "role": o.role,
            "resources": o.resources.to_dict()}


class ProbeFramework(Framework):
    def setup(self, settings: dict[str, Any]) -> None:
        self.events: dict[str, list[Any]] = {"offers": [], "updates": [], "errors": [], "rescinds": [],
                                             "failures": [], "messages": []}
        self.acks_left = settings.get("ack_after", 0)

    def resource_offers(self, offers: list[M.Offer]) -> None:
        for o in offers:
            self.events["offers"].append({**offer_dict(o), "at": self.now()})

    def offer_rescinded(self, offer_id: str) -> None:
        self.events["rescinds"].append(offer_id)

    def status_update(self, status: M.TaskStatus) -> None:
        self.events["updates"].append({**status_dict(status), "at": self.now()})

    def error(self, message: str) -> None:
        self.events["errors"].append(message)

    def failure(self, agent_id: str, executor_id: str, status: int | None) -> None:
        self.events["failures"].append([agent_id, executor_id, status])

    def framework_message(self, agent_id: str, executor_id: str, data: bytes) -> None:
        self.events["messages"].append(data.decode())

    def _task(self, spec: dict[str, Any], agent_id: str) -> M.TaskInfo:
        res = Resources.of(cpus=spec.get("cpus", 0.1), mem=spec.get("mem", 32), gpus=spec.get("gpus", 0),
                           role=spec.get("role", "*"))
        task = make_task(spec["task_id"], agent_id, res, command=spec.get("command"),
                         duration=spec.get("duration"), exit_code=spec.get("exit_code"),
                         labels=tuple(tuple(kv) for kv in spec.get("labels", {}).items()),
                         kill_grace_seconds=spec.get("grace"), user=spec.get("user", ""))
        if spec.get("env") and task.command is not None:
            task = dataclasses.replace(task, command=dataclasses.replace(
                task.command, environment=tuple(sorted(spec["env"].items()))))
        return task

    def query(self, what: str, args: dict[str, Any]) -> Any:
        if what == "events":
            return {**self.events, "framework_id": self.framework_id, "connected": self.connected,
                    "outstanding_offers": sorted(self.offers)}
        if what == "do":
            return self.do(args)
        return super().query(what, args)

    def do(self, a: dict[str, Any]) -> Any:
        action = a["action"]
        if action == "launch":
            offer = self.offers.get(a["offer_ids"][0]) if a["offer_ids"] else None
            agent = a.get("agent_id") or (offer.agent_id if offer else "")
            tasks = tuple(self._task(t, agent) for t in a["tasks"])
            self.accept(a["offer_ids"], [M.Launch(tasks)], a.get("refuse_seconds"))
        elif action == "launch_group":
            agent = self.offers[a["offer_ids"][0]].agent_id
            ex = M.ExecutorInfo(a["executor_id"], self.framework_id, M.ExecutorType.DEFAULT,
                                Resources.of(cpus=a.get("executor_cpus", 0.1), mem=a.get("executor_mem", 32)))
            tasks = tuple(self._task(t, agent) for t in a["tasks"])
            self.accept(a["offer_ids"], [M.LaunchGroup(ex, tasks)], a.get("refuse_seconds"))
        elif action == "decline":
            self.decline(a["offer_ids"], a.get("refuse_seconds"))
        elif action == "kill":
            self.kill(a["task_id"], a.get("agent_id", ""), a.get("grace"))
        elif action == "revive":
            self.revive(a.get("roles", ()))
        elif action == "suppress":
            self.suppress(a.get("roles", ()))
        elif action == "reconcile":
            self.reconcile([tuple(x) for x in a.get("tasks", [])])
        elif action == "teardown":
            self.teardown()
        elif action == "ack":
            for u in self.events["updates"]:
                if u["uuid"] == a["uuid"]:
                    self.acknowledge(M.TaskStatus(u["task_id"], M.TaskState.TASK_RUNNING, uuid=u["uuid"],
                                                  agent_id=u["agent_id"]))
        elif action == "message":
            self.message(a["agent_id"], a["executor_id"], a["data"].encode())
        elif action == "resubscribe":
            self._subscribe()
        else:
            raise KeyError(action)
        return {"ok": True}
