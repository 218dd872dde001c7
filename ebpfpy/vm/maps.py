"""Emulated maps: the same dict-like API as ``ebpfpy.maps.Map``, with the values in VM memory.

A map belongs to one `VM` (``vm.create_map(...)``): its fd is a number in that VM's table,
which is what an ``LD_IMM64`` with a map fd (``ld_pseudo r1, 1, FD``) or a ``Builder``'s
``ld_map_fd(R1, m)`` refers to. Each element's value is a `Region` of its own, so a program
holding a pointer from ``map_lookup_elem`` reads and writes the element in place, a pointer
past the value faults, and a pointer to a deleted element faults too.

Keys and values are bytes unless the map is given ``key=``/``value=`` as ``struct`` formats (or
codecs); per-CPU maps read back as one value per emulated CPU, as ``Map`` does.
"""

from __future__ import annotations

import errno as E
import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ebpfpy.sys.consts import (
    BPF_F_CURRENT_CPU,
    BPF_F_REUSE_STACKID,
    BPF_F_SKIP_FIELD_MASK,
    BPF_F_USER_STACK,
    PERF_MAX_STACK_DEPTH,
    MapType,
    lookup,
    type_name,
)

from .errors import VMError
from .memory import MAP_HANDLE_BASE, MAP_VALUE_BASE, RINGBUF_BASE, Region

if TYPE_CHECKING:
    from .machine import VM

BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4
BPF_F_RDONLY_PROG = 0x80
_MISSING = object()


class Codec:
    """bytes <-> Python value for one key or value of ``size`` bytes (``ebpfpy.maps.Codec``'s shape)."""

    __slots__ = ("decode", "encode", "size")

    def __init__(self, size: int, encode, decode) -> None:
        self.size, self.encode, self.decode = size, encode, decode


def bytes_codec(size: int) -> Codec:
    def encode(v) -> bytes:
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected {size} bytes, got {type(v).__name__} (give the map key=/value= formats)")
        data = bytes(v)
        if len(data) != size:
            raise ValueError(f"expected {size} bytes, got {len(data)}")
        return data

    return Codec(size, encode, bytes)


def struct_codec(fmt: str) -> Codec:
    st = struct.Struct(fmt)
    single = len(st.unpack(bytes(st.size))) == 1

    def encode(v) -> bytes:
        if isinstance(v, (bytes, bytearray)) and len(v) == st.size:
            return bytes(v)
        return st.pack(v) if single else st.pack(*v)

    def decode(b: bytes):
        out = st.unpack(b)
        return out[0] if single else out

    return Codec(st.size, encode, decode)


