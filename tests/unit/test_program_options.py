"""Named program options (today's ``getopt``): the command line after ``--`` read and checked
against the script's getopt calls, and the value each call compiles to, without the kernel.
Texts and the E12 example from /work/shared/bpftrace-0.26-notes.md."""
from __future__ import annotations

import pytest

from ebpfpy.bpftrace.cli import parse_args
from ebpfpy.bpftrace.diagnostics import Diagnostic
from ebpfpy.bpftrace.driver import Options, compile_source
from ebpfpy.bpftrace.parser import parse
from ebpfpy.bpftrace.program_options import ProgramOptionError, declared_options, resolve, split_operands

E12 = ('begin { print((getopt("count", 5), getopt("name", "anon"), getopt("verbose"), '
       'getopt("flag", true, "a flag"))); print(($1, $#)); exit(); }')


def _program(src=E12):
    return parse(src, "stdin", compat="0.26")


def test_operands_after_the_double_dash():
    assert split_operands(["p1", "--count=9", "--verbose", "p2", "-x"]) == (
        ["p1", "p2", "-x"], {"count": "9", "verbose": "true"})
    opts = parse_args(["-e", "x", "p1", "--", "--count=9", "p2"], modern=True)
    assert opts.args == ["p1", "p2"] and opts.program_options == {"count": "9"}
    old = parse_args(["-e", "x", "--", "--count=9"], modern=False)  # 0.17: all positional
    assert old.args == ["--count=9"] and old.program_options == {}


def test_declared_in_order_with_kinds_and_defaults():
    got = [(d.name, d.kind, d.default, d.description) for d in declared_options(_program())]
    assert got == [("count", "int", 5, ""), ("name", "string", "anon", ""), ("verbose", "bool", False, ""),
                   ("flag", "bool", True, "a flag")]


@pytest.mark.parametrize("given, want", [
    ({"count": "9", "name": "zed", "verbose": "true", "flag": "false"},
     {"count": 9, "name": "zed", "verbose": True, "flag": False}),
    ({}, {"count": 5, "name": "anon", "verbose": False, "flag": True}),
    ({"count": "0x10", "verbose": "1", "flag": "0"}, {"count": 16, "name": "anon", "verbose": True, "flag": False}),
])
def test_values(given, want):
    assert resolve(_program(), given) == want


@pytest.mark.parametrize("given, text", [
    ({"count": "true"}, "ERROR: program command line option --count expects an integer (value: true)"),
    ({"bogus": "1"}, "ERROR: unexpected program command line options: --bogus\n"
                     "HINT: expected program options: --flag: --verbose: --name: --count"),
    ({"help": "true"}, "HINT: expected program options:\n--flag: a flag\n--verbose\n--name\n--count"),
    ({"verbose": "maybe"}, "ERROR: program command line option --verbose expects a boolean (value: maybe)"),
])
def test_errors_in_bpftraces_words(given, text):
    with pytest.raises(ProgramOptionError) as err:
        resolve(_program(), given)
    assert str(err.value) == text


def test_the_default_must_be_a_literal():
    src = 'begin { $d = 3; @x = getopt("n", $d); }'
    with pytest.raises(Diagnostic) as err:
        compile_source(Options(source=src, compat="0.26"))
    assert "getopt() expects a literal default value" in err.value.format(src)
    with pytest.raises(Diagnostic) as err:  # 0.17 has no getopt
        compile_source(Options(source='BEGIN { @x = getopt("n", 3); }', compat="0.17"))


def test_a_non_numeric_positional_parameter_is_a_string_today():
    compile_source(Options(source="begin { print(($1, $#)); }", params=("p1",), compat="0.26"))
    with pytest.raises(Diagnostic, match="used numerically"):
        compile_source(Options(source="BEGIN { print(($1, $#)); }", params=("p1",), compat="0.17"))
