"""Every instruction form of RFC 9669: bytes computed by hand from the RFC's field layout
(op, dst|src<<4, off le16, imm le32), the Insn they decode to, and llvm-objdump's text."""

import pytest

from ebpfpy.isa import Insn, ISAError, assemble, decode, encode_all, format_insn
from ebpfpy.isa import opcodes as oc

# (bytes as hex, instruction, llvm-objdump-19 text; "<...>" notes are ours, see disasm)
FORMS = [
    # ALU64 and ALU, K and X
    ("07010000fcffffff", Insn(0x07, 1, 0, 0, -4), "r1 += -0x4"),
    ("0f21000000000000", Insn(0x0F, 1, 2), "r1 += r2"),
    ("04010000ffffff7f", Insn(0x04, 1, 0, 0, 0x7FFFFFFF), "w1 += 0x7fffffff"),
    ("0c43000000000000", Insn(0x0C, 3, 4), "w3 += w4"),
    ("1701000005000000", Insn(0x17, 1, 0, 0, 5), "r1 -= 0x5"),
    ("1f21000000000000", Insn(0x1F, 1, 2), "r1 -= r2"),
    ("2700000003000000", Insn(0x27, 0, 0, 0, 3), "r0 *= 0x3"),
    ("2c10000000000000", Insn(0x2C, 0, 1), "w0 *= w1"),
    ("370100000a000000", Insn(0x37, 1, 0, 0, 10), "r1 /= 0xa"),
    ("3f21010000000000", Insn(0x3F, 1, 2, 1), "r1 s/= r2"),
    ("34010100fbffffff", Insn(0x34, 1, 0, 1, -5), "w1 s/= -0x5"),
    ("4702000040000000", Insn(0x47, 2, 0, 0, 0x40), "r2 |= 0x40"),
    ("5c32000000000000", Insn(0x5C, 2, 3), "w2 &= w3"),
    ("6701000020000000", Insn(0x67, 1, 0, 0, 32), "r1 <<= 0x20"),
    ("7f21000000000000", Insn(0x7F, 1, 2), "r1 >>= r2"),
    ("8704000000000000", Insn(0x87, 4), "r4 = -r4"),
    ("8404000000000000", Insn(0x84, 4), "w4 = -w4"),
    ("970100000d000000", Insn(0x97, 1, 0, 0, 13), "r1 %= 0xd"),
    ("9c21010000000000", Insn(0x9C, 1, 2, 1), "w1 s%= w2"),
    ("97010100fbffffff", Insn(0x97, 1, 0, 1, -5), "r1 s%= -0x5"),
    ("a7010000ffffffff", Insn(0xA7, 1, 0, 0, -1), "r1 ^= -0x1"),
    ("b700000001000000", Insn(0xB7, 0, 0, 0, 1), "r0 = 0x1"),
    ("bf16000000000000", Insn(0xBF, 6, 1), "r6 = r1"),
    ("bc10000000000000", Insn(0xBC, 0, 1), "w0 = w1"),
    ("b4000000ffffffff", Insn(0xB4, 0, 0, 0, -1), "w0 = -0x1"),
    ("bf21080000000000", Insn(0xBF, 1, 2, 8), "r1 = (s8)r2"),
    ("bf21100000000000", Insn(0xBF, 1, 2, 16), "r1 = (s16)r2"),
    ("bf21200000000000", Insn(0xBF, 1, 2, 32), "r1 = (s32)r2"),
    ("bc21080000000000", Insn(0xBC, 1, 2, 8), "w1 = (s8)w2"),
    ("bc21100000000000", Insn(0xBC, 1, 2, 16), "w1 = (s16)w2"),
    # ALU64 MOV variants newer than RFC 9669: arena casts, and the kernel's per-cpu rewrite
    (
        "bf21010000000100",
        Insn(0xBF, 1, 2, 1, 0x10000),
        "r1 = addr_space_cast(r2, 0x1, 0x0)",
    ),
    ("bf00ffff00000000", Insn(0xBF, 0, 0, -1), "r0 = &(void __percpu *)(r0)"),
    ("c701000003000000", Insn(0xC7, 1, 0, 0, 3), "r1 s>>= 0x3"),
    ("cc21000000000000", Insn(0xCC, 1, 2), "w1 s>>= w2"),
    # byte swaps: ALU|END|K = le, ALU|END|X = be, ALU64|END = bswap
    ("d401000010000000", Insn(0xD4, 1, imm=16), "r1 = le16 r1"),
    ("d401000020000000", Insn(0xD4, 1, imm=32), "r1 = le32 r1"),
    ("d401000040000000", Insn(0xD4, 1, imm=64), "r1 = le64 r1"),
    ("dc01000010000000", Insn(0xDC, 1, imm=16), "r1 = be16 r1"),
    ("dc01000020000000", Insn(0xDC, 1, imm=32), "r1 = be32 r1"),
    ("dc01000040000000", Insn(0xDC, 1, imm=64), "r1 = be64 r1"),
    ("d701000010000000", Insn(0xD7, 1, imm=16), "r1 = bswap16 r1"),
    ("d701000020000000", Insn(0xD7, 1, imm=32), "r1 = bswap32 r1"),
    ("d701000040000000", Insn(0xD7, 1, imm=64), "r1 = bswap64 r1"),
    # JMP and JMP32
    ("0500030000000000", Insn(0x05, off=3), "goto +0x3"),
    ("0500ffff00000000", Insn(0x05, off=-1), "goto -0x1"),
    ("0600000000000100", Insn(0x06, imm=0x10000), "gotol +0x10000"),
    ("1500030000000000", Insn(0x15, 0, 0, 3, 0), "if r0 == 0x0 goto +0x3"),
    ("1d21fcff00000000", Insn(0x1D, 1, 2, -4), "if r1 == r2 goto -0x4"),
    ("250101004c000000", Insn(0x25, 1, 0, 1, 0x4C), "if r1 > 0x4c goto +0x1"),
    ("3e21010000000000", Insn(0x3E, 1, 2, 1), "if w1 >= w2 goto +0x1"),
    ("4501020040000000", Insn(0x45, 1, 0, 2, 0x40), "if r1 & 0x40 goto +0x2"),
    ("4e21020000000000", Insn(0x4E, 1, 2, 2), "if w1 & w2 goto +0x2"),
    ("55010100ffffffff", Insn(0x55, 1, 0, 1, -1), "if r1 != -0x1 goto +0x1"),
    ("66030100fcffffff", Insn(0x66, 3, 0, 1, -4), "if w3 s> -0x4 goto +0x1"),
    ("7d21000000000000", Insn(0x7D, 1, 2, 0), "if r1 s>= r2 goto +0x0"),
    ("a501050007000000", Insn(0xA5, 1, 0, 5, 7), "if r1 < 0x7 goto +0x5"),
    ("be21050000000000", Insn(0xBE, 1, 2, 5), "if w1 <= w2 goto +0x5"),
    ("c501050000000000", Insn(0xC5, 1, 0, 5, 0), "if r1 s< 0x0 goto +0x5"),
    ("dd21008000000000", Insn(0xDD, 1, 2, -0x8000), "if r1 s<= r2 goto -0x8000"),
    ("8500000001000000", Insn(0x85, imm=1), "call 0x1"),
    ("85100000ffffffff", Insn(0x85, src=1, imm=-1), "call -0x1 <local>"),
    ("85200000d2040000", Insn(0x85, src=2, imm=0x4D2), "call 0x4d2 <kfunc>"),
    ("9500000000000000", Insn(0x95), "exit"),
    # newer than RFC 9669, known to LLVM 19 and the kernel
    ("e500030000000000", Insn(0xE5, off=3), "may_goto +0x3"),
    ("8d01000000000000", Insn(0x8D, 1), "callx r1"),
    # LD: 64-bit immediates (two slots) and legacy packet loads
    (
        "18010000efcdab890000000067452301",
        Insn(0x18, 1, imm=0x0123456789ABCDEF),
        "r1 = 0x123456789abcdef ll",
    ),
    ("18010000ffffffff00000000ffffffff", Insn(0x18, 1, imm=-1), "r1 = -0x1 ll"),
    (
        "18110000050000000000000000000000",
        Insn(0x18, 1, 1, imm=5),
        "ld_pseudo\tr1, 0x1, 0x5",
    ),
    (
        "18220000050000000000000010000000",
        Insn(0x18, 2, 2, imm=(16 << 32) | 5),
        "ld_pseudo\tr2, 0x2, 0x5, 0x10",
    ),
    (
        "18330000070000000000000000000000",
        Insn(0x18, 3, 3, imm=7),
        "ld_pseudo\tr3, 0x3, 0x7",
    ),
    (
        "18410000030000000000000000000000",
        Insn(0x18, 1, 4, imm=3),
        "ld_pseudo\tr1, 0x4, 0x3",
    ),
    (
        "18510000000000000000000000000000",
        Insn(0x18, 1, 5, imm=0),
        "ld_pseudo\tr1, 0x5, 0x0",
    ),
    (
        "18610000010000000000000008000000",
        Insn(0x18, 1, 6, imm=(8 << 32) | 1),
        "ld_pseudo\tr1, 0x6, 0x1, 0x8",
    ),
    ("200000001a000000", Insn(0x20, imm=0x1A), "r0 = *(u32 *)skb[0x1a]"),
    ("280000000c000000", Insn(0x28, imm=12), "r0 = *(u16 *)skb[0xc]"),
    ("3000000017000000", Insn(0x30, imm=0x17), "r0 = *(u8 *)skb[0x17]"),
    ("4020000000000000", Insn(0x40, src=2), "r0 = *(u32 *)skb[r2]"),
    ("4820000000000000", Insn(0x48, src=2), "r0 = *(u16 *)skb[r2]"),
    ("5020000007000000", Insn(0x50, src=2, imm=7), "r0 = *(u8 *)skb[r2 + 0x7]"),
    # LDX, sign-extending LDX, ST, STX
    ("61a1fcff00000000", Insn(0x61, 1, 10, -4), "r1 = *(u32 *)(r10 - 0x4)"),
    ("6912020000000000", Insn(0x69, 2, 1, 2), "r2 = *(u16 *)(r1 + 0x2)"),
    ("7112000000000000", Insn(0x71, 2, 1, 0), "r2 = *(u8 *)(r1 + 0x0)"),
    ("7911080000000000", Insn(0x79, 1, 1, 8), "r1 = *(u64 *)(r1 + 0x8)"),
    ("8121000000000000", Insn(0x81, 1, 2, 0), "r1 = *(s32 *)(r2 + 0x0)"),
    ("8912020000000000", Insn(0x89, 2, 1, 2), "r2 = *(s16 *)(r1 + 0x2)"),
    ("9131010000000000", Insn(0x91, 1, 3, 1), "r1 = *(s8 *)(r3 + 0x1)"),
    ("620af8ffffffffff", Insn(0x62, 10, 0, -8, -1), "*(u32 *)(r10 - 0x8) = -0x1"),
    ("6a01020002000000", Insn(0x6A, 1, 0, 2, 2), "*(u16 *)(r1 + 0x2) = 0x2"),
    ("7201000001000000", Insn(0x72, 1, 0, 0, 1), "*(u8 *)(r1 + 0x0) = 0x1"),
    ("7a0af8fffcffffff", Insn(0x7A, 10, 0, -8, -4), "*(u64 *)(r10 - 0x8) = -0x4"),
    ("631afcff00000000", Insn(0x63, 10, 1, -4), "*(u32 *)(r10 - 0x4) = r1"),
    ("6b12120000000000", Insn(0x6B, 2, 1, 0x12), "*(u16 *)(r2 + 0x12) = r1"),
    ("7312100000000000", Insn(0x73, 2, 1, 0x10), "*(u8 *)(r2 + 0x10) = r1"),
    ("7b1af0ff00000000", Insn(0x7B, 10, 1, -16), "*(u64 *)(r10 - 0x10) = r1"),
    # atomics: the operation is in imm
    ("db21000000000000", Insn(0xDB, 1, 2, 0, 0x00), "lock *(u64 *)(r1 + 0x0) += r2"),
    ("db21000040000000", Insn(0xDB, 1, 2, 0, 0x40), "lock *(u64 *)(r1 + 0x0) |= r2"),
    ("db21000050000000", Insn(0xDB, 1, 2, 0, 0x50), "lock *(u64 *)(r1 + 0x0) &= r2"),
    ("db210000a0000000", Insn(0xDB, 1, 2, 0, 0xA0), "lock *(u64 *)(r1 + 0x0) ^= r2"),
    (
        "db21f8ff01000000",
        Insn(0xDB, 1, 2, -8, 0x01),
        "r2 = atomic_fetch_add((u64 *)(r1 - 0x8), r2)",
    ),
    (
        "db21000041000000",
        Insn(0xDB, 1, 2, 0, 0x41),
        "r2 = atomic_fetch_or((u64 *)(r1 + 0x0), r2)",
    ),
    (
        "db21000051000000",
        Insn(0xDB, 1, 2, 0, 0x51),
        "r2 = atomic_fetch_and((u64 *)(r1 + 0x0), r2)",
    ),
    (
        "db210000a1000000",
        Insn(0xDB, 1, 2, 0, 0xA1),
        "r2 = atomic_fetch_xor((u64 *)(r1 + 0x0), r2)",
    ),
    ("db210000e1000000", Insn(0xDB, 1, 2, 0, 0xE1), "r2 = xchg_64(r1 + 0x0, r2)"),
    (
        "db210000f1000000",
        Insn(0xDB, 1, 2, 0, 0xF1),
        "r0 = cmpxchg_64(r1 + 0x0, r0, r2)",
    ),
    ("c321040000000000", Insn(0xC3, 1, 2, 4, 0x00), "lock *(u32 *)(r1 + 0x4) += r2"),
    ("c321040040000000", Insn(0xC3, 1, 2, 4, 0x40), "lock *(u32 *)(r1 + 0x4) |= w2"),
    ("c321040050000000", Insn(0xC3, 1, 2, 4, 0x50), "lock *(u32 *)(r1 + 0x4) &= w2"),
    ("c3210400a0000000", Insn(0xC3, 1, 2, 4, 0xA0), "lock *(u32 *)(r1 + 0x4) ^= w2"),
    (
        "c321040001000000",
        Insn(0xC3, 1, 2, 4, 0x01),
        "w2 = atomic_fetch_add((u32 *)(r1 + 0x4), w2)",
    ),
    (
        "c321040041000000",
        Insn(0xC3, 1, 2, 4, 0x41),
        "w2 = atomic_fetch_or((u32 *)(r1 + 0x4), w2)",
    ),
    (
        "c321040051000000",
        Insn(0xC3, 1, 2, 4, 0x51),
        "w2 = atomic_fetch_and((u32 *)(r1 + 0x4), w2)",
    ),
    (
        "c3210400a1000000",
        Insn(0xC3, 1, 2, 4, 0xA1),
        "w2 = atomic_fetch_xor((u32 *)(r1 + 0x4), w2)",
    ),
    ("c3210400e1000000", Insn(0xC3, 1, 2, 4, 0xE1), "w2 = xchg32_32(r1 + 0x4, w2)"),
    (
        "c3210400f1000000",
        Insn(0xC3, 1, 2, 4, 0xF1),
        "w0 = cmpxchg32_32(r1 + 0x4, w0, w2)",
    ),
]
IDS = [text for _, _, text in FORMS]


