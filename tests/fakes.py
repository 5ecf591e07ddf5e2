"""Stand-ins for hardware this machine lacks - the only stand-ins the tests use.

:class:`FakeNVML` has the NVML calls discovery makes, for a host with ``n``
GPUs; :class:`MissingNVML` fails as ``pynvml`` does without the driver.  An
agent can be given one by dotted path (its ``nvml`` setting), for example
``tests.fakes:EightGpus``.
"""

from types import SimpleNamespace


class FakeNVML:
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


class EightGpus(FakeNVML):
    def __init__(self):
        super().__init__(8)


class MissingNVML:
    class NVMLError_LibraryNotFound(Exception):
        pass

    def nvmlInit(self):
        raise self.NVMLError_LibraryNotFound("NVML Shared Library Not Found")
