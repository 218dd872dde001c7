"""The raw bpf() call every command module goes through, and the C memory its attributes point at.

Kept apart from the commands so that each command module (``bpf_maps``, ``bpf_progs``,
``bpf_links``, ``bpf_objects``) needs only this and its layouts: one way to make the call,
one way to turn a failure into a ``BPFError`` that names the command and, for a refusal,
says what would fix it.
"""
from __future__ import annotations

import errno as E

from ebpfpy.sys._libc import bpf as _bpf_syscall
from ebpfpy.sys._libc import ffi
from ebpfpy.sys.consts import Cmd
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.fd import FD

OBJ_NAME_LEN = 16  # BPF_OBJ_NAME_LEN, NUL included
BPF_TAG_SIZE = 8


class AttrMemory:
    """Buffers whose addresses go into an attribute; alive as long as this object."""

    def __init__(self) -> None:
        self._keep: list = []

    def put(self, data: bytes | bytearray | None) -> int:
        """Copy ``data`` into C memory and return its address (0 for None/empty)."""
        if not data:
            return 0
        buf = ffi.new("char[]", len(data))
        ffi.memmove(buf, bytes(data), len(data))
        self._keep.append(buf)
        return int(ffi.cast("uintptr_t", buf))

    def out(self, size: int):
        """A zeroed output buffer: (address, cdata) — read it with ``read()``."""
        if size <= 0:
            return 0, None
        buf = ffi.new("char[]", size)
        self._keep.append(buf)
        return int(ffi.cast("uintptr_t", buf)), buf

    def inout(self, data: bytes):
        """A buffer that starts as ``data`` and the kernel writes over: (address, cdata)."""
        addr, buf = self.out(len(data))
        ffi.memmove(buf, data, len(data))
        return addr, buf

    @staticmethod
    def read(buf, size: int) -> bytes:
        return bytes(ffi.buffer(buf, size)) if buf is not None and size > 0 else b""

    def cstr(self, text: str | None) -> int:
        return 0 if text is None else self.put(text.encode() + b"\0")


def bpf_call(cmd: Cmd, attr: bytearray, size: int) -> int:
    """The raw call: returns the result or raises BPFError naming the command."""
    rc = _bpf_syscall(int(cmd), ffi.from_buffer(attr), size)
    if rc < 0:
        raise _error(-rc, cmd, attr)
    return rc


def _error(code: int, cmd: Cmd, attr: bytearray) -> BPFError:
    """The BPFError for a failed call; a refusal (EPERM, ENOSYS) says why and what fixes it."""
    detail = ""
    if code in (E.EPERM, E.ENOSYS):
        from ebpfpy.sys.privileges import explain_bpf

        detail = explain_bpf(cmd.name, code, attr)
    return BPFError(code, "BPF_" + cmd.name, detail=detail)


def bpf_call_fd(cmd: Cmd, attr: bytearray, size: int) -> FD:
    """The raw call for the commands whose result is a new fd, which the caller then owns."""
    return FD(bpf_call(cmd, attr, size))


def obj_name(name: str) -> bytes:
    """A name the kernel accepts: at most 15 bytes of [A-Za-z0-9_.], NUL-padded."""
    clean = "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name)
    return clean.encode()[: OBJ_NAME_LEN - 1]


def is_enoent(exc: BPFError) -> bool:
    """ENOENT is how several commands say "nothing more" (next key, next id, the last batch)."""
    return exc.errno == E.ENOENT


def cstring(data: bytes) -> str:
    """The text of a NUL-terminated buffer the kernel filled (a log, a name)."""
    return data.split(b"\0", 1)[0].decode(errors="replace")
