"""The rules the Builder's methods are made of: operand checks, opcode forms and the fast path.

``builder.Builder`` has one method per instruction; most of them are generated from the tables
here (``_alu_method``, ``_jump_method``, ``_atomic_method``), and the checks that turn a Python
value into an instruction field (``_reg``, ``_imm32``, ``_off16``) live here too, so the
Builder's own module is about labels, spans and building.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ebpfpy.isa.errors import ISAError
from ebpfpy.isa.insn import _POOL, _POOL_MAX, _TABLES, Insn, _made, _normalise, _usual_fields
from ebpfpy.isa.opcodes import (
    LD_IMM64,
    AluOp,
    AtomicOp,
    Class,
    JmpOp,
    Mode,
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
# The fast path appends an `Insn` and its bytes and does nothing else. Instructions are immutable,
# so the same instruction emitted twice is the same object, made once per process (insn._made:
# without `Insn()`'s checks, encoded once) and kept in the emitter form's own tables (`_by_dst`).
# The usual case is a list index and one small dict lookup: the operands go into the key
# unchecked, because the tables only hold valid instructions, so an operand that is not (a
# register with no number, an immediate out of range) cannot be found there. A miss takes the
# checks: a usual operand makes the instruction, any other goes to the general code.
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


def _jump_forms(wide: bool) -> dict[str, tuple[int | None, int | None]]:
    """cond -> (opcode with an immediate, opcode with a register), fast-path-safe ones only."""
    cls = Class.JMP if wide else Class.JMP32
    return {cond: (_trusted_op(int(cls | Source.K | op), False, None, False),
                   _trusted_op(int(cls | Source.X | op), True, None, True)) for cond, op in _CONDITIONS.items()}


_JMP_FAST = {True: _jump_forms(True), False: _jump_forms(False)}
_EXIT = int(Class.JMP | JmpOp.EXIT)
_EXIT_TRUSTED = _always_valid(_EXIT, False, 0, True, dst_is_reg=False)
_EXIT_KEY = (_EXIT, 0, 0, 0, 0)
_KNOWN_MAX = _POOL_MAX  # distinct instructions shared (per process: see insn._POOL)
_pool_get = _POOL.get  # emptied in place, never replaced: the bound method stays good


def _by_dst() -> list[dict]:
    """For one emitter form, per destination register, the pooled (instruction, bytes) pairs it
    made, keyed by its other operands: a list index and a small key cost less than hashing all
    five fields, and this is the path of nearly every instruction. Emptied with the pool."""
    tables: list[dict] = [{} for _ in range(11)]
    _TABLES.extend(tables)
    return tables


def _mem_tables(fast: dict) -> dict:
    """Size alias -> `_by_dst` tables of its opcode (aliases of one size share them)."""
    by_code: dict[int, list[dict]] = {}
    return {alias: by_code.setdefault(code, _by_dst()) for alias, code in fast.items() if code is not None}


_LDX_TABLES, _STX_TABLES, _ST_TABLES = _mem_tables(_LDX_FAST), _mem_tables(_STX_FAST), _mem_tables(_ST_FAST)


_ALU_TABLES: dict[tuple[str, bool], tuple[list[dict], list[dict]]] = {}  # (name, wide) -> the method's


def _alu_method(name: str, wide: bool):
    k_tables, x_tables = _ALU_TABLES[name, wide] = _by_dst(), _by_dst()  # [dst][imm], [dst][src]

    def method(self: Any, dst: Reg, src: Operand) -> None:
        try:
            if type(src) is int:
                pair = k_tables[dst._number].get(src)
            else:
                pair = x_tables[dst._number].get(src._number)
        except (AttributeError, TypeError):
            pair = None
        if pair is None:
            key = _alu_key(name, wide, dst, src)
            if key is None:
                return self.alu(name, dst, src, wide=wide)  # the general path
            pair = _made(key)
            if type(src) is int:
                k_tables[key[1]][src] = pair
            else:
                x_tables[key[1]][key[2]] = pair
        self._insns.append(pair[0])
        self._codes.append(pair[1])
        return None

    method.__name__ = name + ("" if wide else "32")
    method.__doc__ = f"``dst {name}= src`` on {'64' if wide else '32'} bits (src: register or immediate)."
    return method


def _alu_key(name: str, wide: bool, dst: Any, src: Any) -> tuple | None:
    """The fields of a fast-path ALU instruction (then valid by construction), or None."""
    try:
        k_code, x_code, off = (_ALU64_FAST if wide else _ALU32_FAST)[name]
        d = dst._number
    except (KeyError, TypeError, AttributeError):
        return None
    if d is None:
        return None
    if type(src) is int:
        ok = k_code is not None and -0x8000_0000 <= src <= 0x7FFF_FFFF
        return (k_code, d, 0, off, src) if ok else None
    s = getattr(src, "_number", None)
    return (x_code, d, s, off, 0) if s is not None and x_code is not None else None


def _mem_key(table: dict, dst: Any, src: Any, off: Any, size: Any, imm: Any = 0) -> tuple | None:
    """The fields of a fast-path load or store (src None: a store of ``imm``), or None."""
    try:
        code = table[size]
        d = dst._number
        s = 0 if src is None else src._number
    except (KeyError, TypeError, AttributeError):
        return None
    if code is None or d is None or s is None or type(off) is not int or not -0x8000 <= off <= 0x7FFF:
        return None
    if type(imm) is not int or not -0x8000_0000 <= imm <= 0x7FFF_FFFF:
        return None
    return (code, d, s, off, imm)


def _jump_method(cond: str, wide: bool):
    k_tables, x_tables = _by_dst(), _by_dst()  # [dst][imm], [dst][src]

    def method(self: Any, dst: Reg, src: Operand, label: str) -> None:
        try:
            if type(src) is int:
                pair = k_tables[dst._number].get(src)
            else:
                pair = x_tables[dst._number].get(src._number)
        except (AttributeError, TypeError):
            pair = None
        if pair is None:
            key = _jump_key(cond, wide, dst, src)
            if key is None:
                return self.jmp(cond, dst, src, label, wide=wide)  # the general path
            pair = _made(key)
            if type(src) is int:
                k_tables[key[1]][src] = pair
            else:
                x_tables[key[1]][key[2]] = pair
        insns = self._insns
        self._fixups[len(insns)] = ("jump", label, None, 0)  # build() fills in the offset
        insns.append(pair[0])
        self._codes.append(pair[1])
        return None

    method.__name__ = "j" + cond + ("" if wide else "32")
    method.__doc__ = f"Jump to ``label`` if ``dst {cond} src`` ({'64' if wide else '32'}-bit compare)."
    return method


def _jump_key(cond: str, wide: bool, dst: Any, src: Any) -> tuple | None:
    """The fields of a fast-path conditional jump (offset 0 until build()), or None."""
    try:
        k_code, x_code = _JMP_FAST[wide][cond]
        d = dst._number
    except (KeyError, TypeError, AttributeError):
        return None
    if d is None:
        return None
    if type(src) is int:
        ok = k_code is not None and -0x8000_0000 <= src <= 0x7FFF_FFFF
        return (k_code, d, 0, 0, src) if ok else None
    s = getattr(src, "_number", None)
    return (x_code, d, s, 0, 0) if s is not None and x_code is not None else None


def _atomic_method(name: str):
    def method(
        self: Any,
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
