"""``Map``: a BPF map as a Python mapping.

Keys and values travel as bytes unless the map is given a codec: a
``struct`` format (``key="I"``, ``value="QQ"``) or a ctypes type. Per-type
policy (default sizes, per-CPU layout, which types support the dict API or
batch operations) is one table, ``MAP_TYPES``, so adding a type is one row.
"""
from __future__ import annotations

import errno as E
import mmap
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys import bpf
from ebpfpy.sys.consts import (
    PERF_MAX_STACK_DEPTH,
    MapType,
    UpdateFlag,
    lookup,
    type_name,
)
from ebpfpy.sys.errors import ENOTSUPP, BPFError
from ebpfpy.sys.fd import FD, FdOwner, dup_fd, fd_number
from ebpfpy.sys.perf import possible_cpus

PAGE_SIZE = mmap.PAGESIZE
_UNSUPPORTED = (E.EINVAL, E.EOPNOTSUPP, ENOTSUPP)
_BATCH_MAX = 1 << 16  # elements per BPF_MAP_LOOKUP_BATCH call


@dataclass(frozen=True)
class MapTypeProps:
    """What ebpfpy knows about one map type.

    ``key_size``/``value_size``/``max_entries`` are defaults (a callable is
    evaluated at create time); ``kind`` picks the default value codec.
    """

    percpu: bool = False
    is_array: bool = False  # keys 0..max_entries-1 always exist; delete is refused
    dict_api: bool = True  # lookup/update/iterate from user space
    batch: bool = False  # BPF_MAP_*_BATCH implemented for this type
    key_size: int | None = None
    value_size: int | None = None
    max_entries: Any = None
    kind: str = "bytes"  # "bytes" | "fd" | "stack"
    int_keys: bool = False  # default key codec: u32 (array index, CPU, stack id)


def _ncpus() -> int:
    return len(possible_cpus())


MAP_TYPES: dict[MapType, MapTypeProps] = {
    MapType.HASH: MapTypeProps(batch=True),
    MapType.ARRAY: MapTypeProps(is_array=True, batch=True, key_size=4, int_keys=True),
    MapType.PERCPU_HASH: MapTypeProps(percpu=True, batch=True),
    MapType.PERCPU_ARRAY: MapTypeProps(percpu=True, is_array=True, batch=True, key_size=4,
                                       int_keys=True),
    MapType.LRU_HASH: MapTypeProps(batch=True),
    MapType.LRU_PERCPU_HASH: MapTypeProps(percpu=True, batch=True),
    MapType.PERF_EVENT_ARRAY: MapTypeProps(is_array=True, key_size=4, value_size=4,
                                           max_entries=_ncpus, kind="fd", int_keys=True),
    MapType.PROG_ARRAY: MapTypeProps(is_array=True, key_size=4, value_size=4, kind="fd",
                                     int_keys=True),
    # Maps of maps: written with an inner map (fd), read back as its id; create with inner_map=.
    MapType.ARRAY_OF_MAPS: MapTypeProps(is_array=True, key_size=4, value_size=4, kind="fd",
                                        int_keys=True),
    MapType.HASH_OF_MAPS: MapTypeProps(value_size=4, kind="fd"),
    MapType.RINGBUF: MapTypeProps(dict_api=False, key_size=0, value_size=0,
                                  max_entries=64 * PAGE_SIZE),
    MapType.STACK_TRACE: MapTypeProps(key_size=4, value_size=8 * PERF_MAX_STACK_DEPTH,
                                      max_entries=1024, kind="stack", int_keys=True),
}
_GENERIC = MapTypeProps()


def props(map_type: MapType) -> MapTypeProps:
    return MAP_TYPES.get(map_type, _GENERIC)


# --------------------------------------------------------------------------
# codecs


@dataclass(frozen=True)
class Codec:
    """bytes <-> Python value for one key or value slot of ``size`` bytes."""

    size: int
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


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
    """A struct format: one field decodes to a scalar, several to a tuple."""
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


