"""CO-RE resolution on hand-built local/target BTF (no kernel), plus the instruction patcher."""
import struct

import pytest

from ebpfpy.btf import BTF, Array, CoreRelo, Enum, Int, Member, Struct, encode
from ebpfpy.btf import CoreReloKind as K
from ebpfpy.elf.core import CoreError, apply, essential_name, patch, resolve

TARGET = BTF(encode([
    Int("int", 4, 1, 0, 32),                      # 1
    Int("unsigned int", 4, 0, 0, 32),             # 2
    Int("long", 8, 1, 0, 64),                     # 3
    Struct(False, "foo", 24, (
        Member("x", 3, 0), Member("b", 2, 67, 5), Member("a", 1, 96), Member("", 6, 128),
    ), True),                                     # 4
    Array(1, 1, 2),                               # 5 int[2]
    Struct(True, "", 8, (Member("c", 5, 0),)),    # 6 anonymous union holding c
    Enum(False, "color", 4, (("RED", 0), ("BLUE", 7))),  # 7
]))

ACCESS = ["0", "0:0", "0:1", "0:2:1"]
STRINGS = b"\0" + b"".join(a.encode() + b"\0" for a in ACCESS)
OFF = {a: STRINGS.index(b"\0" + a.encode() + b"\0") + 1 for a in ACCESS}

LOCAL = BTF(encode([
    Int("int", 4, 1, 0, 32),                      # 1
    Int("unsigned int", 4, 0, 0, 32),             # 2
    Struct(False, "foo___v1", 16, (
        Member("a", 1, 0), Member("b", 2, 32, 3), Member("c", 4, 64),
    ), True),                                     # 3
    Array(1, 1, 2),                               # 4
    Enum(False, "color___x", 4, (("BLUE", 1),)),  # 5
    Struct(False, "gone", 4, (Member("z", 1, 0),)),  # 6
    Struct(False, "foo___v2", 4, (Member("missing", 1, 0),)),  # 7
], strings=STRINGS))


def relo(kind, type_id, access):
    return CoreRelo(0, type_id, OFF[access], kind)


@pytest.mark.parametrize("kind,type_id,access,local,target", [
    (K.FIELD_BYTE_OFFSET, 3, "0:0", 0, 12),
    (K.FIELD_BYTE_OFFSET, 3, "0:2:1", 12, 20),       # through the kernel's anonymous union
    (K.FIELD_BYTE_SIZE, 3, "0:0", 4, 4),
    (K.FIELD_SIGNED, 3, "0:0", 1, 1),
    (K.FIELD_SIGNED, 3, "0:1", 0, 0),
    (K.FIELD_BYTE_OFFSET, 3, "0:1", 4, 8),           # bitfield: containing aligned word
    (K.FIELD_BYTE_SIZE, 3, "0:1", 4, 4),
    (K.FIELD_LSHIFT_U64, 3, "0:1", 64 - 3, 64 - (67 + 5 - 64)),
    (K.FIELD_RSHIFT_U64, 3, "0:1", 61, 59),
    (K.FIELD_EXISTS, 3, "0:0", 1, 1),
    (K.FIELD_EXISTS, 7, "0:0", 1, None),
    (K.TYPE_SIZE, 3, "0", 16, 24),
    (K.TYPE_EXISTS, 3, "0", 1, 1),
    (K.TYPE_EXISTS, 6, "0", 1, None),
    (K.TYPE_ID_TARGET, 3, "0", 3, 4),
    (K.TYPE_ID_LOCAL, 3, "0", 3, 3),
    (K.ENUMVAL_VALUE, 5, "0", 1, 7),
    (K.ENUMVAL_EXISTS, 5, "0", 1, 1),
])
def test_resolve(kind, type_id, access, local, target):
    res = resolve(LOCAL, TARGET, relo(kind, type_id, access))
    assert (res.local, res.target) == (local, target)


def test_missing_field_reason_names_struct_and_field():
    res = resolve(LOCAL, TARGET, relo(K.FIELD_BYTE_OFFSET, 7, "0:0"))
    assert res.target is None
    assert res.reason == "struct foo has no field 'missing'"


def test_essential_name():
    assert essential_name("task_struct___v2") == "task_struct"
    assert essential_name("task_struct") == "task_struct"
    assert essential_name("___odd") == "___odd"


def _insn(op, dst=0, src=0, off=0, imm=0):
    return bytearray(struct.pack("<BBhi", op, dst | src << 4, off, imm))


