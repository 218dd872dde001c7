"""Stack allocation below r10 that stays inside the verifier's 512-byte limit.

The verifier rejects a program that touches the stack beyond 512 bytes, reads stack bytes it
never saw written, or hashes uninitialised padding into a map key. A ``StackFrame`` hands out
aligned slots, counts them against the limit (failing at code generation time, with the slots
that used the space), and zero-fills a slot when asked, so that buffers given to helpers as keys
and values are always fully written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from ebpfpy.isa.builder import FP, Builder, BuildError, Reg

MAX_STACK = 512  # bytes per program (and per chain of bpf-to-bpf calls)

# Widest stores first: zeroing a 12-byte slot takes one 8-byte and one 4-byte store.
_STORE_WIDTHS = (8, 4, 2, 1)


class StackError(BuildError):
    """The frame would exceed the stack limit, or a slot was used outside its bounds."""


@dataclass(frozen=True)
class StackSlot:
    """``size`` bytes at ``r10 + off`` (``off`` is negative)."""

    off: int
    size: int
    name: str | None = None

    def field(self, offset: int, size: int) -> StackSlot:
        """A sub-slot (a struct member or array element), bounds-checked against this slot."""
        if offset < 0 or size <= 0 or offset + size > self.size:
            raise StackError(f"field [{offset}, {offset + size}) is outside the {self.size}-byte "
                             f"slot {self.name or self.off}")
        return StackSlot(self.off + offset, size, self.name)

    def addr(self, b: Builder, reg: Reg) -> None:
        """Emit ``reg = r10 + off``: the pointer a helper expects."""
        b.mov(reg, FP)
        b.add(reg, self.off)


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


class StackFrame:
    """Hands out slots of one program's (or subprogram's) stack frame.

    Slots are never reused implicitly; wrap short-lived buffers in ``with frame.scope():`` to
    give their bytes back when the block ends.
    """

    def __init__(self, b: Builder, limit: int = MAX_STACK) -> None:
        self.b = b
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._live: list[StackSlot] = []

    @property
    def remaining(self) -> int:
        return self.limit - self.used

    def alloc(self, size: int, align: int = 8, zero: bool = True, name: str | None = None) -> StackSlot:
        """Reserve ``size`` bytes aligned to ``align``; zero them unless ``zero=False``.

        Zeroing is the default because helpers that *read* a buffer (map keys and values, output
        records) need every byte initialised; pass ``zero=False`` for buffers a helper fills.
        """
        if size <= 0:
            raise StackError(f"stack slot {name or ''} needs a positive size, not {size}", index=self.b.pc)
        if align not in (1, 2, 4, 8):
            raise StackError(f"stack alignment must be 1, 2, 4 or 8, not {align}", index=self.b.pc)
        end = _align_up(self.used + size, align)
        if end > self.limit:
            raise StackError(self._overflow_message(size, name), index=self.b.pc)
        self.used = end
        self.peak = max(self.peak, end)
        slot = StackSlot(-end, size, name)
        self._live.append(slot)
        if zero:
            emit_zero(self.b, slot)
        return slot

    def _overflow_message(self, size: int, name: str | None) -> str:
        biggest = sorted(self._live, key=lambda s: -s.size)[:3]
        users = ", ".join(f"{s.name or 'slot'} ({s.size} B)" for s in biggest)
        return (f"{name or 'a buffer'} of {size} bytes does not fit the BPF stack: {self.used} of "
                f"{self.limit} bytes are used" + (f", mostly by {users}" if users else ""))

    @contextlib.contextmanager
    def scope(self) -> Iterator[StackFrame]:
        """Release every slot allocated inside the block when it ends."""
        used, live = self.used, len(self._live)
        try:
            yield self
        finally:
            self.used = used
            del self._live[live:]


def emit_zero(b: Builder, slot: StackSlot) -> None:
    """Zero ``slot`` with immediate stores, widest first (the slot start is assumed aligned)."""
    pos, end = slot.off, slot.off + slot.size
    while pos < end:
        width = next(w for w in _STORE_WIDTHS if pos + w <= end and pos % w == 0)
        b.st(width, FP, 0, pos)
        pos += width
