"""The one exception family of ebpfpy's syscall layer.

A failed ``bpf()`` call is only useful to a user if it says which command
failed and, for loads, what the verifier said; ``BPFError`` carries both so
the layers above never have to re-wrap errno values.
"""
from __future__ import annotations

import errno as _errno
import os
import re

# The kernel's own "not supported" (include/linux/errno.h), which leaks to
# user space from bpf() and has no name in Python's errno module.
ENOTSUPP = 524

_EXTRA_NAMES = {ENOTSUPP: "Operation not supported (ENOTSUPP)"}


def strerror(code: int) -> str:
    """strerror() that also knows the kernel-internal codes bpf() returns."""
    return _EXTRA_NAMES.get(code) or os.strerror(code)


class BPFError(OSError):
    """A failed bpf()/perf_event_open() call: errno, command name and log.

    ``str()`` is one readable line, followed by the verifier (or BTF) log
    when there is one, because the log is what explains a rejected load.
    """

    def __init__(self, code: int, command: str, log: str = "", detail: str = "") -> None:
        super().__init__(code, strerror(code))
        self.command = command
        self.log = log
        self.detail = detail

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, "ENOTSUPP" if self.errno == ENOTSUPP else str(self.errno))

    def __str__(self) -> str:
        head = f"{self.command} failed: {self.strerror} [{self.errno_name}]"
        if self.detail:
            head += f" ({self.detail})"
        log = self.log.rstrip("\n\0 ")
        return f"{head}\nverifier log:\n{log}" if log else head

    def __reduce__(self):
        return (type(self), (self.errno, self.command, self.log, self.detail))


def check(rc: int, command: str, detail: str = "") -> int:
    """Turn the shim's ``-errno`` convention into a result or a BPFError."""
    if rc < 0:
        raise BPFError(-rc, command, detail=detail)
    return rc


def failing_insn(log: str) -> int | None:
    """The index of the last instruction a verifier log shows: the one the verifier stopped at
    (front ends map it back to the source line that emitted it)."""
    found = re.findall(r"^(\d+): \(", log, re.MULTILINE)
    return int(found[-1]) if found else None
