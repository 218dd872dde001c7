"""Bounds for values used as offsets or sizes, in the two forms the verifier understands.

The verifier tracks an unsigned range for every scalar. A variable index into a buffer, or a
variable size passed to a helper, is only accepted once that range is provably inside the
buffer. Two idioms establish it: a compare-and-branch (the range is narrowed on the fall-through
path) and an AND with a mask (for power-of-two sizes; no branch, but wraps instead of failing).
"""

from __future__ import annotations

from ebpfpy.isa.builder import Builder, BuildError, Reg


def emit_bounded_index(b: Builder, reg: Reg, limit: int, out: str | None = None) -> None:
    """Make ``0 <= reg < limit`` provable.

    With ``out``: ``if reg >= limit goto out`` (unsigned, so negative values leave too).
    Without: ``reg &= limit - 1``, which needs ``limit`` to be a power of two.
    """
    if limit <= 0:
        raise BuildError(f"index limit must be positive, not {limit}", index=b.pc)
    if out is not None:
        b.jge(reg, limit, out)
        return
    if limit & (limit - 1):
        raise BuildError(f"masking needs a power-of-two limit, not {limit}; pass out= to branch instead",
                         index=b.pc)
    b.and_(reg, limit - 1)


def emit_clamp(b: Builder, reg: Reg, maximum: int) -> None:
    """``reg = min(reg, maximum)`` as unsigned values: a size that never exceeds its buffer."""
    ok = b.fresh_label("clamped")
    b.jle(reg, maximum, ok)
    b.mov(reg, maximum)
    b.label(ok)
