"""Proof that the qemu guest runs kprobe tests for real (tests/vm/run tests/vm/test_guest_kprobe.py).

Deliberately standalone: only the cffi shim and `struct`-packed attributes, so
it checks the guest kernel and the runner, not ebpfpy's own layers. A
BPF_PROG_TYPE_KPROBE program counts this process's getpid() syscalls in an
array map; it is attached through the kprobe PMU (perf_event_open with the
symbol name in config1), which leaves nothing in kprobe_events.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import struct

import pytest

KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
KPROBE_EVENTS = "/sys/kernel/tracing/kprobe_events"
SYMBOL = b"__x64_sys_getpid"
SYS_GETPID = 39  # x86_64
CALLS = 1000

# bpf() commands and types (include/uapi/linux/bpf.h)
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_PROG_LOAD = 0, 1, 5
BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_KPROBE = 2
BPF_PSEUDO_MAP_FD = 1
HELPER_MAP_LOOKUP_ELEM, HELPER_GET_CURRENT_PID_TGID = 1, 14
PT_REGS_AX = (
    80  # offsetof(struct pt_regs, ax) on x86_64: the return value in a kretprobe
)
# perf_event_open (include/uapi/linux/perf_event.h)
PERF_ATTR_SIZE = 128
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408

if (
    platform.machine() != "x86_64"
):  # the symbol, syscall number and pt_regs offset are x86_64's
    pytest.skip("x86_64 only", allow_module_level=True)


def _shim():
    from ebpfpy.sys._shim import ffi, lib

    return ffi, lib


# -- a few instructions, encoded by hand --------------------------------------------------


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, (src << 4) | dst, off, imm)


def ld_map_fd(dst: int, fd: int) -> bytes:
    return insn(0x18, dst, BPF_PSEUDO_MAP_FD, 0, fd) + insn(0, 0, 0, 0, 0)


def mov_reg(dst, src):
    return insn(0xBF, dst, src)


def mov_imm(dst, imm):
    return insn(0xB7, dst, imm=imm)


def call(helper):
    return insn(0x85, imm=helper)


def lookup_slot(map_fd: int, key: int, miss: str) -> list:
    """r0 = &map[key], jumping to label `miss` when the lookup fails."""
    return [
        insn(0x62, 10, off=-4, imm=key),  # *(u32 *)(r10 - 4) = key
        mov_reg(2, 10),
        insn(0x07, 2, imm=-4),  # r2 += -4
        ld_map_fd(1, map_fd),
        call(HELPER_MAP_LOOKUP_ELEM),
        ("jeq0", miss),  # if r0 == 0 goto miss
    ]


def assemble(items: list) -> bytes:
    """Resolve ("jne_imm"/"jeq0", label[, imm]) jumps and ("label", name) marks into bytes."""
    slots, labels = 0, {}
    for item in items:
        if isinstance(item, tuple) and item[0] == "label":
            labels[item[1]] = slots
        else:
            slots += 1 if isinstance(item, tuple) else len(item) // 8
    out, slot = b"", 0
    for item in items:
        if isinstance(item, tuple):
            if item[0] == "label":
                continue
            kind, target = item[0], labels[item[1]]
            offset = target - slot - 1
            out += (
                insn(0x55, 0, off=offset, imm=item[2])
                if kind == "jne_imm"
                else insn(0x15, 0, off=offset, imm=0)
            )
            slot += 1
        else:
            out += item
            slot += len(item) // 8
    return out


def counting_program(map_fd: int, tgid: int, record_return: bool) -> bytes:
    """map[0] += 1 for each hit by `tgid`; with `record_return`, map[1] = PT_REGS_RC(ctx)."""
    items = [
        mov_reg(6, 1),  # keep ctx
        call(HELPER_GET_CURRENT_PID_TGID),
        insn(0x77, 0, imm=32),  # r0 >>= 32: the tgid
        ("jne_imm", "out", tgid),
        *lookup_slot(map_fd, 0, "out"),
        mov_imm(1, 1),
        insn(0xDB, 0, 1, 0, 0),  # lock *(u64 *)(r0 + 0) += r1
    ]
    if record_return:
        items += [
            *lookup_slot(map_fd, 1, "out"),
            insn(0x79, 1, 6, PT_REGS_AX),  # r1 = ctx->ax
            insn(0x7B, 0, 1, 0),  # *(u64 *)(r0 + 0) = r1
        ]
    items += [("label", "out"), mov_imm(0, 0), insn(0x95)]
    return assemble(items)


# -- syscalls through the shim ---------------------------------------------------------------


def bpf(cmd: int, attr: bytearray) -> int:
    ffi, lib = _shim()
    rc = lib.ebpfpy_bpf(cmd, ffi.from_buffer(attr), len(attr))
    if rc < 0:
        raise OSError(-rc, f"bpf({cmd}): {os.strerror(-rc)}")
    return rc


def address(buffer) -> int:
    ffi, _ = _shim()
    return int(ffi.cast("uintptr_t", ffi.from_buffer(buffer)))


def create_array(entries: int) -> int:
    attr = bytearray(72)
    struct.pack_into("<IIII", attr, 0, BPF_MAP_TYPE_ARRAY, 4, 8, entries)
    return bpf(BPF_MAP_CREATE, attr)


def lookup(map_fd: int, key: int) -> int:
    key_buf, value_buf = bytearray(struct.pack("<I", key)), bytearray(8)
    attr = bytearray(32)
    struct.pack_into("<IIQQ", attr, 0, map_fd, 0, address(key_buf), address(value_buf))
    bpf(BPF_MAP_LOOKUP_ELEM, attr)
    return struct.unpack("<Q", value_buf)[0]


def load_kprobe(code: bytes) -> int:
    insns, license = bytearray(code), bytearray(b"GPL\0")
    log = bytearray(1 << 16)
    attr = bytearray(144)
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        BPF_PROG_TYPE_KPROBE,
        len(code) // 8,
        address(insns),
        address(license),
        1,
        len(log),
        address(log),
    )
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        raise AssertionError(
            f"{exc}\n{log.rstrip(bytes(1)).decode(errors='replace')}"
        ) from exc


def kprobe_pmu() -> tuple[int, int]:
    """(PMU type, config bit that asks for a kretprobe)."""
    with open(f"{KPROBE_PMU}/type") as handle:
        pmu_type = int(handle.read())
    with open(f"{KPROBE_PMU}/format/retprobe") as handle:
        retprobe_bit = int(handle.read().strip().split(":")[1])  # "config:0"
    return pmu_type, retprobe_bit


def attach_kprobe(prog_fd: int, symbol: bytes, retprobe: bool) -> int:
    ffi, lib = _shim()
    pmu_type, retprobe_bit = kprobe_pmu()
    name = bytearray(symbol + b"\0")
    attr = bytearray(PERF_ATTR_SIZE)
    struct.pack_into(
        "<IIQ",
        attr,
        0,
        pmu_type,
        PERF_ATTR_SIZE,
        (1 << retprobe_bit) if retprobe else 0,
    )
    struct.pack_into(
        "<QQ", attr, 56, address(name), 0
    )  # config1 = kprobe_func, config2 = offset
    fd = lib.ebpfpy_perf_event_open(
        ffi.from_buffer(attr), -1, 0, -1, PERF_FLAG_FD_CLOEXEC
    )
    if fd < 0:
        raise OSError(
            -fd, f"perf_event_open(kprobe {symbol.decode()}): {os.strerror(-fd)}"
        )
    for request, arg in ((PERF_EVENT_IOC_SET_BPF, prog_fd), (PERF_EVENT_IOC_ENABLE, 0)):
        rc = lib.ebpfpy_ioctl(fd, request, arg)
        if rc < 0:
            os.close(fd)
            raise OSError(-rc, f"ioctl({request:#x}): {os.strerror(-rc)}")
    return fd


def kprobe_events() -> str:
    with open(KPROBE_EVENTS) as handle:
        return handle.read()


@pytest.fixture
def fds():
    opened: list[int] = []
    yield opened
    for fd in reversed(opened):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def kprobe_pmu_present():
    """Also skip without the conftest (`--noconftest`): the PMU is what this file tests."""
    if not os.path.exists(f"{KPROBE_PMU}/type"):
        pytest.skip("no kprobe PMU (CONFIG_KPROBES off)")
    if not os.path.exists(KPROBE_EVENTS):
        pytest.skip("tracefs is not mounted at /sys/kernel/tracing")


def getpid_syscalls(count: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(count):
        libc.syscall(SYS_GETPID)


@pytest.mark.kernel
@pytest.mark.kprobes
@pytest.mark.parametrize("retprobe", [False, True], ids=["kprobe", "kretprobe"])
def test_kprobe_counts_exactly_this_process_getpid_calls(
    kprobe_pmu_present, fds, retprobe
):
    pid = (
        os.getpid()
    )  # once, before attaching: getpid() itself is what the probe counts
    events_before = kprobe_events()
    map_fd = create_array(2)
    fds.append(map_fd)
    prog_fd = load_kprobe(counting_program(map_fd, pid, record_return=retprobe))
    fds.append(prog_fd)
    perf_fd = attach_kprobe(prog_fd, SYMBOL, retprobe)
    fds.append(perf_fd)

    assert SYMBOL.decode() not in kprobe_events()  # PMU probes are not text-registered
    before = lookup(map_fd, 0)
    getpid_syscalls(CALLS)
    after = lookup(map_fd, 0)
    assert after - before == CALLS
    if retprobe:
        assert lookup(map_fd, 1) == pid

    os.close(fds.pop())  # detach: closing the perf event removes the probe
    getpid_syscalls(10)
    assert lookup(map_fd, 0) == after
    assert kprobe_events() == events_before
    assert SYMBOL.decode() not in kprobe_events()


def test_program_encoding_is_what_the_kernel_expects():
    """Pure check of the hand encoder: jumps land on the exit block, ld_imm64 spans two slots."""
    code = counting_program(map_fd=7, tgid=1234, record_return=True)
    slots = [code[i : i + 8] for i in range(0, len(code), 8)]
    assert slots[-1][0] == 0x95 and slots[-2][0] == 0xB7
    out = len(slots) - 2
    for index, slot in enumerate(slots):
        op, _, off, imm = struct.unpack("<BBhi", slot)
        if op in (0x55, 0x15):
            assert index + 1 + off == out
        if op == 0x55:
            assert imm == 1234
        if op == 0x18:
            assert imm == 7 and slot[1] >> 4 == BPF_PSEUDO_MAP_FD
