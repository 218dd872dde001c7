"""Make an object's BTF loadable: fix DATASECs, and downgrade kinds an old kernel lacks.

clang leaves DATASEC sizes and variable offsets at zero (the linker would
fill them); the kernel rejects a zero-sized DATASEC, so we fill them from the
ELF section sizes and symbol values, as libbpf does.  When the kernel refuses
the BTF, ``downgrade`` rewrites newer kinds into older equivalents of the same
record size, so type ids (used by func_info and map definitions) keep their
meaning.  The original string section is kept, so ``.BTF.ext`` string
offsets stay valid.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ebpfpy.btf import BTF, Datasec, Int, Kind, Ref, Struct, VarSecinfo, encode
from ebpfpy.btf.types import LINKAGE_STATIC

from .reader import STT_OBJECT, RawObject


def fix_datasecs(raw: RawObject, btf: BTF) -> BTF:
    """A copy of ``btf`` with DATASEC sizes from the ELF sections and var offsets from symbols."""
    types = [btf[t] for t in btf.ids()]
    changed = False
    for i, t in enumerate(types):
        if not isinstance(t, Datasec):
            continue
        sec = raw.section_named(t.name)
        if sec is None:
            continue  # .kconfig/.ksyms externs: no ELF section
        offsets = {s.name: s.value for s in raw.symbols if s.shndx == sec.index and s.type in (STT_OBJECT, 0)}
        fixed = []
        for vs in t.vars:
            name = btf[vs.type].name
            fixed.append(VarSecinfo(vs.type, offsets.get(name, vs.offset), vs.size))
        fixed.sort(key=lambda v: v.offset)
        new = Datasec(t.name, t.size or len(sec.data), tuple(fixed))
        if new != t:
            types[i] = new
            changed = True
    if not changed:
        return btf
    return BTF(encode(types, strings=btf.strings))


def static_hidden_subprograms(raw: RawObject, btf: BTF) -> BTF:
    """Like libbpf: a global or weak ``.text`` function with hidden (or internal) visibility,
    such as usdt.bpf.h's ``__weak __hidden`` helpers, gets a *static* BTF FUNC, so the
    verifier checks it in each caller's context instead of on its own as a global function."""
    from ebpfpy.btf import Func
    from ebpfpy.btf.types import LINKAGE_GLOBAL

    from .reader import STB_LOCAL, STT_FUNC, STV_HIDDEN, STV_INTERNAL
    text = raw.section_named(".text")
    if text is None:
        return btf
    hidden = {s.name for s in raw.symbols_in(text.index, (STT_FUNC,))
              if s.bind != STB_LOCAL and s.visibility in (STV_HIDDEN, STV_INTERNAL)}
    if not hidden:
        return btf
    types = [btf[t] for t in btf.ids()]
    changed = False
    for i, t in enumerate(types):
        if isinstance(t, Func) and t.linkage == LINKAGE_GLOBAL and t.name in hidden:
            types[i] = replace(t, linkage=LINKAGE_STATIC)
            hidden.discard(t.name)  # the first FUNC of that name, as libbpf
            changed = True
    return BTF(encode(types, strings=btf.strings)) if changed else btf


# Kind -> rewrite into an older kind with the same meaning for the loader.
_DOWNGRADES: dict[Kind, Callable[[object], object]] = {
    Kind.DECL_TAG: lambda t: Int("", 1, 0, 0, 8),
    Kind.TYPE_TAG: lambda t: Ref(Kind.CONST, "", t.type),
    Kind.FLOAT: lambda t: Struct(False, "", t.size, ()),
    Kind.ENUM64: lambda t: Struct(True, t.name, t.size, ()),
    Kind.FUNC: lambda t: replace(t, linkage=LINKAGE_STATIC),
    Kind.ENUM: lambda t: replace(t, signed=False, values=tuple((n, v & 0xFFFF_FFFF) for n, v in t.values)),
}


def downgrade(btf: BTF) -> BTF:
    """Older-kernel BTF: tags, floats and 64-bit enums replaced, functions made static."""
    types: list[object] = []
    for tid in btf.ids():
        t = btf[tid]
        fix = _DOWNGRADES.get(btf.kind_of(tid))
        types.append(fix(t) if fix else t)
    return BTF(encode(types, strings=btf.strings))