def test_patch_forms():
    # ALU64 add r1, imm (local value 0 -> 12)
    code = _insn(0x07, 1, 0, 0, 0)
    patch(code, 0, 0, 12, 0, 0, "t")
    assert struct.unpack_from("<i", code, 4)[0] == 12
    # a mismatching local value is a loader bug: refuse
    with pytest.raises(CoreError, match="expected the local value"):
        patch(_insn(0x07, 1, 0, 0, 5), 0, 0, 12, 0, 0, "t")
    # LDX W: offset patched; size grows from 4 to 8 bytes when the kernel's field is wider
    code = _insn(0x61, 0, 1, 4, 0)
    patch(code, 0, 4, 16, 4, 8, "t")
    assert code[0] == 0x79 and struct.unpack_from("<h", code, 2)[0] == 16
    # LD_IMM64: 64-bit value split across both slots
    code = _insn(0x18, 1) + _insn(0)
    patch(code, 0, None, 0x1_0000_0002, 0, 0, "t")
    assert struct.unpack_from("<I", code, 4)[0] == 2 and struct.unpack_from("<I", code, 12)[0] == 1
    with pytest.raises(CoreError, match="does not fit"):
        patch(_insn(0x61, 0, 1, 0, 0), 0, 0, 1 << 16, 0, 0, "t")


def test_apply_poisons_what_the_kernel_cannot_answer():
    """As libbpf: a field the kernel lacks does not fail the load; the instruction becomes a
    call to helper 0xbad2310 (dropped by the verifier if dead) and the relocation is reported."""
    code = _insn(0x61, 0, 1, 0, 0)
    poisoned = apply(code, [relo(K.FIELD_BYTE_OFFSET, 7, "0:0")], LOCAL, TARGET, "obj.o: sec", lambda s: "prog")
    assert code == _insn(0x85, 0, 0, 0, 0xBAD2310)
    (p,) = poisoned
    msg = p.message("prog", 3)
    assert "\n" not in msg and "prog 'prog': relo #0:" in msg and "struct foo has no field 'missing'" in msg
    assert p.spec == "<byte_off> [7] struct foo___v2.missing (0:0 @ offset 0)"
    # FIELD_EXISTS of the same field is simply 0
    code = _insn(0xB7, 0, 0, 0, 1)
    apply(code, [relo(K.FIELD_EXISTS, 7, "0:0")], LOCAL, TARGET, "obj.o: sec")
    assert struct.unpack_from("<i", code, 4)[0] == 0


def test_typedef_type_relocations_match_typedefs():
    from ebpfpy.btf import Kind, Ref
    target = BTF(encode([Int("int", 4, 1, 0, 32), Int("long", 8, 1, 0, 64), Ref(Kind.TYPEDEF, "pid_t", 2)]))
    local = BTF(encode([Int("int", 4, 1, 0, 32), Ref(Kind.TYPEDEF, "pid_t", 1), Ref(Kind.TYPEDEF, "nope_t", 1)],
                       strings=b"\0" + b"0\0"))
    size = resolve(local, target, CoreRelo(0, 2, 1, K.TYPE_SIZE))
    assert (size.local, size.target) == (4, 8)
    assert resolve(local, target, CoreRelo(0, 2, 1, K.TYPE_ID_TARGET)).target == 3
    missing = resolve(local, target, CoreRelo(0, 3, 1, K.TYPE_EXISTS))
    assert missing.target is None and missing.reason == "the kernel has no typedef nope_t"


def test_type_matches_is_stricter_than_compatible():
    from ebpfpy.btf import Kind, Ref
    from ebpfpy.elf.core import types_compatible, types_match
    target = BTF(encode([
        Int("int", 4, 1, 0, 32),                                             # 1
        Struct(False, "foo", 8, (Member("a", 1, 0), Member("p", 3, 32))),    # 2
        Ref(Kind.PTR, "", 4),                                                # 3
        Struct(False, "bar", 4, (Member("z", 1, 0),)),                       # 4
    ]))
    local = BTF(encode([
        Int("int", 4, 1, 0, 32),                                             # 1
        Int("long", 8, 1, 0, 64),                                            # 2
        Struct(False, "foo___ok", 4, (Member("a", 1, 0),)),                  # 3 subset of members
        Struct(False, "foo___wide", 8, (Member("a", 2, 0),)),                # 4 a is long here
        Struct(False, "foo___ptr", 8, (Member("p", 6, 0),)),                 # 5
        Ref(Kind.PTR, "", 7),                                                # 6
        Struct(False, "bar___other", 0, ()),                                 # 7 behind a pointer: name only
        Struct(False, "foo___extra", 8, (Member("missing", 1, 0),)),         # 8
    ], strings=b"\0" + b"0\0"))
    assert types_match(local, 3, target, 2)
    assert not types_match(local, 4, target, 2) and types_compatible(local, 4, target, 2)
    assert types_match(local, 5, target, 2)
    assert not types_match(local, 8, target, 2)
    res = resolve(local, target, CoreRelo(0, 4, 1, K.TYPE_MATCHES))
    assert res.target is None
    assert resolve(local, target, CoreRelo(0, 3, 1, K.TYPE_MATCHES)).target == 1
