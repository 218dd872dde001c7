"""One table of probe kinds (``ebpfpy.attach.provider.KINDS``), and the memory each kind's context reads.

The bpftrace parser takes kind names and aliases from the attach table and adds only
bpftrace 0.17's wording (``ebpfpy.bpftrace.probes.SYNTAX``); these tests walk both so
they cannot drift. Every provider says in ``ProbeContext.space`` which address space
its context's pointers point into, and codegen reads that instead of parsing probe names.
Nothing here needs root: no probe is attached, contexts come from hand-made targets.
"""
from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest

from ebpfpy.attach.errors import ProbeSpecError
from ebpfpy.attach.fentry import FentryTarget
from ebpfpy.attach.iter import IterTarget
from ebpfpy.attach.kprobe import KprobeTarget
from ebpfpy.attach.perf_event import PerfEventTarget
from ebpfpy.attach.special import SpecialTarget
from ebpfpy.attach.tracepoint import RawTracepoint, Tracepoint
from ebpfpy.attach.uprobe import UprobeTarget
from ebpfpy.attach.usdt import UsdtProbe
from ebpfpy.bpftrace import ast as A
from ebpfpy.bpftrace import probes
from ebpfpy.bpftrace.diagnostics import Diagnostic
from ebpfpy.bpftrace.parser import parse
from ebpfpy.sys.consts import ProgType

# the module (``ebpfpy.attach.provider`` as an attribute of the package is the function)
attach = importlib.import_module("ebpfpy.attach.provider")

# bpftrace 0.17's probe kinds and their aliases: the language the parser accepts, pinned.
BPFTRACE_017 = {
    "BEGIN": (), "END": (), "kprobe": ("k",), "kretprobe": ("kr",), "uprobe": ("u",),
    "uretprobe": ("ur",), "usdt": ("U",), "tracepoint": ("t",), "profile": ("p",),
    "interval": ("i",), "software": ("s",), "hardware": ("h",), "watchpoint": ("w",),
    "asyncwatchpoint": ("aw",), "kfunc": ("f",), "kretfunc": ("fr",), "iter": ("it",),
}
# Attach kinds that are not bpftrace 0.17's (its parser aborts on them), and bpftrace kinds
# no provider implements yet.
ATTACH_ONLY = {"rawtracepoint", "test", "bench", "self"}
NOT_IMPLEMENTED = {"watchpoint", "asyncwatchpoint"}

# A valid spec (after ``kind:``) per kind, for parsing every spelling.
SAMPLES = {
    "BEGIN": "", "END": "", "kprobe": "do_nanosleep", "kretprobe": "do_nanosleep",
    "uprobe": "/bin/sh:main", "uretprobe": "/bin/sh:main", "usdt": "/bin/sh:prov:name",
    "tracepoint": "sched:sched_switch", "profile": "hz:99", "interval": "s:1",
    "software": "cpu-clock:1000", "hardware": "cycles", "watchpoint": "0x1000:8:w",
    "asyncwatchpoint": "0x1000:8:w", "kfunc": "do_nanosleep", "kretfunc": "do_nanosleep",
    "iter": "task", "rawtracepoint": "sched_switch", "test": "passes", "bench": "loop10",
    "self": "signal:SIGUSR1",
}


def spellings(kind) -> tuple[str, ...]:
    return (kind.name, *kind.aliases)


def test_every_spelling_names_one_kind_in_attach_and_parser():
    seen: dict[str, str] = {}
    for kind in attach.KINDS:
        for spelling in spellings(kind):
            assert spelling not in seen, f"{spelling!r} names both {seen[spelling]} and {kind.name}"
            seen[spelling] = kind.name
    assert seen.keys() == attach.ALIASES.keys()
    for spelling, name in seen.items():
        assert attach.kind_of(spelling).name == name
        if name in probes.SYNTAX:
            assert probes.KINDS[spelling].name == name
        else:
            assert spelling not in probes.KINDS


@pytest.mark.parametrize("spelling", sorted(attach.ALIASES))
def test_parser_resolves_every_spelling_to_the_attach_kind(spelling):
    name = attach.kind_of(spelling).name
    sample = SAMPLES[name]
    point = f"{spelling}:{sample}" if sample else spelling
    if name in ATTACH_ONLY:  # not 0.17's (which aborts on it with an assertion)
        with pytest.raises(Diagnostic, match=f"Invalid probe type: {spelling}"):
            probes.parse_spec(point)
        return
    assert probes.parse_spec(point).kind == name
    prog = parse(f"{point} {{ }}", include_dirs=())
    assert prog.probes[0].attach_points[0].kind == name


def test_parser_and_attach_tables_cannot_drift():
    rows = {k.name: k for k in attach.KINDS}
    assert len(rows) == len(attach.KINDS)
    # the parser's wording is keyed by attach kind names and covers every kind it lists
    assert probes.SYNTAX.keys() <= rows.keys()
    assert [k.name for k in probes.PROBE_KINDS] == [k.name for k in attach.KINDS if k.name in probes.SYNTAX]
    for row in probes.PROBE_KINDS:
        assert row.aliases == rows[row.name].aliases
        assert (row.nparts, row.count_msg, row.wildcard) == probes.SYNTAX[row.name]
    # every attach kind is bpftrace's or known not to be; the language itself is fixed
    assert rows.keys() - probes.SYNTAX.keys() == ATTACH_ONLY
    assert {k.name: k.aliases for k in probes.PROBE_KINDS} == BPFTRACE_017
    assert {name for name, k in rows.items() if not k.implemented} == NOT_IMPLEMENTED


