"""Timed and counted perf events: profile, interval, software and hardware probes.

- `profile:hz:N` / `profile:s|ms|us:N`: a cpu-clock sampling event on every
  online CPU (one perf fd per CPU, pid=-1), so each CPU's samples are its own.
- `interval:s|ms|us|hz:N`: the same event on CPU 0 only, giving one timer
  for the whole machine.
- `software:<event>[:period]`, `hardware:<event>[:period]`: the named counter
  on every CPU, the program running every `period` events (bpftrace's default
  periods when none is given).

cpu-clock counts nanoseconds, so a period in s/ms/us is converted to ns and a
rate in hz is passed as `sample_freq` (perf's freq mode).
"""
from __future__ import annotations

import errno
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import ProgType
from ebpfpy.sys.errors import BPFError
from ebpfpy.sys.perf import HwEvent, PerfType, SwEvent, online_cpus

from .errors import ProbeNotFoundError, ProbeSpecError, ProbeUnavailableError
from .provider import Attachment, ProbeContext, perf_attachment


@dataclass(frozen=True)
class PerfCounter:
    name: str
    alias: str
    config: int
    default_period: int


# (name, alias, config, bpftrace's default period)
SOFTWARE_EVENTS: tuple[PerfCounter, ...] = tuple(PerfCounter(*row) for row in (
    ("alignment-faults", "", SwEvent.ALIGNMENT_FAULTS, 1),
    ("bpf-output", "", SwEvent.BPF_OUTPUT, 1),
    ("context-switches", "cs", SwEvent.CONTEXT_SWITCHES, 1000),
    ("cpu-clock", "cpu", SwEvent.CPU_CLOCK, 1000000),
    ("cpu-migrations", "", SwEvent.CPU_MIGRATIONS, 1),
    ("dummy", "", SwEvent.DUMMY, 1),
    ("emulation-faults", "", SwEvent.EMULATION_FAULTS, 1),
    ("major-faults", "", SwEvent.PAGE_FAULTS_MAJ, 1),
    ("minor-faults", "", SwEvent.PAGE_FAULTS_MIN, 100),
    ("page-faults", "faults", SwEvent.PAGE_FAULTS, 100),
    ("task-clock", "", SwEvent.TASK_CLOCK, 1000000),
))

HARDWARE_EVENTS: tuple[PerfCounter, ...] = tuple(PerfCounter(*row) for row in (
    ("backend-stalls", "", HwEvent.STALLED_CYCLES_BACKEND, 1000000),
    ("branch-instructions", "branches", HwEvent.BRANCH_INSTRUCTIONS, 100000),
    ("branch-misses", "", HwEvent.BRANCH_MISSES, 100000),
    ("bus-cycles", "", HwEvent.BUS_CYCLES, 100000),
    ("cache-misses", "", HwEvent.CACHE_MISSES, 1000000),
    ("cache-references", "", HwEvent.CACHE_REFERENCES, 1000000),
    ("cpu-cycles", "cycles", HwEvent.CPU_CYCLES, 1000000),
    ("frontend-stalls", "", HwEvent.STALLED_CYCLES_FRONTEND, 1000000),
    ("instructions", "", HwEvent.INSTRUCTIONS, 1000000),
    ("ref-cycles", "", HwEvent.REF_CPU_CYCLES, 1000000),
))

COUNTERS = {"software": (PerfType.SOFTWARE, SOFTWARE_EVENTS), "hardware": (PerfType.HARDWARE, HARDWARE_EVENTS)}

# time unit -> nanoseconds per unit; "hz" is a rate, handled apart
TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}


@dataclass(frozen=True)
class PerfEventTarget:
    """One perf event probe: type/config plus either a period or a frequency, on `cpus`."""

    kind: str
    spec: str  # as written after `kind:`
    ptype: int
    config: int
    sample_period: int = 0
    sample_freq: int = 0
    cpus: tuple[int, ...] = (0,)

    @property
    def probe(self) -> str:
        return f"{self.kind}:{self.spec}"


def find_counter(kind: str, name: str) -> PerfCounter:
    for ev in COUNTERS[kind][1]:
        if name in (ev.name, ev.alias):
            return ev
    known = ", ".join(e.name for e in COUNTERS[kind][1])
    raise ProbeNotFoundError(f"unknown {kind} event {name!r} (known: {known})")


