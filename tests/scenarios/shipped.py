"""Shared by tests/unit and tests/cluster: shipped."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIOS = os.path.join(ROOT, "scenarios")


def path(name):
    return os.path.join(SCENARIOS, name + ".toml")
