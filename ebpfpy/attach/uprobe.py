"""uprobes and uretprobes through the `uprobe` perf PMU.

`perf_event_open(type=<uprobe PMU>, config1=&path, config2=file offset)`
creates the uprobe and the perf event in one call, owned by the returned fd:
nothing is written to tracefs `uprobe_events`, so nothing outlives the
process. The retprobe flag and the USDT semaphore offset (`ref_ctr_offset`)
go in the config bits the PMU's sysfs `format/` directory names.

Without a pid the probe fires in every process that runs the code (pid=-1 on
CPU 0, as for tracepoints); with a pid the perf event is bound to that
process (pid=PID, cpu=-1) and the kernel filters by its mm.

uprobe_multi (6.6+): one BPF link holds uprobes at many offsets of one binary
(`attach_uprobe_multi`, and `UprobeProvider.attach_many` for a wildcard). The
program must be loaded for it (expected_attach_type BPF_TRACE_UPROBE_MULTI),
and such a program cannot go on a perf event: `multi_context(targets)` tells a
compiler, before the load, when one program for all the targets is the way.
Creating the link is one syscall for all the sites, and closing it waits for
the kernel's uprobe grace period once instead of once per site (a perf event
uprobe waits for one per close, one after the other: ~0.1 s each here).
"""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import AttachType, ProgType

from .binary import elf_image, has_wildcard, resolve_binaries
from .errors import ProbeNotFoundError, ProbeSpecError, ProbeUnavailableError
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


def parse_location(text: str) -> tuple[str, int, int | None]:
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
                         ref_ctr_offset: int = 0, probe: str = "", target: Any = None,
                         cookie: int = 0) -> Attachment:
    """Attach `prog` (BPF_PROG_TYPE_KPROBE) at file offset `offset` of `path`; a nonzero
    `cookie` is what bpf_get_attach_cookie() returns there (needs BPF_LINK_CREATE)."""
    ptype, config = pmu_probe(PMU, retprobe, ref_ctr_offset=ref_ctr_offset)
    probe = probe or f"{'uretprobe' if retprobe else 'uprobe'}:{path}:{offset:#x}"
    opens = [dict(ptype=ptype, config=config, probe_path=os.path.abspath(path), config2=offset, pid=pid,
                  cpu=0 if pid < 0 else -1, cookie=cookie)]
    return perf_attachment(prog, probe, opens, target=target)


class UprobeProvider:
    def __init__(self, kind: str = "uprobe", retprobe: bool = False):
        self.kind = kind
        self.retprobe = retprobe

    def expand(self, spec: str, pid: int = -1) -> list[UprobeTarget]:
        binary, location = split_spec(spec)
        return resolve_targets(binary, location, retprobe=self.retprobe, pid=pid)

    def context(self, target: UprobeTarget) -> ProbeContext:
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=self.retprobe, space="user")

    def multi_context(self, targets: list[UprobeTarget]) -> ProbeContext | None:
        """The context of one program for all of `targets` at once, attached with `attach_many`
        (a uprobe_multi link per binary): the same as `context` but loaded with expected_attach_type
        BPF_TRACE_UPROBE_MULTI. None where that is not the way: fewer than two targets, or a
        kernel without uprobe_multi links."""
        from ebpfpy import features

        if len(targets) < 2 or not features.has("uprobe_multi"):
            return None
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=self.retprobe, space="user",
                            expected_attach_type=AttachType.TRACE_UPROBE_MULTI)

    # the load-time attach type of programs `attach_many` takes
    multi_attach_type = AttachType.TRACE_UPROBE_MULTI

    def attach(self, prog: Any, target: UprobeTarget, pid: int = -1) -> Attachment:
        if is_multi_prog(prog):
            return self.attach_many(prog, [target], pid=pid)[0]
        return attach_uprobe_offset(prog, target.path, target.offset, retprobe=target.retprobe, pid=pid,
                                    probe=target.probe, target=target)

    def attach_many(self, prog: Any, targets: list[UprobeTarget], pid: int = -1) -> list[Attachment]:
        """Attach `prog` (loaded with expected_attach_type BPF_TRACE_UPROBE_MULTI) to every target
        with one uprobe_multi link per binary and probe kind; all or nothing."""
        return attach_multi_targets(prog, targets, pid=pid)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        """`uprobe:path:symbol` lines; `pattern` is `binary[:symbol-glob]`, sorted by symbol."""
        binary, _, sym = pattern.rpartition(":") if ":" in pattern else (pattern, "", "*")
        for path in resolve_binaries(binary, pid):
            names = elf_image(path).symbols
            for name in sorted(fnmatch.filter(names, sym or "*")):
                yield f"{self.kind}:{path}:{name}"


