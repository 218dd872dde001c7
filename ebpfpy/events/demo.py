"""A known event source for the readers: one record per getpid() of one process.

The readers can only be checked end to end against a source whose output is
known exactly. ``syscalls:sys_enter_getpid`` filtered on one tgid fires
exactly as often as that process calls getpid(2), so the tests
(``tests/kernel/test_events_*.py``) and the benchmark (``bench/readers.py``)
share this program instead of each writing their own.

Each record is ``RECORD``: (ktime ns, syscall number, pid_tgid), 24 bytes.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator

from ebpfpy.sys.consts import BPF_F_CURRENT_CPU, BPF_F_USER_STACK

__all__ = [
    "BPF_F_CURRENT_CPU",
    "RECORD",
    "STACK_RECORD",
    "attached_on_getpid",
    "compile_c",
    "filter_tgid",
    "load_on_getpid",
    "syscall_output_program",
    "syscall_stack_program",
]

RECORD = struct.Struct("<QQQ")  # ktime_ns, __syscall_nr, pid_tgid
STACK_RECORD = struct.Struct("<qqQ")  # user stack id, kernel stack id, pid_tgid
_SYSCALL_NR_OFFSET = 8  # after the 8 bytes of common tracepoint fields
GETPID_PROBE = "tracepoint:syscalls:sys_enter_getpid"


def filter_tgid(b, tgid: int, out: str) -> None:
    """r6 = ctx, r7 = pid_tgid; jump to ``out`` unless the tgid matches."""
    from ebpfpy.isa.builder import R0, R1, R6, R7

    b.mov(R6, R1)
    b.call("get_current_pid_tgid")
    b.mov(R7, R0)
    b.rsh(R0, 32)
    b.jne(R0, tgid, out)


def syscall_output_program(kind: str, out_map, tgid: int) -> list:
    """Instructions writing RECORD to ``out_map`` with ``bpf_perf_event_output``
    (kind ``"perf"``) or ``bpf_ringbuf_output`` (kind ``"ringbuf"``)."""
    from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, R5, R6, R7, Builder

    b = Builder()
    filter_tgid(b, tgid, "out")
    b.stx("dw", FP, R7, -8)
    b.ldx("w", R1, R6, _SYSCALL_NR_OFFSET)
    b.stx("dw", FP, R1, -16)
    b.call("ktime_get_ns")
    b.stx("dw", FP, R0, -24)
    if kind == "perf":
        b.mov(R1, R6)
        b.ld_map_fd(R2, out_map)
        b.ld_imm64(R3, BPF_F_CURRENT_CPU)
        b.mov(R4, FP)
        b.add(R4, -RECORD.size)
        b.mov(R5, RECORD.size)
        b.call("perf_event_output")
        return _exit_at_out(b)
    if kind == "ringbuf":
        return _ringbuf_output_and_exit(b, out_map, RECORD.size)
    raise ValueError(f"kind must be 'perf' or 'ringbuf', not {kind!r}")


def _ringbuf_output_and_exit(b, out_map, size: int) -> list:
    """bpf_ringbuf_output of the ``size`` bytes below the frame pointer, then the ``out`` exit."""
    from ebpfpy.isa.builder import FP, R1, R2, R3, R4

    b.ld_map_fd(R1, out_map)
    b.mov(R2, FP)
    b.add(R2, -size)
    b.mov(R3, size)
    b.mov(R4, 0)
    b.call("ringbuf_output")
    return _exit_at_out(b)


def _exit_at_out(b) -> list:
    """The ``out`` label (where filter_tgid jumps) returning 0; the finished instructions."""
    from ebpfpy.isa.builder import R0

    b.label("out")
    b.mov(R0, 0)
    b.exit()
    return b.build()


def syscall_stack_program(ustack_map, kstack_map, out_map, tgid: int) -> list:
    """Instructions recording the user and kernel stack ids of each getpid
    of ``tgid`` as STACK_RECORD into the ring buffer ``out_map``.

    Two stack maps: in one, two different stacks hashing to the same bucket
    make the second ``bpf_get_stackid`` fail with -EEXIST."""
    from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R6, R7, Builder

    b = Builder()
    filter_tgid(b, tgid, "out")
    b.stx("dw", FP, R7, -8)
    for stack_map, flags, slot in ((ustack_map, BPF_F_USER_STACK, -24), (kstack_map, 0, -16)):
        b.mov(R1, R6)
        b.ld_map_fd(R2, stack_map)
        b.mov(R3, flags)
        b.call("get_stackid")
        b.stx("dw", FP, R0, slot)
    return _ringbuf_output_and_exit(b, out_map, STACK_RECORD.size)


def load_on_getpid(insns: list):
    """Load a tracepoint program and attach it to sys_enter_getpid; returns
    (program, attachments), both to be closed by the caller."""
    from ebpfpy.attach.provider import attach
    from ebpfpy.progs import Program

    prog = Program.load("tracepoint", insns, "GPL", name="ebpfpy_demo")
    try:
        return prog, attach(prog, GETPID_PROBE)
    except BaseException:
        prog.close()
        raise


@contextlib.contextmanager
def attached_on_getpid(insns: list) -> Iterator:
    """``load_on_getpid`` as a ``with`` block: detaches and unloads on leaving it."""
    prog, atts = load_on_getpid(insns)
    try:
        yield prog
    finally:
        for att in atts:
            att.close()
        prog.close()


# Flags -> suffix of the binaries the qemu runner prebuilds (tests/vm/vmrun/prebuild.py)
_PREBUILT_SUFFIX = {("-O2",): "", ("-O0",): ".O0"}


def compile_c(source: str, out_dir: str, name: str | None = None, *extra: str) -> str:
    """Compile one C file with gcc (frame pointers kept for stack tests).

    A compiler-less machine (the qemu guest of ``tests/vm``) sets
    ``EBPFPY_PREBUILT`` to a directory of binaries built from
    ``tests/progs/<stem>.c`` as ``<stem>`` (-O2) and ``<stem>.O0`` (-O0);
    one of those is returned, when it exists, instead of compiling.
    """
    prebuilt = os.environ.get("EBPFPY_PREBUILT")
    suffix = _PREBUILT_SUFFIX.get(tuple(extra))
    if prebuilt and suffix is not None:
        stem = os.path.splitext(os.path.basename(source))[0]
        path = os.path.join(prebuilt, stem + suffix)
        if os.path.exists(path):
            return path
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise FileNotFoundError("gcc is not installed")
    out = os.path.join(out_dir, name or os.path.splitext(os.path.basename(source))[0])
    subprocess.run([gcc, "-fno-omit-frame-pointer", *extra, "-o", out, source], check=True)
    return out
