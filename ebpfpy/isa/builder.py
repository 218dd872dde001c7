"""Write BPF programs in Python, one method per instruction, with labels and late-bound maps.

Jumps name labels, calls name helpers, map loads name maps; nothing is turned into numbers until
``build()``. That keeps the program readable while it is written (``b.jeq(R0, 0, "out")``) and lets
the builder count slots once, correctly (``ld_imm64`` takes two), instead of every caller doing
offset arithmetic by hand.

Every instruction also remembers the source span and comments active when it was emitted, so a
verifier error at instruction *n* can be traced back to the line that produced it.

Example::

    b = Builder()
    b.mov(R0, 0)
    b.jeq(R1, 0, "out")
    b.mov(R0, 1)
    b.label("out")
    b.exit()
    insns = b.build()

Opcode numbers follow RFC 9669 (the few this module needs are spelled out below).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ebpfpy.isa.errors import ISAError
from ebpfpy.isa.helpers import Helper, UnknownHelperError, helper
from ebpfpy.isa.insn import FAST_NEW, Insn, _normalise, _trusted, _Unfrozen, _usual_fields
from ebpfpy.isa.opcodes import (
    FETCH,
    LD_IMM64,
    AluOp,
    AtomicOp,
    CallKind,
    Class,
    JmpOp,
    Mode,
    Pseudo,
    Size,
    Source,
)

Span = tuple[int, int, int]  # (line, first column, last column)


class BuildError(ISAError):
    """A program that cannot be assembled: unknown or duplicate label, jump too far, bad operand.

    ``index`` is the slot index of the offending instruction (the number the verifier log uses);
    ``label`` the label involved, if any. An ``ISAError``, hence a ``ValueError``.
    """

    def __init__(
        self, message: str, index: int | None = None, label: str | None = None
    ):
        where = f"insn {index}: " if index is not None else ""
        super().__init__(where + message, index=index)
        self.label = label


@dataclass(frozen=True)
class Reg:
    """A register operand. Use the module constants ``R0`` .. ``R10`` (``FP`` is ``R10``)."""

    n: int

    def __post_init__(self) -> None:
        # The number as the builder's fast paths take it (None: not a register, the general path
        # explains). Not a field: equality, hashing and repr are the dataclass's, on ``n``.
        n = self.n
        object.__setattr__(self, "_number", int(n) if isinstance(n, int) and 0 <= n <= 10 else None)

    def __repr__(self) -> str:
        return f"r{self.n}"


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = (Reg(i) for i in range(11))
FP = R10
REGS = (R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10)

Operand = Reg | int
SizeSpec = str | int

# Names the builder accepts, mapped onto the opcode fields of `opcodes` (RFC 9669).
_SIZE_ALIASES: dict[Any, Size] = {
    1: Size.B,
    2: Size.H,
    4: Size.W,
    8: Size.DW,
    "b": Size.B,
    "h": Size.H,
    "w": Size.W,
    "dw": Size.DW,
    "u8": Size.B,
    "u16": Size.H,
    "u32": Size.W,
    "u64": Size.DW,
}
# ALU operation name -> (operation, off). Signed division and modulo reuse div/mod with off=1
# (RFC 9669 section 4.1); neg and end have methods of their own.
_ALU_FORMS = {
    op.name.lower(): (int(op), 0) for op in AluOp if op not in (AluOp.NEG, AluOp.END)
} | {"sdiv": (int(AluOp.DIV), 1), "smod": (int(AluOp.MOD), 1)}
_ALU, _ALU64, _X = int(Class.ALU), int(Class.ALU64), int(Source.X)
_LDX_MEM, _STX_MEM = int(Class.LDX | Mode.MEM), int(Class.STX | Mode.MEM)
_CONDITIONS = {
    op.name[1:].lower(): op
    for op in JmpOp
    if op not in (JmpOp.JA, JmpOp.CALL, JmpOp.EXIT)
}
_ATOMIC_OPS = {
    "add": AtomicOp.ADD,
    "or": AtomicOp.OR,
    "and": AtomicOp.AND,
    "xor": AtomicOp.XOR,
    "xchg": AtomicOp.XCHG,
    "cmpxchg": AtomicOp.CMPXCHG,
}
_CALL = Class.JMP | JmpOp.CALL

_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)


def _size(size: SizeSpec) -> Size:
    try:
        return _SIZE_ALIASES[size]
    except (KeyError, TypeError):
        raise BuildError(
            f"bad access size {size!r}: use 1/2/4/8 or 'b'/'h'/'w'/'dw'"
        ) from None


def _reg(value: Any, what: str = "register") -> int:
    """The register number, a plain int in 0..10 (so the instruction can skip its own checks)."""
    if isinstance(value, Reg):
        n = value.n
        if type(n) is int and 0 <= n <= 10:
            return n
        if isinstance(n, int) and 0 <= n <= 10:
            return int(n)  # a bool or IntEnum number: stored as the int it stands for
    raise BuildError(f"{what} must be one of R0..R10, not {value!r}")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _imm32(value: int, wide: bool) -> int:
    """Check an immediate and return it as the signed 32-bit field.

    A 64-bit operation sign-extends its immediate, so ``mov r1, 0x80000000`` would set r1 to
    0xffffffff80000000. We refuse that instead of surprising the writer; 32-bit operations may use
    the full unsigned range.
    """
    if type(value) is int and _S32[0] <= value <= _S32[1]:
        return value  # already the signed field (the common case, checked first)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BuildError(f"immediate must be an int or a register, not {value!r}")
    top = _S32[1] if wide else (1 << 32) - 1
    if not _S32[0] <= value <= top:
        hint = "; load it with ld_imm64 into a register" if wide else ""
        raise BuildError(f"immediate {value:#x} does not fit the 32-bit field{hint}")
    return _signed(value, 32)


def _off16(value: int) -> int:
    """The offset as a plain int (so the instruction can skip its own checks)."""
    if not _S16[0] <= value <= _S16[1]:
        raise BuildError(f"offset {value} does not fit 16 bits")
    return value if type(value) is int else _normalise(value, 16, "offset", unsigned_ok=False)


@dataclass(frozen=True)
class _Fixup:
    """What ``build()`` still has to fill into one instruction: a jump offset, a map fd..."""

    kind: str | None  # "jump", "gotol", "call", "func", "map_fd", "map_value" (None: nothing)
    target: str | None = None  # label for jump/gotol/call/func
    map_ref: Any = None  # map object (has .fd) or name, for map_fd/map_value
    map_offset: int = 0


_NO_FIXUP = _Fixup(None)


@dataclass(frozen=True)
class _Item:
    """One emitted instruction with its metadata: the read-only view ``Builder._items`` gives."""

    insn: Insn
    fixup: str | None = None
    target: str | None = None
    map_ref: Any = None
    map_offset: int = 0
    span: Span | None = None
    comments: tuple[str, ...] = ()

    @property
    def slots(self) -> int:
        return 2 if self.insn.op == LD_IMM64 else 1


# -- the fast paths ----------------------------------------------------------------------------
# The methods that emit the common instructions (ALU, loads and stores, conditional jumps, exit)
# first try a fast path for the usual operands: a register (its number checked once, when it was
# made: ``Reg._number``), an int immediate in the signed 32-bit range, an int offset in 16 bits.
# Anything else (odd operands, and every error) goes to the general code, whose checks and
# messages are the reference.
#
# The fast path appends an `Insn` and does nothing else. Instructions are immutable, so the same
# instruction emitted twice is the same object: each builder keeps the ones it made by their
# fields, which saves making (and the garbage collector tracking) one object per
# emitted instruction; a new one is made without `Insn()`'s checks (insn._Unfrozen).
#
# Opcodes whose instructions are valid for *every* operand the fast path lets through,
# according to the table `Insn.check` itself starts from, are trusted: build() does not check
# them again (it checks every other instruction, and every one it patches).
_FIELDS_REGS = frozenset(range(11))


def _always_valid(op: int, src_is_reg: bool, off: int | None, imm_is_zero: bool, dst_is_reg: bool = True) -> bool:
    """Whether `Insn.check` accepts (op, dst, src, off, imm) at its first test.

    dst, src: any register of R0..R10 (``*_is_reg``) or 0; off: that value, or any (None); imm:
    0 or any."""
    usual = _usual_fields(op)
    if usual is None:
        return False
    dsts, srcs, offs, imms = usual
    if not (_FIELDS_REGS <= dsts if dst_is_reg else 0 in dsts):
        return False
    if not (_FIELDS_REGS <= srcs if src_is_reg else 0 in srcs):
        return False
    if offs is not None and (off is None or off not in offs):
        return False
    return imms is None or (imm_is_zero and 0 in imms)


def _trusted_op(op: int, src_is_reg: bool, off: int | None, imm_is_zero: bool) -> int | None:
    """``op`` when the fast path may emit it unchecked, else None (then the general path runs)."""
    return op if _always_valid(op, src_is_reg, off, imm_is_zero) else None


def _alu_forms(wide: bool) -> dict[str, tuple[int | None, int | None, int]]:
    """name -> (opcode with an immediate, opcode with a register, off), fast-path-safe ones only."""
    forms = {}
    for name, (operation, off) in _ALU_FORMS.items():
        code = (_ALU64 if wide else _ALU) | operation
        forms[name] = (_trusted_op(code, False, off, False), _trusted_op(code | _X, True, off, True), off)
    return forms


_ALU_FAST = {True: _alu_forms(True), False: _alu_forms(False)}
_ALU64_FAST, _ALU32_FAST = _ALU_FAST[True], _ALU_FAST[False]
_LDX_FAST = {k: _trusted_op(_LDX_MEM | s, True, None, True) for k, s in _SIZE_ALIASES.items()}
_STX_FAST = {k: _trusted_op(_STX_MEM | s, True, None, True) for k, s in _SIZE_ALIASES.items()}
# ST: the immediate of an 8-byte store is sign-extended, so (as ALU64) only the signed range is
# taken on the fast path, which is what it takes for every size anyway.
_ST_FAST = {k: _trusted_op(int(Class.ST | Mode.MEM | s), False, None, False) for k, s in _SIZE_ALIASES.items()}


def _jump_forms(wide: bool) -> dict[str, tuple[int, int]]:
    """cond -> (opcode with an immediate, opcode with a register); jumps are checked in build()."""
    cls = Class.JMP if wide else Class.JMP32
    return {cond: (int(cls | Source.K | op), int(cls | Source.X | op)) for cond, op in _CONDITIONS.items()}


_JMP_FAST = {True: _jump_forms(True), False: _jump_forms(False)}
_EXIT = int(Class.JMP | JmpOp.EXIT)
_EXIT_TRUSTED = _always_valid(_EXIT, False, 0, True, dst_is_reg=False)
_EXIT_KEY = (_EXIT, 0, 0, 0, 0)
# Distinct instructions a builder keeps for reuse: a program of many more distinct ones gains
# little from sharing, and the table would cost memory and time of its own.
_KNOWN_MAX = 1 << 16


def _unchecked_insn(op: int, dst: int, src: int, off: int, imm: int) -> Insn:
    """An `Insn` from fields in range, made without `Insn()`'s checks, the fastest way there is."""
    insn = _Unfrozen()
    insn.op, insn.dst, insn.src, insn.off, insn.imm = op, dst, src, off, imm
    insn.__class__ = Insn
    return insn


