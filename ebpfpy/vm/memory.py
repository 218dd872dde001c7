"""The VM's memory: regions of bytes at fake 64-bit addresses, with bounds checks.

Every piece of memory a program can reach is a `Region`: a stack frame, the context, the
packet, a memory image, one map value, one ring buffer record. Pointers are plain 64-bit
integers; each kind of region lives in its own address range (see the ``*_BASE`` constants),
so a pointer's value says what it points to, and a region never touches another one: running
off the end of anything is a fault, never a silent read of a neighbour.

Lookups go through windows of 64 KiB: ``space.rd[addr >> 16]`` is a tuple ``(base, end, buf,
region)`` for the region covering that window, so the interpreter's loads and stores check
bounds with two comparisons and index a ``bytearray``. Regions the VM allocates start on a
window boundary and have windows of their own; memory images placed by the user at addresses
of their choosing may share a window, which then takes the slow path (`AddressSpace.find`).
"""

from __future__ import annotations

import struct

from .errors import VMError

M64 = (1 << 64) - 1
WINDOW_SHIFT = 16
WINDOW = 1 << WINDOW_SHIFT

# Where each kind of region lives. Each range is 2**44 bytes: far more windows than a run uses.
CTX_BASE = 0x0000_1000_0000_0000
PACKET_BASE = 0x0000_2000_0000_0000
MEM_BASE = 0x0000_3000_0000_0000
MAP_VALUE_BASE = 0x0000_4000_0000_0000
RINGBUF_BASE = 0x0000_5000_0000_0000
SCRATCH_BASE = 0x0000_6000_0000_0000  # helpers' temporaries (for_each_map_elem keys)
STACK_BASE = 0x0000_7FF0_0000_0000
# Not memory: values that stand for objects (a map, a subprogram) in registers.
MAP_HANDLE_BASE = 0x0000_0A00_0000_0000
FUNC_BASE = 0x0000_0C00_0000_0000
AREA_SIZE = 1 << 44
_RESERVED = (CTX_BASE, PACKET_BASE, MEM_BASE, MAP_VALUE_BASE, RINGBUF_BASE, SCRATCH_BASE, STACK_BASE)

_SHARED = object()  # the buf of a window entry that several regions share


class Region:
    """``size`` bytes at ``base``: a ``bytearray`` the program reads (and writes, if
    ``writable``). ``name`` says what it is in fault messages ("stack frame 0")."""

    __slots__ = ("base", "buf", "name", "size", "writable")

    def __init__(self, base: int, buf: bytearray, name: str, writable: bool = True) -> None:
        self.base = base
        self.buf = buf
        self.size = len(buf)
        self.name = name
        self.writable = writable

    @property
    def end(self) -> int:
        return self.base + self.size

    def __repr__(self) -> str:
        return f"<Region {self.name} [{self.base:#x}, {self.end:#x}) {'rw' if self.writable else 'ro'}>"

    def _windows(self) -> range:
        last = (self.base + max(self.size, 1) - 1) >> WINDOW_SHIFT
        return range(self.base >> WINDOW_SHIFT, last + 1)


def _fmt_size(n: int) -> str:
    return f"{n} byte" + ("" if n == 1 else "s")


