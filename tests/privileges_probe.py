"""What this process may do with BPF: one line of JSON, {operation: "ok" or "ERRNO: message"}.

Run by tests/kernel/test_privileges.py as user nobody with chosen capabilities (and by
``python3 tests/kernel/test_privileges.py --table``, which prints docs/privileges.md's table).
Standalone on purpose: it only needs ebpfpy importable. argv[1] is the id of the
syscalls:sys_enter_getpid tracepoint (read by root: tracefs may not be readable here).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile


def _libc_path() -> str:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith(("libc.so", "libc-")):
                return os.path.realpath(path)
    raise FileNotFoundError(errno.ENOENT, "no libc mapped")


def _file_offset(path: str, symbol: str) -> int:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
        addr = next(s["st_value"] for s in table.iter_symbols() if s.name == symbol)
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_memsz"]:
                return addr - seg["p_vaddr"] + seg["p_offset"]
    raise LookupError(symbol)


def main(argv: list[str]) -> int:
    from ebpfpy.attach import tracefs
    from ebpfpy.sys import bpf, perf
    from ebpfpy.sys.consts import MapType, ProgType

    tp_id = int(argv[1]) if len(argv) > 1 else 0
    ret0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
    results: dict[str, str] = {}
    stack = contextlib.ExitStack()

    def attempt(name: str, fn):
        try:
            out = fn()
            results[name] = "ok"
            return out
        except Exception as exc:
            code = getattr(exc, "errno", None)
            head = errno.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__
            results[name] = f"{head}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return None

    def prog(kind):
        def load():
            return stack.enter_context(bpf.prog_load(kind, ret0))
        return load

    attempt("map_create(array)", lambda: stack.enter_context(bpf.map_create(MapType.ARRAY, 4, 8, 1)))
    attempt("map_create(ringbuf)", lambda: stack.enter_context(bpf.map_create(MapType.RINGBUF, 0, 0, 4096)))
    attempt("prog_load(socket_filter)", prog(ProgType.SOCKET_FILTER))
    tp_prog = attempt("prog_load(tracepoint)", prog(ProgType.TRACEPOINT))
    kp_prog = attempt("prog_load(kprobe)", prog(ProgType.KPROBE))
    raw = attempt("prog_load(raw_tracepoint)", prog(ProgType.RAW_TRACEPOINT))
    if raw is not None:
        attempt("prog_test_run(raw_tracepoint)", lambda: bpf.prog_test_run(raw, ctx_in=bytes(8)))
    attempt("btf_load", lambda: stack.enter_context(bpf.btf_load(_tiny_btf())))
    attempt("prog_get_next_id", lambda: bpf.prog_get_next_id(0))
    attempt("map_get_next_id", lambda: bpf.map_get_next_id(0))
    attempt("read tracefs (tracepoint id)", lambda: tracefs.tracepoint_id("syscalls", "sys_enter_getpid"))
    attempt("read /sys/kernel/btf/vmlinux", lambda: open("/sys/kernel/btf/vmlinux", "rb").close())
    if tp_id:
        ev = attempt("perf_event_open(tracepoint, all CPUs)",
                     lambda: stack.enter_context(perf.perf_event_open(perf.PerfType.TRACEPOINT, tp_id, pid=-1, cpu=0)))
        if ev is not None and tp_prog is not None:
            attempt("attach tracepoint program", lambda: perf.set_bpf(ev, tp_prog))
    attempt("perf_event_open(cpu-clock, all CPUs)",
            lambda: stack.enter_context(perf.perf_event_open(perf.PerfType.SOFTWARE, perf.SwEvent.CPU_CLOCK,
                                                             sample_period=1000000, pid=-1, cpu=0)))
    attempt("perf_event_open(cpu-clock, own process)",
            lambda: stack.enter_context(perf.perf_event_open(perf.PerfType.SOFTWARE, perf.SwEvent.CPU_CLOCK,
                                                             sample_period=1000000, pid=0, cpu=-1)))
    if perf.pmu_available("uprobe"):
        libc = _libc_path()
        up = attempt("perf_event_open(uprobe PMU)",
                     lambda: stack.enter_context(perf.perf_event_open(
                         perf.pmu_type("uprobe"), 0, pid=os.getpid(), cpu=-1, probe_path=libc,
                         config2=_file_offset(libc, "labs"))))
        if up is not None and kp_prog is not None:
            attempt("attach uprobe program", lambda: perf.set_bpf(up, kp_prog))
    else:
        results["perf_event_open(uprobe PMU)"] = "no uprobe PMU"
    if not perf.pmu_available("kprobe"):
        results["perf_event_open(kprobe PMU)"] = "no kprobe PMU"
    else:
        attempt("perf_event_open(kprobe PMU)",
                lambda: stack.enter_context(perf.perf_event_open(perf.pmu_type("kprobe"), 0, pid=-1, cpu=0,
                                                                 probe_path="do_sys_openat2")))
    m = stack.enter_context(bpf.map_create(MapType.ARRAY, 4, 8, 1)) if results["map_create(array)"] == "ok" else None
    if m is not None:
        def pin():
            path = tempfile.mktemp(prefix="ebpfpy-probe-", dir="/sys/fs/bpf")
            bpf.obj_pin(m, path)
            os.unlink(path)
        attempt("obj_pin in /sys/fs/bpf", pin)
    stack.close()
    print(json.dumps(results))
    return 0


def _tiny_btf() -> bytes:
    """A BTF blob with one type: int (4 bytes, signed), name "int"."""
    import struct

    strings = b"\0int\0"
    types = struct.pack("<III", 1, 0x01000000, 4) + struct.pack("<I", (1 << 24) | 32)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


if __name__ == "__main__":
    sys.exit(main(sys.argv))
