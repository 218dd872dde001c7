"""Types in bpftool's ``btf dump ... format raw`` style, straight from the raw records.

``write_raw(btf, write)`` prints every type of a blob, one record (and its
members, parameters, enumerators or variables on the following lines) per
type, byte-identical to ``bpftool btf dump file F`` (tests compare them).
No type values are decoded: the fields are read from the words in place.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .cformat import malformed
from .errors import BTFError
from .view import (
    ARRAY,
    CONST,
    DATASEC,
    DECL_TAG,
    ENUM,
    ENUM64,
    FLOAT,
    FUNC,
    FUNC_PROTO,
    FWD,
    INT,
    KIND_NAMES,
    PTR,
    RESTRICT,
    STRUCT,
    TYPE_TAG,
    TYPEDEF,
    UNION,
    VAR,
    VOLATILE,
    view,
)

_LINKAGE = ("static", "global", "extern")
_INT_ENCODING = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_FLUSH_AT = 4096
# Kinds whose record is one line ending in ``type_id=`` (FUNC adds its linkage).
_SIMPLE = bytes(1 if k in (FUNC, PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG) else 0 for k in range(32))


def _lines(btf, tid: int, v, quoted) -> str:
    """One type's text, without the final newline."""
    W = v.W
    o = v.R[tid]
    info = W[o + 1]
    k = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    st = W[o + 2]
    head = f"[{tid}] {KIND_NAMES[k]} {quoted(W[o])}"
    if k == FUNC:
        return f"{head} type_id={st} linkage={_LINKAGE[vlen]}"
    if k == FUNC_PROTO:
        params = [f"\t{quoted(W[p])} type_id={W[p + 1]}" for p in range(o + 3, o + 3 + 2 * vlen, 2)]
        return "\n".join([f"{head} ret_type_id={st} vlen={vlen}", *params])
    if k == STRUCT or k == UNION:
        lines = [f"{head} size={st} vlen={vlen}"]
        if info >> 31:  # kind_flag: bitfield sizes in the top byte of each offset
            for p in range(o + 3, o + 3 + 3 * vlen, 3):
                off = W[p + 2]
                bits = off >> 24
                lines.append(f"\t{quoted(W[p])} type_id={W[p + 1]} bits_offset={off & 0xFFFFFF}"
                             + (f" bitfield_size={bits}" if bits else ""))
        else:
            lines += [f"\t{quoted(W[p])} type_id={W[p + 1]} bits_offset={W[p + 2]}"
                      for p in range(o + 3, o + 3 + 3 * vlen, 3)]
        return "\n".join(lines)
    if k == INT:
        d = W[o + 3]
        enc = (d >> 24) & 0xF
        return (f"{head} size={st} bits_offset={(d >> 16) & 0xFF} nr_bits={d & 0xFF} "
                f"encoding={_INT_ENCODING.get(enc, enc)}")
    if k == ARRAY:
        return f"{head} type_id={W[o + 3]} index_type_id={W[o + 4]} nr_elems={W[o + 5]}"
    if k == ENUM or k == ENUM64:
        signed = info >> 31
        lines = [f"{head} encoding={'SIGNED' if signed else 'UNSIGNED'} size={st} vlen={vlen}"]
        string = v.string
        if k == ENUM:
            for p in range(o + 3, o + 3 + 2 * vlen, 2):
                val = W[p + 1]
                if signed and val & 0x8000_0000:
                    val -= 1 << 32
                lines.append(f"\t'{string(W[p])}' val={val}")
        else:
            suffix = "LL" if signed else "ULL"
            for p in range(o + 3, o + 3 + 3 * vlen, 3):
                val = W[p + 1] | (W[p + 2] << 32)
                if signed and val >> 63:
                    val -= 1 << 64
                lines.append(f"\t'{string(W[p])}' val={val}{suffix}")
        return "\n".join(lines)
    if k == FWD:
        return f"{head} fwd_kind={'union' if info >> 31 else 'struct'}"
    if k == VAR:
        return f"{head} type_id={st}, linkage={_LINKAGE[W[o + 3]]}"
    if k == DATASEC:
        lines = [f"{head} size={st} vlen={vlen}"]
        for p in range(o + 3, o + 3 + 3 * vlen, 3):
            t = W[p]
            kind = (W[v.R[t] + 1] >> 24) & 0x1F if t else 0
            lines.append(f"\ttype_id={t} offset={W[p + 1]} size={W[p + 2]} "
                         f"({KIND_NAMES[kind]} '{v.name(t)}')")
        return "\n".join(lines)
    if k == FLOAT:
        return f"{head} size={st}"
    if k == DECL_TAG:
        idx = W[o + 3]
        return f"{head} type_id={st} component_idx={idx - (1 << 32) if idx >> 31 else idx}"
    return f"{head} type_id={st}"  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG


