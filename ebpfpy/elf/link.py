"""Turn program sections into loadable instruction streams, as libbpf does.

Each entry function (a global function in a non-``.text`` code section) gets
its own copy of every ``.text`` subprogram it calls, appended depth-first in
call order; BPF-to-BPF call immediates are rewritten for the new layout.
Map and global-data references (``R_BPF_64_64`` on LD_IMM64) are recorded as
``MapRef``s and filled with fds at load time.  func_info and line_info records
follow their code into the program.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ebpfpy.btf import BTFExt

from .mapdefs import MapSpec
from .reader import STB_LOCAL, STT_FUNC, ObjectError, RawObject, Section

LD_IMM64 = 0x18
CALL = 0x85
PSEUDO_MAP_FD = 1
PSEUDO_MAP_VALUE = 2
PSEUDO_CALL = 1
PSEUDO_FUNC = 4
PSEUDO_KFUNC_CALL = 2
PSEUDO_BTF_ID = 3


@dataclass(frozen=True)
class MapRef:
    slot: int          # LD_IMM64 slot in the program
    map_name: str
    pseudo: int        # PSEUDO_MAP_FD or PSEUDO_MAP_VALUE
    offset: int = 0    # value offset for PSEUDO_MAP_VALUE


@dataclass
class Function:
    section: Section
    name: str
    start: int  # slot
    count: int  # slots
    is_global: bool


@dataclass
class LinkedProgram:
    name: str
    section: str
    code: bytearray
    map_refs: list[MapRef]
    func_info: list[tuple[int, int]] = field(default_factory=list)          # (insn, type id)
    line_info: list[tuple[int, int, int, int]] = field(default_factory=list)  # (insn, file, line, col)
    # where the code came from: (first insn in the program, ELF section index, first slot there, slots)
    origins: list[tuple[int, int, int, int]] = field(default_factory=list)

    def origin(self, insn: int) -> tuple[int, int] | None:
        """(ELF section index, slot in that section) of the program's instruction ``insn``."""
        for base, sec, start, count in self.origins:
            if base <= insn < base + count:
                return sec, start + insn - base
        return None


def _imm(code: bytes, slot: int) -> int:
    return struct.unpack_from("<i", code, slot * 8 + 4)[0]


def _set_imm(code: bytearray, slot: int, value: int) -> None:
    struct.pack_into("<i", code, slot * 8 + 4, value)


def _set_src(code: bytearray, slot: int, src: int) -> None:
    code[slot * 8 + 1] = (code[slot * 8 + 1] & 0x0F) | (src << 4)


