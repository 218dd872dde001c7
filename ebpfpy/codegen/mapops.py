"""Map access that the verifier accepts: lookups are always followed by their null check.

``map_lookup_elem`` returns "pointer to value or NULL"; the verifier refuses any dereference
until the program has compared it with zero. Emitting the check inside the lookup emitter means
no code generator can forget it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.stack import StackFrame, StackSlot
from ebpfpy.isa.builder import FP, R0, R1, Builder, BuildError, Reg
from ebpfpy.sys.consts import UpdateFlag

# flags of map_update_elem under their uapi names (BPF_ANY, BPF_NOEXIST, BPF_EXIST)
BPF_ANY, BPF_NOEXIST, BPF_EXIST = int(UpdateFlag.ANY), int(UpdateFlag.NOEXIST), int(UpdateFlag.EXIST)


def emit_map_lookup(b: Builder, map_ref: Any, key: StackSlot, on_null: str) -> Reg:
    """Look ``key`` up; jump to ``on_null`` when absent. Returns r0, the checked value pointer."""
    emit_helper_call(b, "map_lookup_elem", map_ref, key)
    b.jeq(R0, 0, on_null)
    return R0


def emit_map_update(b: Builder, map_ref: Any, key: StackSlot, value: StackSlot, flags: int = BPF_ANY) -> Reg:
    """Store ``value`` under ``key``; r0 is 0 or a negative errno."""
    emit_helper_call(b, "map_update_elem", map_ref, key, value, flags)
    return R0


def emit_map_delete(b: Builder, map_ref: Any, key: StackSlot) -> Reg:
    """Delete ``key``; r0 is 0 or -ENOENT."""
    emit_helper_call(b, "map_delete_elem", map_ref, key)
    return R0


def emit_map_add(frame: StackFrame, map_ref: Any, key: StackSlot, amount: Reg | int = 1,
                 on_missing: Callable[[], None] | None = None,
                 on_insert: Callable[[], None] | None = None) -> None:
    """``map[key] += amount`` for an 8-byte value, creating the entry when missing.

    The common aggregation (bpftrace's ``count()``/``sum()``): an atomic add on the value in place
    when the key exists, else an insert of ``amount``. ``amount`` must not live in r0..r5, which
    the lookup clobbers. Two CPUs inserting at once may lose one increment (as in bpftrace).
    ``on_missing`` emits code where the lookup found nothing (r0 = 0) and ``on_insert`` right
    after the insert (r0 = its result): the places a caller checks the helpers' results.
    """
    b = frame.b
    if isinstance(amount, Reg) and amount.n <= 5:
        raise BuildError(f"amount must be in r6..r9 or a constant, not {amount!r}", index=b.pc)
    missing, done = b.fresh_label("missing"), b.fresh_label("added")
    emit_map_lookup(b, map_ref, key, on_null=missing)
    if isinstance(amount, Reg):
        b.atomic_add(8, R0, amount)
    else:
        b.mov(R1, amount)
        b.atomic_add(8, R0, R1)
    b.ja(done)
    b.label(missing)
    if on_missing is not None:
        on_missing()
    with frame.scope():
        value = frame.alloc(8, zero=False, name="new value")
        if isinstance(amount, Reg):
            b.stx(8, FP, amount, value.off)
        else:
            b.st(8, FP, amount, value.off)
        emit_map_update(b, map_ref, key, value, BPF_NOEXIST)
        if on_insert is not None:
            on_insert()
    b.label(done)
