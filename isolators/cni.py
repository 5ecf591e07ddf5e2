"""``network/cni``: each task (or task group) in a network namespace of its own, joined
to a network by real CNI plugins.

A task joins the network its label ``impresario.cni/network`` names, or the agent's
``--cni-network``; without either it shares the host's network.  ``prepare`` creates the
namespace and runs each plugin with ``ADD``; ``cleanup`` runs ``DEL`` in reverse order and
deletes the namespace.  The tasks of a task group share one namespace (:attr:`shared`):
it goes when the last of them is cleaned up.

See docs/isolation.md, 'Networks (network/cni)'.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from actors.ports import ContainerError

from .isolator import Container, Isolator

log = logging.getLogger("impresario.cni")

NETWORK_LABEL = "impresario.cni/network"
DEFAULT_CONFIG_DIR = "/etc/impresario/cni"
DEFAULT_PLUGIN_DIRS = "/usr/lib/cni:/opt/cni/bin"
NETNS_DIR = "/run/netns"
IFNAME = "eth0"
PLUGIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Network:
    name: str
    version: str
    plugins: tuple[dict[str, Any], ...]
    path: str


def parse_network(text: str, path: str) -> Network:
    """A ``.conf`` or ``.conflist`` file's network; ValueError with the reason if it is bad."""
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON: {e}") from None
    if not isinstance(conf, dict) or not isinstance(conf.get("name"), str) or not conf["name"]:
        raise ValueError(f"{path}: a network configuration needs a \"name\"")
    version = str(conf.get("cniVersion", "0.4.0"))
    plugins = conf.get("plugins") if "plugins" in conf else [conf]
    if not isinstance(plugins, list) or not plugins:
        raise ValueError(f"{path}: \"plugins\" must be a non-empty list")
    for p in plugins:
        if not isinstance(p, dict) or not isinstance(p.get("type"), str) or not p["type"]:
            raise ValueError(f"{path}: every plugin needs a \"type\"")
    return Network(conf["name"], version, tuple(plugins), path)


def find_network(config_dir: str, name: str) -> Network:
    bad = []
    for path in sorted(glob.glob(os.path.join(config_dir, "*.conf*"))):
        if not path.endswith((".conf", ".conflist", ".json")):
            continue
        try:
            with open(path) as f:
                net = parse_network(f.read(), path)
        except (OSError, ValueError) as e:
            bad.append(str(e))
            continue
        if net.name == name:
            return net
    detail = f" (unusable files: {'; '.join(bad)})" if bad else ""
    raise ContainerError(f"network/cni: no network named {name!r} in {config_dir}{detail}")


def plugin_config(net: Network, plugin: dict[str, Any], prev: dict[str, Any] | None) -> bytes:
    conf = dict(plugin, name=net.name, cniVersion=net.version)
    if prev is not None:
        conf["prevResult"] = prev
    return json.dumps(conf).encode()


def result_addresses(result: dict[str, Any]) -> list[str]:
    """The IP addresses of a CNI result (0.3.0 and later: ``ips``; 0.2.0: ``ip4``/``ip6``)."""
    out = []
    for ip in result.get("ips", []) or []:
        addr = ip.get("address", "") if isinstance(ip, dict) else ""
        if addr:
            out.append(addr.split("/", 1)[0])
    for key in ("ip4", "ip6"):
        ip = result.get(key)
        if isinstance(ip, dict) and ip.get("ip"):
            out.append(str(ip["ip"]).split("/", 1)[0])
    return out


