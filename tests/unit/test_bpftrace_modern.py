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
    assert values[3] == A.Boolean(True)
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


# -- for loops, bool, and the newer functions (issue #14) ---------------------------------

def test_for_loops_parse_with_or_without_parentheses():
    body = modern("begin { for ($kv : @m) { } for $i : 0..$n + 1 { break; continue; } }").probes[0].body
    assert body[0] == A.For(A.Variable("$kv"), A.Map("@m"), ())
    assert body[1] == A.For(A.Variable("$i"), A.Range(A.Integer(0), A.Binop("+", A.Variable("$n"), A.Integer(1))),
                            (A.Jump("break"), A.Jump("continue")))
    assert "syntax error, unexpected for, expecting }" in old_error("BEGIN { for ($i : 0..2) { } }")


def _analysed(text: str, version: str = "0.26"):
    return analyse(parse(text, include_dirs=(), compat=version), Env(compat=version, resolver=None), source=text)


def test_for_loop_variable_types():
    res = _analysed('begin { @one[1] = 10; @two[1, "a"] = 5; for ($kv : @one) { @x = $kv.1; } '
                    'for ($kv : @two) { @s = $kv.0.1; } for ($i : 0..3) { @i = $i; } }')
    one, two, rng = [s for s in res.program.probes[0].body if isinstance(s, A.For)]
    assert [e.kind for e in one.var.type.elems] == ["int", "int"]  # (key, value)
    assert [e.kind for e in two.var.type.elems] == ["tuple", "int"]  # several keys: ((k1, k2), v)
    assert [e.kind for e in two.var.type.elems[0].elems] == ["int", "string"]
    assert str(rng.var.type) == "int64"


@pytest.mark.parametrize("text,message", [
    ("begin { for ($i : 0..3) { return; } }", "stdin:1:27-33: ERROR: 'return' statement is not allowed in a for-loop"),
    ("begin { for ($i : 0..3) { exit(); } }", "ERROR: 'return' statement is not allowed in a for-loop"),
    ("begin { $i = 1; for ($i : 0..3) { } }", "ERROR: Loop declaration shadows existing variable: $i"),
    ("begin { for ($kv : @nope) { } }", "stdin:1:20-25: ERROR: Undefined map: @nope"),
    ('begin { for ($i : "a"..3) { } }', "ERROR: Loop range requires an integer, got 'string[2]'"),
    ("begin { @c = count(); for ($kv : @c) { } }", "not supported yet"),
    ("begin { for ($i : 0..3) { } printf(\"%d\", $i); }", "Undefined or undeclared variable: $i"),
])
def test_for_loop_errors(text, message):
    assert message in check_error(text)


def test_while_is_deprecated_only_in_026():
    res = _analysed("begin { $x = 0; while ($x < 2) { $x++; } }")
    texts = [m.format("begin { $x = 0; while ($x < 2) { $x++; } }") for m in res.warnings]
    assert texts[0].startswith("stdin:1:17-22: WARNING: While loops are deprecated and may be removed in the future.")
    assert texts[1] == ("HINT: For loops support ranges (e.g. `for ($x : $start..$end) { ... }`), and can be used "
                        "in place of while. These are more easily proven to be bounded by the verifier.\n")
    assert not _analysed("BEGIN { $x = 0; while ($x < 2) { $x++; } }", "0.17").warnings


def test_bool_types_and_newer_functions():
    text = ('begin { @m[1] = 1; $b = true; $n = !$b; $h = has_key(@m, 1); $d = delete(@m, 1); '
            '$s = strcontains("ab", "b"); $l = len(@m); $o = offsetof(struct T, b); }')
    prog = parse(text, include_dirs=(), compat="0.26")
    from ebpfpy.bpftrace.types import Field, TableResolver, int_type
    resolver = TableResolver({"struct T": [Field("a", 0, int_type(32)), Field("b", 4, int_type(32))]})
    res = analyse(prog, Env(compat="0.26", resolver=resolver), source=text)
    body = res.program.probes[0].body
    assert [body[i].expr.type.name for i in (1, 3, 4, 5)] == ["bool"] * 4
    assert body[7].expr.size == 4  # offsetof, for codegen to load
    assert "exit() requires no arguments (1 provided)" in check_error("BEGIN { exit(1); }", "0.17")
    assert "Unknown function: len" in old_error("BEGIN { @x = len(@m); }")
    assert "delete() should not be used in an assignment" in check_error(
        "BEGIN { @m[1] = 1; $d = delete(@m[1]); }", "0.17")


