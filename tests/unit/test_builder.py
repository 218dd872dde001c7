"""The builder: one method per instruction family, labels, 2-slot LD_IMM64, maps, spans.

Expected opcodes are written as the raw RFC 9669 bytes so these tests do not share tables with
the code they check.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R6, R10, Builder, BuildError, Reg
from ebpfpy.isa.errors import ISAError
from ebpfpy.isa.insn import Insn, decode, encode_all


def build(fn, **kw):
    b = Builder()
    fn(b)
    return b.build(**kw)


@pytest.mark.parametrize(
    "emit, expected",
    [
        (lambda b: b.mov(R1, 5), Insn(0xB7, 1, 0, 0, 5)),
        (lambda b: b.mov(R1, R2), Insn(0xBF, 1, 2)),
        (lambda b: b.mov32(R1, 0xFFFFFFFF), Insn(0xB4, 1, 0, 0, -1)),
        (lambda b: b.mov32(R1, R2), Insn(0xBC, 1, 2)),
        (lambda b: b.add(R1, 4), Insn(0x07, 1, 0, 0, 4)),
        (lambda b: b.add(R1, R2), Insn(0x0F, 1, 2)),
        (lambda b: b.add32(R1, -1), Insn(0x04, 1, 0, 0, -1)),
        (lambda b: b.sub(R3, R1), Insn(0x1F, 3, 1)),
        (lambda b: b.mul(R1, 3), Insn(0x27, 1, 0, 0, 3)),
        (lambda b: b.div(R1, R2), Insn(0x3F, 1, 2)),
        (lambda b: b.sdiv(R1, R2), Insn(0x3F, 1, 2, 1)),
        (lambda b: b.mod32(R1, 7), Insn(0x94, 1, 0, 0, 7)),
        (lambda b: b.smod(R1, 7), Insn(0x97, 1, 0, 1, 7)),
        (lambda b: b.or_(R1, 1), Insn(0x47, 1, 0, 0, 1)),
        (lambda b: b.and_(R1, 0xFF), Insn(0x57, 1, 0, 0, 0xFF)),
        (lambda b: b.lsh(R1, 32), Insn(0x67, 1, 0, 0, 32)),
        (lambda b: b.rsh(R1, R2), Insn(0x7F, 1, 2)),
        (lambda b: b.arsh32(R1, 3), Insn(0xC4, 1, 0, 0, 3)),
        (lambda b: b.xor(R1, R1), Insn(0xAF, 1, 1)),
        (lambda b: b.neg(R1), Insn(0x87, 1)),
        (lambda b: b.neg32(R1), Insn(0x84, 1)),
        (lambda b: b.movsx(R1, R2, 16), Insn(0xBF, 1, 2, 16)),
        (lambda b: b.movsx(R1, R2, 8, wide=False), Insn(0xBC, 1, 2, 8)),
        (lambda b: b.to_be(R1, 16), Insn(0xDC, 1, 0, 0, 16)),
        (lambda b: b.to_le(R1, 32), Insn(0xD4, 1, 0, 0, 32)),
        (lambda b: b.bswap(R1, 64), Insn(0xD7, 1, 0, 0, 64)),
        (lambda b: b.ldx(4, R0, R1, 8), Insn(0x61, 0, 1, 8)),
        (lambda b: b.ldx("dw", R0, R1), Insn(0x79, 0, 1)),
        (lambda b: b.ldx("u8", R0, R1, -1), Insn(0x71, 0, 1, -1)),
        (lambda b: b.ldx_sx(1, R0, R1, 2), Insn(0x91, 0, 1, 2)),
        (lambda b: b.ldx_sx("h", R0, R1), Insn(0x89, 0, 1)),
        (lambda b: b.stx(8, FP, R1, -8), Insn(0x7B, 10, 1, -8)),
        (lambda b: b.stx(2, R6, R1, 4), Insn(0x6B, 6, 1, 4)),
        (lambda b: b.st(4, FP, 7, -4), Insn(0x62, 10, 0, -4, 7)),
        (lambda b: b.st("b", FP, 255, -1), Insn(0x72, 10, 0, -1, 255)),
        (lambda b: b.atomic_add(8, R0, R1), Insn(0xDB, 0, 1, 0, 0x00)),
        (lambda b: b.atomic_add(4, R0, R1, 4, fetch=True), Insn(0xC3, 0, 1, 4, 0x01)),
        (lambda b: b.atomic_or(8, R0, R1), Insn(0xDB, 0, 1, 0, 0x40)),
        (lambda b: b.atomic_and(8, R0, R1), Insn(0xDB, 0, 1, 0, 0x50)),
        (lambda b: b.atomic_xor(8, R0, R1, fetch=True), Insn(0xDB, 0, 1, 0, 0xA1)),
        (lambda b: b.atomic_xchg(8, R0, R1), Insn(0xDB, 0, 1, 0, 0xE1)),
        (lambda b: b.atomic_cmpxchg(8, R6, R1, 16), Insn(0xDB, 6, 1, 16, 0xF1)),
        (lambda b: b.ld_imm64(R1, 0x1122334455667788), Insn(0x18, 1, 0, 0, 0x1122334455667788)),
        (lambda b: b.ld_imm64(R1, 0xFFFFFFFFFFFFFFFF), Insn(0x18, 1, 0, 0, -1)),
        (lambda b: b.ld_abs(2, 12), Insn(0x28, 0, 0, 0, 12)),
        (lambda b: b.ld_ind(1, R1, 3), Insn(0x50, 0, 1, 0, 3)),
        (lambda b: b.call("map_lookup_elem"), Insn(0x85, 0, 0, 0, 1)),
        (lambda b: b.call("bpf_get_current_pid_tgid"), Insn(0x85, 0, 0, 0, 14)),
        (lambda b: b.call(5), Insn(0x85, 0, 0, 0, 5)),
        (lambda b: b.call_kfunc(1234), Insn(0x85, 0, 2, 0, 1234)),
        (lambda b: b.exit(), Insn(0x95)),
    ],
)
def test_single_instruction(emit, expected):
    assert build(emit) == [expected]


@pytest.mark.parametrize(
    "cond, wide, reg_op, imm_op",
    [
        ("eq", True, 0x1D, 0x15), ("gt", True, 0x2D, 0x25), ("ge", True, 0x3D, 0x35),
        ("set", True, 0x4D, 0x45), ("ne", True, 0x5D, 0x55), ("sgt", True, 0x6D, 0x65),
        ("sge", True, 0x7D, 0x75), ("lt", True, 0xAD, 0xA5), ("le", True, 0xBD, 0xB5),
        ("slt", True, 0xCD, 0xC5), ("sle", True, 0xDD, 0xD5),
        ("eq", False, 0x1E, 0x16), ("ne", False, 0x5E, 0x56), ("slt", False, 0xCE, 0xC6),
    ],
)
def test_conditional_jumps(cond, wide, reg_op, imm_op):
    suffix = "" if wide else "32"
    b = Builder()
    b.label("top")
    getattr(b, f"j{cond}{suffix}")(R1, R2, "out")
    b.jmp(cond, R1, 9, "top", wide=wide)
    b.label("out")
    b.exit()
    assert b.build() == [Insn(reg_op, 1, 2, 1), Insn(imm_op, 1, 0, -2, 9), Insn(0x95)]


def test_forward_and_backward_labels_count_ld_imm64_as_two_slots():
    b = Builder()
    b.label("start")          # slot 0
    b.ld_imm64(R1, 1 << 40)   # slots 0-1
    b.jeq(R1, 0, "end")       # slot 2
    b.ld_imm64(R2, 2)         # slots 3-4
    b.ja("start")             # slot 5
    b.label("end")
    b.mov(R0, 0)              # slot 6
    b.exit()                  # slot 7
    insns = b.build()
    # list positions are instructions, offsets are slots
    assert insns[1] == Insn(0x15, 1, 0, 3, 0)     # slot 2 + 1 + 3 = 6
    assert insns[3] == Insn(0x05, 0, 0, -6, 0)    # slot 5 + 1 - 6 = 0
    assert b.label_slots == {"start": 0, "end": 6}
    assert sum(i.size for i in insns) == 8
    assert decode(encode_all(insns)) == insns


def test_gotol_and_local_call_put_the_offset_in_imm():
    b = Builder()
    b.call_local("sub")
    b.gotol("out")
    b.label("sub")
    b.mov(R0, 1)
    b.exit()
    b.label("out")
    b.exit()
    assert b.build() == [Insn(0x85, 0, 1, 0, 1), Insn(0x06, 0, 0, 0, 2), Insn(0xB7, 0, 0, 0, 1),
                         Insn(0x95), Insn(0x95)]
    assert b.subprograms == [0, 2]


def test_ld_func_points_at_a_subprogram():
    b = Builder()
    b.ld_func(R2, "cb")
    b.exit()
    b.label("cb")
    b.exit()
    assert b.build()[0] == Insn(0x18, 2, 4, 0, 2)  # slot 0 + 1 + 2 = 3
    assert b.subprograms == [0, 3]


class FakeMapFD:
    """Anything with an ``fd`` attribute is a map reference; an FD-like owner has fileno()."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


