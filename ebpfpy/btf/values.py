"""Raw bytes <-> Python values following a BTF type (typed maps, printing, globals).

``decode``: ints -> int, char arrays -> str (up to the first NUL), other
arrays -> list, structs/unions -> dict by member name (bitfields extracted),
enums -> the enumerator name when one matches, pointers -> int.  ``encode``
takes the same shapes back.
"""
from __future__ import annotations

from typing import Any

from .kinds import Kind
from .spec import BTF


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
        if (btf.kind_of(elem) == Kind.INT and esize == 1 and btf[elem].encoding & 2) or \
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


def encode(btf: BTF, type_id: int, value: Any) -> bytes:
    """The inverse of ``decode``: ints, enum names, str/bytes for char arrays, lists for
    arrays, dicts for structs (missing members are zero).  ``bytes`` of the right size
    pass through unchanged."""
    tid = btf.resolve(type_id)
    size = btf.size_of(tid)
    if isinstance(value, (bytes, bytearray)) and (len(value) == size or btf.kind_of(tid) != Kind.ARRAY):
        if len(value) > size:
            raise ValueError(f"{len(value)} bytes do not fit {btf.describe(type_id)} ({size} bytes)")
        return bytes(value).ljust(size, b"\0")
    k = btf.kind_of(tid)
    t = btf[tid]
    if k in (Kind.ENUM, Kind.ENUM64) and isinstance(value, str):
        try:
            value = next(v for n, v in t.values if n == value)
        except StopIteration:
            raise ValueError(f"{value!r} is not an enumerator of {btf.describe(type_id)}") from None
    if k in (Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.PTR):
        v = int(value)
        return (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    if k == Kind.FLOAT and size in (4, 8):
        import struct
        return struct.pack({4: "<f", 8: "<d"}[size], float(value))
    if k == Kind.ARRAY:
        elem = btf.resolve(t.type)
        esize = btf.size_of(elem)
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, (bytes, bytearray)):
            if len(value) > size:
                raise ValueError(f"{len(value)} bytes do not fit {btf.describe(type_id)}")
            return bytes(value).ljust(size, b"\0")
        items = list(value)
        if len(items) > t.nelems:
            raise ValueError(f"{len(items)} elements do not fit {btf.describe(type_id)}")
        return b"".join(encode(btf, elem, x) for x in items).ljust(size, b"\0")[:max(size, esize * len(items))]
    if k in (Kind.STRUCT, Kind.UNION):
        if not isinstance(value, dict):
            raise TypeError(f"{btf.describe(type_id)} takes a dict of members, not {type(value).__name__}")
        out = bytearray(size)
        names = {m.name or f"__anon{i}": m for i, m in enumerate(t.members)}
        for name, v in value.items():
            m = names.get(name)
            if m is None:
                raise KeyError(f"{btf.describe(type_id)} has no member {name!r}")
            if m.bitfield_size:
                word = int.from_bytes(out, "little")
                mask = ((1 << m.bitfield_size) - 1) << m.bit_offset
                word = (word & ~mask) | ((int(v) << m.bit_offset) & mask)
                out[:] = word.to_bytes(size, "little")
                continue
            raw = encode(btf, m.type, v)
            off = m.bit_offset // 8
            out[off:off + len(raw)] = raw
        return bytes(out)
    raise TypeError(f"cannot encode a value of {btf.describe(type_id)}")
