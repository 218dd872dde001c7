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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

from ebpfpy.isa.errors import ISAError
from ebpfpy.isa.helpers import Helper, UnknownHelperError, helper
from ebpfpy.isa.insn import Insn, _normalise, _trusted
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

    def __repr__(self) -> str:
        return f"r{self.n}"


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = (Reg(i) for i in range(11))
FP = R10
REGS = (R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10)

Operand = Union[Reg, int]
SizeSpec = Union[str, int]

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


def _alu_method(name: str, wide: bool):
    def method(self: Builder, dst: Reg, src: Operand) -> None:
        self.alu(name, dst, src, wide=wide)

    method.__name__ = name + ("" if wide else "32")
    method.__doc__ = f"``dst {name}= src`` on {'64' if wide else '32'} bits (src: register or immediate)."
    return method


def _jump_method(cond: str, wide: bool):
    def method(self: Builder, dst: Reg, src: Operand, label: str) -> None:
        self.jmp(cond, dst, src, label, wide=wide)

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
        # One entry per emitted instruction, in parallel lists rather than one record each: a
        # million-instruction program then costs a million objects, not two (and half the GC).
        self._insns: list[Insn] = []  # as emitted, before build() fills in the fixups
        self._item_spans: list[Span | None] = []
        self._notes: dict[int, tuple[str, ...]] = {}  # instruction index -> comments
        self._fixups: dict[int, _Fixup] = {}  # instruction index -> what build() fills in
        self._labels: dict[str, int] = {}  # label -> slot of the instruction it precedes
        self._pending_comments: list[str] = []
        self._counter = itertools.count(1)
        self._pc = 0
        self.span: Span | None = None
        self.spans: list[Span | None] = []
        self.comments: dict[int, tuple[str, ...]] = {}
        self.label_slots: dict[str, int] = {}
        self.subprograms: list[int] = []

    # --- bookkeeping ---------------------------------------------------------------------------
    @property
    def pc(self) -> int:
        """Slot index the next instruction will get."""
        return self._pc

    def __len__(self) -> int:
        return len(self._insns)

    @property
    def _items(self) -> list[_Item]:
        """The emitted instructions with their metadata, unresolved (for tests and debugging)."""
        out = []
        for i, (insn, span) in enumerate(zip(self._insns, self._item_spans)):
            fix = self._fixups.get(i, _NO_FIXUP)
            out.append(_Item(insn, fix.kind, fix.target, fix.map_ref, fix.map_offset, span,
                             self._notes.get(i, ())))
        return out

    def _emit(
        self,
        insn: Insn,
        fixup: str | None = None,
        target: str | None = None,
        map_ref: Any = None,
        map_offset: int = 0,
    ) -> None:
        if fixup is not None:
            self._fixups[len(self._insns)] = _Fixup(fixup, target, map_ref, map_offset)
        if self._pending_comments:
            self._notes[len(self._insns)] = tuple(self._pending_comments)
            self._pending_comments.clear()
        self._insns.append(insn)
        self._item_spans.append(self.span)
        self._pc += 2 if insn.op == LD_IMM64 else 1

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
        clone._item_spans = list(self._item_spans)
        clone._notes, clone._fixups = dict(self._notes), dict(self._fixups)
        clone._labels, clone._pending_comments = dict(self._labels), list(self._pending_comments)
        clone._counter = copy.copy(self._counter)
        clone.spans, clone.comments = list(self.spans), dict(self.comments)
        clone.label_slots, clone.subprograms = dict(self.label_slots), list(self.subprograms)
        for site in sites:
            if not (isinstance(site, int) and 0 <= site < len(insns)):
                raise BuildError(f"no instruction at site {site!r}")
            if site in self._fixups:
                raise BuildError(
                    f"the immediate at site {site} is filled in by build() "
                    f"({self._fixups[site].kind}), it cannot be patched"
                )
            try:
                insns[site] = dataclasses.replace(insns[site], imm=value)
            except ISAError as e:
                raise BuildError(f"site {site}: {e}") from None
        return clone

    def label(self, name: str) -> str:
        """Mark the position of the next instruction as ``name``."""
        if name in self._labels:
            raise BuildError(f"duplicate label {name!r}", index=self._pc, label=name)
        self._labels[name] = self._pc
        return name

    def fresh_label(self, hint: str = "L") -> str:
        """A label name not used yet, for code generators that need private jump targets."""
        while True:
            name = f".{hint}{next(self._counter)}"
            if name not in self._labels:
                return name

    def comment(self, text: str) -> None:
        """Attach ``text`` to the next instruction (shown beside it in annotated listings)."""
        self._pending_comments.append(text)

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
        self._emit(_trusted(_LDX_MEM | _size(size), _reg(dst), _reg(src), _off16(off), 0))

    def ldx_sx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``dst = *(signed size *)(src + off)``, sign-extended (not for 8-byte loads)."""
        s = _size(size)
        if s == Size.DW:
            raise BuildError("ldx_sx needs a size of 1, 2 or 4 bytes")
        self._emit(Insn(Class.LDX | Mode.MEMSX | s, _reg(dst), _reg(src), _off16(off)))

    def stx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``*(size *)(dst + off) = src``."""
        self._emit(_trusted(_STX_MEM | _size(size), _reg(dst), _reg(src), _off16(off), 0))

    def st(self, size: SizeSpec, dst: Reg, imm: int, off: int = 0) -> None:
        """``*(size *)(dst + off) = imm`` (an 8-byte store sign-extends the 32-bit immediate)."""
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
            raise BuildError(str(e), index=self._pc) from None
        self._emit(Insn(_CALL, 0, int(CallKind.HELPER), 0, h.id))

    def call_local(self, label: str) -> None:
        """BPF-to-BPF call of the subprogram starting at ``label`` (r1-r5 in, r0 out, r6-r9 kept)."""
        self._emit(Insn(_CALL, 0, int(CallKind.LOCAL)), fixup="call", target=label)

    def call_kfunc(self, btf_id: int) -> None:
        """Call a kernel function by its vmlinux BTF id."""
        self._emit(Insn(_CALL, 0, int(CallKind.KFUNC), 0, _imm32(btf_id, True)))

    def exit(self) -> None:
        """Return r0 to the caller (or the kernel)."""
        self._emit(Insn(Class.JMP | JmpOp.EXIT))

    # --- build ---------------------------------------------------------------------------------
    def build(self, maps: Mapping[str, Any] | None = None) -> list[Insn]:
        """Resolve labels and map references and return the instructions.

        Fills ``spans`` (one entry per slot), ``comments`` (slot -> texts), ``label_slots`` and
        ``subprograms`` (the first slot of each function: 0 and every call/callback target, which
        is what BTF ``func_info`` must describe). May be called again, e.g. with other map fds.
        """
        label_slots = dict(self._labels)
        end = self._pc
        out: list[Insn] = []
        spans: list[Span | None] = []
        comments: dict[int, tuple[str, ...]] = {}
        entries = {0}
        fixups, notes = self._fixups, self._notes
        append, add_span = out.append, spans.append
        pc = 0
        for i, (insn, span) in enumerate(zip(self._insns, self._item_spans)):
            if i in fixups:
                fix = fixups[i]
                insn = self._resolve(insn, fix, pc, label_slots, end, maps)
                if fix.kind in ("call", "func"):
                    entries.add(label_slots[fix.target])  # type: ignore[index]
            try:
                insn.check()
            except ISAError as e:
                raise BuildError(str(e), index=pc) from None
            append(insn)
            add_span(span)
            if i in notes:
                comments[pc] = notes[i]
            if insn.op == LD_IMM64:
                add_span(span)
                pc += 2
            else:
                pc += 1
        if self._pending_comments:
            comments[end] = tuple(self._pending_comments)
        self.spans, self.comments, self.label_slots = spans, comments, label_slots
        self.subprograms = sorted(entries) if out else []
        return out

    def _resolve(
        self,
        insn: Insn,
        fix: _Fixup,
        pc: int,
        labels: dict[str, int],
        end: int,
        maps: Mapping[str, Any] | None,
    ) -> Insn:
        kind = fix.kind
        if kind in ("map_fd", "map_value"):
            fd = _map_fd(fix.map_ref, maps, pc)
            imm = fd if kind == "map_fd" else fd | (fix.map_offset << 32)
            return dataclasses.replace(insn, imm=imm)
        target = fix.target
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