def _positive(text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ProbeSpecError(f"{what} must be a positive integer, not {text!r}") from None
    if value <= 0:
        raise ProbeSpecError(f"{what} must be a positive integer, not {text!r}")
    return value


def timer_target(kind: str, spec: str, cpus: tuple[int, ...] | None = None) -> PerfEventTarget:
    """`profile:<unit>:N` / `interval:<unit>:N` as a cpu-clock event."""
    parts = spec.split(":")
    if len(parts) != 2:
        raise ProbeSpecError(f"{kind} probe needs {kind}:<hz|s|ms|us>:N (got {kind}:{spec})")
    unit, count = parts
    value = _positive(count, f"{kind} rate")
    if cpus is None:
        cpus = tuple(online_cpus()) if kind == "profile" else (0,)
    if unit == "hz":
        return PerfEventTarget(kind, spec, PerfType.SOFTWARE, SwEvent.CPU_CLOCK, sample_freq=value, cpus=cpus)
    if unit not in TIME_UNITS:
        raise ProbeSpecError(f"{kind} unit must be one of hz, s, ms, us (got {unit!r})")
    return PerfEventTarget(kind, spec, PerfType.SOFTWARE, SwEvent.CPU_CLOCK, sample_period=value * TIME_UNITS[unit],
                           cpus=cpus)


def counter_target(kind: str, spec: str, cpus: tuple[int, ...] | None = None) -> PerfEventTarget:
    """`software:<event>[:period]` / `hardware:<event>[:period]`."""
    parts = spec.split(":")
    if len(parts) > 2 or not parts[0]:
        raise ProbeSpecError(f"{kind} probe needs {kind}:<event>[:period] (got {kind}:{spec})")
    ev = find_counter(kind, parts[0])
    period = _positive(parts[1], f"{kind} period") if len(parts) == 2 and parts[1] else ev.default_period
    return PerfEventTarget(kind, spec, COUNTERS[kind][0], ev.config, sample_period=period,
                           cpus=cpus if cpus is not None else tuple(online_cpus()))


def attach_perf_target(prog: Any, target: PerfEventTarget, pid: int = -1) -> Attachment:
    opens = [dict(ptype=target.ptype, config=target.config, pid=pid, cpu=cpu, sample_period=target.sample_period,
                  sample_freq=target.sample_freq) for cpu in (target.cpus if pid < 0 else (-1,))]
    try:
        return perf_attachment(prog, target.probe, opens, target=target)
    except BPFError as exc:
        if target.ptype == PerfType.HARDWARE and exc.errno in (errno.ENOENT, errno.ENODEV, errno.EOPNOTSUPP):
            raise ProbeUnavailableError(
                f"{target.probe}: hardware events are not available on this machine "
                f"(no hardware PMU: perf_event_open: {exc.strerror})"
            ) from None
        raise


class PerfEventProvider:
    def __init__(self, kind: str):
        if kind not in ("profile", "interval", "software", "hardware"):
            raise ValueError(kind)
        self.kind = kind

    def expand(self, spec: str, pid: int = -1) -> list[PerfEventTarget]:
        if self.kind in ("profile", "interval"):
            return [timer_target(self.kind, spec)]
        return [counter_target(self.kind, spec)]

    def context(self, target: PerfEventTarget) -> ProbeContext:
        return ProbeContext(ProgType.PERF_EVENT, "perf_event")

    def attach(self, prog: Any, target: PerfEventTarget, pid: int = -1) -> Attachment:
        return attach_perf_target(prog, target, pid)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        """`software:cpu-clock:` style lines (bpftrace 0.17 instead echoes the pattern: see the notes)."""
        if self.kind not in COUNTERS:
            return
        name = pattern.split(":", 1)[0] or "*"
        for ev in COUNTERS[self.kind][1]:
            if fnmatch.fnmatchcase(ev.name, name) or (ev.alias and fnmatch.fnmatchcase(ev.alias, name)):
                yield f"{self.kind}:{ev.name}:"


def attach_perf_event(prog: Any, kind: str, event: str, period_or_freq: int | None = None, *,
                      cpus: list[int] | None = None, pid: int = -1) -> Attachment:
    """`attach_perf_event(prog, "profile", "hz", 99)`, `(prog, "software", "page-faults", 10)`.

    `kind` is profile, interval, software or hardware (or an alias); `cpus`
    overrides the default CPU set (every online CPU, or CPU 0 for interval).
    """
    from .provider import kind_of

    kind = kind_of(kind).name
    spec = event if period_or_freq is None else f"{event}:{period_or_freq}"
    cpu_tuple = tuple(cpus) if cpus is not None else None
    if kind in ("profile", "interval"):
        target = timer_target(kind, spec, cpu_tuple)
    elif kind in COUNTERS:
        target = counter_target(kind, spec, cpu_tuple)
    else:
        raise ProbeSpecError(f"attach_perf_event takes profile, interval, software or hardware, not {kind!r}")
    return attach_perf_target(prog, target, pid)
