"""`Insn`, the value type of one eBPF instruction, and its byte encoding.

The wire format (RFC 9669, little endian) is 8 bytes per slot:

    op:8 | dst:4 (low nibble) | src:4 (high nibble) | off:16 signed | imm:32 signed

LD_IMM64 is the one instruction that takes two slots; its second slot carries the upper
32 bits of the constant and is otherwise zero. `Insn` hides that split: `imm` holds the whole
64-bit value, so a program is simply a list of `Insn`, and jump offsets still count slots.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import opcodes as oc
from .errors import ISAError

_SLOT = struct.Struct("<BBhi")  # Insn keeps imm signed, so it packs and unpacks as it is
_UNSIGNED_SLOT = struct.Struct("<BBhI")  # the two halves of an LD_IMM64 constant
SLOT_SIZE = _SLOT.size  # 8
MAX_REG = 10  # r0..r10; the 4-bit fields could name r15, the ISA stops at r10
_S16_MIN, _S16_MAX = -(1 << 15), (1 << 15) - 1
_S32_MIN, _S32_MAX = -(1 << 31), (1 << 31) - 1


def _normalise(value: int, bits: int, what: str, unsigned_ok: bool = True) -> int:
    """Fold an unsigned spelling (0xffffffff) into the signed range; reject anything wider."""
    lo, hi = -(1 << (bits - 1)), 1 << (bits if unsigned_ok else bits - 1)
    if not isinstance(value, int) or not lo <= value < hi:
        raise ISAError(f"{what} {value!r} does not fit in {bits} bits")
    return int(value - (1 << bits) if value >= 1 << (bits - 1) else value)


@dataclass(frozen=True, slots=True, init=False)
class Insn:
    """One instruction. `op` is the opcode byte (see `opcodes`), `off` is signed 16-bit,
    `imm` signed 32-bit, or signed 64-bit for LD_IMM64 (an unsigned spelling such as
    0xffffffff is accepted and stored as its signed value)."""

    op: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __init__(self, op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        # Plain ints already in their signed ranges are what nearly every caller passes: they are
        # stored as they are. Anything else (IntEnum members, unsigned spellings, errors) takes
        # the general path, which normalises or raises.
        if not (
            type(op) is int and type(dst) is int and type(src) is int and type(off) is int
            and type(imm) is int and 0 <= op <= 0xFF and 0 <= dst <= 15 and 0 <= src <= 15
            and _S16_MIN <= off <= _S16_MAX and _S32_MIN <= imm <= _S32_MAX
        ):  # fmt: skip
            op, dst, src, off, imm = _normalised_fields(op, dst, src, off, imm)
        _set_op(self, op)
        _set_dst(self, dst)
        _set_src(self, src)
        _set_off(self, off)
        _set_imm(self, imm)

    def __str__(self) -> str:
        """The llvm-objdump text, so that printing a program reads like a listing."""
        from .disasm import format_insn  # text formatting loads on first use

        try:
            return format_insn(self)
        except ISAError:
            return repr(self)

    # -- what kind of instruction this is ----------------------------------------------------

    @property
    def cls(self) -> oc.Class:
        return oc.cls(self.op)

    @property
    def size(self) -> int:
        """Number of 8-byte slots: 2 for LD_IMM64, else 1."""
        return 2 if self.is_ldimm64 else 1

    @property
    def is_ldimm64(self) -> bool:
        return self.op == oc.LD_IMM64

    @property
    def is_call(self) -> bool:
        """Any call: helper, bpf-to-bpf, kfunc, or callx (CALL|X)."""
        return self.op & ~oc.Source.X == oc.Class.JMP | oc.JmpOp.CALL

    @property
    def is_exit(self) -> bool:
        return self.op == oc.Class.JMP | oc.JmpOp.EXIT

    @property
    def is_jump(self) -> bool:
        """A branch inside the function: `goto`, `gotol`, `may_goto` or a conditional jump."""
        return oc.is_jmp(self.op) and (self.op & 0xF0) not in (
            oc.JmpOp.CALL,
            oc.JmpOp.EXIT,
        )

    @property
    def is_gotol(self) -> bool:
        """JMP32|JA: the long unconditional jump whose offset lives in `imm`."""
        return self.op == oc.Class.JMP32 | oc.JmpOp.JA

    @property
    def is_local_call(self) -> bool:
        return self.op == oc.Class.JMP | oc.JmpOp.CALL and self.src == oc.CallKind.LOCAL

    def jump_target(self, index: int) -> int | None:
        """Slot index this instruction transfers control to when it sits at slot `index`.

        Offsets are relative to the next slot. Covers jumps and bpf-to-bpf calls; None otherwise.
        """
        if self.is_gotol or self.is_local_call:
            return index + 1 + self.imm
        if self.is_jump:
            return index + 1 + self.off
        return None

    # -- bytes -------------------------------------------------------------------------------

    def encode(self) -> bytes:
        regs = (self.src << 4) | self.dst
        if self.op != oc.LD_IMM64:
            return _SLOT.pack(self.op, regs, self.off, self.imm)
        imm = self.imm
        pack = _UNSIGNED_SLOT.pack
        low, high = imm & 0xFFFF_FFFF, (imm >> 32) & 0xFFFF_FFFF
        return pack(self.op, regs, self.off, low) + pack(0, 0, 0, high)

    def check(self) -> None:
        """Raise `ISAError` unless RFC 9669 defines this instruction, reserved fields zero.

        Also accepted, being in LLVM 19 and in the kernel's own dumps: may_goto, callx,
        addr_space_cast and the kernel's per-cpu mov (see opcodes).
        """
        usual = _USUAL[self.op]
        if usual is _UNSEEN:
            usual = _USUAL[self.op] = _usual_fields(self.op)
        if usual is not None:
            dsts, srcs, offs, imms = usual
            if (
                self.dst in dsts and self.src in srcs and (offs is None or self.off in offs)
                and (imms is None or self.imm in imms)
            ):  # fmt: skip
                return
        _check_rules(self)  # off the usual path: the rules decide, and say what is wrong


def _normalised_fields(op: int, dst: int, src: int, off: int, imm: int) -> tuple[int, ...]:
    """The general path of `Insn()`: validate each field, fold unsigned spellings to signed."""
    if not isinstance(op, int) or not 0 <= op <= 0xFF:
        raise ISAError(f"opcode {op!r} is not a byte")
    for name, reg in (("dst", dst), ("src", src)):
        if not isinstance(reg, int) or not 0 <= reg <= 15:
            raise ISAError(f"{name} register {reg!r} is not in 0..15")
    # Store plain ints (not IntEnum members) so equality and repr stay simple.
    op = int(op)
    off = _normalise(off, 16, "offset", unsigned_ok=False)
    imm = _normalise(imm, 64 if op == oc.LD_IMM64 else 32, "immediate")
    return op, int(dst), int(src), off, imm


# The slot setters of the frozen dataclass: `Insn.__init__` and `_trusted` write through them once.
_set_op, _set_dst, _set_src, _set_off, _set_imm = (
    Insn.__dict__[name].__set__ for name in ("op", "dst", "src", "off", "imm")
)
_new = object.__new__


class _Unfrozen:
    """`Insn`'s slot layout without its frozen ``__setattr__``.

    The fastest way to make an `Insn` from fields already checked: store them in one of these
    (plain slot stores) and turn it into an `Insn` (``obj.__class__ = Insn``, allowed because the
    layouts are the same). The builder does that for each instruction it emits; it is several times
    cheaper than `_trusted`'s five descriptor calls. `FAST_NEW` says whether this interpreter
    allows the class change (CPython does); when it does not, the builder uses `_trusted`.
    """

    __slots__ = Insn.__slots__  # the same names in the same order: the same layout


def _can_change_class() -> bool:
    try:
        probe = _Unfrozen()
        probe.op, probe.dst, probe.src, probe.off, probe.imm = 0x95, 0, 0, 0, 0
        probe.__class__ = Insn
    except TypeError:
        return False
    return type(probe) is Insn and probe == Insn(0x95)


def _trusted(op: int, dst: int, src: int, off: int, imm: int) -> Insn:
    """An `Insn` from fields already known to be plain ints in range (decoded from bytes, or
    checked by the builder), without the checks of `Insn()`: decoding a million instructions
    should not validate each field twice. Not for values a user typed."""
    insn = _new(Insn)
    _set_op(insn, op)
    _set_dst(insn, dst)
    _set_src(insn, src)
    _set_off(insn, off)
    _set_imm(insn, imm)
    return insn


FAST_NEW = _can_change_class()


def _unchecked_insn(op: int, dst: int, src: int, off: int, imm: int) -> Insn:
    """An `Insn` from fields in range, made without `Insn()`'s checks, the fastest way there is."""
    insn = _Unfrozen()
    insn.op, insn.dst, insn.src, insn.off, insn.imm = op, dst, src, off, imm
    insn.__class__ = Insn
    return insn


