"""Instructions to text, in the syntax of `llvm-objdump` (default) or `bpftool prog dump xlated`.

Formatting happens in two steps, so that adding a syntax means adding a table, not code:

1. `describe(insn)` names the instruction's *form* (``"alu_k"``, ``"ldx"``, ``"fetch"``...) and
   collects its parts (registers, operator symbol, access size, numbers) as raw values.
2. A `Style` maps each form to a ``str.format`` template. Numbers are rendered by format specs
   (``{imm:hex}``, ``{off:disp}``...) that each style defines once in its own spec table.

A form may be refined with a dot (``"call.helper"``); a style without the refined entry falls
back to the plain form, which is how llvm prints every call alike while bpftool does not.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Callable

from . import opcodes as oc
from .errors import ISAError
from .insn import Insn

# -- symbols shared by both syntaxes ----------------------------------------------------------

ALU_SYMBOLS = {
    oc.AluOp.ADD: "+=", oc.AluOp.SUB: "-=", oc.AluOp.MUL: "*=", oc.AluOp.DIV: "/=",
    oc.AluOp.OR: "|=", oc.AluOp.AND: "&=", oc.AluOp.LSH: "<<=", oc.AluOp.RSH: ">>=",
    oc.AluOp.MOD: "%=", oc.AluOp.XOR: "^=", oc.AluOp.MOV: "=", oc.AluOp.ARSH: "s>>=",
}  # fmt: skip
SIGNED_ALU_SYMBOLS = {oc.AluOp.DIV: "s/=", oc.AluOp.MOD: "s%="}  # off=1

JMP_SYMBOLS = {
    oc.JmpOp.JEQ: "==", oc.JmpOp.JGT: ">", oc.JmpOp.JGE: ">=", oc.JmpOp.JSET: "&",
    oc.JmpOp.JNE: "!=", oc.JmpOp.JSGT: "s>", oc.JmpOp.JSGE: "s>=", oc.JmpOp.JLT: "<",
    oc.JmpOp.JLE: "<=", oc.JmpOp.JSLT: "s<", oc.JmpOp.JSLE: "s<=",
}  # fmt: skip

# The ALU operation behind each atomic, by name as both syntaxes spell it.
ATOMIC_NAMES = {
    oc.AluOp.ADD: "add",
    oc.AluOp.OR: "or",
    oc.AluOp.AND: "and",
    oc.AluOp.XOR: "xor",
}

SIZE_NAMES = {oc.Size.B: "8", oc.Size.H: "16", oc.Size.W: "32", oc.Size.DW: "64"}
END_NAMES = {oc.Source.K: "le", oc.Source.X: "be"}  # ALU64|END is always "bswap"
PSEUDO_NAMES = {p: p.name.lower() for p in oc.Pseudo}
CALL_NAMES = {k: k.name.lower() for k in oc.CallKind}

# -- step 1: form and parts --------------------------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """What `describe` found: the form, its raw parts, and which parts are data registers
    (those a style may print as 32-bit `w` registers when the operation is 32-bit)."""

    form: str
    values: dict[str, object]
    narrow: bool = False  # the operation works on 32 bits (or fewer)
    data_regs: tuple[str, ...] = ()


def _base(insn: Insn) -> dict[str, object]:
    return {
        "op": insn.op,
        "d": insn.dst,
        "s": insn.src,
        "off": insn.off,
        "imm": insn.imm,
    }


def _alu(insn: Insn) -> Parts:
    operation = oc.alu_op(insn.op)
    narrow = insn.cls == oc.Class.ALU
    v = _base(insn)
    if operation == oc.AluOp.END:
        kind = "bswap" if insn.cls == oc.Class.ALU64 else END_NAMES[oc.source(insn.op)]
        return Parts("end", {**v, "kind": kind, "bits": insn.imm})
    if operation == oc.AluOp.NEG:
        return Parts("neg", v, narrow, ("d",))
    if operation == oc.AluOp.MOV and insn.off:
        if insn.off == oc.ADDR_SPACE_CAST:
            return Parts(
                "addr_space_cast",
                {**v, "to": insn.imm >> 16 & 0xFFFF, "from": insn.imm & 0xFFFF},
            )
        if insn.off == oc.ADDR_PERCPU:
            return Parts("percpu", v)
        return Parts("movsx", {**v, "bits": insn.off}, narrow, ("d", "s"))
    symbols = (
        SIGNED_ALU_SYMBOLS
        if insn.off == 1 and operation in SIGNED_ALU_SYMBOLS
        else ALU_SYMBOLS
    )
    form = "alu_x" if oc.source(insn.op) == oc.Source.X else "alu_k"
    return Parts(form, {**v, "sym": symbols[operation]}, narrow, ("d", "s"))


def _jmp(insn: Insn) -> Parts:
    operation = oc.jmp_op(insn.op)
    v = _base(insn)
    if operation == oc.JmpOp.JA:
        return Parts("gotol" if insn.cls == oc.Class.JMP32 else "ja", v)
    if operation == oc.JmpOp.EXIT:
        return Parts("exit", v)
    if operation == oc.JmpOp.JCOND:
        return Parts("may_goto", v)
    if operation == oc.JmpOp.CALL and oc.source(insn.op) == oc.Source.X:
        return Parts("callx", v)
    if operation == oc.JmpOp.CALL:
        return Parts(
            "call." + CALL_NAMES[oc.CallKind(insn.src)],
            {**v, "helper": _LazyHelperName(insn.imm)},
        )
    form = "jcond_x" if oc.source(insn.op) == oc.Source.X else "jcond_k"
    return Parts(
        form,
        {**v, "sym": JMP_SYMBOLS[operation]},
        insn.cls == oc.Class.JMP32,
        ("d", "s"),
    )


class _LazyHelperName:
    """Looked up only if a template prints it, so llvm syntax never loads the helper table."""

    def __init__(self, helper_id: int):
        self.helper_id = helper_id

    def __format__(self, spec: str) -> str:
        return format(_helper_name(self.helper_id), spec)


def _ld(insn: Insn) -> Parts:
    v = {**_base(insn), "sz": _size(insn.op, "u")}
    if insn.is_ldimm64:
        if insn.src == oc.Pseudo.IMM:
            return Parts("ldimm64", v)
        lo, hi = insn.imm & 0xFFFF_FFFF, (insn.imm >> 32) & 0xFFFF_FFFF
        return Parts(
            "ld_pseudo." + PSEUDO_NAMES[oc.Pseudo(insn.src)],
            {**v, "pseudo": insn.src, "lo": lo, "hi": hi},
        )
    return Parts("ld_abs" if oc.mode(insn.op) == oc.Mode.ABS else "ld_ind", v)


def _mem(insn: Insn) -> Parts:
    """LDX, ST and STX: the address is always `dst + off` (stores) or `src + off` (loads)."""
    md = oc.mode(insn.op)
    v = _base(insn)
    narrow = oc.size(insn.op) != oc.Size.DW
    if insn.cls == oc.Class.LDX:
        signed = md == oc.Mode.MEMSX
        return Parts(
            "ldsx" if signed else "ldx",
            {**v, "sz": _size(insn.op, "s" if signed else "u")},
            narrow,
            ("d",),
        )
    v["sz"] = _size(insn.op, "u")
    if insn.cls == oc.Class.ST:
        return Parts("st", v)
    if md == oc.Mode.MEM:
        return Parts("stx", v, narrow, ("s",))
    wide = not narrow
    v.update(a64="64" if wide else "", xs="_64" if wide else "32_32", r0=0)
    if insn.imm == oc.AtomicOp.XCHG:
        return Parts("xchg", v, narrow, ("s",))
    if insn.imm == oc.AtomicOp.CMPXCHG:
        return Parts("cmpxchg", v, narrow, ("s", "r0"))
    operation = oc.AluOp(insn.imm & ~oc.FETCH)
    v.update(sym=ALU_SYMBOLS[operation], name=ATOMIC_NAMES[operation])
    if insn.imm & oc.FETCH:
        return Parts("fetch", v, narrow, ("s",))
    # The v1 "xadd" (32-bit add without fetch) is the one atomic every LLVM cpu decodes.
    return Parts("lock.add" if operation == oc.AluOp.ADD else "lock", v, narrow, ("s",))


def _size(op: int, prefix: str) -> str:
    return prefix + SIZE_NAMES[oc.size(op)]


_DESCRIBE: dict[oc.Class, Callable[[Insn], Parts]] = {
    oc.Class.ALU: _alu, oc.Class.ALU64: _alu, oc.Class.JMP: _jmp, oc.Class.JMP32: _jmp,
    oc.Class.LD: _ld, oc.Class.LDX: _mem, oc.Class.ST: _mem, oc.Class.STX: _mem,
}  # fmt: skip


def describe(insn: Insn) -> Parts:
    """Form and parts of a valid instruction (raises `ISAError` for an invalid one)."""
    insn.check()
    return _DESCRIBE[insn.cls](insn)


def _helper_name(helper_id: int) -> str:
    """`bpf_<name>` from the helper table (a sibling module, imported only when needed)."""
    try:
        from .helpers import UnknownHelperError, helper

        return f"bpf_{helper(helper_id).name}"
    except (ImportError, UnknownHelperError):
        return "unknown"  # what the kernel prints for an id it does not know


# -- step 2: styles ------------------------------------------------------------------------------


def _hex(v: int) -> str:
    return f"-{-v:#x}" if v < 0 else f"{v:#x}"


def _signed_hex(v: int) -> str:
    return _hex(v) if v < 0 else f"+{v:#x}"


def _disp(v: int) -> str:
    return f" - {-v:#x}" if v < 0 else f" + {v:#x}"


LLVM_SPECS: dict[str, Callable[[int], str]] = {
    "hex": _hex,  # -0x4, 0x7
    "rel": _signed_hex,  # +0x3, -0x4 (jump offsets)
    "disp": _disp,  # " - 0x4" after a base register
    "u32": lambda v: f"{v & 0xFFFF_FFFF:#x}",
    # Extensions for information llvm-objdump drops; empty in the common case.
    "more": lambda v: f", {v:#x}" if v else "",
    "plus": lambda v: _disp(v) if v else "",
}

BPFTOOL_SPECS: dict[str, Callable[[int], str]] = {
    "dec": str,
    "pc": lambda v: f"pc{v:+d}",
    "disp": lambda v: f" {v:+d}",
    "u32": lambda v: f"{v & 0xFFFF_FFFF:#x}",
    "u64": lambda v: f"{v & 0xFFFF_FFFF_FFFF_FFFF:#x}",
}

LLVM_TEMPLATES = {
    "alu_k": "{d} {sym} {imm:hex}",
    "alu_x": "{d} {sym} {s}",
    "movsx": "{d} = (s{bits}){s}",
    "addr_space_cast": "{d} = addr_space_cast({s}, {to:hex}, {from:hex})",
    "percpu": "{d} = &(void __percpu *)({s})",  # the kernel's spelling; llvm has none
    "neg": "{d} = -{d}",
    "end": "{d} = {kind}{bits} {d}",
    "ja": "goto {off:rel}",
    "gotol": "gotol {imm:rel}",
    "may_goto": "may_goto {off:rel}",
    "jcond_k": "if {d} {sym} {imm:hex} goto {off:rel}",
    "jcond_x": "if {d} {sym} {s} goto {off:rel}",
    "call": "call {imm:hex}",
    "callx": "callx {d}",
    "exit": "exit",
    "ldimm64": "{d} = {imm:hex} ll",
    "ld_pseudo": "ld_pseudo\t{d}, {pseudo:hex}, {lo:u32}{hi:more}",
    "ld_abs": "r0 = *({sz} *)skb[{imm:hex}]",
    "ld_ind": "r0 = *({sz} *)skb[{s}{imm:plus}]",
    "ldx": "{d} = *({sz} *)({s}{off:disp})",
    "ldsx": "{d} = *({sz} *)({s}{off:disp})",
    "st": "*({sz} *)({d}{off:disp}) = {imm:hex}",
    "stx": "*({sz} *)({d}{off:disp}) = {s}",
    "lock": "lock *({sz} *)({d}{off:disp}) {sym} {s}",
    "fetch": "{s} = atomic_fetch_{name}(({sz} *)({d}{off:disp}), {s})",
    "xchg": "{s} = xchg{xs}({d}{off:disp}, {s})",
    "cmpxchg": "{r0} = cmpxchg{xs}({d}{off:disp}, {r0}, {s})",
}

# llvm-objdump prints `call <imm>` for all three kinds of call; without a note a bpf-to-bpf
# call or a kfunc call would read back as a helper call. objdump itself puts symbol names in
# `<...>` after jumps, so a comparison with it looks at the text before ` <`.
LLVM_ANNOTATIONS = {"call.local": " <local>", "call.kfunc": " <kfunc{off:more}>"}

# The kernel's print_bpf_insn (what `bpftool prog dump xlated` shows): decimal immediates,
# `pc+N` jump offsets, helper names, map ids in place of map fds, the opcode byte up front.
BPFTOOL_TEMPLATES = {
    form: "({op:02x}) " + template.replace(":hex}", ":dec}").replace(":rel}", ":pc}")
    for form, template in {
        **LLVM_TEMPLATES,
        "jcond_k": "if {d} {sym} {imm:u32} goto {off:pc}",
        "call.helper": "call {helper}#{imm:dec}",
        "call.local": "call {imm:pc}",
        "call.kfunc": "call kernel-function#{imm:dec}",
        "ldimm64": "{d} = {imm:u64}",
        "ld_pseudo": "{d} = {imm:u64}",
        "ld_pseudo.map_fd": "{d} = map[id:{lo:dec}]",
        "ld_pseudo.map_value": "{d} = map[id:{lo:dec}][0]+{hi:dec}",
        "ld_pseudo.map_idx_value": "{d} = map[idx:{lo:dec}]+{hi:dec}",
        "ld_pseudo.func": "{d} = subprog[{imm:+d}]",
        "ld_ind": "r0 = *({sz} *)skb[{s} + {imm:dec}]",
        "fetch": "{s} = atomic{a64}_fetch_{name}(({sz} *)({d}{off:disp}), {s})",
        "xchg": "{s} = atomic{a64}_xchg(({sz} *)({d}{off:disp}), {s})",
        "cmpxchg": "{r0} = atomic{a64}_cmpxchg(({sz} *)({d}{off:disp}), {r0}, {s})",
    }.items()
}


@dataclass(frozen=True)
class Style:
    templates: Mapping[str, str]
    specs: Mapping[str, Callable[[int], str]]
    # Forms whose data registers print as `w` when the operation is 32-bit.
    w_forms: frozenset[str]
    index: str  # the index column of a program listing
    raw: str  # how the raw bytes join the text
    # Trailing ` <...>` notes keeping what the syntax proper cannot say (see LLVM_ANNOTATIONS).
    annotations: Mapping[str, str] = field(default_factory=dict)

    def render(self, parts: Parts, annotate: bool = True) -> str:
        form = parts.form
        template = self.templates.get(form) or self.templates[form.split(".")[0]]
        if annotate and form in self.annotations:
            template += self.annotations[form]
        values = dict(parts.values)
        narrow = "w" if parts.narrow and form in self.w_forms else "r"
        for name in _REG_PARTS & values.keys():
            values[name] = f"{narrow if name in parts.data_regs else 'r'}{values[name]}"
        return _SpecFormatter(self.specs).format(template, **values)


_REG_PARTS = {"d", "s", "r0"}
_ALU32 = frozenset({"alu_k", "alu_x", "neg", "movsx", "jcond_k", "jcond_x"})
_ATOMIC32 = frozenset({"lock", "fetch", "xchg", "cmpxchg"})


class _SpecFormatter(string.Formatter):
    def __init__(self, specs: Mapping[str, Callable[[int], str]]):
        self.specs = specs

    def format_field(self, value: object, format_spec: str) -> str:
        spec = self.specs.get(format_spec)
        return spec(value) if spec else format(value, format_spec)  # type: ignore[arg-type]


STYLES: dict[str, Style] = {
    # `llvm-objdump-19 -d`: 32-bit atomics other than add are only decoded with --mcpu=v3+,
    # so we print them as that does (the default cpu shows <unknown> or misreads them).
    "llvm": Style(
        LLVM_TEMPLATES,
        LLVM_SPECS,
        _ALU32 | _ATOMIC32,
        "{index:>8}:\t",
        "{raw}\t{text}",
        LLVM_ANNOTATIONS,
    ),
    # `llvm-objdump-19 -d --mcpu=v4`: narrow loads and stores also use `w` registers.
    "llvm-v4": Style(
        LLVM_TEMPLATES,
        LLVM_SPECS,
        _ALU32 | _ATOMIC32 | {"ldx", "stx", "lock.add"},
        "{index:>8}:\t",
        "{raw}\t{text}",
        LLVM_ANNOTATIONS,
    ),
    # `bpftool prog dump xlated ... opcodes`: the bytes go on a line of their own.
    "bpftool": Style(
        BPFTOOL_TEMPLATES, BPFTOOL_SPECS, _ALU32, "{index:>4}: ", "{text}\n       {raw}"
    ),
}


def _style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise ISAError(
            f"unknown disassembly style {name!r} (known: {', '.join(STYLES)})"
        ) from None


def format_insn(insn: Insn, style: str = "llvm", *, annotate: bool = True) -> str:
    """One instruction as text, without index or bytes.

    With ``annotate=False`` the text is exactly llvm-objdump's (for the llvm styles), at the
    price of not telling local and kfunc calls from helper calls.
    """
    return _style(style).render(describe(insn), annotate)


def raw_bytes(insn: Insn) -> str:
    return " ".join(f"{b:02x}" for b in insn.encode())


def format_program(
    insns: Iterable[Insn],
    *,
    with_index: bool = True,
    raw: bool = False,
    style: str = "llvm",
    annotate: bool = True,
) -> str:
    """One line per instruction; the index is the slot number, as llvm-objdump and the kernel count."""
    st = _style(style)
    lines = []
    index = 0
    for insn in insns:
        try:
            text = st.render(describe(insn), annotate)
        except ISAError as e:
            raise ISAError(f"instruction {index}: {e}", index=index) from None
        if raw:
            text = st.raw.format(raw=raw_bytes(insn), text=text)
        lines.append(st.index.format(index=index) + text if with_index else text)
        index += insn.size
    return "\n".join(lines) + ("\n" if lines else "")
