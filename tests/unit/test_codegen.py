"""Codegen emitters: exact instruction sequences, signature checks, stack accounting."""

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.codegen import (
    ARG_REGS_X86_64,
    MAX_STACK,
    PT_REGS_X86_64,
    Func,
    HelperCallError,
    StackError,
    StackFrame,
    StackSlot,
    emit_arg_load,
    emit_args,
    emit_bounded_index,
    emit_clamp,
    emit_helper_call,
    emit_map_add,
    emit_map_lookup,
    emit_map_update,
    emit_perf_event_output,
    emit_probe_read,
    emit_reg_load,
    emit_retval_load,
    emit_ringbuf_reserve,
    emit_ringbuf_submit,
    emit_save_ctx,
    emit_zero,
    pt_regs_offset,
)
from ebpfpy.isa.builder import R0, R1, R2, R6, R7, R8, REGS, Builder, BuildError
from ebpfpy.isa.insn import Insn

# raw opcodes (RFC 9669), spelled out so the expectations do not reuse the code under test
MOV_K, MOV_X, ADD_K, AND_K = 0xB7, 0xBF, 0x07, 0x57
ST_DW, ST_W, ST_H, ST_B, STX_DW, LDX_DW = 0x7A, 0x62, 0x6A, 0x72, 0x7B, 0x79
LDDW, CALL, EXIT, JA, JEQ_K, JGE_K, JLE_K = 0x18, 0x85, 0x95, 0x05, 0x15, 0x35, 0xB5


def lea(reg, off):
    """``reg = r10 + off``."""
    return [Insn(MOV_X, reg, 10), Insn(ADD_K, reg, 0, 0, off)]


def finish(b, **kw):
    b.exit()
    return b.build(**kw)[:-1]


# --- stack ---------------------------------------------------------------------------------


def test_alloc_is_aligned_below_r10_and_zeroed_widest_first():
    b = Builder()
    frame = StackFrame(b)
    key = frame.alloc(12, name="key")
    assert key == StackSlot(-16, 12, "key")
    small = frame.alloc(2, align=2, zero=False)
    assert small.off == -18 and frame.used == 18
    assert finish(b) == [Insn(ST_DW, 10, 0, -16, 0), Insn(ST_W, 10, 0, -8, 0)]


def test_zero_uses_narrow_stores_for_odd_sizes():
    b = Builder()
    emit_zero(b, StackSlot(-16, 7))
    assert finish(b) == [Insn(ST_W, 10, 0, -16, 0), Insn(ST_H, 10, 0, -12, 0), Insn(ST_B, 10, 0, -10, 0)]


def test_stack_limit_is_enforced_with_a_useful_message():
    frame = StackFrame(Builder())
    frame.alloc(256, zero=False, name="str")
    frame.alloc(200, zero=False, name="comm")
    assert frame.remaining == MAX_STACK - 456
    frame.alloc(56, zero=False)  # exactly 512
    with pytest.raises(StackError, match=r"512 of 512 bytes are used, mostly by str \(256 B\)"):
        frame.alloc(1, name="one more")
    with pytest.raises(BuildError):  # StackError is a BuildError
        StackFrame(Builder(), limit=16).alloc(17)


def test_scopes_give_bytes_back():
    frame = StackFrame(Builder())
    outer = frame.alloc(8, zero=False)
    with frame.scope():
        frame.alloc(500, zero=False)
    assert frame.used == 8 and frame.peak == 512  # 500 rounds up to 504
    again = frame.alloc(8, zero=False)
    assert again.off == outer.off - 8


def test_slot_fields_are_bounds_checked():
    slot = StackSlot(-32, 24, "rec")
    assert slot.field(8, 8) == StackSlot(-24, 8, "rec")
    with pytest.raises(StackError):
        slot.field(20, 8)


# --- helper calls --------------------------------------------------------------------------