@pytest.mark.parametrize("hexbytes, insn, text", FORMS, ids=IDS)
def test_encode(hexbytes, insn, text):
    assert insn.encode().hex() == hexbytes


@pytest.mark.parametrize("hexbytes, insn, text", FORMS, ids=IDS)
def test_decode(hexbytes, insn, text):
    assert decode(bytes.fromhex(hexbytes)) == [insn]


@pytest.mark.parametrize("hexbytes, insn, text", FORMS, ids=IDS)
def test_format(hexbytes, insn, text):
    assert format_insn(insn) == text


@pytest.mark.parametrize("hexbytes, insn, text", FORMS, ids=IDS)
def test_assemble(hexbytes, insn, text):
    assert assemble(text) == [insn]


def test_table_covers_every_operation_mode_and_size():
    """A new field value in opcodes.py must come with a row above."""
    ops = {insn.op for _, insn, _ in FORMS}
    alu = {insn.op & 0xF0 for _, insn, _ in FORMS if oc.is_alu(insn.op)}
    jmp = {insn.op & 0xF0 for _, insn, _ in FORMS if oc.is_jmp(insn.op)}
    assert alu == set(oc.AluOp) and jmp == set(oc.JmpOp)
    assert {op for op in range(256) if oc.is_valid(op) and oc.is_ldst(op)} <= ops
    assert {insn.imm for _, insn, _ in FORMS if insn.op == 0xDB} == set(oc.AtomicOp)
    assert {insn.src for _, insn, _ in FORMS if insn.is_ldimm64} == set(oc.Pseudo)