def ctypes_codec(ctype) -> Codec:
    import ctypes

    size = ctypes.sizeof(ctype)

    def encode(v) -> bytes:
        if isinstance(v, (bytes, bytearray)):
            return bytes(v)
        if not isinstance(v, ctype):
            v = ctype(v)
        return bytes(v)

    def decode(b: bytes):
        obj = ctype.from_buffer_copy(b)
        return obj.value if isinstance(obj, ctypes._SimpleCData) else obj

    return Codec(size, encode, decode)


def fd_codec() -> Codec:
    """fd-array values: written as an fd (int, FD, Map, Program), read back as the kernel's u32 id."""
    return Codec(4, lambda v: struct.pack("<I", fd_number(v)), lambda b: struct.unpack("<I", b)[0])


def stack_codec(size: int) -> Codec:
    """A stack_trace value: u64 instruction pointers, trailing zeros dropped."""
    n = size // 8

    def encode(ips) -> bytes:
        ips = list(ips)[:n]
        return struct.pack(f"<{n}Q", *(ips + [0] * (n - len(ips))))

    def decode(b: bytes) -> tuple:
        ips = struct.unpack(f"<{n}Q", b)
        end = len(ips)
        while end and not ips[end - 1]:
            end -= 1
        return ips[:end]

    return Codec(size, encode, decode)


def make_codec(spec, size: int | None) -> Codec | None:
    """Codec for a ``key=``/``value=`` argument (None: not given)."""
    if spec is None:
        return None
    if isinstance(spec, Codec):
        return spec
    if isinstance(spec, str):
        return struct_codec(spec)
    # A ctypes type can only exist once its caller imported ctypes: a tool that uses struct
    # formats never pays for importing it.
    ctypes = sys.modules.get("ctypes")
    if ctypes is not None and isinstance(spec, type) and issubclass(
            spec, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union, ctypes.Array)):
        return ctypes_codec(spec)
    raise TypeError(f"key/value must be a struct format, a ctypes type or a Codec, not {spec!r}")


def _round8(n: int) -> int:
    return (n + 7) & ~7


def ringbuf_size(requested: int) -> int:
    """The ring buffer size the kernel accepts for ``requested`` bytes, as libbpf picks it.

    The kernel wants a power-of-two multiple of the page size: such a size passes
    through, any other becomes the smallest one above it.  0 stays 0 (libbpf lets the
    kernel refuse a ring buffer nobody sized), as does a request too big to round up
    within 32 bits."""
    if requested <= 0:
        return requested
    pages, rest = divmod(requested, PAGE_SIZE)
    if not rest and pages & (pages - 1) == 0:
        return requested
    size = PAGE_SIZE
    while size <= requested:
        size <<= 1
    return size if size <= 0xFFFF_FFFF else requested


# --------------------------------------------------------------------------
# the map


_MISSING = object()


