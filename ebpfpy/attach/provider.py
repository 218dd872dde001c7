"""The provider interface every probe kind implements, and the table of kinds.

Like ply's providers, one module per probe kind answers four questions about a
probe spec (the text after `kind:` in `kind:a:b`):

- `expand(spec)`: which concrete targets it names (wildcards resolved),
- `context(target)`: which program type runs there and how it reads its
  arguments (tracepoint record fields, pt_regs, USDT arg specs, ...),
- `attach(prog, target, pid=-1)`: hook a loaded program there (only in
  process `pid` when given, for uprobes and USDT), returning an
  `Attachment` that owns every fd involved (closing it detaches),
- `list(pattern)`: the `bpftrace -l` lines for a pattern.

A provider whose kernel object can hold many targets (uprobe_multi) also has
`multi_context(targets)` (the context of one program for all of them, with the
`expected_attach_type` to load it with; None when that is not possible),
`multi_attach_type` and `attach_many(prog, targets, pid)`; `attach()` below
uses `attach_many` for a program loaded with that attach type.

Adding a probe kind means one module and one row in `KINDS`.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ebpfpy.sys.consts import ProgType

from .errors import ProbeSpecError, ProbeUnavailableError


@dataclass(frozen=True)
class ProbeContext:
    """What a program attached to a target sees.

    `args` says how probe arguments are read:
      "tracepoint"  fields of the trace record (`fields`, offsets into ctx),
      "raw_tp"      ctx is an array of u64 raw arguments,
      "pt_regs"     ctx is `struct pt_regs *` (arg0.., retval via the ABI table),
      "usdt"        pt_regs plus `usdt_args` specs saying where each argN lives,
      "perf_event"  ctx is `struct bpf_perf_event_data *`,
      "btf_func"    ctx is an array of u64 (kfunc): `func_proto` (a BTF FuncProto of
                    vmlinux) names them; fexit's return value follows the arguments,
      "none"        no arguments (BEGIN/END).
    Programs chosen at load time (kfunc) also need `expected_attach_type` and
    `attach_btf_id` passed to BPF_PROG_LOAD; so does one program for many uprobes
    (a provider's `multi_context`: BPF_TRACE_UPROBE_MULTI).

    `space` is the address space the context's pointers (arguments, return
    value, record fields) point into, which picks the probe_read helper:
      "user"    uprobe, uretprobe, usdt, and syscall tracepoints (`syscalls:*`),
      "kernel"  kprobe, kretprobe, kfunc, kretfunc and the other tracepoints,
      ""        not known (BEGIN/END, perf events, raw tracepoints): bpftrace's
                plain probe_read, which reads kernel memory.
    """

    prog_type: ProgType
    args: str
    retval: bool = False
    fields: tuple = ()
    usdt_args: tuple = ()
    expected_attach_type: Any = None
    attach_btf_id: int = 0
    func_proto: Any = None
    space: str = ""


class Target(Protocol):
    """A concrete, attachable probe; `probe` is its full name (`uprobe:/bin/bash:readline`)."""

    @property
    def probe(self) -> str: ...


class Provider(Protocol):
    kind: str

    def expand(self, spec: str, pid: int = -1) -> list: ...

    def context(self, target: Any) -> ProbeContext: ...

    def attach(self, prog: Any, target: Any, pid: int = -1) -> Attachment: ...

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]: ...


class Attachment:
    """Owns the fds of one attached probe (links, perf events); closing detaches.

    Parts are closed in reverse order of acquisition, so a link goes before
    the perf event it hangs on. The kernel also drops everything when the
    process dies, because nothing is registered by name (no tracefs writes).
    """

    def __init__(self, probe: str, parts: Iterable[Any] = (), target: Any = None):
        self.probe = probe
        self.target = target
        self._parts: list[Any] = list(parts)

    def add(self, part: Any) -> Any:
        self._parts.append(part)
        return part

    def absorb(self, other: Attachment) -> None:
        """Take over every part of `other` (which ends up empty)."""
        parts, other._parts = other._parts, []
        self._parts.extend(parts)

    @property
    def parts(self) -> tuple:
        return tuple(self._parts)

    @property
    def closed(self) -> bool:
        return not self._parts

    def close(self) -> None:
        parts, self._parts = self._parts, []
        errors = []
        for part in reversed(parts):
            try:
                part.close()
            except OSError as exc:  # keep closing the rest; report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._parts)} parts"
        return f"<Attachment {self.probe} ({state})>"


def perf_attachment(prog: Any, probe: str, opens: list[dict], target: Any = None) -> Attachment:
    """Open one perf event per entry of `opens` (`ptype`, `config` and keywords of
    `ebpfpy.sys.perf.perf_event_open`, plus an optional BPF `cookie`) and attach `prog` to each.

    Each `ebpfpy.links.Link` owns its perf event fd (and the bpf link when the
    kernel has BPF_LINK_CREATE for perf events); the Attachment owns the Links.
    A failing perf_event_open names the probe in its error.
    """
    from ebpfpy.links import attach_perf_event
    from ebpfpy.sys.errors import BPFError
    from ebpfpy.sys.perf import perf_event_open

    att = Attachment(probe, target=target)
    try:
        for kwargs in opens:
            kwargs = dict(kwargs)
            cookie = kwargs.pop("cookie", 0)
            try:
                perf_fd = perf_event_open(kwargs.pop("ptype"), kwargs.pop("config"), **kwargs)
            except BPFError as exc:
                exc.detail = f"{probe}; {exc.detail}" if exc.detail else probe
                raise
            try:
                link = attach_perf_event(prog, perf_fd, cookie=cookie, description=probe)
            except BaseException:
                perf_fd.close()
                raise
            att.add(link)
    except BaseException:
        att.close()
        raise
    return att


def pmu_probe(pmu: str, retprobe: bool = False, **formats: int) -> tuple[int, int]:
    """(perf type, config) for a kprobe/uprobe PMU event: `retprobe` and any
    non-zero `formats` (e.g. ref_ctr_offset) placed in the bits sysfs names.

    Raises ProbeUnavailableError when this kernel lacks the PMU or the format entry.
    """
    from ebpfpy.sys import perf

    if retprobe:
        formats = {"retprobe": 1, **formats}
    try:
        ptype = perf.pmu_type(pmu)
    except FileNotFoundError:
        raise ProbeUnavailableError(f"the {pmu} perf PMU is not available on this kernel") from None
    config = 0
    for fmt, value in formats.items():
        if not value:
            continue
        try:
            config |= perf.pmu_config(pmu, fmt, value)
        except FileNotFoundError as exc:
            raise ProbeUnavailableError(f"the {pmu} PMU has no {fmt!r} format bit ({exc.filename} missing)") from None
    return ptype, config


# ---------------------------------------------------------------------------
# the table of probe kinds

@dataclass(frozen=True)
class Kind:
    """One probe kind: its name, the other spellings a probe string may use for it,
    and the provider that implements it (`factory` in `ebpfpy.attach.<module>`, made
    with `options`). The one table of kinds: the bpftrace front end takes names and
    aliases from here and adds only its own wording (`ebpfpy.bpftrace.probes`).
    A row without a module is a kind the bpftrace language has (watchpoint, iter)
    that no provider implements yet: it parses, and `provider()` refuses it."""

    name: str
    aliases: tuple[str, ...]
    module: str | None = None  # ebpfpy.attach.<module>; None: no provider yet
    factory: str = ""  # provider class in that module
    options: dict = field(default_factory=dict)

    @property
    def implemented(self) -> bool:
        return self.module is not None


KINDS: tuple[Kind, ...] = (
    Kind("BEGIN", (), "special", "SpecialProvider", {"which": "BEGIN"}),
    Kind("END", (), "special", "SpecialProvider", {"which": "END"}),
    # bpftrace 0.24/0.25's `test:NAME` and `bench:NAME`: run on demand as BEGIN is (--test, --bench)
    Kind("test", (), "special", "SpecialProvider", {"which": "test"}),
    Kind("bench", (), "special", "SpecialProvider", {"which": "bench"}),
    Kind("self", (), "special", "SpecialProvider", {"which": "self"}),
    Kind("tracepoint", ("t",), "tracepoint", "TracepointProvider"),
    Kind("rawtracepoint", ("rt",), "tracepoint", "RawTracepointProvider"),
    Kind("kprobe", ("k",), "kprobe", "KprobeProvider", {"retprobe": False}),
    Kind("kretprobe", ("kr",), "kprobe", "KprobeProvider", {"retprobe": True}),
    Kind("kfunc", ("f",), "fentry", "FentryProvider", {"retprobe": False}),
    Kind("kretfunc", ("fr",), "fentry", "FentryProvider", {"retprobe": True}),
    Kind("uprobe", ("u",), "uprobe", "UprobeProvider", {"retprobe": False}),
    Kind("uretprobe", ("ur",), "uprobe", "UprobeProvider", {"retprobe": True}),
    Kind("usdt", ("U",), "usdt", "UsdtProvider"),
    Kind("profile", ("p",), "perf_event", "PerfEventProvider"),
    Kind("interval", ("i",), "perf_event", "PerfEventProvider"),
    Kind("software", ("s",), "perf_event", "PerfEventProvider"),
    Kind("hardware", ("h",), "perf_event", "PerfEventProvider"),
    # bpftrace 0.17 kinds with no provider yet
    Kind("watchpoint", ("w",)),
    Kind("asyncwatchpoint", ("aw",)),
    Kind("iter", ("it",), "iter", "IterProvider"),
)

ALIASES: dict[str, Kind] = {name: k for k in KINDS for name in (k.name, *k.aliases)}

_providers: dict[str, Provider] = {}


def kind_of(name: str) -> Kind:
    try:
        return ALIASES[name]
    except KeyError:
        known = ", ".join(k.name for k in KINDS)
        raise ProbeSpecError(f"unknown probe type {name!r} (known: {known})") from None


def provider(name: str) -> Provider:
    """The provider for a kind name or alias (`"ur"` -> the uretprobe provider), cached."""
    kind = kind_of(name)
    if not kind.implemented:
        supported = ", ".join(k.name for k in KINDS if k.implemented)
        raise ProbeSpecError(f"probe type {kind.name!r} is not supported yet (supported: {supported})")
    if kind.name not in _providers:
        module = importlib.import_module(f"{__package__}.{kind.module}")
        _providers[kind.name] = getattr(module, kind.factory)(kind=kind.name, **kind.options)
    return _providers[kind.name]


def split_probe(probe: str) -> tuple[Provider, str]:
    """`"t:syscalls:sys_enter_getpid"` -> (tracepoint provider, `"syscalls:sys_enter_getpid"`)."""
    head, sep, rest = probe.partition(":")
    return provider(head.strip()), rest if sep else ""


def expand(probe: str, pid: int = -1) -> list:
    """Every concrete target a probe string names."""
    prov, spec = split_probe(probe)
    return prov.expand(spec, pid=pid)


def attach(prog: Any, probe: str, pid: int = -1, targets: Iterable[Any] | None = None) -> list[Attachment]:
    """Attach `prog` to every target of `probe` (or to `targets`, already expanded from the
    kind `probe` names); all or nothing. A program loaded with the provider's
    `multi_attach_type` goes on all of them at once (`attach_many`)."""
    prov, spec = split_probe(probe)
    targets = list(prov.expand(spec, pid=pid) if targets is None else targets)
    multi = getattr(prov, "multi_attach_type", None)
    if multi is not None and targets and getattr(prog, "expected_attach_type", None) == multi:
        return prov.attach_many(prog, targets, pid=pid)
    done: list[Attachment] = []
    try:
        for target in targets:
            done.append(prov.attach(prog, target, pid=pid))
    except BaseException:
        for att in done:
            att.close()
        raise
    return done


def require_parts(spec: str, count: int, kind: str, usage: str) -> list[str]:
    parts = spec.split(":") if spec else []
    if len(parts) != count or not all(parts):
        raise ProbeSpecError(f"{kind} probe needs {count} argument(s): {kind}:{usage} (got {kind}:{spec})")
    return parts
