"""Emulated BPF helpers, one function per helper, in a table keyed by helper id.

Each function takes the VM and the five argument registers (unsigned 64-bit integers) and
returns r0; errors are negative errnos, as the kernel's helpers return them. Ids and names come
from ``ebpfpy.isa.helpers``. A VM starts with a copy of `HELPERS`; ``vm.add_helper(name, fn)``
adds or replaces one. A call of a helper that is not in the VM's table stops the run with a
`VMError` naming it.

What the helpers see of "the system" is the VM's: ``vm.ktime_ns`` (advanced by
``vm.ktime_step`` per read), ``vm.pid``/``vm.tgid``, ``vm.uid``/``vm.gid``, ``vm.cgroup_id``, ``vm.comm``,
``vm.cpu``, ``vm.kernel_stack``/``vm.user_stack``, a seeded ``vm.random``; ``trace_printk``
lines go to ``vm.trace_lines``. ``probe_read*`` read any memory of the VM (a memory image
placed with ``mem=`` or ``vm.map_memory``), returning -EFAULT where there is none.
"""

from __future__ import annotations

import errno as E
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ebpfpy.isa.helpers import helper as helper_info

from .errors import VMError
from .maps import PerfEventArrayMap, RingBufMap, StackTraceMap, VMMap
from .memory import SCRATCH_BASE

if TYPE_CHECKING:
    from .machine import VM

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
HelperFn = Callable[..., int]

HELPERS: dict[int, HelperFn] = {}


def emulates(*names: str):
    """Register the decorated function as the emulation of the named helpers."""

    def register(fn: HelperFn) -> HelperFn:
        for name in names:
            HELPERS[helper_info(name).id] = fn
        return fn

    return register


def helper_name(helper_id: int) -> str:
    try:
        return f"bpf_{helper_info(helper_id).name}#{helper_id}"
    except LookupError:
        return f"helper #{helper_id}"


def _map(vm: VM, addr: int, what: str, kind: type[VMMap] = VMMap) -> VMMap:
    m = vm.map_at(addr)
    if m is None:
        raise VMError(f"{what}: {addr:#x} is not a map")
    if not isinstance(m, kind):
        raise VMError(f"{what}: map {m.label!r} is a {m.type_name} map")
    return m


# -- maps --------------------------------------------------------------------------------


@emulates("map_lookup_elem")
def map_lookup_elem(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r1, "map_lookup_elem")
    return m.prog_lookup(vm.space.read(r2, m.key_size))


@emulates("map_update_elem")
def map_update_elem(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r1, "map_update_elem")
    return m.prog_update(vm.space.read(r2, m.key_size), vm.space.read(r3, m.value_size), r4)


@emulates("map_delete_elem")
def map_delete_elem(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r1, "map_delete_elem")
    return m.prog_delete(vm.space.read(r2, m.key_size))


@emulates("for_each_map_elem")
def for_each_map_elem(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r1, "for_each_map_elem")
    fn = vm.function_at(r2, "for_each_map_elem")
    if r4:
        return -E.EINVAL
    done = 0
    for key, value_addr in m.prog_elements():
        key_region = vm.space.new(SCRATCH_BASE, key, f"key passed by for_each_map_elem to {m.label!r}", False)
        try:
            ret = vm.invoke(fn, (m.handle, key_region.base, value_addr, r3, 0))
        finally:
            vm.space.remove(key_region)
        done += 1
        if ret:
            break
    return done


# -- time, identity, randomness ------------------------------------------------------------


@emulates("ktime_get_ns", "ktime_get_boot_ns", "ktime_get_coarse_ns", "ktime_get_tai_ns")
def ktime_get_ns(vm: VM, r1, r2, r3, r4, r5) -> int:
    now = vm.ktime_ns
    vm.ktime_ns = now + vm.ktime_step
    return now


@emulates("get_current_pid_tgid")
def get_current_pid_tgid(vm: VM, r1, r2, r3, r4, r5) -> int:
    return (vm.tgid & M32) << 32 | (vm.pid & M32)


@emulates("get_current_uid_gid")
def get_current_uid_gid(vm: VM, r1, r2, r3, r4, r5) -> int:
    return (vm.gid & M32) << 32 | (vm.uid & M32)


@emulates("get_current_comm")
def get_current_comm(vm: VM, r1, r2, r3, r4, r5) -> int:
    if not r2:
        return -E.EINVAL
    comm = vm.comm.encode() if isinstance(vm.comm, str) else bytes(vm.comm)
    comm = comm[:15][: r2 - 1]
    vm.space.write(r1, comm.ljust(r2, b"\0"))
    return 0


@emulates("get_current_cgroup_id")
def get_current_cgroup_id(vm: VM, r1, r2, r3, r4, r5) -> int:
    return vm.cgroup_id & M64


@emulates("get_smp_processor_id")
def get_smp_processor_id(vm: VM, r1, r2, r3, r4, r5) -> int:
    return vm.cpu


@emulates("get_numa_node_id")
def get_numa_node_id(vm: VM, r1, r2, r3, r4, r5) -> int:
    return 0


@emulates("get_prandom_u32")
def get_prandom_u32(vm: VM, r1, r2, r3, r4, r5) -> int:
    return vm.random.getrandbits(32)


# -- memory ----------------------------------------------------------------------------------


# x86-64's probe_read_kernel* refuse an address below TASK_SIZE_MAX plus a page (user space, the zero
# page) with -ERANGE before trying it; a kernel address with nothing there is -EFAULT.
_KERNEL_SPACE = 0x7FFF_FFFF_F000 + 4096


def _read_error(addr: int, kernel: bool) -> int:
    return -E.ERANGE if kernel and addr < _KERNEL_SPACE else -E.EFAULT