def make_codec(spec) -> Any:
    """A codec for a ``key=``/``value=`` argument: a struct format, or anything with
    ``size``/``encode``/``decode`` (``ebpfpy.maps.Codec``, BTF codecs); ctypes types go
    through ``ebpfpy.maps``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return struct_codec(spec)
    if all(hasattr(spec, a) for a in ("size", "encode", "decode")) and not isinstance(spec, type):
        return spec
    from ebpfpy.maps import make_codec as loader_codec  # ctypes types: the loader's codecs

    return loader_codec(spec, None)


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _errno(code: int) -> int:
    return -code


# Default sizes per type: (key_size, value_size, max_entries); None: the caller must give it.
_DEFAULTS: dict[MapType, tuple] = {
    MapType.ARRAY: (4, None, None),
    MapType.PERCPU_ARRAY: (4, None, None),
    MapType.PROG_ARRAY: (4, 4, None),
    MapType.PERF_EVENT_ARRAY: (4, 4, "ncpus"),
    MapType.RINGBUF: (0, 0, 64 * 4096),
    MapType.STACK_TRACE: (4, 8 * PERF_MAX_STACK_DEPTH, 1024),
}


class VMMap:
    """Base of the emulated maps: identity, codecs and the dict API over raw bytes.

    Subclasses provide ``_lookup_raw``/``_update_raw``/``_delete_raw``/``_raw_keys`` for user
    space, and the program-side operations the helpers call (``prog_lookup`` ...), which
    return addresses or negative errnos as the kernel's helpers do."""

    percpu = False
    is_array = False
    dict_api = True
    int_keys = False

    def __init__(self, vm: VM, map_type: MapType, key_size: int, value_size: int, max_entries: int, *,
                 fd: int, name: str = "", flags: int = 0, key=None, value=None) -> None:
        self.vm = vm
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.fd = fd
        self.name = name
        self.flags = flags
        self.handle = MAP_HANDLE_BASE + (fd << 12)  # what r1 holds after ld_map_fd
        self.ncpus = vm.ncpus if self.percpu else 1
        self._slot = _round8(value_size) if self.percpu else value_size
        self.key_codec = make_codec(key) or self._default_key_codec()
        self.value_codec = make_codec(value) or self._default_value_codec()
        if self.dict_api and self.key_codec.size != key_size:
            raise ValueError(f"key codec is {self.key_codec.size} bytes, map key is {key_size}")
        if self.dict_api and self.value_codec.size > value_size:
            raise ValueError(f"value codec is {self.value_codec.size} bytes, map value is {value_size}")

    def _default_key_codec(self) -> Codec:
        if self.int_keys and self.key_size == 4:
            return struct_codec("=I")
        return bytes_codec(self.key_size)

    def _default_value_codec(self) -> Codec:
        return bytes_codec(self.value_size)

    @property
    def type_name(self) -> str:
        return type_name(MapType, int(self.map_type))

    @property
    def label(self) -> str:
        return self.name or f"map{self.fd}"

    def __repr__(self) -> str:
        return (f"<VMMap {self.type_name} {self.name!r} fd={self.fd} key={self.key_size} "
                f"value={self.value_size} max={self.max_entries}>")

    # Map's lifetime API, so code written for ebpfpy.maps.Map runs unchanged.
    def close(self) -> None:
        pass

    def __enter__(self) -> VMMap:
        return self

    def __exit__(self, *exc) -> None:
        pass

    @property
    def user_value_size(self) -> int:
        return self._slot * self.ncpus

    # -- value layout (as Map) ------------------------------------------------------------

    def _encode_value(self, v) -> bytes:
        if not self.percpu:
            return self.value_codec.encode(v).ljust(self.value_size, b"\0")
        if isinstance(v, list):
            if len(v) != self.ncpus:
                raise ValueError(f"per-CPU value needs {self.ncpus} entries, got {len(v)}")
            slots = v
        else:
            slots = [v] * self.ncpus
        return b"".join(self.value_codec.encode(s).ljust(self._slot, b"\0") for s in slots)

    def _decode_value(self, raw: bytes):
        n = self.value_codec.size
        if not self.percpu:
            return self.value_codec.decode(raw[:n])
        return [self.value_codec.decode(raw[i * self._slot:i * self._slot + n]) for i in range(self.ncpus)]

    def _need_dict_api(self) -> None:
        if not self.dict_api:
            raise TypeError(f"{self.type_name} maps have no key/value interface")

    def _key(self, k) -> bytes:
        self._need_dict_api()
        return self.key_codec.encode(k)

    # -- the mapping API ------------------------------------------------------------------

    def lookup_raw(self, key: bytes) -> bytes | None:
        self._need_dict_api()
        return self._lookup_raw(bytes(key))

    def __getitem__(self, k):
        raw = self.lookup_raw(self._key(k))
        if raw is None:
            raise KeyError(k)
        return self._decode_value(raw)

    def get(self, k, default=None):
        raw = self.lookup_raw(self._key(k))
        return default if raw is None else self._decode_value(raw)

    def __contains__(self, k) -> bool:
        return self.lookup_raw(self._key(k)) is not None

    def update(self, k, v, flags: int = BPF_ANY) -> None:
        self._need_dict_api()
        err = self._update_raw(self._key(k), self._encode_value(v), flags)
        if err:
            raise VMError(f"{self.label}: update failed: {E.errorcode.get(-err, err)}")

    def __setitem__(self, k, v) -> None:
        self.update(k, v)

    def __delitem__(self, k) -> None:
        self._need_dict_api()
        err = self._delete_raw(self._key(k))
        if err == -E.ENOENT:
            raise KeyError(k)
        if err:
            raise VMError(f"{self.label}: delete failed: {E.errorcode.get(-err, err)}")

    def pop(self, k, default=_MISSING):
        raw = self.lookup_raw(self._key(k))
        if raw is None:
            if default is _MISSING:
                raise KeyError(k)
            return default
        del self[k]
        return self._decode_value(raw)

    def raw_keys(self) -> Iterator[bytes]:
        self._need_dict_api()
        return iter(self._raw_keys())

    def __iter__(self) -> Iterator:
        return (self.key_codec.decode(k) for k in self.raw_keys())

    def keys(self) -> list:
        return list(self)

    def __len__(self) -> int:
        return len(self._raw_keys()) if self.dict_api else 0

    def raw_items(self, batch: bool | None = None) -> list[tuple[bytes, bytes]]:
        out = []
        for k in self.raw_keys():
            raw = self._lookup_raw(k)
            if raw is not None:
                out.append((k, raw))
        return out

    def raw_columns(self, batch: bool | None = None) -> tuple[list[bytes], list[bytes]]:
        """Keys and values as bytes in two parallel lists (per-CPU values not split), as Map's."""
        pairs = self.raw_items()
        return [k for k, _ in pairs], [v for _, v in pairs]

    def raw_blobs(self) -> tuple[bytes, bytes, int]:
        """All keys joined, all values joined, and how many entries, as Map's."""
        keys, values = self.raw_columns()
        return b"".join(keys), b"".join(values), len(keys)

    @property
    def props(self) -> VMMap:
        """What ``Map.props`` tells about the type (``percpu``, ``is_array``, ``dict_api``,
        ``int_keys``): here the class's own attributes, so code written for Map reads them alike."""
        return self

    def items(self, batch: bool | None = None) -> list:
        return [(self.key_codec.decode(k), self._decode_value(v)) for k, v in self.raw_items()]

    def values(self) -> list:
        return [v for _, v in self.items()]

    def dump(self, batch: bool | None = None) -> dict:
        return dict(self.items())

    def clear(self) -> None:
        self._need_dict_api()
        for k in list(self._raw_keys()):
            if self.is_array:
                self._update_raw(k, bytes(self.user_value_size), BPF_ANY)
            else:
                self._delete_raw(k)

    # -- to fill in -------------------------------------------------------------------------

    def _lookup_raw(self, key: bytes) -> bytes | None:
        raise TypeError(f"{self.type_name} maps have no key/value interface")

    def _update_raw(self, key: bytes, value: bytes, flags: int) -> int:
        raise TypeError(f"{self.type_name} maps have no key/value interface")

    def _delete_raw(self, key: bytes) -> int:
        raise TypeError(f"{self.type_name} maps have no key/value interface")

    def _raw_keys(self) -> list[bytes]:
        return []

    # Program side: what map_lookup_elem/update/delete do. Addresses, or negative errnos.
    def prog_lookup(self, key: bytes) -> int:
        raise VMError(f"map_lookup_elem is not allowed on {self.type_name} map {self.label!r}")

    def prog_update(self, key: bytes, value: bytes, flags: int) -> int:
        raise VMError(f"map_update_elem is not allowed on {self.type_name} map {self.label!r}")

    def prog_delete(self, key: bytes) -> int:
        raise VMError(f"map_delete_elem is not allowed on {self.type_name} map {self.label!r}")

    def prog_elements(self) -> list[tuple[bytes, int]]:
        """(key, value address on this CPU) of each element, for for_each_map_elem."""
        raise VMError(f"for_each_map_elem is not allowed on {self.type_name} map {self.label!r}")


