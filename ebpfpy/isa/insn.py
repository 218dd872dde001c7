"""`Insn`, the value type of one eBPF instruction, and its byte encoding.

The wire format (RFC 9669, little endian) is 8 bytes per slot:

    op:8 | dst:4 (low nibble) | src:4 (high nibble) | off:16 signed | imm:32 signed

LD_IMM64 is the one instruction that takes two slots; its second slot carries the upper
32 bits of the constant and is otherwise zero. `Insn` hides that split: `imm` holds the whole
64-bit value, so a program is simply a list of `Insn`, and jump offsets still count slots.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

from . import opcodes as oc
from .errors import ISAError

_SLOT = struct.Struct("<BBhI")  # imm as unsigned bits; Insn folds it back to signed
SLOT_SIZE = _SLOT.size  # 8
MAX_REG = 10  # r0..r10; the 4-bit fields could name r15, the ISA stops at r10


def _normalise(value: int, bits: int, what: str, unsigned_ok: bool = True) -> int:
    """Fold an unsigned spelling (0xffffffff) into the signed range; reject anything wider."""
    lo, hi = -(1 << (bits - 1)), 1 << (bits if unsigned_ok else bits - 1)
    if not isinstance(value, int) or not lo <= value < hi:
        raise ISAError(f"{what} {value!r} does not fit in {bits} bits")
    return int(value - (1 << bits) if value >= 1 << (bits - 1) else value)


@dataclass(frozen=True)
class Insn:
    """One instruction. `op` is the opcode byte (see `opcodes`), `off` is signed 16-bit,
    `imm` signed 32-bit, or signed 64-bit for LD_IMM64 (an unsigned spelling such as
    0xffffffff is accepted and stored as its signed value)."""

    op: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.op, int) or not 0 <= self.op <= 0xFF:
            raise ISAError(f"opcode {self.op!r} is not a byte")
        for name in ("dst", "src"):
            reg = getattr(self, name)
            if not isinstance(reg, int) or not 0 <= reg <= 15:
                raise ISAError(f"{name} register {reg!r} is not in 0..15")
        # Store plain ints (not IntEnum members) so equality and repr stay simple.
        object.__setattr__(self, "op", int(self.op))
        object.__setattr__(self, "dst", int(self.dst))
        object.__setattr__(self, "src", int(self.src))
        object.__setattr__(
            self, "off", _normalise(self.off, 16, "offset", unsigned_ok=False)
        )
        object.__setattr__(
            self,
            "imm",
            _normalise(self.imm, 64 if self.is_ldimm64 else 32, "immediate"),
        )

    def __str__(self) -> str:
        """The llvm-objdump text, so that printing a program reads like a listing."""
        from .disasm import format_insn  # disasm imports this module

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
        first = _SLOT.pack(self.op, regs, self.off, self.imm & 0xFFFF_FFFF)
        if not self.is_ldimm64:
            return first
        return first + _SLOT.pack(0, 0, 0, (self.imm >> 32) & 0xFFFF_FFFF)

    def check(self) -> None:
        """Raise `ISAError` unless RFC 9669 defines this instruction, reserved fields zero.

        Also accepted, being in LLVM 19 and in the kernel's own dumps: may_goto, callx,
        addr_space_cast and the kernel's per-cpu mov (see opcodes).
        """
        if not oc.is_valid(self.op):
            raise ISAError(f"unknown opcode {self.op:#04x}")
        for name in ("dst", "src"):
            if getattr(self, name) > MAX_REG:
                raise ISAError(f"{name} register r{getattr(self, name)} does not exist")
        problem = _CHECKS[self.cls](self)
        if problem:
            raise ISAError(f"opcode {self.op:#04x}: {problem}")


# -- per-class field rules --------------------------------------------------------------------
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
    allowed = _alu_offsets(insn, operation)
    if insn.off not in allowed:
        return f"offset must be one of {allowed}, not {insn.off}"
    if oc.source(insn.op) == oc.Source.K:
        return _zero(insn, "src")
    return (
        None
        if insn.off == oc.ADDR_SPACE_CAST and operation == oc.AluOp.MOV
        else _zero(insn, "imm")
    )


def _alu_offsets(insn: Insn, operation: oc.AluOp) -> tuple[int, ...]:
    if operation != oc.AluOp.MOV:
        return oc.ALU_OFF_VARIANTS.get(operation, (0,))
    if oc.source(insn.op) == oc.Source.K:
        return (0,)
    if insn.cls == oc.Class.ALU:
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


def encode_all(insns: Iterable[Insn]) -> bytes:
    return b"".join(insn.encode() for insn in insns)


def decode(data: bytes) -> list[Insn]:
    """Decode and validate a program; errors name the slot index of the culprit."""
    data = bytes(data)
    if len(data) % SLOT_SIZE:
        raise ISAError(
            f"program length {len(data)} is not a multiple of {SLOT_SIZE} "
            f"(instruction {len(data) // SLOT_SIZE} is truncated)",
            index=len(data) // SLOT_SIZE,
        )
    slots = list(_SLOT.iter_unpack(data))
    insns: list[Insn] = []
    i = 0
    while i < len(slots):
        op, regs, off, imm = slots[i]
        try:
            if op == oc.LD_IMM64:
                imm = _join_ldimm64(slots, i)
            insn = Insn(op, regs & 0x0F, regs >> 4, off, imm)
            insn.check()
        except ISAError as e:
            raise ISAError(f"instruction {i}: {e}", index=i) from None
        insns.append(insn)
        i += insn.size
    return insns


def _join_ldimm64(slots: list[tuple[int, int, int, int]], i: int) -> int:
    if i + 1 >= len(slots):
        raise ISAError("LD_IMM64 is missing its second slot")
    op2, regs2, off2, hi = slots[i + 1]
    if op2 or regs2 or off2:
        raise ISAError("second slot of LD_IMM64 must be zero apart from imm")
    return (hi << 32) | slots[i][3]