def test_map_lookup_always_checks_for_null():
    b = Builder()
    key = StackSlot(-8, 8)
    assert emit_map_lookup(b, "m", key, on_null="miss") == R0
    b.ldx(8, R1, R0, 0)
    b.label("miss")
    assert finish(b, maps={"m": 42}) == [
        Insn(LDDW, 1, 1, 0, 42), *lea(2, -8), Insn(CALL, 0, 0, 0, 1), Insn(JEQ_K, 0, 0, 1, 0),
        Insn(LDX_DW, 1, 0, 0)]


def test_map_update_passes_key_value_and_flags():
    b = Builder()
    emit_map_update(b, "m", StackSlot(-8, 8), StackSlot(-24, 16), flags=1)
    assert finish(b, maps={"m": 3}) == [
        Insn(LDDW, 1, 1, 0, 3), *lea(2, -8), *lea(3, -24), Insn(MOV_K, 4, 0, 0, 1), Insn(CALL, 0, 0, 0, 2)]


def test_register_arguments_move_in_parallel_breaking_cycles_through_r0():
    b = Builder()
    # r1 <- r2, r2 <- r1 (a swap), r3 <- r1 (reads r1 before it is overwritten)
    emit_helper_call(b, 9, R2, R1, R1)  # skb_store_bytes: no signature in the table, so unchecked
    moves = finish(b)
    regs = {1: "a", 2: "b", 3: "c", 0: "z"}
    for insn in moves[:-1]:
        assert insn.op == MOV_X
        regs[insn.dst] = regs[insn.src]
    assert (regs[1], regs[2], regs[3]) == ("b", "a", "a")
    assert moves[-1] == Insn(CALL, 0, 0, 0, 9)
    assert any(i.dst == 0 for i in moves[:-1])  # the cycle went through r0


def test_constants_are_placed_after_register_moves():
    b = Builder()
    emit_helper_call(b, "probe_read_kernel", StackSlot(-16, 16), 16, R1)
    assert finish(b) == [Insn(MOV_X, 3, 1), *lea(1, -16), Insn(MOV_K, 2, 0, 0, 16), Insn(CALL, 0, 0, 0, 113)]


def test_sizes_default_to_the_slot_and_wide_constants_use_ld_imm64():
    b = Builder()
    emit_helper_call(b, "probe_read_user", StackSlot(-8, 8), None, 0x7FFF_0000_1000)
    assert finish(b) == [*lea(1, -8), Insn(MOV_K, 2, 0, 0, 8), Insn(LDDW, 3, 0, 0, 0x7FFF_0000_1000),
                         Insn(CALL, 0, 0, 0, 112)]


def test_callbacks_and_null_pointers():
    b = Builder()
    emit_helper_call(b, "loop", 10, Func("body"), 0, 0)
    b.exit()
    b.label("body")
    insns = finish(b)
    assert insns[1] == Insn(LDDW, 2, 4, 0, 5)  # slot 1 + 1 + 5 = 7: after call (5) and exit (6)
    assert insns[2:] == [Insn(MOV_K, 3, 0, 0, 0), Insn(MOV_K, 4, 0, 0, 0), Insn(CALL, 0, 0, 0, 181), Insn(EXIT)]


@pytest.mark.parametrize(
    "name, args, message",
    [
        ("map_lookup_elem", ("m", 5), r"argument 2 of bpf_map_lookup_elem#1 \(map_key\) cannot be 5"),
        ("map_lookup_elem", (StackSlot(-8, 8), StackSlot(-8, 8)), r"argument 1 .*\(map\)"),
        ("map_lookup_elem", ("m",), "takes 2 arguments, got 1"),
        ("ktime_get_ns", (1,), "takes 0 arguments"),
        ("get_current_comm", (StackSlot(-16, 16), 32), "32 bytes but the buffer before it has only 16"),
        ("get_current_comm", (StackSlot(-16, 16), 0), "must be positive"),
        ("perf_event_output", (StackSlot(-8, 8), "m", 0, StackSlot(-8, 8), 8), r"argument 1 .*\(ctx\)"),
        ("trace_printk", (StackSlot(-8, 8),), "takes 2..5 arguments"),
        ("probe_read_kernel", (StackSlot(-8, 8), 8, StackSlot(-16, 8)), r"argument 3 .*\(scalar\)"),
        ("skb_store_bytes", (1, 2, 3, 4, 5, 6), "at most 5"),
        ("no_such_helper", (), "unknown BPF helper"),
    ],
)
def test_arguments_are_checked_against_the_signature(name, args, message):
    with pytest.raises((HelperCallError, LookupError), match=message):
        emit_helper_call(Builder(), name, *args)


