"""USDT probes: `.note.stapsdt` notes, their argument specs, and attaching them.

A USDT probe is a `nop` at a known address plus a note saying where each
argument lives at that instant (`-4@-20(%rbp)`: a signed int in memory;
`8@%rdi`: a register; `4@$5`: a constant). We attach a uprobe at the note's pc
and, given the spec, emit instructions that rebuild the argument from
pt_regs and user memory.

Semaphores (the `provider_name_semaphore` counters that guard expensive
argument setup) are handed to the kernel through the uprobe PMU's
`ref_ctr_offset` config bits: the kernel increments the counter in every
process that maps the binary, now and later, and decrements it when our perf
event closes, so a crash never leaves a counter raised. Poking /proc/PID/mem
would only cover one process and would leak on a crash.
"""
from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.codegen.ctx import PT_REGS_X86_64
from ebpfpy.sys.consts import ProgType

from .binary import ElfImage, elf_image, has_wildcard, resolve_binaries
from .errors import ProbeNotFoundError, ProbeSpecError
from .provider import Attachment, ProbeContext

NT_STAPSDT = 3
STAPSDT_OWNER = b"stapsdt"



def _register_names() -> dict[str, tuple[int, int]]:
    """Every x86-64 register spelling -> (pt_regs offset, width in bytes); `ah` etc. at +1."""
    names: dict[str, tuple[int, int]] = {}
    for base in ("ax", "bx", "cx", "dx"):
        off = PT_REGS_X86_64[base]
        names.update({"r" + base: (off, 8), "e" + base: (off, 4), base: (off, 2), base[0] + "l": (off, 1)})
        names[base[0] + "h"] = (off + 1, 1)
    for base in ("si", "di", "bp", "sp"):
        off = PT_REGS_X86_64[base]
        names.update({"r" + base: (off, 8), "e" + base: (off, 4), base: (off, 2), base + "l": (off, 1)})
    for n in range(8, 16):
        off = PT_REGS_X86_64[f"r{n}"]
        names.update({f"r{n}": (off, 8), f"r{n}d": (off, 4), f"r{n}w": (off, 2), f"r{n}b": (off, 1)})
    names["rip"] = (PT_REGS_X86_64["ip"], 8)
    return names


REGISTERS = _register_names()


# ---------------------------------------------------------------------------
# argument specs

@dataclass(frozen=True)
class UsdtArg:
    """Where one USDT argument lives: `kind` is "reg", "const" or "mem".

    For "mem" the address is `reg + offset (+ index * scale)`; `size` is the
    argument's width in bytes and `signed` whether it sign-extends.
    """

    text: str
    size: int
    signed: bool
    kind: str
    reg: str | None = None
    offset: int = 0
    index: str | None = None
    scale: int = 1
    value: int = 0


_ARG_RE = re.compile(r"^(?:(?P<size>[+-]?\d+)@)?(?P<loc>.+)$")
_MEM_RE = re.compile(
    r"^(?P<off>[+-]?(?:0x[0-9a-fA-F]+|\d+))?\((?P<base>%\w+)?(?:,(?P<index>%\w+)(?:,(?P<scale>\d+))?)?\)$"
)


def _reg_name(text: str, spec: str) -> str:
    name = text.lstrip("%")
    if name not in REGISTERS:
        raise ProbeSpecError(f"unknown register {text!r} in USDT argument {spec!r}")
    return name


