"""A writer for the `newc` cpio format, the one the kernel unpacks as initramfs.

Written in Python rather than piping to cpio(1) so that guest paths need not
exist on the host: files are read from one place and stored under another,
and small generated files (the init script, the pytest arguments) are stored
from memory. The kernel does not create missing parent directories, so the
writer emits them before their first child.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad4(length: int) -> bytes:
    return b"\0" * (-length & 3)


class CpioWriter:
    """Appends entries to a binary stream; `close()` writes the trailer."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._ino = 1
        self._dirs: set[str] = {""}
        self.entries = 0
        self.data_bytes = 0

    def _header(
        self,
        name: str,
        mode: int,
        size: int,
        mtime: int,
        rdev: tuple[int, int] = (0, 0),
    ) -> None:
        raw_name = name.encode() + b"\0"
        fields = (
            self._ino,
            mode,
            0,
            0,
            1,
            int(mtime) & 0xFFFF_FFFF,
            size,
            0,
            0,
            rdev[0],
            rdev[1],
            len(raw_name),
            0,
        )
        self._ino += 1
        self.entries += 1
        header = MAGIC + b"".join(b"%08x" % value for value in fields)
        self._stream.write(header + raw_name + _pad4(len(header) + len(raw_name)))

    def _parents(self, name: str) -> None:
        parent = os.path.dirname(name)
        if parent not in self._dirs:
            self.dir(parent)

    @staticmethod
    def _name(path: str) -> str:
        name = os.path.normpath(path.lstrip("/"))
        if name == "." or name.startswith(".."):
            raise ValueError(f"bad archive path {path!r}")
        return name

    def dir(self, path: str, mode: int = 0o755, mtime: int = 0) -> None:
        name = self._name(path)
        if name in self._dirs:
            return
        self._parents(name)
        self._header(name, stat.S_IFDIR | mode, 0, mtime)
        self._dirs.add(name)

    def data(
        self, path: str, payload: bytes, mode: int = 0o644, mtime: int = 0
    ) -> None:
        name = self._name(path)
        self._parents(name)
        self._header(name, stat.S_IFREG | mode, len(payload), mtime)
        self._stream.write(payload + _pad4(len(payload)))
        self.data_bytes += len(payload)

    def file(self, path: str, source: str) -> None:
        """Store host file `source` at guest `path`, keeping mode and mtime (pyc checks use mtime).

        Read whole before the header is written, so a file rewritten meanwhile
        (another pytest run refreshing a pyc) cannot corrupt the archive."""
        name = self._name(path)
        info = os.stat(source)
        with open(source, "rb") as src:
            payload = src.read()
        self._parents(name)
        self._header(
            name, stat.S_IFREG | stat.S_IMODE(info.st_mode), len(payload), info.st_mtime
        )
        self._stream.write(payload + _pad4(len(payload)))
        self.data_bytes += len(payload)

    def symlink(self, path: str, target: str) -> None:
        name = self._name(path)
        self._parents(name)
        raw = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(raw), 0)
        self._stream.write(raw + _pad4(len(raw)))
        self._dirs.discard(name)

    def chardev(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        name = self._name(path)
        self._parents(name)
        self._header(name, stat.S_IFCHR | mode, 0, 0, (major, minor))

    def close(self) -> None:
        self._header(TRAILER, 0, 0, 0)
        self._stream.flush()
