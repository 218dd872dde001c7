"""The table of functions and builtins (``ebpfpy/bpftrace/functions.py``) drives every pass.

Walks the table: every row has a sample script here; analysis accepts the sample and
rejects a call with one argument too many (or too few) with bpftrace's arity message;
codegen emits the sample, and the helper calls the row implies appear in its
instructions. A row without a sample fails ``test_every_row_has_a_sample``, so a new
function cannot land without its tests.

Compiling reads the system (tracefs for tracepoints, ELF files for uprobes); the BEGIN
and uprobe samples need no root.
"""
from __future__ import annotations

import os
import re

import pytest

from ebpfpy.bpftrace import functions, lexer
from ebpfpy.bpftrace.diagnostics import Diagnostic
from ebpfpy.bpftrace.driver import Options, compile_source
from ebpfpy.bpftrace.emit.probe import ProbeCodegen
from ebpfpy.bpftrace.parser import MODERN_FUNCTIONS
from ebpfpy.bpftrace.semantic import Checker
from ebpfpy.isa.helpers import HELPERS_BY_ID

BASH = "/bin/bash"
U = f"uprobe:{BASH}:readline"
UR = f"uretprobe:{BASH}:readline"

# name -> (script, helpers its code must call; () when the row needs no helper)
FUNCTION_SAMPLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "printf": ('BEGIN { printf("%d %s\\n", 1, "a"); }', ("perf_event_output",)),
    "system": ('BEGIN { system("true %d", 1); }', ("perf_event_output",)),
    "cat": ('BEGIN { cat("/etc/hostname"); }', ("perf_event_output",)),
    "debugf": ('BEGIN { debugf("x %d", 1); }', ("trace_printk",)),
    "print": ("BEGIN { @a = 1; print(@a); }", ("perf_event_output",)),
    "time": ("BEGIN { time(); }", ("perf_event_output",)),
    "exit": ("BEGIN { exit(); }", ("perf_event_output",)),
    "join": (f"{U} {{ join(arg0); }}", ("probe_read_user_str", "perf_event_output")),
    "str": (f"{U} {{ @s = str(arg0); }}", ("probe_read_str",)),
    "buf": (f"{U} {{ @b = buf(arg0, 4); }}", ("probe_read_user",)),
    "path": ("kfunc:vfs_open { @p = path(args->path); }", ("d_path",)),
    "strncmp": ('BEGIN { @x = strncmp(comm, "ab", 2); }', ()),
    "strcontains": ('BEGIN { @x = strcontains(comm, "ab"); }', ()),
    "strftime": ('BEGIN { printf("%s\\n", strftime("%H", nsecs)); }', ("ktime_get_ns",)),
    "strerror": ('BEGIN { printf("%s\\n", strerror(2)); }', ()),
    "ntop": ("BEGIN { @x = ntop(0x0100007f); }", ()),
    "pton": ('BEGIN { @x = pton("127.0.0.1"); }', ()),
    "macaddr": (f"{U} {{ @m = macaddr((uint8 *)arg0); }}", ("probe_read_user",)),
    "ksym": ("BEGIN { @k = ksym(1); }", ()),
    "usym": (f"{U} {{ @u = usym(arg0); }}", ("get_current_pid_tgid",)),
    "kaddr": ('BEGIN { @a = kaddr("vfs_read"); }', ()),
    "uaddr": (f'{U} {{ @a = uaddr("rl_line_buffer"); }}', ()),
    "reg": (f'{U} {{ @r = reg("ip"); }}', ()),
    "kstack": ("BEGIN { @s = kstack(perf, 3); }", ("get_stackid",)),
    "ustack": ("BEGIN { @s = ustack(3); }", ("get_stackid",)),
    "kptr": ("BEGIN { @p = kptr(1); }", ()),
    "uptr": ("BEGIN { @p = uptr(1); }", ()),
    "bswap": ("BEGIN { @b = bswap((uint32)1); }", ()),
    "cgroupid": ('BEGIN { @c = cgroupid("/sys/fs/cgroup"); }', ()),
    "signal": (f'{U} {{ signal("SIGUSR1"); }}', ("send_signal",)),
    "override": ("kprobe:__x64_sys_getpid { override(0); }", ("override_return",)),
    "delete": ("BEGIN { @a[1] = 1; delete(@a[1]); }", ("map_delete_elem",)),
    "has_key": ("begin { @a[1] = 1; @b = has_key(@a, 1); }", ("map_lookup_elem",)),
    "len": ("begin { @a[1] = 1; @n = len(@a); }", ("for_each_map_elem",)),
    "errorf": ('begin { errorf("e %d", 1); }', ("perf_event_output",)),
    "warnf": ('begin { warnf("w %s", "x"); }', ("perf_event_output",)),
    "syscall_name": ("begin { @s = syscall_name(39); }", ()),
    "signal_name": ("begin { @s = signal_name(9); }", ()),
    "find": ("begin { @a[1] = 2; let $v; @f = find(@a, 1, $v); }", ("map_lookup_elem",)),
    "getopt": ('begin { @n = getopt("n", 3); @s = getopt("s", "x", "some text"); @b = getopt("b"); }', ()),
    "clear": ("BEGIN { @a[1] = 1; clear(@a); }", ("perf_event_output",)),
    "zero": ("BEGIN { @a[1] = 1; zero(@a); }", ("perf_event_output",)),
    "count": ("BEGIN { @c = count(); }", ("map_lookup_elem",)),
    "sum": ("BEGIN { @c = sum(2); }", ("map_lookup_elem",)),
    "min": ("BEGIN { @c = min(2); }", ("map_lookup_elem",)),
    "max": ("BEGIN { @c = max(2); }", ("map_lookup_elem",)),
    "avg": ("BEGIN { @c = avg(2); }", ("map_lookup_elem",)),
    "stats": ("BEGIN { @c = stats(2); }", ("map_lookup_elem",)),
    "hist": ("BEGIN { @c = hist(2); }", ("map_lookup_elem",)),
    "lhist": ("BEGIN { @c = lhist(2, 0, 10, 1); }", ("map_lookup_elem",)),
    # analysis accepts these as bpftrace does; we stop with a clear error before codegen
    "cgroup_path": ("BEGIN { printf(\"%s\\n\", cgroup_path(1)); }", ()),
    "skboutput": ('BEGIN { skboutput("f", 1, 1, 0); }', ()),
    "unwatch": ("BEGIN { unwatch(1); }", ()),
}

