"""NVIDIA GPUs: discovery through the NVML bindings (``pynvml``), and the
``gpu/nvidia`` isolator.

Without NVML, :func:`discover_gpus` finds 0 GPUs and says so in one log line; any module
with NVML's calls can stand in for ``pynvml`` (tests use a fake one to show several GPUs on
a machine without).  The isolator, as Mesos' (``isolators/gpu/``), grants a task its own GPU
nodes and the NVIDIA control nodes on top of ``cgroups/devices``, sets
``NVIDIA_VISIBLE_DEVICES`` and ``CUDA_VISIBLE_DEVICES``, and mounts the driver volume at
``/usr/local/nvidia`` for a task that asks for it.

See docs/isolation.md, 'GPUs (gpu/nvidia)'.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import stat
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from actors.ports import ContainerError

from .isolator import UNSHARE_MOUNT, Container, Isolator
from .limits import gpu_rules

log = logging.getLogger("impresario.gpu")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    minor: int
    uuid: str
    name: str
    memory_mib: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def discover_gpus(nvml: Any = None) -> list[GpuInfo]:
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            log.info("GPU discovery: the NVML bindings (pynvml) are not installed; 0 GPUs")
            return []
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded, ...
        log.info("GPU discovery: NVML is not available on this host (%s); 0 GPUs", e)
        return []
    try:
        out = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
            out.append(GpuInfo(i, int(nvml.nvmlDeviceGetMinorNumber(h)), _text(nvml.nvmlDeviceGetUUID(h)),
                               _text(nvml.nvmlDeviceGetName(h)), int(mem.total // 2**20)))
        return out
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


# --------------------------------------------------------------------------- the isolator

VOLUME_LABEL = "com.nvidia.volumes.needed"
VOLUME_TARGET = "/usr/local/nvidia"
DEFAULT_VOLUME = "/var/run/impresario/gpu/nvidia-driver"
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
#: What the driver volume holds (after Mesos' lists, from libnvidia-container).
DRIVER_PROGRAMS = ("nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control",
                   "nvidia-cuda-mps-server")
DRIVER_LIBRARIES = ("libnvidia-ml.so", "libcuda.so", "libnvidia-ptxjitcompiler.so", "libnvidia-fatbinaryloader.so",
                    "libnvidia-compiler.so", "libnvidia-nvvm.so", "libnvidia-opencl.so", "libnvidia-cfg.so",
                    "libnvidia-allocator.so", "libnvidia-encode.so", "libnvcuvid.so", "libnvidia-opticalflow.so")


def control_devices(dev_dir: str = "/dev") -> list[tuple[int, int, str]]:
    """The (major, minor, name) of the NVIDIA control nodes present on this host."""
    out = []
    for name in CONTROL_NODES:
        try:
            st = os.stat(os.path.join(dev_dir, name))
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode):
            out.append((os.major(st.st_rdev), os.minor(st.st_rdev), name))
    return out


def driver_libraries(ldconfig_text: str) -> dict[str, list[str]]:
    """From ``ldconfig -p``: the driver's libraries, ``{"lib64": [...], "lib": [...]}``."""
    out: dict[str, list[str]] = {"lib64": [], "lib": []}
    for line in ldconfig_text.splitlines():
        name, sep, path = line.strip().partition(" => ")
        if not sep:
            continue
        lib = name.split(" ", 1)[0]
        if any(lib.startswith(prefix) for prefix in DRIVER_LIBRARIES):
            out["lib64" if "64" in name.split(" ", 1)[-1] else "lib"].append(path.strip())
    return out


def build_driver_volume(target: str, ldconfig_text: str | None = None) -> None:
    """Copy the driver's programs and libraries into ``target`` (``bin``, ``lib``, ``lib64``)."""
    if ldconfig_text is None:
        try:
            ldconfig_text = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                                           timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            ldconfig_text = ""
    libs = driver_libraries(ldconfig_text)
    programs = [p for p in (shutil.which(n) for n in DRIVER_PROGRAMS) if p]
    if not libs["lib64"] and not libs["lib"]:
        raise ContainerError("gpu/nvidia: no NVIDIA driver library (libnvidia-ml.so, libcuda.so...) is "
                             "installed on this host, so there is no driver volume to mount")
    staging = target + ".building"
    shutil.rmtree(staging, ignore_errors=True)
    for sub, files in (("bin", programs), ("lib", libs["lib"]), ("lib64", libs["lib64"])):
        os.makedirs(os.path.join(staging, sub), exist_ok=True)
        for f in files:
            shutil.copy2(f, os.path.join(staging, sub, os.path.basename(f)))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(staging, target)


class NvidiaGpuIsolator(Isolator):
    name = "gpu/nvidia"

    def __init__(self, opts: dict[str, Any]) -> None:
        self.dev_dir = str(opts.get("nvidia_dev_dir", "/dev"))
        self.volume = str(opts.get("nvidia_driver_volume", DEFAULT_VOLUME))

    def prepare(self, c: Container) -> None:
        unbacked = [g.index for g in c.gpus if not g.uuid]
        if unbacked:
            raise ContainerError(f"gpu/nvidia: GPU {unbacked[0]} was declared (--resources gpus:N), not "
                                 f"discovered through NVML: there is no device to give task {c.task.task_id}")
        if c.gpus:
            c.devices.extend(gpu_rules([g.minor for g in c.gpus], control_devices(self.dev_dir)))
            visible = ",".join(g.uuid or str(g.index) for g in c.gpus)
            c.env["NVIDIA_VISIBLE_DEVICES"] = visible
            c.env["CUDA_VISIBLE_DEVICES"] = visible
        if c.task.label(VOLUME_LABEL) == "nvidia_driver":
            if not os.path.isdir(self.volume):
                build_driver_volume(self.volume)
            c.wrap(UNSHARE_MOUNT)
            src, dst = shlex.quote(self.volume), VOLUME_TARGET
            c.setup += [f"mkdir -p {dst}", f"mount --bind {src} {dst}", f"mount -o remount,bind,ro {dst}"]
            c.env_paths.setdefault("PATH", []).append(f"{dst}/bin")
            c.env_paths.setdefault("LD_LIBRARY_PATH", []).extend([f"{dst}/lib", f"{dst}/lib64"])