class _ValueStore(VMMap):
    """Maps whose elements are value regions (one per CPU for per-CPU maps)."""

    def _new_element(self, key: bytes, value: bytes | None) -> list[Region]:
        space = self.vm.space
        writable = not self.flags & BPF_F_RDONLY_PROG
        regions = []
        for cpu in range(self.ncpus):
            data = value[cpu * self._slot:cpu * self._slot + self.value_size] if value else bytes(self.value_size)
            what = f"value of map {self.label!r} key {key.hex() or '-'}" + (f" cpu {cpu}" if self.percpu else "")
            regions.append(space.new(MAP_VALUE_BASE, data, what, writable))
        return regions

    def _free_element(self, regions: list[Region]) -> None:
        for r in regions:
            self.vm.space.remove(r)

    def _read_element(self, regions: list[Region]) -> bytes:
        if not self.percpu:
            return bytes(regions[0].buf)
        return b"".join(bytes(r.buf).ljust(self._slot, b"\0") for r in regions)

    def _write_element(self, regions: list[Region], value: bytes) -> None:
        for cpu, r in enumerate(regions):
            r.buf[:] = value[cpu * self._slot:cpu * self._slot + self.value_size]

    def _write_prog(self, regions: list[Region], value: bytes, new: bool) -> None:
        """A program's update: this CPU's value (the others zeroed for a new element)."""
        cpu = self.vm.cpu if self.percpu else 0
        for i, r in enumerate(regions):
            if i == cpu:
                r.buf[:] = value[:self.value_size]
            elif new:
                r.buf[:] = bytes(self.value_size)

    def _cpu_addr(self, regions: list[Region]) -> int:
        return regions[self.vm.cpu if self.percpu else 0].base


