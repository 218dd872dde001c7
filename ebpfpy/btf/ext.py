"""The ``.BTF.ext`` section of a clang-built object: func_info, line_info, CO-RE relocations.

Each of the three parts is a list of per-ELF-section record groups.  Records
keep the object's byte offsets (``insn_off``); the ELF loader converts them to
instruction indices of the program they end up in.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import BTFError
from .spec import BTF


class CoreReloKind(enum.IntEnum):
    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


@dataclass(frozen=True)
class FuncInfo:
    insn_off: int
    type_id: int


@dataclass(frozen=True)
class LineInfo:
    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int

    @property
    def line(self) -> int:
        return self.line_col >> 10

    @property
    def col(self) -> int:
        return self.line_col & 0x3FF


@dataclass(frozen=True)
class CoreRelo:
    insn_off: int
    type_id: int
    access_str_off: int
    kind: CoreReloKind


@dataclass
class BTFExt:
    """Records grouped by ELF section name."""
    func_info: dict[str, list[FuncInfo]]
    line_info: dict[str, list[LineInfo]]
    core_relos: dict[str, list[CoreRelo]]
    func_info_rec_size: int = 8
    line_info_rec_size: int = 16


_HDR = struct.Struct("<HBBIIIIII")


def _groups(data: bytes, start: int, length: int, min_rec: int, btf: BTF,
            what: str) -> tuple[int, dict[str, list[tuple[int, ...]]]]:
    if length == 0:
        return min_rec, {}
    end = start + length
    if end > len(data) or length < 4:
        raise BTFError(f".BTF.ext {what} exceeds the section")
    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < min_rec or rec_size % 4:
        raise BTFError(f".BTF.ext {what} record size {rec_size} is invalid")
    p = start + 4
    out: dict[str, list[tuple[int, ...]]] = {}
    nwords = min_rec // 4
    while p < end:
        if p + 8 > end:
            raise BTFError(f".BTF.ext {what} is truncated")
        sec_off, num = struct.unpack_from("<II", data, p)
        p += 8
        if p + num * rec_size > end:
            raise BTFError(f".BTF.ext {what} is truncated")
        recs = out.setdefault(btf.string(sec_off), [])
        for _ in range(num):
            recs.append(struct.unpack_from(f"<{nwords}I", data, p))
            p += rec_size
    return rec_size, out


def parse_ext(data: bytes, btf: BTF) -> BTFExt:
    """Parse ``.BTF.ext``; names (section names, access strings) live in ``btf``'s strings."""
    if len(data) < 24:
        raise BTFError(".BTF.ext is truncated")
    magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data)
    if magic != 0xEB9F or version != 1:
        raise BTFError(f"bad .BTF.ext header (magic {magic:#x}, version {version})")
    fi_off, fi_len, li_off, li_len = struct.unpack_from("<IIII", data, 8)
    cr_off = cr_len = 0
    if hdr_len >= 32:
        cr_off, cr_len = struct.unpack_from("<II", data, 24)
    fsz, fi = _groups(data, hdr_len + fi_off, fi_len, 8, btf, "func_info")
    lsz, li = _groups(data, hdr_len + li_off, li_len, 16, btf, "line_info")
    _, cr = _groups(data, hdr_len + cr_off, cr_len, 16, btf, "core_relo")
    known = {int(k) for k in CoreReloKind}
    for recs in cr.values():
        for r in recs:
            if r[3] not in known:
                raise BTFError(f".BTF.ext has a CO-RE relocation of unknown kind {r[3]}")
    return BTFExt(
        {k: [FuncInfo(*r) for r in v] for k, v in fi.items()},
        {k: [LineInfo(*r) for r in v] for k, v in li.items()},
        {k: [CoreRelo(r[0], r[1], r[2], CoreReloKind(r[3])) for r in v] for k, v in cr.items()},
        fsz, lsz,
    )