def test_number_of_valid_opcodes():
    # ALU: 12 ops x K/X + NEG + le/be = 27; ALU64: 24 + NEG + bswap = 26;
    # JMP: 11 conditions x K/X + JA + CALL + EXIT = 25, + may_goto + callx; JMP32: 22 + gotol = 23;
    # LD: IMM64 + ABS/IND x 3 sizes = 7; LDX: 4 + MEMSX x 3 = 7; ST: 4; STX: 4 + ATOMIC x 2 = 6.
    assert (
        sum(oc.is_valid(op) for op in range(256))
        == 27 + 26 + 25 + 2 + 23 + 7 + 7 + 4 + 6
    )


def test_whole_program_round_trip():
    program = [insn for _, insn, _ in FORMS]
    data = encode_all(program)
    assert data == bytes.fromhex("".join(h for h, _, _ in FORMS))
    assert decode(data) == program


def test_ldimm64_imm_is_normalised_to_signed_64_bit():
    assert Insn(0x18, 1, imm=0xFFFF_FFFF_FFFF_FFFF).imm == -1
    assert (
        Insn(0x18, 1, imm=0x8000_0000).imm == 0x8000_0000
    )  # needs the upper slot, stays positive
    assert (
        Insn(0x18, 1, imm=-(1 << 63)).encode().hex()
        == "18010000000000000000000000000080"
    )
    assert (
        Insn(0xB7, 1, imm=0xFFFF_FFFF).imm == -1
    )  # 32-bit immediates fold the same way
    assert Insn(0x05, off=-0x8000).off == -0x8000