class AddressSpace:
    """The regions one VM can reach, indexed by window for the interpreter's fast path."""

    def __init__(self) -> None:
        self.rd: dict[int, tuple] = {}  # window -> (base, end, buf, region) for loads
        self.wr: dict[int, tuple] = {}  # the same, writable regions only
        self._in: dict[int, list[Region]] = {}  # window -> every region touching it
        self._next: dict[int, int] = {}  # area base -> next free address in it

    # -- placing regions ------------------------------------------------------------------

    def alloc(self, area: int, size: int) -> int:
        """A fresh, window-aligned address in ``area`` for ``size`` bytes (never reused, so a
        stale pointer to a freed region faults instead of reaching its successor)."""
        at = self._next.get(area, area)
        windows = max(1, -(-size // WINDOW))
        self._next[area] = at + windows * WINDOW
        return at

    def new(self, area: int, data: bytes | bytearray | int, name: str, writable: bool = True) -> Region:
        """A region of ``data`` (or that many zero bytes) at a fresh address of ``area``, added."""
        buf = bytearray(data)
        region = Region(self.alloc(area, len(buf)), buf, name, writable)
        self.add(region)
        return region

    def add(self, region: Region) -> Region:
        for key in region._windows():
            for other in self._in.get(key, ()):
                if (other.base < region.end and region.base < other.end) or other.base == region.base:
                    raise VMError(f"{region.name} [{region.base:#x}, {region.end:#x}) overlaps {other.name} "
                                  f"[{other.base:#x}, {other.end:#x})", address=region.base)
        for key in region._windows():
            self._in.setdefault(key, []).append(region)
            self._reindex(key)
        return region

    def remove(self, region: Region) -> None:
        for key in region._windows():
            regions = self._in.get(key)
            if regions and region in regions:
                regions.remove(region)
                if not regions:
                    del self._in[key]
                self._reindex(key)

    def _reindex(self, key: int) -> None:
        regions = self._in.get(key, [])
        for table, members in ((self.rd, regions), (self.wr, [r for r in regions if r.writable])):
            if not members:
                table.pop(key, None)
            elif len(members) == 1:
                r = members[0]
                table[key] = (r.base, r.end, r.buf, r)
            else:  # base > end: the fast path's bounds check always fails, find() decides
                table[key] = (1, 0, _SHARED, None)

    def regions(self) -> list[Region]:
        seen: dict[int, Region] = {}
        for regions in self._in.values():
            for r in regions:
                seen[id(r)] = r
        return sorted(seen.values(), key=lambda r: r.base)

    # -- access ---------------------------------------------------------------------------

    def find(self, addr: int, n: int, write: bool = False) -> tuple[Region, int]:
        """The region holding ``[addr, addr + n)`` and the offset in it, or a `VMError`."""
        addr &= M64
        for r in self._in.get(addr >> WINDOW_SHIFT, ()):
            if r.base <= addr and addr + n <= r.base + r.size:
                if write and not r.writable:
                    raise VMError(f"write of {_fmt_size(n)} at {addr:#x} into read-only {r.name}", address=addr)
                return r, addr - r.base
        raise self.fault(addr, n, write)

    def fault(self, addr: int, n: int, write: bool) -> VMError:
        addr &= M64
        what = f"{'write' if write else 'read'} of {_fmt_size(n)} at {addr:#x}"
        if addr < 4096:
            return VMError(f"{what}: null pointer dereference", address=addr)
        key = addr >> WINDOW_SHIFT
        near = [r for k in (key, key - 1, key + 1) for r in self._in.get(k, ())]
        if near:
            r = min(near, key=lambda r: 0 if r.base <= addr < r.end else min(abs(addr - r.base), abs(addr - r.end)))
            if addr >= r.end:
                where = f"{addr - r.end} bytes past the end of" if addr > r.end else "just past the end of"
            elif addr < r.base:
                where = f"{r.base - addr} bytes before"
            else:
                where = f"running {addr + n - r.end} bytes past the end of"
            return VMError(f"{what} is out of bounds: {where} {r.name} [{r.base:#x}, {r.end:#x})", address=addr)
        return VMError(f"{what}: no memory there", address=addr)

    def read(self, addr: int, n: int) -> bytes:
        if n == 0:
            return b""
        r, off = self.find(addr, n)
        return bytes(r.buf[off:off + n])

    def write(self, addr: int, data: bytes | bytearray) -> None:
        if not data:
            return
        r, off = self.find(addr, len(data), write=True)
        r.buf[off:off + len(data)] = data

    def load(self, addr: int, n: int, signed: bool = False) -> int:
        """The slow path of a load: ``n`` bytes at ``addr`` as an integer (two's complement
        64-bit when ``signed``)."""
        r, off = self.find(addr, n)
        value = int.from_bytes(r.buf[off:off + n], "little", signed=signed)
        return value & M64

    def store(self, addr: int, n: int, value: int) -> None:
        r, off = self.find(addr, n, write=True)
        r.buf[off:off + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")

    def read_str(self, addr: int, limit: int) -> tuple[bytes, bool]:
        """Bytes from ``addr`` up to a NUL (not included) or ``limit`` bytes; and whether the
        read stayed inside readable memory (False: it faulted before a NUL or the limit)."""
        out = bytearray()
        addr &= M64
        while len(out) < limit:
            try:
                r, off = self.find(addr + len(out), 1)
            except VMError:
                return bytes(out), False
            chunk = r.buf[off:off + limit - len(out)]
            nul = chunk.find(0)
            if nul >= 0:
                out += chunk[:nul]
                return bytes(out), True
            out += chunk
        return bytes(out), True


_U = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}
_S = {1: struct.Struct("<b"), 2: struct.Struct("<h"), 4: struct.Struct("<i"), 8: struct.Struct("<q")}


def unpacker(size: int, signed: bool = False):
    return (_S if signed else _U)[size].unpack_from


def packer(size: int):
    return _U[size].pack_into


def reserved_area(addr: int) -> int | None:
    """The VM's own area holding ``addr``, if any (user memory images must stay out of them)."""
    for base in _RESERVED:
        if base <= addr < base + AREA_SIZE:
            return base
    return None