def test_map_references_resolve_late_by_object_and_by_name():
    class Holder:
        fd = None

    held = Holder()
    b = Builder()
    b.ld_map_fd(R1, held)
    b.ld_map_fd(R2, "counts")
    b.ld_map_value(R3, "counts", 16)
    held.fd = 7  # read at build time, not at emit time
    assert b.build(maps={"counts": 9}) == [
        Insn(0x18, 1, 1, 0, 7), Insn(0x18, 2, 1, 0, 9), Insn(0x18, 3, 2, 0, 9 | (16 << 32))]
    # building again with other fds gives other instructions; the builder is unchanged
    held.fd = FakeMapFD(11)
    again = b.build(maps={"counts": FakeMapFD(12)})
    assert [i.imm & 0xFFFFFFFF for i in again] == [11, 12, 12]


def test_errors_name_the_instruction_and_label():
    b = Builder()
    b.mov(R0, 0)
    b.ld_imm64(R1, 1)
    b.jeq(R0, 0, "nowhere")
    b.exit()
    with pytest.raises(BuildError) as err:
        b.build()
    assert err.value.index == 3 and err.value.label == "nowhere"
    assert "insn 3" in str(err.value) and "nowhere" in str(err.value)
    assert isinstance(err.value, ISAError) and isinstance(err.value, ValueError)

    b = Builder()
    b.label("x")
    b.exit()
    with pytest.raises(BuildError, match="duplicate label 'x'"):
        b.label("x")

    b = Builder()
    b.ja("end")
    b.label("end")
    with pytest.raises(BuildError, match="past the last instruction"):
        b.build()

    b = Builder()
    b.ld_map_fd(R1, "missing")
    b.exit()
    with pytest.raises(BuildError, match="'missing'") as err:
        b.build(maps={"other": 3})
    assert err.value.index == 0