@pytest.mark.parametrize(
    "kwargs",
    [{"op": 256}, {"op": 0x05, "off": 0x8000}, {"op": 0xB7, "dst": 16}, {"op": 0xB7, "src": -1},
     {"op": 0xB7, "off": 1 << 16}, {"op": 0xB7, "imm": 1 << 32}, {"op": 0x18, "imm": 1 << 64},
     {"op": 0xB7, "imm": -(1 << 31) - 1}],
)  # fmt: skip
def test_out_of_range_fields_raise(kwargs):
    with pytest.raises(ISAError):
        Insn(**kwargs)


def test_isa_error_is_value_error():
    assert issubclass(ISAError, ValueError)


def test_properties():
    assert Insn(0x18, 1).size == 2 and Insn(0x18, 1).is_ldimm64
    assert Insn(0xB7).size == 1 and Insn(0xB7).cls == oc.Class.ALU64
    assert Insn(0x85, imm=1).is_call and not Insn(0x85, imm=1).is_jump
    assert Insn(0x95).is_exit and not Insn(0x95).is_jump
    assert (
        Insn(0x05, off=2).is_jump
        and Insn(0x15, off=2).is_jump
        and Insn(0x06, imm=2).is_jump
    )


def test_jump_target_counts_slots_from_the_next_one():
    assert Insn(0x05, off=3).jump_target(10) == 14
    assert Insn(0x15, 1, off=-4).jump_target(10) == 7
    assert Insn(0x06, imm=-11).jump_target(10) == 0  # gotol: offset in imm
    assert Insn(0x85, src=1, imm=5).jump_target(2) == 8  # bpf-to-bpf call
    assert Insn(0x85, imm=5).jump_target(2) is None  # helper call
    assert Insn(0xB7).jump_target(0) is None


