"""A whole BTF blob as a compilable C header (``vmlinux.h``), in bpftool's order.

C needs a type defined before it is embedded, and declared before it is used
through a pointer.  Following libbpf's btf_dump, each type id in turn is
*ordered* (its strong dependencies — embedded structs, typedef targets — are
queued first; pointers only need a forward declaration) and then *emitted*,
with forward declarations written when a cycle goes through a pointer.
Names that clash within C's namespaces get ``___N`` suffixes in order of first
use, as bpftool does, so the output is byte-identical to
``bpftool btf dump file ... format c``.

One pass over the raw records (``view.View``): nothing is decoded into type
values, and ``write_header`` hands the text out in chunks as it goes, so a
vmlinux.h is never held in memory whole.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from itertools import compress

from .cformat import CWriter, malformed
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

_NOT, _BUSY, _DONE = 0, 1, 2

HEADER = (
    "#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n"
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
    "#endif\n\n"
)
FOOTER = (
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n"
    "#endif /* __VMLINUX_H__ */\n"
)

_MODS = frozenset({VOLATILE, CONST, RESTRICT, TYPE_TAG})
_COMPOSITE = bytes(1 if k in (STRUCT, UNION) else 0 for k in range(32))
# Ordering these is a no-op (as for DECL_TAG): they are not part of a header.
_NOT_IN_HEADER = bytes(1 if k in (FUNC, VAR, DATASEC) else 0 for k in range(32))
_IN_HEADER = bytes(0 if k < 32 and _NOT_IN_HEADER[k] else 1 for k in range(256))  # a bytes.translate table
_FLUSH_AT = 4096
# Kinds whose emission is their type word's (never marked done themselves): pointers, qualifiers.
_THROUGH = bytes(1 if k in (PTR, VOLATILE, CONST, RESTRICT, TYPE_TAG) else 0 for k in range(32))
# How a kind refers to other types: 0 not at all, 1 its type word, 2 members, 3 parameters,
# 4 element and index, 5 section variables.
_REFERS = bytes({PTR: 1, TYPEDEF: 1, VOLATILE: 1, CONST: 1, RESTRICT: 1, FUNC: 1, VAR: 1, DECL_TAG: 1,
                 TYPE_TAG: 1, STRUCT: 2, UNION: 2, FUNC_PROTO: 3, ARRAY: 4, DATASEC: 5}.get(k, 0)
                for k in range(32))  # pieces of text kept before they are handed to ``write``


def _mark_referenced(btf, v) -> bytearray:
    """Ids some other type of ``btf`` refers to (only anonymous enums and forwards ask).

    One pass over the records; for a blob of its own whose kinds are not known yet, the same
    pass fills in ``v``'s kinds table."""
    W, R, how = v.W, v.R, _REFERS
    ref = bytearray(btf.count)
    kinds = bytearray(btf.count) if v._K is None and btf.base is None else None
    K = kinds if kinds is not None else v.K
    first = btf.first_id
    for tid, o in enumerate(memoryview(R)[first:btf.count], first):
        if kinds is not None:
            k = kinds[tid] = (W[o + 1] >> 24) & 0x1F
        else:
            k = K[tid]
        h = how[k]
        if h == 1:
            ref[W[o + 2]] = 1
        elif h:
            if h == 2:  # struct/union members
                for t in W[o + 4:o + 3 + 3 * (W[o + 1] & 0xFFFF):3]:
                    ref[t] = 1
            elif h == 3:  # function parameters (not the return type)
                for t in W[o + 4:o + 3 + 2 * (W[o + 1] & 0xFFFF):2]:
                    ref[t] = 1
            elif h == 4:  # array: element and index types
                ref[W[o + 3]] = ref[W[o + 4]] = 1
            else:  # datasec variables
                for t in W[o + 3:o + 3 + 3 * (W[o + 1] & 0xFFFF):3]:
                    ref[t] = 1
    if kinds is not None:
        v._K = bytes(kinds)
    return ref


