"""libbpf's load-time rules that need no kernel: kconfig value conversion, kernel version,
CO-RE poisoning and the relocation's description, section names."""
import struct

import pytest

from ebpfpy.btf import BTF, Array, CoreRelo, Enum, Int, Kind, Member, Ref, Struct, encode
from ebpfpy.btf import CoreReloKind as K
from ebpfpy.elf import classify, system
from ebpfpy.elf.core import POISON_HELPER, apply, format_spec
from ebpfpy.elf.externs import (
    KCFG_BOOL,
    KCFG_CHAR,
    KCFG_CHAR_ARR,
    KCFG_INT,
    KCFG_TRISTATE,
    KconfigError,
    KconfigExtern,
    _strtoull,
    encode_config_value,
    encode_number,
    kcfg_type,
)
from ebpfpy.sys.consts import ProgType

KBTF = BTF(encode([
    Int("_Bool", 1, 4, 0, 8),                     # 1 bool
    Int("char", 1, 1, 0, 8),                      # 2 char (signed)
    Int("int", 4, 1, 0, 32),                      # 3
    Int("unsigned int", 4, 0, 0, 32),             # 4
    Enum(False, "libbpf_tristate", 4, (("TRI_NO", 0), ("TRI_YES", 1), ("TRI_MODULE", 2))),  # 5
    Array(2, 3, 8),                               # 6 char[8]
    Enum(False, "other", 4, (("A", 0),)),         # 7
    Int("short", 2, 1, 0, 16),                    # 8
    Int("__int128", 16, 1, 0, 128),               # 9
    Struct(False, "s", 4, ()),                    # 10
]))


@pytest.mark.parametrize("tid,kind", [(1, KCFG_BOOL), (2, KCFG_CHAR), (3, KCFG_INT), (4, KCFG_INT),
                                      (5, KCFG_TRISTATE), (6, KCFG_CHAR_ARR), (7, None), (8, KCFG_INT),
                                      (9, None), (10, None)])
def test_kcfg_types(tid, kind):
    assert kcfg_type(KBTF, tid)[0] == kind


def ext(kind, size, signed=False, name="CONFIG_X"):
    return KconfigExtern(name, 0, size, size, False, kcfg=kind, signed=signed)


@pytest.mark.parametrize("extern,text,raw", [
    (ext(KCFG_BOOL, 1), "y", b"\1"),
    (ext(KCFG_BOOL, 1), "n", b"\0"),
    (ext(KCFG_TRISTATE, 4), "m", b"\2\0\0\0"),
    (ext(KCFG_TRISTATE, 4), "y", b"\1\0\0\0"),
    (ext(KCFG_CHAR, 1), "m", b"m"),
    (ext(KCFG_CHAR, 1), "65", b"A"),
    (ext(KCFG_INT, 4), "1000", struct.pack("<I", 1000)),
    (ext(KCFG_INT, 4), "0x10", struct.pack("<I", 16)),
    (ext(KCFG_INT, 4), "010", struct.pack("<I", 8)),          # strtoull base 0: octal
    (ext(KCFG_INT, 4, signed=True), "-1", struct.pack("<i", -1)),
    (ext(KCFG_INT, 8), "-1", struct.pack("<q", -1)),
    (ext(KCFG_CHAR_ARR, 8), '"abc"', b"abc\0\0\0\0\0"),
    (ext(KCFG_CHAR_ARR, 4), '"abcdef"', b"abc\0"),              # truncated, NUL terminated
])
def test_config_values(extern, text, raw):
    assert encode_config_value(extern, text) == raw


@pytest.mark.parametrize("extern,text,match", [
    (ext(KCFG_BOOL, 1), "m", "tristate or char"),
    (ext(KCFG_INT, 4), "y", "does not fit"),
    (ext(KCFG_BOOL, 1), "1", "implies an integer"),
    (ext(KCFG_INT, 4), '"s"', "char array"),
    (ext(KCFG_INT, 4), "12abc", "not a valid integer"),
    (ext(KCFG_INT, 2), "70000", "does not fit in 2 bytes"),
    (ext(KCFG_INT, 4, signed=True), "-1", None),
    (ext(KCFG_INT, 4), "-1", "does not fit in 4 bytes"),       # unsigned: 2**64-1 does not fit
    (ext(KCFG_TRISTATE, 4), "5", "implies an integer"),
])
def test_config_value_errors(extern, text, match):
    if match is None:
        encode_config_value(extern, text)
        return
    with pytest.raises(KconfigError, match=match):
        encode_config_value(extern, text)


def test_numbers_for_virtual_externs():
    assert encode_number(ext(KCFG_BOOL, 1), 1) == b"\1"
    with pytest.raises(KconfigError, match="not a bool"):
        encode_number(ext(KCFG_BOOL, 1), 2)
    with pytest.raises(KconfigError):
        encode_number(ext(KCFG_TRISTATE, 4), 1)
    assert [_strtoull(t) for t in ("0", "  42", "+7", "0X1f", "08", "", "1e3")] == [0, 42, 7, 31, None, None, None]