def _compiled(text: str):
    from ebpfpy.bpftrace.driver import Options, compile_source
    return compile_source(Options(source=text, compat="0.26"), warn=lambda w: None)[1]


def _helpers(script) -> list[str]:
    from ebpfpy.isa.helpers import HELPERS_BY_ID
    out = []
    for plan in script.probes:
        for insn in plan.builder.build(maps={n: type("M", (), {"fd": 3})() for n in script.maps}):
            if insn.op == 0x85 and insn.src == 0 and insn.imm in HELPERS_BY_ID:
                out.append(HELPERS_BY_ID[insn.imm].name)
    return out


def test_for_loops_compile_to_callbacks():
    script = _compiled('begin { @m[1] = 2; $sum = 0; for ($kv : @m) { $sum += $kv.1; } '
                       'for ($i : 0..3) { if ($i == 1) { continue; } $sum += $i; } printf("%d\\n", $sum); }')
    helpers = _helpers(script)
    assert "for_each_map_elem" in helpers and "loop" in helpers
    assert len(script.probes[0].builder.subprograms) == 3  # the probe and one callback per loop


def test_len_and_newer_functions_compile():
    script = _compiled('begin { @m[1] = 2; @n = len(@m); @sc = strcontains("ab", "b"); @s = syscall_name(39); '
                       '@g = signal_name(9); warnf("w %d", 1); errorf("e"); exit(3); }')
    assert "for_each_map_elem" in _helpers(script)
    kinds = [a.kind for a in script.actions]
    assert "warnf" in kinds and "errorf" in kinds and "exit" in kinds
    assert script.maps["@sc"].decode_value(b"\1" + b"\0" * 7, None) is True  # a bool, printed true


def test_nested_loops_that_overflow_the_stack_say_so():
    text = ('begin { $a = "x"; $b = "y"; $c = "z"; for ($i : 0..2) { for ($j : 0..2) { for ($k : 0..2) '
            '{ printf("%s %s %s %d %d %d\\n", $a, $b, $c, $i, $j, $k); } } } }')
    with pytest.raises(Diagnostic, match="does not fit the BPF stack"):
        _compiled(text)


def test_len_of_a_stack_reads_its_frames():
    script = _compiled("begin { @k = len(kstack); @u = len(ustack(3)); }")
    assert _helpers(script).count("get_stack") == 2
    assert "$len_stack" in script.maps  # the per-CPU buffer bpf_get_stack writes into


def test_for_loops_print_back_to_source():
    from ebpfpy.bpftrace.printer import to_source
    prog = modern("begin { for ($kv : @m) { $b = true; } for $i : 0..$n + 1 { $o = offsetof(struct T, a.b); } }")
    assert parse(to_source(prog), include_dirs=(), compat="0.26") == prog


# -- elvis, tuple and string indexing (issue #14) -------------------------------------------

def test_elvis_and_one_tuples_parse_only_in_026():
    body = modern("begin { $a = $z ?: 7; $b = (7,); $c = (); }").probes[0].body
    assert body[0].expr == A.Elvis(A.Variable("$z"), A.Integer(7))
    assert body[1].expr == A.Tuple((A.Integer(7),))
    assert body[2].expr == A.Tuple(())
    assert "syntax error, unexpected :" in old_error("BEGIN { $a = $z ?: 7; }")
    assert "syntax error, unexpected )" in old_error("BEGIN { print((7,)); }")


def test_tuple_and_string_indexing_types():
    res = _analysed('begin { $t = (1, "a", true); $x = $t[1]; $s = "hello"; $c = $s[4]; $i = 2; $d = $s[$i];'
                    ' $z = 0; $e = $z ?: 7; }')
    body = res.program.probes[0].body
    assert str(body[1].expr.type) == "string[2]"
    assert str(body[3].expr.type) == "int8" and str(body[5].expr.type) == "int8"
    assert str(body[7].expr.type) == "int64"  # $z ?: 7