if not FAST_NEW:
    _unchecked_insn = _trusted  # an interpreter that does not let the class change


def _alu_method(name: str, wide: bool):
    k_code, x_code, off = _ALU_FAST[wide][name]

    def method(self: Builder, dst: Reg, src: Operand) -> None:
        try:
            d = dst._number
        except AttributeError:
            d = None
        if d is not None:
            if type(src) is not int:
                try:
                    s = src._number
                except AttributeError:
                    s = None
                if s is not None and x_code is not None:
                    key = (x_code, d, s, off, 0)
                    try:
                        insn = self._known[key]
                    except KeyError:
                        insn = self._made(key, x_code, d, s, off, 0)
                    self._insns.append(insn)
                    return
            elif -0x8000_0000 <= src <= 0x7FFF_FFFF and k_code is not None:
                key = (k_code, d, 0, off, src)
                try:
                    insn = self._known[key]
                except KeyError:
                    insn = self._made(key, k_code, d, 0, off, src)
                self._insns.append(insn)
                return
        self.alu(name, dst, src, wide=wide)

    method.__name__ = name + ("" if wide else "32")
    method.__doc__ = f"``dst {name}= src`` on {'64' if wide else '32'} bits (src: register or immediate)."
    return method


def _jump_method(cond: str, wide: bool):
    k_code, x_code = _JMP_FAST[wide][cond]

    def method(self: Builder, dst: Reg, src: Operand, label: str) -> None:
        try:
            d = dst._number
        except AttributeError:
            d = None
        if d is not None:
            s = None
            if type(src) is not int:
                try:
                    s = src._number
                except AttributeError:
                    pass
            if s is not None:
                key = (x_code, d, s, 0, 0)
                try:
                    insn = self._known[key]
                except KeyError:
                    insn = self._made(key, x_code, d, s, 0, 0)
            elif type(src) is int and -0x8000_0000 <= src <= 0x7FFF_FFFF:
                key = (k_code, d, 0, 0, src)
                try:
                    insn = self._known[key]
                except KeyError:
                    insn = self._made(key, k_code, d, 0, 0, src)
            else:
                return self.jmp(cond, dst, src, label, wide=wide)
            insns = self._insns
            self._fixups[len(insns)] = ("jump", label, None, 0)  # build() fills in (and checks) it
            insns.append(insn)
            return None
        return self.jmp(cond, dst, src, label, wide=wide)

    method.__name__ = "j" + cond + ("" if wide else "32")
    method.__doc__ = f"Jump to ``label`` if ``dst {cond} src`` ({'64' if wide else '32'}-bit compare)."
    return method