def test_kernel_version_as_libbpf_computes_it(monkeypatch):
    import os
    from typing import NamedTuple

    class Uts(NamedTuple):
        sysname: str
        nodename: str
        release: str
        version: str
        machine: str
    real_open = open

    def no_signature(path, *a, **k):
        if path == "/proc/version_signature":
            raise FileNotFoundError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", no_signature)
    cases = [("6.18.44-fc-v1252", "#1 SMP", 0x06122C), ("5.4.300", "#1", (5 << 16) + (4 << 8) + 255),
             ("6.1.0-18-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", (6 << 16) + (1 << 8) + 76),
             ("6.8", "#1", 0)]
    try:
        for release, version, want in cases:
            monkeypatch.setattr(os, "uname", lambda r=release, v=version: Uts("Linux", "h", r, v, "x86_64"))
            system.kernel_version.cache_clear()
            assert system.kernel_version() == want, release
    finally:
        monkeypatch.undo()
        system.kernel_version.cache_clear()


def test_syscall_symbols(monkeypatch):
    monkeypatch.setattr(system, "has_syscall_wrapper", lambda: True)
    monkeypatch.setattr(system.platform, "machine", lambda: "aarch64")
    assert system.syscall_symbol("openat") == "__arm64_sys_openat"
    monkeypatch.setattr(system, "has_syscall_wrapper", lambda: False)
    assert system.syscall_symbol("openat") == "__se_sys_openat"
    k = classify("kretsyscall/openat")
    assert (k.prog_type, k.probe, k.syscall) == (ProgType.KPROBE, "kretprobe:__se_sys_openat", "openat")
    assert classify("ksyscall").syscall is None


# -- CO-RE poisoning --------------------------------------------------------------------------

TARGET = BTF(encode([
    Int("int", 4, 1, 0, 32),                                          # 1
    Int("long", 8, 1, 0, 64),                                         # 2
    Int("unsigned long", 8, 0, 0, 64),                                # 3
    Struct(False, "foo", 24, (Member("a", 2, 0), Member("u", 3, 64), Member("p", 5, 128))),  # 4
    Ref(Kind.PTR, "", 1),                                                         # 5
    Enum(False, "color", 4, (("RED", 0),)),                           # 6
]))
ACCESS = ["0", "0:0", "0:1", "0:2", "0:3"]
STRINGS = b"\0" + b"".join(a.encode() + b"\0" for a in ACCESS)
OFF = {a: STRINGS.index(b"\0" + a.encode() + b"\0") + 1 for a in ACCESS}
LOCAL = BTF(encode([
    Int("int", 4, 1, 0, 32),                                          # 1
    Int("unsigned int", 4, 0, 0, 32),                                 # 2
    Struct(False, "foo___l", 24, (Member("a", 1, 0), Member("u", 2, 32), Member("p", 6, 64),
                                  Member("gone", 1, 128))),           # 3
    Enum(False, "color___l", 4, (("GREEN", 3),)),                     # 4
    Struct(False, "nope", 4, ()),                                     # 5
    Ref(Kind.PTR, "", 1),                                                         # 6
], strings=STRINGS))


def _insn(op, dst=0, src=0, off=0, imm=0):
    return bytearray(struct.pack("<BBhi", op, dst | src << 4, off, imm))


def _relo(kind, tid, access, slot=0):
    return CoreRelo(slot * 8, tid, OFF[access], kind)


def test_poisoning_rules():
    call = _insn(0x85, 0, 0, 0, POISON_HELPER)
    # a missing enumerator's value: both halves of the LD_IMM64 become the invalid call
    code = _insn(0x18, 1, 0, 0, 3) + _insn(0)
    (p,) = apply(code, [_relo(K.ENUMVAL_VALUE, 4, "0")], LOCAL, TARGET, "t")
    assert code == call + call and p.spec == "<enumval_value> [4] enum color___l::GREEN = 3"
    # existence and type relocations read 0 instead (TYPE_SIZE too, as libbpf)
    for kind, tid, access, before in ((K.ENUMVAL_EXISTS, 4, "0", 1), (K.FIELD_EXISTS, 3, "0:3", 1),
                                      (K.TYPE_SIZE, 5, "0", 4), (K.TYPE_EXISTS, 5, "0", 1),
                                      (K.TYPE_ID_TARGET, 5, "0", 5)):
        code = _insn(0xB7, 1, 0, 0, before)
        assert apply(code, [_relo(kind, tid, access)], LOCAL, TARGET, "t") == [], kind
        assert code == _insn(0xB7, 1, 0, 0, 0), kind
    # a load of a signed field whose size changed is poisoned; an unsigned one or a pointer is resized
    code = _insn(0x61, 1, 2, 0, 0) + _insn(0x61, 1, 2, 4, 0) + _insn(0x79, 1, 2, 8, 0)
    relos = [_relo(K.FIELD_BYTE_OFFSET, 3, "0:0", 0), _relo(K.FIELD_BYTE_OFFSET, 3, "0:1", 1),
             _relo(K.FIELD_BYTE_OFFSET, 3, "0:2", 2)]
    (p,) = apply(code, relos, LOCAL, TARGET, "t")
    assert p.slot == 0 and "only pointers and unsigned integers" in p.reason
    assert code[:8] == call
    assert code[8:16] == _insn(0x79, 1, 2, 8, 0)      # u32 -> u64 load at the kernel's offset
    assert code[16:24] == _insn(0x79, 1, 2, 16, 0)    # pointer at the kernel's offset


def test_format_spec_like_libbpf():
    assert format_spec(LOCAL, _relo(K.FIELD_BYTE_OFFSET, 3, "0:3")) == \
        "<byte_off> [3] struct foo___l.gone (0:3 @ offset 16)"
    assert format_spec(LOCAL, _relo(K.TYPE_SIZE, 5, "0")) == "<type_size> [5] struct nope"
