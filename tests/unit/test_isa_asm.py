"""Assembler: the text around instructions, labels, helper names, and errors."""

import pytest

from ebpfpy.isa import Insn, ISAError, assemble, decode, format_program


def test_labels_comments_and_blank_lines():
    program = assemble(
        """
        ; count down from 3
        r0 = 3          # decimal is fine too
    loop:
        r0 += -1        // three comment styles
        if r0 s> 0 goto loop
        goto out
        r0 = 7
    out:
        exit
        """
    )
    assert program == [
        Insn(0xB7, 0, imm=3),
        Insn(0x07, 0, imm=-1),
        Insn(0x65, 0, off=-2, imm=0),
        Insn(0x05, off=1),
        Insn(0xB7, 0, imm=7),
        Insn(0x95),
    ]


def test_labels_count_slots_across_ldimm64():
    program = assemble("goto end\nr1 = 0x100000000 ll\nend:\nexit")
    assert program[0] == Insn(0x05, off=2)
    assert program[0].jump_target(0) == 3


def test_gotol_and_backward_numeric_targets():
    assert assemble("gotol +0x10000\ngoto -0x1\ngotol top\ntop:") == [
        Insn(0x06, imm=0x10000),
        Insn(0x05, off=-1),
        Insn(0x06, imm=0),
    ]


def test_call_helper_by_name_number_or_label():
    program = assemble(
        """
        call bpf_map_lookup_elem
        call ktime_get_ns
        call 0x6
        call sub
        exit
    sub:
        exit
        """
    )
    assert program[:3] == [Insn(0x85, imm=1), Insn(0x85, imm=5), Insn(0x85, imm=6)]
    assert program[3] == Insn(0x85, src=1, imm=1)  # bpf-to-bpf: pc-relative
    assert program[3].jump_target(3) == 5


def test_reads_llvm_objdump_output_back():
    listing = """
/tmp/x.o:\tfile format elf64-bpf

Disassembly of section .text:

0000000000000000 <f>:
       0:\tb7 00 00 00 00 00 00 00\tr0 = 0x0
       1:\t18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr1 = 0x0 ll
\t\t0000000000000008:  R_BPF_64_64\tcounts
       3:\t15 01 01 00 00 00 00 00\tif r1 == 0x0 goto +0x1 <f+0x28>
       4:\t85 10 00 00 ff ff ff ff\tcall -0x1 <local>
       5:\t95 00 00 00 00 00 00 00\texit
"""
    assert assemble(listing) == [
        Insn(0xB7),
        Insn(0x18, 1, imm=0),
        Insn(0x15, 1, off=1),
        Insn(0x85, src=1, imm=-1),
        Insn(0x95),
    ]


def test_reads_its_own_listing_back():
    program = decode(
        bytes.fromhex(
            "bf1600000000000061a1fcff00000000c3210400e10000009500000000000000"
        )
    )
    assert assemble(format_program(program, raw=True)) == program
    assert assemble(format_program(program, style="llvm-v4")) == program


def test_whitespace_is_free_between_tokens():
    assert assemble("r1=*(u32*)(r10-4)\n*(u64 *)( r10 + 8 ) = r1") == [
        Insn(0x61, 1, 10, -4),
        Insn(0x7B, 10, 1, 8),
    ]


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("r0 = 0\nr0 @= 1\nexit", 2, "cannot parse 'r0 @= 1'"),
        ("r0 = 0\n\nr11 = 1", 3, "no register r11"),
        ("w1 += r2", 1, "mixes r and w"),
        ("r1 = 0x100000000", 1, "does not fit in 32 bits"),
        ("goto nowhere", 1, "unknown label 'nowhere'"),
        ("goto +0x8000", 1, "does not fit in 16 bits"),
        ("call no_such_helper", 1, "unknown BPF helper"),
        ("w1 = (s32)w2", 1, "offset must be one of"),
        ("r1 = le8 r1", 1, "16, 32 or 64, not 8"),
        ("a:\nexit\na:\nexit", 3, "defined twice"),
        ("call 0x5 <bogus>", 1, "unknown call annotation"),
        (
            "w0 = cmpxchg32_32(r1 + 0x0, w1, w2)",
            1,
            "cannot parse",
        ),  # the comparand is r0
    ],
)
def test_errors_name_the_line_and_its_text(text, line, words):
    with pytest.raises(ISAError) as err:
        assemble(text)
    assert str(err.value).startswith(f"line {line}: ")
    assert words in str(err.value)
    assert err.value.line == line


def test_empty_text_is_an_empty_program():
    assert assemble("") == [] and assemble("; nothing\n\n") == []