class HashMap(_ValueStore):
    """hash, percpu_hash (and the base of the LRU variants)."""

    lru = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._elems: dict[bytes, list[Region]] = OrderedDict()

    def _touch(self, key: bytes) -> None:
        if self.lru:
            self._elems.move_to_end(key)  # type: ignore[attr-defined]

    def _insert(self, key: bytes, value: bytes | None, flags: int, prog: bool) -> int:
        if flags & ~BPF_F_LOCK not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
            return _errno(E.EINVAL)
        flags &= ~BPF_F_LOCK
        old = self._elems.get(key)
        if old is not None:
            if flags == BPF_NOEXIST:
                return _errno(E.EEXIST)
            if prog:
                self._write_prog(old, value, new=False)
            else:
                self._write_element(old, value)
            self._touch(key)
            return 0
        if flags == BPF_EXIST:
            return _errno(E.ENOENT)
        if len(self._elems) >= self.max_entries:
            if not self.lru:
                return _errno(E.E2BIG)
            _, evicted = self._elems.popitem(last=False)  # type: ignore[call-arg]
            self._free_element(evicted)
        regions = self._new_element(key, None if prog else value)
        if prog:
            self._write_prog(regions, value, new=True)
        self._elems[key] = regions
        return 0

    def _lookup_raw(self, key: bytes) -> bytes | None:
        regions = self._elems.get(key)
        return None if regions is None else self._read_element(regions)

    def _update_raw(self, key: bytes, value: bytes, flags: int) -> int:
        return self._insert(key, value, flags, prog=False)

    def _delete_raw(self, key: bytes) -> int:
        regions = self._elems.pop(key, None)
        if regions is None:
            return _errno(E.ENOENT)
        self._free_element(regions)
        return 0

    def _raw_keys(self) -> list[bytes]:
        return list(self._elems)

    def prog_lookup(self, key: bytes) -> int:
        regions = self._elems.get(key)
        if regions is None:
            return 0
        self._touch(key)
        return self._cpu_addr(regions)

    def prog_update(self, key: bytes, value: bytes, flags: int) -> int:
        return self._insert(key, value, flags, prog=True)

    def prog_delete(self, key: bytes) -> int:
        return self._delete_raw(key)

    def prog_elements(self) -> list[tuple[bytes, int]]:
        return [(k, self._cpu_addr(r)) for k, r in list(self._elems.items())]


class PercpuHashMap(HashMap):
    percpu = True


class LruHashMap(HashMap):
    """Exact LRU (the kernel's is approximate: per-CPU free lists, batch eviction)."""

    lru = True


class LruPercpuHashMap(LruHashMap):
    percpu = True