if not FAST_NEW:
    _unchecked_insn = _trusted  # an interpreter that does not let the class change


# -- the shared instructions ------------------------------------------------------------------
# Code generators emit few distinct instructions: the 46 scripts of tools/, tools_017/ and corpus/
# compile to ~4,000 instructions of which ~400 differ (``r1 = r6``, ``call 1``, ``exit``...).
# Instructions are values, so the builder makes each valid one once per process, with its bytes,
# and shares the pair: `_POOL` maps the fields to it. The builder keeps the bytes of what it
# emits beside the instructions, so build() has the program's bytes for one join; it leaves them
# for `encode_all` (`_remember`), which is what loading the program calls next.

_POOL_MAX = 1 << 16  # ~350 bytes each (as many as one builder kept before the pool)
_POOL: dict[tuple, tuple[Insn, bytes]] = {}  # (op, dst, src, off, imm) -> (instruction, bytes); valid ones


def _pooled(key: tuple) -> tuple[Insn, bytes]:
    """The shared instruction with these fields and its bytes, made on first use.

    Only for fields that make a valid instruction (plain ints, in range, `Insn.check` passes):
    what the pool holds, the builder emits and `build()` returns without checking it again.
    """
    pair = _POOL.get(key)
    if pair is None:
        pair = _POOL[key] = _made(key)
    return pair