class CniIsolator(Isolator):
    name = "network/cni"

    def __init__(self, opts: dict[str, Any]) -> None:
        self.config_dir = str(opts.get("cni_config_dir", DEFAULT_CONFIG_DIR))
        self.plugin_dirs = [d for d in str(opts.get("cni_plugins_dir", DEFAULT_PLUGIN_DIRS)).split(":") if d]
        self.default_network = str(opts.get("cni_network", ""))
        self.shared: dict[str, dict[str, Any]] = {}   # a task group's namespace -> its state

    def _plugin(self, kind: str) -> str:
        for d in self.plugin_dirs:
            path = os.path.join(d, kind)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise ContainerError(f"network/cni: plugin {kind!r} not found in {':'.join(self.plugin_dirs)}")

    def prepare(self, c: Container) -> None:
        name = c.task.label(NETWORK_LABEL) or self.default_network
        if not name:
            return
        netns = f"impresario-{'-'.join(c.path[:2])}"   # a task group's tasks: their executor's
        state = self.shared.get(netns)
        if state is not None:
            if state["net"].name != name:
                raise ContainerError(f"network/cni: the tasks of a group share one network namespace, on "
                                     f"network {state['net'].name!r}: this task asks for {name!r}")
        else:
            state = self._join(c, name, netns)
        state["users"].add(c.id)
        c.state[self.name] = state
        c.ip_addresses.extend(result_addresses(state["result"] or {}))
        c.wrappers.insert(0, ["nsenter", f"--net={NETNS_DIR}/{netns}", "--"])

    def _join(self, c: Container, name: str, netns: str) -> dict[str, Any]:
        net = find_network(self.config_dir, name)
        plugins = [self._plugin(p["type"]) for p in net.plugins]
        state: dict[str, Any] = {"net": net, "netns": netns, "result": None, "added": 0, "users": set()}
        _run(["ip", "netns", "add", netns], f"cannot create the network namespace {netns}")
        # From here on, cleanup has something to undo.
        self.shared[netns] = c.state[self.name] = state
        state["users"].add(c.id)
        _run(["ip", "-n", netns, "link", "set", "lo", "up"], "cannot bring up loopback")
        prev = None
        for path, plugin in zip(plugins, net.plugins, strict=True):
            state["added"] += 1
            prev = self._call(path, "ADD", net, plugin, prev, netns)
        state["result"] = prev
        return state

    def _call(self, path: str, command: str, net: Network, plugin: dict[str, Any], prev: dict[str, Any] | None,
              netns: str) -> dict[str, Any]:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": netns, "CNI_NETNS": f"{NETNS_DIR}/{netns}",
               "CNI_IFNAME": IFNAME, "CNI_PATH": ":".join(self.plugin_dirs),
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        what = f"network/cni: plugin {plugin['type']!r} {command} on network {net.name!r}"
        try:
            p = subprocess.run([path], input=plugin_config(net, plugin, prev), env=env, capture_output=True,
                               timeout=PLUGIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ContainerError(f"{what} did not answer within {PLUGIN_TIMEOUT:.0f} s") from None
        except OSError as e:
            raise ContainerError(f"{what}: cannot run {path}: {e.strerror}") from None
        out = p.stdout.decode(errors="replace").strip()
        if p.returncode != 0:
            try:
                err = json.loads(out)
                msg = f"{err.get('msg', '')} {err.get('details', '')}".strip()
            except (json.JSONDecodeError, AttributeError):
                msg = out or p.stderr.decode(errors="replace").strip()
            raise ContainerError(f"{what} failed: {msg or f'exit status {p.returncode}'}")
        if command == "DEL" or not out:
            return {}
        try:
            result = json.loads(out)
        except json.JSONDecodeError:
            raise ContainerError(f"{what}: the plugin's result is not JSON") from None
        return result if isinstance(result, dict) else {}

    def cleanup(self, c: Container) -> None:
        state = c.state.pop(self.name, None)
        if not state:
            return
        state["users"].discard(c.id)
        if state["users"]:
            return   # other tasks of the group are still in the namespace
        net, netns = state["net"], state["netns"]
        self.shared.pop(netns, None)
        for plugin in reversed(net.plugins[:state["added"]]):
            try:
                self._call(self._plugin(plugin["type"]), "DEL", net, plugin, state["result"], netns)
            except ContainerError as e:
                log.warning("%s", e)
        try:
            _run(["ip", "netns", "delete", netns], f"cannot delete the network namespace {netns}")
        except ContainerError as e:
            log.error("%s", e)


def _run(argv: list[str], what: str) -> None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=PLUGIN_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ContainerError(f"network/cni: {what}: {e}") from None
    if p.returncode != 0:
        raise ContainerError(f"network/cni: {what}: {p.stderr.strip() or p.returncode}")
