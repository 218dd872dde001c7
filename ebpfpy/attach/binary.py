"""User-space binaries for uprobes and USDT: find them, read symbols, map addresses.

The uprobe PMU wants a *file offset*, while symbols and USDT notes give
*virtual addresses*; the PT_LOAD program headers translate one to the other,
which works the same for executables, PIE executables and shared libraries.
Library names without a slash resolve like bpftrace does: through the
process's own maps when a pid is given, else the ld.so cache (`ldconfig -p`),
else $PATH for executables.
"""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from .errors import ProbeNotFoundError

# Symbol types a uprobe can sit on (STT_GNU_IFUNC resolvers are functions too).
_FUNC_TYPES = ("STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS")
_DATA_TYPES = ("STT_OBJECT",)  # uaddr() takes data symbols only, as bpftrace does
_SYMTABS = (".symtab", ".dynsym")


@dataclass(frozen=True)
class Segment:
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    executable: bool


@dataclass(frozen=True)
class Symbol:
    name: str
    vaddr: int
    size: int


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    offset: int
    size: int


class ElfImage:
    """What the attach layer needs from one ELF file, read once (see `elf_image`)."""

    def __init__(self, path: str):
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = path
        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                self.elf_type = elf["e_type"]
                self.machine = elf["e_machine"]
                self.segments = tuple(
                    Segment(s["p_vaddr"], s["p_offset"], s["p_filesz"], s["p_memsz"], bool(s["p_flags"] & 1))
                    for s in elf.iter_segments()
                    if s["p_type"] == "PT_LOAD"
                )
                self.sections = {
                    s.name: Section(s.name, s["sh_addr"], s["sh_offset"], s["sh_size"]) for s in elf.iter_sections()
                }
                self.symbols = self._read_symbols(elf)
                self.data_symbols = self._read_symbols(elf, _DATA_TYPES)
                notes = elf.get_section_by_name(".note.stapsdt")
                self.stapsdt_notes = notes.data() if notes is not None else b""
        except FileNotFoundError:
            raise ProbeNotFoundError(f"binary not found: {path}") from None
        except (ELFError, IsADirectoryError) as exc:
            raise ProbeNotFoundError(f"not an ELF binary: {path} ({exc})") from None

    @staticmethod
    def _read_symbols(elf, types=None) -> dict[str, Symbol]:
        """Named, defined symbols of ``types`` (functions by default), ``.symtab`` before ``.dynsym``."""
        types = _FUNC_TYPES if types is None else types
        out: dict[str, Symbol] = {}
        for secname in _SYMTABS:
            sec = elf.get_section_by_name(secname)
            if sec is None or not hasattr(sec, "iter_symbols"):
                continue
            for sym in sec.iter_symbols():
                if sym["st_info"]["type"] not in types:
                    continue
                if sym["st_shndx"] == "SHN_UNDEF" or not sym["st_value"] or not sym.name:
                    continue
                name = sym.name.split("@", 1)[0]
                out.setdefault(name, Symbol(name, sym["st_value"], sym["st_size"]))
        return out

    def vaddr_to_offset(self, vaddr: int) -> int:
        """File offset of virtual address `vaddr` via the PT_LOAD segment holding it."""
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + max(seg.filesz, 1):
                return vaddr - seg.vaddr + seg.offset
        raise ProbeNotFoundError(f"address {vaddr:#x} is not in a loaded segment of {self.path}")

    def section_offset(self, vaddr: int) -> int:
        """File offset of `vaddr` via the section holding it (for .probes semaphores)."""
        for sec in self.sections.values():
            if sec.addr and sec.addr <= vaddr < sec.addr + sec.size:
                return vaddr - sec.addr + sec.offset
        return self.vaddr_to_offset(vaddr)

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise ProbeNotFoundError(f"symbol not found: {name} in {self.path}") from None

    def match_symbols(self, pattern: str) -> list[Symbol]:
        """Function symbols matching a bpftrace wildcard (`*`, `?`, `[..]`), sorted by name."""
        if not has_wildcard(pattern):
            return [self.symbol(pattern)]
        return [s for n, s in sorted(self.symbols.items()) if fnmatch.fnmatchcase(n, pattern)]