def _made(key: tuple) -> tuple[Insn, bytes]:
    """A new shared instruction and its bytes, for the pool or a builder's table of its own
    (forms._by_dst), which is cheaper to fill. Both are emptied together when, counted here,
    more than _POOL_MAX instructions have been made since: memory stays bounded."""
    global _MADE
    _MADE += 1
    if _MADE > _POOL_MAX:  # start over rather than stop sharing
        _forget()
        _MADE = 1
    insn = _unchecked_insn(*key)
    op, dst, src, off, imm = key
    return insn, _SLOT.pack(op, (src << 4) | dst, off, imm) if op != oc.LD_IMM64 else insn.encode()


_MADE = 0  # instructions made since the pool was last emptied


def _forget() -> None:
    """Empty the pool (the instructions already handed out stay valid, as values do)."""
    _POOL.clear()
    for table in _TABLES:
        table.clear()


_LAST_BUILT: tuple[list, bytes] | None = None  # a copy of what build() last returned, and its bytes


def _remember(insns: list, data: bytes) -> None:
    """Keep the bytes build() joined for ``insns``, for the `encode_all` that usually follows.

    One program only (a copy of its list, its bytes), taken by the first `encode_all` of an
    equal list: memory is never held for more than the last program built.
    """
    global _LAST_BUILT
    _LAST_BUILT = (insns.copy(), data)


_TABLES: list[dict] = []  # the builder's per-emitter views of the pool (forms._by_dst), emptied with it


