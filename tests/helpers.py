"""Helpers shared by the kernel tests, imported by basename (``from helpers import ...``).

tests/ has no ``__init__.py``; pytest puts tests/ on ``sys.path`` because
``tests/conftest.py`` lives there, the same way it puts tests/kernel there
for ``test_attach_common``.
"""
from __future__ import annotations

import os
import struct

_INSN = struct.Struct("<BBhi")  # opcode, dst|src<<4, off, imm


def open_fds() -> set[str]:
    """This process's open fds: compare before and after to prove nothing leaked."""
    return set(os.listdir("/proc/self/fd"))


def ret(value: int) -> bytes:
    """``r0 = value; exit`` as raw bytes (so the syscall tests need no ISA layer)."""
    return _INSN.pack(0xB7, 0, 0, value) + _INSN.pack(0x95, 0, 0, 0)


def tracepoint_id(category: str, event: str) -> int:
    """perf config of tracepoint category:event (tracefs mounted when missing); skips the test if absent."""
    import pytest

    from ebpfpy import bpffs

    path = os.path.join(bpffs.ensure_tracefs(), "events", category, event, "id")
    if not os.path.exists(path):
        pytest.skip(f"no {category}:{event} tracepoint")
    with open(path) as f:
        return int(f.read())


def emit_slot_lookup(b, map_ref, slot: int, *, key_off: int = -4, key_size: int = 4) -> None:
    """``r0 = map_lookup_elem(map_ref, &slot)`` with the key stored at ``fp + key_off``;
    jump to the label ``out`` when it is NULL (the null check the verifier wants)."""
    from ebpfpy.isa.builder import FP, R0, R1, R2

    b.st(key_size, FP, slot, key_off)
    b.ld_map_fd(R1, map_ref)
    b.mov(R2, FP)
    b.add(R2, key_off)
    b.call("map_lookup_elem")
    b.jeq(R0, 0, "out")


def trace_while(script: str, trigger, *, stop: bool = True, timeout: float = 90) -> str:
    """Run pybpftrace ``script`` (this pid as $1), call ``trigger()`` once it has attached, and
    return its stdout. ``stop``: SIGINT after the trigger, so it prints its maps and exits;
    otherwise the script exits by itself. A watchdog kills it if it hangs."""
    import signal
    import subprocess
    import sys
    import threading

    import pytest

    proc = subprocess.Popen([sys.executable, "-m", "ebpfpy.bpftrace", "-e", script, str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        first = proc.stdout.readline()
        if not first.startswith("Attaching "):
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"pybpftrace did not attach: {first}{out}{err}")
        trigger()
        if stop:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return first + out


def map_entries(out: str, name: str) -> dict:
    """`@name[key]: value` lines -> {key: int value} (key None for a scalar map)."""
    import re

    found = {}
    for m in re.finditer(rf"^@{name}(?:\[(.*)\])?: (-?\d+)$", out, re.M):
        found[m.group(1)] = int(m.group(2))
    return found