def attach_uprobe(prog: Any, binary: str, symbol_or_addr: str | int, *, offset: int = 0,
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


def is_multi_prog(prog: Any) -> bool:
    """Whether `prog` was loaded for uprobe_multi links (expected_attach_type BPF_TRACE_UPROBE_MULTI)."""
    return getattr(prog, "expected_attach_type", None) == AttachType.TRACE_UPROBE_MULTI


def _multi_name(targets: list[UprobeTarget]) -> str:
    if len(targets) == 1:
        return targets[0].probe
    kind = "uretprobe" if targets[0].retprobe else "uprobe"
    return f"{kind}:{targets[0].path}:<{len(targets)} sites>"


def attach_multi_targets(prog: Any, targets: list[UprobeTarget], *, pid: int = -1,
                         cookies: list[int] | None = None) -> list[Attachment]:
    """One uprobe_multi link per (binary, uprobe or uretprobe) of `targets`, each owned by an
    Attachment whose `target` is the tuple of its targets; `cookies`, if given, one per target."""
    from ebpfpy import features
    from ebpfpy.links import attach_uprobe_multi as link_multi

    if not targets:
        raise ProbeNotFoundError("uprobe_multi: no targets")
    if not features.has("uprobe_multi"):
        raise ProbeUnavailableError(f"uprobe_multi links are not available: {features.reason('uprobe_multi')}")
    groups: dict[tuple[str, bool], list[int]] = {}
    for i, t in enumerate(targets):
        groups.setdefault((t.path, t.retprobe), []).append(i)
    done: list[Attachment] = []
    try:
        for (path, retprobe), index in groups.items():
            members = [targets[i] for i in index]
            name = _multi_name(members)
            link = link_multi(prog, path, [t.offset for t in members], retprobe=retprobe, pid=pid,
                              cookies=[cookies[i] for i in index] if cookies else None, description=name)
            done.append(Attachment(name, [link], target=tuple(members)))
    except BaseException:
        for att in done:
            att.close()
        raise
    return done


def attach_uprobe_multi(prog: Any, binary: str, symbols_or_offsets, *, retprobe: bool = False, pid: int = -1,
                        cookies=None):
    """uprobes (``retprobe``: uretprobes) on many functions of one binary or library with one
    uprobe_multi link (6.6+), returned as an ``ebpfpy.links.Link`` (closing it detaches them all).

    ``symbols_or_offsets``: a symbol name or glob pattern (``"s*"``), or a list of names,
    patterns and file offsets (ints, as the kernel takes them). ``cookies``: one per entry of
    that list (a pattern's cookie goes to every function it matches), read in the program with
    bpf_get_attach_cookie(). ``prog`` must have been loaded as a kprobe program with
    expected_attach_type ``trace_uprobe_multi``; ``pid``: only that process.
    """
    from ebpfpy import features
    from ebpfpy.links import attach_uprobe_multi as link_multi

    if not features.has("uprobe_multi"):
        raise ProbeUnavailableError(f"uprobe_multi links are not available: {features.reason('uprobe_multi')}")
    entries = [symbols_or_offsets] if isinstance(symbols_or_offsets, (str, int)) else list(symbols_or_offsets)
    if cookies is not None and len(cookies) != len(entries):
        raise ValueError(f"cookies needs one value per entry of symbols_or_offsets ({len(cookies)} != {len(entries)})")
    paths = resolve_binaries(binary, pid)
    if len(paths) != 1:
        raise ProbeSpecError(f"attach_uprobe_multi takes one binary; {binary!r} names {len(paths)} "
                             f"(use ebpfpy.attach.attach(prog, 'uprobe:...'))")
    path = paths[0]
    image = elf_image(path)
    offsets, site_cookies = [], []
    for n, entry in enumerate(entries):
        if isinstance(entry, int):
            found = [entry]
        else:
            found = [image.vaddr_to_offset(s.vaddr) for s in image.match_symbols(entry)]
            if not found:
                raise ProbeNotFoundError(f"no function matches {entry!r} in {path}")
        offsets += found
        site_cookies += [cookies[n]] * len(found) if cookies is not None else []
    kind = "uretprobe" if retprobe else "uprobe"
    shown = symbols_or_offsets if isinstance(symbols_or_offsets, (str, int)) else ",".join(map(str, entries))
    return link_multi(prog, path, offsets, retprobe=retprobe, pid=pid, cookies=site_cookies or None,
                      description=f"{kind}.multi:{path}:{shown}")