# -- the usual fields, as a table -------------------------------------------------------------
# For each opcode: sets of (dst, src, off, imm) values such that any instruction with all four
# fields inside them is valid; None means any value. `Insn.check` accepts such an instruction at
# once and leaves everything else (errors, and rare variants such as a kfunc call with an `off`
# or an addr_space_cast with an `imm`) to the per-class rules below, which have the final word
# and the error messages. So this table may be narrower than the rules but never wider;
# tests/unit/test_isa_insn.py holds it against them on every opcode.

_UNSEEN = object()
_USUAL: list = [_UNSEEN] * 256  # filled on first use, opcode by opcode
_ANY = None
_REGS = frozenset(range(MAX_REG + 1))
_ZERO = frozenset({0})
_PSEUDOS = frozenset(map(int, oc.Pseudo))
_CALL_KINDS = frozenset(map(int, oc.CallKind))
_ATOMICS = frozenset(map(int, oc.AtomicOp))
_WIDTHS = frozenset(oc.END_WIDTHS)

FieldSets = tuple[frozenset, frozenset, frozenset | None, frozenset | None]


def _usual_fields(op: int) -> FieldSets | None:
    if not oc.is_valid(op):
        return None
    klass, x = oc.cls(op), oc.source(op) == oc.Source.X
    if klass in (oc.Class.ALU, oc.Class.ALU64):
        operation = oc.alu_op(op)
        if operation == oc.AluOp.END:
            return _REGS, _ZERO, _ZERO, _WIDTHS
        if operation == oc.AluOp.NEG:
            return _REGS, _ZERO, _ZERO, _ZERO
        offs = frozenset(_alu_offsets(op, operation))
        return (_REGS, _REGS, offs, _ZERO) if x else (_REGS, _ZERO, offs, _ANY)
    if klass in (oc.Class.JMP, oc.Class.JMP32):
        operation = oc.jmp_op(op)
        if operation == oc.JmpOp.EXIT:
            return _ZERO, _ZERO, _ZERO, _ZERO
        if operation == oc.JmpOp.JCOND:
            return _ZERO, _ZERO, _ANY, _ZERO
        if operation == oc.JmpOp.CALL:
            return (_REGS, _ZERO, _ZERO, _ZERO) if x else (_ZERO, _CALL_KINDS, _ZERO, _ANY)
        if operation == oc.JmpOp.JA:
            gotol = klass == oc.Class.JMP32
            return (_ZERO, _ZERO, _ZERO, _ANY) if gotol else (_ZERO, _ZERO, _ANY, _ZERO)
        return (_REGS, _REGS, _ANY, _ZERO) if x else (_REGS, _ZERO, _ANY, _ANY)
    if op == oc.LD_IMM64:
        return _REGS, _PSEUDOS, _ZERO, _ANY
    if klass == oc.Class.LD:  # LD_ABS, LD_IND
        return _ZERO, (_ZERO if oc.mode(op) == oc.Mode.ABS else _REGS), _ZERO, _ANY
    if klass == oc.Class.STX and oc.mode(op) == oc.Mode.ATOMIC:
        return _REGS, _REGS, _ANY, _ATOMICS
    return (_REGS, _ZERO, _ANY, _ANY) if klass == oc.Class.ST else (_REGS, _REGS, _ANY, _ZERO)


# -- per-class field rules --------------------------------------------------------------------


def _check_rules(insn: Insn) -> None:
    """`Insn.check` without the table of usual fields: the rules themselves."""
    if not oc.is_valid(insn.op):
        raise ISAError(f"unknown opcode {insn.op:#04x}")
    for name in ("dst", "src"):
        if getattr(insn, name) > MAX_REG:
            raise ISAError(f"{name} register r{getattr(insn, name)} does not exist")
    problem = _CHECKS[insn.cls](insn)
    if problem:
        raise ISAError(f"opcode {insn.op:#04x}: {problem}")


# Each returns a description of the first problem, or None. They only look at fields the
# opcode leaves free; the opcode itself was already checked by opcodes.is_valid.


def _zero(insn: Insn, *fields: str) -> str | None:
    for name in fields:
        if getattr(insn, name):
            return f"reserved field {name} must be 0, not {getattr(insn, name)}"
    return None


