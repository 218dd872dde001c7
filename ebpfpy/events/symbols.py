"""Kernel and user-space symbolization, printed the way bpftrace 0.17 prints it.

Kernel: ``/proc/kallsyms`` is read once, lazily, on the first lookup (about
120k lines: parsing it costs ~0.1 s, which a script that never prints a
kernel address must not pay), then searched with ``bisect``.

User space: an address of process PID is mapped to a file through
``/proc/PID/maps``; the file offset is turned into an ELF virtual address
through the file's PT_LOAD segments, which handles PIE executables and shared
libraries alike (the load bias never has to be computed separately). Function
symbols come from ``.symtab`` and ``.dynsym`` (pyelftools), plus the separate
debug file of a stripped library when one is installed (by build id or
.gnu_debuglink, as bcc does), and are cached per (path, device, inode,
mtime), so every process using libc shares one table.

C++ names are demangled by running binutils' ``c++filt`` once per ELF file on
all its mangled names (Python's standard library has no demangler). When
``c++filt`` is not installed, mangled names are printed unchanged, as
bpftrace does with ``BPFTRACE_NO_CPP_DEMANGLE=1``.

Formats, as observed with bpftrace 0.17: a resolved address prints as
``name`` (``ksym``/``usym``) or ``name+OFF`` in stacks, OFF in decimal; an
unresolved one as ``0x7f06435a829`` (lower-case hex); perf-mode user frames
append `` (/path/of/module)`` or `` ([unknown])``.
"""
from __future__ import annotations

import bisect
import os
import shutil
import struct as _struct
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ElfSymbols",
    "KernelSymbols",
    "MemoryMapping",
    "ProcessSymbols",
    "debug_file_candidates",
    "demangle",
    "format_address",
    "kaddr",
    "kernel_symbols",
    "ksym",
    "parse_maps",
    "process_symbols",
    "read_maps",
    "usym",
]

# kallsyms types that name code or data we may be asked about. 'U'
# (undefined) and 'a'/'A' (absolute values, not addresses) would make
# lookups land on nonsense.
_KALLSYMS_SKIP = frozenset("UaA")


def format_address(addr: int) -> str:
    """bpftrace prints unresolved addresses as C++ prints ``(void *)addr``: hex with a
    ``0x`` base, which C++'s showbase leaves off zero."""
    return hex(addr) if addr else "0"


def _with_offset(name: str, offset: int, show_offset: bool) -> str:
    return f"{name}+{offset}" if show_offset else name


# ---------------------------------------------------------------- kernel


class KernelSymbols:
    """Sorted kallsyms, loaded on first use.

    At one address the last name in file order wins (``_text`` over
    ``srso_alias_untrain_ret`` and the like): what bpftrace 0.17 (bcc's sorted
    table, searched with upper_bound) picks for nearly every alias pair here.
    The same rule serves every lookup, so output is stable.
    """

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        self.path = path
        self._addrs: list[int] = []
        self._names: list[str] = []
        self._by_name: dict[str, int] = {}
        self._loaded = False
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            with open(self.path, "rb") as f:
                text = f.read().decode("ascii", "replace")
            pairs = []
            by_name: dict[str, int] = {}
            for line in text.splitlines():
                parts = line.split(None, 3)
                if len(parts) < 3 or parts[1] in _KALLSYMS_SKIP:
                    continue
                addr = int(parts[0], 16)
                if addr == 0:  # kptr_restrict hides addresses: nothing to resolve
                    continue
                name = parts[2]
                pairs.append((addr, name))
                by_name.setdefault(name, addr)
            pairs.sort(key=lambda p: p[0])  # stable: file order among aliases
            addrs: list[int] = []
            names: list[str] = []
            for addr, name in pairs:
                if addrs and addrs[-1] == addr:
                    names[-1] = name  # a later alias replaces an earlier one
                    continue
                addrs.append(addr)
                names.append(name)
            self._addrs, self._names, self._by_name = addrs, names, by_name
            self._loaded = True

    def __len__(self) -> int:
        if not self._loaded:
            self._load()
        return len(self._addrs)

    def lookup(self, addr: int) -> tuple[str, int] | None:
        """``(name, offset)`` of the symbol at or below ``addr``, or None."""
        if not self._loaded:
            self._load()
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        return self._names[i], addr - self._addrs[i]

    def name_at(self, addr: int) -> str | None:
        """The symbol starting exactly at ``addr`` (what bpftool names a call target by), or None."""
        found = self.lookup(addr)
        return found[0] if found is not None and found[1] == 0 else None

    def ksym(self, addr: int, *, offset: bool = False) -> str:
        """bpftrace's ``ksym(addr)`` (name only) or a stack frame (``name+off``)."""
        found = self.lookup(addr)
        if found is None:
            return format_address(addr)
        return _with_offset(found[0], found[1], offset)

    def kaddr(self, name: str) -> int:
        """Address of ``name``; raises KeyError when the kernel does not export it."""
        if not self._loaded:
            self._load()
        return self._by_name[name]


