"""Bitfield members of kernel structs, read by pybpftrace and by bpftrace 0.17.

Bitfields rarely hold values a test can predict, so the first test lays a
kernel struct over the current task's ``pid`` (the struct's pointer is
``&task->pid`` minus the bitfield's byte offset): the member then holds
``(pid >> shift) & mask`` for the pid the same program prints. The members
are chosen for their shape: one bit, two bits, the top bit of a byte, and
16-bit fields that start mid-byte and span three bytes. The second reads
``task_struct.in_execve`` at exec time, where the kernel sets it, next to the
raw word that holds it. Each runs under both tools (bpftrace where present).
"""
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.btf]

TOOLS = [
    pytest.param([sys.executable, "-m", "ebpfpy.bpftrace"], id="pybpftrace"),
    pytest.param(["bpftrace"], id="bpftrace", marks=pytest.mark.bpftrace),
]

# (struct, member): bitfields of several shapes, all present in 6.1 .. 6.18
MEMBERS = [("sk_buff", "cloned"), ("sk_buff", "fclone"), ("sk_buff", "pp_recycle"),
           ("jbd2_journal_handle", "h_line_no"), ("perf_branch_entry", "cycles")]


def bitfield(struct: str, name: str) -> tuple[int, int, int]:
    """(bit offset, width, byte size of the declared type) of a bitfield member, from BTF."""
    from ebpfpy import btf

    spec = btf.vmlinux()
    try:
        m = spec.member(spec.find_struct(struct), name)
    except KeyError:
        pytest.skip(f"this kernel has no {struct}.{name}")
    assert m.bitfield_size, f"{struct}.{name} is not a bitfield here"
    return m.bit_offset, m.bitfield_size, spec.size_of(m.type)


def pid_offset() -> int:
    from ebpfpy import btf

    spec = btf.vmlinux()
    return spec.member(spec.find_struct("task_struct"), "pid").bit_offset // 8


def run(tool: list, script: str, *args: str) -> str:
    proc = subprocess.run([*tool, *args, "-e", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_bitfields_over_a_known_value(tool):
    fields = [(s, n, *bitfield(s, n)) for s, n in MEMBERS]
    reads = []
    for struct, name, bit, width, _ in fields:
        reads.append(f"((struct {struct} *)($p - {bit // 8}))->{name}")
        assert (bit % 8 + width + 7) // 8 <= 4  # the bytes read stay inside pid
    verbs, args = " ".join(["%d"] * len(reads)), ", ".join(reads)
    script = f'BEGIN {{ $p = (uint64)curtask + {pid_offset()}; printf("%u {verbs}\\n", curtask->pid, {args}); exit(); }}'
    out = run(tool, script)
    m = re.search(r"^(\d+)((?: -?\d+)+)$", out, re.M)
    assert m, out
    pid, values = int(m.group(1)), [int(v) for v in m.group(2).split()]
    expected = [(pid >> (bit % 8)) & ((1 << width) - 1) for _, _, bit, width, _ in fields]
    assert values == expected, (pid, fields)


@pytest.mark.parametrize("tool", TOOLS)
def test_in_execve_is_set_during_exec(tool):
    from ebpfpy import btf

    spec = btf.vmlinux()
    try:
        m = spec.member(spec.find_struct("task_struct"), "in_execve")
    except KeyError:
        pytest.skip("this kernel's task_struct has no in_execve")
    word = m.bit_offset // 32 * 4  # the u32 storage unit holding it
    script = ("tracepoint:sched:sched_process_exec /pid == cpid/ { $t = (struct task_struct *)curtask; "
              f"printf(\"%d %u\\n\", $t->in_execve, *(uint32 *)((uint64)curtask + {word})); }}")
    out = run(tool, script, "-c", "/bin/true")
    m2 = re.search(r"^(\d+) (\d+)$", out, re.M)
    assert m2, out
    value, raw = int(m2.group(1)), int(m2.group(2))
    assert value == 1
    assert (raw >> (m.bit_offset % 32)) & 1 == value
