"""kprobes and kretprobes through the `kprobe` perf PMU.

As for uprobes, one perf_event_open creates the probe (config1 = pointer to
the symbol name, config2 = offset into it; for a raw address config1 = 0 and
config2 = the address) and the fd owns it: nothing goes to tracefs
`kprobe_events`. `maxactive` cannot be set this way (the kernel picks its
default), which is fine for bpftrace scripts.

Kernels built without CONFIG_KPROBES (like this project's dev VM) have no
`kprobe` PMU; the error says so instead of a bare ENOENT.
"""
from __future__ import annotations

import errno
import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import ProgType
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.perf import pmu_available

from . import tracefs
from .binary import has_wildcard
from .errors import ProbeNotFoundError, ProbeSpecError, ProbeUnavailableError
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
        require_kprobes()
        return [KprobeTarget(n, 0, self.retprobe) for n in sorted(set(fnmatch.filter(traceable_functions(),
                                                                                    target.symbol)))]

    def context(self, target: KprobeTarget) -> ProbeContext:
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=target.retprobe, space="kernel")

    def attach(self, prog: Any, target: KprobeTarget, pid: int = -1) -> Attachment:
        return attach_kprobe_target(prog, target)

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
