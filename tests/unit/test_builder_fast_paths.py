"""The builder's fast paths and chunked encoding give what the general paths give.

The common emitters (ALU, loads and stores, conditional jumps, exit) take a fast path for usual
operands: the Insn is made without Insn()'s checks, shared with earlier identical instructions,
and not checked again by build() when its opcode is valid for every such operand. Registers
made outside the module's constants take the general path (so do odd operands): comparing the
two builders holds every shortcut against the reference, errors included.
"""
import dataclasses
import pickle
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.isa import insn as insn_mod
from ebpfpy.isa import opcodes as oc
from ebpfpy.isa.builder import (
    FP,
    R0,
    R1,
    R2,
    REGS,
    Builder,
    Reg,
)
from ebpfpy.isa.forms import _ALU_FAST, _KNOWN_MAX, _LDX_FAST, _ST_FAST, _STX_FAST
from ebpfpy.isa.insn import Insn, encode_all


def general(reg: Reg) -> Reg:
    """A register equal to ``reg`` that the fast paths do not take (no ``_number``)."""
    other = object.__new__(Reg)
    object.__setattr__(other, "n", reg.n)
    return other


SLOW_REGS = tuple(general(r) for r in REGS)
ALU_NAMES = sorted(_ALU_FAST[True])
CONDS = ("eq", "ne", "gt", "ge", "lt", "le", "set", "sgt", "sge", "slt", "sle")
SIZES = (1, 2, 4, 8, "b", "h", "w", "dw", "u8", "u16", "u32", "u64", 3, "q", None)
IMMS = (0, 1, -1, 0x7FFF_FFFF, -0x8000_0000, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, True, 1.0, "1")
OFFS = (0, 8, -8, 0x7FFF, -0x8000, 0x8000, True, 2.0)

# One emission: (method name, operands); register operands are indices into REGS (or an int 11,
# which is not a register: the error path).
emission = st.one_of(
    st.tuples(st.just("alu"), st.sampled_from(ALU_NAMES + ["nope"]), st.integers(0, 11),
              st.one_of(st.integers(0, 10).map(lambda n: ("reg", n)), st.sampled_from(IMMS)), st.booleans()),
    st.tuples(st.sampled_from(["mov", "add", "sdiv32", "arsh", "lsh32"]), st.integers(0, 11),
              st.one_of(st.integers(0, 10).map(lambda n: ("reg", n)), st.sampled_from(IMMS))),
    st.tuples(st.sampled_from(["ldx", "stx"]), st.sampled_from(SIZES), st.integers(0, 11), st.integers(0, 11),
              st.sampled_from(OFFS)),
    st.tuples(st.just("st"), st.sampled_from(SIZES), st.integers(0, 11), st.sampled_from(IMMS), st.sampled_from(OFFS)),
    st.tuples(st.sampled_from(["jeq", "jsgt32", "jset"]), st.integers(0, 11),
              st.one_of(st.integers(0, 10).map(lambda n: ("reg", n)), st.sampled_from(IMMS))),
    st.tuples(st.just("jmp"), st.sampled_from(CONDS + ("cond", "between")), st.integers(0, 11),
              st.one_of(st.integers(0, 10).map(lambda n: ("reg", n)), st.sampled_from(IMMS)), st.booleans()),
    st.tuples(st.sampled_from(["exit", "label", "comment", "ld_imm64", "span"])),
)


def emit(b: Builder, regs: tuple, step: tuple, n: int) -> None:
    def reg(i):
        return regs[i] if i <= 10 else 11

    def operand(x):
        return regs[x[1]] if isinstance(x, tuple) else x

    name = step[0]
    if name == "alu":
        b.alu(step[1], reg(step[2]), operand(step[3]), wide=step[4])
    elif name in ("ldx", "stx"):
        getattr(b, name)(step[1], reg(step[2]), reg(step[3]), step[4])
    elif name == "st":
        b.st(step[1], reg(step[2]), step[3], step[4])
    elif name.startswith("j") and name != "jmp":
        getattr(b, name)(reg(step[1]), operand(step[2]), "end")
    elif name == "jmp":
        b.jmp(step[1], reg(step[2]), operand(step[3]), "end", wide=step[4])
    elif name == "exit":
        b.exit()
    elif name == "label":
        b.label(f"l{n}")
    elif name == "comment":
        b.comment(f"c{n}")
    elif name == "ld_imm64":
        b.ld_imm64(regs[1], n << 33)
    elif name == "span":
        b.span = (n, 1, 2) if n % 3 else None
    else:
        getattr(b, name)(reg(step[1]), operand(step[2]))


