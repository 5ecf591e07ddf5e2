"""A complete, small framework: it says hello from N tasks, then it is done.

Run it in the simulator:

    impresario sim docs/examples/hello.toml

or against a running master:

    cd docs/examples && impresario framework hello_framework:Hello --master 127.0.0.1:5050 \\
        --settings '{"count": 5}'
"""

from actors.frameworks.base import Framework
from actors.protocol.messages import CommandInfo, TaskInfo
from actors.protocol.resources import Resources


class Hello(Framework):
    def setup(self, settings):
        # Settings come from the scenario's [frameworks.settings] or --settings.
        self.count = int(settings.get("count", 3))
        self.launched = 0
        self.ended = 0

    def resource_offers(self, offers):
        for offer in offers:
            need = Resources.of(cpus=0.1, mem=32, role=offer.role)
            if self.launched < self.count and offer.resources.contains(need):
                task_id = f"hello-{self.launched}"
                self.launched += 1
                task = TaskInfo(task_id, task_id, offer.agent_id, need,
                                CommandInfo(f"echo hello from {task_id}"),
                                # The simulator runs a task for this many virtual seconds.
                                labels=(("impresario.sim/duration", "2"),))
                self.launch(offer, [task])   # what is left of the offer goes back
            else:
                self.decline([offer.offer_id], refuse_seconds=30)
        if self.launched >= self.count:
            self.suppress()                  # no more offers, please

    def status_update(self, status):
        if status.state.terminal:
            self.ended += 1
            if self.is_done():
                self.done_at = self.now()

    def is_done(self):
        return self.ended >= self.count
