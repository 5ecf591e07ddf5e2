"""A researcher's own allocation policy, for the pluggability test."""

from actors.allocator.hierarchical import HierarchicalPolicy


class LastAgentFirst(HierarchicalPolicy):
    """DRF, but it counts its runs (a stand-in for a policy under study)."""

    def __init__(self, settings):
        super().__init__(settings)
        self.runs_seen = 0

    def allocate(self, now, rng):
        self.runs_seen += 1
        return super().allocate(now, rng)
