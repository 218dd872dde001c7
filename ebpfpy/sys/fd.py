"""``FD``: a file descriptor with exactly one owner.

Every map, program, link and perf event is a kernel object kept alive by an
fd; leaking one leaves the object in the kernel. ``FD`` closes on
``close()``, on leaving a ``with`` block and, as a last resort, on garbage
collection, and ``detach()`` hands the number to a new owner.
"""
from __future__ import annotations

import fcntl
import os
from typing import Self


class FD:
    __slots__ = ("__weakref__", "_fd")

    def __init__(self, fd: int) -> None:
        if not isinstance(fd, int) or fd < 0:
            raise ValueError(f"invalid file descriptor {fd!r}")
        self._fd = fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError("operation on a closed file descriptor")
        return self._fd

    def fileno(self) -> int:
        return self.fd

    def __int__(self) -> int:
        return self.fd

    def __index__(self) -> int:
        return self.fd

    def detach(self) -> int:
        """Give up ownership: return the number, which the caller now closes."""
        fd = self.fd
        self._fd = -1
        return fd

    def dup(self) -> FD:
        """A second, independently owned fd for the same kernel object (O_CLOEXEC)."""
        return dup_fd(self.fd)

    def close(self) -> None:
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> FD:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"FD({self._fd})" if self._fd >= 0 else "FD(closed)"


class FdOwner:
    """Base of the objects that own one ``FD`` in ``self._fd`` (Map, Program):
    the fd accessors and the ``with``/``close()`` protocol, written once."""

    _fd: FD

    @property
    def fd(self) -> int:
        return self._fd.fd

    def fileno(self) -> int:
        return self._fd.fd

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        self._fd.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fd_number(obj) -> int:
    """The int behind an fd-like argument: an int, an ``FD`` or anything with ``fileno()``/``fd``."""
    if isinstance(obj, int):
        return obj
    if hasattr(obj, "fileno"):
        return obj.fileno()
    fd = getattr(obj, "fd", None)
    if isinstance(fd, int):
        return fd
    if fd is not None:
        return fd_number(fd)
    raise TypeError(f"not a file descriptor: {obj!r}")


def dup_fd(obj) -> FD:
    """A new owned FD (O_CLOEXEC) for the object behind any fd-like ``obj``: the caller's stays theirs."""
    return FD(fcntl.fcntl(fd_number(obj), fcntl.F_DUPFD_CLOEXEC, 0))
