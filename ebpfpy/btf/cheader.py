"""A whole BTF blob as a compilable C header (``vmlinux.h``), in bpftool's order.

C needs a type defined before it is embedded, and declared before it is used
through a pointer.  Following libbpf's btf_dump, each type id in turn is
*ordered* (its strong dependencies — embedded structs, typedef targets — are
queued first; pointers only need a forward declaration) and then *emitted*,
with forward declarations written when a cycle goes through a pointer.
Names that clash within C's namespaces get ``___N`` suffixes in order of first
use, as bpftool does, so the output is byte-identical to
``bpftool btf dump file ... format c``.
"""
from __future__ import annotations

from .cformat import _Dumper
from .types import Kind

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

_MODS = (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)


class HeaderDumper(_Dumper):
    def __init__(self, btf):
        super().__init__(btf)
        n = btf.count
        self.order = bytearray(n)
        self.emit = bytearray(n)
        self.fwd_done = bytearray(n)
        self.order[0] = self.emit[0] = _DONE
        self.referenced = self._mark_referenced()
        self.type_counts: dict = {}
        self.ident_counts: dict = {}
        self.cached: dict = {}
        self.queue: list = []

    # -- names ----------------------------------------------------------------------
    def _resolve(self, tid: int, counts: dict) -> str:
        name = self.cached.get(tid)
        if name is None:
            orig = self.btf[tid].name
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

    # -- which anonymous enums stand alone -------------------------------------
    def _mark_referenced(self) -> bytearray:
        btf = self.btf
        ref = bytearray(btf.count)
        for tid in btf.ids():
            t = btf[tid]
            k = t.kind
            if k in (Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.FWD, Kind.FLOAT):
                continue
            if k in (Kind.STRUCT, Kind.UNION):
                for m in t.members:
                    ref[m.type] = 1
            elif k == Kind.ARRAY:
                ref[t.type] = ref[t.index_type] = 1
            elif k == Kind.FUNC_PROTO:
                for prm in t.params:
                    ref[prm.type] = 1
            elif k == Kind.DATASEC:
                for v in t.vars:
                    ref[v.type] = 1
            else:
                ref[t.type] = 1
        return ref

    # -- ordering -------------------------------------------------------------------
    def order_type(self, tid: int, through_ptr: bool) -> int:
        """1: a strong (definition) dependency was satisfied, 0: only a weak one."""
        if self.order[tid] == _DONE:
            return 1
        btf = self.btf
        t = btf[tid]
        k = t.kind
        if self.order[tid] == _BUSY:
            if k in (Kind.STRUCT, Kind.UNION) and through_ptr and t.name:
                return 0
            raise ValueError(f"unsatisfiable type cycle at [{tid}]")
        if k in (Kind.INT, Kind.FLOAT):
            self.order[tid] = _DONE
            return 0
        if k == Kind.PTR:
            r = self.order_type(t.type, True)
            self.order[tid] = _DONE
            return r
        if k == Kind.ARRAY:
            return self.order_type(t.type, False)
        if k in (Kind.STRUCT, Kind.UNION):
            if through_ptr and t.name:
                return 0
            self.order[tid] = _BUSY
            for m in t.members:
                self.order_type(m.type, False)
            if t.name:
                self.queue.append(tid)
            self.order[tid] = _DONE
            return 1
        if k in (Kind.ENUM, Kind.ENUM64, Kind.FWD):
            if t.name or not self.referenced[tid]:
                self.queue.append(tid)
            self.order[tid] = _DONE
            return 1
        if k == Kind.TYPEDEF:
            strong = self.order_type(t.type, through_ptr)
            if through_ptr and not strong:
                return 0
            self.queue.append(tid)
            self.order[tid] = _DONE
            return 1
        if k in _MODS:
            return self.order_type(t.type, through_ptr)
        if k == Kind.FUNC_PROTO:
            strong = self.order_type(t.type, through_ptr) > 0
            for prm in t.params:
                if self.order_type(prm.type, through_ptr) > 0:
                    strong = True
            return int(strong)
        self.order[tid] = _DONE  # FUNC, VAR, DATASEC, DECL_TAG: not part of a header
        return 0

    # -- emission -------------------------------------------------------------------
    def _blacklisted(self, tid: int) -> bool:
        return self.btf[tid].name == "__builtin_va_list"

    def emit_type(self, tid: int, cont: int) -> None:
        if self.emit[tid] == _DONE:
            return
        btf = self.btf
        t = btf[tid]
        k = t.kind
        top = cont == 0
        if self.emit[tid] == _BUSY:
            if self.fwd_done[tid]:
                return
            if k in (Kind.STRUCT, Kind.UNION):
                if tid == cont or not t.name:
                    return
                self.p(self._struct_ref(tid, t) + ";\n\n")
                self.fwd_done[tid] = 1
            elif k == Kind.TYPEDEF:
                if not self._blacklisted(tid):
                    self.typedef_def(tid)
                    self.p(";\n\n")
                self.fwd_done[tid] = 1
            return
        if k == Kind.INT:
            self.emit[tid] = _DONE
        elif k in (Kind.ENUM, Kind.ENUM64):
            if top:
                self.enum_def(tid, 0)
                self.p(";\n\n")
            self.emit[tid] = _DONE
        elif k in (Kind.PTR, *_MODS) or k == Kind.ARRAY:
            self.emit_type(t.type, cont)
        elif k == Kind.FWD:
            self.fwd_def(tid)
            self.p(";\n\n")
            self.emit[tid] = _DONE
        elif k == Kind.TYPEDEF:
            self.emit[tid] = _BUSY
            self.emit_type(t.type, tid)
            if not self.fwd_done[tid] and not self._blacklisted(tid):
                self.typedef_def(tid)
                self.p(";\n\n")
            self.emit[tid] = _DONE
        elif k in (Kind.STRUCT, Kind.UNION):
            self.emit[tid] = _BUSY
            if top or not t.name:
                inner = cont if not t.name else tid
                for m in t.members:
                    self.emit_type(m.type, inner)
            elif not self.fwd_done[tid] and tid != cont:
                self.p(self._struct_ref(tid, t) + ";\n\n")
                self.fwd_done[tid] = 1
            if top:
                self.struct_def(tid, 0)
                self.p(";\n\n")
                self.emit[tid] = _DONE
            else:
                self.emit[tid] = _NOT
        elif k == Kind.FUNC_PROTO:
            self.emit_type(t.type, cont)
            for prm in t.params:
                self.emit_type(prm.type, cont)

    def dump_all(self) -> str:
        self.p(HEADER)
        for tid in self.btf.ids():
            self.queue = []
            self.order_type(tid, False)
            for q in self.queue:
                self.emit_type(q, 0)
        self.p(FOOTER)
        return "".join(self.out)


def format_header(btf) -> str:
    """Every type of ``btf`` as one C header, as ``bpftool btf dump file F format c`` prints it."""
    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))  # deep struct nesting in vmlinux
    try:
        return HeaderDumper(btf).dump_all()
    finally:
        sys.setrecursionlimit(limit)
