"""Resource discovery on a real host: psutil for cpus, memory and disk; NVML for GPUs."""

import logging
import os

from isolators.discovery import discover_host
from isolators.gpu import discover_gpus
from tests.fakes import FakeNVML, MissingNVML


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