def test_optional_trailing_arguments_and_null_memory():
    b = Builder()
    emit_helper_call(b, "trace_printk", StackSlot(-8, 8), 8, R6)
    emit_helper_call(b, "snprintf", StackSlot(-64, 64), None, R7, 0, 0)
    assert Insn(MOV_K, 4, 0, 0, 0) in finish(b)


def test_map_add_increments_in_place_or_inserts():
    b = Builder()
    frame = StackFrame(b)
    key = frame.alloc(8, name="key")
    emit_map_add(frame, "m", key, R6)
    b.mov(R0, 0)
    insns = finish(b, maps={"m": 4})
    ops = [i.op for i in insns]
    assert ops.count(CALL) == 2 and 0xDB in ops  # lookup + update, and an atomic add
    assert frame.used == 8  # the value slot was scoped
    with pytest.raises(BuildError, match=r"r6\.\.r9"):
        emit_map_add(frame, "m", key, R2)


# --- bounds, memory, context ----------------------------------------------------------------


def test_bounded_index_by_branch_or_mask():
    b = Builder()
    emit_bounded_index(b, R7, 10, out="out")
    emit_bounded_index(b, R7, 16)
    b.label("out")
    assert finish(b) == [Insn(JGE_K, 7, 0, 1, 10), Insn(AND_K, 7, 0, 0, 15)]
    with pytest.raises(BuildError, match="power-of-two"):
        emit_bounded_index(Builder(), R7, 10)
    with pytest.raises(BuildError, match="positive"):
        emit_bounded_index(Builder(), R7, 0, out="x")


def test_clamp():
    b = Builder()
    emit_clamp(b, R8, 64)
    assert finish(b) == [Insn(JLE_K, 8, 0, 1, 64), Insn(MOV_K, 8, 0, 0, 64)]


@pytest.mark.parametrize(
    "space, string, helper_id",
    [("kernel", False, 113), ("kernel", True, 115), ("user", False, 112), ("user", True, 114),
     ("any", False, 4), ("any", True, 45)],
)
def test_probe_read_picks_the_helper(space, string, helper_id):
    b = Builder()
    emit_probe_read(b, StackSlot(-64, 64), R6, space=space, string=string)
    assert finish(b)[-1] == Insn(CALL, 0, 0, 0, helper_id)


def test_probe_read_with_variable_size_clamps_it_first():
    b = Builder()
    emit_probe_read(b, StackSlot(-32, 32), R6, size=R7, space="user", string=True)
    insns = finish(b)
    assert insns[:2] == [Insn(JLE_K, 7, 0, 1, 32), Insn(MOV_K, 7, 0, 0, 32)]
    assert Insn(MOV_X, 2, 7) in insns and Insn(MOV_X, 3, 6) in insns
    with pytest.raises(BuildError, match="address space"):
        emit_probe_read(Builder(), StackSlot(-8, 8), R6, space="disk")


def x86_pt_regs_offsets():
    """Field offsets of the x86-64 ``struct pt_regs``, parsed from the installed uapi header."""
    header = Path("/usr/include/x86_64-linux-gnu/asm/ptrace.h")
    if not header.exists():
        pytest.skip("x86 uapi headers not installed")
    text = header.read_text()
    body = text[text.index("#else /* __i386__ */"):]
    body = body[body.index("struct pt_regs {"): body.index("};")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.DOTALL)
    names = re.findall(r"unsigned long (\w+);", body)
    return {name: 8 * i for i, name in enumerate(names)}