def _probe_read(kernel: bool) -> HelperFn:
    def probe_read(vm: VM, r1, r2, r3, r4, r5) -> int:
        size = r2 & M32
        try:
            data = vm.space.read(r3, size)
        except VMError:
            vm.space.write(r1, bytes(size))
            return _read_error(r3, kernel)
        vm.space.write(r1, data)
        return 0

    return probe_read


def _probe_read_str(kernel: bool) -> HelperFn:
    def probe_read_str(vm: VM, r1, r2, r3, r4, r5) -> int:
        size = r2 & M32
        if not size:
            return 0
        text, ok = vm.space.read_str(r3, size - 1)
        if not ok:
            vm.space.write(r1, bytes(size))
            return _read_error(r3, kernel)
        vm.space.write(r1, text + b"\0")
        return len(text) + 1

    return probe_read_str


probe_read = emulates("probe_read", "probe_read_user")(_probe_read(kernel=False))
emulates("probe_read_kernel")(_probe_read(kernel=True))
probe_read_str = emulates("probe_read_str", "probe_read_user_str")(_probe_read_str(kernel=False))
emulates("probe_read_kernel_str")(_probe_read_str(kernel=True))


# -- output ------------------------------------------------------------------------------------


@emulates("ringbuf_output")
def ringbuf_output(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r1, "ringbuf_output", RingBufMap)
    return m.output(vm.space.read(r2, r3), r4)  # type: ignore[attr-defined]


@emulates("ringbuf_reserve")
def ringbuf_reserve(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r1, "ringbuf_reserve", RingBufMap)
    return m.reserve(r2, r3)  # type: ignore[attr-defined]


def _ring_of(vm: VM, addr: int, what: str) -> RingBufMap:
    for m in vm.maps.values():
        if isinstance(m, RingBufMap) and addr in m._reserved:
            return m
    raise VMError(f"{what} of {addr:#x}, which is not a reserved ring buffer record", address=addr)


@emulates("ringbuf_submit")
def ringbuf_submit(vm: VM, r1, r2, r3, r4, r5) -> int:
    _ring_of(vm, r1, "ringbuf_submit").commit(r1, discard=False)
    return 0


@emulates("ringbuf_discard")
def ringbuf_discard(vm: VM, r1, r2, r3, r4, r5) -> int:
    _ring_of(vm, r1, "ringbuf_discard").commit(r1, discard=True)
    return 0


@emulates("perf_event_output")
def perf_event_output(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r2, "perf_event_output", PerfEventArrayMap)
    return m.output(r3, vm.space.read(r4, r5))  # type: ignore[attr-defined]


@emulates("get_stackid")
def get_stackid(vm: VM, r1, r2, r3, r4, r5) -> int:
    m = _map(vm, r2, "get_stackid", StackTraceMap)
    return m.get_stackid(r3)  # type: ignore[attr-defined]


# trace_printk: the conversions the kernel's bpf_bprintf_prepare accepts, printed as C does.
_SPEC = re.compile(
    r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d*))?(?P<len>hh|h|ll|l|z)?(?P<conv>p[xK]?|[diuxXocs%])"
)
_LEN_BITS = {"hh": 8, "h": 16, None: 32, "l": 64, "ll": 64, "z": 64}


def format_printk(vm: VM, fmt: str, args: list[int]) -> str | None:
    """``fmt`` with ``args`` as the kernel's bpf_trace_printk prints them; None when the
    kernel would refuse the format (-EINVAL)."""
    out = []
    pos = 0
    used = 0
    while True:
        i = fmt.find("%", pos)
        if i < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:i])
        m = _SPEC.match(fmt, i)
        if m is None:
            return None
        pos = m.end()
        conv = m.group("conv")
        if conv == "%":
            out.append("%")
            continue
        if used >= len(args):
            return None
        arg = args[used]
        used += 1
        flags, width, prec = m.group("flags"), m.group("width"), m.group("prec")
        spec = f"%{flags}{width}" + (f".{prec}" if prec is not None else "")
        if conv == "s":
            text, _ = vm.space.read_str(arg, 1024)
            out.append((spec + "s") % text.decode("latin-1"))
            continue
        if conv == "c":
            out.append((spec + "c") % chr(arg & 0xFF))
            continue
        if conv[0] == "p":
            out.append((spec + "s") % f"{arg:#x}" if arg else (spec + "s") % "(null)")
            continue
        bits = _LEN_BITS[m.group("len")]
        value = arg & ((1 << bits) - 1)
        if conv in "di" and value >> (bits - 1):
            value -= 1 << bits
        out.append((spec + ("d" if conv in "diu" else conv)) % value)
    return "".join(out)


@emulates("trace_printk")
def trace_printk(vm: VM, r1, r2, r3, r4, r5) -> int:
    raw = vm.space.read(r1, r2)
    if not raw or raw[-1] != 0:
        return -E.EINVAL
    fmt = raw[:raw.index(0)].decode("latin-1")
    line = format_printk(vm, fmt, [r3, r4, r5])
    if line is None:
        return -E.EINVAL
    vm.trace_lines.append(line.rstrip("\n"))
    return len(line)


# -- control -----------------------------------------------------------------------------------


@emulates("loop")
def bpf_loop(vm: VM, r1, r2, r3, r4, r5) -> int:
    n = r1 & M32
    fn = vm.function_at(r2, "loop")
    if r4:
        return -E.EINVAL
    if n > 1 << 23:
        return -E.E2BIG
    for i in range(n):
        if vm.invoke(fn, (i, r3, 0, 0, 0)):
            return i + 1
    return n


# tail_call (helper 12) changes where the program runs: the interpreter handles it itself.
TAIL_CALL = helper_info("tail_call").id

__all__ = ["HELPERS", "TAIL_CALL", "emulates", "format_printk", "helper_name"]
