"""Today's bpftrace language (0.18 to 0.26) beside 0.17's, pass by pass: the mode switch
(ebpfpy/bpftrace/compat.py), probe spellings, and the syntax the parser and semantic analysis
lower to 0.17's forms. Every case runs in both modes: 0.26 gives bpftrace 0.26's answer (from
/work/shared/bpftrace-0.26-notes.md where it has one), 0.17 keeps 0.17's. No root needed."""
from __future__ import annotations

import pytest

from ebpfpy.bpftrace import ast as A
from ebpfpy.bpftrace import compat
from ebpfpy.bpftrace.cli import parse_args
from ebpfpy.bpftrace.diagnostics import Diagnostic
from ebpfpy.bpftrace.parser import parse
from ebpfpy.bpftrace.probes import parse_spec
from ebpfpy.bpftrace.semantic import Env, analyse


def modern(text: str) -> A.Program:
    return parse(text, include_dirs=(), compat="0.26")


def old_error(text: str) -> str:
    with pytest.raises(Diagnostic) as exc:
        parse(text, include_dirs=(), compat="0.17")
    return exc.value.format(text)


def check_error(text: str, version: str = "0.26") -> str:
    with pytest.raises(Diagnostic) as exc:
        analyse(parse(text, include_dirs=(), compat=version), Env(compat=version), source=text)
    return exc.value.format(text)


# -- the switch -------------------------------------------------------------------------

def test_default_is_026_and_the_environment_or_flag_picks_017(monkeypatch):
    monkeypatch.delenv("PYBPFTRACE_COMPAT", raising=False)
    assert compat.resolve(None) == "0.26"
    monkeypatch.setenv("PYBPFTRACE_COMPAT", "0.17")
    assert compat.resolve(None) == "0.17"
    assert compat.resolve("0.26.1") == "0.26"  # the flag beats the environment
    assert parse_args(["--compat=0.17", "-e", "x"]).compat == "0.17"
    assert parse_args(["--compat", "0.26", "--dry-run", "-e", "x"]).dry_run


def test_unknown_version_is_refused():
    with pytest.raises(compat.CompatError, match=r"unknown bpftrace version '0\.9'"):
        compat.check("0.9")


# -- probes -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw,kind,parts", [
    ("begin", "BEGIN", ()), ("BeGiN", "BEGIN", ()), ("end", "END", ()),
    ("Interval:s:1", "interval", ("s", "1")), ("Tracepoint:sched:sched_switch", "tracepoint", ("sched", "sched_switch")),
    ("fentry:vfs_read", "kfunc", ("vfs_read",)), ("fexit:vfs_read", "kretfunc", ("vfs_read",)),
    ("kfunc:vfs_read", "kfunc", ("vfs_read",)), ("rawtracepoint:sched_switch", "rawtracepoint", ("sched_switch",)),
    ("rt:sched_switch", "rawtracepoint", ("sched_switch",)),
    # durations: bpftrace 0.26's `probe` says interval:us:N (E15)
    ("interval:500ms", "interval", ("us", "500000")), ("interval:1s", "interval", ("us", "1000000")),
    ("i:1000000", "interval", ("us", "1000")), ("U:/bin/sh:p:n", "usdt", ("/bin/sh", "p", "n")),
])
def test_modern_probe_spellings(raw, kind, parts):
    spec = parse_spec(raw, compat="0.26")
    assert (spec.kind, spec.parts) == (kind, parts)


@pytest.mark.parametrize("raw", ["begin", "fentry:vfs_read", "rawtracepoint:sched_switch", "Interval:s:1"])
def test_017_keeps_its_invalid_probe_type(raw):
    with pytest.raises(Diagnostic, match=f"Invalid probe type: {raw.split(':')[0]}"):
        parse_spec(raw, compat="0.17")


def test_units_stay_case_sensitive():
    with pytest.raises(Diagnostic, match="MS is not an accepted unit of time"):
        parse_spec("INTERVAL:MS:100", compat="0.26")


def test_several_begin_blocks_only_in_026():
    prog = modern("begin { } begin { } end { } end { }")
    assert [p.attach_points[0].raw for p in prog.probes] == ["BEGIN", "BEGIN", "END", "END"]
    assert "More than one BEGIN probe defined" in old_error("BEGIN, END, BEGIN { }")


