"""32-bit (compat) syscalls and the raw-tracepoint dispatch of ``t:syscalls:sys_*_*`` wildcards.

The kernel's syscall tracepoints ignore the syscalls of 32-bit processes (their
numbers are the i386 ones: 20 is getpid there, writev on x86-64). The program
that stands for a syscall wildcard sees every syscall, so it must skip them
too, or a 32-bit process's getpid would be counted as sys_enter_writev.
"""
import shutil
import subprocess
import sys

import helpers
import pytest

from ebpfpy.attach.syscalls import syscall_numbers

pytestmark = pytest.mark.kernel

# A static i386 program without libc: getpid twice, then exit(0), all through int $0x80.
I386_GETPID = """
.globl _start
_start:
    movl $20, %eax
    int $0x80
    movl $20, %eax
    int $0x80
    movl $1, %eax
    xorl %ebx, %ebx
    int $0x80
"""


@pytest.fixture(scope="module")
def i386_binary(tmp_path_factory):
    if not syscall_numbers() or not (shutil.which("as") and shutil.which("ld")):
        pytest.skip("needs x86-64 and binutils")
    d = tmp_path_factory.mktemp("i386")
    (d / "getpid.S").write_text(I386_GETPID)
    subprocess.run(["as", "--32", "-o", str(d / "getpid.o"), str(d / "getpid.S")], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-o", str(d / "getpid"), str(d / "getpid.o")], check=True)
    if subprocess.run([str(d / "getpid")]).returncode != 0:
        pytest.skip("this kernel does not run 32-bit programs (no IA32 emulation)")
    return str(d / "getpid")


def _counts(argv: list, binary: str, event: str) -> dict:
    script = f"t:syscalls:{event}_* /pid == cpid/ {{ @[probe] = count(); }}"
    res = subprocess.run([*argv, "-c", binary, "-e", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return helpers.map_entries(res.stdout, "")


@pytest.mark.parametrize("event", ["sys_enter", "sys_exit"])
def test_compat_syscalls_are_not_counted(i386_binary, event):
    seen = _counts([sys.executable, "-m", "ebpfpy.bpftrace"], i386_binary, event)
    # i386 getpid (20) and exit (1) are x86-64's writev and write
    for name in ("writev", "write"):
        assert f"tracepoint:syscalls:{event}_{name}" not in seen, seen
    if event == "sys_enter":  # the 64-bit execve that starts it is seen (it returns in 32-bit mode)
        assert seen.get("tracepoint:syscalls:sys_enter_execve") == 1, seen


@pytest.mark.bpftrace
@pytest.mark.parametrize("event", ["sys_enter", "sys_exit"])
def test_compat_counts_match_bpftrace(i386_binary, event):
    # sys_exit: the execve that loads a 32-bit program returns as a compat syscall already
    # (the kernel marks the task at exec), so neither tool counts its sys_exit_execve
    ours = _counts([sys.executable, "-m", "ebpfpy.bpftrace"], i386_binary, event)
    theirs = _counts(["bpftrace"], i386_binary, event)
    assert ours == theirs
