"""Print BTF types as C, the way ``bpftool btf dump file ... format c`` does.

The output of a single definition is meant to be byte-identical to bpftool's
for that type (tests compare them), so the rules follow libbpf's btf_dump:
declarators are built from a chain of type ids (pointer, array, function
prototype, qualifiers) walked outside-in, anonymous structs/unions/enums are
inlined, gaps between members are made explicit with ``long: N;``-style
padding only where natural alignment would not produce them, and packed
structs are marked.  Name de-duplication across a whole dump (``___2``
suffixes) is not done here: ``cheader`` does it for a whole header.

The writer reads the raw records through a ``view.View`` (no type values are
decoded), and remembers each declarator it built: a member of type
``struct list_head *`` costs one dict lookup after the first.
"""
from __future__ import annotations

from .errors import BTFError
from .view import (
    ARRAY,
    CONST,
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

# Kinds a declarator chain continues through (ARRAY too, whose element type sits elsewhere).
_CHAIN_NEXT = frozenset({PTR, VOLATILE, CONST, RESTRICT, FUNC_PROTO, TYPE_TAG})
_QUALIFIER_TEXT = {VOLATILE: "volatile", CONST: "const", RESTRICT: "restrict"}
_DROPPABLE = frozenset({VOLATILE, CONST, RESTRICT, TYPE_TAG})
_PADS = (("long", 64), ("int", 32), ("short", 16), ("char", 8))
_TABS = tuple("\t" * n for n in range(64))
_MAX_CHAIN = 4096  # pointers, qualifiers and arrays in one declarator: more is a loop
_MARK = "\0"  # stands for the declared name while a declarator is built (BTF names hold no NUL)


def _pfx(lvl: int) -> str:
    return _TABS[lvl] if lvl < 64 else "\t" * lvl


class CWriter:
    """Writes C for one BTF's types into ``self.out`` (a list of strings)."""

    def __init__(self, btf, skip_anon_defs: bool = False):
        self.btf = btf
        v = self.v = view(btf)
        self.W, self.R, self.K = v.W, v.R, v.kinds()
        self.S, self.sb = v.S, v.sb
        self.out: list[str] = []
        self.skip_anon = skip_anon_defs
        self._decls: dict[int, tuple[str, str]] = {}  # tid -> text before and after the name
        self._bare: dict[int, str] = {}  # tid -> declarator without a name
        self._inline = 0  # anonymous definitions written inline so far (those are not cached)

    def p(self, s: str) -> None:
        self.out.append(s)

    # Names go through these hooks so a whole-header dump can de-duplicate them.
    def type_name(self, tid: int) -> str:
        return self.v.name(tid)

    def ident_name(self, tid: int) -> str:
        return self.v.name(tid)

    def enumerator(self, name: str) -> str:
        return name

    def raw_name(self, tid: int) -> str:
        return self.v.name(tid)

    def _struct_ref(self, tid: int) -> str:
        name = self.type_name(tid)
        word = "union" if self.K[tid] == UNION else "struct"
        return word + " " + name if name else word

    def _string(self, off: int) -> str:
        return self.v.string(off) if off else ""

    # -- declarations -------------------------------------------------------------
    def decl(self, tid: int, fname: str, lvl: int) -> str:
        """The declarator of ``fname`` (may be empty) with type ``tid``, as text."""
        if fname:
            cached = self._decls.get(tid)
            if cached is not None:
                return cached[0] + fname + cached[1]
            before = self._inline
            text = self._build_decl(tid, _MARK, lvl)
            if self._inline == before:
                pre, _, post = text.partition(_MARK)
                self._decls[tid] = (pre, post)
            return text.replace(_MARK, fname)
        text = self._bare.get(tid)
        if text is None:
            before = self._inline
            text = self._build_decl(tid, "", lvl)
            if self._inline == before:
                self._bare[tid] = text
        return text

    def _build_decl(self, tid: int, fname: str, lvl: int) -> str:
        K, W, R = self.K, self.W, self.R
        chain = []
        while True:
            chain.append(tid)
            if tid == 0:
                break
            if len(chain) > _MAX_CHAIN:
                raise BTFError(f"type [{chain[0]}] refers to itself")
            k = K[tid]
            if k in _CHAIN_NEXT:
                tid = W[R[tid] + 2]
            elif k == ARRAY:
                tid = W[R[tid] + 3]
            else:
                break
        saved, self.out = self.out, []
        try:
            self.chain(chain, fname, lvl)
            return "".join(self.out)
        finally:
            self.out = saved

    def _mods(self, stack: list[int]) -> None:
        K = self.K
        while stack:
            text = _QUALIFIER_TEXT.get(K[stack[-1]])
            if text is None:
                return
            self.out.append(text + " ")
            stack.pop()

    def _drop_mods(self, stack: list[int]) -> None:
        K = self.K
        while stack and K[stack[-1]] in _DROPPABLE:
            stack.pop()

    def chain(self, stack: list[int], fname: str, lvl: int) -> None:
        """``stack`` is outermost-first; the innermost (base) type is popped first."""
        K, W, R = self.K, self.W, self.R
        out = self.out
        last_was_ptr = True
        while stack:
            tid = stack.pop()
            if tid == 0:
                self._mods(stack)
                out.append("void")
                last_was_ptr = False
                continue
            k = K[tid]
            if k == PTR:
                out.append("*" if last_was_ptr else " *")
                last_was_ptr = True
                continue
            if k == TYPEDEF:
                self._mods(stack)
                out.append(self.ident_name(tid))
            elif k == STRUCT or k == UNION:
                self._mods(stack)
                name = self.type_name(tid)
                if not name and not self.skip_anon:
                    self._inline += 1
                    self.struct_def(tid, lvl)
                else:
                    out.append(("union " if k == UNION else "struct ") + name if name
                               else "union" if k == UNION else "struct")
            elif k == INT or k == FLOAT:
                self._mods(stack)
                out.append(self.raw_name(tid))
            elif k == ENUM or k == ENUM64:
                self._mods(stack)
                name = self.type_name(tid)
                if not name and not self.skip_anon:
                    self._inline += 1
                    self.enum_def(tid, lvl)
                else:
                    out.append("enum " + name if name else "enum")
            elif k == FWD:
                self._mods(stack)
                out.append(("union " if W[R[tid] + 1] >> 31 else "struct ") + self.type_name(tid))
            elif k in _QUALIFIER_TEXT:
                out.append(" " + _QUALIFIER_TEXT[k])
            elif k == TYPE_TAG:
                self._mods(stack)
                out.append(f' __attribute__((btf_type_tag("{self.raw_name(tid)}")))')
            elif k == ARRAY:
                nelems = W[R[tid] + 5]
                self._drop_mods(stack)
                if not stack:
                    out.append((" " if fname and not last_was_ptr else "") + fname)
                    out.append(f"[{nelems}]")
                    return
                multidim = K[stack[-1]] == ARRAY
                if fname and not last_was_ptr:
                    out.append(" ")
                if not multidim:
                    out.append("(")
                self.chain(stack, fname, lvl)
                if not multidim:
                    out.append(")")
                out.append(f"[{nelems}]")
                return
            elif k == FUNC_PROTO:
                self._drop_mods(stack)
                if stack:
                    out.append(" (")
                    self.chain(stack, fname, lvl)
                    out.append(")")
                else:
                    out.append((" " if fname and not last_was_ptr else "") + fname)
                o = R[tid]
                vlen = W[o + 1] & 0xFFFF
                if not vlen or (vlen == 1 and W[o + 4] == 0):
                    out.append("(void)")
                    return
                parts = []
                for i, p in enumerate(range(o + 3, o + 3 + 2 * vlen, 2)):
                    ptype = W[p + 1]
                    if i == vlen - 1 and ptype == 0:
                        parts.append("...")
                        break
                    parts.append(self.decl(ptype, self._string(W[p]), lvl))
                out.append("(" + ", ".join(parts) + ")")
                return
            else:
                out.append(f"/* unexpected {KIND_NAMES[k]} */")
                return
            last_was_ptr = False
        out.append((" " if fname and not last_was_ptr else "") + fname)

    # -- definitions --------------------------------------------------------------
    def padding(self, cur: int, nxt: int, nxt_align: int, in_bitfield: bool, lvl: int) -> None:
        """Explicit ``type: bits;`` fillers for a gap the compiler would not leave by itself."""
        if cur >= nxt:
            return
        out, pfx = self.out, _pfx(lvl)
        # The widest pad whose next boundary is not past nxt (char when none is).
        pad_type, pad_bits = next(((t, b) for t, b in _PADS if -(-cur // b) * b <= nxt), _PADS[-1])
        new = -(-cur // pad_bits) * pad_bits
        if cur < new <= nxt:
            if (in_bitfield
                    or (new == nxt and -(-cur // (nxt_align * 8)) * nxt_align * 8 != new)
                    or (new != nxt and nxt - new <= new - cur)):
                out.append(f"\n{pfx}{pad_type}: {new - cur if in_bitfield else 0};")
            cur = new
        while cur != nxt:
            bits = min(nxt - cur, pad_bits)
            if bits == pad_bits:
                out.append(f"\n{pfx}{pad_type}: {pad_bits};")
                cur += bits
                continue
            for name, size in reversed(_PADS):
                if size < bits:
                    continue
                out.append(f"\n{pfx}{name}: {bits};")
                cur += bits
                break

    def struct_def(self, tid: int, lvl: int) -> None:
        W, v = self.W, self.v
        align_of, size_of = v.align_of, v.size_of
        known_align, known_size = v.aligns, v.sizes
        o = self.R[tid]
        info = W[o + 1]
        vlen, kflag, size = info & 0xFFFF, info >> 31, W[o + 2]
        is_union = self.K[tid] == UNION
        first = o + 3
        stop = first + 3 * vlen
        members = W[first:stop]  # name, type, offset of each member, flat
        # Packed: a misaligned member, or a size no member alignment explains. Either makes the
        # struct's own alignment 1 (view.align_of), so only a struct aligned to 1 needs a look.
        packed = not is_union and (known_align[tid] or align_of(tid)) == 1 and self._is_packed(members, kflag, size)
        out = self.out
        out.append(self._struct_ref(tid) + " {")
        nl_inner = "\n" + _pfx(lvl + 1)
        off, prev_bitfield = 0, False
        decl, decls = self.decl, self._decls.get
        text = self.v._text or None  # (decoded for whole dumps; one definition decodes names one by one)
        text_index = text.index if text is not None else None  # (index: a bad offset raises)
        string = self.v.string
        for name_off, mtype, moff in zip(members[0::3], members[1::3], members[2::3]):
            if kflag:
                bits, moff = moff >> 24, moff & 0xFFFFFF
            else:
                bits = 0
            if off < moff:  # a gap: maybe explicit padding
                align = 1 if packed else known_align[mtype] or align_of(mtype)
                self.padding(off, moff, align, prev_bitfield and bits != 0, lvl + 1)
            if not name_off:
                name = ""
            elif text_index is not None:
                name = text[name_off:text_index("\0", name_off)]
            else:
                name = string(name_off)
            cached = decls(mtype) if name else None
            if bits:
                if cached is not None:
                    out.append(f"{nl_inner}{cached[0]}{name}{cached[1]}: {bits};")
                else:
                    out.append(f"{nl_inner}{decl(mtype, name, lvl + 1)}: {bits};")
                off = moff + bits
                prev_bitfield = True
                continue
            if cached is not None:
                out.append(f"{nl_inner}{cached[0]}{name}{cached[1]};")
            else:
                out.append(f"{nl_inner}{decl(mtype, name, lvl + 1)};")
            msize = known_size[mtype]
            if msize == -2:
                try:
                    msize = size_of(mtype)
                except BTFError:  # e.g. a typedef loop
                    msize = 0
            off = moff + (msize * 8 if msize > 0 else 0)
            prev_bitfield = False
        if not is_union and off < size * 8:  # (most structs end on their last member: no call)
            self.padding(off, size * 8, 1 if packed else align_of(tid), False, lvl + 1)
        if vlen or size:
            out.append("\n" + _pfx(lvl) + "}")
        else:
            out.append("}")
        if packed:
            out.append(" __attribute__((packed))")

    def _is_packed(self, members, kflag: int, size: int) -> bool:
        known_align, align_of = self.v.aligns, self.v.align_of
        max_align = 1
        for mtype, off in zip(members[1::3], members[2::3]):
            a = known_align[mtype] or align_of(mtype)
            if kflag:
                if off >> 24:
                    off = 0  # a bitfield: only its alignment counts
                else:
                    off &= 0xFFFFFF
            if off % (8 * a):
                return True
            if a > max_align:
                max_align = a
        return size % max_align != 0

    def enum_def(self, tid: int, lvl: int) -> None:
        W = self.W
        o = self.R[tid]
        info = W[o + 1]
        vlen, signed = info & 0xFFFF, info >> 31
        name = self.type_name(tid)
        out = self.out
        out.append("enum " + name if name else "enum")
        if not vlen:
            return
        out.append(" {")
        pfx = "\n" + _pfx(lvl + 1)
        string, enumerator = self._string, self.enumerator
        if self.K[tid] == ENUM64:
            suffix = "LL," if signed else "ULL,"
            for p in range(o + 3, o + 3 + 3 * vlen, 3):
                val = W[p + 1] | (W[p + 2] << 32)
                if signed and val >> 63:
                    val -= 1 << 64
                out.append(f"{pfx}{enumerator(string(W[p]))} = {val}{suffix}")
        else:
            for p in range(o + 3, o + 3 + 2 * vlen, 2):
                val = W[p + 1]
                if signed and val & 0x8000_0000:
                    val -= 1 << 32
                out.append(f"{pfx}{enumerator(string(W[p]))} = {val},")
        out.append(f"\n{_pfx(lvl)}}}")

    def fwd_def(self, tid: int) -> None:
        self.out.append(("union " if self.W[self.R[tid] + 1] >> 31 else "struct ") + self.type_name(tid))

    def typedef_def(self, tid: int) -> None:
        name = self.ident_name(tid)
        target = self.W[self.R[tid] + 2]
        if target == 0 and self.raw_name(tid) == "__gnuc_va_list":
            self.out.append("typedef __builtin_va_list __gnuc_va_list")
        else:
            self.out.append("typedef " + self.decl(target, name, 0))

    def definition(self, tid: int) -> str:
        k = self.K[tid]
        if k == STRUCT or k == UNION:
            self.struct_def(tid, 0)
        elif k == ENUM or k == ENUM64:
            self.enum_def(tid, 0)
        elif k == FWD:
            self.fwd_def(tid)
        elif k == TYPEDEF:
            self.typedef_def(tid)
        elif k == FUNC or k == VAR:
            W, o = self.W, self.R[tid]
            linkage = W[o + 1] & 0xFFFF if k == FUNC else W[o + 3]
            self.p({0: "static ", 2: "extern "}.get(linkage, ""))
            self.p(self.decl(W[o + 2], self.raw_name(tid), 0))
        else:
            self.p(self.decl(tid, "", 0))
        self.p(";")
        return "".join(self.out)


def _check(btf, tid: int) -> None:
    if not 0 <= tid < btf.count:
        raise BTFError(f"type id {tid} out of range")


def malformed(e: Exception) -> BTFError:
    """The BTFError for what a writer met reading a malformed blob (the records are read in
    place, not checked first): a type id past the last one, a name offset past the strings."""
    if isinstance(e, BTFError):
        return e
    if isinstance(e, IndexError):
        return BTFError("type id out of range")
    if isinstance(e, RecursionError):
        return BTFError("types nested too deep (a type that contains itself?)")
    return BTFError(f"bad string offset in the BTF: {e}")


def format_definition(btf, tid: int) -> str:
    """C text defining one type (``struct x {...};``, ``typedef ... y;``)."""
    _check(btf, tid)
    try:
        return CWriter(btf).definition(tid)
    except (IndexError, ValueError, RecursionError) as e:
        raise malformed(e) from None


def format_decl(btf, tid: int, name: str = "", skip_anon_defs: bool = True) -> str:
    """A declarator: ``format_decl(btf, id, "f")`` -> ``int (*f)(void *)``."""
    _check(btf, tid)
    try:
        return CWriter(btf, skip_anon_defs).decl(tid, name, 0)
    except (IndexError, ValueError, RecursionError) as e:
        raise malformed(e) from None


def type_name(btf, tid: int) -> str:
    """The type as it would be written in a cast: ``struct task_struct *``."""
    return format_decl(btf, tid, "", True)