def functions(raw: RawObject, code: dict[int, bytearray]) -> dict[int, list[Function]]:
    """Functions per code section, from STT_FUNC symbols (a section without any is one function)."""
    out: dict[int, list[Function]] = {}
    for idx, sec in raw.sections.items():
        if not sec.is_code or not sec.data:
            continue
        if len(sec.data) % 8:
            raise ObjectError(f"{raw.path}: section {sec.name} is not a whole number of instructions")
        fs = []
        for sym in raw.symbols_in(idx, (STT_FUNC,)):
            if sym.value % 8 or sym.size % 8:
                raise ObjectError(f"{raw.path}: function {sym.name} is misaligned")
            fs.append(Function(sec, sym.name, sym.value // 8, (sym.size or len(sec.data) - sym.value) // 8,
                               sym.bind != STB_LOCAL))
        if not fs:
            fs.append(Function(sec, sec.name.replace("/", "_"), 0, len(sec.data) // 8, True))
        out[idx] = fs
    return out


def _function_at(funcs: list[Function], slot: int) -> Function | None:
    for f in funcs:
        if f.start <= slot < f.start + f.count:
            return f
    return None


class Linker:
    def __init__(self, raw: RawObject, code: dict[int, bytearray], maps: list[MapSpec], ext: BTFExt | None,
                 externs: dict[str, tuple[str, int]] | None = None, ksyms: dict[str, int] | None = None):
        self.raw = raw
        self.code = code  # per-section code after CO-RE patching
        self.funcs = functions(raw, code)
        self.maps_at = {(m.shndx, m.offset): m for m in maps if not m.is_global_data}
        self.data_maps = {m.shndx: m for m in maps if m.is_global_data}
        self.ext = ext
        self.externs = externs or {}  # kconfig extern name -> (map name, offset in its value)
        self.ksyms = ksyms or {}  # kfunc / per-CPU variable name -> vmlinux BTF id
        self.text_idx = next((i for i, s in raw.sections.items() if s.name == ".text"), None)

    def entry_points(self) -> list[Function]:
        out = []
        for idx, fs in self.funcs.items():
            if idx == self.text_idx:
                continue
            for f in fs:
                if not f.is_global:
                    raise ObjectError(f"{self.raw.path}: program '{f.name}' in {f.section.name} is static; "
                                      "programs must be global functions")
                out.append(f)
        return out

    def link(self, entry: Function) -> LinkedProgram:
        prog = LinkedProgram(entry.name, entry.section.name, bytearray(), [])
        placed: dict[tuple[int, int], int] = {}
        self._place(prog, entry, placed)
        return prog

    def _place(self, prog: LinkedProgram, fn: Function, placed: dict[tuple[int, int], int]) -> None:
        sec = fn.section
        base = len(prog.code) // 8
        placed[(sec.index, fn.start)] = base
        prog.origins.append((base, sec.index, fn.start, fn.count))
        src = self.code[sec.index]
        prog.code += src[fn.start * 8:(fn.start + fn.count) * 8]
        self._copy_ext(prog, sec.name, fn, base)
        relocs = {r.offset // 8: r for r in sec.relocs if fn.start * 8 <= r.offset < (fn.start + fn.count) * 8}
        for j in range(fn.count):
            slot_sec, slot = fn.start + j, base + j
            op, regs = prog.code[slot * 8], prog.code[slot * 8 + 1]
            rel = relocs.get(slot_sec)
            is_call = op == CALL and (regs >> 4) == PSEUDO_CALL
            if rel is not None and rel.symbol.shndx == 0 and rel.symbol.name in self.ksyms:
                self._ksym(prog, slot, op, rel.symbol.name)
            elif rel is not None and op == LD_IMM64:
                sym_sec = self.raw.sections.get(rel.symbol.shndx)
                if sym_sec is not None and sym_sec.is_code:
                    _set_src(prog.code, slot, PSEUDO_FUNC)
                    target = (rel.symbol.value + _imm(prog.code, slot)) // 8
                    self._call(prog, slot, sym_sec.index, target, placed)
                else:
                    self._map_ref(prog, slot, rel)
            elif is_call:
                if rel is not None:
                    if rel.symbol.shndx not in self.code:
                        raise ObjectError(f"{self.raw.path}: call to undefined function {rel.symbol.name!r} "
                                          f"in {sec.name} (extern kfuncs are not supported)")
                    target = rel.symbol.value // 8 + _imm(prog.code, slot) + 1
                    tsec = rel.symbol.shndx
                else:
                    target = slot_sec + _imm(prog.code, slot) + 1
                    tsec = sec.index
                self._call(prog, slot, tsec, target, placed)
            elif rel is not None:
                raise ObjectError(f"{self.raw.path}: unsupported relocation against {rel.symbol.name!r} "
                                  f"at instruction {slot_sec} of {sec.name}")

    def _ksym(self, prog: LinkedProgram, slot: int, op: int, name: str) -> None:
        """kfunc call -> BPF_PSEUDO_KFUNC_CALL; per-CPU variable -> LD_IMM64 of a BTF id;
        typeless ksym -> LD_IMM64 of its kallsyms address (a plain constant)."""
        from .externs import KsymAddress
        btf_id = self.ksyms[name]
        if isinstance(btf_id, KsymAddress):
            if op != LD_IMM64:
                raise ObjectError(f"{self.raw.path}: typeless ksym {name!r} used by a non-LD_IMM64 instruction")
            _set_src(prog.code, slot, 0)
            lo, hi = struct.unpack("<ii", struct.pack("<Q", int(btf_id)))
            _set_imm(prog.code, slot, lo)
            _set_imm(prog.code, slot + 1, hi)
            return
        if op == CALL:
            _set_src(prog.code, slot, PSEUDO_KFUNC_CALL)
            _set_imm(prog.code, slot, btf_id)
            struct.pack_into("<h", prog.code, slot * 8 + 2, 0)
        elif op == LD_IMM64:  # a weak ksym the kernel lacks loads as NULL (bpf_ksym_exists)
            _set_src(prog.code, slot, PSEUDO_BTF_ID if btf_id else 0)
            _set_imm(prog.code, slot, btf_id)
            _set_imm(prog.code, slot + 1, 0)
        else:
            raise ObjectError(f"{self.raw.path}: unexpected instruction referring to ksym {name!r}")

    def _call(self, prog: LinkedProgram, slot: int, tsec: int, target: int,
              placed: dict[tuple[int, int], int]) -> None:
        fn = _function_at(self.funcs.get(tsec, []), target)
        if fn is None:
            raise ObjectError(f"{self.raw.path}: call from {prog.name} to instruction {target} of section "
                              f"#{tsec}, which holds no function")
        key = (tsec, fn.start)
        if key not in placed:
            self._place(prog, fn, placed)
        _set_imm(prog.code, slot, placed[key] + (target - fn.start) - slot - 1)

    def _map_ref(self, prog: LinkedProgram, slot: int, rel) -> None:
        sym = rel.symbol
        if sym.shndx == 0 and sym.name in self.externs:
            map_name, off = self.externs[sym.name]
            prog.map_refs.append(MapRef(slot, map_name, PSEUDO_MAP_VALUE, off))
            return
        if sym.shndx == 0:
            raise ObjectError(f"{self.raw.path}: reference to extern {sym.name!r} in {prog.name} is not supported")
        m = self.maps_at.get((sym.shndx, sym.value))
        if m is not None:
            prog.map_refs.append(MapRef(slot, m.name, PSEUDO_MAP_FD))
            return
        d = self.data_maps.get(sym.shndx)
        if d is not None:
            off = _imm(prog.code, slot) + sym.value
            prog.map_refs.append(MapRef(slot, d.name, PSEUDO_MAP_VALUE, off))
            return
        sec = self.raw.sections.get(sym.shndx)
        where = sec.name if sec else f"section #{sym.shndx}"
        raise ObjectError(f"{self.raw.path}: {prog.name} refers to {sym.name or where!r} in {where}, "
                          "which is not a map or global data")

    def _copy_ext(self, prog: LinkedProgram, section: str, fn: Function, base: int) -> None:
        if self.ext is None:
            return
        lo, hi = fn.start * 8, (fn.start + fn.count) * 8
        for rec in self.ext.func_info.get(section, ()):
            if lo <= rec.insn_off < hi:
                prog.func_info.append((rec.insn_off // 8 - fn.start + base, rec.type_id))
        for rec in self.ext.line_info.get(section, ()):
            if lo <= rec.insn_off < hi:
                prog.line_info.append((rec.insn_off // 8 - fn.start + base, rec.file_name_off,
                                       rec.line_off, rec.line_col))


def encode_func_info(recs: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("<II", *r) for r in recs)


def encode_line_info(recs: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("<IIII", *r) for r in recs)


def fill_map_fds(code: bytearray, refs: list[MapRef], fds: dict[str, int]) -> bytearray:
    """A copy of ``code`` with each map reference pointing at its map's fd."""
    out = bytearray(code)
    for r in refs:
        _set_src(out, r.slot, r.pseudo)
        _set_imm(out, r.slot, fds[r.map_name])
        _set_imm(out, r.slot + 1, r.offset if r.pseudo == PSEUDO_MAP_VALUE else 0)
    return out