# -- syntax -----------------------------------------------------------------------------

def test_config_block():
    prog = modern('config = { max_strlen = 16; missing_probes = "warn"; stack_mode = perf } begin { }')
    assert [(e.key, e.value) for e in prog.config] == [("max_strlen", 16), ("missing_probes", "warn"),
                                                       ("stack_mode", "perf")]
    with pytest.raises(Diagnostic, match="config must appear before probes and functions"):
        modern("begin { } config = { max_strlen = 16 }")
    assert "syntax error, unexpected =, expecting {" in old_error("config = { max_strlen = 16 } BEGIN { }")


def test_let_and_underscore_and_if_without_parentheses():
    body = modern("begin { let $x; let $y: uint16 = 7; _ = 1; if $y { } }").probes[0].body
    assert body[0] == A.Let(A.Variable("$x"))
    assert body[1] == A.Let(A.Variable("$y"), A.Cast("uint16", 0, A.Integer(7)), "uint16")
    assert body[2] == A.ExprStmt(A.Integer(1))
    assert body[3] == A.If(A.Variable("$y"), ())
    assert "syntax error, unexpected variable, expecting }" in old_error("BEGIN { let $x = 1; }")
    assert "syntax error, unexpected variable, expecting (" in old_error("BEGIN { if $x { } }")


def test_lowered_expressions():
    body = modern("begin { $a = 1500ms; $b = comm(); $c = ppid; $d = true; delete(@m, 1); "
                  "$e = has_key(@m, (1, 2)); }").probes[0].body
    values = [s.expr for s in body]
    assert values[0] == A.Integer(1_500_000_000)
    assert values[1] == A.Builtin("comm")
    assert values[2] == A.FieldAccess(A.FieldAccess(A.Builtin("curtask"), "real_parent", True), "tgid", True)
    assert values[3] == A.Integer(1)
    assert values[4] == A.Call("delete", (A.Map("@m", (A.Integer(1),), True),))
    assert values[5] == A.Call("has_key", (A.Map("@m", (A.Integer(1), A.Integer(2)), True),))
    assert "Unknown function: has_key" in old_error("BEGIN { @x = has_key(@m, 1); }")
    assert "Unknown function: comm" in old_error("BEGIN { @x = comm(); }")


# -- semantic analysis ----------------------------------------------------------------------

E04 = 'begin {\n  if (pid > 0) { $x = 1; } else { $x = 2; }\n  printf("x=%d\\n", $x);\n  exit();\n}\n'


def test_block_scoping_e4():
    assert check_error(E04) == ('stdin:3:20-22: ERROR: Undefined or undeclared variable: $x\n'
                                '  printf("x=%d\\n", $x);\n                   ~~\n')
    declared = E04.replace("begin {\n", "begin {\n  let $x;")
    analyse(modern(declared), Env(compat="0.26"), source=declared)
    old = E04.replace("begin", "BEGIN")
    analyse(parse(old, include_dirs=(), compat="0.17"), Env(compat="0.17"), source=old)  # 0.17: x=1


def test_shadowing_is_an_error():
    text = "begin { let $x = 1; if (1) { let $x = 2; } exit(); }"
    assert check_error(text) == (
        "stdin:1:34-36: ERROR: Variable $x was already declared. Variable shadowing is not allowed.\n"
        f"{text}\n" + " " * 33 + "~~\n"
        "stdin:1:13-15: ERROR: This is the initial declaration.\n"
        f"{text}\n" + " " * 12 + "~~\n")


def test_dot_through_a_pointer_only_in_026():
    text = "begin { $t = curtask; @p = $t.pid; }"
    env = {"resolver": None}
    res = analyse(modern(text), Env(compat="0.26", **env), source=text)
    access = res.program.probes[0].body[1].expr
    assert access.arrow  # lowered to 0.17's `->` for codegen
    with pytest.raises(Diagnostic, match="Try dereferencing it first, or using '->'"):
        analyse(parse(text.replace("begin", "BEGIN"), include_dirs=(), compat="0.17"), Env(compat="0.17"))
