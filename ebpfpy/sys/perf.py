"""perf_event_open(2), its attribute struct and the ioctls BPF needs.

``struct perf_event_attr`` is packed with ``struct`` at the offsets of the
uapi header (include/uapi/linux/perf_event.h); the flag bit-field is a table
of bit numbers. We send PERF_ATTR_SIZE_VER7 (128 bytes): every kernel since
5.13 knows it, and older ones accept it because the unknown tail is zero.
"""
from __future__ import annotations

import enum
import errno
import fcntl
import os
import struct
from functools import cache

from ebpfpy.sys import _libc
from ebpfpy.sys._libc import ffi
from ebpfpy.sys.consts import _enum
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD, fd_number

PERF_ATTR_SIZE = 128  # PERF_ATTR_SIZE_VER7
PERF_FLAG_FD_CLOEXEC = 1 << 3


# The perf uapi enums as tables in uapi order (include/uapi/linux/perf_event.h).
PerfType = _enum("PerfType", "HARDWARE SOFTWARE TRACEPOINT HW_CACHE RAW BREAKPOINT")  # PERF_TYPE_*

SwEvent = _enum("SwEvent", """
    CPU_CLOCK TASK_CLOCK PAGE_FAULTS CONTEXT_SWITCHES CPU_MIGRATIONS PAGE_FAULTS_MIN
    PAGE_FAULTS_MAJ ALIGNMENT_FAULTS EMULATION_FAULTS DUMMY BPF_OUTPUT CGROUP_SWITCHES
""")  # PERF_COUNT_SW_*

HwEvent = _enum("HwEvent", """
    CPU_CYCLES INSTRUCTIONS CACHE_REFERENCES CACHE_MISSES BRANCH_INSTRUCTIONS
    BRANCH_MISSES BUS_CYCLES STALLED_CYCLES_FRONTEND STALLED_CYCLES_BACKEND REF_CPU_CYCLES
""")  # PERF_COUNT_HW_*

SampleType = enum.IntFlag("SampleType", [(n, 1 << i) for i, n in enumerate("""
    IP TID TIME ADDR READ CALLCHAIN ID CPU PERIOD STREAM_ID RAW
""".split())])  # PERF_SAMPLE_*: bit i is the i-th name

# HW_BREAKPOINT_*
BreakpointType = enum.IntEnum("BreakpointType", [("EMPTY", 0), ("R", 1), ("W", 2), ("RW", 3), ("X", 4)])


# Bit numbers of the flag word at offset 40 of perf_event_attr, in uapi order.
ATTR_FLAG_BITS = {
    name: bit for bit, name in enumerate("""
        disabled inherit pinned exclusive exclude_user exclude_kernel exclude_hv
        exclude_idle mmap comm freq inherit_stat enable_on_exec task watermark
        precise_ip_lo precise_ip_hi mmap_data sample_id_all exclude_host exclude_guest
        exclude_callchain_kernel exclude_callchain_user mmap2 comm_exec use_clockid
        context_switch write_backward namespaces ksymbol bpf_event aux_output cgroup
        text_poke build_id inherit_thread remove_on_exec sigtrap
    """.split())
}

# field -> (offset, struct format) in struct perf_event_attr.
ATTR_FIELDS = {
    "type": (0, "I"), "size": (4, "I"), "config": (8, "Q"), "sample_period": (16, "Q"),
    "sample_type": (24, "Q"), "read_format": (32, "Q"), "flags": (40, "Q"),
    "wakeup": (48, "I"), "bp_type": (52, "I"), "config1": (56, "Q"), "config2": (64, "Q"),
    "branch_sample_type": (72, "Q"), "sample_regs_user": (80, "Q"),
    "sample_stack_user": (88, "I"), "clockid": (92, "i"), "sample_regs_intr": (96, "Q"),
    "aux_watermark": (104, "I"), "sample_max_stack": (108, "H"),
}


