"""Stack parsing and bpftrace 0.17's stack text (map keys, printf, perf mode)."""
import struct

import pytest

from ebpfpy.events.stacks import (
    MAP_KEY_INDENT,
    PRINTF_INDENT,
    StackFormatter,
    StackMode,
    format_stack,
    parse_stack,
    read_stack,
)
from ebpfpy.events.symbols import KernelSymbols

NAMES = {0xFFFFFFFF814C254B: "perf_syscall_enter+475", 0xFFFFFFFF81423C90: "syscall_trace_enter+384"}


def value(*ips, depth=8):
    return struct.pack(f"<{depth}Q", *(list(ips) + [0] * (depth - len(ips))))


def test_parse_stops_at_zero_and_limit():
    v = value(1, 2, 3)
    assert parse_stack(v) == (1, 2, 3)
    assert parse_stack(v, limit=2) == (1, 2)
    assert parse_stack(struct.pack("<3Q", 7, 8, 9)) == (7, 8, 9)  # full: no terminator
    assert parse_stack(bytes(64)) == ()


def test_bpftrace_mode_map_key_and_printf_indent():
    ips = list(NAMES)
    key = format_stack(ips, resolve=NAMES.__getitem__)
    assert key == "\n    perf_syscall_enter+475\n    syscall_trace_enter+384\n"
    assert MAP_KEY_INDENT == 4 and PRINTF_INDENT == 8
    text = format_stack(ips, resolve=NAMES.__getitem__, indent=PRINTF_INDENT, limit=1)
    assert text == "\n        perf_syscall_enter+475\n"


def test_perf_and_raw_modes():
    ips = list(NAMES)
    perf = format_stack(ips, resolve=NAMES.__getitem__, mode="perf")
    assert perf == (
        "\n\tffffffff814c254b perf_syscall_enter+475\n\tffffffff81423c90 syscall_trace_enter+384\n"
    )
    raw = format_stack(ips, resolve=NAMES.__getitem__, mode=StackMode.RAW)
    assert raw == "\nffffffff814c254b\nffffffff81423c90\n"
    with pytest.raises(ValueError):
        format_stack(ips, resolve=str, mode="dwarf")


def test_kstack_with_kallsyms(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("ffffffff81000000 T first\nffffffff81000100 t second\n")
    fmt = StackFormatter(KernelSymbols(str(path)))
    assert fmt.kstack([0xFFFFFFFF81000105, 0xFFFFFFFF81000010]) == "\n    second+5\n    first+16\n"
    assert fmt.kstack([0x10]) == "\n    0x10\n"


def test_ustack_unknown_process_and_no_user_symbols():
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    fmt = StackFormatter()
    assert fmt.ustack(proc.pid, [0x7F06435A829], mode="perf") == "\n\t7f06435a829 0x7f06435a829 ([unknown])\n"
    off = StackFormatter(user_symbols=False)
    import os

    assert off.ustack(os.getpid(), [0x1234]) == "\n    0x1234\n"


class DictMap:
    """A stand-in with the byte-level interface of ebpfpy.maps.Map (a plain dict)."""

    def __init__(self, items):
        self.items = items

    def __getitem__(self, key):
        return self.items[key]


def test_read_stack_by_id():
    m = DictMap({struct.pack("<I", 3): value(10, 20, 30)})
    assert read_stack(m, 3) == (10, 20, 30)
    assert read_stack(m, 3, limit=1) == (10,)
    assert read_stack(m, 4) == ()
    assert read_stack(m, -14) == ()  # -EFAULT from bpf_get_stackid