@pytest.mark.parametrize("text,message", [
    ("begin { print(()); }", "stdin:1:9-18: ERROR: none type passed to print() is not printable"),
    ('begin { $s = "ab"; print($s[5]); }', "ERROR: the index 5 is out of bounds for array of size 3"),
    ("begin { $t = (1, 2); print($t[2]); }", "ERROR: Invalid tuple index: 2. Found 2 elements in tuple."),
    ("begin { $t = (1, 2); $i = 0; print($t[$i]); }", "ERROR: The index of a tuple must be a constant integer"),
    ('begin { print("a" ?: 1); }', "ERROR: Elvis operator (?:) needs an integer or a pointer on its left"),
    ('begin { $x = 1; print($x ?: "a"); }', "ERROR: Ternary operator must return the same type"),
])
def test_indexing_and_elvis_errors(text, message):
    assert message in check_error(text)


def test_string_index_017_keeps_its_error():
    assert "can only be used on arrays and pointers, found string" in check_error(
        'BEGIN { $s = "ab"; print($s[0]); }', "0.17")


def test_elvis_and_indexing_compile_and_print_back():
    from ebpfpy.bpftrace.printer import to_source
    _compiled('begin { $s = "hey"; $i = 1; $t = (1, "a"); printf("%d %d %s %d\\n", $s[$i], $s[0], $t[1], '
              '$i ?: 3); print((7,)); }')
    with pytest.raises(Diagnostic, match="none type can not be used as a value"):
        _compiled("begin { $x = (); }")
    prog = modern("begin { $a = $z ?: 7; $b = (7,); $c = $t[1]; }")
    assert parse(to_source(prog), include_dirs=(), compat="0.26") == prog


# -- records (issue #14) ------------------------------------------------------------------

def test_records_parse_type_and_print_back():
    from ebpfpy.bpftrace.printer import to_source
    prog = modern('begin { $r = (name = "bob", age = 42); @a = $r.age; }')
    assert prog.probes[0].body[0].expr == A.Record(("name", "age"), (A.String("bob"), A.Integer(42)))
    assert parse(to_source(prog), include_dirs=(), compat="0.26") == prog
    res = _analysed('begin { $r = (name = "bob", age = 42); @a = $r.age; @n = $r.name; }')
    body = res.program.probes[0].body
    assert str(body[0].expr.type) == "record { string[4] name, int64 age }"
    assert str(body[1].expr.type) == "int64" and str(body[2].expr.type) == "string[4]"
    assert 'unexpected =, expecting ) or ","' in old_error('BEGIN { $r = (name = "bob"); }')


@pytest.mark.parametrize("text,message", [
    ('begin { $r = (name = "bob"); print($r.nope); }', "ERROR: Record does not contain a field named 'nope'"),
    ("begin { $r = (a = 1, a = 2); }", "stdin:1:22-23: ERROR: Duplicate field name in record: a"),
    ('begin { $r = (a = 1, b = "x"); $r = (a = 2, c = "y"); }', "ERROR: Tuple type mismatch"),
])
def test_record_errors(text, message):
    assert message in check_error(text)


def test_records_decode_and_format_as_0_26():
    from ebpfpy.bpftrace.output.jsonfmt import value_json
    from ebpfpy.bpftrace.output.text import format_value
    script = _compiled('begin { @rec[1] = (x = 1, y = "two"); $r = (n = 3); print($r.n); }')
    value = script.maps["@rec"].decode_value((1).to_bytes(8, "little") + b"two\0" + b"\0" * 60, None)
    assert format_value(value, True) == "{ .x = 1, .y = two }"
    assert value_json(value) == '{"x": 1, "y": "two"}'


# -- map declarations (issue #14) ------------------------------------------------------------

