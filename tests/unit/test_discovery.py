"""Resource discovery on a real host: psutil for cpus, memory and disk; NVML for GPUs."""

import logging
import os
from types import SimpleNamespace

from isolators.discovery import discover_host
from isolators.gpu import discover_gpus


class FakeNVML:
    """The NVML calls discovery uses, for a machine with ``n`` GPUs (the one stand-in
    allowed: for hardware that is absent)."""

    def __init__(self, n):
        self.n = n
        self.shut = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return self.n

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetMinorNumber(self, h):
        return h

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h:08d}".encode()

    def nvmlDeviceGetName(self, h):
        return b"Fake H200"

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=141 * 2**30)


class MissingNVML:
    class NVMLError_LibraryNotFound(Exception):
        pass

    def nvmlInit(self):
        raise self.NVMLError_LibraryNotFound("NVML Shared Library Not Found")


def test_fake_nvml_shows_eight_gpus():
    nvml = FakeNVML(8)
    gpus = discover_gpus(nvml)
    assert [g.index for g in gpus] == list(range(8))
    assert gpus[3].minor == 3 and gpus[3].uuid == "GPU-00000003" and gpus[3].memory_mib == 141 * 1024
    assert nvml.shut


def test_no_nvml_library_means_zero_gpus_and_one_clear_line(caplog):
    with caplog.at_level(logging.INFO, logger="impresario.gpu"):
        assert discover_gpus(MissingNVML()) == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "NVML is not available" in lines[0] and "0 GPUs" in lines[0]


def test_this_host_has_no_nvml_driver_and_discovers_its_resources(tmp_path):
    found = discover_host(str(tmp_path / "work"), nvml=MissingNVML())
    r = found.resources
    assert r.cpus == len(os.sched_getaffinity(0))
    assert r.gpus == 0 and r.mem > 0 and r.disk > 0
    assert found.details == {"gpus": []}


def test_host_reservation_is_kept_back(tmp_path):
    full = discover_host(str(tmp_path), reserved_mem=0, reserved_disk=0, nvml=MissingNVML()).resources
    kept = discover_host(str(tmp_path), nvml=MissingNVML()).resources
    assert full.mem - kept.mem in range(1023, 1026) or kept.mem == full.mem // 2
    assert full.disk > kept.disk
    eight = discover_host(str(tmp_path), nvml=FakeNVML(8)).resources
    assert eight.gpus == 8