def test_out_of_range_jump_suggests_gotol():
    b = Builder()
    b.ja("far")
    for _ in range(1 << 15):
        b.mov(R0, 0)
    b.label("far")
    b.exit()
    with pytest.raises(BuildError, match="gotol") as err:
        b.build()
    assert err.value.index == 0 and err.value.label == "far"
    # one slot less is still in range
    b = Builder()
    b.ja("far")
    for _ in range((1 << 15) - 1):
        b.mov(R0, 0)
    b.label("far")
    b.exit()
    assert b.build()[0].off == (1 << 15) - 1


@pytest.mark.parametrize(
    "emit, message",
    [
        (lambda b: b.mov(R1, 0x80000000), "ld_imm64"),
        (lambda b: b.mov32(R1, 1 << 32), "32-bit"),
        (lambda b: b.mov(5, 1), "R0..R10"),
        (lambda b: b.mov(Reg(11), 1), "R0..R10"),
        (lambda b: b.ldx(3, R0, R1), "access size"),
        (lambda b: b.ldx_sx(8, R0, R1), "1, 2 or 4"),
        (lambda b: b.atomic_add(2, R0, R1), "4 or 8"),
        (lambda b: b.jmp("between", R0, 1, "x"), "unknown jump condition"),
        (lambda b: b.alu("frobnicate", R0, 1), "unknown ALU"),
        (lambda b: b.movsx(R0, R1, 32, wide=False), "movsx"),
        (lambda b: b.stx(8, FP, R1, 1 << 15), "16 bits"),
        (lambda b: b.call("map_lookup"), "did you mean map_lookup_elem"),
    ],
)
def test_bad_operands_are_rejected_when_emitted(emit, message):
    with pytest.raises(ValueError, match=message):
        emit(Builder())


def test_spans_and_comments_are_kept_per_slot():
    b = Builder()
    b.span = (1, 1, 5)
    b.mov(R0, 0)
    with b.at((2, 3, 9)):
        b.comment("load the constant")
        b.ld_imm64(R1, 1 << 33)
        b.comment("compare")
        b.comment("twice")
        b.jeq(R1, R0, "out")
    assert b.span == (1, 1, 5)
    b.span = None
    b.label("out")
    b.exit()
    insns = b.build()
    assert len(b.spans) == sum(i.size for i in insns) == 5
    assert b.spans == [(1, 1, 5), (2, 3, 9), (2, 3, 9), (2, 3, 9), None]
    assert b.comments == {1: ("load the constant",), 3: ("compare", "twice")}


