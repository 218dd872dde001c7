"""The names of the compiled shim ebpfpy had before its syscalls went through cffi's ABI mode.

``ffi`` and ``lib.ebpfpy_bpf``/``ebpfpy_perf_event_open``/``ebpfpy_ioctl`` (each returns the
result or ``-errno``) for code written against that module, such as the standalone guest test
in tests/vm. New code uses ``ebpfpy.sys._libc``. The C trigger functions (``ebpfpy_*_trigger``)
are gone: nothing in ebpfpy fires a uprobe on them, and a test that needs a uprobe target can use
a libc function.
"""
from __future__ import annotations

from types import SimpleNamespace

from ebpfpy.sys._libc import bpf, ffi, ioctl, perf_event_open

lib = SimpleNamespace(ebpfpy_bpf=bpf, ebpfpy_perf_event_open=perf_event_open, ebpfpy_ioctl=ioctl)

__all__ = ["ffi", "lib"]
