"""A BTF blob, parsed lazily.

vmlinux BTF holds ~100k types; a bpftrace one-liner needs a handful.  So the
constructor only scans the type section once to record where each type
record starts (an array of word offsets), and everything else happens on
demand: a type body is decoded the first time ``btf[id]`` asks for it, and the
name index maps *string offsets* (not decoded names) to type ids, so looking
up ``"task_struct"`` costs one ``bytes.find`` in the string section.

Split BTF (kernel modules) sits on top of a base: its ids continue after the
base's last id and its string offsets after the base's string section.
"""
from __future__ import annotations

import mmap
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .errors import BTFError
from .kinds import MODIFIERS, Kind

if TYPE_CHECKING:
    from .types import FuncProto, Member

MAGIC = 0xEB9F
HEADER = struct.Struct("<HBBIIIII")
VMLINUX_PATH = "/sys/kernel/btf/vmlinux"
POINTER_SIZE = 8

# Extra u32 words after the 3-word common header: (fixed, per vlen entry), by kind.
_EXTRA_WORDS = {
    Kind.INT: (1, 0), Kind.ARRAY: (3, 0), Kind.STRUCT: (0, 3), Kind.UNION: (0, 3),
    Kind.ENUM: (0, 2), Kind.FUNC_PROTO: (0, 2), Kind.VAR: (1, 0), Kind.DATASEC: (0, 3),
    Kind.DECL_TAG: (1, 0), Kind.ENUM64: (0, 3),
}
_FIXED = [_EXTRA_WORDS.get(k, (0, 0))[0] + 3 if 0 < k <= Kind.ENUM64 else 1 << 40 for k in range(32)]
_PER_VLEN = [_EXTRA_WORDS.get(k, (0, 0))[1] for k in range(32)]
# The same, indexed by the info word's top byte (kind and kind_flag): one lookup less per record.
_FIXED_BY_TOP = [_FIXED[top & 0x1F] for top in range(256)]
_PER_VLEN_BY_TOP = [_PER_VLEN[top & 0x1F] for top in range(256)]
_KINDS = tuple(Kind)  # Kind(k) without the enum call: _KINDS[k]


_T = None  # the ``types`` module, once a type value is first decoded


def _values():
    """The module of the type values, imported on first use: building its dataclasses is most
    of the BTF layer's import time, and the writers (``btf dump``) never need them."""
    global _T
    if _T is None:
        from . import types
        _T = types
    return _T


def _mapped(f) -> mmap.mmap | None:
    """``f`` mapped read-only, or None where the kernel cannot map it.

    Since Linux 6.16 ``/sys/kernel/btf/vmlinux`` can be mapped: the pages are the kernel's own
    copy of its BTF, so reading it costs neither a copy nor resident memory of ours (5 MB that
    a read() would add to the process). Module files and older kernels refuse; they are read."""
    try:
        return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return None


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x8000_0000 else v