class ArrayMap(_ValueStore):
    """array, percpu_array: keys 0..max_entries-1 always exist, zeroed; elements are made
    on first use."""

    is_array = True
    int_keys = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.key_size != 4:
            raise ValueError(f"{self.type_name} maps have 4-byte keys, not {self.key_size}")
        self._elems: dict[int, list[Region]] = {}

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def element(self, index: int) -> list[Region]:
        regions = self._elems.get(index)
        if regions is None:
            regions = self._elems[index] = self._new_element(index.to_bytes(4, "little"), None)
        return regions

    def _lookup_raw(self, key: bytes) -> bytes | None:
        i = self._index(key)
        if i >= self.max_entries:
            return None
        regions = self._elems.get(i)
        return bytes(self.user_value_size) if regions is None else self._read_element(regions)

    def _update_raw(self, key: bytes, value: bytes, flags: int) -> int:
        return self._update(key, value, flags, prog=False)

    def _update(self, key: bytes, value: bytes, flags: int, prog: bool) -> int:
        if flags & ~BPF_F_LOCK > BPF_EXIST:
            return _errno(E.EINVAL)
        i = self._index(key)
        if i >= self.max_entries:
            return _errno(E.E2BIG)
        if flags & ~BPF_F_LOCK == BPF_NOEXIST:
            return _errno(E.EEXIST)
        if prog:
            self._write_prog(self.element(i), value, new=False)
        else:
            self._write_element(self.element(i), value)
        return 0

    def _delete_raw(self, key: bytes) -> int:
        return _errno(E.EINVAL)

    def __delitem__(self, k) -> None:
        raise VMError(f"{self.label}: array elements cannot be deleted")

    def _raw_keys(self) -> list[bytes]:
        return [i.to_bytes(4, "little") for i in range(self.max_entries)]

    def made_items(self) -> list[tuple[bytes, bytes]]:
        """(key, value) of the elements made so far (written, or whose address a program took),
        in index order; every other element reads as zeros. Printing these rather than every
        element (`raw_items`) stays quick for an array of millions of elements."""
        return [(i.to_bytes(4, "little"), self._read_element(r)) for i, r in sorted(self._elems.items())]

    def prog_lookup(self, key: bytes) -> int:
        i = self._index(key)
        return 0 if i >= self.max_entries else self._cpu_addr(self.element(i))

    def prog_update(self, key: bytes, value: bytes, flags: int) -> int:
        return self._update(key, value, flags, prog=True)

    def prog_delete(self, key: bytes) -> int:
        return _errno(E.EINVAL)

    def prog_elements(self) -> list[tuple[bytes, int]]:
        return [(i.to_bytes(4, "little"), self._cpu_addr(self.element(i))) for i in range(self.max_entries)]

    def value_address(self, offset: int) -> int:
        """Where ``LD_IMM64`` with a map value (``ld_pseudo r1, 2, FD, OFF``) points: element 0."""
        if self.percpu:
            raise VMError(f"direct value access is not allowed on {self.type_name} map {self.label!r}")
        if not 0 <= offset < self.value_size:
            raise VMError(f"map value offset {offset} is outside the {self.value_size}-byte value of {self.label!r}")
        return self.element(0)[0].base + offset


class PercpuArrayMap(ArrayMap):
    percpu = True


class ProgArrayMap(VMMap):
    """Programs by index, for tail calls: ``pa[0] = prog`` (a `VMProgram`)."""

    is_array = True
    int_keys = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._progs: dict[int, Any] = {}

    def __getitem__(self, k):
        return self._progs[int(k)]

    def get(self, k, default=None):
        return self._progs.get(int(k), default)

    def __contains__(self, k) -> bool:
        return int(k) in self._progs

    def update(self, k, v, flags: int = BPF_ANY) -> None:
        i = int(k)
        if not 0 <= i < self.max_entries:
            raise VMError(f"{self.label}: index {i} is outside the {self.max_entries}-slot prog array")
        if getattr(v, "vm", None) is not self.vm:
            raise VMError(f"{self.label}: a prog array holds programs loaded in the same VM, not {v!r}")
        self._progs[i] = v

    def __delitem__(self, k) -> None:
        del self._progs[int(k)]

    def _raw_keys(self) -> list[bytes]:
        return [i.to_bytes(4, "little") for i in sorted(self._progs)]

    def items(self, batch: bool | None = None) -> list:
        return sorted(self._progs.items())

    def raw_items(self, batch: bool | None = None) -> list[tuple[bytes, bytes]]:
        return [(i.to_bytes(4, "little"), p.index.to_bytes(4, "little")) for i, p in self.items()]

    def clear(self) -> None:
        self._progs.clear()

    def target(self, index: int):
        return self._progs.get(index)


class PerfEventArrayMap(VMMap):
    """perf_event_output collects ``(cpu, bytes)`` records in ``records``; every slot counts as
    an open perf event."""

    is_array = True
    int_keys = True
    dict_api = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[tuple[int, bytes]] = []

    def output(self, flags: int, data: bytes) -> int:
        index = flags & BPF_F_CURRENT_CPU
        if index == BPF_F_CURRENT_CPU:
            index = self.vm.cpu
        if index >= self.max_entries:
            return _errno(E.E2BIG)
        self.records.append((index, data))
        return 0

    def consume(self) -> list[tuple[int, bytes]]:
        out, self.records = self.records, []
        return out


class _Record:
    __slots__ = ("data", "region", "size", "state")

    def __init__(self, size: int, region: Region | None, data: bytes | None, state: str) -> None:
        self.size, self.region, self.data, self.state = size, region, data, state