class Map(FdOwner):
    """A BPF map owned through its fd; dict-like for the types that allow it."""

    def __init__(self, fd: FD, map_type: MapType, key_size: int, value_size: int, max_entries: int,
                 *, key=None, value=None, name: str = "", flags: int = 0) -> None:
        self._fd = fd
        try:
            self.map_type = lookup(MapType, map_type)
        except ValueError:  # a type newer than our table: bytes in, bytes out
            self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name
        self.flags = flags
        self.props = props(self.map_type)
        self._ncpus = _ncpus() if self.props.percpu else 1
        self._slot = _round8(value_size) if self.props.percpu else value_size
        self.key_codec = make_codec(key, key_size) or self._default_key_codec()
        self.value_codec = make_codec(value, value_size) or self._default_value_codec()
        if self.key_codec.size != key_size:
            raise ValueError(f"key codec is {self.key_codec.size} bytes, map key is {key_size}")
        if self.value_codec.size > self._slot:
            raise ValueError(f"value codec is {self.value_codec.size} bytes, map value is {value_size}")

    def _default_key_codec(self) -> Codec:
        if self.props.int_keys and self.key_size == 4:
            return struct_codec("=I")
        return bytes_codec(self.key_size)

    def _default_value_codec(self) -> Codec:
        kind = self.props.kind
        if kind == "fd":
            return fd_codec()
        if kind == "stack":
            return stack_codec(self.value_size)
        return bytes_codec(self.value_size)

    # -- construction ------------------------------------------------------

    @classmethod
    def create(cls, map_type, key_size: int | None = None, value_size: int | None = None,
               max_entries: int | None = None, *, key=None, value=None, name: str = "",
               flags: int = 0, inner_map=None, btf_fd=0, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0, map_extra: int = 0, numa_node: int = 0) -> Map:
        """Create a map; sizes left as None come from ``key=``/``value=`` or the type's defaults.

        ``max_entries=0`` means the default too, for a type that has one (a perf event
        array's possible CPUs, as in libbpf); types without one (local storage) keep 0.
        Ring buffer sizes are rounded up to a power-of-two number of pages."""
        mtype = lookup(MapType, map_type)
        p = props(mtype)
        kc, vc = make_codec(key, None), make_codec(value, None)
        key_size = _first(key_size, kc and kc.size, p.key_size)
        value_size = _first(value_size, vc and vc.size, p.value_size)
        default_max = p.max_entries() if callable(p.max_entries) else p.max_entries
        if max_entries == 0 and default_max is not None:
            max_entries = None  # the kernel refuses 0 for a type with a default: 0 means the default
        max_entries = _first(max_entries, default_max)
        if key_size is None or value_size is None or max_entries is None:
            raise TypeError(f"{mtype.name.lower()} map needs key_size, value_size and max_entries")
        if mtype in (MapType.RINGBUF, MapType.USER_RINGBUF):
            max_entries = ringbuf_size(max_entries)
        fd = bpf.map_create(mtype, key_size, value_size, max_entries, flags=flags, name=name,
                            inner_map_fd=fd_number(inner_map) if inner_map is not None else 0,
                            btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
                            btf_value_type_id=btf_value_type_id, map_extra=map_extra,
                            numa_node=numa_node)
        return cls._owning(fd, mtype, key_size, value_size, max_entries, key=key, value=value,
                           name=name, flags=flags)

    @classmethod
    def _owning(cls, fd: FD, *args, **kwargs) -> Map:
        """Construct around ``fd``, closing it if the arguments are rejected."""
        try:
            return cls(fd, *args, **kwargs)
        except BaseException:
            fd.close()
            raise

    @classmethod
    def from_fd(cls, fd, *, key=None, value=None) -> Map:
        """Wrap an fd (an ``FD`` is taken over; an int is duplicated) after asking the kernel what it is."""
        owned = fd if isinstance(fd, FD) else dup_fd(fd)
        try:
            info = bpf.map_info(owned)
        except BaseException:
            owned.close()
            raise
        return cls._owning(owned, info.type, info.key_size, info.value_size, info.max_entries,
                           key=key, value=value, name=info.name, flags=info.flags)

    @classmethod
    def from_id(cls, map_id: int, *, key=None, value=None) -> Map:
        return cls.from_fd(bpf.map_get_fd_by_id(map_id), key=key, value=value)

    @classmethod
    def from_pin(cls, path: str, *, key=None, value=None) -> Map:
        return cls.from_fd(bpf.obj_get(path), key=key, value=value)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fd}"
        return (f"<Map {self.type_name}"
                f" {self.name!r} key={self.key_size} value={self.value_size}"
                f" max={self.max_entries} {state}>")

    @property
    def type_name(self) -> str:
        """The type as bpftool prints it ("percpu_hash")."""
        return type_name(MapType, int(self.map_type))

    def info(self) -> bpf.MapInfo:
        return bpf.map_info(self._fd)

    def pin(self, path: str) -> None:
        bpf.obj_pin(self._fd, path)

    def freeze(self) -> None:
        bpf.map_freeze(self._fd)

    # -- value layout --------------------------------------------------------

    @property
    def ncpus(self) -> int:
        """Number of value slots per element: possible CPUs for per-CPU maps, else 1."""
        return self._ncpus

    @property
    def user_value_size(self) -> int:
        """Bytes per element as bpf() reads and writes them."""
        return self._slot * self._ncpus

    def _encode_value(self, v) -> bytes:
        if not self.props.percpu:
            return self.value_codec.encode(v).ljust(self.value_size, b"\0")
        # A list is one value per possible CPU; anything else (a tuple is a
        # multi-field struct value) is stored on every CPU.
        if isinstance(v, list):
            if len(v) != self._ncpus:
                raise ValueError(f"per-CPU value needs {self._ncpus} entries, got {len(v)}")
            slots = v
        else:
            slots = [v] * self._ncpus
        return b"".join(self.value_codec.encode(s).ljust(self._slot, b"\0") for s in slots)

    def _decode_value(self, raw: bytes):
        if not self.props.percpu:
            return self.value_codec.decode(raw[: self.value_codec.size])
        n = self.value_codec.size
        return [self.value_codec.decode(raw[i * self._slot:i * self._slot + n]) for i in range(self._ncpus)]

    def _need_dict_api(self) -> None:
        if not self.props.dict_api:
            raise TypeError(f"{self.type_name} maps have no key/value interface")

    def _key(self, k) -> bytes:
        self._need_dict_api()
        return self.key_codec.encode(k)

    # -- mapping API ---------------------------------------------------------

    def lookup_raw(self, key: bytes) -> bytes | None:
        self._need_dict_api()
        try:
            return bpf.map_lookup_elem(self._fd, key, self.user_value_size)
        except BPFError as exc:
            if exc.errno == E.ENOENT:
                return None
            raise

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

    def update(self, k, v, flags: int = UpdateFlag.ANY) -> None:
        """Store ``v`` at ``k``; ``flags`` NOEXIST/EXIST make it an insert/replace."""
        self._need_dict_api()
        bpf.map_update_elem(self._fd, self._key(k), self._encode_value(v), flags)

    def __setitem__(self, k, v) -> None:
        self.update(k, v)

    def __delitem__(self, k) -> None:
        self._need_dict_api()
        try:
            bpf.map_delete_elem(self._fd, self._key(k))
        except BPFError as exc:
            if exc.errno == E.ENOENT:
                raise KeyError(k) from None
            raise

    def pop(self, k, default=_MISSING):
        """Remove and return ``k``'s value (BPF_MAP_LOOKUP_AND_DELETE_ELEM)."""
        self._need_dict_api()
        try:
            raw = bpf.map_lookup_and_delete_elem(self._fd, self._key(k), self.user_value_size)
        except BPFError as exc:
            if exc.errno == E.ENOENT:
                if default is _MISSING:
                    raise KeyError(k) from None
                return default
            raise
        return self._decode_value(raw)

    def raw_keys(self) -> Iterator[bytes]:
        """Keys as bytes via BPF_MAP_GET_NEXT_KEY."""
        self._need_dict_api()
        key = None
        while True:
            key = bpf.map_get_next_key(self._fd, key, self.key_size)
            if key is None:
                return
            yield key

    def __iter__(self) -> Iterator:
        return (self.key_codec.decode(k) for k in self.raw_keys())

    def keys(self) -> list:
        return list(self)

    def __len__(self) -> int:
        return sum(1 for _ in self.raw_keys())

    def values(self) -> list:
        return [v for _, v in self.items()]

    def items(self, batch: bool | None = None) -> list:
        """All (key, value) pairs; ``batch`` None uses BPF_MAP_LOOKUP_BATCH when the kernel
        has it (probed once), True insists on it, False walks keys with get_next_key."""
        return [(self.key_codec.decode(k), self._decode_value(v)) for k, v in self.raw_items(batch)]

    def dump(self, batch: bool | None = None) -> dict:
        return dict(self.items(batch))

    def raw_items(self, batch: bool | None = None) -> list[tuple[bytes, bytes]]:
        """``batch``: None picks; True insists (errors surface); False walks keys."""
        self._need_dict_api()
        forced = batch is True
        if batch is None:
            batch = self._batch_ok()
        if batch:
            try:
                return self._batch_items()
            except BPFError as exc:
                if forced or exc.errno not in _UNSUPPORTED:
                    raise
        out = []
        for k in self.raw_keys():
            raw = self.lookup_raw(k)
            if raw is not None:  # deleted between get_next_key and lookup
                out.append((k, raw))
        return out

    def _batch_ok(self) -> bool:
        if not self.props.batch:
            return False
        from ebpfpy import features

        return features.has("batch_ops")

    def _batch_items(self) -> list[tuple[bytes, bytes]]:
        keys, values = self._batch_columns()
        return list(zip(keys, values))

    def _batch_columns(self) -> tuple[list[bytes], list[bytes]]:
        """Keys and values in two lists, read with few, large BPF_MAP_LOOKUP_BATCH calls.

        Each call costs a syscall plus Python work around it, so a batch is
        as large as the map (up to 64K elements) rather than a few hundred.
        """
        keys: list[bytes] = []
        values: list[bytes] = []
        for res in self._lookup_batches(max(1, min(self.max_entries, _BATCH_MAX)), split=True):
            keys.extend(res.keys)
            values.extend(res.values)
        return keys, values

    def _lookup_batches(self, count: int, split: bool) -> Iterator:
        """Every BPF_MAP_LOOKUP_BATCH result of a full read, ``count`` entries a call at first;
        ``split``: as per-entry lists (else one key blob and one value blob a call)."""
        token = None
        while True:
            try:
                res = bpf.map_lookup_batch(self._fd, self.key_size, self.user_value_size, count, token,
                                           split=split)
            except BPFError as exc:
                if exc.errno == E.ENOSPC and count < (1 << 20):
                    count *= 2  # a hash bucket holds more entries than count
                    continue
                raise
            yield res
            if res.done:
                return
            token = res.token

    def raw_columns(self, batch: bool | None = None) -> tuple[list[bytes], list[bytes]]:
        """All keys and values as bytes, in two parallel lists (per-CPU values not split).

        For bulk decoders (``struct.iter_unpack`` over ``b"".join(values)``):
        no per-entry tuple is built. ``batch`` as for ``raw_items``.
        """
        self._need_dict_api()
        forced = batch is True
        if batch is None:
            batch = self._batch_ok()
        if batch:
            try:
                return self._batch_columns()
            except BPFError as exc:
                if forced or exc.errno not in _UNSUPPORTED:
                    raise
        pairs = self.raw_items(False)
        return [k for k, _ in pairs], [v for _, v in pairs]

    def raw_blobs(self) -> tuple[bytes, bytes, int]:
        """All keys joined, all values joined (per-CPU values not split), and how many entries.

        The cheapest full read for bulk decoders (``memoryview.cast``,
        ``struct.iter_unpack``): with batch lookups no per-entry bytes object
        is made at all. Batches are as large as 16 MB of entries allow.
        """
        self._need_dict_api()
        if self._batch_ok():
            try:
                return self._batch_blobs()
            except BPFError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
        keys, values = self.raw_columns(False)
        return b"".join(keys), b"".join(values), len(keys)

    def _batch_blobs(self) -> tuple[bytes, bytes, int]:
        key_parts: list[bytes] = []
        value_parts: list[bytes] = []
        count = max(1, min(self.max_entries, (16 << 20) // (self.key_size + self.user_value_size)))
        for res in self._lookup_batches(count, split=False):
            key_parts.append(res.key_blob)
            value_parts.append(res.value_blob)
        keys = key_parts[0] if len(key_parts) == 1 else b"".join(key_parts)
        values = value_parts[0] if len(value_parts) == 1 else b"".join(value_parts)
        return keys, values, len(keys) // self.key_size if self.key_size else 0

    def clear(self) -> None:
        """Empty the map: arrays are zeroed (their slots cannot be deleted), others emptied."""
        self._need_dict_api()
        keys = list(self.raw_keys())
        if self.props.is_array and self.props.kind != "fd":
            zero = bytes(self.user_value_size)
            for k in keys:
                bpf.map_update_elem(self._fd, k, zero)
            return
        if keys and not self.props.is_array and self._batch_ok():
            try:
                bpf.map_delete_batch(self._fd, keys)
                return
            except BPFError as exc:
                if exc.errno not in _UNSUPPORTED + (E.ENOENT,):
                    raise
        for k in keys:  # fd arrays (prog, perf event...) empty their slots by deleting
            try:
                bpf.map_delete_elem(self._fd, k)
            except BPFError as exc:
                if exc.errno != E.ENOENT:
                    raise


def _first(*candidates):
    for c in candidates:
        if c is not None:
            return c
    return None

