"""Device control on cgroups v2: a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program.

Cgroup v2 has no ``devices.allow``/``devices.deny`` files: the kernel asks a
BPF program attached to the cgroup (``BPF_CGROUP_DEVICE``) whether a process
may create (mknod), read or write a device node.  The program receives
``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}`` where
``access_type = access << 16 | type`` (access: MKNOD 1, READ 2, WRITE 4;
type: BLOCK 1, CHAR 2), and returns 1 to allow, 0 to deny (``EPERM``).  Every
program attached along the cgroup's ancestry must allow.

:func:`device_program` assembles such a program from an allow list (pure:
bytes in, bytes out, testable anywhere), written instruction by instruction
as Mesos does; :func:`load_and_attach` loads it with ``bpf(2)`` through
ctypes and attaches it to a cgroup directory.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterable

from .limits import DeviceRule

# --------------------------------------------------------------------------- instruction encoding

# Opcode parts (include/uapi/linux/bpf_common.h, bpf.h).
_LDX, _ALU64, _JMP = 0x01, 0x07, 0x05
_MEM, _W = 0x60, 0x00
_K, _X = 0x00, 0x08
_AND, _RSH, _MOV = 0x50, 0x70, 0xB0
_JNE, _EXIT = 0x50, 0x90

BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
_ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_TYPE_CODES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

# Registers used by the program.
R0, R1, R2, R3, R4, R5 = range(6)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: u8 code, u8 dst:4|src:4, s16 off, s32 imm (little-endian)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _load_u32(dst: int, offset: int) -> bytes:
    return insn(_LDX | _MEM | _W, dst, R1, offset)


def _mov_reg(dst: int, src: int) -> bytes:
    return insn(_ALU64 | _MOV | _X, dst, src)


def _mov_imm(dst: int, imm: int) -> bytes:
    return insn(_ALU64 | _MOV | _K, dst, 0, 0, imm)


def _and_imm(dst: int, imm: int) -> bytes:
    return insn(_ALU64 | _AND | _K, dst, 0, 0, imm)


def _rsh_imm(dst: int, imm: int) -> bytes:
    return insn(_ALU64 | _RSH | _K, dst, 0, 0, imm)


def _jne_imm(dst: int, imm: int, skip: int) -> bytes:
    return insn(_JMP | _JNE | _K, dst, 0, skip, imm)


_EXIT_INSN = insn(_JMP | _EXIT)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions that return 1 when the request matches ``rule``, else fall through."""
    body: list[list[bytes]] = []   # tests; the last instruction of each jumps on failure
    if rule.type != "a":
        body.append([_jne_imm(R2, _TYPE_CODES[rule.type], 0)])
    wanted = sum(_ACCESS_BITS[a] for a in rule.access)
    if wanted != 7:
        # Every access bit asked for must be one the rule grants: (access & ~wanted) == 0.
        body.append([_mov_reg(R0, R3), _and_imm(R0, ~wanted & 7), _jne_imm(R0, 0, 0)])
    if rule.major is not None:
        body.append([_jne_imm(R4, rule.major, 0)])
    if rule.minor is not None:
        body.append([_jne_imm(R5, rule.minor, 0)])
    tail = [_mov_imm(R0, 1), _EXIT_INSN]
    # Each failing test jumps past the rest of the block (to the next rule).
    out: list[bytes] = []
    remaining = sum(len(b) for b in body) + len(tail)
    for b in body:
        *pre, jump = b
        out.extend(pre)
        remaining -= len(b)
        code, regs, _, imm = struct.unpack("<BBhi", jump)
        out.append(struct.pack("<BBhi", code, regs, remaining, imm))
    out.extend(tail)
    return out


def device_program(allow: Iterable[DeviceRule]) -> bytes:
    """A device program allowing exactly ``allow`` (anything else is denied)."""
    prog = [
        _load_u32(R2, 0),      # access_type
        _mov_reg(R3, R2),
        _rsh_imm(R3, 16),      # r3 = access (mknod/read/write bits)
        _and_imm(R2, 0xFFFF),  # r2 = device type
        _load_u32(R4, 4),      # major
        _load_u32(R5, 8),      # minor
    ]
    for rule in allow:
        prog.extend(_rule_block(rule))
    prog.extend([_mov_imm(R0, 0), _EXIT_INSN])
    return b"".join(prog)


def run_program(program: bytes, dev_type: str, major: int, minor: int, access: str) -> int:
    """Interpret ``program`` for one request (the subset of eBPF it uses): for tests and
    for checking a program before it is loaded.  Returns the program's verdict."""
    regs = [0] * 11
    access_type = (sum(_ACCESS_BITS[a] for a in access) << 16) | _TYPE_CODES[dev_type]
    ctx = struct.pack("<III", access_type, major, minor)
    insns = [struct.unpack("<BBhi", program[i:i + 8]) for i in range(0, len(program), 8)]
    pc = 0
    while True:
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == _LDX | _MEM | _W:
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == _ALU64 | _MOV | _X:
            regs[dst] = regs[src]
        elif code == _ALU64 | _MOV | _K:
            regs[dst] = imm & 0xFFFFFFFFFFFFFFFF
        elif code == _ALU64 | _AND | _K:
            regs[dst] &= imm & 0xFFFFFFFFFFFFFFFF
        elif code == _ALU64 | _RSH | _K:
            regs[dst] >>= imm
        elif code == _JMP | _JNE | _K:
            if regs[dst] != imm & 0xFFFFFFFFFFFFFFFF:
                pc += off
        elif code == _JMP | _EXIT:
            return regs[R0]
        else:
            raise ValueError(f"instruction {pc - 1}: opcode {code:#x} is not one this module emits")


# --------------------------------------------------------------------------- bpf(2)

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_SYSCALL_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351}
_ATTR_SIZE = 128
_LOG_SIZE = 64 * 1024


class BpfError(OSError):
    """The kernel refused to load or attach a program."""


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    number = _SYSCALL_BPF.get(platform.machine())
    if number is None:
        raise BpfError(errno.ENOSYS, f"bpf(2) is not wired for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(_ATTR_SIZE))
    if rc < 0:
        err = ctypes.get_errno()
        raise BpfError(err, os.strerror(err))
    return int(rc)


def load_device_program(program: bytes) -> int:
    """Load a device program; returns its file descriptor (the caller closes it)."""
    insns = ctypes.create_string_buffer(program, len(program))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license_), 1, _LOG_SIZE,
                     ctypes.addressof(log))
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except BpfError as e:
        detail = log.value.decode(errors="replace").strip()
        raise BpfError(e.errno, f"BPF_PROG_LOAD: {e.strerror}" + (f" ({detail[-300:]})" if detail else "")) from None


def attach_device_program(cgroup_dir: str, prog_fd: int) -> None:
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into("<IIII", attr, 0, fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        try:
            _bpf(BPF_PROG_ATTACH, attr)
        except BpfError as e:
            raise BpfError(e.errno, f"BPF_PROG_ATTACH to {cgroup_dir}: {e.strerror}") from None
    finally:
        os.close(fd)


def load_and_attach(cgroup_dir: str, allow: Iterable[DeviceRule]) -> None:
    """Allow exactly ``allow`` to the processes of ``cgroup_dir`` (a cgroup v2 directory).

    The attachment holds the program: it lives as long as the cgroup, so the
    descriptor is closed here.
    """
    fd = load_device_program(device_program(allow))
    try:
        attach_device_program(cgroup_dir, fd)
    finally:
        os.close(fd)
