"""The eBPF opcode byte, split into the fields RFC 9669 defines.

An opcode is not a number from a list of ~100 instructions: it is three small
fields packed into one byte, and every instruction is some combination of them.

    ALU / ALU64 / JMP / JMP32:   | operation (4 bits) | source (1 bit) | class (3 bits) |
    LD / LDX / ST / STX:         | mode (3 bits)      | size (2 bits)  | class (3 bits) |

Each field is a small ``IntEnum`` whose values are already shifted into place,
so an opcode is built by OR-ing fields (``Class.ALU64 | Source.X | AluOp.ADD``)
and taken apart by masking (``AluOp(op & 0xF0)``). Nothing here switches over
whole opcodes; the tables below say which combinations the ISA defines.

Beyond RFC 9669 we accept what LLVM 19 emits and the kernel prints back: may_goto
(JMP|JCOND), callx (JMP|CALL|X), addr_space_cast and the kernel's per-cpu mov
(ALU64|MOV|X with off 1 and -1).
"""

from __future__ import annotations

import functools
from enum import IntEnum


class Class(IntEnum):
    """Low 3 bits: which family the instruction belongs to."""

    LD = 0x00  # only LD_IMM64 and the legacy packet loads LD_ABS/LD_IND
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04  # 32-bit arithmetic (the `w` registers)
    JMP = 0x05
    JMP32 = 0x06  # jumps comparing the low 32 bits
    ALU64 = 0x07


class Source(IntEnum):
    """Bit 3 of ALU and jump opcodes: the second operand is `imm` (K) or `src` (X).

    For the END operation the same bit picks the byte order instead (LE=K, BE=X).
    """

    K = 0x00
    X = 0x08


