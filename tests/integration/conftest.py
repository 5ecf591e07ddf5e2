import os
import shutil
import subprocess
import sys

import pytest


def impresario_cmd():
    exe = shutil.which("impresario")
    return [exe] if exe else [sys.executable, "-m", "impresario.cli"]


@pytest.fixture
def run_cli(tmp_path):
    """Run the impresario command line in a fresh process; returns (code, stdout, stderr)."""

    def run(*args, timeout=300, env=None):
        e = dict(os.environ, **(env or {}))
        p = subprocess.run([*impresario_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                           cwd=os.path.join(os.path.dirname(__file__), "..", ".."), env=e)
        return p.returncode, p.stdout, p.stderr

    return run