def test_pt_regs_table_matches_the_header():
    header = x86_pt_regs_offsets()
    assert len(header) == len(PT_REGS_X86_64) == 21
    for name, off in header.items():
        assert pt_regs_offset(name) == off  # rdi, rax, eflags ... spellings
    for name in ("di", "si", "dx", "cx", "r8", "r9", "ax", "ip", "sp", "bp"):
        assert PT_REGS_X86_64[name] == header.get("r" + name, header.get(name))
    assert ARG_REGS_X86_64 == ("di", "si", "dx", "cx", "r8", "r9")


def test_context_loads():
    b = Builder()
    ctx = emit_save_ctx(b)
    emit_arg_load(b, R7, ctx, 0)
    emit_arg_load(b, R8, ctx, 5)
    emit_retval_load(b, R0, ctx)
    emit_reg_load(b, R1, ctx, "rip")
    assert finish(b) == [Insn(MOV_X, 6, 1), Insn(LDX_DW, 7, 6, 112), Insn(LDX_DW, 8, 6, 64),
                         Insn(LDX_DW, 0, 6, 80), Insn(LDX_DW, 1, 6, 128)]
    with pytest.raises(BuildError, match="arg6"):
        emit_arg_load(Builder(), R1, R6, 6)
    with pytest.raises(BuildError, match="unknown x86-64 register"):
        pt_regs_offset("xmm0")



# --- output ----------------------------------------------------------------------------------


def test_perf_output_flags_are_zero_extended_current_cpu():
    b = Builder()
    emit_perf_event_output(b, R6, "events", StackSlot(-24, 24))
    assert finish(b, maps={"events": 5}) == [
        Insn(MOV_X, 1, 6), Insn(LDDW, 2, 1, 0, 5), Insn(LDDW, 3, 0, 0, 0xFFFFFFFF), *lea(4, -24),
        Insn(MOV_K, 5, 0, 0, 24), Insn(CALL, 0, 0, 0, 25)]


def test_ringbuf_reserve_is_null_checked_and_submit_takes_the_pointer():
    b = Builder()
    emit_ringbuf_reserve(b, "rb", 16, on_null="full")
    b.mov(R6, R0)
    emit_ringbuf_submit(b, R6)
    emit_ringbuf_submit(b, R6, discard=True)
    b.label("full")
    assert finish(b, maps={"rb": 3}) == [
        Insn(LDDW, 1, 1, 0, 3), Insn(MOV_K, 2, 0, 0, 16), Insn(MOV_K, 3, 0, 0, 0), Insn(CALL, 0, 0, 0, 131),
        Insn(JEQ_K, 0, 0, 7, 0), Insn(MOV_X, 6, 0),
        Insn(MOV_X, 1, 6), Insn(MOV_K, 2, 0, 0, 0), Insn(CALL, 0, 0, 0, 132),
        Insn(MOV_X, 1, 6), Insn(MOV_K, 2, 0, 0, 0), Insn(CALL, 0, 0, 0, 133)]
    with pytest.raises(HelperCallError, match=r"ringbuf_mem|cannot be"):
        emit_ringbuf_submit(Builder(), StackSlot(-8, 8))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=5))
def test_parallel_moves_deliver_every_source(sources):
    """Any assignment of r0..r9 to r1..r5 ends with each argument register holding its source."""
    b = Builder()
    emit_args(b, tuple(REGS[n] for n in sources))
    regs = {n: f"v{n}" for n in range(11)}
    for insn in finish(b):
        assert insn.op == MOV_X and insn.dst <= 5
        regs[insn.dst] = regs[insn.src]
    assert [regs[i + 1] for i in range(len(sources))] == [f"v{n}" for n in sources]
    for n in range(6, 11):  # callee-saved registers are never written
        assert regs[n] == f"v{n}"