_kernel: KernelSymbols | None = None


def kernel_symbols() -> KernelSymbols:
    """The process-wide kallsyms table (kallsyms only changes when modules load)."""
    global _kernel
    if _kernel is None:
        _kernel = KernelSymbols()
    return _kernel


def ksym(addr: int, *, offset: bool = False) -> str:
    return kernel_symbols().ksym(addr, offset=offset)


def kaddr(name: str) -> int:
    return kernel_symbols().kaddr(name)


# ---------------------------------------------------------------- demangling


def demangle(names: Iterable[str]) -> dict[str, str]:
    """Demangle many C++ names with one ``c++filt`` run; {} if it is missing.

    One process for a whole symbol table keeps the cost at a few ms instead
    of one fork per name.
    """
    todo = sorted({n for n in names if n.startswith("_Z") and "\n" not in n})
    tool = shutil.which("c++filt")
    if not todo or tool is None:
        return {}
    try:
        out = subprocess.run(
            [tool],
            input="\n".join(todo) + "\n",
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if len(out) != len(todo):
        return {}
    return {m: d for m, d in zip(todo, out) if d != m}


# ---------------------------------------------------------------- ELF files

_STT_FUNC_TYPES = frozenset({"STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS"})
# Among aliases at one address the global name is the one users wrote.
_BIND_RANK = {"STB_GLOBAL": 0, "STB_WEAK": 1, "STB_GNU_UNIQUE": 1, "STB_LOCAL": 2}


DEBUG_ROOT = "/usr/lib/debug"


def _elf_read_errors() -> tuple:
    """What reading a missing, foreign or truncated file raises."""
    from elftools.common.exceptions import ELFError
    from elftools.construct.core import ConstructError

    return (OSError, ValueError, KeyError, IndexError, _struct.error, ELFError, ConstructError)


def _build_id(elf) -> str | None:
    """Hex GNU build id from the ELF notes, the key of /usr/lib/debug/.build-id."""
    for section in elf.iter_sections():
        if section["sh_type"] != "SHT_NOTE" or not hasattr(section, "iter_notes"):
            continue
        for note in section.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return note["n_desc"]
    return None


def _debuglink(elf) -> str | None:
    section = elf.get_section_by_name(".gnu_debuglink")
    if section is None:
        return None
    return section.data().split(b"\0", 1)[0].decode(errors="replace") or None


def debug_file_candidates(path: str, build_id: str | None, debuglink: str | None,
                          root: str = DEBUG_ROOT) -> list[str]:
    """Where gdb and bcc look for the separate debug file of ``path``, in order:
    by build id, then by .gnu_debuglink name next to the file, in .debug/,
    and under the debug root."""
    out = []
    if build_id and len(build_id) > 2:
        out.append(os.path.join(root, ".build-id", build_id[:2], build_id[2:] + ".debug"))
    if debuglink:
        d = os.path.dirname(os.path.realpath(path))
        out += [
            os.path.join(d, debuglink),
            os.path.join(d, ".debug", debuglink),
            root + os.path.join(d, debuglink),
        ]
    return [c for c in out if os.path.realpath(c) != os.path.realpath(path)]


def _collect(elf, best: dict, sections=(".symtab", ".dynsym")) -> bool:
    """Add function symbols of ``elf`` to ``best``; True if it had a .symtab."""
    had_symtab = False
    for secname in sections:
        section = elf.get_section_by_name(secname)
        if section is None or not hasattr(section, "iter_symbols"):
            continue
        if section["sh_type"] == "SHT_NOBITS":
            continue
        had_symtab |= secname == ".symtab"
        for sym in section.iter_symbols():
            entry = sym.entry
            info = entry["st_info"]
            if info["type"] not in _STT_FUNC_TYPES:
                continue
            value = entry["st_value"]
            if value == 0 or entry["st_shndx"] == "SHN_UNDEF" or not sym.name:
                continue
            rank = _BIND_RANK.get(info["bind"], 3)
            old = best.get(value)
            if old is None or rank < old[0]:
                best[value] = (rank, sym.name, entry["st_size"])
    return had_symtab


class ElfSymbols:
    """Function symbols and PT_LOAD segments of one ELF file.

    A stripped file (no .symtab, only the exported .dynsym) gets its local
    symbols from its separate debug file when one is installed (Debian's
    ``*-dbg`` packages under /usr/lib/debug), found by build id or
    .gnu_debuglink as bcc does, so frames such as libc's
    ``__libc_start_call_main`` resolve like in bpftrace.
    """

    def __init__(self, path: str, *, demangle_names: bool = True,
                 debug_root: str = DEBUG_ROOT) -> None:
        from elftools.elf.elffile import ELFFile  # lazy: pyelftools import is slow

        self.path = path
        self.debug_file: str | None = None
        best: dict[int, tuple[int, str, int]] = {}  # addr -> (rank, name, size)
        with open(path, "rb") as f:
            elf = ELFFile(f)
            self.segments = tuple(
                (seg["p_offset"], seg["p_filesz"], seg["p_vaddr"])
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD"
            )
            if not _collect(elf, best):
                for candidate in debug_file_candidates(path, _build_id(elf), _debuglink(elf), debug_root):
                    if self._add_debug_file(candidate, best):
                        self.debug_file = candidate
                        break
        ordered = sorted(best.items())
        self._addrs = [a for a, _ in ordered]
        names = [v[1] for _, v in ordered]
        self._sizes = [v[2] for _, v in ordered]
        if demangle_names:
            table = demangle(names)
            names = [table.get(n, n) for n in names]
        self._names = names
        self._by_name: dict[str, int] | None = None

    @staticmethod
    def _add_debug_file(candidate: str, best: dict) -> bool:
        from elftools.elf.elffile import ELFFile

        try:
            with open(candidate, "rb") as f:
                return _collect(ELFFile(f), best, (".symtab",))
        except _elf_read_errors():  # missing, or not a (complete) ELF file
            return False

    def __len__(self) -> int:
        return len(self._addrs)

    def address(self, name: str) -> int | None:
        """ELF virtual address of function ``name`` (as printed: demangled), for
        ``uaddr``-like lookups; None when the file has no such symbol."""
        if self._by_name is None:
            self._by_name = {}
            for a, n in zip(self._addrs, self._names):
                self._by_name.setdefault(n, a)
        return self._by_name.get(name)

    def vaddr(self, file_offset: int) -> int | None:
        """ELF virtual address of a file offset, via the PT_LOAD covering it."""
        for p_offset, p_filesz, p_vaddr in self.segments:
            if p_offset <= file_offset < p_offset + max(p_filesz, 1):
                return file_offset - p_offset + p_vaddr
        return None

    def lookup(self, vaddr: int) -> tuple[str, int] | None:
        """``(name, offset)`` of the function containing ``vaddr``.

        A sized symbol must contain the address; an unsized one (hand-written
        assembly) is accepted as the nearest symbol below.
        """
        i = bisect.bisect_right(self._addrs, vaddr) - 1
        # Look a few symbols back: a large function may enclose a small
        # local one placed after its start.
        for j in range(i, max(i - 4, -1), -1):
            start, size = self._addrs[j], self._sizes[j]
            if vaddr < start + size or (size == 0 and j == i):
                return self._names[j], vaddr - start
        return None


_elf_cache: dict[tuple, ElfSymbols] = {}
_elf_lock = threading.Lock()


def _elf_symbols(path: str, demangle_names: bool = True) -> ElfSymbols | None:
    """Cached ElfSymbols; the key changes when the file is replaced or rebuilt."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns, demangle_names)
    with _elf_lock:
        cached = _elf_cache.get(key)
    if cached is not None:
        return cached
    try:
        syms = ElfSymbols(path, demangle_names=demangle_names)
    except _elf_read_errors():  # not an ELF file, truncated, unreadable: no symbols
        return None
    with _elf_lock:
        _elf_cache[key] = syms
    return syms


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class MemoryMapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str


def parse_maps(text: str) -> list[MemoryMapping]:
    """Parse the text of /proc/PID/maps (file-backed and anonymous lines)."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        out.append(
            MemoryMapping(
                start=int(lo, 16),
                end=int(hi, 16),
                perms=parts[1],
                offset=int(parts[2], 16),
                inode=int(parts[4]),
                path=parts[5] if len(parts) > 5 else "",
            )
        )
    return out


