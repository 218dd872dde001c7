"""The ISA's fast paths give the answers of the slow ones.

`Insn.check` first looks the fields up in a table of usual values and only runs the per-class
rules for the rest; decoding builds instructions without re-validating them; `Insn()` stores
plain in-range ints as they are. Each shortcut is held here against the general path it skips.
"""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.isa import Insn, ISAError, decode, encode_all, format_insn, format_program
from ebpfpy.isa import insn as insn_mod
from ebpfpy.isa import opcodes as oc
from ebpfpy.isa.disasm import STYLES, describe

# Field values the rules treat specially, plus ordinary ones on both sides of them.
DSTS = (0, 1, 10, 11, 15)
SRCS = (0, 1, 2, 3, 6, 7, 10, 11, 15)
OFFS = (0, 1, -1, 2, 8, 16, 32, -8, 0x7FFF, -0x8000)
IMMS = tuple(
    sorted({0, 1, -1, 2, 8, 16, 32, 64, 0x10000, 0x7FFFFFFF, -0x80000000}
           | set(map(int, oc.AtomicOp)))
)
IMMS64 = IMMS + (1 << 32, -(1 << 63), (1 << 63) - 1)


def rules_say(insn: Insn) -> str | None:
    """The per-class rules' verdict alone: None or the error message."""
    try:
        insn_mod._check_rules(insn)
    except ISAError as e:
        return str(e)
    return None


def check_says(insn: Insn) -> str | None:
    try:
        insn.check()
    except ISAError as e:
        return str(e)
    return None


@pytest.mark.parametrize("op", range(256), ids=lambda op: f"{op:#04x}")
def test_usual_fields_are_never_wider_than_the_rules(op):
    usual = insn_mod._usual_fields(op)
    if usual is None:
        assert not oc.is_valid(op)
        return
    dsts, srcs, offs, imms = usual
    accepted = 0
    grid = itertools.product(DSTS, SRCS, OFFS, IMMS64 if op == oc.LD_IMM64 else IMMS)
    for dst, src, off, imm in grid:
        if (dst in dsts and src in srcs and (offs is None or off in offs)
                and (imms is None or imm in imms)):
            insn = Insn(op, dst, src, off, imm)
            assert rules_say(insn) is None, insn
            accepted += 1
    assert accepted, f"no usual form of {op:#04x}: every instruction would take the slow path"


FIELDS = st.tuples(
    st.integers(0, 255),
    st.sampled_from(DSTS) | st.integers(0, 15),
    st.sampled_from(SRCS) | st.integers(0, 15),
    st.sampled_from(OFFS) | st.integers(-(1 << 15), (1 << 15) - 1),
    st.sampled_from(IMMS) | st.integers(-(1 << 31), (1 << 31) - 1),
)


@settings(max_examples=1000)
@given(FIELDS)
def test_check_says_what_the_rules_say(fields):
    insn = Insn(*fields)
    assert check_says(insn) == rules_say(insn)


@given(FIELDS)
def test_decoded_instructions_equal_constructed_ones(fields):
    op, dst, src, off, imm = fields
    data = Insn(op, dst, src, off, imm).encode()
    if op == oc.LD_IMM64:
        return  # two slots; covered by the LD_IMM64 cases below
    try:
        (got,) = decode(data)
    except ISAError as e:
        assert str(e) == f"instruction 0: {rules_say(Insn(*fields))}"
        return
    assert got == Insn(*fields)
    assert all(type(getattr(got, f)) is int for f in ("op", "dst", "src", "off", "imm"))


@pytest.mark.parametrize(
    "value", [0, 1, -1, 0xFFFF_FFFF, 1 << 32, -(1 << 63), (1 << 63) - 1, 0x8000_0000_0000_0000]
)
def test_ldimm64_round_trips_through_the_signed_slot_struct(value):
    insn = Insn(oc.LD_IMM64, 1, 0, 0, value)
    assert insn.imm == (value - (1 << 64) if value >= 1 << 63 else value)
    assert decode(insn.encode()) == [insn]
    assert decode(encode_all([insn, Insn(0x95)])) == [insn, Insn(0x95)]


