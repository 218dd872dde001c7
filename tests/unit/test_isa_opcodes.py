"""Opcode fields: an opcode is the OR of its fields and splits back into them."""

import pytest

from ebpfpy.isa import opcodes as oc


def test_fields_compose_by_or():
    assert oc.alu(oc.AluOp.ADD, oc.Source.X, oc.Class.ALU64) == 0x0F
    assert oc.alu(oc.AluOp.MOV, oc.Source.K, oc.Class.ALU) == 0xB4
    assert oc.jmp(oc.JmpOp.JEQ) == 0x15
    assert oc.jmp(oc.JmpOp.JA, klass=oc.Class.JMP32) == 0x06
    assert oc.mem(oc.Class.LDX, oc.Size.W) == 0x61
    assert oc.mem(oc.Class.LDX, oc.Size.B, oc.Mode.MEMSX) == 0x91
    assert oc.mem(oc.Class.STX, oc.Size.DW, oc.Mode.ATOMIC) == 0xDB
    assert oc.LD_IMM64 == 0x18


@pytest.mark.parametrize("op", [op for op in range(256) if oc.is_valid(op)])
def test_valid_opcodes_split_into_their_fields(op):
    klass = oc.cls(op)
    if oc.is_alu(op):
        assert oc.alu(oc.alu_op(op), oc.source(op), klass) == op
    elif oc.is_jmp(op):
        assert oc.jmp(oc.jmp_op(op), oc.source(op), klass) == op
    else:
        assert oc.mem(klass, oc.size(op), oc.mode(op)) == op


@pytest.mark.parametrize(
    "op, why",
    [(0x8C, "NEG has no X form"), (0xDF, "ALU64|END|X does not exist"), (0xED, "may_goto has no X form"),
     (0x86, "JMP32 has no call"), (0x96, "JMP32 has no exit"), (0x0D, "JA has no X form"),
     (0xE6, "JMP32 has no may_goto"),
    (0xF5, "jump op 0xf0 is undefined"), (0x38, "LD_IMM64 is DW only"), (0x78, "LD_ABS has no DW"),
     (0x99, "MEMSX has no DW"), (0xC2, "ST has no ATOMIC"), (0xD3, "ATOMIC has no byte size"),
     (0xA1, "mode 0xa0 is undefined"), (0xF4, "ALU op 0xf0 is undefined")],
)  # fmt: skip
def test_invalid_opcodes(op, why):
    assert not oc.is_valid(op), why


def test_each_field_has_its_names():
    assert oc.Class(0x07).name == "ALU64" and oc.AluOp(0xD0).name == "END"
    assert oc.Mode(0x80).name == "MEMSX" and oc.Size(0x18).name == "DW"
    assert oc.AtomicOp(0xF1).name == "CMPXCHG" and oc.Pseudo(2).name == "MAP_VALUE"
    assert oc.SIZE_BYTES[oc.Size.H] == 2 and oc.SIZE_OF_BYTES[8] == oc.Size.DW
