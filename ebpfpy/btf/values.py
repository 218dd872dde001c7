"""Decode raw bytes into Python values following a BTF type (for printing maps and globals).

ints -> int, char arrays -> str (up to the first NUL), other arrays -> list,
structs/unions -> dict by member name (bitfields extracted), enums -> the
enumerator name when one matches, pointers -> int.
"""
from __future__ import annotations

from typing import Any

from .spec import BTF
from .types import Kind


def _int(raw: bytes, signed: bool) -> int:
    return int.from_bytes(raw, "little", signed=signed)


def decode(btf: BTF, type_id: int, raw: bytes) -> Any:
    tid = btf.resolve(type_id)
    k = btf.kind_of(tid)
    t = btf[tid]
    if k == Kind.INT:
        if t.encoding & 4 and t.size == 1:
            return bool(raw[0])
        return _int(raw[:t.size], t.signed)
    if k in (Kind.ENUM, Kind.ENUM64):
        v = _int(raw[:t.size], t.signed)
        return next((n for n, val in t.values if val == v), v)
    if k == Kind.PTR:
        return _int(raw[:8], False)
    if k == Kind.FLOAT:
        import struct
        return struct.unpack({4: "<f", 8: "<d"}[t.size], raw[:t.size])[0] if t.size in (4, 8) else raw
    if k == Kind.ARRAY:
        elem = btf.resolve(t.type)
        esize = btf.size_of(elem)
        if btf.kind_of(elem) == Kind.INT and esize == 1 and btf[elem].encoding & 2 or \
                (btf.kind_of(elem) == Kind.INT and esize == 1 and btf[elem].name in ("char", "signed char")):
            return raw[:t.nelems].split(b"\0", 1)[0].decode("utf-8", "replace")
        return [decode(btf, elem, raw[i * esize:(i + 1) * esize]) for i in range(t.nelems)]
    if k in (Kind.STRUCT, Kind.UNION):
        out = {}
        for i, m in enumerate(t.members):
            name = m.name or f"__anon{i}"
            if m.bitfield_size:
                word = _int(raw[:t.size], False)
                v = (word >> m.bit_offset) & ((1 << m.bitfield_size) - 1)
                out[name] = v
                continue
            off = m.bit_offset // 8
            size = btf.size_of(m.type)
            out[name] = decode(btf, m.type, raw[off:off + size])
        return out
    if k == Kind.DATASEC:
        return {btf[v.type].name: decode(btf, btf[v.type].type, raw[v.offset:v.offset + v.size]) for v in t.vars}
    return raw