def _ioc(direction: int, kind: str, nr: int, size: int) -> int:
    """The _IOC() macro: dir(2) | size(14) | type(8) | nr(8)."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2
PERF_EVENT_IOC_ENABLE = _ioc(_IOC_NONE, "$", 0, 0)
PERF_EVENT_IOC_DISABLE = _ioc(_IOC_NONE, "$", 1, 0)
PERF_EVENT_IOC_REFRESH = _ioc(_IOC_NONE, "$", 2, 0)
PERF_EVENT_IOC_RESET = _ioc(_IOC_NONE, "$", 3, 0)
PERF_EVENT_IOC_SET_OUTPUT = _ioc(_IOC_NONE, "$", 5, 0)
PERF_EVENT_IOC_ID = _ioc(_IOC_READ, "$", 7, 8)
PERF_EVENT_IOC_SET_BPF = _ioc(_IOC_WRITE, "$", 8, 4)


def pack_attr(
    type: int,
    config: int = 0,
    *,
    sample_period: int = 0,
    sample_freq: int = 0,
    sample_type: int = 0,
    read_format: int = 0,
    wakeup_events: int = 0,
    wakeup_watermark: int = 0,
    bp_type: int = 0,
    bp_addr: int = 0,
    bp_len: int = 0,
    config1: int = 0,
    config2: int = 0,
    sample_max_stack: int = 0,
    size: int = PERF_ATTR_SIZE,
    **flags: bool,
) -> bytearray:
    """``struct perf_event_attr`` bytes; keyword flags are the bit-field names
    (``disabled=True``, ``watermark=True``, ``precise_ip=2`` ...).

    ``sample_freq`` sets the ``freq`` bit; ``wakeup_watermark`` the ``watermark`` bit.
    """
    if sample_period and sample_freq:
        raise ValueError("sample_period and sample_freq share one field")
    if wakeup_events and wakeup_watermark:
        raise ValueError("wakeup_events and wakeup_watermark share one field")
    word = 0
    precise = int(flags.pop("precise_ip", 0))
    word |= (precise & 3) << ATTR_FLAG_BITS["precise_ip_lo"]
    if sample_freq:
        flags["freq"] = True
    if wakeup_watermark:
        flags["watermark"] = True
    for name, on in flags.items():
        if name not in ATTR_FLAG_BITS:
            raise TypeError(f"unknown perf_event_attr flag {name!r}")
        if on:
            word |= 1 << ATTR_FLAG_BITS[name]
    values = {
        "type": int(type), "size": size, "config": config,
        "sample_period": sample_freq or sample_period, "sample_type": int(sample_type),
        "read_format": read_format, "flags": word,
        "wakeup": wakeup_watermark or wakeup_events, "bp_type": int(bp_type),
        "config1": bp_addr or config1, "config2": bp_len or config2,
        "sample_max_stack": sample_max_stack,
    }
    buf = bytearray(size)
    for name, value in values.items():
        off, fmt = ATTR_FIELDS[name]
        try:
            struct.pack_into("<" + fmt, buf, off, value)
        except struct.error:  # a period, address, ... the field cannot hold: the caller's value, not a bug
            raise ValueError(f"perf_event_attr.{name} cannot be {value}") from None
    return buf


def perf_event_open(
    type: int,
    config: int = 0,
    *,
    pid: int = -1,
    cpu: int = 0,
    group_fd: int = -1,
    probe_path: str | None = None,
    **attr,
) -> FD:
    """Open a perf event; returns its FD (O_CLOEXEC).

    ``probe_path``: for the kprobe/uprobe PMUs, the function name or binary
    path whose address goes into ``config1`` (the kernel copies the string
    during the call). Other keywords go to ``pack_attr``.
    """
    keep = None
    if probe_path is not None:
        keep = ffi.new("char[]", probe_path.encode() + b"\0")
        attr["config1"] = int(ffi.cast("uintptr_t", keep))
    buf = pack_attr(type, config, **attr)
    rc = _libc.perf_event_open(ffi.from_buffer(buf), pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC)
    del keep
    if rc < 0:
        detail = f"type={int(type)} config={config:#x} pid={pid} cpu={cpu}"
        if -rc in (errno.EPERM, errno.EACCES, errno.ENOSYS):
            from ebpfpy.sys.privileges import explain_perf

            detail += f"; {explain_perf(-rc, int(type), pid, cpu)}"
        raise BPFError(-rc, "perf_event_open", detail=detail)
    return FD(rc)


def _ioctl(fd, request: int, arg: int, name: str) -> int:
    rc = _libc.ioctl(fd_number(fd), request, arg)
    if rc < 0:
        raise BPFError(-rc, name)
    return rc


def enable(fd) -> None:
    _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")


def disable(fd) -> None:
    _ioctl(fd, PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE")


def reset(fd) -> None:
    _ioctl(fd, PERF_EVENT_IOC_RESET, 0, "PERF_EVENT_IOC_RESET")


def set_bpf(fd, prog_fd) -> None:
    """Attach a BPF program to a perf event the pre-link way (closing the event detaches)."""
    _ioctl(fd, PERF_EVENT_IOC_SET_BPF, fd_number(prog_fd), "PERF_EVENT_IOC_SET_BPF")


def set_output(fd, target_fd) -> None:
    _ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, fd_number(target_fd), "PERF_EVENT_IOC_SET_OUTPUT")


def event_id(fd) -> int:
    """The kernel's id of the event (PERF_EVENT_IOC_ID)."""
    buf = bytearray(8)
    fcntl.ioctl(fd_number(fd), PERF_EVENT_IOC_ID, buf, True)
    return struct.unpack("<Q", buf)[0]


