"""Read a clang-built BPF ELF object into plain data (sections, symbols, relocations).

Everything the loader needs is copied out of pyelftools here, so the later
stages (relocation, CO-RE, map creation) work on simple values and the ELF
file is closed right away.  Malformed input becomes one ``ObjectError`` line
that names the file and what is wrong.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field

from ebpfpy.btf import BTF, BTFError, BTFExt, parse_ext

EM_BPF = 247
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_NOBITS = 8
SHT_REL = 9
SHF_WRITE = 0x1
SHF_EXECINSTR = 0x4
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN, STV_PROTECTED = range(4)

R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_32 = 10


class ObjectError(Exception):
    """A BPF object cannot be read or loaded; the message is one line naming the cause."""


class LoadError(ObjectError):
    """A program or map the kernel refused; ``.log`` holds the verifier log, if any."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    type: int
    bind: int
    shndx: int  # section index (0: undefined, >= 0xff00: special)
    visibility: int = 0  # STV_DEFAULT, STV_INTERNAL, STV_HIDDEN, STV_PROTECTED


@dataclass(frozen=True)
class Reloc:
    offset: int
    symbol: Symbol
    type: int


@dataclass
class Section:
    index: int
    name: str
    type: int
    flags: int
    data: bytes  # NOBITS sections: zeroes of their size
    relocs: list[Reloc] = field(default_factory=list)

    @property
    def is_code(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


@dataclass
class RawObject:
    path: str
    name: str  # libbpf's object name: basename up to the first '.'
    sections: dict[int, Section]
    symbols: list[Symbol]
    btf: BTF | None
    ext: BTFExt | None
    license: str
    kern_version: int

    def section_named(self, name: str) -> Section | None:
        for s in self.sections.values():
            if s.name == name:
                return s
        return None

    def symbols_in(self, shndx: int, types: tuple[int, ...] = (STT_FUNC, STT_OBJECT)) -> list[Symbol]:
        return sorted((s for s in self.symbols if s.shndx == shndx and s.type in types), key=lambda s: s.value)


def object_name(path: str) -> str:
    return os.path.basename(path).split(".", 1)[0]


# What pyelftools raises on truncated or corrupt input, besides its own ELFError.
_PARSE_ERRORS = (ValueError, KeyError, IndexError, EOFError, AssertionError, struct.error)


def read_object(path: str) -> RawObject:
    """Everything the loader needs from ``path``; raises ObjectError on bad input."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise ObjectError(f"{path}: {e.strerror}") from None
    if blob[:4] != b"\x7fELF":
        raise ObjectError(f"{path}: not an ELF file")
    try:
        return _read(path, ELFFile(io.BytesIO(blob)))
    except BTFError as e:
        raise ObjectError(f"{path}: bad BTF: {e}") from None
    except (ELFError, *_PARSE_ERRORS) as e:
        raise ObjectError(f"{path}: malformed or truncated ELF ({type(e).__name__}: {e})") from None


def _read(path: str, elf) -> RawObject:
    if elf["e_machine"] not in ("EM_BPF", EM_BPF):
        raise ObjectError(f"{path}: not a BPF object (machine {elf['e_machine']})")
    if elf.elfclass != 64 or not elf.little_endian:
        raise ObjectError(f"{path}: only 64-bit little-endian BPF objects are supported")
    sections: dict[int, Section] = {}
    symtab = None
    rel_secs = []
    for i, s in enumerate(elf.iter_sections()):
        if i == 0:
            continue
        stype = s["sh_type"]
        stype_num = {"SHT_PROGBITS": SHT_PROGBITS, "SHT_SYMTAB": SHT_SYMTAB, "SHT_NOBITS": SHT_NOBITS,
                     "SHT_REL": SHT_REL}.get(stype, -1) if isinstance(stype, str) else stype
        if stype_num == SHT_SYMTAB:
            symtab = s
            continue
        if stype_num == SHT_REL:
            rel_secs.append(s)
            continue
        if s.name.startswith(".debug") or s.name.startswith(".llvm"):
            continue  # DWARF and friends: the loader never reads them
        if stype_num == SHT_NOBITS:
            data = bytes(s["sh_size"])
        elif stype_num == SHT_PROGBITS:
            data = s.data()
            if len(data) != s["sh_size"]:
                raise ObjectError(f"{path}: section {s.name} is truncated")
        else:
            continue
        sections[i] = Section(i, s.name, stype_num, s["sh_flags"], data)
    if symtab is None:
        raise ObjectError(f"{path}: no symbol table (not a clang -target bpf object?)")
    symbols = []
    for sym in symtab.iter_symbols():
        shndx = sym["st_shndx"]
        if isinstance(shndx, str):
            shndx = {"SHN_UNDEF": 0, "SHN_ABS": 0xFFF1, "SHN_COMMON": 0xFFF2}.get(shndx, 0xFF00)
        info = sym["st_info"]
        stype = {"STT_NOTYPE": 0, "STT_OBJECT": STT_OBJECT, "STT_FUNC": STT_FUNC, "STT_SECTION": STT_SECTION,
                 "STT_FILE": 4}.get(info["type"], 0)
        bind = {"STB_LOCAL": STB_LOCAL, "STB_GLOBAL": STB_GLOBAL, "STB_WEAK": STB_WEAK}.get(info["bind"], 0)
        vis = {"STV_INTERNAL": STV_INTERNAL, "STV_HIDDEN": STV_HIDDEN,
               "STV_PROTECTED": STV_PROTECTED}.get(sym["st_other"]["visibility"], STV_DEFAULT)
        symbols.append(Symbol(sym.name, sym["st_value"], sym["st_size"], stype, bind, shndx, vis))
    for rs in rel_secs:
        target = sections.get(rs["sh_info"])
        if target is None or not (target.is_code or target.name == ".maps"):
            continue  # relocations of debug sections, .BTF, .BTF.ext: not ours (.maps: initial map-in-map values)
        for r in rs.iter_relocations():
            idx = r["r_info_sym"]
            if idx >= len(symbols):
                raise ObjectError(f"{path}: relocation in {target.name} names symbol #{idx}, which does not exist")
            target.relocs.append(Reloc(r["r_offset"], symbols[idx], r["r_info_type"]))
    for s in sections.values():
        s.relocs.sort(key=lambda r: r.offset)

    btf = ext = None
    btf_sec = next((s for s in sections.values() if s.name == ".BTF"), None)
    if btf_sec is not None:
        btf = BTF(btf_sec.data)
        ext_sec = next((s for s in sections.values() if s.name == ".BTF.ext"), None)
        if ext_sec is not None:
            ext = parse_ext(ext_sec.data, btf)
    lic = next((s for s in sections.values() if s.name == "license"), None)
    license = lic.data.split(b"\0", 1)[0].decode(errors="replace") if lic else ""
    ver = next((s for s in sections.values() if s.name == "version"), None)
    kern_version = int.from_bytes(ver.data[:4], "little") if ver and len(ver.data) >= 4 else 0
    return RawObject(path, object_name(path), sections, symbols, btf, ext, license, kern_version)


def read_btf_sections(path: str) -> tuple[BTF | None, BTFExt | None]:
    """Just ``.BTF`` and ``.BTF.ext`` of an object (for ``ebpfpy btf dump obj.o``)."""
    raw = read_object(path)
    return raw.btf, raw.ext