class BTF:
    """One BTF blob (optionally split on top of ``base``): ``btf[id]`` gives a type value."""

    def __init__(self, data: bytes, base: BTF | None = None):
        if len(data) < HEADER.size:
            raise BTFError(f"BTF blob too short ({len(data)} bytes)")
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = HEADER.unpack_from(data)
        if magic != MAGIC:
            if magic == 0x9FEB:
                raise BTFError("big-endian BTF is not supported")
            raise BTFError(f"bad BTF magic {magic:#x}")
        if version != 1:
            raise BTFError(f"unsupported BTF version {version}")
        t0, s0 = hdr_len + type_off, hdr_len + str_off
        if t0 + type_len > len(data) or s0 + str_len > len(data) or type_len % 4:
            raise BTFError("BTF sections exceed the blob")
        if not isinstance(data, mmap.mmap):
            data = bytes(data)  # no copy when it already is bytes
        self.data = data
        self.base = base
        # Sections stay in ``data``: no copies, just where they start and end.
        self._t0, self._tlen = t0, type_len
        self._s0, self._slen = s0, str_len
        self._strings: bytes | None = None
        if sys.byteorder == "little":
            self._words = memoryview(data)[t0:t0 + type_len].cast("I")  # a view, no copy
        else:
            self._words = array("I")
            self._words.frombytes(data[t0:t0 + type_len])
            self._words.byteswap()
        self.first_id = base.count if base is not None else 1
        self._str_base = base._slen + base._str_base if base is not None else 0
        # _R[1 + i]: the word where the i-th record starts (_R[0] a placeholder, so that for a
        # blob of its own _R is the id-indexed table the writers use, without a copy).
        self._R = self._scan()
        self._offsets = memoryview(self._R)[1:]
        self.count = self.first_id + len(self._offsets)
        self._cache: dict[int, object] = {}
        self._names: dict[int, list[int]] | None = None
        self._lookups = 0
        self._strcache: dict[int, str] = {}
        self._view = None

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str, base: BTF | None = None) -> BTF:
        with open(path, "rb") as f:
            data = _mapped(f) if path.startswith("/sys/kernel/btf/") else None
            return cls(f.read() if data is None else data, base)

    @classmethod
    def from_types(cls, types: Sequence[object], base: BTF | None = None) -> BTF:
        """Build from type values (ids 1.. in order, or base.count.. when split)."""
        from .writer import encode_types
        return cls(encode_types(types, base), base)

    def _scan(self) -> array:
        """Word offset of every type record, after a placeholder: the one pass over the whole blob.

        Kept minimal because it is the start-up cost of every vmlinux user:
        an unknown kind gets a huge record size, so it shows up as a length
        mismatch at the end instead of costing a check per record."""
        words, fixed, per = self._words, _FIXED_BY_TOP, _PER_VLEN_BY_TOP
        offs = array("I", [0])
        append = offs.append
        # Record length by info word: vmlinux's 126k records have about 300 distinct info
        # words, so one dict lookup replaces two table lookups and the arithmetic.
        lengths: dict[int, int] = {}
        i, n = 0, len(words)
        try:
            while i < n:
                append(i)
                info = words[i + 1]
                try:
                    i += lengths[info]
                except KeyError:
                    top = info >> 24
                    step = lengths[info] = fixed[top] + per[top] * (info & 0xFFFF)
                    i += step
        except IndexError:
            raise BTFError("truncated BTF type record") from None
        if i != n:
            bad = next((j for j, o in enumerate(offs) if j and _FIXED[(words[o + 1] >> 24) & 0x1F] > 1 << 32), None)
            if bad is not None:
                kind = (words[offs[bad] + 1] >> 24) & 0x1F
                raise BTFError(f"unknown BTF kind {kind} at type id {self.first_id + bad - 1}")
            raise BTFError("truncated BTF type record")
        return offs

    # -- strings ------------------------------------------------------------------------
    @property
    def strings(self) -> bytes:
        """The string section (a copy, made on first use: lookups search ``data`` in place)."""
        if self._strings is None:
            self._strings = self.data[self._s0:self._s0 + self._slen]
        return self._strings

    def string(self, off: int) -> str:
        if off < self._str_base:
            return self.base.string(off)  # type: ignore[union-attr]
        s = self._strcache.get(off)
        if s is None:
            local = off - self._str_base
            start, stop = self._s0 + local, self._s0 + self._slen
            end = self.data.find(b"\0", start, stop)
            if local >= self._slen or end < 0:
                raise BTFError(f"string offset {off} out of range")
            s = self.data[start:end].decode("utf-8", "replace")
            self._strcache[off] = s
        return s

    def _string_offsets(self, name: str) -> list[int]:
        """Every offset (this blob and base) where ``name`` starts a string."""
        needle = b"\0" + name.encode() + b"\0"
        found = self.base._string_offsets(name) if self.base is not None else []
        data, s0 = self.data, self._s0
        start, stop = s0, s0 + self._slen
        shift = 1 - s0 + self._str_base
        while True:
            i = data.find(needle, start, stop)
            if i < 0:
                break
            found.append(i + shift)
            start = i + 1
        return found

    # -- raw record access ---------------------------------------------------------
    def _rec(self, tid: int) -> int:
        idx = tid - self.first_id
        if idx < 0 or idx >= len(self._offsets):
            raise BTFError(f"type id {tid} out of range")
        return self._offsets[idx]

    def kind_of(self, tid: int) -> Kind:
        """The kind of a type without decoding its body."""
        if tid == 0:
            return Kind.VOID
        if tid < self.first_id:
            return self.base.kind_of(tid)  # type: ignore[union-attr]
        return _KINDS[(self._words[self._rec(tid) + 1] >> 24) & 0x1F]

    def name_of(self, tid: int) -> str:
        if tid == 0:
            return ""
        if tid < self.first_id:
            return self.base.name_of(tid)  # type: ignore[union-attr]
        return self.string(self._words[self._rec(tid)])

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, tid: int):
        if tid == 0:
            return (_T or _values()).VOID
        if tid < self.first_id:
            if self.base is None:
                raise BTFError(f"type id {tid} out of range")
            return self.base[tid]
        t = self._cache.get(tid)
        if t is None:
            t = self._decode(self._rec(tid))
            self._cache[tid] = t
        return t

    def ids(self) -> range:
        """Ids defined by this blob (not the base's)."""
        return range(self.first_id, self.count)

    def types(self) -> Iterator[tuple[int, object]]:
        for tid in self.ids():
            yield tid, self[tid]

    def _decode(self, o: int):
        T = _T or _values()
        w = self._words
        name_off, info, st = w[o], w[o + 1], w[o + 2]
        kind = _KINDS[(info >> 24) & 0x1F]
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = self.string(name_off)
        p = o + 3
        if kind == Kind.INT:
            d = w[p]
            return T.Int(name, st, (d >> 24) & 0xF, (d >> 16) & 0xFF, d & 0xFF)
        if kind in (Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG):
            return T.Ref(kind, name, st)
        if kind == Kind.ARRAY:
            return T.Array(w[p], w[p + 1], w[p + 2], name)
        if kind in (Kind.STRUCT, Kind.UNION):
            ms = []
            for i in range(vlen):
                mo = p + 3 * i
                off = w[mo + 2]
                if kflag:
                    ms.append(T.Member(self.string(w[mo]), w[mo + 1], off & 0xFFFFFF, off >> 24))
                else:
                    ms.append(T.Member(self.string(w[mo]), w[mo + 1], off))
            return T.Struct(kind == Kind.UNION, name, st, tuple(ms), kflag)
        if kind == Kind.ENUM:
            conv = _s32 if kflag else int
            vals = tuple((self.string(w[p + 2 * i]), conv(w[p + 2 * i + 1])) for i in range(vlen))
            return T.Enum(False, name, st, vals, kflag)
        if kind == Kind.ENUM64:
            vals = []
            for i in range(vlen):
                v = w[p + 3 * i + 1] | (w[p + 3 * i + 2] << 32)
                if kflag and v >> 63:
                    v -= 1 << 64
                vals.append((self.string(w[p + 3 * i]), v))
            return T.Enum(True, name, st, tuple(vals), kflag)
        if kind == Kind.FWD:
            return T.Fwd(name, kflag)
        if kind == Kind.FUNC:
            return T.Func(name, st, vlen)
        if kind == Kind.FUNC_PROTO:
            params = tuple(T.Param(self.string(w[p + 2 * i]), w[p + 2 * i + 1]) for i in range(vlen))
            return T.FuncProto(st, params, name)
        if kind == Kind.VAR:
            return T.Var(name, st, w[p])
        if kind == Kind.DATASEC:
            secinfos = tuple(T.VarSecinfo(w[p + 3 * i], w[p + 3 * i + 1], w[p + 3 * i + 2]) for i in range(vlen))
            return T.Datasec(name, st, secinfos)
        if kind == Kind.FLOAT:
            return T.Float(name, st)
        if kind == Kind.DECL_TAG:
            return T.DeclTag(name, st, _s32(w[p]))
        raise BTFError(f"unknown BTF kind {kind}")

    # -- lookup by name ------------------------------------------------------------------
    def _name_index(self) -> dict[int, list[int]]:
        if self._names is None:
            idx: dict[int, list[int]] = {}
            w, first = self._words, self.first_id
            for i, o in enumerate(self._offsets):
                no = w[o]
                if no:
                    lst = idx.get(no)
                    if lst is None:
                        idx[no] = [first + i]
                    else:
                        lst.append(first + i)
            self._names = idx
        return self._names

    def _types_named(self, str_off: int) -> list[int]:
        """Ids of this blob's types whose name is at ``str_off``.

        Without an index yet, search the type section for the offset's
        4 bytes (a C-speed scan) and keep hits that start a record; a
        common small offset that matches too often builds the index instead."""
        self._lookups += 1
        if self._names is None and self._lookups <= 16:  # many lookups: an index pays off
            pattern = struct.pack("<I", str_off)
            hits: list[int] = []
            t0 = self._t0
            offs, start, stop, tries, buf = self._offsets, t0, t0 + self._tlen, 0, self.data
            while tries < 256:
                pos = buf.find(pattern, start, stop)
                if pos < 0:
                    return hits
                start = pos + 1
                pos -= t0
                if pos % 4:
                    continue
                tries += 1
                w = pos // 4
                j = bisect_left(offs, w)
                if j < len(offs) and offs[j] == w:
                    hits.append(self.first_id + j)
        return list(self._name_index().get(str_off, ()))

    def find_all(self, name: str, kind: Kind | None = None) -> list[int]:
        """All type ids (base first) named ``name``, optionally of one kind."""
        if not name:
            return []  # anonymous types are found by walking, not by name
        out = self.base.find_all(name, kind) if self.base is not None else []
        for off in self._string_offsets(name):
            if off < self._str_base:
                continue  # a base string: the base's own types were searched above
            for tid in self._types_named(off):
                if kind is None or self.kind_of(tid) == kind:
                    out.append(tid)
        # split types may also be named with base strings
        if self.base is not None:
            for off in self.base._string_offsets(name):
                for tid in self._types_named(off):
                    if kind is None or self.kind_of(tid) == kind:
                        out.append(tid)
        return sorted(set(out))

    def find(self, name: str, kind: Kind | None = None) -> int:
        """The id of the type named ``name`` (preferring a definition over a FWD)."""
        ids = self.find_all(name, kind)
        if not ids:
            what = f"{kind.name.lower()} " if kind is not None else ""
            raise KeyError(f"no BTF type {what}{name!r}")
        full = [i for i in ids if self.kind_of(i) != Kind.FWD]
        return (full or ids)[0]

    def find_struct(self, name: str) -> int:
        """``struct NAME`` or ``union NAME``, as C would find it."""
        for k in (Kind.STRUCT, Kind.UNION):
            ids = self.find_all(name, k)
            if ids:
                return ids[0]
        raise KeyError(f"no BTF struct or union {name!r}")

    # -- type arithmetic -----------------------------------------------------------------
    def resolve(self, tid: int) -> int:
        """Skip typedefs and qualifiers (const, volatile, restrict, type tags)."""
        seen = 0
        while self.kind_of(tid) in MODIFIERS:
            tid = self[tid].type
            seen += 1
            if seen > 64:
                raise BTFError("typedef loop")
        return tid

    def skip_mods(self, tid: int) -> int:
        """Skip qualifiers but keep typedefs."""
        while self.kind_of(tid) in (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG):
            tid = self[tid].type
        return tid

    def size_of(self, tid: int) -> int:
        """Byte size of a type, following typedefs, qualifiers and arrays."""
        tid = self.resolve(tid)
        k = self.kind_of(tid)
        t = self[tid]
        if k in (Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FLOAT, Kind.DATASEC):
            return t.size
        if k == Kind.PTR:
            return POINTER_SIZE
        if k == Kind.ARRAY:
            return t.nelems * self.size_of(t.type)
        if k == Kind.VAR:
            return self.size_of(t.type)
        raise BTFError(f"type [{tid}] ({k.name}) has no size")

    def align_of(self, tid: int) -> int:
        """Natural alignment as the C compiler (and libbpf's btf__align_of) sees it."""
        tid = self.resolve(tid)
        k = self.kind_of(tid)
        t = self[tid]
        if k in (Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.FLOAT):
            return min(POINTER_SIZE, t.size) or 1
        if k == Kind.PTR:
            return POINTER_SIZE
        if k == Kind.ARRAY:
            return self.align_of(t.type)
        if k in (Kind.STRUCT, Kind.UNION):
            best = 1
            for m in t.members:
                a = self.align_of(m.type)
                if m.bitfield_size == 0 and m.bit_offset % (8 * a):
                    return 1  # a misaligned member: the struct is packed
                best = max(best, a)
            return 1 if t.size % best else best
        return 1

    def members(self, tid: int) -> tuple[Member, ...]:
        t = self[self.resolve(tid)]
        if not isinstance(t, (_T or _values()).Struct):
            raise BTFError(f"type [{tid}] is not a struct or union")
        return t.members

    def member(self, tid: int, path: str) -> Member:
        """Find a (possibly nested, dotted) member, looking through anonymous
        structs/unions as C does; the returned Member's ``bit_offset`` is from
        the start of the outer type."""
        cur, total = tid, 0
        found: Member | None = None
        for part in path.split("."):
            hit = self._find_member(cur, part)
            if hit is None:
                raise KeyError(f"{self.describe(self.resolve(cur))} has no member {part!r}")
            total += hit.bit_offset
            found = (_T or _values()).Member(part, hit.type, total, hit.bitfield_size)
            cur = hit.type
        assert found is not None
        return found

    def _find_member(self, tid: int, name: str) -> Member | None:
        for m in self.members(tid):
            if m.name == name:
                return m
            if not m.name and self.kind_of(self.resolve(m.type)) in (Kind.STRUCT, Kind.UNION):
                inner = self._find_member(m.type, name)
                if inner is not None:
                    offset = m.bit_offset + inner.bit_offset
                    return (_T or _values()).Member(name, inner.type, offset, inner.bitfield_size)
        return None

    def func_proto(self, name: str) -> FuncProto:
        """The prototype of kernel function ``name`` (kfunc/fentry arguments)."""
        fid = self.find(name, Kind.FUNC)
        proto = self[self[fid].type]
        if not isinstance(proto, (_T or _values()).FuncProto):
            raise BTFError(f"function {name!r} has no prototype")
        return proto

    def raw_tracepoint_proto(self, name: str) -> FuncProto:
        """Arguments of BTF raw tracepoint ``name`` (``btf_trace_<name>``); the first is the
        hidden ``void *`` context, as in the kernel's typedef."""
        tid = self.find("btf_trace_" + name, Kind.TYPEDEF)
        ptr = self[self.resolve(tid)]
        proto = self[ptr.type] if ptr.kind == Kind.PTR else None
        if not isinstance(proto, (_T or _values()).FuncProto):
            raise BTFError(f"btf_trace_{name} is not a function pointer")
        return proto

    def describe(self, tid: int) -> str:
        """Short human name: ``struct task_struct``, ``u32``, ``int *``."""
        from .cformat import type_name
        return type_name(self, tid)

    def format_c(self, tid: int) -> str:
        """The C definition of one type, as ``bpftool btf dump ... format c`` prints it."""
        from .cformat import format_definition
        return format_definition(self, tid)

    def encode(self) -> bytes:
        """Serialise (this blob's own types; a split blob stays split)."""
        from .writer import encode_types
        return encode_types([self[t] for t in self.ids()], self.base)


_VMLINUX: BTF | None = None
_MODULES: dict[str, BTF] = {}


def vmlinux(path: str = VMLINUX_PATH) -> BTF:
    """The running kernel's BTF, read once per process."""
    global _VMLINUX
    if path != VMLINUX_PATH:
        return BTF.from_file(path)
    if _VMLINUX is None:
        _VMLINUX = BTF.from_file(path)
    return _VMLINUX


def module(name: str) -> BTF:
    """A kernel module's split BTF (``/sys/kernel/btf/<name>``) on top of vmlinux."""
    if name == "vmlinux":
        return vmlinux()
    if name not in _MODULES:
        _MODULES[name] = BTF.from_file(f"/sys/kernel/btf/{name}", vmlinux())
    return _MODULES[name]