# -- bad input: decode names the instruction index ------------------------------------------

GOOD = "b700000000000000"  # r0 = 0


@pytest.mark.parametrize(
    "hexbytes, index, words",
    [
        (GOOD + "ff00000000000000", 1, "unknown opcode 0xff"),
        (GOOD * 2 + "8f00000000000000", 2, "unknown opcode 0x8f"),  # NEG has no X form
        (GOOD + "b700", 1, "not a multiple of 8"),
        (GOOD + "18010000ffffffff", 1, "missing its second slot"),
        (GOOD + "18010000ffffffff9500000000000000", 1, "second slot"),
        (GOOD + "bf21020000000000", 1, "offset must be one of"),  # movsx from 2 bits
        (
            GOOD + "bf21ffff01000000",
            1,
            "reserved field imm",
        ),  # only the arena cast has imm
        (
            GOOD + "b701ffff00000000",
            1,
            "offset must be one of",
        ),  # per-cpu is MOV X only
        (GOOD + "e501000000000000", 1, "reserved field dst"),  # may_goto
        (GOOD + "8d01010000000000", 1, "reserved field off"),  # callx
        (
            GOOD + "bc21200000000000",
            1,
            "offset must be one of",
        ),  # 32-bit movsx from 32 bits
        (GOOD + "3f21020000000000", 1, "offset must be one of"),  # sdiv off=2
        (GOOD + "d401000008000000", 1, "16, 32 or 64"),
        (GOOD + "db21000002000000", 1, "atomic operation 0x2"),
        (GOOD + "18710000000000000000000000000000", 1, "pseudo source"),
        (GOOD + "8530000001000000", 1, "call kind"),
        (GOOD + "b70b000000000000", 1, "r11"),
        (GOOD + "b720000000000000", 1, "reserved field src"),
        (GOOD + "bf21000001000000", 1, "reserved field imm"),
        (GOOD + "9501000000000000", 1, "reserved field dst"),
        (
            GOOD + "0500000001000000",
            1,
            "reserved field imm",
        ),  # ja keeps its offset in off
        (GOOD + "0600010000000000", 1, "reserved field off"),  # gotol keeps it in imm
    ],
)
def test_decode_errors_name_the_index(hexbytes, index, words):
    with pytest.raises(ISAError) as err:
        decode(bytes.fromhex(hexbytes))
    assert f"instruction {index}" in str(err.value)
    assert words in str(err.value)
    assert err.value.index == index


def test_kfunc_call_may_use_off_for_the_module_btf():
    assert decode(bytes.fromhex("85200100d2040000")) == [
        Insn(0x85, src=2, off=1, imm=0x4D2)
    ]