def test_fresh_labels_do_not_collide():
    b = Builder()
    names = {b.fresh_label("x") for _ in range(5)}
    assert len(names) == 5
    b.label(".x6")
    assert b.fresh_label("x") != ".x6"


def test_pc_counts_slots():
    b = Builder()
    assert b.pc == 0
    b.ld_imm64(R1, 0)
    b.mov(R10, R1)
    assert b.pc == 3 and len(b) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7)), min_size=1, max_size=40))
def test_every_jump_lands_on_its_label(program):
    """Random mixes of 1- and 2-slot instructions with jumps to 8 labels: targets match."""
    b = Builder()
    wanted = []  # (slot of jump, label)
    for wide, target in program:
        if wide:
            b.ld_imm64(R1, target)
        wanted.append((b.pc, f"l{target}"))
        b.jne(R1, target, f"l{target}")
    for n in range(8):
        b.label(f"l{n}")
        b.mov(R0, n)
    b.exit()
    insns = b.build()
    slots, pc = {}, 0
    for insn in insns:
        slots[pc] = insn
        pc += insn.size
    for at, label in wanted:
        assert slots[at].jump_target(at) == b.label_slots[label]
        assert slots[b.label_slots[label]] == Insn(0xB7, 0, 0, 0, int(label[1:]))


def _stamped_program():
    """A program with a marked constant among labels, an LD_IMM64, a map load, spans and comments."""
    b = Builder()
    with b.at((1, 1, 9)):
        b.ld_imm64(R1, 1 << 40)
        b.comment("the constant")
        site = b.mark()
        b.mov(R0, 0)
    b.jeq(R0, 0, "out")
    b.ld_map_fd(R2, "counts")
    b.label("out")
    b.exit()
    return b, site


class _Map:
    fd = 7


def test_with_imm_stamps_out_a_copy_and_leaves_the_original_alone():
    b, site = _stamped_program()
    assert site == 1  # a site counts instructions, not slots (the LD_IMM64 before it has two)
    copies = {n: b.with_imm([site], n) for n in (3, -1, 0x7FFFFFFF)}
    maps = {"counts": _Map()}
    original = b.build(maps=maps)
    assert original[1] == Insn(0xB7, 0, 0, 0, 0)
    for n, clone in copies.items():
        insns = clone.build(maps=maps)
        assert insns[1] == Insn(0xB7, 0, 0, 0, n)
        assert insns[:1] + insns[2:] == original[:1] + original[2:]  # jumps and maps still resolve
        assert clone.spans == b.spans and clone.comments == b.comments == {2: ("the constant",)}
    assert b.build(maps=maps) == original


def test_with_imm_copies_share_nothing_mutable():
    b, site = _stamped_program()
    clone = b.with_imm([site], 5)
    clone.mov(R3, 1)
    clone.label("more")
    clone.comment("only in the copy")
    assert len(clone) == len(b) + 1 and b.pc == clone.pc - 1
    assert len(clone.build(maps={"counts": _Map()})) == len(b.build(maps={"counts": _Map()})) + 1
    assert "more" in clone.label_slots and "more" not in b.label_slots
    assert b.comments == {2: ("the constant",)}
    assert b.fresh_label() == clone.fresh_label()  # each continues the same count on its own


@pytest.mark.parametrize(
    "sites, value, message",
    [
        ([9], 1, "no instruction at site 9"),
        ([-1], 1, "no instruction at site -1"),
        ([2], 1, r"filled in by build\(\) \(jump\)"),
        ([3], 1, r"filled in by build\(\) \(map_fd\)"),
        ([1], 1 << 32, "site 1: immediate .* does not fit in 32 bits"),
    ],
)
def test_with_imm_refuses_what_it_cannot_patch(sites, value, message):
    b, _ = _stamped_program()
    with pytest.raises(BuildError, match=message):
        b.with_imm(sites, value)


def test_with_imm_patches_an_ld_imm64_with_a_64_bit_value():
    b = Builder()
    site = b.mark()
    b.ld_imm64(R1, 0)
    b.exit()
    assert b.with_imm([site], -(1 << 40)).build()[0] == Insn(0x18, 1, 0, 0, -(1 << 40))