def test_map_declarations_parse_and_print_back():
    from ebpfpy.bpftrace.printer import to_source
    prog = modern("let @lru = lruhash(2); let @h = hash(10);\nbegin { @lru[1] = 1; @h[1] = 2; }")
    assert prog.map_decls == (A.MapDecl("@lru", "lruhash", 2), A.MapDecl("@h", "hash", 10))
    assert parse(to_source(prog), include_dirs=(), compat="0.26") == prog
    assert "syntax error, unexpected map, expecting {" in old_error("let @h = hash(2); BEGIN { }")


@pytest.mark.parametrize("text,message", [
    ("let @a = array(4); begin { @a[1] = 1; }",
     "stdin:1:1-19: ERROR: Invalid bpf map type: array\nlet @a = array(4); begin { @a[1] = 1; }\n"
     "~~~~~~~~~~~~~~~~~~\nHINT: Valid map types: hash, lruhash, percpuhash, percpulruhash\n"),
    ("let @a = hash();\nbegin { }", "stdin:1:10-16: ERROR: syntax: expected positive integer for map "
                                   "declaration max entries\n"),
    ("let @a = hash(0); begin { }", "ERROR: syntax: expected positive integer for map declaration max entries"),
    ("let @a = hash(2); let @a = hash(3); begin { @a = 1; }", "ERROR: Map @a is declared more than once"),
    ("let @a = percpuhash(2); begin { @a = 1; }", "percpuhash maps hold aggregations"),
])
def test_map_declaration_errors(text, message):
    assert message in check_error(text)


def test_map_declarations_set_the_bpf_map():
    from ebpfpy.sys.consts import MapType
    script = _compiled("let @l = lruhash(2); let @c = lruhash(5); let @p = percpuhash(7); let @unused = hash(3); "
                       "begin { @l[1] = 1; @c[1] = count(); @p = sum(3); @other = 1; }")
    plans = script.maps
    assert (plans["@l"].map_type, plans["@l"].max_entries) == (MapType.LRU_HASH, 2)
    assert (plans["@c"].map_type, plans["@c"].max_entries) == (MapType.LRU_PERCPU_HASH, 5)
    assert (plans["@p"].map_type, plans["@p"].max_entries) == (MapType.PERCPU_HASH, 7)
    assert plans["@other"].map_type == MapType.HASH and "@unused" not in plans


# -- &$var and block expressions (issue #14) ---------------------------------------------------

def test_address_of_and_block_expressions_parse_only_in_026():
    from ebpfpy.bpftrace.printer import to_source
    prog = modern("begin { $v = 10; $p = &$v; $b = { let $t = 4; if ($t) { $t = 5; } $t * 10 }; $d = *$p; }")
    body = prog.probes[0].body
    assert body[1].expr == A.Unop("&", A.Variable("$v"))
    assert body[2].expr == A.BlockExpr((A.Let(A.Variable("$t"), A.Integer(4)), A.If(A.Variable("$t"), (
        A.Assign(A.Variable("$t"), A.Integer(5)),))), A.Binop("*", A.Variable("$t"), A.Integer(10)))
    assert parse(to_source(prog), include_dirs=(), compat="0.26") == prog
    assert "syntax error, unexpected &" in old_error("BEGIN { $v = 1; $p = &$v; }")
    assert "syntax error, unexpected {" in old_error("BEGIN { $b = { 1 }; }")


def test_address_of_and_block_expression_types():
    res = _analysed("begin { $v = 10; $p = &$v; $d = *$p; $b = { let $t = \"s\"; $t }; }")
    body = res.program.probes[0].body
    assert str(body[1].expr.type) == "int64 *" and str(body[2].expr.type) == "int64"
    assert str(body[3].expr.type) == "string[2]"


@pytest.mark.parametrize("text,message", [
    ('begin { $s = "a"; $p = &$s; }', "ERROR: pybpftrace takes the address (&) of integer variables only"),
    ("begin { $p = &$nope; }", "stdin:1:14-20: ERROR: Undefined or undeclared variable: $nope"),
    ("begin { $v = 0; @m = &$v; }", "ERROR: the address of a variable (&$v) can not be stored in a map"),
    ("begin { $v = 0; for ($i : 0..3) { $p = &$v; } }", "ERROR: the address of a variable (&$v) can not be used"),
    ("begin { $v = 0; $p = &$v; for ($i : 0..3) { print(*$p); } }", "can not be used in a for loop's body"),
    ("begin { $b = { let $t = 1; $t }; print($t); }", "ERROR: Undefined or undeclared variable: $t"),
])
def test_address_of_and_block_expression_errors(text, message):
    assert message in check_error(text)


