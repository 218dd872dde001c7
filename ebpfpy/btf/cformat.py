"""Print BTF types as C, the way ``bpftool btf dump file ... format c`` does.

The output of a single definition is meant to be byte-identical to bpftool's
for that type (tests compare them), so the rules follow libbpf's btf_dump:
declarators are built from a chain of type ids (pointer, array, function
prototype, qualifiers) walked outside-in, anonymous structs/unions/enums are
inlined, gaps between members are made explicit with ``long: N;``-style
padding only where natural alignment would not produce them, and packed
structs are marked.  Name de-duplication across a whole dump (``___2``
suffixes) is not done: we print one type at a time.
"""
from __future__ import annotations

from .spec import BTFError
from .types import Kind, Struct

_CHAIN_NEXT = frozenset({Kind.PTR, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.FUNC_PROTO, Kind.TYPE_TAG})
_QUALIFIER_TEXT = {Kind.VOLATILE: "volatile", Kind.CONST: "const", Kind.RESTRICT: "restrict"}
_DROPPABLE = frozenset({Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})


def _pfx(lvl: int) -> str:
    return "\t" * lvl


class _Dumper:
    def __init__(self, btf, skip_anon_defs: bool = False):
        self.btf = btf
        self.out: list[str] = []
        self.skip_anon = skip_anon_defs

    def p(self, s: str) -> None:
        self.out.append(s)

    # Names go through these hooks so a whole-header dump can de-duplicate them.
    def type_name(self, tid: int) -> str:
        return self.btf[tid].name

    def ident_name(self, tid: int) -> str:
        return self.btf[tid].name

    def enumerator(self, name: str) -> str:
        return name

    def _struct_ref(self, tid: int, t) -> str:
        name = self.type_name(tid) if t.name else ""
        return ("union" if t.is_union else "struct") + (" " + name if name else "")

    # -- declarations -------------------------------------------------------------
    def decl(self, tid: int, fname: str, lvl: int) -> None:
        chain = []
        while True:
            chain.append(tid)
            if tid == 0:
                break
            k = self.btf.kind_of(tid)
            if k in _CHAIN_NEXT or k == Kind.ARRAY:
                tid = self.btf[tid].type
            else:
                break
        self.chain(chain, fname, lvl)

    def _mods(self, stack: list[int]) -> None:
        while stack:
            k = self.btf.kind_of(stack[-1])
            text = _QUALIFIER_TEXT.get(k)
            if text is None:
                return
            self.p(text + " ")
            stack.pop()

    def _drop_mods(self, stack: list[int]) -> None:
        while stack and self.btf.kind_of(stack[-1]) in _DROPPABLE:
            stack.pop()

    def _name(self, fname: str, last_was_ptr: bool) -> None:
        self.p((" " if fname and not last_was_ptr else "") + fname)

    def chain(self, stack: list[int], fname: str, lvl: int) -> None:
        """``stack`` is outermost-first; the innermost (base) type is popped first."""
        btf = self.btf
        last_was_ptr = True
        while stack:
            tid = stack.pop()
            if tid == 0:
                self._mods(stack)
                self.p("void")
                last_was_ptr = False
                continue
            t = btf[tid]
            k = t.kind
            if k in (Kind.INT, Kind.FLOAT):
                self._mods(stack)
                self.p(t.name)
            elif k in (Kind.STRUCT, Kind.UNION):
                self._mods(stack)
                if not t.name and not self.skip_anon:
                    self.struct_def(tid, lvl)
                else:
                    self.p(self._struct_ref(tid, t))
            elif k in (Kind.ENUM, Kind.ENUM64):
                self._mods(stack)
                if not t.name and not self.skip_anon:
                    self.enum_def(tid, lvl)
                else:
                    self.p("enum" + (" " + self.type_name(tid) if t.name else ""))
            elif k == Kind.FWD:
                self._mods(stack)
                self.p(("union " if t.is_union else "struct ") + self.type_name(tid))
            elif k == Kind.TYPEDEF:
                self._mods(stack)
                self.p(self.ident_name(tid))
            elif k == Kind.PTR:
                self.p("*" if last_was_ptr else " *")
            elif k in _QUALIFIER_TEXT:
                self.p(" " + _QUALIFIER_TEXT[k])
            elif k == Kind.TYPE_TAG:
                self._mods(stack)
                self.p(f' __attribute__((btf_type_tag("{t.name}")))')
            elif k == Kind.ARRAY:
                self._drop_mods(stack)
                if not stack:
                    self._name(fname, last_was_ptr)
                    self.p(f"[{t.nelems}]")
                    return
                multidim = btf.kind_of(stack[-1]) == Kind.ARRAY
                if fname and not last_was_ptr:
                    self.p(" ")
                if not multidim:
                    self.p("(")
                self.chain(stack, fname, lvl)
                if not multidim:
                    self.p(")")
                self.p(f"[{t.nelems}]")
                return
            elif k == Kind.FUNC_PROTO:
                self._drop_mods(stack)
                if stack:
                    self.p(" (")
                    self.chain(stack, fname, lvl)
                    self.p(")")
                else:
                    self._name(fname, last_was_ptr)
                self.p("(")
                params = t.params
                if not params or (len(params) == 1 and params[0].type == 0):
                    self.p("void)")
                    return
                for i, prm in enumerate(params):
                    if i:
                        self.p(", ")
                    if i == len(params) - 1 and prm.type == 0:
                        self.p("...")
                        break
                    self.decl(prm.type, prm.name, lvl)
                self.p(")")
                return
            else:
                self.p(f"/* unexpected {k.name} */")
                return
            last_was_ptr = k == Kind.PTR
        self._name(fname, last_was_ptr)

    # -- definitions --------------------------------------------------------------
    def is_packed(self, t: Struct) -> bool:
        btf = self.btf
        max_align = 1
        for m in t.members:
            a = btf.align_of(m.type)
            if a and m.bitfield_size == 0 and m.bit_offset % (8 * a):
                return True
            max_align = max(a, max_align)
        return t.size % max_align != 0

    def padding(self, cur: int, nxt: int, nxt_align: int, in_bitfield: bool, lvl: int) -> None:
        """Explicit ``type: bits;`` fillers for a gap the compiler would not leave by itself."""
        if cur >= nxt:
            return
        pads = (("long", 64), ("int", 32), ("short", 16), ("char", 8))
        for pad_type, pad_bits in pads:
            new = -(-cur // pad_bits) * pad_bits
            if new <= nxt:
                break
        if cur < new <= nxt:
            if (in_bitfield
                    or (new == nxt and -(-cur // (nxt_align * 8)) * nxt_align * 8 != new)
                    or (new != nxt and nxt - new <= new - cur)):
                self.p(f"\n{_pfx(lvl)}{pad_type}: {new - cur if in_bitfield else 0};")
            cur = new
        while cur != nxt:
            bits = min(nxt - cur, pad_bits)
            if bits == pad_bits:
                self.p(f"\n{_pfx(lvl)}{pad_type}: {pad_bits};")
                cur += bits
                continue
            for name, size in reversed(pads):
                if size < bits:
                    continue
                self.p(f"\n{_pfx(lvl)}{name}: {bits};")
                cur += bits
                break

    def struct_def(self, tid: int, lvl: int) -> None:
        btf = self.btf
        t = btf[tid]
        packed = (not t.is_union) and self.is_packed(t)
        self.p(self._struct_ref(tid, t) + " {")
        off, prev_bitfield = 0, False
        for m in t.members:
            align = 1 if packed else btf.align_of(m.type)
            self.padding(off, m.bit_offset, align, prev_bitfield and m.bitfield_size != 0, lvl + 1)
            self.p("\n" + _pfx(lvl + 1))
            self.decl(m.type, m.name, lvl + 1)
            if m.bitfield_size:
                self.p(f": {m.bitfield_size}")
                off = m.bit_offset + m.bitfield_size
                prev_bitfield = True
            else:
                try:
                    size = btf.size_of(m.type)
                except BTFError:  # e.g. a flexible member of a sizeless kind
                    size = 0
                off = m.bit_offset + size * 8
                prev_bitfield = False
            self.p(";")
        if not t.is_union:
            self.padding(off, t.size * 8, 1 if packed else btf.align_of(tid), False, lvl + 1)
        if t.members or t.size:
            self.p("\n" + _pfx(lvl) + "}")
        else:
            self.p("}")
        if packed:
            self.p(" __attribute__((packed))")

    def enum_def(self, tid: int, lvl: int) -> None:
        t = self.btf[tid]
        self.p("enum" + (" " + self.type_name(tid) if t.name else ""))
        if not t.values:
            return
        self.p(" {")
        for name, val in t.values:
            if not t.signed:
                val &= (1 << 64) - 1 if t.is64 else 0xFFFF_FFFF
            suffix = ("LL" if t.signed else "ULL") if t.is64 else ""
            self.p(f"\n{_pfx(lvl + 1)}{self.enumerator(name)} = {val}{suffix},")
        self.p(f"\n{_pfx(lvl)}}}")

    def fwd_def(self, tid: int) -> None:
        t = self.btf[tid]
        self.p(("union " if t.is_union else "struct ") + self.type_name(tid))

    def typedef_def(self, tid: int) -> None:
        t = self.btf[tid]
        name = self.ident_name(tid)
        if t.type == 0 and t.name == "__gnuc_va_list":
            self.p("typedef __builtin_va_list __gnuc_va_list")
        else:
            self.p("typedef ")
            self.decl(t.type, name, 0)

    def definition(self, tid: int) -> str:
        btf = self.btf
        k = btf.kind_of(tid)
        t = btf[tid]
        if k in (Kind.STRUCT, Kind.UNION):
            self.struct_def(tid, 0)
        elif k in (Kind.ENUM, Kind.ENUM64):
            self.enum_def(tid, 0)
        elif k == Kind.FWD:
            self.fwd_def(tid)
        elif k == Kind.TYPEDEF:
            self.typedef_def(tid)
        elif k == Kind.FUNC or k == Kind.VAR:
            self.p({0: "static ", 2: "extern "}.get(t.linkage, ""))
            self.decl(t.type, t.name, 0)
        else:
            self.decl(tid, "", 0)
        self.p(";")
        return "".join(self.out)


def format_definition(btf, tid: int) -> str:
    """C text defining one type (``struct x {...};``, ``typedef ... y;``)."""
    return _Dumper(btf).definition(tid)


def format_decl(btf, tid: int, name: str = "", skip_anon_defs: bool = True) -> str:
    """A declarator: ``format_decl(btf, id, "f")`` -> ``int (*f)(void *)``."""
    d = _Dumper(btf, skip_anon_defs)
    d.decl(tid, name, 0)
    return "".join(d.out)


def type_name(btf, tid: int) -> str:
    """The type as it would be written in a cast: ``struct task_struct *``."""
    return format_decl(btf, tid, "", True)