def parse_arg(spec: str) -> UsdtArg:
    """Parse one argument spec of a stapsdt note (x86-64 AT&T syntax)."""
    m = _ARG_RE.match(spec.strip())
    if not m:
        raise ProbeSpecError(f"cannot parse USDT argument {spec!r}")
    size_text = m.group("size")
    nbytes = int(size_text) if size_text else 8
    signed = nbytes < 0
    size = abs(nbytes)
    if size not in (1, 2, 4, 8):
        raise ProbeSpecError(f"bad USDT argument size {nbytes} in {spec!r}")
    loc = m.group("loc")
    common = dict(text=spec, size=size, signed=signed)
    if loc.startswith("%"):
        return UsdtArg(kind="reg", reg=_reg_name(loc, spec), **common)
    if loc.startswith("$"):
        try:
            return UsdtArg(kind="const", value=int(loc[1:], 0), **common)
        except ValueError:
            raise ProbeSpecError(f"USDT argument {spec!r}: constant {loc[1:]!r} is not a number") from None
    mm = _MEM_RE.match(loc)
    if not mm or not mm.group("base"):
        raise ProbeSpecError(f"unsupported USDT argument {spec!r} (symbolic or absolute addresses are not supported)")
    base = _reg_name(mm.group("base"), spec)
    if base == "rip":
        raise ProbeSpecError(f"unsupported USDT argument {spec!r}: %rip-relative addressing")
    index = _reg_name(mm.group("index"), spec) if mm.group("index") else None
    scale = int(mm.group("scale") or 1)
    if scale not in (1, 2, 4, 8):
        raise ProbeSpecError(f"bad scale {scale} in USDT argument {spec!r}")
    return UsdtArg(kind="mem", reg=base, offset=int(mm.group("off") or "0", 0), index=index, scale=scale, **common)


def parse_args(text: str) -> tuple[UsdtArg, ...]:
    return tuple(parse_arg(a) for a in text.split())


# ---------------------------------------------------------------------------
# code generation

def emit_extend(b: Any, dst: Any, size: int, signed: bool) -> None:
    """Make dst the 64-bit value of its low `size` bytes (shifts: no MOVSX on 6.1)."""
    if size == 8:
        return
    bits = 64 - 8 * size
    if signed:
        b.lsh(dst, bits)
        b.arsh(dst, bits)
    elif size == 4:
        b.mov32(dst, dst)
    else:
        b.and_(dst, (1 << (8 * size)) - 1)


def emit_usdt_arg(b: Any, arg: UsdtArg, dst: Any, ctx: Any, stack_off: int = -8) -> None:
    """Emit code leaving USDT argument `arg` in register `dst`, sign-extended per its size.

    `ctx` holds the `struct pt_regs *` and must survive a helper call (R6..R9)
    when the argument lives in memory; `stack_off` names 8 free bytes below
    R10 used as the read buffer. R1..R5 are clobbered for memory arguments.
    """
    from ebpfpy.isa.builder import FP, R1, R2, R3

    if arg.kind == "const":
        if -(1 << 31) <= arg.value < (1 << 31):
            b.mov(dst, arg.value)
        else:
            b.ld_imm64(dst, arg.value)
        emit_extend(b, dst, arg.size, arg.signed)
        return
    if arg.kind == "reg":
        off, _width = REGISTERS[arg.reg]
        if arg.size == 1 or arg.reg in ("ah", "bh", "ch", "dh"):
            b.ldx(1, dst, ctx, off)
        else:
            b.ldx(8, dst, ctx, off)
        emit_extend(b, dst, arg.size, arg.signed)
        return
    if getattr(ctx, "n", 6) < 6:
        raise ValueError("emit_usdt_arg: ctx must be in R6..R9 to survive the probe_read_user call")
    b.ldx(8, R3, ctx, REGISTERS[arg.reg][0])
    if arg.index is not None:
        b.ldx(8, R2, ctx, REGISTERS[arg.index][0])
        if arg.scale > 1:
            b.lsh(R2, arg.scale.bit_length() - 1)
        b.add(R3, R2)
    if arg.offset:
        b.add(R3, arg.offset)
    b.mov(R1, FP)
    b.add(R1, stack_off)
    b.mov(R2, arg.size)
    b.call("probe_read_user")
    b.ldx(arg.size, dst, FP, stack_off)
    emit_extend(b, dst, arg.size, arg.signed)


# ---------------------------------------------------------------------------
# notes

@dataclass(frozen=True)
class UsdtProbe:
    """One probe site from `.note.stapsdt`, with addresses already adjusted."""

    path: str
    provider: str
    name: str
    pc: int  # virtual address of the probe's nop (prelink-adjusted)
    offset: int  # its file offset: what the uprobe PMU takes
    semaphore: int  # virtual address of the semaphore, 0 if none
    semaphore_offset: int  # its file offset, 0 if none
    args_text: str

    @property
    def args(self) -> tuple[UsdtArg, ...]:
        return parse_args(self.args_text)

    @property
    def probe(self) -> str:
        return f"usdt:{self.path}:{self.provider}:{self.name}"


