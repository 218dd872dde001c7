"""Instructions to text, in the syntax of `llvm-objdump` (default) or `bpftool prog dump xlated`.

Formatting happens in two steps, so that adding a syntax means adding a table, not code:

1. `describe(insn)` names the instruction's *form* (``"alu_k"``, ``"ldx"``, ``"fetch"``...) and
   collects its parts (registers, operator symbol, access size, numbers) as raw values.
2. A `Style` maps each form to a ``str.format`` template. Numbers are rendered by format specs
   (``{imm:hex}``, ``{off:disp}``...) that each style defines once in its own spec table.

A form may be refined with a dot (``"call.helper"``); a style without the refined entry falls
back to the plain form, which is how llvm prints every call alike while bpftool does not.

What the instruction's fields cannot say (which map an fd or id is, which kernel function a
rewritten call reaches) comes from a `Names`, as bpftool feeds the kernel's printer through
callbacks: ``map[events]`` for a map load, ``call bpf_get_current_comm#281792`` for a call in
the kernel's translated code (`ebpfpy.cli.inspect.XlatedCalls` finds the names in kallsyms).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from . import opcodes as oc
from .errors import ISAError

if TYPE_CHECKING:
    # Annotations only: insn imports this module (Insn.__str__ is format_insn).
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


# The describers below return Parts' fields as a plain tuple, (form, values, narrow, data_regs):
# `describe` wraps it in `Parts`, `format_program` renders it straight away.
Described = tuple[str, dict[str, object], bool, tuple[str, ...]]
_DATA = ("d", "s")


def _base(insn: Insn) -> dict[str, object]:
    return {
        "op": insn.op,
        "d": insn.dst,
        "s": insn.src,
        "off": insn.off,
        "imm": insn.imm,
    }


def _alu(insn: Insn) -> Described:
    operation = oc.alu_op(insn.op)
    narrow = insn.op & 0x07 == oc.Class.ALU
    v = _base(insn)
    if operation == oc.AluOp.END:
        kind = "bswap" if insn.cls == oc.Class.ALU64 else END_NAMES[oc.source(insn.op)]
        v.update(kind=kind, bits=insn.imm)
        return "end", v, False, ()
    if operation == oc.AluOp.NEG:
        return "neg", v, narrow, ("d",)
    if operation == oc.AluOp.MOV and insn.off:
        if insn.off == oc.ADDR_SPACE_CAST:
            v.update({"to": insn.imm >> 16 & 0xFFFF, "from": insn.imm & 0xFFFF})
            return "addr_space_cast", v, False, ()
        if insn.off == oc.ADDR_PERCPU:
            return "percpu", v, False, ()
        v["bits"] = insn.off
        return "movsx", v, narrow, _DATA
    symbols = (
        SIGNED_ALU_SYMBOLS
        if insn.off == 1 and operation in SIGNED_ALU_SYMBOLS
        else ALU_SYMBOLS
    )
    v["sym"] = symbols[operation]
    return ("alu_x" if insn.op & oc.Source.X else "alu_k"), v, narrow, _DATA


def _jmp(insn: Insn) -> Described:
    operation = oc.jmp_op(insn.op)
    v = _base(insn)
    if operation == oc.JmpOp.JA:
        return ("gotol" if insn.cls == oc.Class.JMP32 else "ja"), v, False, ()
    if operation == oc.JmpOp.EXIT:
        return "exit", v, False, ()
    if operation == oc.JmpOp.JCOND:
        return "may_goto", v, False, ()
    if operation == oc.JmpOp.CALL and oc.source(insn.op) == oc.Source.X:
        return "callx", v, False, ()
    if operation == oc.JmpOp.CALL:
        v["fn"] = _CallName(insn)
        return "call." + CALL_NAMES[oc.CallKind(insn.src)], v, False, ()
    v["sym"] = JMP_SYMBOLS[operation]
    form = "jcond_x" if insn.op & oc.Source.X else "jcond_k"
    return form, v, insn.op & 0x07 == oc.Class.JMP32, _DATA


CallNamer = Callable[["Insn"], "str | None"]


class _CallName:
    """The callee's text, as the kernel's ``__func_get_name`` makes it; formatted only if a
    template prints it, so llvm syntax never loads the helper table.

    A helper id the table knows is named from it; anything else is asked of ``calls`` (the
    ``cb_call`` that `bpftool` passes the kernel's printer, see `Names`), and failing
    that gets the printer's default: ``unknown``, ``kernel-function`` or the pc-relative offset.
    """

    __slots__ = ("calls", "insn", "xlated")

    def __init__(self, insn: Insn, calls: CallNamer | None = None, xlated: bool = False):
        self.insn, self.calls, self.xlated = insn, calls, xlated

    def __format__(self, spec: str) -> str:
        insn = self.insn
        name = _helper_name(insn.imm) if insn.src == oc.CallKind.HELPER else None
        if name is None and self.calls is not None:
            name = self.calls(insn)
        if name is None:
            offset = insn.off if self.xlated else insn.imm  # bpftool's default: the offset
            name = DEFAULT_CALL_NAMES.get(insn.src) or f"{offset:+d}"
        return format(name, spec)


# What the kernel's printer says of a callee nobody could name (a local call: its offset).
DEFAULT_CALL_NAMES = {oc.CallKind.HELPER: "unknown", oc.CallKind.KFUNC: "kernel-function"}


def _ld(insn: Insn) -> Described:
    v = _base(insn)
    v["sz"] = _size(insn.op, "u")
    if insn.is_ldimm64:
        if insn.src == oc.Pseudo.IMM:
            return "ldimm64", v, False, ()
        v.update(pseudo=insn.src, lo=insn.imm & 0xFFFF_FFFF, hi=(insn.imm >> 32) & 0xFFFF_FFFF)
        return "ld_pseudo." + PSEUDO_NAMES[oc.Pseudo(insn.src)], v, False, ()
    return ("ld_abs" if oc.mode(insn.op) == oc.Mode.ABS else "ld_ind"), v, False, ()


def _mem(insn: Insn) -> Described:
    """LDX, ST and STX: the address is always `dst + off` (stores) or `src + off` (loads)."""
    md = oc.mode(insn.op)
    v = _base(insn)
    narrow = oc.size(insn.op) != oc.Size.DW
    klass = insn.op & 0x07
    if klass == oc.Class.LDX:
        signed = md == oc.Mode.MEMSX
        v["sz"] = _size(insn.op, "s" if signed else "u")
        return ("ldsx" if signed else "ldx"), v, narrow, ("d",)
    v["sz"] = _size(insn.op, "u")
    if klass == oc.Class.ST:
        return "st", v, False, ()
    if md == oc.Mode.MEM:
        return "stx", v, narrow, ("s",)
    wide = not narrow
    v.update(a64="64" if wide else "", xs="_64" if wide else "32_32", r0=0)
    if insn.imm == oc.AtomicOp.XCHG:
        return "xchg", v, narrow, ("s",)
    if insn.imm == oc.AtomicOp.CMPXCHG:
        return "cmpxchg", v, narrow, ("s", "r0")
    operation = oc.AluOp(insn.imm & ~oc.FETCH)
    v.update(sym=ALU_SYMBOLS[operation], name=ATOMIC_NAMES[operation])
    if insn.imm & oc.FETCH:
        return "fetch", v, narrow, ("s",)
    # The v1 "xadd" (32-bit add without fetch) is the one atomic every LLVM cpu decodes.
    return ("lock.add" if operation == oc.AluOp.ADD else "lock"), v, narrow, ("s",)


def _size(op: int, prefix: str) -> str:
    return prefix + SIZE_NAMES[oc.size(op)]


_DESCRIBERS: dict[oc.Class, Callable[[Insn], Described]] = {
    oc.Class.ALU: _alu, oc.Class.ALU64: _alu, oc.Class.JMP: _jmp, oc.Class.JMP32: _jmp,
    oc.Class.LD: _ld, oc.Class.LDX: _mem, oc.Class.ST: _mem, oc.Class.STX: _mem,
}  # fmt: skip
_DESCRIBE = tuple(_DESCRIBERS[c] for c in oc.Class)  # indexed by the class bits, op & 7


def _described(insn: Insn) -> Described:
    insn.check()
    return _DESCRIBE[insn.op & 0x07](insn)


@dataclass(frozen=True)
class Names:
    """What a listing can name beyond the instruction's own fields: the kernel's printer gets
    the same from bpftool through its ``cb_call`` and ``cb_imm`` callbacks.

    ``calls``: the text for a callee the helper table cannot name (a helper id it does not know,
    a kfunc, a local call), or None for the printer's default. ``maps``: names for the ``imm``
    of map loads (``ld_pseudo`` with a map fd or value: the fd before loading, the id in the
    kernel's dump). ``xlated``: the instructions are the kernel's translated code, where a
    local call keeps its pc offset in ``off`` (``imm`` is the subprogram's index).
    """

    calls: CallNamer | None = None
    maps: Mapping[int, str] | None = None
    xlated: bool = False

    def described(self, insn: Insn) -> Described:
        if self.xlated and insn.op == _CALL and insn.src == oc.CallKind.LOCAL and insn.off:
            # The kernel's translated code may not pass `check`: give it the usual form.
            _described(dataclasses.replace(insn, off=0))
            described = _DESCRIBE[insn.op & 0x07](insn)
        else:
            described = _described(insn)
        form, values, narrow, regs = described
        if form.startswith("call."):
            values["fn"] = _CallName(insn, self.calls, self.xlated)
        elif self.maps and form in _MAP_LOADS and values["lo"] in self.maps:
            values["map"] = self.maps[values["lo"]]  # type: ignore[index]
            return form + ".named", values, narrow, regs
        return described


_CALL = oc.Class.JMP | oc.JmpOp.CALL
_MAP_LOADS = frozenset({"ld_pseudo.map_fd", "ld_pseudo.map_value"})


def describe(insn: Insn) -> Parts:
    """Form and parts of a valid instruction (raises `ISAError` for an invalid one)."""
    return Parts(*_described(insn))


def _helper_name(helper_id: int) -> str | None:
    """`bpf_<name>` from the helper table (a sibling module, imported only when needed), or
    None for an id it does not know."""
    try:
        from .helpers import UnknownHelperError, helper

        return f"bpf_{helper(helper_id).name}"
    except (ImportError, UnknownHelperError):
        return None


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
    "offset": lambda v: f"+{v:#x}" if v else "",  # after a symbol, as objdump writes it
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
# A map load named by `Names.maps` gets objdump's `<symbol>` / `<symbol+0x8>` note, which
# `clang -S` would have written as the operand (`r1 = events ll`) before relocation.
LLVM_ANNOTATIONS = {
    "call.local": " <local>",
    "call.kfunc": " <kfunc{off:more}>",
    "ld_pseudo.map_fd.named": " <{map}>",
    "ld_pseudo.map_value.named": " <{map}{hi:offset}>",
}

# The kernel's print_bpf_insn (what `bpftool prog dump xlated` shows): decimal immediates,
# `pc+N` jump offsets, helper names, map ids in place of map fds, the opcode byte up front.
BPFTOOL_TEMPLATES = {
    form: "({op:02x}) " + template.replace(":hex}", ":dec}").replace(":rel}", ":pc}")
    for form, template in {
        **LLVM_TEMPLATES,
        "jcond_k": "if {d} {sym} {imm:u32} goto {off:pc}",
        "call.helper": "call {fn}#{imm:dec}",
        "call.local": "call pc{fn}",
        "call.kfunc": "call {fn}#{imm:dec}",
        "ldimm64": "{d} = {imm:u64}",
        "ld_pseudo": "{d} = {imm:u64}",
        "ld_pseudo.map_fd": "{d} = map[id:{lo:dec}]",
        "ld_pseudo.map_value": "{d} = map[id:{lo:dec}][0]+{hi:dec}",
        # Named by `Names.maps` (the maps of a program not loaded yet have no id to show).
        "ld_pseudo.map_fd.named": "{d} = map[{map}]",
        "ld_pseudo.map_value.named": "{d} = map[{map}][0]+{hi:dec}",
        "ld_pseudo.map_idx_value": "{d} = map[idx:{lo:dec}]+{hi:dec}",
        "ld_pseudo.func": "{d} = subprog[{imm:+d}]",
        "ld_ind": "r0 = *({sz} *)skb[{s} + {imm:dec}]",
        "fetch": "{s} = atomic{a64}_fetch_{name}(({sz} *)({d}{off:disp}), {s})",
        "xchg": "{s} = atomic{a64}_xchg(({sz} *)({d}{off:disp}), {s})",
        "cmpxchg": "{r0} = atomic{a64}_cmpxchg(({sz} *)({d}{off:disp}), {r0}, {s})",
    }.items()
}


# A template compiled once per form: (literal text, part name or None, how to format the part).
Pieces = tuple[tuple[str, "str | None", Callable[[object], str]], ...]


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
    # (form, annotate) -> its template, parsed on first use (string.Formatter would parse the
    # template again for every instruction, in Python).
    _compiled: dict[tuple[str, bool], Pieces] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def render(self, parts: Parts, annotate: bool = True) -> str:
        return self._render(parts.form, parts.values, parts.narrow, parts.data_regs, annotate)

    def _render(
        self,
        form: str,
        values: Mapping[str, object],
        narrow: bool,
        data_regs: tuple[str, ...],
        annotate: bool,
    ) -> str:
        pieces = self._compiled.get((form, annotate)) or self._compile(form, annotate)
        w = "w" if narrow and form in self.w_forms else "r"
        out = []
        for literal, name, fmt in pieces:
            if name is None:
                out.append(literal)
                continue
            value = values[name]
            if name in _REG_PARTS:
                value = f"{w if name in data_regs else 'r'}{value}"
            out.append(literal + fmt(value))
        return "".join(out)

    def _compile(self, form: str, annotate: bool) -> Pieces:
        template = self.templates.get(form) or self.templates[form.split(".")[0]]
        if annotate and form in self.annotations:
            template += self.annotations[form]
        pieces = []
        for literal, name, spec, conversion in string.Formatter().parse(template):
            if name is None:
                pieces.append((literal, None, str))
                continue
            # Templates name plain parts: no conversions, attributes or nested fields.
            assert name.isidentifier() and not conversion and "{" not in spec, template
            fmt = self.specs.get(spec) or (partial(_format, spec=spec) if spec else format)
            pieces.append((literal, name, fmt))
        self._compiled[form, annotate] = compiled = tuple(pieces)
        return compiled


def _format(value: object, spec: str) -> str:
    return format(value, spec)


_REG_PARTS = {"d", "s", "r0"}
_ALU32 = frozenset({"alu_k", "alu_x", "neg", "movsx", "jcond_k", "jcond_x"})
_ATOMIC32 = frozenset({"lock", "fetch", "xchg", "cmpxchg"})


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


def format_insn(
    insn: Insn, style: str = "llvm", *, annotate: bool = True, names: Names | None = None
) -> str:
    """One instruction as text, without index or bytes.

    With ``annotate=False`` the text is exactly llvm-objdump's (for the llvm styles), at the
    price of not telling local and kfunc calls from helper calls. ``names`` adds what the
    instruction alone cannot say (see `Names`): in bpftool syntax the callee's name and
    ``map[NAME]``, in llvm syntax a ``<NAME>`` note after a map load.
    """
    described = names.described(insn) if names else _described(insn)
    return _style(style)._render(*described, annotate)


def raw_bytes(insn: Insn) -> str:
    return insn.encode().hex(" ")


def format_program(
    insns: Iterable[Insn],
    *,
    with_index: bool = True,
    raw: bool = False,
    style: str = "llvm",
    annotate: bool = True,
    names: Names | None = None,
) -> str:
    """One line per instruction; the index is the slot number, as llvm-objdump and the kernel count.

    ``names``: as for `format_insn`.
    """
    st = _style(style)
    lines = []
    index = 0
    describe_insn = names.described if names else _described
    for insn in insns:
        try:
            text = st._render(*describe_insn(insn), annotate)
        except ISAError as e:
            raise ISAError(f"instruction {index}: {e}", index=index) from None
        if raw:
            text = st.raw.format(raw=raw_bytes(insn), text=text)
        lines.append(st.index.format(index=index) + text if with_index else text)
        index += 2 if insn.op == oc.LD_IMM64 else 1
    return "\n".join(lines) + ("\n" if lines else "")