def parse_cpu_list(text: str) -> list[int]:
    """"0-3,5,7-8" -> [0, 1, 2, 3, 5, 7, 8] (the format of /sys/devices/system/cpu/*)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _read_cpus(which: str) -> list[int]:
    with open(f"/sys/devices/system/cpu/{which}") as f:
        return parse_cpu_list(f.read())


def online_cpus() -> list[int]:
    return _read_cpus("online")


def possible_cpus() -> list[int]:
    return _read_cpus("possible")


# ---------------------------------------------------------------------------
# dynamic PMUs (kprobe, uprobe) described in sysfs: their type number and the
# config bits of their format entries (retprobe, ref_ctr_offset) differ per
# kernel, so they are read, never hard-coded.

PMU_ROOT = "/sys/bus/event_source/devices"


def pmu_available(pmu: str) -> bool:
    return os.path.exists(os.path.join(PMU_ROOT, pmu, "type"))


@cache
def pmu_type(pmu: str) -> int:
    """Dynamic PMU type number (kprobe, uprobe, ...) from sysfs; FileNotFoundError when absent."""
    with open(os.path.join(PMU_ROOT, pmu, "type")) as f:
        return int(f.read())


def parse_format_bits(text: str) -> tuple[str, int, int]:
    """`config:0` -> ("config", 0, 0); `config:32-63` -> ("config", 32, 63)."""
    field, _, bits = text.partition(":")
    lo, _, hi = bits.partition("-")
    return field, int(lo), int(hi or lo)


@cache
def pmu_format_bits(pmu: str, fmt: str) -> tuple[str, int, int]:
    """(attr field, first bit, last bit) of a PMU format entry, e.g. retprobe -> ("config", 0, 0).

    FileNotFoundError when the PMU or the entry is absent.
    """
    with open(os.path.join(PMU_ROOT, pmu, "format", fmt)) as f:
        return parse_format_bits(f.read().strip())


def pmu_config(pmu: str, fmt: str, value: int) -> int:
    """`value` shifted into the `config` bits a PMU format entry names."""
    field, lo, hi = pmu_format_bits(pmu, fmt)
    if field != "config":
        raise ValueError(f"{pmu} format {fmt} lives in {field}, which ebpfpy does not set")
    width = hi - lo + 1
    if value >> width:
        raise ValueError(f"{fmt}={value:#x} does not fit {width} bits of the {pmu} PMU's config")
    return value << lo
