"""The agent and its executors."""
