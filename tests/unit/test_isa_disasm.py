"""Disassembler: listings, the llvm-v4 and bpftool syntaxes, and what each style keeps."""

import doctest

import pytest

import ebpfpy.isa
from ebpfpy.isa import Insn, ISAError, assemble, format_insn, format_program

PROGRAM = [
    Insn(0xB7, 0, imm=1),  # r0 = 1
    Insn(0x18, 1, 1, imm=5),  # r1 = map fd 5 (two slots)
    Insn(0x15, 0, off=1),  # if r0 == 0 goto +1
    Insn(0x85, imm=1),  # call map_lookup_elem
    Insn(0x95),
]


def test_listing_indexes_are_slot_numbers():
    assert format_program(PROGRAM) == (
        "       0:\tr0 = 0x1\n"
        "       1:\tld_pseudo\tr1, 0x1, 0x5\n"
        "       3:\tif r0 == 0x0 goto +0x1\n"
        "       4:\tcall 0x1\n"
        "       5:\texit\n"
    )


def test_listing_with_raw_bytes_like_objdump():
    lines = format_program(PROGRAM, raw=True).splitlines()
    assert lines[0] == "       0:\tb7 00 00 00 01 00 00 00\tr0 = 0x1"
    assert (
        lines[1]
        == "       1:\t18 11 00 00 05 00 00 00 00 00 00 00 00 00 00 00\tld_pseudo\tr1, 0x1, 0x5"
    )


def test_listing_without_index():
    assert format_program(PROGRAM[:1], with_index=False) == "r0 = 0x1\n"
    assert format_program([]) == ""


def test_bpftool_style():
    assert format_program(PROGRAM, style="bpftool") == (
        "   0: (b7) r0 = 1\n"
        "   1: (18) r1 = map[id:5]\n"
        "   3: (15) if r0 == 0x0 goto pc+1\n"
        "   4: (85) call bpf_map_lookup_elem#1\n"
        "   5: (95) exit\n"
    )
    assert (
        format_program(PROGRAM[:1], style="bpftool", raw=True)
        == "   0: (b7) r0 = 1\n       b7 00 00 00 01 00 00 00\n"
    )


@pytest.mark.parametrize(
    "insn, text",
    [
        (Insn(0x63, 10, 1, -4), "(63) *(u32 *)(r10 -4) = r1"),
        (Insn(0x61, 1, 10, 0), "(61) r1 = *(u32 *)(r10 +0)"),
        (Insn(0x91, 1, 2, -1), "(91) r1 = *(s8 *)(r2 -1)"),
        (Insn(0x07, 2, imm=-4), "(07) r2 += -4"),
        (Insn(0x3F, 1, 2, 1), "(3f) r1 s/= r2"),
        (Insn(0xBC, 1, 2, 8), "(bc) w1 = (s8)w2"),
        (Insn(0xD7, 1, imm=32), "(d7) r1 = bswap32 r1"),
        (Insn(0xDC, 1, imm=16), "(dc) r1 = be16 r1"),
        (Insn(0xC6, 1, off=1, imm=-5), "(c6) if w1 s< 0xfffffffb goto pc+1"),
        (Insn(0x06, imm=-3), "(06) gotol pc-3"),
        (Insn(0x85, src=1, imm=9), "(85) call pc+9"),
        (Insn(0x85, src=2, imm=77), "(85) call kernel-function#77"),
        (Insn(0x18, 2, 2, imm=(8 << 32) | 570), "(18) r2 = map[id:570][0]+8"),
        (Insn(0x18, 2, 6, imm=(8 << 32) | 1), "(18) r2 = map[idx:1]+8"),
        (Insn(0x18, 2, 4, imm=3), "(18) r2 = subprog[+3]"),
        (Insn(0x18, 2, imm=-1), "(18) r2 = 0xffffffffffffffff"),
        (
            Insn(0xDB, 2, 1, imm=0x01),
            "(db) r1 = atomic64_fetch_add((u64 *)(r2 +0), r1)",
        ),
        (Insn(0xC3, 2, 1, imm=0xE1), "(c3) r1 = atomic_xchg((u32 *)(r2 +0), r1)"),
        (
            Insn(0xDB, 2, 1, imm=0xF1),
            "(db) r0 = atomic64_cmpxchg((u64 *)(r2 +0), r0, r1)",
        ),
        (Insn(0x50, src=2, imm=7), "(50) r0 = *(u8 *)skb[r2 + 7]"),
        (Insn(0x20, imm=12), "(20) r0 = *(u32 *)skb[12]"),
    ],
)
def test_bpftool_forms(insn, text):
    assert format_insn(insn, "bpftool") == text


@pytest.mark.parametrize(
    "insn, llvm, v4",
    [
        (Insn(0x61, 1, 10, -4), "r1 = *(u32 *)(r10 - 0x4)", "w1 = *(u32 *)(r10 - 0x4)"),
        (Insn(0x79, 1, 10, -8), "r1 = *(u64 *)(r10 - 0x8)", "r1 = *(u64 *)(r10 - 0x8)"),
        (Insn(0x73, 10, 1, -1), "*(u8 *)(r10 - 0x1) = r1", "*(u8 *)(r10 - 0x1) = w1"),
        (Insn(0x91, 1, 2), "r1 = *(s8 *)(r2 + 0x0)", "r1 = *(s8 *)(r2 + 0x0)"),
        (
            Insn(0xC3, 1, 2),
            "lock *(u32 *)(r1 + 0x0) += r2",
            "lock *(u32 *)(r1 + 0x0) += w2",
        ),
    ],
)
def test_llvm_v4_style_uses_w_registers_for_narrow_memory(insn, llvm, v4):
    """`llvm-objdump --mcpu=v4` prints 32-bit data registers; both read back the same."""
    assert format_insn(insn) == llvm
    assert format_insn(insn, "llvm-v4") == v4
    assert assemble(llvm) == assemble(v4) == [insn]


def test_annotations_keep_call_kinds_and_can_be_dropped():
    local, kfunc = Insn(0x85, src=1, imm=-1), Insn(0x85, src=2, off=1, imm=5)
    assert format_insn(local) == "call -0x1 <local>"
    assert format_insn(kfunc) == "call 0x5 <kfunc, 0x1>"
    assert format_insn(local, annotate=False) == format_insn(
        kfunc, annotate=False
    ).replace("0x5", "-0x1")
    assert assemble(format_program([local, kfunc])) == [local, kfunc]


def test_invalid_instruction_or_style_raises():
    with pytest.raises(ISAError, match="unknown opcode"):
        format_insn(Insn(0xFF))
    with pytest.raises(ISAError, match="unknown disassembly style"):
        format_insn(Insn(0x95), "gas")


def test_program_errors_name_the_slot():
    with pytest.raises(ISAError, match="instruction 3: unknown opcode 0xff"):
        format_program([Insn(0x18), Insn(0x95), Insn(0xFF)])


def test_str_is_the_listing_text():
    assert str(Insn(0x61, 1, 10, -4)) == "r1 = *(u32 *)(r10 - 0x4)"
    assert str(Insn(0xFF)) == repr(Insn(0xFF))  # never raises


def test_package_docstring_example():
    assert doctest.testmod(ebpfpy.isa).failed == 0
