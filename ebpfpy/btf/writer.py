"""Write type values back into a BTF blob (the kernel's wire format).

Used to load an object's (sanitised) BTF into the kernel and to build BTF for
maps from Python.  Strings are deduplicated; offsets of a split blob start
after the base's string section, as the kernel expects.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence

from .types import (
    Array,
    Datasec,
    DeclTag,
    Enum,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Ref,
    Struct,
    Var,
)

_HDR = struct.Struct("<HBBIIIII")


class _Strings:
    def __init__(self, base_len: int, initial: bytes = b""):
        self.base_len = base_len
        self.buf = bytearray(initial or b"\0")
        self.index: dict[str, int] = {"": 0}
        if initial:
            # keep every existing offset valid (line_info points into the strings)
            off = 0
            for piece in bytes(initial).split(b"\0"):
                self.index.setdefault(piece.decode("utf-8", "replace"), off)
                off += len(piece) + 1

    def add(self, s: str) -> int:
        off = self.index.get(s)
        if off is None:
            off = len(self.buf)
            self.buf += s.encode() + b"\0"
            self.index[s] = off
        return off + self.base_len if off or self.base_len == 0 else 0


def _u32(v: int) -> int:
    return v & 0xFFFF_FFFF


def _record(t, s: _Strings) -> list[int]:
    """The u32 words of one type record."""
    def head(kind: Kind, vlen: int, st: int, kflag: bool = False) -> list[int]:
        return [s.add(t.name), (int(kflag) << 31) | (int(kind) << 24) | (vlen & 0xFFFF), _u32(st)]

    if isinstance(t, Int):
        return head(Kind.INT, 0, t.size) + [(t.encoding << 24) | (t.bit_offset << 16) | t.bits]
    if isinstance(t, Ref):
        return head(t.kind, 0, t.type)
    if isinstance(t, Array):
        return head(Kind.ARRAY, 0, 0) + [t.type, t.index_type, t.nelems]
    if isinstance(t, Struct):
        words = head(t.kind, len(t.members), t.size, t.bitfields)
        for m in t.members:
            off = (m.bitfield_size << 24) | m.bit_offset if t.bitfields else m.bit_offset
            words += [s.add(m.name), m.type, off]
        return words
    if isinstance(t, Enum):
        words = head(t.kind, len(t.values), t.size, t.signed)
        for name, val in t.values:
            words.append(s.add(name))
            if t.is64:
                words += [val & 0xFFFF_FFFF, (val >> 32) & 0xFFFF_FFFF]
            else:
                words.append(_u32(val))
        return words
    if isinstance(t, Fwd):
        return head(Kind.FWD, 0, 0, t.is_union)
    if isinstance(t, Func):
        return head(Kind.FUNC, t.linkage, t.type)
    if isinstance(t, FuncProto):
        words = head(Kind.FUNC_PROTO, len(t.params), t.type)
        for p in t.params:
            words += [s.add(p.name), p.type]
        return words
    if isinstance(t, Var):
        return head(Kind.VAR, 0, t.type) + [t.linkage]
    if isinstance(t, Datasec):
        words = head(Kind.DATASEC, len(t.vars), t.size)
        for v in t.vars:
            words += [v.type, v.offset, v.size]
        return words
    if isinstance(t, Float):
        return head(Kind.FLOAT, 0, t.size)
    if isinstance(t, DeclTag):
        return head(Kind.DECL_TAG, 0, t.type) + [_u32(t.component_idx)]
    raise TypeError(f"not a BTF type value: {t!r}")


def encode_types(types: Sequence[object], base=None, strings: bytes = b"") -> bytes:
    """A complete blob (header, types, strings) for ``types`` (ids from 1, or after ``base``).

    ``strings``: an existing string section to start from, so offsets that
    other records (``.BTF.ext`` line_info) hold stay valid."""
    base_len = (base._slen + base._str_base) if base is not None else 0
    s = _Strings(base_len, strings)
    words: list[int] = []
    for t in types:
        words += _record(t, s)
    tbytes = struct.pack(f"<{len(words)}I", *words)
    sbytes = bytes(s.buf)
    hdr = _HDR.pack(0xEB9F, 1, 0, _HDR.size, 0, len(tbytes), len(tbytes), len(sbytes))
    return hdr + tbytes + sbytes


def encode(types: Sequence[object], base: object | None = None, strings: bytes = b"") -> bytes:
    return encode_types(types, base, strings)
