"""What the compiler hands the runtime: maps to create, programs to load, actions to serve.

This is the one contract between ``codegen`` and ``runtime``. Programs refer
to maps by name (the builder resolves names to fds when the runtime builds
them after creating the maps), and send events through one perf buffer;
each event starts with a u64 action id indexing ``CompiledScript.actions``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ebpfpy.isa.builder import Builder
from ebpfpy.sys.consts import MapType, ProgType

# The perf event array every script's events travel through.
EVENTS_MAP = "$events"


@dataclass
class MapPlan:
    """One BPF map. User maps (``@x``) also say how to print themselves."""

    name: str
    map_type: MapType
    key_size: int
    value_size: int
    max_entries: int
    kind: str = ""  # output kind for user maps (count, sum, hist, int, ...); "" for internal maps
    keyed: bool = True
    # (key bytes, services) -> key tuple; (value bytes or per-CPU list, services) -> printable value
    decode_key: Callable[[bytes, Any], tuple] | None = None
    decode_value: Callable[[Any, Any], Any] | None = None
    # hist/lhist maps store one entry per (key, bucket); the runtime folds them back.
    bucket_key: bool = False
    lhist: tuple | None = None  # (min, max, step)
    key_shapes: tuple = ()  # the key's parts, so the runtime can decode integer keys in bulk
    unsigned_values: bool = False  # a sum() of unsigned values: totals print as u64 (bulk reads too)
    initial: dict = field(default_factory=dict)  # key bytes -> value bytes, written after creation

    @property
    def is_user_map(self) -> bool:
        return self.name.startswith("@")


@dataclass
class ProbePlan:
    """One program and the concrete probes it attaches to."""

    probe: str  # one concrete attach spec, e.g. "tracepoint:syscalls:sys_enter_openat"
    prog_type: ProgType
    builder: Builder
    expected_attach_type: int | None = None
    attach_btf_id: int = 0  # kfunc: the vmlinux BTF FUNC the program is loaded for
    label: str = ""  # the probe as the user wrote it, for messages
    source_lines: dict = field(default_factory=dict)
    # a sys_enter/sys_exit raw tracepoint program standing for many syscall tracepoints, or one
    # program on many uprobes: the probes it counts as
    covers: tuple = ()
    # one program on all these provider targets at once (uprobe_multi: one link per binary)
    targets: tuple = ()


@dataclass
class ActionPlan:
    """An asynchronous action: an event the program sends and the runtime serves."""

    kind: str  # printf, exit, print_map, print_value, clear, zero, time, system, cat, join
    decode: Callable[[bytes, Any], tuple]  # payload after the action id -> arguments
    data: Any = None  # printf format, map name, strftime format, ...


@dataclass
class CompiledScript:
    maps: dict = field(default_factory=dict)  # name -> MapPlan
    probes: list = field(default_factory=list)  # ProbePlan, BEGIN first, END last
    actions: list = field(default_factory=list)  # ActionPlan by id
    warnings: list = field(default_factory=list)

    @property
    def probe_count(self) -> int:
        """The probes as bpftrace counts them (a syscall dispatch program counts as the
        tracepoints it stands for)."""
        return sum(len(p.covers) or 1 for p in self.probes)

    def add_action(self, action: ActionPlan) -> int:
        self.actions.append(action)
        return len(self.actions) - 1