@lru_cache(maxsize=64)
def _elf_image_cached(path: str, mtime_ns: int, size: int) -> ElfImage:
    return ElfImage(path)


def elf_image(path: str) -> ElfImage:
    """A cached ElfImage; the cache key includes mtime so a rebuilt binary is re-read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ProbeNotFoundError(f"binary not found: {path}") from None
    return _elf_image_cached(os.path.abspath(path), st.st_mtime_ns, st.st_size)


def has_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


# ---------------------------------------------------------------------------
# binary and library names

_LDCONFIG_LINE = re.compile(r"^\s*(?P<soname>\S+)\s+\((?P<flags>[^)]*)\)\s+=>\s+(?P<path>\S+)\s*$")


@lru_cache(maxsize=1)
def ld_so_cache() -> tuple[tuple[str, str, str], ...]:
    """(soname, flags, path) of every library `ldconfig -p` knows."""
    exe = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        text = subprocess.run([exe, "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ()
    out = []
    for line in text.splitlines():
        m = _LDCONFIG_LINE.match(line)
        if m:
            out.append((m.group("soname"), m.group("flags"), m.group("path")))
    return tuple(out)


def _lib_prefixes(name: str) -> tuple[str, ...]:
    base = name[3:] if name.startswith("lib") else name
    return (f"lib{base}.so", f"{base}.so")


def _lib_from_maps(name: str, pid: int) -> str | None:
    prefixes = _lib_prefixes(name)
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6:
                    continue
                path = parts[5].strip()
                if os.path.basename(path).startswith(prefixes):
                    return path
    except OSError:
        return None
    return None


def _lib_from_cache(name: str) -> str | None:
    prefixes = _lib_prefixes(name)
    machine_flag = "x86-64" if os.uname().machine == "x86_64" else ""
    hits = [(soname, flags, path) for soname, flags, path in ld_so_cache() if soname.startswith(prefixes)]
    hits.sort(key=lambda h: (machine_flag not in h[1], h[0] != prefixes[0] + ".6", len(h[0])))
    return hits[0][2] if hits else None


# Where libraries live when neither ldconfig nor our own maps know one.
LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")


def _lib_from_dirs(name: str) -> str | None:
    prefixes = _lib_prefixes(name)
    for d in LIB_DIRS:
        try:
            hits = sorted(f for f in os.listdir(d) if f.startswith(prefixes))
        except OSError:
            continue
        if hits:
            return os.path.join(d, hits[0])
    return None


def resolve_binary(name: str, pid: int = -1) -> str:
    """The path of a uprobe/USDT target given as a path, a library name or a program name."""
    if "/" in name:
        path = name
        if pid > 0 and not os.path.exists(path):
            path = f"/proc/{pid}/root{name}"
        if not os.path.exists(path):
            raise ProbeNotFoundError(f"binary not found: {name}")
        return path
    looks_like_lib = name.startswith("lib") or ".so" in name
    candidates = (
        lambda: _lib_from_maps(name, pid) if pid > 0 else None,
        lambda: None if looks_like_lib else shutil.which(name),
        lambda: _lib_from_cache(name),
        lambda: _lib_from_maps(name, os.getpid()),  # no ldconfig (minimal systems): what we map ourselves
        lambda: _lib_from_dirs(name),
    )
    for find in candidates:
        found = find()
        if found:
            return found
    raise ProbeNotFoundError(f"binary or library not found: {name}")


def resolve_binaries(pattern: str, pid: int = -1) -> list[str]:
    """Paths a uprobe target names; a wildcard in a path expands with glob."""
    if has_wildcard(pattern) and "/" in pattern:
        import glob

        paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if not paths:
            raise ProbeNotFoundError(f"no binary matches {pattern}")
        return paths
    return [resolve_binary(pattern, pid)]