def outcome(regs: tuple, program: list):
    b = Builder()
    emitted = []
    for n, step in enumerate(program):
        try:
            emit(b, regs, step, n)
            emitted.append(None)
        except Exception as e:  # the errors must match too
            emitted.append((type(e), str(e)))
    b.label("end")
    b.exit()
    try:
        insns = b.build()
    except Exception as e:
        return emitted, (type(e), str(e), getattr(e, "index", None))
    return emitted, (insns, encode_all(insns), b.spans, b.comments, b.label_slots, b.subprograms,
                     [dataclasses.astuple(i) for i in b._items])


@settings(max_examples=400, deadline=None)
@given(st.lists(emission, max_size=30))
def test_fast_paths_build_what_the_general_paths_build(program):
    assert outcome(REGS, program) == outcome(SLOW_REGS, program)


@pytest.mark.parametrize("wide", [True, False])
def test_trusted_alu_opcodes_are_valid_for_every_fast_operand(wide):
    for k_code, x_code, off in _ALU_FAST[wide].values():
        for dst in range(11):
            if k_code is not None:
                for imm in (0, 1, -1, 0x7FFF_FFFF, -0x8000_0000):
                    insn_mod._check_rules(Insn(k_code, dst, 0, off, imm))
            if x_code is not None:
                for src in range(11):
                    insn_mod._check_rules(Insn(x_code, dst, src, off, 0))


@pytest.mark.parametrize("table, src_is_reg", [(_LDX_FAST, True), (_STX_FAST, True), (_ST_FAST, False)])
def test_trusted_memory_opcodes_are_valid_for_every_fast_operand(table, src_is_reg):
    assert all(code is not None for code in table.values())
    for code in set(table.values()):
        for dst in range(11):
            for src in range(11) if src_is_reg else (0,):
                for off in (0, 1, -1, 0x7FFF, -0x8000):
                    for imm in (0,) if src_is_reg else (0, -1, 0x7FFF_FFFF, -0x8000_0000):
                        insn_mod._check_rules(Insn(code, dst, src, off, imm))


def test_fast_instructions_are_real_frozen_insns_shared_when_equal():
    b = Builder()
    b.mov(R1, R2)
    b.alu("mov", R1, R2)
    b.ldx(8, R0, FP, -8)
    b.exit()
    b.exit()
    first, second, load, end, end2 = b.build()
    assert type(first) is Insn and first == Insn(0xBF, 1, 2) and repr(first) == "Insn(op=191, dst=1, src=2, off=0, imm=0)"
    assert first is second and end is end2  # made once
    assert hash(load) == hash(Insn(0x79, 0, 10, -8)) and pickle.loads(pickle.dumps(load)) == load
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.imm = 3  # type: ignore[misc]
    assert dataclasses.replace(first, src=3) == Insn(0xBF, 1, 3)
    assert all(type(getattr(load, f)) is int for f in ("op", "dst", "src", "off", "imm"))


def test_the_shared_instructions_are_bounded():
    """The process's pool starts over when full; what it handed out before stays right, and
    encodes right whether its bytes are still known or not."""
    b = Builder()
    for i in range(_KNOWN_MAX + 10):
        b.add(R1, i)
    assert len(insn_mod._POOL) <= _KNOWN_MAX
    insns = b.build()
    assert [i.imm for i in insns] == list(range(_KNOWN_MAX + 10))
    assert encode_all(insns) == b"".join(i.encode() for i in insns)
    assert encode_all(insns[:4] + insns[-40:]) == b"".join(i.encode() for i in insns[:4] + insns[-40:])