class RingBufMap(VMMap):
    """ringbuf_output/reserve/submit/discard. ``records`` are the submitted records in
    reservation order (as a consumer sees them: it stops at a record still reserved);
    ``consume()`` takes them out and frees their space. Each record takes 8 bytes of header
    plus its size rounded up to 8, out of ``max_entries`` bytes."""

    dict_api = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._queue: list[_Record] = []
        self._reserved: dict[int, _Record] = {}

    def _used(self) -> int:
        return sum(8 + _round8(r.size) for r in self._queue)

    def _room(self, size: int) -> bool:
        return self._used() + 8 + _round8(size) <= self.max_entries

    def output(self, data: bytes, flags: int) -> int:
        if not self._room(len(data)):
            return _errno(E.EAGAIN)
        self._queue.append(_Record(len(data), None, bytes(data), "done"))
        return 0

    def reserve(self, size: int, flags: int) -> int:
        if flags or size > self.max_entries or not self._room(size):
            return 0
        region = self.vm.space.new(RINGBUF_BASE, size, f"ring buffer {self.label!r} record of {size} bytes")
        rec = _Record(size, region, None, "busy")
        self._queue.append(rec)
        self._reserved[region.base] = rec
        return region.base

    def commit(self, addr: int, discard: bool) -> None:
        rec = self._reserved.pop(addr, None)
        if rec is None:
            raise VMError(f"ringbuf_{'discard' if discard else 'submit'} of {addr:#x}, which is not a "
                          "reserved ring buffer record", address=addr)
        self.vm.space.remove(rec.region)
        rec.data = None if discard else bytes(rec.region.buf)
        rec.state = "discarded" if discard else "done"
        rec.region = None

    @property
    def records(self) -> list[bytes]:
        out = []
        for rec in self._queue:
            if rec.state == "busy":
                break
            if rec.state == "done":
                out.append(rec.data)
        return out

    def consume(self) -> list[bytes]:
        out = []
        while self._queue and self._queue[0].state != "busy":
            rec = self._queue.pop(0)
            if rec.state == "done":
                out.append(rec.data)
        return out


