"""Emitters that produce programs the verifier accepts by construction.

Each module covers one concern on top of ``ebpfpy.isa.builder``: ``stack`` (slots below r10
within 512 bytes, zeroed buffers), ``calls`` (helper calls checked against signatures),
``mapops`` (lookups with their null check), ``bounds`` (provable ranges for indexes and sizes),
``memory`` (probe_read variants), ``ctx`` (x86-64 pt_regs access) and ``output`` (perf and
ring buffer records).
"""

from ebpfpy.codegen.bounds import emit_bounded_index, emit_clamp
from ebpfpy.codegen.calls import Func, HelperCallError, check_args, emit_args, emit_helper_call
from ebpfpy.codegen.ctx import (
    ARG_REGS_X86_64,
    PT_REGS_X86_64,
    emit_arg_load,
    emit_reg_load,
    emit_retval_load,
    emit_save_ctx,
    pt_regs_offset,
)
from ebpfpy.codegen.mapops import (
    BPF_ANY,
    BPF_EXIST,
    BPF_NOEXIST,
    emit_map_add,
    emit_map_delete,
    emit_map_lookup,
    emit_map_update,
)
from ebpfpy.codegen.memory import PROBE_READ_HELPERS, emit_probe_read, probe_read_helper
from ebpfpy.codegen.output import (
    BPF_F_CURRENT_CPU,
    emit_perf_event_output,
    emit_ringbuf_output,
    emit_ringbuf_reserve,
    emit_ringbuf_submit,
)
from ebpfpy.codegen.stack import MAX_STACK, StackError, StackFrame, StackSlot, emit_zero

__all__ = [
    "ARG_REGS_X86_64",
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_F_CURRENT_CPU",
    "BPF_NOEXIST",
    "MAX_STACK",
    "PROBE_READ_HELPERS",
    "PT_REGS_X86_64",
    "Func",
    "HelperCallError",
    "StackError",
    "StackFrame",
    "StackSlot",
    "check_args",
    "emit_arg_load",
    "emit_args",
    "emit_bounded_index",
    "emit_clamp",
    "emit_helper_call",
    "emit_map_add",
    "emit_map_delete",
    "emit_map_lookup",
    "emit_map_update",
    "emit_perf_event_output",
    "emit_probe_read",
    "emit_reg_load",
    "emit_retval_load",
    "emit_ringbuf_output",
    "emit_ringbuf_reserve",
    "emit_ringbuf_submit",
    "emit_save_ctx",
    "emit_zero",
    "probe_read_helper",
    "pt_regs_offset",
]