def test_fields_are_stored_as_plain_ints():
    mov = oc.Class.ALU64 | oc.Source.K | oc.AluOp.MOV
    insn = Insn(mov, oc.Pseudo.MAP_FD, False, True, oc.AtomicOp.OR)
    assert (insn.op, insn.dst, insn.src, insn.off, insn.imm) == (0xB7, 1, 0, 1, 0x40)
    assert all(type(getattr(insn, f)) is int for f in ("op", "dst", "src", "off", "imm"))
    assert Insn(0x07, 1, 0, 0, 0xFFFF_FFFF).imm == -1  # the unsigned spelling still folds
    with pytest.raises(ISAError, match="does not fit in 32 bits"):
        Insn(0x07, 1, 0, 0, 1 << 32)
    with pytest.raises(ISAError, match=r"offset 1\.5"):
        Insn(0x07, 1, 0, 1.5)


def test_insn_stays_a_frozen_dataclass():
    import dataclasses
    import pickle

    insn = Insn(0x07, 1, 0, 0, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        insn.imm = 5  # type: ignore[misc]
    assert dataclasses.replace(insn, imm=5) == Insn(0x07, 1, 0, 0, 5)
    with pytest.raises(ISAError):
        dataclasses.replace(insn, imm=1 << 40)  # replace validates like Insn()
    assert pickle.loads(pickle.dumps(insn)) == insn
    assert {insn: 1}[Insn(0x07, 1, 0, 0, 4)] == 1
    assert repr(insn) == "Insn(op=7, dst=1, src=0, off=0, imm=4)"


@pytest.mark.parametrize(
    "op, field",
    [(oc.source, oc.Source), (oc.alu_op, oc.AluOp), (oc.jmp_op, oc.JmpOp), (oc.size, oc.Size),
     (oc.mode, oc.Mode)],
)
def test_opcode_field_tables_agree_with_the_enums(op, field):
    mask = {oc.Source: 0x08, oc.AluOp: 0xF0, oc.JmpOp: 0xF0, oc.Size: 0x18, oc.Mode: 0xE0}[field]
    for byte in range(256):
        try:
            expected = field(byte & mask)
        except ValueError as e:
            with pytest.raises(ValueError, match=str(e)):
                op(byte)
        else:
            assert op(byte) is expected


@given(st.lists(st.sampled_from([
    Insn(0x07, 1, 0, 0, -4), Insn(0xBC, 0, 1), Insn(0x79, 0, 1, -8), Insn(0xC3, 0, 1, 4, 0x01),
    Insn(0x85, 0, 0, 0, 1), Insn(0x85, 0, 1, 0, 3), Insn(0x18, 1, 1, 0, 7),
    Insn(0xDB, 0, 1, 0, 0xF1),
    Insn(0xB7, 0, 0, 0, 0), Insn(0x95), Insn(0x16, 1, 0, 3, 7), Insn(0x2E, 1, 2, -2),
]), max_size=12))
def test_compiled_templates_render_what_describe_parts_render(program):
    for style in STYLES:
        via_parts = [STYLES[style].render(describe(i)) for i in program]
        assert [format_insn(i, style) for i in program] == via_parts
        lines = format_program(program, with_index=False, style=style).splitlines()
        assert lines == via_parts


def test_repeated_lines_assemble_by_position_where_position_matters():
    from ebpfpy.isa import assemble

    text = "\n".join(["top:", "r1 += 1", "if r1 < 10 goto top", "r1 += 1", "if r1 < 10 goto top",
                      "call top", "call top", "exit"])
    assert assemble(text) == [
        Insn(0x07, 1, 0, 0, 1), Insn(0xA5, 1, 0, -2, 10),
        Insn(0x07, 1, 0, 0, 1), Insn(0xA5, 1, 0, -4, 10),
        Insn(0x85, 0, 1, 0, -5), Insn(0x85, 0, 1, 0, -6), Insn(0x95),
    ]  # fmt: skip
    # the same text is read alike wherever it is, notes included
    assert assemble("call 0x5 <kfunc>\ncall 0x5\ncall 0x5 <kfunc>") == [
        Insn(0x85, 0, 2, 0, 5), Insn(0x85, 0, 0, 0, 5), Insn(0x85, 0, 2, 0, 5)
    ]
    with pytest.raises(ISAError, match=r"^line 2: .*r11"):
        assemble("r0 = 0\nr11 = 1\nr11 = 1")


def test_pieces_that_start_a_line_start_with_the_characters_the_dispatch_expects():
    import re
    import string

    from ebpfpy.isa.asm import _PIECE_STARTS, PIECES

    for piece, starts in _PIECE_STARTS.items():
        for char in string.printable:
            could = any(re.match(PIECES[piece], char + rest) for rest in ("", "0", "10", "x1"))
            assert could == (char in starts), (piece, char)
