"""ebpfpy's syscall layer: bpf(), perf_event_open() and the fds they return.

``bpf`` has one function per bpf() command, ``perf`` the perf_event_open
side, ``consts`` the uapi numbers, ``errors.BPFError`` the one exception and
``fd.FD`` the owner of every fd. Submodules are imported on demand.
"""
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD

__all__ = ["FD", "BPFError"]