class HeaderWriter(CWriter):
    def __init__(self, btf):
        v = view(btf)
        self.referenced = _mark_referenced(btf, v)  # (first: it may fill in the kinds)
        v.text  # noqa: B018  (names are slices of the decoded string section from now on)
        super().__init__(btf)
        n = btf.count
        self.order = bytearray(n)
        self.emit = bytearray(n)
        self.fwd_done = bytearray(n)
        self.order[0] = self.emit[0] = _DONE
        self.type_counts: dict = {}
        self.ident_counts: dict = {}
        self.cached: dict = {}
        self.queue: list = []

    # -- names ----------------------------------------------------------------------
    def _resolve(self, tid: int, counts: dict) -> str:
        name = self.cached.get(tid)
        if name is None:
            orig = self.v.name(tid)
            if not orig:
                return ""
            dup = counts[orig] = counts.get(orig, 0) + 1
            name = f"{orig}___{dup}" if dup > 1 else orig
            self.cached[tid] = name
        return name

    def type_name(self, tid: int) -> str:
        return self._resolve(tid, self.type_counts)

    def ident_name(self, tid: int) -> str:
        return self._resolve(tid, self.ident_counts)

    def enumerator(self, name: str) -> str:
        dup = self.ident_counts[name] = self.ident_counts.get(name, 0) + 1
        return f"{name}___{dup}" if dup > 1 else name

    def _named(self, tid: int) -> bool:
        off = self.W[self.R[tid]]
        return bool(off) and self.S[self.sb + off] != 0

    # -- ordering -------------------------------------------------------------------
    def order_type(self, tid: int, through_ptr: bool) -> int:
        """1: a strong (definition) dependency was satisfied, 0: only a weak one."""
        order = self.order
        state = order[tid]
        if state == _DONE:
            return 1
        k = self.K[tid]
        W = self.W
        o = self.R[tid]
        if k == PTR:
            t = W[o + 2]
            if order[t] == _DONE:
                r = 1
            elif _COMPOSITE[self.K[t]] and self._named(t):
                r = 0  # what order_type(t, True) says at once: a pointer needs no definition
            else:
                r = self.order_type(t, True)
            order[tid] = _DONE
            return r
        if k == STRUCT or k == UNION:
            named = self._named(tid)
            if state == _BUSY:
                if through_ptr and named:
                    return 0
                raise BTFError(f"unsatisfiable type cycle at [{tid}]")
            if through_ptr and named:
                return 0
            order[tid] = _BUSY
            order_type, K, R, S, sb = self.order_type, self.K, self.R, self.S, self.sb
            for t in W[o + 4:o + 3 + 3 * (W[o + 1] & 0xFFFF):3]:
                if order[t] != _DONE:
                    if K[t] == PTR:  # order_type(t, False), unrolled for the commonest member
                        pointee = W[R[t] + 2]
                        if order[pointee] != _DONE:
                            if _COMPOSITE[K[pointee]]:
                                name_off = W[R[pointee]]
                                if not (name_off and S[sb + name_off]):  # (named: nothing to do)
                                    order_type(pointee, True)
                            else:
                                order_type(pointee, True)
                        order[t] = _DONE
                    else:
                        order_type(t, False)
            if named:
                self.queue.append(tid)
            order[tid] = _DONE
            return 1
        if state == _BUSY:
            raise BTFError(f"unsatisfiable type cycle at [{tid}]")
        if k == TYPEDEF:
            strong = self.order_type(W[o + 2], through_ptr)
            if through_ptr and not strong:
                return 0
            self.queue.append(tid)
            order[tid] = _DONE
            return 1
        if k in _MODS:
            return self.order_type(W[o + 2], through_ptr)
        if k == ARRAY:
            return self.order_type(W[o + 3], False)
        if k == FUNC_PROTO:
            order_type = self.order_type
            t = W[o + 2]
            strong = order[t] == _DONE or order_type(t, through_ptr) > 0
            for t in W[o + 4:o + 3 + 2 * (W[o + 1] & 0xFFFF):2]:
                if order[t] == _DONE or order_type(t, through_ptr) > 0:
                    strong = True
            return int(strong)
        if k == INT or k == FLOAT:
            order[tid] = _DONE
            return 0
        if k == ENUM or k == ENUM64 or k == FWD:
            if self._named(tid) or not self.referenced[tid]:
                self.queue.append(tid)
            order[tid] = _DONE
            return 1
        order[tid] = _DONE  # FUNC, VAR, DATASEC, DECL_TAG: not part of a header
        return 0

    # -- emission -------------------------------------------------------------------
    def _blacklisted(self, tid: int) -> bool:
        return self.raw_name(tid) == "__builtin_va_list"

    def emit_type(self, tid: int, cont: int) -> None:
        state = self.emit[tid]
        if state == _DONE:
            return
        k = self.K[tid]
        W, o = self.W, self.R[tid]
        out = self.out
        if state == _BUSY:
            if self.fwd_done[tid]:
                return
            if k == STRUCT or k == UNION:
                if tid == cont or not self._named(tid):
                    return
                out.append(self._struct_ref(tid) + ";\n\n")
                self.fwd_done[tid] = 1
            elif k == TYPEDEF:
                if not self._blacklisted(tid):
                    self.typedef_def(tid)
                    out.append(";\n\n")
                self.fwd_done[tid] = 1
            return
        if k == PTR or k in _MODS:
            t = W[o + 2]
            if self.emit[t] != _DONE:
                self.emit_type(t, cont)
        elif k == STRUCT or k == UNION:
            top = cont == 0
            named = self._named(tid)
            self.emit[tid] = _BUSY
            if top or not named:
                inner = tid if named else cont
                emit_type, emit, K, R = self.emit_type, self.emit, self.K, self.R
                for t in W[o + 4:o + 3 + 3 * (W[o + 1] & 0xFFFF):3]:
                    while _THROUGH[K[t]]:  # what emit_type() would pass through to the next type
                        t = W[R[t] + 2]
                    if emit[t] != _DONE:
                        emit_type(t, inner)
            elif not self.fwd_done[tid] and tid != cont:
                out.append(self._struct_ref(tid) + ";\n\n")
                self.fwd_done[tid] = 1
            if top:
                self.struct_def(tid, 0)
                self.out.append(";\n\n")
                self.emit[tid] = _DONE
            else:
                self.emit[tid] = _NOT
        elif k == TYPEDEF:
            self.emit[tid] = _BUSY
            t = W[o + 2]
            if self.emit[t] != _DONE:
                self.emit_type(t, tid)
            if not self.fwd_done[tid] and not self._blacklisted(tid):
                self.typedef_def(tid)
                self.out.append(";\n\n")
            self.emit[tid] = _DONE
        elif k == ARRAY:
            t = W[o + 3]
            if self.emit[t] != _DONE:
                self.emit_type(t, cont)
        elif k == FUNC_PROTO:
            emit_type, emit, K, R = self.emit_type, self.emit, self.K, self.R
            for t in W[o + 2:o + 3 + 2 * (W[o + 1] & 0xFFFF):2]:  # the return type, then parameters
                while _THROUGH[K[t]]:
                    t = W[R[t] + 2]
                if emit[t] != _DONE:
                    emit_type(t, cont)
        elif k == INT:
            self.emit[tid] = _DONE
        elif k == ENUM or k == ENUM64:
            if cont == 0:
                self.enum_def(tid, 0)
                out.append(";\n\n")
            self.emit[tid] = _DONE
        elif k == FWD:
            self.fwd_def(tid)
            out.append(";\n\n")
            self.emit[tid] = _DONE

    def dump(self, write: Callable[[str], object]) -> None:
        """The whole header, handed to ``write`` in pieces of a few hundred kB."""
        order, first = self.order, self.btf.first_id
        self.out.append(HEADER)
        # Functions and variables (half of vmlinux's ids) are filtered out at C speed: ordering
        # them would only mark them done, and no type of a header refers to them.
        wanted = memoryview(self.K.translate(_IN_HEADER))[first:]
        K, W, R, order_type = self.K, self.W, self.R, self.order_type
        for tid in compress(range(first, self.btf.count), wanted):
            if order[tid] == _DONE:
                continue
            queue = self.queue = []
            if K[tid] == FUNC_PROTO:  # a quarter of vmlinux's ids, most with every type ordered already
                o = R[tid]
                for t in W[o + 2:o + 3 + 2 * (W[o + 1] & 0xFFFF):2]:  # the return type, then parameters
                    if order[t] != _DONE:
                        order_type(t, False)
                if not queue:
                    continue
            else:
                order_type(tid, False)
            for q in queue:
                self.emit_type(q, 0)
            if len(self.out) > _FLUSH_AT:
                write("".join(self.out))
                self.out = []
        self.out.append(FOOTER)
        write("".join(self.out))
        self.out = []


def write_header(btf, write: Callable[[str], object]) -> None:
    """Every type of ``btf`` as one C header, given to ``write`` in pieces, as
    ``bpftool btf dump file F format c`` prints it."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))  # deep struct nesting in vmlinux
    try:
        HeaderWriter(btf).dump(write)
    except (IndexError, ValueError, RecursionError) as e:  # a malformed blob, or a type cycle C cannot declare
        raise malformed(e) from None
    finally:
        sys.setrecursionlimit(limit)


def format_header(btf) -> str:
    """Every type of ``btf`` as one C header, as ``bpftool btf dump file F format c`` prints it."""
    parts: list[str] = []
    write_header(btf, parts.append)
    return "".join(parts)