def _atomic_method(name: str):
    def method(
        self: Builder,
        size: SizeSpec,
        dst: Reg,
        src: Reg,
        off: int = 0,
        fetch: bool = False,
    ) -> None:
        self.atomic(name, size, dst, src, off, fetch=fetch)

    method.__name__ = "atomic_" + name
    method.__doc__ = f"Atomic ``*(size *)(dst + off) {name}= src``; with ``fetch`` the old value lands in src."
    return method


class Builder:
    """Collects instructions with symbolic labels, helper names and map references."""

    def __init__(self) -> None:
        # One entry per emitted instruction, and nothing else per instruction: the rest is kept
        # only where there is something (fixups, comments, the two-slot LD_IMM64s) or as runs
        # (spans), so a million-instruction program costs a million Insn and a list.
        self._insns: list[Insn] = []  # as emitted, before build() fills in the fixups
        self._wide: list[int] = []  # indices of the LD_IMM64s (two slots each), ascending
        self._unchecked: list[int] = []  # indices build() must Insn.check() (not fast-path ones)
        self._known: dict[tuple, Insn] = {}  # (op, dst, src, off, imm) -> the Insn (fast paths)
        self._fixups: dict[int, tuple] = {}  # index -> (kind, target, map_ref, map_offset)
        self._notes: dict[int, tuple[str, ...]] = {}  # index -> comments (len(_insns): pending)
        self._span: Span | None = None
        self._span_runs: list[tuple[int, Span | None]] = [(0, None)]  # (first index, span), ascending
        self._labels: dict[str, int] = {}  # label -> slot of the instruction it precedes
        self._counter = itertools.count(1)
        self.spans: list[Span | None] = []
        self.comments: dict[int, tuple[str, ...]] = {}
        self.label_slots: dict[str, int] = {}
        self.subprograms: list[int] = []

    # --- bookkeeping ---------------------------------------------------------------------------
    @property
    def span(self) -> Span | None:
        """The source span given to the instructions emitted from now on (see `at`)."""
        return self._span

    @span.setter
    def span(self, value: Span | None) -> None:
        self._span = value
        runs, here = self._span_runs, len(self._insns)
        if runs[-1][0] == here:
            runs[-1] = (here, value)  # nothing emitted under the previous span since it was set
        elif runs[-1][1] is not value:
            runs.append((here, value))

    @property
    def pc(self) -> int:
        """Slot index the next instruction will get."""
        return len(self._insns) + len(self._wide)

    def __len__(self) -> int:
        return len(self._insns)

    def _spans_per_insn(self) -> list[Span | None]:
        n, out = len(self._insns), []
        runs = self._span_runs
        for j, (start, span) in enumerate(runs):
            stop = runs[j + 1][0] if j + 1 < len(runs) else n
            out.extend(itertools.repeat(span, stop - start))
        return out

    @property
    def _items(self) -> list[_Item]:
        """The emitted instructions with their metadata, unresolved (for tests and debugging)."""
        out = []
        for i, (insn, span) in enumerate(zip(self._insns, self._spans_per_insn())):
            kind, target, map_ref, map_offset = self._fixups.get(i, (None, None, None, 0))
            out.append(_Item(insn, kind, target, map_ref, map_offset, span, self._notes.get(i, ())))
        return out

    def _made(self, key: tuple, op: int, dst: int, src: int, off: int, imm: int) -> Insn:
        """A new instruction for a fast path, kept for the next time (up to _KNOWN_MAX of them)."""
        insn = _unchecked_insn(op, dst, src, off, imm)
        if len(self._known) < _KNOWN_MAX:
            self._known[key] = insn
        return insn

    def _emit(
        self,
        insn: Insn,
        fixup: str | None = None,
        target: str | None = None,
        map_ref: Any = None,
        map_offset: int = 0,
    ) -> None:
        """The general path: build() checks the instruction (and fills in the fixup)."""
        i = len(self._insns)
        if fixup is not None:
            self._fixups[i] = (fixup, target, map_ref, map_offset)
        else:
            self._unchecked.append(i)
        if insn.op == LD_IMM64:
            self._wide.append(i)
        self._insns.append(insn)

    def insn(self, insn: Insn) -> None:
        """Append a ready-made instruction (no labels or maps to resolve)."""
        self._emit(insn)

    def mark(self) -> int:
        """The site of the next instruction to be emitted, for `with_imm`.

        A site is the instruction's position in emission order (not its slot number, which an
        LD_IMM64 before it would shift); it stays valid for copies made by `with_imm`.
        """
        return len(self._insns)

    def with_imm(self, sites: Iterable[int], value: int) -> Builder:
        """A copy of this builder in which the instructions at ``sites`` (from `mark`) have
        ``imm = value``.

        Why: a code generator that emits the same program for many targets that differ in one
        constant (pybpftrace's ``probe`` index, when one body serves 300 tracepoints) generates
        it once, marks where the constant goes, and stamps out a copy per target instead of
        generating again. Labels, map references, spans and comments come along; the copy and
        this builder share nothing that either can change. Only immediates the writer chose can
        be patched: one that ``build()`` fills in (a jump, call or map reference) is refused, as
        is a value the instruction cannot hold.
        """
        clone = copy.copy(self)
        clone._insns = insns = list(self._insns)
        clone._wide, clone._unchecked = list(self._wide), list(self._unchecked)
        clone._notes, clone._fixups = dict(self._notes), dict(self._fixups)
        clone._span_runs, clone._labels = list(self._span_runs), dict(self._labels)
        clone._counter = copy.copy(self._counter)
        clone._known = {}
        clone.spans, clone.comments = list(self.spans), dict(self.comments)
        clone.label_slots, clone.subprograms = dict(self.label_slots), list(self.subprograms)
        for site in sites:
            if not (isinstance(site, int) and 0 <= site < len(insns)):
                raise BuildError(f"no instruction at site {site!r}")
            if site in self._fixups:
                raise BuildError(
                    f"the immediate at site {site} is filled in by build() "
                    f"({self._fixups[site][0]}), it cannot be patched"
                )
            try:
                insns[site] = dataclasses.replace(insns[site], imm=value)
            except ISAError as e:
                raise BuildError(f"site {site}: {e}") from None
            clone._unchecked.append(site)  # a new immediate: build() checks it
        return clone

    def label(self, name: str) -> str:
        """Mark the position of the next instruction as ``name``."""
        if name in self._labels:
            raise BuildError(f"duplicate label {name!r}", index=self.pc, label=name)
        self._labels[name] = self.pc
        return name

    def fresh_label(self, hint: str = "L") -> str:
        """A label name not used yet, for code generators that need private jump targets."""
        while True:
            name = f".{hint}{next(self._counter)}"
            if name not in self._labels:
                return name

    def comment(self, text: str) -> None:
        """Attach ``text`` to the next instruction (shown beside it in annotated listings)."""
        here = len(self._insns)
        self._notes[here] = (*self._notes.get(here, ()), text)

    @contextlib.contextmanager
    def at(self, span: Span | None) -> Iterator[None]:
        """Tag every instruction emitted inside the block with ``span``."""
        saved, self.span = self.span, span
        try:
            yield
        finally:
            self.span = saved

    # --- ALU -----------------------------------------------------------------------------------
    def alu(self, op: str, dst: Reg, src: Operand, wide: bool = True) -> None:
        """Generic ALU instruction by name (``"add"``, ``"sdiv"``, ...); 64-bit unless ``wide=False``."""
        try:
            k_code, x_code, off = (_ALU64_FAST if wide else _ALU32_FAST)[op]
            d = dst._number
        except (KeyError, TypeError, AttributeError):
            d = None
        if d is not None:
            if type(src) is not int:
                try:
                    s = src._number
                except AttributeError:
                    s = None
                if s is not None and x_code is not None:
                    key = (x_code, d, s, off, 0)
                    try:
                        insn = self._known[key]
                    except KeyError:
                        insn = self._made(key, x_code, d, s, off, 0)
                    self._insns.append(insn)
                    return
            elif -0x8000_0000 <= src <= 0x7FFF_FFFF and k_code is not None:
                key = (k_code, d, 0, off, src)
                try:
                    insn = self._known[key]
                except KeyError:
                    insn = self._made(key, k_code, d, 0, off, src)
                self._insns.append(insn)
                return
        try:
            operation, off = _ALU_FORMS[op]
        except KeyError:
            raise BuildError(f"unknown ALU operation {op!r}") from None
        code = (_ALU64 if wide else _ALU) | operation
        d = _reg(dst, "destination")
        if isinstance(src, Reg):
            self._emit(_trusted(code | _X, d, _reg(src), off, 0))
        else:
            self._emit(_trusted(code, d, 0, off, _imm32(src, wide)))

    mov, mov32 = _alu_method("mov", True), _alu_method("mov", False)
    add, add32 = _alu_method("add", True), _alu_method("add", False)
    sub, sub32 = _alu_method("sub", True), _alu_method("sub", False)
    mul, mul32 = _alu_method("mul", True), _alu_method("mul", False)
    div, div32 = _alu_method("div", True), _alu_method("div", False)
    sdiv, sdiv32 = _alu_method("sdiv", True), _alu_method("sdiv", False)
    mod, mod32 = _alu_method("mod", True), _alu_method("mod", False)
    smod, smod32 = _alu_method("smod", True), _alu_method("smod", False)
    or_, or32 = _alu_method("or", True), _alu_method("or", False)
    and_, and32 = _alu_method("and", True), _alu_method("and", False)
    xor, xor32 = _alu_method("xor", True), _alu_method("xor", False)
    lsh, lsh32 = _alu_method("lsh", True), _alu_method("lsh", False)
    rsh, rsh32 = _alu_method("rsh", True), _alu_method("rsh", False)
    arsh, arsh32 = _alu_method("arsh", True), _alu_method("arsh", False)

    def neg(self, dst: Reg) -> None:
        self._emit(Insn(Class.ALU64 | AluOp.NEG, _reg(dst)))

    def neg32(self, dst: Reg) -> None:
        self._emit(Insn(Class.ALU | AluOp.NEG, _reg(dst)))

    def movsx(self, dst: Reg, src: Reg, bits: int, wide: bool = True) -> None:
        """Sign-extending move of the low ``bits`` (8, 16, 32) of src (RFC 9669 MOVSX)."""
        allowed = (8, 16, 32) if wide else (8, 16)
        if bits not in allowed:
            raise BuildError(f"movsx bits must be one of {allowed}, not {bits}")
        cls = Class.ALU64 if wide else Class.ALU
        self._emit(Insn(cls | Source.X | AluOp.MOV, _reg(dst), _reg(src), bits, 0))

    def _end(self, cls: int, source: int, dst: Reg, bits: int) -> None:
        if bits not in (16, 32, 64):
            raise BuildError(f"byte swap width must be 16, 32 or 64, not {bits}")
        self._emit(Insn(cls | source | AluOp.END, _reg(dst), 0, 0, bits))

    def to_le(self, dst: Reg, bits: int) -> None:
        """Convert dst from host order to little endian (a truncation on x86)."""
        self._end(Class.ALU, Source.K, dst, bits)

    def to_be(self, dst: Reg, bits: int) -> None:
        """Convert dst from host order to big endian (network order)."""
        self._end(Class.ALU, Source.X, dst, bits)

    def bswap(self, dst: Reg, bits: int) -> None:
        """Unconditional byte swap (RFC 9669: ALU64 class with the END operation)."""
        self._end(Class.ALU64, Source.K, dst, bits)

    # --- loads and stores ------------------------------------------------------------------------
    def ldx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``dst = *(size *)(src + off)``, zero-extended."""
        try:
            code = _LDX_FAST[size]
            d, s = dst._number, src._number
        except (KeyError, TypeError, AttributeError):
            code = None
        if code is not None and d is not None and s is not None and type(off) is int and -0x8000 <= off <= 0x7FFF:
            key = (code, d, s, off, 0)
            try:
                insn = self._known[key]
            except KeyError:
                insn = self._made(key, code, d, s, off, 0)
            self._insns.append(insn)
            return
        self._emit(_trusted(_LDX_MEM | _size(size), _reg(dst), _reg(src), _off16(off), 0))

    def ldx_sx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``dst = *(signed size *)(src + off)``, sign-extended (not for 8-byte loads)."""
        s = _size(size)
        if s == Size.DW:
            raise BuildError("ldx_sx needs a size of 1, 2 or 4 bytes")
        self._emit(Insn(Class.LDX | Mode.MEMSX | s, _reg(dst), _reg(src), _off16(off)))

    def stx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``*(size *)(dst + off) = src``."""
        try:
            code = _STX_FAST[size]
            d, s = dst._number, src._number
        except (KeyError, TypeError, AttributeError):
            code = None
        if code is not None and d is not None and s is not None and type(off) is int and -0x8000 <= off <= 0x7FFF:
            key = (code, d, s, off, 0)
            try:
                insn = self._known[key]
            except KeyError:
                insn = self._made(key, code, d, s, off, 0)
            self._insns.append(insn)
            return
        self._emit(_trusted(_STX_MEM | _size(size), _reg(dst), _reg(src), _off16(off), 0))

    def st(self, size: SizeSpec, dst: Reg, imm: int, off: int = 0) -> None:
        """``*(size *)(dst + off) = imm`` (an 8-byte store sign-extends the 32-bit immediate)."""
        try:
            code = _ST_FAST[size]
            d = dst._number
        except (KeyError, TypeError, AttributeError):
            code = None
        if (code is not None and d is not None and type(off) is int and -0x8000 <= off <= 0x7FFF
                and type(imm) is int and -0x8000_0000 <= imm <= 0x7FFF_FFFF):
            key = (code, d, 0, off, imm)
            try:
                insn = self._known[key]
            except KeyError:
                insn = self._made(key, code, d, 0, off, imm)
            self._insns.append(insn)
            return
        s = _size(size)
        code = Class.ST | Mode.MEM | s
        self._emit(_trusted(code, _reg(dst), 0, _off16(off), _imm32(imm, s == Size.DW)))

    def atomic(
        self,
        op: str,
        size: SizeSpec,
        dst: Reg,
        src: Reg,
        off: int = 0,
        fetch: bool = False,
    ) -> None:
        """Atomic read-modify-write on ``*(size *)(dst + off)``; only 4- and 8-byte sizes exist."""
        s = _size(size)
        if s not in (Size.W, Size.DW):
            raise BuildError("atomic operations need a size of 4 or 8 bytes")
        if op not in _ATOMIC_OPS:
            raise BuildError(f"unknown atomic operation {op!r}")
        imm = _ATOMIC_OPS[op] | (FETCH if fetch else 0)
        self._emit(
            Insn(Class.STX | Mode.ATOMIC | s, _reg(dst), _reg(src), _off16(off), imm)
        )

    atomic_add = _atomic_method("add")
    atomic_or = _atomic_method("or")
    atomic_and = _atomic_method("and")
    atomic_xor = _atomic_method("xor")

    def atomic_xchg(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """Swap src with ``*(size *)(dst + off)``."""
        self.atomic("xchg", size, dst, src, off)

    def atomic_cmpxchg(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """If ``*(dst + off) == r0`` store src there; r0 receives the old value either way."""
        self.atomic("cmpxchg", size, dst, src, off)

    def ld_imm64(self, dst: Reg, value: int) -> None:
        """Load a full 64-bit constant (two slots)."""
        if not -(1 << 63) <= value < (1 << 64):
            raise BuildError(f"ld_imm64 value {value:#x} does not fit 64 bits")
        self._emit(Insn(LD_IMM64, _reg(dst), 0, 0, _signed(value, 64)))

    def ld_map_fd(self, dst: Reg, map_ref: Any) -> None:
        """Load a map pointer; ``map_ref`` is an object with ``.fd`` or a name for ``build(maps=)``."""
        self._emit(
            Insn(LD_IMM64, _reg(dst), int(Pseudo.MAP_FD)),
            fixup="map_fd",
            map_ref=map_ref,
        )

    def ld_map_value(self, dst: Reg, map_ref: Any, offset: int = 0) -> None:
        """Load a pointer to byte ``offset`` of an array map's value 0 (direct value access)."""
        if not 0 <= offset < (1 << 31):
            raise BuildError(f"map value offset {offset} out of range")
        self._emit(
            Insn(LD_IMM64, _reg(dst), int(Pseudo.MAP_VALUE)),
            fixup="map_value",
            map_ref=map_ref,
            map_offset=offset,
        )

    def ld_func(self, dst: Reg, label: str) -> None:
        """Load the address of the subprogram at ``label`` (a callback for ``loop`` and friends)."""
        self._emit(
            Insn(LD_IMM64, _reg(dst), int(Pseudo.FUNC)), fixup="func", target=label
        )

    def ld_abs(self, size: SizeSpec, imm: int) -> None:
        """Legacy socket-filter packet load: ``r0 = ntoh(*(size *)(skb->data + imm))``."""
        self._emit(Insn(Class.LD | Mode.ABS | _size(size), 0, 0, 0, _imm32(imm, True)))

    def ld_ind(self, size: SizeSpec, src: Reg, imm: int) -> None:
        """Legacy socket-filter packet load: ``r0 = ntoh(*(size *)(skb->data + src + imm))``."""
        self._emit(
            Insn(Class.LD | Mode.IND | _size(size), 0, _reg(src), 0, _imm32(imm, True))
        )

    # --- jumps and calls -----------------------------------------------------------------------
    def jmp(
        self, cond: str, dst: Reg, src: Operand, label: str, wide: bool = True
    ) -> None:
        """Conditional jump by condition name (``"eq"``, ``"sgt"``, ...) to ``label``."""
        if cond not in _CONDITIONS:
            raise BuildError(
                f"unknown jump condition {cond!r}; one of {', '.join(_CONDITIONS)}"
            )
        cls = Class.JMP if wide else Class.JMP32
        d = _reg(dst, "jump operand")
        if isinstance(src, Reg):
            insn = _trusted(cls | Source.X | _CONDITIONS[cond], d, _reg(src), 0, 0)
        else:
            insn = _trusted(cls | Source.K | _CONDITIONS[cond], d, 0, 0, _imm32(src, wide))
        self._emit(insn, fixup="jump", target=label)

    def jmp32(self, cond: str, dst: Reg, src: Operand, label: str) -> None:
        """As ``jmp`` but comparing the low 32 bits."""
        self.jmp(cond, dst, src, label, wide=False)

    jeq, jeq32 = _jump_method("eq", True), _jump_method("eq", False)
    jne, jne32 = _jump_method("ne", True), _jump_method("ne", False)
    jgt, jgt32 = _jump_method("gt", True), _jump_method("gt", False)
    jge, jge32 = _jump_method("ge", True), _jump_method("ge", False)
    jlt, jlt32 = _jump_method("lt", True), _jump_method("lt", False)
    jle, jle32 = _jump_method("le", True), _jump_method("le", False)
    jset, jset32 = _jump_method("set", True), _jump_method("set", False)
    jsgt, jsgt32 = _jump_method("sgt", True), _jump_method("sgt", False)
    jsge, jsge32 = _jump_method("sge", True), _jump_method("sge", False)
    jslt, jslt32 = _jump_method("slt", True), _jump_method("slt", False)
    jsle, jsle32 = _jump_method("sle", True), _jump_method("sle", False)

    def ja(self, label: str) -> None:
        """Unconditional jump (16-bit offset)."""
        self._emit(Insn(Class.JMP | JmpOp.JA), fixup="jump", target=label)

    def gotol(self, label: str) -> None:
        """Unconditional jump with a 32-bit offset in imm (JMP32 class JA, kernel 6.6+)."""
        self._emit(Insn(Class.JMP32 | JmpOp.JA), fixup="gotol", target=label)

    def call(self, name_or_id: str | int | Helper) -> None:
        """Call a helper by name (with or without ``bpf_``) or id; the result lands in r0."""
        try:
            h = helper(name_or_id)
        except UnknownHelperError as e:
            raise BuildError(str(e), index=self.pc) from None
        self._emit(Insn(_CALL, 0, int(CallKind.HELPER), 0, h.id))

    def call_local(self, label: str) -> None:
        """BPF-to-BPF call of the subprogram starting at ``label`` (r1-r5 in, r0 out, r6-r9 kept)."""
        self._emit(Insn(_CALL, 0, int(CallKind.LOCAL)), fixup="call", target=label)

    def call_kfunc(self, btf_id: int) -> None:
        """Call a kernel function by its vmlinux BTF id."""
        self._emit(Insn(_CALL, 0, int(CallKind.KFUNC), 0, _imm32(btf_id, True)))

    def exit(self) -> None:
        """Return r0 to the caller (or the kernel)."""
        if _EXIT_TRUSTED:
            try:
                insn = self._known[_EXIT_KEY]
            except KeyError:
                insn = self._made(_EXIT_KEY, *_EXIT_KEY)
            self._insns.append(insn)
            return
        self._emit(Insn(Class.JMP | JmpOp.EXIT))

    # --- build ---------------------------------------------------------------------------------
    def build(self, maps: Mapping[str, Any] | None = None) -> list[Insn]:
        """Resolve labels and map references and return the instructions.

        Fills ``spans`` (one entry per slot), ``comments`` (slot -> texts), ``label_slots`` and
        ``subprograms`` (the first slot of each function: 0 and every call/callback target, which
        is what BTF ``func_info`` must describe). May be called again, e.g. with other map fds.
        """
        insns, wide, fixups = self._insns, self._wide, self._fixups
        n = len(insns)
        end = n + len(wide)
        label_slots = dict(self._labels)
        out = list(insns)
        entries = {0}
        # Only what the fast paths did not vouch for is looked at one by one, in program order
        # (so the first error is the one reported, as when every instruction was checked).
        for i in sorted(set(self._unchecked).union(fixups)):
            insn = insns[i]
            pc = i + bisect_left(wide, i)
            fix = fixups.get(i)
            if fix is not None:
                insn = self._resolve(insn, fix, pc, label_slots, end, maps)
                if fix[0] in ("call", "func"):
                    entries.add(label_slots[fix[1]])
            try:
                insn.check()
            except ISAError as e:
                raise BuildError(str(e), index=pc) from None
            out[i] = insn
        # One span per slot: each run of instructions under one span, its LD_IMM64s twice.
        spans: list[Span | None] = []
        runs = self._span_runs
        for j, (start, span) in enumerate(runs):
            stop = runs[j + 1][0] if j + 1 < len(runs) else n
            if stop > start:
                slots = stop - start
                if wide:
                    slots += bisect_left(wide, stop) - bisect_left(wide, start)
                spans.extend(itertools.repeat(span, slots))
        comments: dict[int, tuple[str, ...]] = {}
        for i, texts in self._notes.items():
            comments[i + bisect_left(wide, i) if i < n else end] = texts
        self.spans, self.comments, self.label_slots = spans, comments, label_slots
        self.subprograms = sorted(entries) if out else []
        return out

    def _resolve(
        self,
        insn: Insn,
        fix: tuple,
        pc: int,
        labels: dict[str, int],
        end: int,
        maps: Mapping[str, Any] | None,
    ) -> Insn:
        kind, target, map_ref, map_offset = fix
        if kind in ("map_fd", "map_value"):
            fd = _map_fd(map_ref, maps, pc)
            imm = fd if kind == "map_fd" else fd | (map_offset << 32)
            return dataclasses.replace(insn, imm=imm)
        if target not in labels:
            raise BuildError(f"undefined label {target!r}", index=pc, label=target)
        if labels[target] >= end:
            raise BuildError(
                f"label {target!r} is past the last instruction", index=pc, label=target
            )
        delta = labels[target] - (pc + 1)
        if kind == "jump":
            if not _S16[0] <= delta <= _S16[1]:
                raise BuildError(
                    f"jump to {target!r} is {delta} slots away, beyond a 16-bit offset; "
                    "use gotol for long unconditional jumps",
                    index=pc,
                    label=target,
                )
            return dataclasses.replace(insn, off=delta)
        if not _S32[0] <= delta <= _S32[1]:
            raise BuildError(
                f"target {target!r} is {delta} slots away", index=pc, label=target
            )
        return dataclasses.replace(insn, imm=delta)  # gotol, call, func


def _map_fd(ref: Any, maps: Mapping[str, Any] | None, pc: int) -> int:
    """The fd of a map reference: an object with ``.fd``, an int fd, or a name in ``maps``."""
    name = None
    if isinstance(ref, str):
        name = ref
        if maps is None or ref not in maps:
            raise BuildError(
                f"map {ref!r} is not in the maps given to build()", index=pc, label=ref
            )
        ref = maps[ref]
    fd = getattr(ref, "fd", ref)
    if hasattr(fd, "fileno"):
        fd = fd.fileno()
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0:
        raise BuildError(
            f"map reference {name or ref!r} has no usable fd ({fd!r})",
            index=pc,
            label=name,
        )
    return fd
