"""kprobes and kretprobes through the `kprobe` perf PMU.

As for uprobes, one perf_event_open creates the probe (config1 = pointer to
the symbol name, config2 = offset into it; for a raw address config1 = 0 and
config2 = the address) and the fd owns it: nothing goes to tracefs
`kprobe_events`. `maxactive` cannot be set this way (the kernel picks its
default), which is fine for bpftrace scripts.

Kernels built without CONFIG_KPROBES (like this project's dev VM) have no
`kprobe` PMU; the error says so instead of a bare ENOENT.

kprobe_multi (5.18+, a kernel with fprobe): one BPF link holds kprobes on many
functions (`attach_kprobe_multi`, and `KprobeProvider.attach_many` for a
wildcard). As with uprobe_multi, the program must be loaded for it
(expected_attach_type BPF_TRACE_KPROBE_MULTI) and cannot go on a perf event:
`multi_context(targets)` tells a compiler to load one program that way.
Functions are resolved as libbpf resolves a `kprobe.multi/PATTERN` section:
the glob against available_filter_functions, or /proc/kallsyms' text symbols
where tracefs cannot be read (`kprobe_multi_symbols`).
"""
from __future__ import annotations

import errno
import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import AttachType, ProgType
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.perf import pmu_available

from . import tracefs
from .binary import has_wildcard
from .errors import AttachError, ProbeNotFoundError, ProbeSpecError, ProbeUnavailableError
from .provider import Attachment, ProbeContext, perf_attachment, pmu_probe

PMU = "kprobe"
UNAVAILABLE = "kprobes are not available on this kernel (CONFIG_KPROBES is off)"


def require_kprobes() -> None:
    if not pmu_available(PMU):
        raise ProbeUnavailableError(UNAVAILABLE)


@dataclass(frozen=True)
class KprobeTarget:
    symbol: str  # empty when probing an address
    offset: int = 0  # into symbol, or the address itself
    retprobe: bool = False

    @property
    def probe(self) -> str:
        kind = "kretprobe" if self.retprobe else "kprobe"
        if not self.symbol:
            return f"{kind}:{self.offset:#x}"
        return f"{kind}:{self.symbol}+{self.offset}" if self.offset else f"{kind}:{self.symbol}"


def parse_spec(spec: str, retprobe: bool = False) -> KprobeTarget:
    """`func`, `func+off`, `0xaddr`; `module:func` (bpftrace 0.20) keeps only func."""
    text = spec.strip()
    if ":" in text:
        text = text.rsplit(":", 1)[1]
    if not text:
        raise ProbeSpecError("kprobe needs a function name: kprobe:func or kprobe:func+offset")
    if text[0].isdigit():
        try:
            return KprobeTarget("", int(text, 0), retprobe)
        except ValueError:
            raise ProbeSpecError(f"bad kprobe address {text!r}") from None
    sym, plus, off = text.partition("+")
    try:
        offset = int(off, 0) if plus else 0
    except ValueError:
        raise ProbeSpecError(f"bad offset in kprobe {text!r}") from None
    if retprobe and offset:
        raise ProbeSpecError(f"kretprobe cannot take an offset ({text!r})")
    return KprobeTarget(sym, offset, retprobe)


def traceable_functions() -> list[str]:
    """Kernel functions kprobes may attach to (tracefs available_filter_functions)."""
    path = tracefs.tracefs_path("available_filter_functions")
    names = []
    with open(path) as f:
        for line in f:
            name = line.split()[0] if line.strip() else ""
            if name and not name.startswith("__ftrace_invalid_address"):
                names.append(name)
    return names


def kallsyms_functions(path: str = "/proc/kallsyms") -> list[str]:
    """Text symbols of /proc/kallsyms (``t``/``T``), libbpf's fallback for kprobe.multi patterns."""
    names = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("t", "T"):
                names.append(parts[2])
    return names


def kprobe_multi_symbols(pattern: str) -> list[str]:
    """The kernel functions a glob names, each once, sorted: from available_filter_functions
    (the functions ftrace, hence fprobe, can patch), else from /proc/kallsyms."""
    try:
        names = traceable_functions()
    except (OSError, AttachError):
        names = kallsyms_functions()
    # __pfx_ symbols (6.2+) are the padding in front of a function, not functions
    return sorted({n for n in fnmatch.filter(names, pattern) if not n.startswith("__pfx_")})


def require_kprobe_multi() -> None:
    from ebpfpy import features

    if not features.has("kprobe_multi"):
        raise ProbeUnavailableError(f"kprobe_multi links are not available: {features.reason('kprobe_multi')}")


def is_multi_prog(prog: Any) -> bool:
    """Whether `prog` was loaded for kprobe_multi links (expected_attach_type BPF_TRACE_KPROBE_MULTI)."""
    return getattr(prog, "expected_attach_type", None) == AttachType.TRACE_KPROBE_MULTI