def _quoter(v) -> Callable[[int], str]:
    """name offset -> ``'name'`` (or ``'(anon)'``)."""
    text, string = v.text, v.string
    if text is not None:
        find = text.find

        def quoted(off: int) -> str:
            if not off:
                return "'(anon)'"
            end = find("\0", off)
            if end < 0:
                return f"'{string(off)}'"  # out of range: string() raises
            return f"'{text[off:end]}'" if end > off else "'(anon)'"
    else:
        def quoted(off: int) -> str:
            name = string(off) if off else ""
            return f"'{name}'" if name else "'(anon)'"
    return quoted


def raw_text(btf, tid: int) -> str:
    """One type as ``bpftool btf dump ... format raw`` prints it (no final newline)."""
    if not btf.first_id <= tid < btf.count:
        raise BTFError(f"type id {tid} out of range")
    v = view(btf)
    try:
        return _lines(btf, tid, v, _quoter(v))
    except (IndexError, ValueError, RecursionError) as e:
        raise malformed(e) from None


def write_raw(btf, write: Callable[[str], object], ids: Iterable[int] | None = None) -> None:
    """``ids`` (default: all of this blob's types) in raw format, handed to ``write`` in pieces."""
    try:
        v = view(btf)
        quoted = _quoter(v)
        text = v.text
        out: list[str] = []
        append = out.append
        if ids is None and text is not None:
            # The one-line records inline (most of vmlinux: functions, pointers, qualifiers,
            # typedefs), names sliced from the decoded string section; the rest as _lines does.
            W, R, index, names = v.W, v.R, text.index, KIND_NAMES  # (a bad offset raises)
            for tid in btf.ids():
                o = R[tid]
                info = W[o + 1]
                k = (info >> 24) & 0x1F
                if _SIMPLE[k]:
                    n = W[o]
                    name = text[n:index("\0", n)] if n else ""
                    if k == FUNC:
                        append(f"[{tid}] FUNC '{name or '(anon)'}' type_id={W[o + 2]} "
                               f"linkage={_LINKAGE[info & 0xFFFF]}")
                    else:
                        append(f"[{tid}] {names[k]} '{name or '(anon)'}' type_id={W[o + 2]}")
                elif k == FUNC_PROTO:
                    n, vlen = W[o], info & 0xFFFF
                    name = text[n:index("\0", n)] if n else ""
                    append(f"[{tid}] FUNC_PROTO '{name or '(anon)'}' ret_type_id={W[o + 2]} vlen={vlen}")
                    for p in range(o + 3, o + 3 + 2 * vlen, 2):
                        n = W[p]
                        name = text[n:index("\0", n)] if n else ""
                        append(f"\t'{name or '(anon)'}' type_id={W[p + 1]}")
                elif (k == STRUCT or k == UNION) and not info >> 31:
                    n, vlen = W[o], info & 0xFFFF
                    name = text[n:index("\0", n)] if n else ""
                    append(f"[{tid}] {names[k]} '{name or '(anon)'}' size={W[o + 2]} vlen={vlen}")
                    for p in range(o + 3, o + 3 + 3 * vlen, 3):
                        n = W[p]
                        name = text[n:index("\0", n)] if n else ""
                        append(f"\t'{name or '(anon)'}' type_id={W[p + 1]} bits_offset={W[p + 2]}")
                else:
                    append(_lines(btf, tid, v, quoted))
                if len(out) >= _FLUSH_AT:
                    append("")
                    write("\n".join(out))
                    out = []
                    append = out.append
        else:
            for tid in btf.ids() if ids is None else ids:
                append(_lines(btf, tid, v, quoted))
                if len(out) >= _FLUSH_AT:
                    append("")
                    write("\n".join(out))
                    out = []
                    append = out.append
        if out:
            append("")
            write("\n".join(out))
    except (IndexError, ValueError, RecursionError) as e:  # a malformed blob
        raise malformed(e) from None