def test_block_expression_ending_in_exit_is_a_clear_error():
    with pytest.raises(Diagnostic, match="a block expression must end with its value"):
        _compiled("begin { $b = { exit(); 1 }; }")
    _compiled("begin { $v = 10; $p = &$v; $b = { let $t = 4; $t * 10 }; printf(\"%d %d\\n\", *$p, $b); }")


# -- macros (issue #14) ----------------------------------------------------------------------

E05 = ('macro twice(x) { x * 2 }\nmacro bump($v, @m) { $v += 1; @m += 10; }\nmacro answer() { 42 }\n'
       'begin { $a = 5; @c = (int64)1; bump($a, @c);\n'
       '  printf("%d %d %d %d %d\\n", twice(3), twice($a), $a, @c, answer); exit(); }')


def test_macros_expand_hygienically_e5():
    body = modern(E05).probes[0].body
    # bump($a, @c): spliced in as statements on the caller's variable and map
    assert body[2] == A.Assign(A.Variable("$a"), A.Integer(1), "+")
    assert body[3] == A.Assign(A.Map("@c"), A.Integer(10), "+")
    twice3, twice_a, _, _, answer = body[4].expr.args[1:]
    assert twice3 == A.BlockExpr((A.Let(A.Variable("$x__twice2"), A.Integer(3)),),  # (bump was expansion 1)
                                 A.Binop("*", A.Variable("$x__twice2"), A.Integer(2)))
    assert twice_a.stmts[0].expr == A.Variable("$a")  # evaluated once, into the expansion's own variable
    assert answer == A.Integer(42)  # a macro without parameters, called bare
    res = _analysed(E05)
    assert str(res.program.probes[0].body[4].expr.args[2].type) == "int64"
    assert "syntax error, unexpected (, expecting {" in old_error("macro twice(x) { x * 2 } BEGIN { }")


def test_macro_variables_are_the_expansions_own():
    body = modern("macro t() { let $t = 5; $t } begin { $t = 1; @x = t + $t; }").probes[0].body
    block = body[1].expr.left
    assert block.stmts[0].var.name != "$t" and block.expr.name == block.stmts[0].var.name
    _compiled("macro t() { let $t = 5; $t } begin { $t = 1; @x = t + $t; @y = t; }")


@pytest.mark.parametrize("text,message", [
    ("macro peek() { @hidden }\nbegin { @hidden = 1; print(peek()); }",
     "stdin:1:16-23: ERROR: Unhygienic access to map: @hidden. Maps must be passed into the macro as arguments.\n"
     "macro peek() { @hidden }\n               ~~~~~~~\nstdin:2:22-34: ERROR: expanded from\n"),
    ("begin { foo(1); }", "stdin:1:9-15: ERROR: Unknown function: 'foo'"),  # 0.26's words and span (E26)
    ("macro f(x) { x } begin { print(f(1, 2)); }", "ERROR: Call to macro 'f' has 2 arguments; the macro takes 1"),
    ("macro f($v) { $v } begin { print(f(1)); }", "ERROR: Macro 'f': parameter $v takes a variable"),
    ("macro f(@m) { @m } begin { $x = 1; print(f($x)); }", "ERROR: Macro 'f': parameter @m takes a map"),
    ("macro s($v) { $v = 1; } begin { $a = 0; $b = s($a); }", "ERROR: Macro 's' has no value"),
    ("macro r() { r() } begin { print(r()); }", "ERROR: Macro 'r' is expanded more than 64 levels deep"),
    ("macro f(x) { x } macro f(y) { y } begin { }", "ERROR: Macro 'f' is defined more than once"),
])
def test_macro_errors(text, message):
    assert message in check_error(text)
