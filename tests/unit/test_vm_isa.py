"""ebpfpy.vm: the interpreter against RFC 9669's corner cases, hand-written.

Each case is a short assembly program and the r0 the RFC says it returns.
"""

from __future__ import annotations

import pytest

from ebpfpy.isa import Insn, encode_all
from ebpfpy.isa.builder import FP, R0, R6, Builder
from ebpfpy.vm import VM, VMError

M64 = (1 << 64) - 1
INT64_MIN = 1 << 63


def run(src: str, **kwargs) -> int:
    vm = VM()
    return vm.run(vm.load(src), **kwargs)


def u64(v: int) -> int:
    return v & M64


CASES = {
    # ALU32 results are zero-extended to 64 bits.
    "alu32 add zero-extends": ("r0 = -1\nw0 += 1\nexit", 0),
    "alu32 mov zero-extends": ("r0 = -1\nw0 = w0\nexit", 0xFFFF_FFFF),
    "alu32 mov imm": ("r0 = -1\nw0 = -1\nexit", 0xFFFF_FFFF),
    "alu32 neg": ("w0 = 1\nw0 = -w0\nexit", 0xFFFF_FFFF),
    "alu64 neg": ("r0 = 1\nr0 = -r0\nexit", M64),
    "alu64 imm sign-extends": ("r0 = 0\nr0 += -1\nexit", M64),
    "alu32 sub wraps": ("w0 = 0\nw0 -= 1\nexit", 0xFFFF_FFFF),
    "alu64 mul wraps": ("r0 = 0x100000000 ll\nr0 *= r0\nexit", 0),
    "alu32 mul": ("r0 = 0x10001 ll\nw0 *= w0\nexit", 0x20001),
    # Division by zero gives 0; modulo by zero leaves dst (truncated for 32 bits).
    "div64 by zero": ("r0 = 5\nr1 = 0\nr0 /= r1\nexit", 0),
    "div32 by zero": ("r0 = 5\nr1 = 0\nw0 /= w1\nexit", 0),
    "div32 by zero in the low half": ("r0 = 5\nr1 = 0x100000000 ll\nw0 /= w1\nexit", 0),
    "mod64 by zero": ("r0 = -1\nr1 = 0\nr0 %= r1\nexit", M64),
    "mod32 by zero truncates": ("r0 = -1\nr1 = 0\nw0 %= w1\nexit", 0xFFFF_FFFF),
    "div64 unsigned": ("r0 = -1\nr0 /= 2\nexit", M64 // 2),
    "div64 by negative imm is unsigned": ("r0 = -1\nr0 /= -1\nexit", 1),
    "div32 unsigned": ("w0 = -1\nw0 /= 2\nexit", 0x7FFF_FFFF),
    "mod64": ("r0 = 17\nr0 %= 5\nexit", 2),
    # Signed division and modulo (off=1): truncation toward zero, the sign of the dividend.
    "sdiv64": ("r0 = -7\nr0 s/= 2\nexit", u64(-3)),
    "sdiv64 negative divisor": ("r0 = 7\nr1 = -2\nr0 s/= r1\nexit", u64(-3)),
    "smod64": ("r0 = -7\nr0 s%= 2\nexit", u64(-1)),
    "smod64 negative divisor": ("r0 = 7\nr0 s%= -2\nexit", 1),
    "sdiv64 INT_MIN / -1": ("r0 = 0x8000000000000000 ll\nr1 = -1\nr0 s/= r1\nexit", INT64_MIN),
    "smod64 INT_MIN % -1": ("r0 = 0x8000000000000000 ll\nr1 = -1\nr0 s%= r1\nexit", 0),
    "sdiv32 INT_MIN / -1": ("w0 = 0x80000000\nw0 s/= -1\nexit", 0x8000_0000),
    "smod32 INT_MIN % -1": ("w0 = 0x80000000\nw0 s%= -1\nexit", 0),
    "sdiv32": ("w0 = -7\nw0 s/= 2\nexit", 0xFFFF_FFFD),
    "smod32": ("w0 = -7\nw1 = 2\nw0 s%= w1\nexit", 0xFFFF_FFFF),
    "sdiv64 by zero": ("r0 = -7\nr1 = 0\nr0 s/= r1\nexit", 0),
    "smod64 by zero": ("r0 = -7\nr1 = 0\nr0 s%= r1\nexit", u64(-7)),
    "smod32 by zero truncates": ("r0 = -7\nr1 = 0\nw0 s%= w1\nexit", 0xFFFF_FFF9),
    "sdiv32 ignores the high halves": ("r0 = 0x1fffffff9 ll\nr1 = 0x100000002 ll\nw0 s/= w1\nexit", 0xFFFF_FFFD),
    # Shift amounts are masked.
    "lsh64 masks to 63": ("r0 = 1\nr1 = 65\nr0 <<= r1\nexit", 2),
    "lsh32 masks to 31": ("w0 = 1\nw1 = 33\nw0 <<= w1\nexit", 2),
    "rsh64 masks": ("r0 = -1\nr1 = 127\nr0 >>= r1\nexit", 1),
    "rsh32 zero-fills": ("r0 = -1\nw0 >>= 28\nexit", 0xF),
    "arsh64": ("r0 = -16\nr0 s>>= 2\nexit", u64(-4)),
    "arsh64 masks": ("r0 = -16\nr1 = 66\nr0 s>>= r1\nexit", u64(-4)),
    "arsh32 zero-extends": ("w0 = -16\nw0 s>>= 2\nexit", 0xFFFF_FFFC),
    "arsh32 masks": ("w0 = -16\nw1 = 34\nw0 s>>= w1\nexit", 0xFFFF_FFFC),
    # Sign-extending moves (MOVSX).
    "movsx64 s8": ("r1 = 0x180\nr0 = (s8)r1\nexit", u64(-128)),
    "movsx64 s16": ("r1 = 0x18000\nr0 = (s16)r1\nexit", u64(-0x8000)),
    "movsx64 s32": ("r1 = 0x80000000 ll\nr0 = (s32)r1\nexit", u64(-(1 << 31))),
    "movsx64 positive": ("r1 = 0x17f\nr0 = (s8)r1\nexit", 0x7F),
    "movsx32 s8": ("r1 = 0x80\nw0 = (s8)w1\nexit", 0xFFFF_FF80),
    "movsx32 s16": ("r1 = -1\nr1 <<= 15\nw0 = (s16)w1\nexit", 0xFFFF_8000),
    # Byte swaps.
    "be16": ("r0 = 0x0102030405060708 ll\nr0 = be16 r0\nexit", 0x0807),
    "be32": ("r0 = 0x0102030405060708 ll\nr0 = be32 r0\nexit", 0x08070605),
    "be64": ("r0 = 0x0102030405060708 ll\nr0 = be64 r0\nexit", 0x0807060504030201),
    "le16 truncates": ("r0 = 0x0102030405060708 ll\nr0 = le16 r0\nexit", 0x0708),
    "le32 truncates": ("r0 = 0x0102030405060708 ll\nr0 = le32 r0\nexit", 0x05060708),
    "le64": ("r0 = 0x0102030405060708 ll\nr0 = le64 r0\nexit", 0x0102030405060708),
    "bswap16": ("r0 = 0x0102030405060708 ll\nr0 = bswap16 r0\nexit", 0x0807),
    "bswap32": ("r0 = 0x0102030405060708 ll\nr0 = bswap32 r0\nexit", 0x08070605),
    "bswap64": ("r0 = 0x0102030405060708 ll\nr0 = bswap64 r0\nexit", 0x0807060504030201),
    # Loads and stores, sign-extending loads.
    "ldx zero-extends": ("*(u64 *)(r10 - 8) = -1\nr0 = *(u8 *)(r10 - 8)\nexit", 0xFF),
    "ldxsx s8": ("*(u8 *)(r10 - 1) = 0x80\nr0 = *(s8 *)(r10 - 1)\nexit", u64(-128)),
    "ldxsx s16": ("*(u16 *)(r10 - 2) = 0x8001\nr0 = *(s16 *)(r10 - 2)\nexit", u64(-0x7FFF)),
    "ldxsx s32": ("*(u32 *)(r10 - 4) = 0x80000000\nr0 = *(s32 *)(r10 - 4)\nexit", u64(-(1 << 31))),
    "ldxsx positive": ("*(u16 *)(r10 - 2) = 0x7fff\nr0 = *(s16 *)(r10 - 2)\nexit", 0x7FFF),
    "st dw sign-extends imm": ("*(u64 *)(r10 - 8) = -2\nr0 = *(u64 *)(r10 - 8)\nexit", u64(-2)),
    "stx truncates": ("r1 = 0x1234\n*(u8 *)(r10 - 1) = r1\nr0 = *(u8 *)(r10 - 1)\nexit", 0x34),
    "little endian": ("r1 = 0x0102\n*(u16 *)(r10 - 2) = r1\nr0 = *(u8 *)(r10 - 2)\nexit", 0x02),
    # Jumps: 64- and 32-bit, signed and unsigned, immediates sign-extended.
    "jeq32 looks at the low half": ("r0 = 0\nr1 = 0x100000000 ll\nif w1 == 0 goto +1\nexit\nr0 = 1\nexit", 1),
    "jeq64 looks at all": ("r0 = 0\nr1 = 0x100000000 ll\nif r1 == 0 goto +1\nexit\nr0 = 1\nexit", 0),
    "jslt64": ("r0 = 0\nr1 = -1\nif r1 s< 0 goto +1\nexit\nr0 = 1\nexit", 1),
    "jlt64 is unsigned": ("r0 = 0\nr1 = -1\nif r1 < 0 goto +1\nexit\nr0 = 1\nexit", 0),
    "jslt32 low half negative": ("r0 = 0\nr1 = 0xffffffff ll\nif w1 s< 0 goto +1\nexit\nr0 = 1\nexit", 1),
    "jslt64 same value positive": ("r0 = 0\nr1 = 0xffffffff ll\nif r1 s< 0 goto +1\nexit\nr0 = 1\nexit", 0),
    "jgt imm sign-extends": ("r0 = 0\nr1 = -2\nif r1 > -1 goto +1\nexit\nr0 = 1\nexit", 0),
    "jge imm sign-extends": ("r0 = 0\nr1 = -1\nif r1 >= -1 goto +1\nexit\nr0 = 1\nexit", 1),
    "jlt32 imm": ("r0 = 0\nw1 = -2\nif w1 < -1 goto +1\nexit\nr0 = 1\nexit", 1),
    "jset": ("r0 = 0\nr1 = 6\nif r1 & 2 goto +1\nexit\nr0 = 1\nexit", 1),
    "jset32 ignores the high half": ("r0 = 0\nr1 = 0x100000000 ll\nr2 = r1\nif w1 & w2 goto +1\nexit\nr0 = 1\nexit", 0),
    "jsge": ("r0 = 0\nr1 = -5\nr2 = -5\nif r1 s>= r2 goto +1\nexit\nr0 = 1\nexit", 1),
    "jsgt32": ("r0 = 0\nw1 = 1\nif w1 s> -1 goto +1\nexit\nr0 = 1\nexit", 1),
    "jsle": ("r0 = 0\nr1 = -6\nif r1 s<= -5 goto +1\nexit\nr0 = 1\nexit", 1),
    "jne": ("r0 = 0\nr1 = 3\nif r1 != 3 goto +1\nexit\nr0 = 1\nexit", 0),
    "jle": ("r0 = 0\nr1 = 3\nif r1 <= 3 goto +1\nexit\nr0 = 1\nexit", 1),
    "ja": ("r0 = 1\ngoto +1\nr0 = 2\nexit", 1),
    "gotol uses imm": ("r0 = 1\ngotol +1\nr0 = 2\nexit", 1),
    "backward jump loop": ("r0 = 0\nr1 = 10\nloop:\nr0 += r1\nr1 -= 1\nif r1 != 0 goto loop\nexit", 55),
    "may_goto falls through": ("r0 = 1\nmay_goto +1\nr0 = 2\nexit", 2),
    "ld_imm64": ("r0 = 0xfedcba9876543210 ll\nexit", 0xFEDCBA9876543210),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rfc9669_corner(name):
    src, expected = CASES[name]
    assert run(src) == expected, src


ATOMICS = {
    # (size, op text, initial memory, src, r0) -> (memory after, src after, r0 after)
    "add64": ("lock *(u64 *)(r10 - 8) += r1", 5, 3, 0, 8, 3, 0),
    "add32 wraps in 32 bits": ("lock *(u32 *)(r10 - 8) += r1", 0xFFFF_FFFF, 1, 0, 0, 1, 0),
    "or64": ("lock *(u64 *)(r10 - 8) |= r1", 5, 2, 0, 7, 2, 0),
    "and32": ("lock *(u32 *)(r10 - 8) &= r1", 7, 2, 0, 2, 2, 0),
    "xor64": ("lock *(u64 *)(r10 - 8) ^= r1", 7, 2, 0, 5, 2, 0),
    "fetch_add64": ("r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)", 5, 3, 0, 8, 5, 0),
    "fetch_or32": ("r1 = atomic_fetch_or((u32 *)(r10 - 8), r1)", 5, 2, 0, 7, 5, 0),
    "fetch_and64": ("r1 = atomic_fetch_and((u64 *)(r10 - 8), r1)", 7, 2, 0, 2, 7, 0),
    "fetch_xor32": ("r1 = atomic_fetch_xor((u32 *)(r10 - 8), r1)", 7, 2, 0, 5, 7, 0),
    "fetch32 zero-extends the old value": ("r1 = atomic_fetch_add((u32 *)(r10 - 8), r1)", 0xFFFF_FFFF,
                                           u64(-1), 0, 0xFFFF_FFFE, 0xFFFF_FFFF, 0),
    "xchg64": ("r1 = xchg_64(r10 - 8, r1)", 5, 9, 0, 9, 5, 0),
    "xchg32": ("w1 = xchg32_32(r10 - 8, w1)", 5, 9, 0, 9, 5, 0),
    "cmpxchg64 equal": ("r0 = cmpxchg_64(r10 - 8, r0, r1)", 5, 9, 5, 9, 9, 5),
    "cmpxchg64 not equal": ("r0 = cmpxchg_64(r10 - 8, r0, r1)", 5, 9, 4, 5, 9, 5),
    "cmpxchg32 compares the low half": ("w0 = cmpxchg32_32(r10 - 8, w0, w1)", 5, 9, 0x1_0000_0005, 9, 9, 5),
}


@pytest.mark.parametrize("name", list(ATOMICS))
def test_atomics(name):
    text, mem, src, r0, mem_after, src_after, r0_after = ATOMICS[name]
    vm = VM()
    out = vm.create_map("array", 4, 24, 1)
    prog = vm.load(f"""
        r1 = {mem} ll
        *(u64 *)(r10 - 8) = r1
        r1 = {src} ll
        r0 = {r0} ll
        {text}
        r6 = *(u64 *)(r10 - 8)
        ld_pseudo r2, 2, {out.fd}, 0
        *(u64 *)(r2 + 0) = r6
        *(u64 *)(r2 + 8) = r1
        *(u64 *)(r2 + 16) = r0
        exit
    """)
    vm.run(prog)
    raw = out.lookup_raw(b"\0\0\0\0")
    got = [int.from_bytes(raw[i:i + 8], "little") for i in (0, 8, 16)]
    assert got == [mem_after, src_after, r0_after]


def test_atomic_on_map_value_through_lookup():
    vm = VM()
    m = vm.create_map("array", key="I", value="Q", max_entries=2)
    m[1] = 40
    prog = vm.load(f"""
        *(u32 *)(r10 - 4) = 1
        ld_pseudo r1, 1, {m.fd}
        r2 = r10
        r2 += -4
        call map_lookup_elem
        if r0 == 0 goto out
        r1 = 2
        lock *(u64 *)(r0 + 0) += r1
        r0 = 0
    out:
        exit
    """)
    assert vm.run(prog) == 0
    assert m[1] == 42


# -- bpf-to-bpf calls, exits, tail calls --------------------------------------------------------


def test_local_call_has_its_own_frame_and_restores_r6_to_r9():
    src = """
        r6 = 6
        r7 = 7
        r8 = 8
        r9 = 9
        *(u64 *)(r10 - 8) = 100
        r1 = 5
        call sub
        r1 = *(u64 *)(r10 - 8)
        r0 += r1
        r0 += r6
        r0 += r7
        r0 += r8
        r0 += r9
        exit
    sub:
        *(u64 *)(r10 - 8) = 999
        r6 = 0
        r7 = 0
        r8 = 0
        r9 = 0
        r0 = r1
        r0 *= 2
        exit
    """
    assert run(src) == 10 + 100 + 6 + 7 + 8 + 9


def test_nested_calls_and_frame_limit():
    ok = "call a\nexit\na:\ncall b\nr0 += 1\nexit\nb:\nr0 = 40\nr0 += 1\nexit"
    assert run(ok) == 42
    deep = "r0 = 0\ncall f\nexit\nf:\nr0 += 1\ncall f\nexit"
    with pytest.raises(VMError, match="call depth exceeds 8 frames"):
        run(deep)


def test_tail_call_limit_is_33():
    vm = VM()
    counter = vm.create_map("array", key="I", value="Q", max_entries=1)
    jumps = vm.create_map("prog_array", max_entries=1)
    prog = vm.load(f"""
        r6 = r1
        ld_pseudo r1, 2, {counter.fd}, 0
        r2 = 1
        lock *(u64 *)(r1 + 0) += r2
        r1 = r6
        ld_pseudo r2, 1, {jumps.fd}
        r3 = 0
        call tail_call
        r0 = 7
        exit
    """)
    jumps[0] = prog
    assert vm.run(prog, b"") == 7
    assert counter[0] == 34  # the first run and 33 tail calls


def test_tail_call_to_an_empty_slot_falls_through():
    vm = VM()
    jumps = vm.create_map("prog_array", max_entries=4)
    target = vm.load("r0 = 99\nexit", name="target")
    prog = vm.load(f"ld_pseudo r2, 1, {jumps.fd}\nr3 = 1\ncall tail_call\nr0 = 1\nexit")
    assert vm.run(prog) == 1
    jumps[1] = target
    assert vm.run(prog) == 99


def test_program_from_bytes_builder_and_insns():
    b = Builder()
    b.mov(R0, 3)
    b.stx(8, FP, R0, -8)
    b.ldx(8, R6, FP, -8)
    b.mov(R0, R6)
    b.add(R0, 39)
    b.exit()
    insns = b.build()
    vm = VM()
    assert vm.run(vm.load(b)) == 42
    assert vm.run(vm.load(insns)) == 42
    assert vm.run(vm.load(encode_all(insns))) == 42


# -- faults and errors --------------------------------------------------------------------------


def fault(src: str, **kwargs) -> VMError:
    with pytest.raises(VMError) as info:
        run(src, **kwargs)
    return info.value


def test_stack_overflow_names_instruction_and_address():
    e = fault("r0 = 1\nr0 = *(u64 *)(r10 + 0)\nexit")
    assert e.index == 1 and e.address == 0x7FF0_0000_0200
    assert str(e).startswith("instruction 1: read of 8 bytes at 0x7ff000000200 is out of bounds")
    assert "stack frame 0" in str(e)


def test_stack_underflow_and_partial_overlap():
    e = fault("*(u64 *)(r10 - 516) = 1\nexit")
    assert e.index == 0 and "4 bytes before stack frame 0" in str(e)
    e = fault("r0 = *(u64 *)(r10 - 4)\nexit")
    assert "running 4 bytes past the end of stack frame 0" in str(e)


def test_null_and_wild_pointers():
    assert "null pointer" in str(fault("r1 = 0\nr0 = *(u8 *)(r1 + 0)\nexit"))
    e = fault("r1 = 0x123456789 ll\n*(u32 *)(r1 + 0) = 1\nexit")
    assert e.index == 2 and "no memory there" in str(e) and e.address == 0x123456789


def test_pointer_arithmetic_wraps():
    assert run("r1 = r10\nr1 += -8\nr2 = -1\nr1 += r2\nr1 += 1\n*(u64 *)(r1 + 0) = 5\nr0 = *(u64 *)(r10 - 8)\nexit") == 5


def test_memory_image_reads_and_bounds():
    assert run("r0 = *(u32 *)(r1 + 2)\nexit", mem=bytes(range(8))) == 0x05040302
    assert run("r0 = r2\nexit", mem=bytes(5)) == 5
    e = fault("r0 = *(u32 *)(r1 + 6)\nexit", mem=bytes(8))
    assert "memory image" in str(e) and e.index == 0


def test_context_region():
    vm = VM()
    prog = vm.load("r0 = *(u64 *)(r1 + 8)\n*(u64 *)(r1 + 0) = r0\nexit")
    assert vm.run(prog, (7).to_bytes(8, "little") + (9).to_bytes(8, "little")) == 9
    assert vm.read(vm.ctx_region.base, 8) == (9).to_bytes(8, "little")


def test_unknown_helper_is_named():
    e = fault("call get_current_task\nexit")
    assert e.index == 0 and "bpf_get_current_task#35" in str(e) and "not emulated" in str(e)


def test_kfunc_and_callx_are_refused_when_reached():
    assert run("r0 = 1\nexit\ncallx r1") == 1  # never reached
    e = fault("r0 = 1\ncallx r1\nexit")
    assert e.index == 1 and "callx" in str(e)


def test_load_time_errors():
    with pytest.raises(VMError, match="jump to 4 is outside the program"):
        VM().load("goto +3\nr0 = 0\nexit")
    with pytest.raises(VMError, match="r10 is read-only"):
        VM().load("r10 = 1\nexit")
    with pytest.raises(VMError, match="map fd 7"):
        VM().load("ld_pseudo r1, 1, 7\nexit")
    with pytest.raises(VMError, match="middle of an ld_imm64"):
        VM().load("goto +1\nr0 = 1 ll\nexit")
    with pytest.raises(VMError, match="cannot parse"):
        VM().load("r0 = what\nexit")
    with pytest.raises(VMError, match="empty"):
        VM().load("")


def test_running_off_the_end():
    e = fault("r0 = 1")
    assert "fell off the end" in str(e)


def test_endless_loop_stops():
    vm = VM(max_loops=1000)
    with pytest.raises(VMError, match="did not finish within 1000 backward jumps"):
        vm.run(vm.load("r0 = 0\nloop:\nr0 += 1\ngoto loop"))
    with pytest.raises(VMError, match="did not finish"):
        vm.run(vm.load("r0 = 0\nr1 = 0\nloop:\nr0 += 1\nif r1 == 0 goto loop\nexit"))


def test_insn_validation_errors_become_vmerrors():
    with pytest.raises(VMError, match="instruction 0"):
        VM().load(b"\xff" * 8)
    with pytest.raises(VMError, match="not an instruction"):
        VM().load([Insn(0x95), "exit"])


def test_errors_in_a_second_program_name_it():
    vm = VM()
    vm.load("r0 = 0\nexit", name="first")
    prog = vm.load("r0 = *(u64 *)(r10 + 8)\nexit", name="second")
    with pytest.raises(VMError) as info:
        vm.run(prog)
    assert info.value.program == "second" and str(info.value).startswith("second: instruction 0:")


def test_registers_start_clean_each_run():
    vm = VM()
    prog = vm.load("r0 = r6\nr6 = 5\nexit")
    assert vm.run(prog) == 0
    assert vm.run(prog) == 0


def test_trace_steps():
    vm = VM()
    prog = vm.load("r1 = 2\nr0 = r1\nr0 += 40\nexit", filename="t.s")
    steps = []
    assert vm.run(prog, trace=steps.append) == 42
    assert [s.index for s in steps] == [0, 1, 2, 3]
    assert steps[2].changed() == {0: 42}
    assert steps[-1].after is None
    assert str(steps[0].line) == "t.s:1: r1 = 2"