BUILTIN_SAMPLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pid": ("BEGIN { @x = pid; }", ("get_current_pid_tgid",)),
    "tid": ("BEGIN { @x = tid; }", ("get_current_pid_tgid",)),
    "uid": ("BEGIN { @x = uid; }", ("get_current_uid_gid",)),
    "gid": ("BEGIN { @x = gid; }", ("get_current_uid_gid",)),
    "username": ("BEGIN { @x = username; }", ("get_current_uid_gid",)),
    "nsecs": ("BEGIN { @x = nsecs; }", ("ktime_get_ns",)),
    "cpu": ("BEGIN { @x = cpu; }", ("get_smp_processor_id",)),
    "numaid": ("BEGIN { @x = numaid; }", ("get_numa_node_id",)),
    "rand": ("BEGIN { @x = rand; }", ("get_prandom_u32",)),
    "cgroup": ("BEGIN { @x = cgroup; }", ("get_current_cgroup_id",)),
    "elapsed": ("BEGIN { @x = elapsed; }", ("ktime_get_ns",)),
    "curtask": ("BEGIN { @x = curtask; }", ("get_current_task",)),
    "ctx": (f"{U} {{ @x = ctx; }}", ()),
    "cpid": ("BEGIN { @x = cpid; }", ()),
    "comm": ("BEGIN { @x = comm; }", ("get_current_comm",)),
    "probe": ("BEGIN { @x = probe; }", ()),
    "retval": (f"{UR} {{ @x = retval; }}", ()),
    "func": (f"{U} {{ @x = func; }}", ()),
    "args": ("tracepoint:syscalls:sys_enter_openat { @x = args->flags; }", ()),
    "kstack": ("BEGIN { @x = kstack; }", ("get_stackid",)),
    "ustack": ("BEGIN { @x = ustack; }", ("get_stackid",)),
    "arg": (f"{U} {{ @x = arg0; }}", ()),
    "sarg": (f"{U} {{ @x = sarg0; }}", ("probe_read_user",)),
}


def _compile(src: str, cpid: int = 0):
    # functions only today's language has are compiled in its mode (0.17's parser rejects them)
    compat = "0.26" if any(f"{name}(" in src for name in MODERN_FUNCTIONS) else "0.17"
    return compile_source(Options(source=src, unsafe=True, command="true" if cpid else None, compat=compat),
                          cpid=cpid)


def _called_helpers(script) -> set[str]:
    names = set()
    for plan in script.probes:
        for item in plan.builder._items:
            insn = item.insn
            if insn.op == 0x85 and insn.src == 0 and insn.imm in HELPERS_BY_ID:
                names.add(HELPERS_BY_ID[insn.imm].name)
    return names


def _needs(src: str) -> None:
    """Skip what this machine cannot expand: kprobes, kfuncs, tracepoints without root."""
    kind = src.split(":", 1)[0].split()[0]
    if kind == "kprobe" and not os.path.exists("/sys/bus/event_source/devices/kprobe"):
        pytest.skip("no kprobe PMU here (tested in the qemu guests)")
    if kind == "kfunc":
        from ebpfpy import features

        if not features.has("fentry"):
            pytest.skip("no fentry here (tested in the qemu guests)")
    if kind == "tracepoint" and os.geteuid() != 0:
        pytest.skip("tracepoint formats need root")


