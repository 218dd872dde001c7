"""The syscall table against this kernel: calling number N must reach ``sys_enter_<name>``
for the name the table gives N, and the tracepoint must record N as its ``__syscall_nr``.

A wrong entry would make the raw_syscalls dispatch of ``t:syscalls:sys_enter_*``
count one syscall under another's name; this test would see it.
"""
import ctypes
import os

import helpers
import pytest

from ebpfpy import bpffs
from ebpfpy.attach.syscalls import syscall_numbers

pytestmark = pytest.mark.kernel

# Calls that fail harmlessly with (-1, 0, 0, 0, 0, 0), covering the renamed entry points,
# both sides of the numbering gap and syscalls newer than the uapi header.
NAMES = ["getppid", "newstat", "newfstat", "newlstat", "newuname", "umount", "sendfile64", "dup",
         "fchdir", "pidfd_send_signal", "close_range", "openat2", "faccessat2", "futex_waitv",
         "cachestat", "fchmodat2", "statmount", "listmount", "getxattrat", "file_getattr"]


def _call_failing(nr: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.syscall(ctypes.c_long(nr), ctypes.c_long(-1), *(ctypes.c_long(0),) * 5)


def test_table_matches_the_kernel():
    numbers = syscall_numbers()
    if not numbers:
        pytest.skip("no syscall table for this architecture")
    events = os.path.join(bpffs.ensure_tracefs(), "events", "syscalls")
    names = [n for n in NAMES if os.path.isdir(os.path.join(events, f"sys_enter_{n}"))]
    probes = ",".join(f"t:syscalls:sys_enter_{n}" for n in names)
    out = helpers.trace_while(f"{probes} /pid == $1/ {{ @[probe] = max(args->__syscall_nr); }}",
                              lambda: [_call_failing(numbers[n]) for n in names])
    seen = helpers.map_entries(out, "")
    assert seen == {f"tracepoint:syscalls:sys_enter_{n}": numbers[n] for n in names}