def _align4(n: int) -> int:
    return (n + 3) & ~3


def iter_notes(data: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(owner, type, desc) of each note in a note section's bytes."""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12
        owner = data[pos : pos + namesz].rstrip(b"\0")
        pos += _align4(namesz)
        desc = data[pos : pos + descsz]
        pos += _align4(descsz)
        yield owner, ntype, desc


def parse_stapsdt_desc(desc: bytes) -> tuple[int, int, int, str, str, str]:
    """(pc, base, semaphore, provider, name, args) of one 64-bit stapsdt note."""
    pc, base, sema = struct.unpack_from("<QQQ", desc, 0)
    strings = desc[24:].split(b"\0")
    provider, name = strings[0].decode(), strings[1].decode()
    args = strings[2].decode() if len(strings) > 2 else ""
    return pc, base, sema, provider, name, args


def read_probes(path: str, image: ElfImage | None = None) -> list[UsdtProbe]:
    """Every USDT probe site of a binary, in note order."""
    image = image or elf_image(path)
    base_sec = image.sections.get(".stapsdt.base")
    out = []
    for owner, ntype, desc in iter_notes(image.stapsdt_notes):
        if owner != STAPSDT_OWNER or ntype != NT_STAPSDT:
            continue
        pc, base, sema, provider, name, args = parse_stapsdt_desc(desc)
        if base_sec is not None and base:
            # The binary was prelinked or relocated after the note was written.
            pc += base_sec.addr - base
        out.append(
            UsdtProbe(
                path=path,
                provider=provider,
                name=name,
                pc=pc,
                offset=image.vaddr_to_offset(pc),
                semaphore=sema,
                semaphore_offset=image.section_offset(sema) if sema else 0,
                args_text=args,
            )
        )
    return out


def match_probes(probes: list[UsdtProbe], provider: str | None, name: str) -> list[UsdtProbe]:
    import fnmatch

    return [
        p
        for p in probes
        if fnmatch.fnmatchcase(p.name, name) and (provider is None or fnmatch.fnmatchcase(p.provider, provider))
    ]


# ---------------------------------------------------------------------------
# provider

class UsdtProvider:
    """`usdt:binary:[provider:]name`; one uprobe per probe site."""

    def __init__(self, kind: str = "usdt"):
        self.kind = kind

    def parse(self, spec: str) -> tuple[str, str | None, str]:
        parts = spec.split(":")
        if len(parts) == 3:
            return parts[0], parts[1] or None, parts[2]
        if len(parts) == 2:
            return parts[0], None, parts[1]
        raise ProbeSpecError(f"usdt probe needs usdt:binary:[provider:]name (got usdt:{spec})")

    def expand(self, spec: str, pid: int = -1) -> list[UsdtProbe]:
        binary, provider, name = self.parse(spec)
        out: list[UsdtProbe] = []
        for path in resolve_binaries(binary, pid):
            out.extend(match_probes(read_probes(path), provider, name))
        if not out and not (has_wildcard(name) or has_wildcard(provider or "")):
            what = f"{provider}:{name}" if provider else name
            raise ProbeNotFoundError(f"USDT probe not found: {what} in {binary}")
        return out

    def context(self, target: UsdtProbe) -> ProbeContext:
        return ProbeContext(ProgType.KPROBE, "usdt", usdt_args=target.args, space="user")

    def attach(self, prog: Any, target: UsdtProbe, pid: int = -1) -> Attachment:
        from .uprobe import attach_uprobe_offset

        return attach_uprobe_offset(
            prog, target.path, target.offset, probe=target.probe, pid=pid, ref_ctr_offset=target.semaphore_offset
        )

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        """`usdt:path:provider:name` lines; `pattern` is the spec after `usdt:`."""
        parts = pattern.split(":")
        binary = parts[0]
        rest = parts[1:] or ["*"]
        provider, name = (rest[0], rest[1]) if len(rest) >= 2 else ("*", rest[0])
        lines = set()
        for path in resolve_binaries(binary, pid):
            probes = match_probes(read_probes(path), provider, name)
            lines.update(f"usdt:{p.path}:{p.provider}:{p.name}" for p in probes)
        yield from sorted(lines)