class StackTraceMap(VMMap):
    """get_stackid stores the VM's given stack (``vm.kernel_stack`` / ``vm.user_stack``)
    under an id derived from its hash; values read back as tuples of addresses, as Map's."""

    int_keys = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.value_size % 8 or not self.value_size:
            raise ValueError(f"stack trace map values are a multiple of 8 bytes, not {self.value_size}")
        self._stacks: dict[int, tuple[int, ...]] = {}
        self.buckets = 1 << max(0, (self.max_entries - 1).bit_length())

    def _default_value_codec(self) -> Codec:
        n = self.value_size // 8

        def encode(ips) -> bytes:
            ips = list(ips)[:n]
            return struct.pack(f"<{n}Q", *(ips + [0] * (n - len(ips))))

        def decode(b: bytes) -> tuple:
            ips = struct.unpack(f"<{n}Q", b)
            end = len(ips)
            while end and not ips[end - 1]:
                end -= 1
            return ips[:end]

        return Codec(self.value_size, encode, decode)

    def _lookup_raw(self, key: bytes) -> bytes | None:
        ips = self._stacks.get(int.from_bytes(key, "little"))
        return None if ips is None else self.value_codec.encode(ips)

    def _update_raw(self, key: bytes, value: bytes, flags: int) -> int:
        return _errno(E.EINVAL)

    def _delete_raw(self, key: bytes) -> int:
        return 0 if self._stacks.pop(int.from_bytes(key, "little"), None) is not None else _errno(E.ENOENT)

    def _raw_keys(self) -> list[bytes]:
        return [i.to_bytes(4, "little") for i in sorted(self._stacks)]

    def prog_lookup(self, key: bytes) -> int:
        raise VMError(f"map_lookup_elem is not allowed on stack trace map {self.label!r}; read it from user space")

    def get_stackid(self, flags: int) -> int:
        stack = self.vm.user_stack if flags & BPF_F_USER_STACK else self.vm.kernel_stack
        ips = tuple(stack)[flags & BPF_F_SKIP_FIELD_MASK:][: self.value_size // 8]
        if not ips:
            return _errno(E.EFAULT)
        sid = zlib.crc32(struct.pack(f"<{len(ips)}Q", *(ip & (2**64 - 1) for ip in ips))) & (self.buckets - 1)
        old = self._stacks.get(sid)
        if old is not None and old != ips and not flags & BPF_F_REUSE_STACKID:
            return _errno(E.EEXIST)
        self._stacks[sid] = ips
        return sid


MAP_CLASSES: dict[MapType, type[VMMap]] = {
    MapType.HASH: HashMap,
    MapType.PERCPU_HASH: PercpuHashMap,
    MapType.LRU_HASH: LruHashMap,
    MapType.LRU_PERCPU_HASH: LruPercpuHashMap,
    MapType.ARRAY: ArrayMap,
    MapType.PERCPU_ARRAY: PercpuArrayMap,
    MapType.PROG_ARRAY: ProgArrayMap,
    MapType.PERF_EVENT_ARRAY: PerfEventArrayMap,
    MapType.RINGBUF: RingBufMap,
    MapType.STACK_TRACE: StackTraceMap,
}


def create(vm: VM, map_type, key_size: int | None, value_size: int | None, max_entries: int | None, *,
           fd: int, key=None, value=None, name: str = "", flags: int = 0) -> VMMap:
    """An emulated map of ``map_type`` (a ``MapType``, its number or name), sized like
    ``Map.create``: sizes left as None come from ``key=``/``value=`` or the type's defaults."""
    try:
        mtype = lookup(MapType, map_type)
    except ValueError as e:
        raise VMError(str(e)) from None
    cls = MAP_CLASSES.get(mtype)
    if cls is None:
        known = ", ".join(sorted(t.name.lower() for t in MAP_CLASSES))
        raise VMError(f"{mtype.name.lower()} maps are not emulated (the VM has {known})")
    dk, dv, dmax = _DEFAULTS.get(mtype, (None, None, None))
    kc, vc = make_codec(key), make_codec(value)
    key_size = _first(key_size, kc and kc.size, dk)
    value_size = _first(value_size, vc and vc.size, dv)
    if dmax == "ncpus":
        dmax = vm.ncpus
    if not max_entries:
        max_entries = dmax
    if key_size is None or value_size is None or not max_entries:
        raise VMError(f"{mtype.name.lower()} map needs key_size, value_size and max_entries")
    if cls.dict_api and (value_size <= 0 or key_size <= 0):
        raise VMError(f"{mtype.name.lower()} map needs key and value sizes above 0")
    _check_limits(cls, mtype, key_size, value_size, max_entries)
    try:
        return cls(vm, mtype, key_size, value_size, max_entries, fd=fd, name=name, flags=flags, key=key,
                   value=value)
    except ValueError as e:  # a size or codec the map type cannot take: the caller's, not a bug
        raise VMError(str(e)) from None


# The kernel's own bounds (include/linux/slab.h, mm/percpu.c, the bpf_attr fields): what it refuses
# with E2BIG or EINVAL the VM refuses too, rather than trying to allocate a value of gigabytes.
KMALLOC_MAX_SIZE = 1 << 22  # x86-64: the largest element the kernel allocates in one piece
PCPU_MIN_UNIT_SIZE = 32 << 10  # a per-CPU value, rounded up to 8 bytes, must fit this
MAX_BPF_STACK = 512  # a hash key lives on the program's stack
U32_MAX = 0xFFFF_FFFF


def _check_limits(cls: type[VMMap], mtype: MapType, key_size: int, value_size: int, max_entries: int) -> None:
    what = f"{mtype.name.lower()} map"
    if not 0 < max_entries <= U32_MAX:
        raise VMError(f"{what}: max_entries {max_entries} is not in 1..{U32_MAX}")
    if not (0 <= key_size <= U32_MAX and 0 <= value_size <= U32_MAX):
        raise VMError(f"{what}: key and value sizes are 32-bit (got {key_size} and {value_size})")
    if cls.dict_api and not cls.is_array and key_size > MAX_BPF_STACK:
        raise VMError(f"{what}: key_size {key_size} is above {MAX_BPF_STACK} (the kernel says E2BIG)")
    if value_size > KMALLOC_MAX_SIZE:
        raise VMError(f"{what}: value_size {value_size} is above {KMALLOC_MAX_SIZE} (the kernel says E2BIG)")
    if cls.percpu and _round8(value_size) > PCPU_MIN_UNIT_SIZE:
        raise VMError(f"{what}: a per-CPU value_size above {PCPU_MIN_UNIT_SIZE} (the kernel says E2BIG)")


def _first(*candidates):
    for c in candidates:
        if c is not None:
            return c
    return None
