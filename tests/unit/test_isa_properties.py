"""Property tests: every valid instruction survives bytes and text round trips."""

from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.isa import Insn, assemble, decode, encode_all, format_insn, format_program
from ebpfpy.isa import opcodes as oc

REG = st.integers(0, 10)
OFF = st.integers(-(1 << 15), (1 << 15) - 1)
IMM = st.integers(-(1 << 31), (1 << 31) - 1)
IMM64 = st.integers(-(1 << 63), (1 << 63) - 1)


@st.composite
def alu_insns(draw):
    klass = draw(st.sampled_from([oc.Class.ALU, oc.Class.ALU64]))
    operation = draw(st.sampled_from(list(oc.AluOp)))
    dst = draw(REG)
    if operation == oc.AluOp.END:
        order = (
            oc.Source.K
            if klass == oc.Class.ALU64
            else draw(st.sampled_from(list(oc.Source)))
        )
        return Insn(
            oc.alu(operation, order, klass),
            dst,
            imm=draw(st.sampled_from(oc.END_WIDTHS)),
        )
    if operation == oc.AluOp.NEG:
        return Insn(oc.alu(operation, oc.Source.K, klass), dst)
    source = draw(st.sampled_from(list(oc.Source)))
    off = 0
    if operation in (oc.AluOp.DIV, oc.AluOp.MOD):
        off = draw(st.sampled_from((0, 1)))
    elif operation == oc.AluOp.MOV and source == oc.Source.X:
        wide = (0, 8, 16, 32, oc.ADDR_SPACE_CAST, oc.ADDR_PERCPU)
        off = draw(st.sampled_from(wide if klass == oc.Class.ALU64 else (0, 8, 16)))
    op = oc.alu(operation, source, klass)
    if operation == oc.AluOp.MOV and off == oc.ADDR_SPACE_CAST:
        # the one X form with an imm: two 16-bit address spaces
        spaces = draw(st.integers(0, 0xFFFF)) << 16 | draw(st.integers(0, 0xFFFF))
        return Insn(op, dst, draw(REG), off, spaces)
    if source == oc.Source.X:
        return Insn(op, dst, draw(REG), off)
    return Insn(op, dst, 0, off, draw(IMM))


@st.composite
def jmp_insns(draw):
    klass = draw(st.sampled_from([oc.Class.JMP, oc.Class.JMP32]))
    operation = draw(st.sampled_from(list(oc.JmpOp)))
    if operation == oc.JmpOp.JA:
        if klass == oc.Class.JMP32:
            return Insn(oc.jmp(operation, klass=klass), imm=draw(IMM))
        return Insn(oc.jmp(operation), off=draw(OFF))
    if operation == oc.JmpOp.EXIT:
        return Insn(oc.jmp(operation))
    if operation == oc.JmpOp.JCOND:
        return Insn(oc.jmp(operation), off=draw(OFF))
    if operation == oc.JmpOp.CALL and draw(st.booleans()):
        return Insn(oc.jmp(operation, oc.Source.X), draw(REG))  # callx
    if operation == oc.JmpOp.CALL:
        kind = draw(st.sampled_from(list(oc.CallKind)))
        off = draw(OFF) if kind == oc.CallKind.KFUNC else 0
        return Insn(oc.jmp(operation), src=kind, off=off, imm=draw(IMM))
    source = draw(st.sampled_from(list(oc.Source)))
    op = oc.jmp(operation, source, klass)
    if source == oc.Source.X:
        return Insn(op, draw(REG), draw(REG), draw(OFF))
    return Insn(op, draw(REG), 0, draw(OFF), draw(IMM))


@st.composite
def ldst_insns(draw):
    form = draw(
        st.sampled_from(["ldimm64", "abs", "ind", "ldx", "ldsx", "st", "stx", "atomic"])
    )
    if form == "ldimm64":
        return Insn(
            oc.LD_IMM64,
            draw(REG),
            draw(st.sampled_from(list(oc.Pseudo))),
            imm=draw(IMM64),
        )
    if form in ("abs", "ind"):
        op = oc.mem(
            oc.Class.LD,
            draw(st.sampled_from(oc.LEGACY_SIZES)),
            oc.Mode.ABS if form == "abs" else oc.Mode.IND,
        )
        return Insn(op, 0, draw(REG) if form == "ind" else 0, imm=draw(IMM))
    if form == "ldsx":
        return Insn(
            oc.mem(oc.Class.LDX, draw(st.sampled_from(oc.MEMSX_SIZES)), oc.Mode.MEMSX),
            draw(REG),
            draw(REG),
            draw(OFF),
        )
    if form == "atomic":
        op = oc.mem(
            oc.Class.STX, draw(st.sampled_from(oc.ATOMIC_SIZES)), oc.Mode.ATOMIC
        )
        return Insn(
            op,
            draw(REG),
            draw(REG),
            draw(OFF),
            draw(st.sampled_from(list(oc.AtomicOp))),
        )
    klass = {"ldx": oc.Class.LDX, "st": oc.Class.ST, "stx": oc.Class.STX}[form]
    op = oc.mem(klass, draw(st.sampled_from(list(oc.Size))))
    if form == "st":
        return Insn(op, draw(REG), 0, draw(OFF), draw(IMM))
    return Insn(op, draw(REG), draw(REG), draw(OFF))


INSNS = st.one_of(alu_insns(), jmp_insns(), ldst_insns())
PROGRAMS = st.lists(INSNS, max_size=40)


@given(INSNS)
def test_generated_instructions_are_valid(insn):
    insn.check()


@given(INSNS)
def test_decode_encode_round_trip(insn):
    data = insn.encode()
    assert len(data) == 8 * insn.size
    assert decode(data) == [insn]


@given(INSNS)
def test_text_round_trip_of_one_instruction(insn):
    assert assemble(format_insn(insn)) == [insn]


@settings(max_examples=60)
@given(PROGRAMS)
def test_program_round_trips(program):
    assert decode(encode_all(program)) == program
    assert assemble(format_program(program)) == program
    assert assemble(format_program(program, style="llvm-v4", raw=True)) == program


@given(st.binary(max_size=64))
def test_decode_accepts_or_rejects_arbitrary_bytes_cleanly(data):
    """Garbage never escapes as anything but ISAError (a ValueError), and what decodes re-encodes."""
    try:
        program = decode(data)
    except ValueError as e:
        assert str(e).startswith("program length") or str(e).startswith("instruction ")
    else:
        assert encode_all(program) == data