def _check_alu(insn: Insn) -> str | None:
    operation = oc.alu_op(insn.op)
    if operation == oc.AluOp.END:
        if insn.imm not in oc.END_WIDTHS:
            return f"byte swap width must be 16, 32 or 64, not {insn.imm}"
        return _zero(insn, "src", "off")
    if operation == oc.AluOp.NEG:
        return _zero(insn, "src", "off", "imm")
    allowed = _alu_offsets(insn.op, operation)
    if insn.off not in allowed:
        return f"offset must be one of {allowed}, not {insn.off}"
    if oc.source(insn.op) == oc.Source.K:
        return _zero(insn, "src")
    return (
        None
        if insn.off == oc.ADDR_SPACE_CAST and operation == oc.AluOp.MOV
        else _zero(insn, "imm")
    )


def _alu_offsets(op: int, operation: oc.AluOp) -> tuple[int, ...]:
    if operation != oc.AluOp.MOV:
        return oc.ALU_OFF_VARIANTS.get(operation, (0,))
    if oc.source(op) == oc.Source.K:
        return (0,)
    if oc.cls(op) == oc.Class.ALU:
        return (0, 8, 16)
    return (*oc.ALU_OFF_VARIANTS[operation], oc.ADDR_SPACE_CAST, oc.ADDR_PERCPU)


def _check_jmp(insn: Insn) -> str | None:
    operation = oc.jmp_op(insn.op)
    if operation == oc.JmpOp.EXIT:
        return _zero(insn, "dst", "src", "off", "imm")
    if operation == oc.JmpOp.JCOND:  # src=0 names may_goto, the one condition so far
        return _zero(insn, "dst", "src", "imm")
    if operation == oc.JmpOp.CALL:
        if oc.source(insn.op) == oc.Source.X:  # callx: the target address is in dst
            return _zero(insn, "src", "off", "imm")
        if insn.src not in tuple(oc.CallKind):
            return f"call kind (src) must be 0, 1 or 2, not {insn.src}"
        # A kfunc call may use `off` to pick the module BTF (an fd_array index).
        return (
            _zero(insn, "dst")
            if insn.src == oc.CallKind.KFUNC
            else _zero(insn, "dst", "off")
        )
    if operation == oc.JmpOp.JA:
        return _zero(insn, "dst", "src", "imm" if insn.cls == oc.Class.JMP else "off")
    return (
        _zero(insn, "imm") if oc.source(insn.op) == oc.Source.X else _zero(insn, "src")
    )


def _check_ld(insn: Insn) -> str | None:
    if insn.is_ldimm64:
        if insn.src not in tuple(oc.Pseudo):
            return f"LD_IMM64 pseudo source must be 0..6, not {insn.src}"
        return _zero(insn, "off")
    if oc.mode(insn.op) == oc.Mode.ABS:
        return _zero(insn, "dst", "src", "off")
    return _zero(insn, "dst", "off")


def _check_ldx(insn: Insn) -> str | None:
    return _zero(insn, "imm")


def _check_st(insn: Insn) -> str | None:
    return _zero(insn, "src")


def _check_stx(insn: Insn) -> str | None:
    if oc.mode(insn.op) == oc.Mode.ATOMIC and insn.imm not in tuple(oc.AtomicOp):
        return f"unknown atomic operation {insn.imm:#x}"
    return None if oc.mode(insn.op) == oc.Mode.ATOMIC else _zero(insn, "imm")


_CHECKS: dict[oc.Class, Callable[[Insn], str | None]] = {
    oc.Class.LD: _check_ld,
    oc.Class.LDX: _check_ldx,
    oc.Class.ST: _check_st,
    oc.Class.STX: _check_stx,
    oc.Class.ALU: _check_alu,
    oc.Class.ALU64: _check_alu,
    oc.Class.JMP: _check_jmp,
    oc.Class.JMP32: _check_jmp,
}


# -- programs ---------------------------------------------------------------------------------