class AluOp(IntEnum):
    """High 4 bits of ALU/ALU64 opcodes."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30  # off=1: SDIV
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90  # off=1: SMOD
    XOR = 0xA0
    MOV = 0xB0  # off=8/16/32 with Source.X: MOVSX
    ARSH = 0xC0
    END = 0xD0  # byte swaps; imm is the width (16/32/64)


class JmpOp(IntEnum):
    """High 4 bits of JMP/JMP32 opcodes."""

    JA = 0x00  # JMP: offset in `off`; JMP32 (gotol): offset in `imm`
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # may_goto (src=0): a bounded loop escape the verifier counts for us


class Size(IntEnum):
    """Bits 3-4 of load/store opcodes: access width."""

    W = 0x00  # 4 bytes
    H = 0x08  # 2 bytes
    B = 0x10  # 1 byte
    DW = 0x18  # 8 bytes


class Mode(IntEnum):
    """High 3 bits of load/store opcodes: how the address is formed."""

    IMM = 0x00  # LD_IMM64 (two slots)
    ABS = 0x20  # legacy packet load at a constant offset
    IND = 0x40  # legacy packet load at src + imm
    MEM = 0x60  # *(size *)(reg + off)
    MEMSX = 0x80  # sign-extending LDX
    ATOMIC = 0xC0  # STX only; the operation is in `imm`


class AtomicOp(IntEnum):
    """The `imm` of an STX|ATOMIC instruction: an ALU operation, optionally with FETCH."""

    ADD = AluOp.ADD
    OR = AluOp.OR
    AND = AluOp.AND
    XOR = AluOp.XOR
    FETCH_ADD = AluOp.ADD | 0x01
    FETCH_OR = AluOp.OR | 0x01
    FETCH_AND = AluOp.AND | 0x01
    FETCH_XOR = AluOp.XOR | 0x01
    XCHG = 0xE0 | 0x01
    CMPXCHG = 0xF0 | 0x01


FETCH = 0x01


class Pseudo(IntEnum):
    """The `src` field of LD_IMM64: what the kernel should make of the 64-bit constant."""

    IMM = 0  # a plain constant
    MAP_FD = 1  # imm = map fd; the verifier turns it into the map pointer
    MAP_VALUE = 2  # imm lo = map fd, imm hi = offset into the map's value
    BTF_ID = 3  # imm = BTF id of a kernel variable
    FUNC = 4  # imm = pc-relative offset of a subprogram
    MAP_IDX = 5  # imm = index into fd_array
    MAP_IDX_VALUE = 6  # imm lo = index into fd_array, imm hi = offset


class CallKind(IntEnum):
    """The `src` field of CALL: how `imm` names the callee."""

    HELPER = 0  # imm = helper id
    LOCAL = 1  # imm = pc-relative offset of a subprogram (BPF_PSEUDO_CALL)
    KFUNC = 2  # imm = BTF id of a kernel function


# Bytes per Size, and the Size for a byte count.
SIZE_BYTES = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}
SIZE_OF_BYTES = {n: s for s, n in SIZE_BYTES.items()}

# The one two-slot opcode.
LD_IMM64 = Class.LD | Mode.IMM | Size.DW

# Which `off` values select a variant, per ALU operation (everything else needs off=0).
ALU_OFF_VARIANTS = {
    AluOp.DIV: (0, 1),  # 1 = signed
    AluOp.MOD: (0, 1),  # 1 = signed
    AluOp.MOV: (0, 8, 16, 32),  # sign-extend from 8/16/32 bits (X only; ALU has no 32)
}
# Two more ALU64 MOV X variants, newer than RFC 9669, that real programs contain:
ADDR_SPACE_CAST = 1  # arena pointers; imm = dst address space << 16 | src address space
ADDR_PERCPU = -1  # written by the kernel itself (xlated code): r = this cpu's copy of r

END_WIDTHS = (16, 32, 64)
ATOMIC_SIZES = (Size.W, Size.DW)
LEGACY_SIZES = (Size.B, Size.H, Size.W)  # LD_ABS/LD_IND
MEMSX_SIZES = (Size.B, Size.H, Size.W)


_CLASSES = tuple(Class)  # indexed by value: 0..7
_ALU_CLASSES = (Class.ALU, Class.ALU64)
_JMP_CLASSES = (Class.JMP, Class.JMP32)


def cls(op: int) -> Class:
    return _CLASSES[op & 0x07]


def is_alu(op: int) -> bool:
    return cls(op) in _ALU_CLASSES


def is_jmp(op: int) -> bool:
    return cls(op) in _JMP_CLASSES


def is_ldst(op: int) -> bool:
    return cls(op) in (Class.LD, Class.LDX, Class.ST, Class.STX)


# The field accessors index tuples by the field's bits instead of calling ``Enum(value)``, which
# costs a microsecond: the disassembler and the checks ask several times per instruction.
def _by_bits(enum: type[IntEnum], mask: int, shift: int) -> tuple:
    members = {int(m): m for m in enum}
    return tuple(members.get(i << shift) for i in range((mask >> shift) + 1))


_SOURCES = _by_bits(Source, 0x08, 3)
_SIZES = _by_bits(Size, 0x18, 3)
_ALU_OPS = _by_bits(AluOp, 0xF0, 4)
_JMP_OPS = _by_bits(JmpOp, 0xF0, 4)
_MODES = _by_bits(Mode, 0xE0, 5)


def _undefined(enum: type[IntEnum], value: int) -> ValueError:
    return ValueError(f"{value!r} is not a valid {enum.__qualname__}")  # Enum's own message


def source(op: int) -> Source:
    return _SOURCES[(op & 0x08) >> 3]


def alu_op(op: int) -> AluOp:
    member = _ALU_OPS[(op & 0xF0) >> 4]
    if member is None:
        raise _undefined(AluOp, op & 0xF0)
    return member


def jmp_op(op: int) -> JmpOp:
    member = _JMP_OPS[(op & 0xF0) >> 4]
    if member is None:
        raise _undefined(JmpOp, op & 0xF0)
    return member


def size(op: int) -> Size:
    return _SIZES[(op & 0x18) >> 3]


def mode(op: int) -> Mode:
    member = _MODES[(op & 0xE0) >> 5]
    if member is None:
        raise _undefined(Mode, op & 0xE0)
    return member


def alu(operation: AluOp, src: Source = Source.K, klass: Class = Class.ALU64) -> int:
    return klass | src | operation


def jmp(operation: JmpOp, src: Source = Source.K, klass: Class = Class.JMP) -> int:
    return klass | src | operation


def mem(klass: Class, sz: Size, md: Mode = Mode.MEM) -> int:
    return klass | sz | md


# Which (mode, size) pairs each load/store class accepts.
_LDST_FORMS: dict[Class, set[tuple[Mode, Size]]] = {
    Class.LD: {(Mode.IMM, Size.DW)}
    | {(m, s) for m in (Mode.ABS, Mode.IND) for s in LEGACY_SIZES},
    Class.LDX: {(Mode.MEM, s) for s in Size} | {(Mode.MEMSX, s) for s in MEMSX_SIZES},
    Class.ST: {(Mode.MEM, s) for s in Size},
    Class.STX: {(Mode.MEM, s) for s in Size} | {(Mode.ATOMIC, s) for s in ATOMIC_SIZES},
}

# (class, operation) pairs that exist only with Source.K, having no register operand to name:
# NEG, JA, EXIT, JCOND; and ALU64|END, whose source bit would be the byte order (bswap has none).
# CALL|X is `callx` (target address in dst), which LLVM knows and RFC 9669 does not.
_K_ONLY = (
    {(c, AluOp.NEG) for c in _ALU_CLASSES}
    | {(Class.ALU64, AluOp.END)}
    | {(c, o) for c in _JMP_CLASSES for o in (JmpOp.JA, JmpOp.EXIT, JmpOp.JCOND)}
)
# JMP32 has no call, exit or may_goto (its JA is gotol).
_MISSING = {(Class.JMP32, o) for o in (JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND)}


@functools.cache  # 256 possible answers, asked for every decoded instruction
def is_valid(op: int) -> bool:
    """Whether the opcode byte names an instruction of RFC 9669 (fields aside)."""
    op &= 0xFF
    klass = cls(op)
    try:
        if klass in _LDST_FORMS:
            return (mode(op), size(op)) in _LDST_FORMS[klass]
        operation = alu_op(op) if klass in _ALU_CLASSES else jmp_op(op)
    except ValueError:  # a field value the ISA does not define
        return False
    if (klass, operation) in _MISSING:
        return False
    return source(op) == Source.K or (klass, operation) not in _K_ONLY
