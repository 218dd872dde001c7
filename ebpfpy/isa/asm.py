"""Text to instructions: reads back what `disasm` (and `llvm-objdump -d`) prints.

The grammar is one table, `FAMILIES`: each row is a pattern written like the text it matches
(``"if {d} {jsym} {imm} goto {target}"``) and a small function that builds the `Insn` from the
named pieces. `_compile` turns a pattern into a regex: literal words and punctuation must
appear as written, whitespace between them is free, and each ``{piece}`` becomes the sub-regex
from `PIECES`; a piece used twice must repeat the same text (``{d} = -{d}``).

Besides instructions a line may hold a label (``name:``), an llvm-objdump symbol header
(``0000000000000048 <mix>:``), nothing, or a comment (``;``, ``#``, ``//``). A leading slot
index (``12:``), a raw-bytes column and a trailing ``<label+0x58>`` annotation are ignored, and
so are objdump's section headers and relocation lines: its output assembles as is (sections one
after the other). Jump targets are ``+N``/``-N`` slots or a label name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import opcodes as oc
from .disasm import ALU_SYMBOLS, ATOMIC_NAMES, JMP_SYMBOLS, SIGNED_ALU_SYMBOLS
from .errors import ISAError
from .insn import Insn

_NUM = r"[+-]?\s*(?:0[xX][0-9a-fA-F]+|\d+)"
_IDENT = r"[A-Za-z_.$][\w.$]*"


def _alternatives(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# (operation, off) for each ALU symbol; off=1 marks the signed division forms.
ALU_BY_SYMBOL = {sym: (op, 0) for op, sym in ALU_SYMBOLS.items()} | {
    sym: (op, 1) for op, sym in SIGNED_ALU_SYMBOLS.items()
}
JMP_BY_SYMBOL = {sym: op for op, sym in JMP_SYMBOLS.items()}
ATOMIC_BY_NAME = {name: op for op, name in ATOMIC_NAMES.items()}
SIZE_BY_BITS = {8: oc.Size.B, 16: oc.Size.H, 32: oc.Size.W, 64: oc.Size.DW}

PIECES = {
    "d": r"[rw]\d+",
    "s": r"[rw]\d+",
    "r0": r"[rw]0",
    "imm": _NUM,
    "lo": _NUM,
    "to": _NUM,
    "from": _NUM,
    "pseudo": _NUM,
    "target": rf"[+-]\s*(?:0[xX][0-9a-fA-F]+|\d+)|{_IDENT}",
    "callee": rf"{_NUM}|{_IDENT}",
    "disp": r"[+-]\s*(?:0[xX][0-9a-fA-F]+|\d+)",
    "sz": r"[us](?:8|16|32|64)",
    "bits": r"8|16|32|64",
    "kind": r"le|be|bswap",
    "name": _alternatives(ATOMIC_BY_NAME),
    "xs": r"_64|32_32",
    "alusym": _alternatives(ALU_BY_SYMBOL),
    "jsym": _alternatives(JMP_BY_SYMBOL),
}
# Optional pieces carry their own named group.
OPTIONAL_PIECES = {
    "optdisp": rf"(?:\s*(?P<disp>{PIECES['disp']}))?",  # ld_ind: skb[r2] or skb[r2 + 0x7]
    "opthi": rf"(?:\s*,\s*(?P<hi>{_NUM}))?",  # ld_pseudo's upper word, when not zero
}


def _compile(pattern: str) -> re.Pattern[str]:
    """Pattern text to an anchored regex; whitespace is optional between any two tokens."""
    seen: set[str] = set()

    def token(tok: str) -> str:
        if not (tok.startswith("{") and tok.endswith("}")):
            return re.escape(tok)
        name = tok[1:-1]
        if name in OPTIONAL_PIECES:
            return OPTIONAL_PIECES[name]
        if name in seen:  # a repeated piece must repeat the same text
            return f"(?P={name})"
        seen.add(name)
        return f"(?P<{name}>{PIECES[name]})"

    return re.compile(r"\s*" + r"\s*".join(map(token, _tokens(pattern))) + r"\s*$")


def _tokens(pattern: str) -> list[str]:
    return re.findall(r"\{\w+\}|\w+|\S", pattern)


@dataclass(slots=True)
class _Line:
    """The pieces of one matched line, with the conversions every builder needs."""

    groups: dict[str, str | None]
    at: int  # slot index of this instruction
    labels: dict[str, int]
    note: str = ""  # the trailing <...> annotation, if any

    def num(self, name: str, default: int = 0) -> int:
        text = self.groups.get(name)
        return default if text is None else int(text.replace(" ", ""), 0)

    def reg(self, name: str) -> int:
        n = int(self.groups[name][1:])  # type: ignore[index]
        if n > 10:
            raise ISAError(f"no register {self.groups[name]}")
        return n

    def wide(self, *names: str) -> bool:
        """64-bit (r) or 32-bit (w) operation; all named registers must agree."""
        kind = None
        for name in names:
            text = self.groups.get(name)
            if text:
                if kind is None:
                    kind = text[0]
                elif text[0] != kind:
                    raise ISAError("mixes r and w registers")
        return kind != "w"

    def size(self) -> oc.Size:
        return SIZE_BY_BITS[int(self.groups["sz"][1:])]  # type: ignore[index]

    def relative(self, name: str) -> int:
        """A jump target as an offset from the next slot."""
        text = self.groups[name] or ""
        if text in self.labels:
            return self.labels[text] - (self.at + 1)
        if text[:1] in "+-" or text[:1].isdigit():
            return int(text.replace(" ", ""), 0)
        raise ISAError(f"unknown label {text!r}")


def _alu_class(line: _Line, *regs: str) -> oc.Class:
    return oc.Class.ALU64 if line.wide(*regs) else oc.Class.ALU


def _alu(line: _Line, source: oc.Source) -> Insn:
    operation, off = ALU_BY_SYMBOL[line.groups["alusym"]]  # type: ignore[index]
    if source == oc.Source.X:
        op = oc.alu(operation, source, _alu_class(line, "d", "s"))
        return Insn(op, line.reg("d"), line.reg("s"), off)
    return Insn(
        oc.alu(operation, source, _alu_class(line, "d")),
        line.reg("d"),
        0,
        off,
        line.num("imm"),
    )


def _neg(line: _Line) -> Insn:
    return Insn(oc.alu(oc.AluOp.NEG, oc.Source.K, _alu_class(line, "d")), line.reg("d"))


def _movsx(line: _Line) -> Insn:
    op = oc.alu(oc.AluOp.MOV, oc.Source.X, _alu_class(line, "d", "s"))
    return Insn(op, line.reg("d"), line.reg("s"), line.num("bits"))


def _addr_space_cast(line: _Line) -> Insn:
    imm = (line.num("to") << 16) | line.num("from")
    return Insn(
        oc.alu(oc.AluOp.MOV, oc.Source.X),
        line.reg("d"),
        line.reg("s"),
        oc.ADDR_SPACE_CAST,
        imm,
    )


def _percpu(line: _Line) -> Insn:
    return Insn(
        oc.alu(oc.AluOp.MOV, oc.Source.X), line.reg("d"), line.reg("s"), oc.ADDR_PERCPU
    )


def _end(line: _Line) -> Insn:
    kind = line.groups["kind"]
    klass = oc.Class.ALU64 if kind == "bswap" else oc.Class.ALU
    source = oc.Source.X if kind == "be" else oc.Source.K
    return Insn(
        oc.alu(oc.AluOp.END, source, klass), line.reg("d"), imm=line.num("bits")
    )


def _ja(line: _Line) -> Insn:
    return Insn(oc.jmp(oc.JmpOp.JA), off=line.relative("target"))


def _gotol(line: _Line) -> Insn:
    return Insn(
        oc.jmp(oc.JmpOp.JA, oc.Source.K, oc.Class.JMP32), imm=line.relative("target")
    )


def _may_goto(line: _Line) -> Insn:
    return Insn(oc.jmp(oc.JmpOp.JCOND), off=line.relative("target"))


def _callx(line: _Line) -> Insn:
    return Insn(oc.jmp(oc.JmpOp.CALL, oc.Source.X), line.reg("d"))


def _jcond(line: _Line, source: oc.Source) -> Insn:
    operation = JMP_BY_SYMBOL[line.groups["jsym"]]  # type: ignore[index]
    if source == oc.Source.X:
        klass = oc.Class.JMP if line.wide("d", "s") else oc.Class.JMP32
        return Insn(
            oc.jmp(operation, source, klass),
            line.reg("d"),
            line.reg("s"),
            line.relative("target"),
        )
    klass = oc.Class.JMP if line.wide("d") else oc.Class.JMP32
    return Insn(
        oc.jmp(operation, source, klass),
        line.reg("d"),
        0,
        line.relative("target"),
        line.num("imm"),
    )


def _call(line: _Line) -> Insn:
    callee = line.groups["callee"] or ""
    op = oc.jmp(oc.JmpOp.CALL)
    if callee in line.labels:  # a subprogram of this program
        return Insn(op, src=oc.CallKind.LOCAL, imm=line.relative("callee"))
    if not re.fullmatch(_NUM, callee):
        return Insn(op, imm=_helper_id(callee))
    # The disassembler's note says which kind of call a bare number is (see disasm).
    note = _CALL_NOTE.fullmatch(line.note)
    if note is None:
        raise ISAError(f"unknown call annotation <{line.note}>")
    kind = oc.CallKind[(note.group("kind") or "helper").upper()]
    off = int(note.group("off").replace(" ", ""), 0) if note.group("off") else 0
    return Insn(op, src=kind, off=off, imm=line.num("callee"))


_CALL_NOTE = re.compile(rf"(?:(?P<kind>local|kfunc)(?:,\s*(?P<off>{_NUM}))?)?")


def _helper_id(name: str) -> int:
    try:
        from .helpers import UnknownHelperError, helper  # loaded only for names
    except ImportError:
        raise ISAError(
            f"unknown label {name!r} (and no helper table to look it up)"
        ) from None
    try:
        return helper(name).id
    except UnknownHelperError as e:
        raise ISAError(f"{e.args[0]} (and no label of that name)") from None


def _exit(line: _Line) -> Insn:
    return Insn(oc.jmp(oc.JmpOp.EXIT))


def _ldimm64(line: _Line) -> Insn:
    return Insn(oc.LD_IMM64, line.reg("d"), imm=line.num("imm"))


def _ld_pseudo(line: _Line) -> Insn:
    imm = ((line.num("hi") & 0xFFFF_FFFF) << 32) | (line.num("lo") & 0xFFFF_FFFF)
    return Insn(
        oc.LD_IMM64, line.reg("d"), line.num("pseudo"), imm=imm
    )  # Insn folds it to signed


def _ld_abs(line: _Line) -> Insn:
    return Insn(oc.mem(oc.Class.LD, line.size(), oc.Mode.ABS), imm=line.num("imm"))


def _ld_ind(line: _Line) -> Insn:
    return Insn(
        oc.mem(oc.Class.LD, line.size(), oc.Mode.IND),
        src=line.reg("s"),
        imm=line.num("disp"),
    )


def _ldx(line: _Line) -> Insn:
    signed = (line.groups["sz"] or "").startswith("s")
    op = oc.mem(oc.Class.LDX, line.size(), oc.Mode.MEMSX if signed else oc.Mode.MEM)
    return Insn(op, line.reg("d"), line.reg("s"), line.num("disp"))


def _st(line: _Line) -> Insn:
    return Insn(
        oc.mem(oc.Class.ST, line.size()),
        line.reg("d"),
        0,
        line.num("disp"),
        line.num("imm"),
    )


def _stx(line: _Line) -> Insn:
    return Insn(
        oc.mem(oc.Class.STX, line.size()),
        line.reg("d"),
        line.reg("s"),
        line.num("disp"),
    )


def _atomic(line: _Line, imm: int, sz: str | None = None) -> Insn:
    """`sz` for xchg/cmpxchg, whose names (xchg_64, xchg32_32) say the size instead of a cast."""
    size = SIZE_BY_BITS[int(sz[1:])] if sz else line.size()
    op = oc.mem(oc.Class.STX, size, oc.Mode.ATOMIC)
    return Insn(op, line.reg("d"), line.reg("s"), line.num("disp"), imm)


def _lock(line: _Line) -> Insn:
    return _atomic(line, ALU_BY_SYMBOL[line.groups["alusym"]][0])  # type: ignore[index]


def _fetch(line: _Line) -> Insn:
    return _atomic(line, ATOMIC_BY_NAME[line.groups["name"]] | oc.FETCH)  # type: ignore[index]


def _xchg_size(line: _Line) -> str:
    return "u64" if line.groups["xs"] == "_64" else "u32"


def _xchg(line: _Line) -> Insn:
    return _atomic(line, oc.AtomicOp.XCHG, _xchg_size(line))


def _cmpxchg(line: _Line) -> Insn:
    return _atomic(line, oc.AtomicOp.CMPXCHG, _xchg_size(line))


K, X = oc.Source.K, oc.Source.X

# family -> (pattern, builder). Every pattern is anchored at both ends, so no two match the
# same text and the order does not matter.
FAMILIES: dict[str, tuple[str, Callable[[_Line], Insn]]] = {
    "alu_k":           ("{d} {alusym} {imm}",                                  lambda ln: _alu(ln, K)),
    "alu_x":           ("{d} {alusym} {s}",                                    lambda ln: _alu(ln, X)),
    "neg":             ("{d} = -{d}",                                          _neg),
    "movsx":           ("{d} = (s{bits}){s}",                                  _movsx),
    "addr_space_cast": ("{d} = addr_space_cast({s}, {to}, {from})",            _addr_space_cast),
    "percpu":          ("{d} = &(void __percpu *)({s})",                       _percpu),
    "end":             ("{d} = {kind}{bits} {d}",                              _end),
    "ja":              ("goto {target}",                                       _ja),
    "gotol":           ("gotol {target}",                                      _gotol),
    "may_goto":        ("may_goto {target}",                                   _may_goto),
    "jcond_k":         ("if {d} {jsym} {imm} goto {target}",                   lambda ln: _jcond(ln, K)),
    "jcond_x":         ("if {d} {jsym} {s} goto {target}",                     lambda ln: _jcond(ln, X)),
    "call":            ("call {callee}",                                       _call),
    "callx":           ("callx {d}",                                           _callx),
    "exit":            ("exit",                                                _exit),
    "ldimm64":         ("{d} = {imm} ll",                                      _ldimm64),
    "ld_pseudo":       ("ld_pseudo {d}, {pseudo}, {lo}{opthi}",                _ld_pseudo),
    "ld_abs":          ("r0 = *({sz} *)skb[{imm}]",                            _ld_abs),
    "ld_ind":          ("r0 = *({sz} *)skb[{s}{optdisp}]",                     _ld_ind),
    "ldx":             ("{d} = *({sz} *)({s}{disp})",                          _ldx),
    "st":              ("*({sz} *)({d}{disp}) = {imm}",                        _st),
    "stx":             ("*({sz} *)({d}{disp}) = {s}",                          _stx),
    "lock":            ("lock *({sz} *)({d}{disp}) {alusym} {s}",              _lock),
    "fetch":           ("{s} = atomic_fetch_{name}(({sz} *)({d}{disp}), {s})", _fetch),
    "xchg":            ("{s} = xchg{xs}({d}{disp}, {s})",                      _xchg),
    "cmpxchg":         ("{r0} = cmpxchg{xs}({d}{disp}, {r0}, {s})",            _cmpxchg),
}  # fmt: skip


# The characters a line can start with when its first token is one of these pieces.
_PIECE_STARTS = {"d": "rw", "s": "rw", "r0": "rw"}

Family = tuple[str, re.Pattern[str], Callable[[_Line], Insn]]


@functools.cache
def _compiled() -> tuple[dict[str, list[Family]], list[Family]]:
    """The grammar as regexes, grouped by the first character a matching line can have.

    Compiled on first use so importing the ISA stays cheap. A line is only tried against the
    families of its first character (plus any whose first piece could start with anything),
    in the order of `FAMILIES`, so the first match is the one trying them all would find.
    """
    by_start: dict[str, list[Family]] = {}
    anywhere: list[Family] = []
    for name, (pattern, build) in FAMILIES.items():
        family = (name, _compile(pattern), build)
        first = _tokens(pattern)[0]
        if first.startswith("{"):
            starts = _PIECE_STARTS.get(first[1:-1])
        else:
            starts = first[0]
        if starts is None:
            anywhere.append(family)
            for group in by_start.values():
                group.append(family)
            continue
        for char in starts:
            by_start.setdefault(char, list(anywhere)).append(family)
    return by_start, anywhere


_TWO_SLOTS = {"ldimm64", "ld_pseudo"}
# Forms whose instruction depends on where the line is (a jump target, a callee that may be a
# label). Every other form depends on the line's text alone, so assemble() builds each distinct
# text once: a program repeats its loads, stores and moves many times over.
_POSITIONAL = {
    name
    for name, (pattern, _) in FAMILIES.items()
    if "{target}" in pattern or "{callee}" in pattern
}

# Line furniture: comments, objdump's index and raw-bytes columns, its <label> annotations,
# and whole lines of objdump's that are not code (headers, `-r` relocations).
_NOT_CODE = re.compile(
    r"^\s*(?:Disassembly of section .*:|\S.*:\s+file format \S+|[0-9a-fA-F]+:\s+R_BPF_\w+\s.*)\s*$"
)
_COMMENT = re.compile(r"\s*(?://|;|#).*$")
_INDEX = re.compile(r"^\s*\d+:\s*(?:(?:[0-9a-fA-F]{2}[ \t]+){8}){1,2}|^\s*\d+:\s*")
_ANNOTATION = re.compile(r"\s*<(?P<note>[^<>]*)>\s*$")
_LABEL = re.compile(
    rf"^\s*(?:[0-9a-fA-F]+\s+<(?P<sym>[^<>]+)>|(?P<label>{_IDENT})):\s*$"
)


def assemble(text: str) -> list[Insn]:
    """Parse assembler text into instructions; errors name the line number and its text."""
    parsed: list[tuple[int, str, Family, re.Match[str], str, int]] = []
    labels: dict[str, int] = {}
    at = 0
    by_start, anywhere = _compiled()
    seen: dict[str, tuple[Family, re.Match[str]]] = {}  # line text -> its family and match
    for lineno, raw in enumerate(text.splitlines(), 1):
        # The furniture regexes only run on lines with the character each one needs.
        if ":" in raw and _NOT_CODE.match(raw):
            continue
        line = _COMMENT.sub("", raw) if ("/" in raw or ";" in raw or "#" in raw) else raw
        if ":" in line:
            line = _INDEX.sub("", line, count=1)
        annotation = _ANNOTATION.search(line) if "<" in line else None
        note = annotation.group("note") if annotation else ""
        line = line[: annotation.start()] if annotation else line
        stripped = line.lstrip()
        if not stripped:
            continue
        label = _LABEL.match(line) if ":" in line else None
        if label:
            name = label.group("sym") or label.group("label")
            if name in labels:
                raise ISAError(
                    f"line {lineno}: label {name!r} defined twice", line=lineno
                )
            labels[name] = at
            continue
        found = seen.get(line)
        if found is None:
            for family in by_start.get(stripped[0], anywhere):
                m = family[1].match(line)
                if m:
                    found = seen[line] = (family, m)
                    break
            else:
                raise ISAError(f"line {lineno}: cannot parse {raw.strip()!r}", line=lineno)
        family, m = found
        parsed.append((lineno, raw, family, m, note, at))
        at += 2 if family[0] in _TWO_SLOTS else 1
    insns = []
    built: dict[tuple[str, str], Insn] = {}  # (text, note) -> instruction, for other forms
    for lineno, raw, (name, _, build), m, note, at in parsed:
        by_text = name not in _POSITIONAL
        insn = built.get((m.string, note)) if by_text else None
        if insn is None:
            try:
                insn = build(_Line(m.groupdict(), at, labels, note))
                insn.check()
            except ISAError as e:
                raise ISAError(
                    f"line {lineno}: {e} in {raw.strip()!r}", line=lineno
                ) from None
            if by_text:
                built[m.string, note] = insn
        insns.append(insn)
    return insns