_CHUNK = 1024  # instructions per struct.pack call in encode_all
_CHUNK_STRUCTS: dict[int, struct.Struct] = {}  # slots -> Struct packing that many


def _slots_struct(slots: int) -> struct.Struct:
    st = _CHUNK_STRUCTS.get(slots)
    if st is None:
        st = struct.Struct("<" + "BBhi" * slots)
        if len(_CHUNK_STRUCTS) < 64:
            _CHUNK_STRUCTS[slots] = st
    return st


def encode_all(insns: Iterable[Insn]) -> bytes:
    """The program's bytes: what `Insn.encode` gives for each, joined.

    The program `Builder.build` has just returned is not packed again: build() had its bytes
    (`_remember`), and an equal list (compared object by object: a C loop) gets them. Anything
    else is packed in chunks whose fields go into one flat list and one ``struct.pack`` call (a
    call per instruction costs more than the packing); an LD_IMM64 puts its two slots there, the
    constant's halves as the signed 32-bit fields they are in memory.
    """
    global _LAST_BUILT
    built = _LAST_BUILT
    if built is not None and type(insns) is list and insns == built[0]:
        _LAST_BUILT = None  # taken: no memory held once the program is loaded
        return built[1]
    if not isinstance(insns, (list, tuple)):
        insns = list(insns)
    return _encode_chunks(insns)


def _encode_chunks(insns: list | tuple) -> bytes:
    parts = []
    for start in range(0, len(insns), _CHUNK):
        chunk = insns[start:start + _CHUNK]
        flat: list[int] = []
        for insn in chunk:
            op = insn.op
            if op == oc.LD_IMM64:
                imm = insn.imm
                low = imm & 0xFFFF_FFFF
                flat += (op, (insn.src << 4) | insn.dst, insn.off, low - ((low >> 31) << 32), 0, 0, 0, imm >> 32)
            else:
                flat += (op, (insn.src << 4) | insn.dst, insn.off, insn.imm)
        try:
            parts.append(_slots_struct(len(flat) >> 2).pack(*flat))
        except struct.error:  # a field out of range: fail as encoding them one by one does
            parts.append(b"".join(_encode_one(insn) for insn in chunk))
    return b"".join(parts)


def _encode_one(insn: Insn) -> bytes:
    """What encode_all gave for one instruction before it packed chunks (the reference)."""
    if insn.op == oc.LD_IMM64:
        return insn.encode()
    return _SLOT.pack(insn.op, (insn.src << 4) | insn.dst, insn.off, insn.imm)


def decode(data: bytes) -> list[Insn]:
    """Decode and validate a program; errors name the slot index of the culprit."""
    data = bytes(data)
    if len(data) % SLOT_SIZE:
        raise ISAError(
            f"program length {len(data)} is not a multiple of {SLOT_SIZE} "
            f"(instruction {len(data) // SLOT_SIZE} is truncated)",
            index=len(data) // SLOT_SIZE,
        )
    insns: list[Insn] = []
    append = insns.append
    slots = _SLOT.iter_unpack(data)
    i = 0
    for op, regs, off, imm in slots:
        try:
            if op == oc.LD_IMM64:
                imm = _join_ldimm64(imm, next(slots, None))
            insn = _trusted(op, regs & 0x0F, regs >> 4, off, imm)  # the slot's ranges are Insn's
            insn.check()
        except ISAError as e:
            raise ISAError(f"instruction {i}: {e}", index=i) from None
        append(insn)
        i += 2 if op == oc.LD_IMM64 else 1
    return insns


def _join_ldimm64(lo: int, second: tuple[int, int, int, int] | None) -> int:
    if second is None:
        raise ISAError("LD_IMM64 is missing its second slot")
    op2, regs2, off2, hi = second
    if op2 or regs2 or off2:
        raise ISAError("second slot of LD_IMM64 must be zero apart from imm")
    return (hi << 32) | (lo & 0xFFFF_FFFF)  # hi is signed: the constant comes out signed
