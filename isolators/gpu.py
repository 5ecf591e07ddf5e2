"""NVIDIA GPU discovery through the NVML bindings (``pynvml``).

Where the NVML library is absent (no driver), discovery finds 0 GPUs and says
so in one log line.  Any module with NVML's calls can stand in for ``pynvml``
(tests use a fake one to show discovery of several GPUs on a machine without).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

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
