"""The house rules, read off the source with ``ast``:

* ``actors/`` (the kernel) imports nothing from ``isolators``, ``sim`` or ``impresario``;
* ``isolators/`` and ``sim/`` never import each other;
* no module under ``actors/`` reaches the world itself: it imports none of the modules
  that give a wall clock, files, sockets, threads or processes, and calls no ``open``;
* only the actor shells import Thespian (``actors/base.py``, the rooms' ``actor.py``, the
  executor and the frameworks), and only its public ``thespian.actors``: the cores and
  everything they use run without an actor system;
* outside the kernel, only the real host's adapter (``impresario/realhost/``) and the
  simulator's imitation of it (``sim/host.py``) import Thespian;
* ``isolators/`` never imports Thespian.

Each rule is shown to catch a violation planted in a copy of the tree.
"""

from __future__ import annotations

import ast
import functools
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("actors", "isolators", "sim", "impresario")

#: What the kernel may not import, anywhere (the whole module or any of its submodules).
WORLD = ("time", "datetime", "socket", "ssl", "select", "selectors", "subprocess", "threading",
         "multiprocessing", "asyncio", "signal", "os", "shutil", "tempfile", "pathlib", "io")
#: What may not import another room.
FORBIDDEN = {"actors": ("isolators", "sim", "impresario"), "isolators": ("sim",), "sim": ("isolators",)}
#: The actor shells: the only modules of the kernel that may import Thespian.
SHELLS = ("actors/base.py", "actors/*/actor.py", "actors/agent/executor.py", "actors/frameworks/*.py")
#: Outside the kernel: the one Thespian adapter, and the simulator's imitation of it.
ADAPTERS = ("impresario/realhost/*.py", "sim/host.py")


@functools.lru_cache(maxsize=4096)
def _scan(rel: str, text: str) -> tuple[tuple[tuple[int, str], ...], tuple[int, ...]]:
    """(line, module) of every import in the file (relative ones resolved), and the lines
    that call ``open``."""
    tree = ast.parse(text, rel)
    package = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__").split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    imports: list[tuple[int, str]] = []
    opens: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            imports.append((node.lineno, mod))
            # "from actors import sim"-style names that are modules themselves
            imports.extend((node.lineno, f"{mod}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            opens.append(node.lineno)
    return tuple(imports), tuple(opens)


def _under(mod: str, top: str) -> bool:
    return mod == top or mod.startswith(top + ".")


def violations(root: Path) -> list[str]:
    found: list[str] = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            imports, opens = _scan(rel, path.read_text())
            for line, mod in imports:
                for other in FORBIDDEN.get(pkg, ()):
                    if _under(mod, other):
                        found.append(f"{rel}:{line} imports {mod} ({pkg}/ may not import {other}/)")
            if pkg != "actors":
                for line, mod in imports:
                    if _under(mod, "thespian") and not any(Path(rel).match(p) for p in ADAPTERS):
                        found.append(f"{rel}:{line} imports {mod} (only the real host's adapter knows Thespian)")
                continue
            for line, mod in imports:
                for world in WORLD:
                    if _under(mod, world):
                        found.append(f"{rel}:{line} imports {mod} (the kernel reaches the world through ports)")
                if _under(mod, "thespian"):
                    shell = any(Path(rel).match(p) for p in SHELLS)
                    if not shell:
                        found.append(f"{rel}:{line} imports {mod} (only the actor shells know Thespian)")
                    elif not _under(mod, "thespian.actors"):
                        found.append(f"{rel}:{line} imports {mod} (Thespian's private parts)")
            found.extend(f"{rel}:{line} opens a file (the kernel reaches the world through ports)"
                         for line in opens)
    return found


def test_the_tree_keeps_the_house_rules():
    assert violations(ROOT) == []


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize("rel, planted, expected", [
    ("actors/master/core.py", "from isolators import containerizer", "actors/ may not import isolators/"),
    ("actors/agent/actor.py", "import sim.host", "actors/ may not import sim/"),
    ("actors/protocol/codec.py", "from impresario.cli import main", "actors/ may not import impresario/"),
    ("actors/master/agents.py", "from sim.host import SimHost", "actors/ may not import sim/"),
    ("isolators/gpu.py", "from sim.network import ConstantNetwork", "isolators/ may not import sim/"),
    ("sim/host.py", "import isolators.cgroups", "sim/ may not import isolators/"),
    ("actors/master/offers.py", "import time", "imports time (the kernel reaches the world"),
    ("actors/core.py", "from os import path", "imports os (the kernel reaches the world"),
    ("actors/security/acl.py", "import socket", "imports socket"),
    ("actors/allocator/sorter.py", "import subprocess", "imports subprocess"),
    ("actors/agent/gpus.py", "from threading import Lock", "imports threading"),
    ("actors/master/updates.py", "from datetime import datetime", "imports datetime"),
    ("actors/master/operator.py", "x = open('/etc/passwd').read()", "opens a file"),
    ("actors/master/core.py", "from thespian.actors import ActorAddress", "only the actor shells know Thespian"),
    ("actors/base.py", "from thespian.system.transport.IPBase import TCPv4ActorAddress", "Thespian's private parts"),
    ("impresario/cluster.py", "from thespian.actors import ActorSystem", "only the real host's adapter"),
    ("isolators/containerizer.py", "import thespian", "only the real host's adapter"),
    ("sim/runner.py", "from thespian.actors import ActorAddress", "only the real host's adapter"),
])
def test_each_rule_catches_a_violation(tree: Path, rel: str, planted: str, expected: str) -> None:
    path = tree / rel
    original = path.read_text()
    try:
        path.write_text(original + "\n" + planted + "\n")
        found = violations(tree)
        assert any(rel in v and expected in v for v in found), found
    finally:
        path.write_text(original)
    assert violations(tree) == []
