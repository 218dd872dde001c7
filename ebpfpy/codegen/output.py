"""Sending records to user space: perf event output and the BPF ring buffer.

Two verifier rules hide here. ``perf_event_output`` takes its CPU index in the low 32 bits of
``flags`` and refuses any other bit, so "this CPU" is ``0xffffffff`` zero-extended (an ``imm``
of -1 would sign-extend and fail). A ``ringbuf_reserve`` result is nullable and must be
submitted or discarded on every path, so the reserve emitter always emits the null check and
the caller pairs it with ``emit_ringbuf_submit``.
"""

from __future__ import annotations

from typing import Any

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import R0, Builder, Reg
from ebpfpy.sys.consts import BPF_F_CURRENT_CPU


def emit_perf_event_output(b: Builder, ctx: Reg, map_ref: Any, record: StackSlot,
                           size: int | None = None) -> Reg:
    """Send ``record`` (or its first ``size`` bytes) to this CPU's perf buffer; r0 = 0 or -errno."""
    emit_helper_call(b, "perf_event_output", ctx, map_ref, BPF_F_CURRENT_CPU, record, size)
    return R0


def emit_ringbuf_output(b: Builder, map_ref: Any, record: StackSlot, size: int | None = None,
                        flags: int = 0) -> Reg:
    """Copy ``record`` into the ring buffer; r0 = 0 or -errno (e.g. -EAGAIN when full)."""
    emit_helper_call(b, "ringbuf_output", map_ref, record, size, flags)
    return R0


def emit_ringbuf_reserve(b: Builder, map_ref: Any, size: int, on_null: str) -> Reg:
    """Reserve ``size`` bytes in the ring buffer; jump to ``on_null`` when it is full.

    Returns r0, the checked pointer. Move it to r6..r9 before any other call, then fill it and
    hand it to ``emit_ringbuf_submit``.
    """
    emit_helper_call(b, "ringbuf_reserve", map_ref, size, 0)
    b.jeq(R0, 0, on_null)
    return R0


def emit_ringbuf_submit(b: Builder, record: Reg, flags: int = 0, discard: bool = False) -> None:
    """Publish (or with ``discard``, drop) a record obtained from ``emit_ringbuf_reserve``."""
    emit_helper_call(b, "ringbuf_discard" if discard else "ringbuf_submit", record, flags)
