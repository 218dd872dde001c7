"""uprobes and uretprobes through the `uprobe` perf PMU.

`perf_event_open(type=<uprobe PMU>, config1=&path, config2=file offset)`
creates the uprobe and the perf event in one call, owned by the returned fd:
nothing is written to tracefs `uprobe_events`, so nothing outlives the
process. The retprobe flag and the USDT semaphore offset (`ref_ctr_offset`)
go in the config bits the PMU's sysfs `format/` directory names.

Without a pid the probe fires in every process that runs the code (pid=-1 on
CPU 0, as for tracepoints); with a pid the perf event is bound to that
process (pid=PID, cpu=-1) and the kernel filters by its mm.
"""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional, Union

from ebpfpy.sys.consts import ProgType

from .binary import elf_image, has_wildcard, resolve_binaries
from .errors import ProbeNotFoundError, ProbeSpecError
from .provider import Attachment, ProbeContext, perf_attachment, pmu_probe

PMU = "uprobe"


@dataclass(frozen=True)
class UprobeTarget:
    """One uprobe site. `symbol` is empty for an address given as `0x...`."""

    path: str
    symbol: str
    vaddr: int
    offset: int  # file offset: what the PMU takes
    retprobe: bool = False
    symbol_offset: int = 0

    @property
    def probe(self) -> str:
        kind = "uretprobe" if self.retprobe else "uprobe"
        if not self.symbol:
            return f"{kind}:{self.path}:{self.vaddr:#x}"
        suffix = f"+{self.symbol_offset}" if self.symbol_offset else ""
        return f"{kind}:{self.path}:{self.symbol}{suffix}"


def parse_location(text: str) -> tuple[str, int, Optional[int]]:
    """`sym` -> (sym, 0, None); `sym+16` -> (sym, 16, None); `0x4005d0` -> ("", 0, 0x4005d0)."""
    text = text.strip().strip('"')
    if not text:
        raise ProbeSpecError("uprobe needs a function name or an address")
    if text[0].isdigit():
        try:
            return "", 0, int(text, 0)
        except ValueError:
            raise ProbeSpecError(f"bad uprobe address {text!r}") from None
    sym, plus, off = text.partition("+")
    if plus:
        try:
            return sym, int(off, 0), None
        except ValueError:
            raise ProbeSpecError(f"bad offset in uprobe location {text!r}") from None
    return sym, 0, None


def split_spec(spec: str) -> tuple[str, str]:
    """`binary:location`; the binary may itself contain ':' only when quoted."""
    if spec.startswith('"'):
        end = spec.find('"', 1)
        if end > 0 and spec[end + 1 : end + 2] == ":":
            return spec[1:end], spec[end + 2 :]
    binary, sep, loc = spec.rpartition(":")
    if not sep or not binary or not loc:
        raise ProbeSpecError(f"uprobe needs binary:function, binary:function+offset or binary:0xaddr (got {spec!r})")
    return binary, loc


def resolve_targets(binary: str, location: str, *, retprobe: bool = False, pid: int = -1) -> list[UprobeTarget]:
    """Concrete uprobe sites for a binary pattern and a location (wildcards expand over symbols)."""
    sym, sym_off, addr = parse_location(location)
    out = []
    for path in resolve_binaries(binary, pid):
        image = elf_image(path)
        if addr is not None:
            out.append(UprobeTarget(path, "", addr, image.vaddr_to_offset(addr), retprobe))
            continue
        for s in image.match_symbols(sym):
            if sym_off and s.size and sym_off >= s.size:
                raise ProbeSpecError(f"offset {sym_off} is beyond the end of {s.name} ({s.size} bytes) in {path}")
            vaddr = s.vaddr + sym_off
            out.append(UprobeTarget(path, s.name, vaddr, image.vaddr_to_offset(vaddr), retprobe, sym_off))
    return out


def attach_uprobe_offset(prog: Any, path: str, offset: int, *, retprobe: bool = False, pid: int = -1,
                         ref_ctr_offset: int = 0, probe: str = "", target: Any = None) -> Attachment:
    """Attach `prog` (BPF_PROG_TYPE_KPROBE) at file offset `offset` of `path`."""
    ptype, config = pmu_probe(PMU, retprobe, ref_ctr_offset=ref_ctr_offset)
    probe = probe or f"{'uretprobe' if retprobe else 'uprobe'}:{path}:{offset:#x}"
    opens = [dict(ptype=ptype, config=config, probe_path=os.path.abspath(path), config2=offset, pid=pid,
                  cpu=0 if pid < 0 else -1)]
    return perf_attachment(prog, probe, opens, target=target)


class UprobeProvider:
    def __init__(self, kind: str = "uprobe", retprobe: bool = False):
        self.kind = kind
        self.retprobe = retprobe

    def expand(self, spec: str, pid: int = -1) -> list[UprobeTarget]:
        binary, location = split_spec(spec)
        return resolve_targets(binary, location, retprobe=self.retprobe, pid=pid)

    def context(self, target: UprobeTarget) -> ProbeContext:
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=self.retprobe)

    def attach(self, prog: Any, target: UprobeTarget, pid: int = -1) -> Attachment:
        return attach_uprobe_offset(prog, target.path, target.offset, retprobe=target.retprobe, pid=pid,
                                    probe=target.probe, target=target)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        """`uprobe:path:symbol` lines; `pattern` is `binary[:symbol-glob]`, sorted by symbol."""
        binary, _, sym = pattern.rpartition(":") if ":" in pattern else (pattern, "", "*")
        for path in resolve_binaries(binary, pid):
            names = elf_image(path).symbols
            for name in sorted(fnmatch.filter(names, sym or "*")):
                yield f"{self.kind}:{path}:{name}"


def attach_uprobe(prog: Any, binary: str, symbol_or_addr: Union[str, int], *, offset: int = 0,
                  retprobe: bool = False, pid: int = -1) -> Attachment:
    """Attach to one function (or address) of a binary or library; wildcards are refused here."""
    if isinstance(symbol_or_addr, int):
        location = hex(symbol_or_addr + offset)
    else:
        if has_wildcard(symbol_or_addr):
            raise ProbeSpecError("attach_uprobe takes one symbol; use ebpfpy.attach.attach(prog, 'uprobe:...') "
                                 "for wildcards")
        location = f"{symbol_or_addr}+{offset}" if offset else symbol_or_addr
    targets = resolve_targets(binary, location, retprobe=retprobe, pid=pid)
    if not targets:
        raise ProbeNotFoundError(f"symbol not found: {symbol_or_addr} in {binary}")
    t = targets[0]
    return attach_uprobe_offset(prog, t.path, t.offset, retprobe=retprobe, pid=pid, probe=t.probe, target=t)
