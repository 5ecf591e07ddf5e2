"""The allocator: the thin actor, the hierarchical DRF policy, sorters and quota."""
