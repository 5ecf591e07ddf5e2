"""The framework the fault campaign runs: the batch framework, logging every status
update it hears (state, uuid, source) per (framework id, task id)."""

from __future__ import annotations

from collections import defaultdict

from actors.frameworks.batch import BatchFramework
from actors.protocol import messages as M

LOG: dict[tuple[str, str], list[tuple[M.TaskState, str, M.Source]]] = defaultdict(list)


class RecordingBatch(BatchFramework):
    def status_update(self, status: M.TaskStatus) -> None:
        LOG[(self.framework_id, status.task_id)].append((status.state, status.uuid, status.source))
        super().status_update(status)
