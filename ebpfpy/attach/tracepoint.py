"""Tracepoints (`tracepoint:category:name`) and raw tracepoints (`rawtracepoint:name`).

A tracepoint attach is one perf event (PERF_TYPE_TRACEPOINT, config = the
event id from tracefs) opened with pid=-1 on CPU 0. That single event is
enough for every CPU: the kernel runs BPF programs from the tracepoint's own
program array (`trace_call_bpf` on the event, not on the per-CPU perf event
list), so a program hung on it fires wherever the tracepoint hits. bpftrace
does the same; `tests/kernel/test_attach_tracepoint.py` pins it by calling
getpid on the other CPU.

Raw tracepoints skip the perf layer: BPF_RAW_TRACEPOINT_OPEN returns an fd
that is the attachment, and the program sees the tracepoint's raw u64
arguments instead of the formatted record.
"""
from __future__ import annotations

import errno
import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import ProgType
from ebpfpy.sys.perf import PerfType

from . import tracefs
from .binary import has_wildcard
from .errors import ProbeNotFoundError, ProbeSpecError
from .provider import Attachment, ProbeContext, perf_attachment, require_parts


@dataclass(frozen=True)
class Tracepoint:
    category: str
    name: str

    @property
    def probe(self) -> str:
        return f"tracepoint:{self.category}:{self.name}"


@dataclass(frozen=True)
class RawTracepoint:
    name: str

    @property
    def probe(self) -> str:
        return f"rawtracepoint:{self.name}"


def _events() -> list[tuple[str, str]]:
    try:
        return tracefs.available_events()
    except FileNotFoundError:
        return list(tracefs.iter_event_dirs())


def match_tracepoints(category: str, name: str) -> list[Tracepoint]:
    """Tracepoints matching `category:name` with wildcards, sorted like `bpftrace -l`."""
    if not has_wildcard(category) and not has_wildcard(name):
        return [Tracepoint(category, name)]
    hits = {
        Tracepoint(c, n)
        for c, n in _events()
        if fnmatch.fnmatchcase(c, category) and fnmatch.fnmatchcase(n, name)
    }
    return sorted(hits, key=lambda t: (t.category, t.name))


def attach_tracepoint_id(prog: Any, tp_id: int, probe: str, target: Any = None) -> Attachment:
    return perf_attachment(
        prog, probe, [{"ptype": PerfType.TRACEPOINT, "config": tp_id, "pid": -1, "cpu": 0, "sample_period": 1,
                       "wakeup_events": 1}], target=target,
    )


class TracepointProvider:
    def __init__(self, kind: str = "tracepoint"):
        self.kind = kind

    def expand(self, spec: str, pid: int = -1) -> list[Tracepoint]:
        category, name = require_parts(spec, 2, "tracepoint", "category:name")
        found = match_tracepoints(category, name)
        if len(found) == 1 and not has_wildcard(spec):
            tracefs.tracepoint_id(category, name)  # raises a clear error if it does not exist
        return found

    def context(self, target: Tracepoint) -> ProbeContext:
        # syscall tracepoints record the syscall's arguments: their pointers are user addresses
        space = "user" if target.category == "syscalls" else "kernel"
        return ProbeContext(ProgType.TRACEPOINT, "tracepoint", fields=_FormatFields(target), space=space)

    def attach(self, prog: Any, target: Tracepoint, pid: int = -1) -> Attachment:
        tp_id = tracefs.tracepoint_id(target.category, target.name)
        return attach_tracepoint_id(prog, tp_id, target.probe, target)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        category, _, name = pattern.partition(":")
        category, name = category or "*", name or "*"
        wild = has_wildcard(category) or has_wildcard(name)
        for tp in match_tracepoints(category, name):
            if wild or _exists(tp):
                yield tp.probe


class _FormatFields(Sequence):
    """A tracepoint's record fields, read from tracefs when first asked for: the contexts
    of a 360-tracepoint wildcard are made to group its targets, which needs no fields."""

    def __init__(self, target: Tracepoint):
        self._target = target

    def _fields(self) -> tuple:
        return tracefs.tracepoint_format(self._target.category, self._target.name).fields

    def __getitem__(self, index):
        return self._fields()[index]

    def __len__(self) -> int:
        return len(self._fields())


def _exists(tp: Tracepoint) -> bool:
    try:
        tracefs.tracepoint_id(tp.category, tp.name)
        return True
    except ProbeNotFoundError:
        return False


class RawTracepointProvider:
    """`rawtracepoint:name`; bpftrace 0.18+ syntax, accepted here for the Python API too."""

    def __init__(self, kind: str = "rawtracepoint"):
        self.kind = kind

    def expand(self, spec: str, pid: int = -1) -> list[RawTracepoint]:
        if not spec or spec.count(":") > 1:
            raise ProbeSpecError(f"rawtracepoint probe needs rawtracepoint:name (got rawtracepoint:{spec})")
        name = spec.rsplit(":", 1)[-1]  # `module:name` (bpftrace 0.20) accepted, module ignored
        if not has_wildcard(name):
            return [RawTracepoint(name)]
        names = sorted({n for _c, n in _events() if fnmatch.fnmatchcase(n, name)})
        return [RawTracepoint(n) for n in names]

    def context(self, target: RawTracepoint) -> ProbeContext:
        return ProbeContext(ProgType.RAW_TRACEPOINT, "raw_tp", func_proto=raw_tracepoint_proto(target.name))

    def attach(self, prog: Any, target: RawTracepoint, pid: int = -1) -> Attachment:
        return attach_raw_tracepoint_name(prog, target.name, target)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        for t in self.expand(pattern or "*"):
            yield t.probe


@dataclass(frozen=True)
class RawTracepointProto:
    """A raw tracepoint's arguments as BTF declares them (``btf_trace_NAME``, a pointer to the
    prototype of the tracepoint's probe functions, whose first parameter, ``void *__data``,
    is not passed to BPF): ``params`` in the order of the context's u64 slots."""

    params: tuple
    type: int = 0  # no return value


def raw_tracepoint_proto(name: str) -> RawTracepointProto | None:
    """The arguments of raw tracepoint ``name`` from vmlinux BTF; None without BTF for it.

    The typedef ``btf_trace_NAME`` has the types but no parameter names; the kernel's own
    probe function for the event, ``__bpf_trace_NAME``, has both (an event defined from a
    class shares the class's function: then the typedef's types are all there is)."""
    try:
        from ebpfpy import btf as btfmod
        from ebpfpy.btf import FuncProto, Kind

        spec = btfmod.vmlinux()
        for func in spec.find_all(f"__bpf_trace_{name}", Kind.FUNC):
            proto = spec[spec[func].type]
            if isinstance(proto, FuncProto) and proto.params:
                return RawTracepointProto(tuple(proto.params[1:]))
    except Exception:  # no BTF on this system
        return None
    return None


def attach_raw_tracepoint_name(prog: Any, name: str, target: Any = None) -> Attachment:
    from ebpfpy.links import attach_raw_tracepoint
    from ebpfpy.sys.errors import BPFError

    probe = f"rawtracepoint:{name}"
    try:
        link = attach_raw_tracepoint(prog, name)
    except BPFError as exc:
        if exc.errno == errno.ENOENT:  # no such tracepoint
            raise ProbeNotFoundError(f"raw tracepoint not found: {name}") from None
        raise
    return Attachment(probe, [link], target=target)