def attach_multi_targets(prog: Any, targets: list[KprobeTarget], *,
                         cookies: list[int] | None = None) -> list[Attachment]:
    """One kprobe_multi link for the kprobes and one for the kretprobes of `targets` (symbols, no
    offsets), each owned by an Attachment whose `target` is the tuple of its targets."""
    from ebpfpy.links import attach_kprobe_multi as link_multi

    if not targets:
        raise ProbeNotFoundError("kprobe_multi: no targets")
    require_kprobe_multi()
    if any(not t.symbol or t.offset for t in targets):
        raise ProbeSpecError("kprobe_multi links take function names, not addresses or offsets")
    done: list[Attachment] = []
    try:
        for retprobe in (False, True):
            index = [i for i, t in enumerate(targets) if t.retprobe == retprobe]
            if not index:
                continue
            members = [targets[i] for i in index]
            kind = "kretprobe" if retprobe else "kprobe"
            name = members[0].probe if len(members) == 1 else f"{kind}:<{len(members)} functions>"
            link = link_multi(prog, [t.symbol for t in members], retprobe=retprobe, description=name,
                              cookies=[cookies[i] for i in index] if cookies else None)
            done.append(Attachment(name, [link], target=tuple(members)))
    except BPFError as exc:
        for att in done:
            att.close()
        missing = [t.symbol for t in targets if not kallsyms_has(t.symbol)] if exc.errno == errno.ENOENT else []
        if missing:
            raise ProbeNotFoundError(f"kernel function not found: {missing[0]}") from None
        raise
    except BaseException:
        for att in done:
            att.close()
        raise
    return done


def kallsyms_has(symbol: str, path: str = "/proc/kallsyms") -> bool:
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == symbol:
                return True
    return False


def attach_kprobe_target(prog: Any, target: KprobeTarget) -> Attachment:
    require_kprobes()
    ptype, config = pmu_probe(PMU, target.retprobe)
    opens = [dict(ptype=ptype, config=config, probe_path=target.symbol or None, config2=target.offset,
                  pid=-1, cpu=0)]
    try:
        return perf_attachment(prog, target.probe, opens, target=target)
    except BPFError as exc:
        if exc.errno in (errno.ENOENT, errno.EINVAL) and target.symbol and not kallsyms_has(target.symbol):
            raise ProbeNotFoundError(f"kernel function not found: {target.symbol}") from None
        raise


class KprobeProvider:
    def __init__(self, kind: str = "kprobe", retprobe: bool = False):
        self.kind = kind
        self.retprobe = retprobe

    def expand(self, spec: str, pid: int = -1) -> list[KprobeTarget]:
        target = parse_spec(spec, self.retprobe)
        if not has_wildcard(target.symbol):
            return [target]  # attaching checks for kprobes, so the error names the probe as bpftrace's does
        from ebpfpy import features

        if not features.has("kprobe_multi"):
            require_kprobes()
        return [KprobeTarget(n, 0, self.retprobe) for n in kprobe_multi_symbols(target.symbol)]

    def context(self, target: KprobeTarget) -> ProbeContext:
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=target.retprobe, space="kernel")

    def multi_context(self, targets: list[KprobeTarget]) -> ProbeContext | None:
        """The context of one program for all of `targets` at once, attached with `attach_many`
        (one kprobe_multi link): `context` loaded with expected_attach_type BPF_TRACE_KPROBE_MULTI.
        None where that is not the way: fewer than two targets, an offset or address, or a kernel
        without kprobe_multi links."""
        from ebpfpy import features

        if len(targets) < 2 or any(not t.symbol or t.offset for t in targets) or not features.has("kprobe_multi"):
            return None
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=self.retprobe, space="kernel",
                            expected_attach_type=AttachType.TRACE_KPROBE_MULTI)

    # the load-time attach type of programs `attach_many` takes
    multi_attach_type = AttachType.TRACE_KPROBE_MULTI

    def attach(self, prog: Any, target: KprobeTarget, pid: int = -1) -> Attachment:
        if is_multi_prog(prog):
            return self.attach_many(prog, [target], pid=pid)[0]
        return attach_kprobe_target(prog, target)

    def attach_many(self, prog: Any, targets: list[KprobeTarget], pid: int = -1) -> list[Attachment]:
        """Attach `prog` (loaded with expected_attach_type BPF_TRACE_KPROBE_MULTI) to every target
        with one kprobe_multi link per probe kind; all or nothing."""
        return attach_multi_targets(prog, targets)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        if not pmu_available(PMU) or not os.access(tracefs.tracefs_path("available_filter_functions"), os.R_OK):
            return
        pat = pattern or "*"
        for name in sorted(set(fnmatch.filter(traceable_functions(), pat))):
            yield f"{self.kind}:{name}"


def attach_kprobe(prog: Any, symbol: str, *, offset: int = 0, retprobe: bool = False) -> Attachment:
    """Attach a BPF_PROG_TYPE_KPROBE program to a kernel function (+offset)."""
    if has_wildcard(symbol):
        raise ProbeSpecError("attach_kprobe takes one symbol; use ebpfpy.attach.attach(prog, 'kprobe:...') "
                             "for wildcards")
    if retprobe and offset:
        raise ProbeSpecError("kretprobe cannot take an offset")
    return attach_kprobe_target(prog, KprobeTarget(symbol, offset, retprobe))