def test_every_row_has_a_provider_or_a_clear_refusal():
    for kind in attach.KINDS:
        if kind.implemented:
            module = importlib.import_module(f"ebpfpy.attach.{kind.module}")
            assert callable(getattr(module, kind.factory)), kind
            assert attach.provider(kind.name).kind == kind.name
            continue
        for spelling in spellings(kind):
            with pytest.raises(ProbeSpecError, match=f"probe type '{kind.name}' is not supported yet"):
                attach.provider(spelling)
            with pytest.raises(ProbeSpecError, match="not supported yet"):
                attach.split_probe(f"{spelling}:{SAMPLES[kind.name]}")


# (kind, target, the address space its context's pointers point into)
SPACES = [
    ("uprobe", UprobeTarget("/bin/sh", "main", 0x1000, 0x1000), "user"),
    ("uretprobe", UprobeTarget("/bin/sh", "main", 0x1000, 0x1000, retprobe=True), "user"),
    ("usdt", UsdtProbe("/bin/sh", "prov", "name", 0x1000, 0x1000, 0, 0, "-4@%edi"), "user"),
    ("tracepoint", Tracepoint("syscalls", "sys_enter_openat"), "user"),
    ("tracepoint", Tracepoint("sched", "sched_switch"), "kernel"),
    ("tracepoint", Tracepoint("raw_syscalls", "sys_enter"), "kernel"),
    ("kprobe", KprobeTarget("do_nanosleep"), "kernel"),
    ("kretprobe", KprobeTarget("do_nanosleep", retprobe=True), "kernel"),
    ("kfunc", FentryTarget("do_nanosleep", False, "kfunc"), "kernel"),
    ("kretfunc", FentryTarget("do_nanosleep", True, "kretfunc"), "kernel"),
    # also the context of a syscall dispatch program (one raw_syscalls program standing for
    # many syscalls:sys_enter_* tracepoints): its reads have been kernel ones, named probe_read
    ("rawtracepoint", RawTracepoint("sys_enter"), ""),
    ("BEGIN", SpecialTarget("BEGIN"), ""),
    ("END", SpecialTarget("END"), ""),
    ("test", SpecialTarget("test:passes"), ""),
    ("bench", SpecialTarget("bench:loop10"), ""),
    ("self", SpecialTarget("self:signal:SIGUSR1"), ""),
    ("iter", IterTarget("task"), "kernel"),
    ("profile", PerfEventTarget("profile", "hz:99", 1, 0, sample_freq=99), ""),
    ("interval", PerfEventTarget("interval", "s:1", 1, 0, sample_period=10**9), ""),
    ("software", PerfEventTarget("software", "cpu-clock:1000", 1, 0, sample_period=1000), ""),
    ("hardware", PerfEventTarget("hardware", "cycles", 0, 0, sample_period=1000000), ""),
]


@pytest.fixture
def fake_btf(monkeypatch):
    """kfunc contexts look their function up in vmlinux BTF: a stand-in, so no kernel is needed."""
    from ebpfpy.attach import fentry

    spec = {7: SimpleNamespace(type=8), 8: SimpleNamespace(params=())}
    monkeypatch.setattr(fentry, "_btf", lambda: spec)
    monkeypatch.setattr(fentry, "func_btf_id", lambda name: 7)


@pytest.mark.parametrize("kind, target, space", SPACES, ids=[f"{k}-{t.probe}" for k, t, _ in SPACES])
def test_each_kind_says_which_memory_its_context_reads(fake_btf, kind, target, space):
    assert target.probe.split(":", 1)[0] == kind
    assert attach.provider(kind).context(target).space == space


def test_every_implemented_kind_has_a_stated_space():
    assert {kind for kind, _, _ in SPACES} == {k.name for k in attach.KINDS if k.implemented}


@pytest.mark.parametrize("space, user, read, read_str", [
    ("user", True, "probe_read_user", "probe_read_user_str"),
    ("kernel", False, "probe_read_kernel", "probe_read_kernel_str"),
    ("", False, "probe_read", "probe_read_str"),
])
def test_codegen_takes_the_space_from_the_context_not_the_probe_name(space, user, read, read_str):
    from ebpfpy.attach.provider import ProbeContext
    from ebpfpy.bpftrace.emit.probe import ProbeCodegen

    # the target's name says uprobe; only the context counts
    for target in (UprobeTarget("/bin/sh", "main", 0x1000, 0x1000), KprobeTarget("do_nanosleep"),
                   Tracepoint("syscalls", "sys_enter_openat")):
        gen = object.__new__(ProbeCodegen)  # the memory questions need only target and context
        gen.target = target
        gen.ctx = ProbeContext(ProgType.KPROBE, "pt_regs", space=space)
        assert gen._user_memory() is user
        assert gen.read_name(A.Builtin("arg0")) == read
        assert gen.read_name(A.Builtin("arg0"), string=True) == read_str
        assert gen.read_name(A.Builtin("curtask")) == "probe_read_kernel"  # a pointer's own space wins