def read_maps(pid: int) -> list[MemoryMapping]:
    with open(f"/proc/{pid}/maps") as f:
        return parse_maps(f.read())


class ProcessSymbols:
    """Symbolizer for one process; maps are read once and re-read on a miss
    (the process may have dlopen()ed a library since)."""

    def __init__(self, pid: int, *, demangle_names: bool = True) -> None:
        self.pid = pid
        self.demangle_names = demangle_names
        self._maps: list[MemoryMapping] = []
        self._starts: list[int] = []
        self._refresh()

    def _refresh(self) -> bool:
        try:
            maps = read_maps(self.pid)
        except OSError:  # the process is gone: keep what we had
            return False
        maps.sort(key=lambda m: m.start)
        self._maps = maps
        self._starts = [m.start for m in maps]
        return True

    def mapping(self, addr: int) -> MemoryMapping | None:
        for attempt in (0, 1):
            i = bisect.bisect_right(self._starts, addr) - 1
            if i >= 0 and addr < self._maps[i].end:
                return self._maps[i]
            if attempt == 0 and not self._refresh():
                return None
        return None

    def _elf_for(self, m: MemoryMapping) -> ElfSymbols | None:
        if not m.path.startswith("/"):
            return None  # [vdso], [heap], anonymous memory
        path = m.path
        candidates = []
        if path.endswith(" (deleted)"):
            candidates.append(f"/proc/{self.pid}/map_files/{m.start:x}-{m.end:x}")
        else:
            # Through the process's root so a container's files are found.
            candidates += [f"/proc/{self.pid}/root{path}", path]
        for candidate in candidates:
            syms = _elf_symbols(candidate, self.demangle_names)
            if syms is not None:
                return syms
        return None

    def resolve(self, addr: int) -> tuple[str, int, str] | None:
        """``(name, offset, module path)``, or None when not resolvable."""
        m = self.mapping(addr)
        if m is None:
            return None
        syms = self._elf_for(m)
        if syms is None:
            return None
        vaddr = syms.vaddr(addr - m.start + m.offset)
        if vaddr is None:
            return None
        found = syms.lookup(vaddr)
        if found is None:
            return None
        return found[0], found[1], m.path

    def module(self, addr: int) -> str | None:
        m = self.mapping(addr)
        return m.path if m is not None and m.path else None

    def usym(self, addr: int, *, offset: bool = False, module: bool = False) -> str:
        """bpftrace's ``usym`` (name), a stack frame (``name+off``), or a perf
        frame (``name+off (/path)``)."""
        found = self.resolve(addr)
        if found is None:
            text = format_address(addr)
            return f"{text} ([unknown])" if module else text
        text = _with_offset(found[0], found[1], offset)
        return f"{text} ({found[2]})" if module else text


_procs: dict[int, ProcessSymbols] = {}


def process_symbols(pid: int, *, refresh: bool = False) -> ProcessSymbols:
    """Cached per pid; pass refresh=True when the pid may have been reused."""
    ps = _procs.get(pid)
    if ps is None or refresh:
        ps = _procs[pid] = ProcessSymbols(pid)
    return ps


def usym(pid: int, addr: int, *, offset: bool = False, module: bool = False) -> str:
    return process_symbols(pid).usym(addr, offset=offset, module=module)
