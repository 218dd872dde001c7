"""Helper calls checked against the signature table, with arguments moved into r1..r5.

An argument is given as what it *is*, and this module turns it into the register contents the
verifier expects:

=================  ==========================================  ==================================
argument           becomes                                     allowed for kinds
=================  ==========================================  ==================================
``Reg``            ``mov rN, reg`` (parallel move)              any
``int``            ``mov rN, imm`` (``ld_imm64`` if wide)       scalars and sizes; 0 for ``*_OR_NULL``
``StackSlot``      ``rN = r10 + off``                           pointers to memory, keys, values
map object / name  ``ld_map_fd rN, map``                        ``MAP_PTR``
``Func(label)``    ``ld_func rN, label``                        ``CALLBACK``
``None``           the size of the slot just before it          sizes
=================  ==========================================  ==================================

Register arguments are moved first, as one parallel move: ``f(r2, r1)`` must not clobber r1
before reading it. Cycles are broken through r0, which the call overwrites anyway, so no stack
spill is ever needed. Constants are materialised afterwards because they read no registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import R0, REGS, Builder, BuildError, Reg
from ebpfpy.isa.helpers import ArgKind, Helper, helper

ARG_REGS = REGS[1:6]  # r1..r5
_S32 = (-(1 << 31), (1 << 31) - 1)


class HelperCallError(BuildError):
    """A helper call whose arguments do not match the helper's signature."""


@dataclass(frozen=True)
class Func:
    """A subprogram passed by address (``loop``/``for_each_map_elem`` callbacks)."""

    label: str


_K = ArgKind
_SLOT_KINDS = frozenset({_K.MAP_KEY, _K.MAP_VALUE, _K.UNINIT_MAP_VALUE, _K.MEM, _K.MEM_OR_NULL,
                         _K.UNINIT_MEM, _K.STACK_OR_NULL, _K.LONG_PTR})
_INT_KINDS = frozenset({_K.SCALAR, _K.SIZE, _K.SIZE_OR_ZERO, _K.ALLOC_SIZE})
_NULL_KINDS = frozenset({_K.MEM_OR_NULL, _K.STACK_OR_NULL})


def _classify(value: Any) -> str:
    """Which row of the table above an argument falls in."""
    if isinstance(value, Reg):
        return "reg"
    if isinstance(value, StackSlot):
        return "slot"
    if isinstance(value, Func):
        return "func"
    if isinstance(value, int) and not isinstance(value, bool):
        return "int"
    if isinstance(value, str) or hasattr(value, "fd"):
        return "map"
    return "other"


_ACCEPTS = {
    "reg": frozenset(ArgKind),
    "int": _INT_KINDS,
    "slot": _SLOT_KINDS,
    "map": frozenset({_K.MAP_PTR}),
    "func": frozenset({_K.CALLBACK}),
    "other": frozenset(),
}


def check_args(h: Helper, args: tuple[Any, ...], index: int | None = None) -> tuple[Any, ...]:
    """Validate ``args`` against ``h``'s signature; return them with ``None`` sizes filled in."""
    if len(args) > 5:
        raise HelperCallError(f"{h} takes at most 5 arguments, got {len(args)}", index=index)
    if h.args is None:
        return args
    if not h.required_args <= len(args) <= len(h.args):
        want = len(h.args) if h.required_args == len(h.args) else f"{h.required_args}..{len(h.args)}"
        raise HelperCallError(f"{h} takes {want} arguments, got {len(args)}", index=index)
    filled = list(args)
    for i, (kind, value) in enumerate(zip(h.args, args)):
        where = f"argument {i + 1} of {h} ({kind.value})"
        if value is None and kind.is_size and i > 0 and isinstance(filled[i - 1], StackSlot):
            value = filled[i] = filled[i - 1].size
        row = _classify(value)
        null_ok = row == "int" and value == 0 and kind in _NULL_KINDS
        if kind not in _ACCEPTS[row] and not null_ok:
            raise HelperCallError(f"{where} cannot be {value!r}", index=index)
        if row == "int" and kind == _K.SIZE and value <= 0:
            raise HelperCallError(f"{where} must be positive, not {value}", index=index)
        buffer = filled[i - 1] if i > 0 else None
        if row == "int" and kind.is_size and isinstance(buffer, StackSlot) and value > buffer.size:
            raise HelperCallError(f"{where} is {value} bytes but the buffer before it has only "
                                  f"{buffer.size}", index=index)
    return tuple(filled)


def _parallel_moves(b: Builder, moves: dict[Reg, Reg]) -> None:
    """Emit ``dst = src`` for every pair as if all happened at once."""
    moves = {d: s for d, s in moves.items() if d != s}
    while moves:
        sources = set(moves.values())
        ready = next((d for d in moves if d not in sources), None)
        if ready is not None:
            b.mov(ready, moves.pop(ready))
            continue
        # Only cycles are left: park one register in r0 and read it from there.
        parked = next(iter(moves))
        b.mov(R0, parked)
        moves = {d: (R0 if s == parked else s) for d, s in moves.items()}


def _materialise(b: Builder, reg: Reg, value: Any) -> None:
    row = _classify(value)
    if row == "int":
        if _S32[0] <= value <= _S32[1]:
            b.mov(reg, value)
        else:
            b.ld_imm64(reg, value)
    elif row == "slot":
        value.addr(b, reg)
    elif row == "map":
        b.ld_map_fd(reg, value)
    elif row == "func":
        b.ld_func(reg, value.label)
    else:
        raise HelperCallError(f"cannot pass {value!r} to a helper", index=b.pc)


def emit_args(b: Builder, args: tuple[Any, ...]) -> None:
    """Place ``args`` in r1..r5: register arguments first (one parallel move), then constants."""
    moves = {ARG_REGS[i]: v for i, v in enumerate(args) if isinstance(v, Reg)}
    _parallel_moves(b, moves)
    for i, value in enumerate(args):
        if not isinstance(value, Reg):
            _materialise(b, ARG_REGS[i], value)


def emit_helper_call(b: Builder, name: str | int | Helper, *args: Any) -> Helper:
    """Check ``args`` against the helper's signature, load r1..r5 and emit the call.

    The result is in r0; r1..r5 are clobbered, so keep live values in r6..r9 across the call.
    A helper returning a nullable pointer still needs a null check (``emit_map_lookup`` does it).
    """
    h = helper(name)
    filled = check_args(h, args, index=b.pc)
    emit_args(b, filled)
    b.call(h)
    return h
