"""Attach loaded programs to probes: one provider module per probe kind.

Two ways in:

- probe strings, as bpftrace writes them: `attach(prog, "uprobe:libc:malloc")`,
  `expand("tracepoint:syscalls:sys_enter_*")`, `context(target)`,
  `list_probes("usdt:/usr/bin/python3:*")` (see `provider.KINDS` for the kinds
  and aliases);
- one function per kind, below.

Every attach returns an object with `close()` and context-manager support
that owns the fds involved; closing it detaches. Nothing is written to
tracefs, so the kernel cleans up if the process dies.

The provider modules are imported on first use: importing this package is
cheap.
"""
from __future__ import annotations

from typing import Any

from .errors import (
    AttachError,
    ProbeNotFoundError,
    ProbeSpecError,
    ProbeUnavailableError,
)
from .provider import (
    KINDS,
    Attachment,
    ProbeContext,
    expand,
    kind_of,
    provider,
    split_probe,
)

__all__ = [
    "KINDS",
    "AttachError",
    "Attachment",
    "ProbeContext",
    "ProbeNotFoundError",
    "ProbeSpecError",
    "ProbeUnavailableError",
    "attach",
    "attach_kprobe",
    "attach_perf_event",
    "attach_raw_tracepoint",
    "attach_special",
    "attach_tracepoint",
    "attach_uprobe",
    "attach_uprobe_multi",
    "attach_usdt",
    "context",
    "expand",
    "kind_of",
    "list_probes",
    "provider",
    "split_probe",
]


def attach(prog: Any, probe: str, pid: int = -1) -> list:
    """Attach `prog` to every target `probe` names (wildcards expand); all or nothing. A
    program loaded with expected_attach_type ``trace_uprobe_multi`` goes on a uprobe wildcard's
    targets with one uprobe_multi link per binary."""
    from .provider import attach as _attach

    return _attach(prog, probe, pid)


def context(probe_or_target: Any) -> ProbeContext:
    """What a program at this probe sees (program type, how arguments are read)."""
    if isinstance(probe_or_target, str):
        targets = expand(probe_or_target)
        if not targets:
            raise ProbeNotFoundError(f"no probe matches {probe_or_target}")
        target = targets[0]
        kind = probe_or_target.split(":", 1)[0]
    else:
        target = probe_or_target
        kind = target.probe.split(":", 1)[0]
    return provider(kind).context(target)


def list_probes(pattern: str | None = None, pid: int = -1, verbose: bool = False):
    """`bpftrace -l [-v] pattern` lines, lazily."""
    from .listing import list_probes as _list
    from .listing import list_probes_verbose

    return (list_probes_verbose if verbose else _list)(pattern, pid)


def attach_tracepoint(prog: Any, category: str, name: str) -> Attachment:
    from .tracepoint import Tracepoint, TracepointProvider

    return TracepointProvider().attach(prog, Tracepoint(category, name))


def attach_raw_tracepoint(prog: Any, name: str) -> Attachment:
    from .tracepoint import attach_raw_tracepoint_name

    return attach_raw_tracepoint_name(prog, name)


def attach_uprobe(prog: Any, binary: str, symbol_or_addr: str | int, *, offset: int = 0,
                  retprobe: bool = False, pid: int = -1) -> Attachment:
    from .uprobe import attach_uprobe as _attach

    return _attach(prog, binary, symbol_or_addr, offset=offset, retprobe=retprobe, pid=pid)


def attach_uprobe_multi(prog: Any, binary: str, symbols_or_offsets, *, retprobe: bool = False, pid: int = -1,
                        cookies=None):
    """One uprobe_multi link on many functions (names, glob patterns, file offsets) of one binary;
    returns an ``ebpfpy.links.Link``. See ``ebpfpy.attach.uprobe.attach_uprobe_multi``."""
    from .uprobe import attach_uprobe_multi as _attach

    return _attach(prog, binary, symbols_or_offsets, retprobe=retprobe, pid=pid, cookies=cookies)


def attach_usdt(prog: Any, binary: str, provider_name: str | None, name: str, *, pid: int = -1) -> Attachment:
    """Attach to every site of one USDT probe (a probe may have several sites)."""
    from .usdt import UsdtProvider

    prov = UsdtProvider()
    spec = f"{binary}:{provider_name}:{name}" if provider_name else f"{binary}:{name}"
    sites = prov.expand(spec, pid=pid)
    att = Attachment(sites[0].probe, target=sites[0])
    try:
        for site in sites:
            att.absorb(prov.attach(prog, site, pid=pid))
    except BaseException:
        att.close()
        raise
    return att


def attach_kprobe(prog: Any, symbol: str, *, offset: int = 0, retprobe: bool = False) -> Attachment:
    from .kprobe import attach_kprobe as _attach

    return _attach(prog, symbol, offset=offset, retprobe=retprobe)


def attach_perf_event(prog: Any, kind: str, event: str, period_or_freq: int | None = None, *,
                      cpus: list[int] | None = None, pid: int = -1) -> Attachment:
    from .perf_event import attach_perf_event as _attach

    return _attach(prog, kind, event, period_or_freq, cpus=cpus, pid=pid)


def attach_special(prog: Any, which: str):
    from .special import attach_special as _attach

    return _attach(prog, which)