def test_spans_are_those_of_the_last_build():
    """Spans are made when first read: instructions emitted after build() do not change them."""
    b = Builder()
    b.span = (1, 2, 3)
    b.mov(R1, 1)
    b.ld_imm64(R2, 1 << 40)
    b.span = (2, 1, 1)
    b.exit()
    b.build()
    b.span = (9, 9, 9)
    b.mov(R1, 2)
    b.ld_imm64(R2, 1 << 41)
    assert b.spans == [(1, 2, 3)] * 3 + [(2, 1, 1)]
    b.build()
    assert b.spans == [(1, 2, 3)] * 3 + [(2, 1, 1)] + [(9, 9, 9)] * 3


def test_with_imm_checks_a_patched_fast_instruction():
    b = Builder()
    site = b.mark()
    b.mov(R1, R2)  # register form: imm must stay 0
    b.exit()
    with pytest.raises(Exception, match="insn 0"):
        b.with_imm([site], 5).build()
    assert b.build()[0] == Insn(0xBF, 1, 2)


def test_registers_keep_their_dataclass_identity():
    assert Reg(3) == general(REGS[3]) == REGS[3] and hash(Reg(3)) == hash(REGS[3])
    assert repr(Reg(3)) == "r3" and dataclasses.fields(Reg)[0].name == "n"
    assert Reg(True)._number == 1 and Reg(11)._number is None and Reg(2.0)._number is None


# -- encode_all --------------------------------------------------------------------------------

any_insn = st.one_of(
    st.builds(Insn, st.sampled_from([0x07, 0xBF, 0x79, 0x7B, 0x62, 0x95, 0x85, 0x15]), st.integers(0, 10),
              st.integers(0, 10), st.integers(-(1 << 15), (1 << 15) - 1), st.integers(-(1 << 31), (1 << 31) - 1)),
    st.builds(lambda d, v: Insn(oc.LD_IMM64, d, 0, 0, v), st.integers(0, 10),
              st.integers(-(1 << 63), (1 << 64) - 1)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(any_insn, max_size=40), st.integers(0, 2100))
def test_encode_all_is_each_encoding_joined(program, pad):
    program = [Insn(0x95)] * pad + program  # move the interesting part across chunk boundaries
    expected = b"".join(i.encode() for i in program)
    assert encode_all(program) == expected
    assert encode_all(tuple(program)) == expected
    assert encode_all(i for i in program) == expected


def test_encode_all_fails_on_an_out_of_range_field_as_encode_does():
    bad = insn_mod._trusted(0x07, 1, 0, 0, 1 << 40)  # past Insn()'s checks
    with pytest.raises(struct.error):
        bad.encode()
    with pytest.raises(struct.error):
        encode_all([Insn(0x95)] * 5 + [bad])


def _grid(regs: tuple) -> list:
    """Every fast method on a small grid of operands, twice, the second time backwards: each
    instruction is met again after others that differ from it in one operand only."""
    few, operands = (0, 1, 10, 11), (0, 1, -1, 0x8000_0000, True)
    calls = []
    for wide in (True, False):
        for name in ALU_NAMES:
            for d in few:
                for s in [("reg", r) for r in (0, 1, 10)] + list(operands):
                    calls.append(("alu", name, d, s, wide))
                    calls.append((name if wide else name + "32", d, s))
    for method in ("ldx", "stx"):
        for size in (1, 8, "w", 3):
            for d in few:
                for s in few:
                    for off in (0, -8, 8, 0x7FFF):
                        calls.append((method, size, d, s, off))
    for size in (2, "dw"):
        for d in few:
            for imm in operands:
                for off in (0, -8):
                    calls.append(("st", size, d, imm, off))
    for cond in CONDS:
        for d in few:
            for s in [("reg", 1), ("reg", 2), 0, 7]:
                calls.append(("j" + cond, d, s))
                calls.append(("j" + cond + "32", d, s))
    calls.append(("exit",))
    return calls + calls[::-1]


def test_fast_paths_on_a_grid_of_operands_build_what_the_general_paths_build():
    program = _grid(REGS)
    fast, slow = outcome(REGS, program), outcome(SLOW_REGS, program)
    assert fast[0] == slow[0]  # the same emissions failed, with the same errors
    assert fast[1][0] == slow[1][0] and fast[1][1:] == slow[1][1:]