def test_every_row_has_a_sample():
    assert set(FUNCTION_SAMPLES) == set(functions.FUNCTIONS)
    assert set(BUILTIN_SAMPLES) == {b.name for b in functions.BUILTINS}


def test_every_named_method_exists():
    for row in functions.FUNCTIONS_TABLE:
        assert not row.check or callable(getattr(Checker, row.check, None)), row
        assert not row.emit or callable(getattr(ProbeCodegen, row.emit, None)), row
        assert row.emit or row.family == "aggregate" or row.unsupported, f"{row.name}: no emitter"
    for b in functions.BUILTINS:
        assert bool(b.helper) != bool(b.emit), b
        assert not b.emit or callable(getattr(ProbeCodegen, b.emit, None)), b
        assert not b.helper or any(h.name == b.helper for h in HELPERS_BY_ID.values()), b


def _token_kind(body: str) -> str:
    """The kind the lexer gives the first word of a probe body."""
    tokens, _ = lexer.tokenize(f"BEGIN {{ {body}")
    return tokens[2].kind


def test_lexer_reads_the_table():
    for name in functions.FUNCTIONS:
        kind = "CALL_BUILTIN" if name in functions.CALLABLE_BUILTINS else "CALL"
        assert _token_kind(f"{name}(") == kind, name
    for b in functions.BUILTINS:
        word = b.name + ("3" if b.pattern else "")
        expect = "CALL_BUILTIN" if b.name in functions.CALLABLE_BUILTINS else "BUILTIN"
        assert _token_kind(word) == expect, word
    assert _token_kind("cgroup_paths") == "IDENT"


@pytest.mark.parametrize("name", sorted(FUNCTION_SAMPLES))
def test_function_analysis(name):
    """The sample passes analysis (or stops at 'not supported'), and one argument too many
    (or too few) gives bpftrace's arity message, built from the row."""
    row = functions.FUNCTIONS[name]
    src, _ = FUNCTION_SAMPLES[name]
    _needs(src)
    if row.unsupported:
        with pytest.raises(Diagnostic, match=rf"{name}\(\) is not supported by pybpftrace yet"):
            _compile(src)
    bad_count = row.max_args + 1 if row.max_args is not None else row.min_args - 1
    if bad_count < 0:
        return
    args = ", ".join(["1"] * bad_count)
    with pytest.raises(Diagnostic) as err:
        _compile(f"BEGIN {{ {name}({args}); }}")
    text = err.value.format(f"BEGIN {{ {name}({args}); }}")
    assert re.search(rf"{name}\(\) (requires|takes up to) .*\({bad_count} provided\)", text), text


@pytest.mark.parametrize("name", sorted(n for n, r in functions.FUNCTIONS.items() if not r.unsupported))
def test_function_emission(name):
    src, helpers = FUNCTION_SAMPLES[name]
    _needs(src)
    if name == "path":
        pytest.importorskip("ebpfpy.attach.fentry")
    _, script = _compile(src)
    assert script.probes, name
    assert set(helpers) <= _called_helpers(script), (name, _called_helpers(script))


@pytest.mark.parametrize("name", sorted(BUILTIN_SAMPLES))
def test_builtin_emission(name):
    src, helpers = BUILTIN_SAMPLES[name]
    _needs(src)
    _, script = _compile(src, cpid=1 if name == "cpid" else 0)
    assert set(helpers) <= _called_helpers(script), (name, _called_helpers(script))


def test_simple_builtins_are_rows_not_methods():
    """A simple builtin is a helper call plus its ALU steps, from the row alone."""
    from ebpfpy.isa.helpers import HELPERS_BY_NAME

    _, script = _compile("BEGIN { @x = pid; }")
    insns = [item.insn for item in script.probes[0].builder._items]
    call = next(i for i, insn in enumerate(insns)
                if insn.op == 0x85 and insn.imm == HELPERS_BY_NAME["get_current_pid_tgid"].id)
    assert insns[call + 1].op == 0x77 and insns[call + 1].imm == 32  # rsh r0, 32 (BPF_ALU64|BPF_RSH|BPF_K)
    assert not hasattr(ProbeCodegen, "builtin_pid")


@pytest.mark.parametrize(("body", "depends"), [
    ("@[probe] = count();", False),
    ("@[comm, kstack, pid] = count();", False),
    ("@[args->x] = count();", True),
    ("@[arg0] = count();", True),
    ("@[sarg2] = count();", True),
    ("@[func] = count();", True),
    ("@[retval] = count();", True),
    ('@[uaddr("x")] = count();', True),
])
def test_program_sharing_follows_the_rows_target_flag(body, depends):
    """A wildcard shares one program across its targets unless a row marked ``target`` is used."""
    from ebpfpy.bpftrace.emit.targets import depends_on_target
    from ebpfpy.bpftrace.parser import parse

    assert depends_on_target(parse(f"uprobe:/bin/bash:r* {{ {body} }}").probes[0]) is depends
