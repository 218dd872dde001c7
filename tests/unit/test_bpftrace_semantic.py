"""Semantic analysis: types on expressions, the map table, and bpftrace's error texts."""
import pytest
from hypothesis import HealthCheck, given, settings
from test_bpftrace_parser import programs  # pytest puts this directory on sys.path

from ebpfpy.bpftrace import ast as A
from ebpfpy.bpftrace.diagnostics import Diagnostic
from ebpfpy.bpftrace.parser import parse
from ebpfpy.bpftrace.semantic import Env, analyse
from ebpfpy.bpftrace.types import (
    INT64,
    UINT64,
    Field,
    TableFormats,
    TableResolver,
    int_type,
    pointer_to,
    record,
    string_type,
    tuple_type,
)

TASK = "struct task_struct"
RESOLVER = TableResolver({
    TASK: [Field("pid", 0, int_type(32, True)), Field("comm", 8, string_type(16)),
           Field("parent", 24, pointer_to(record(TASK, 32)))],
})
FORMATS = TableFormats({
    "syscalls:sys_enter_openat": [Field("dfd", 16, int_type(32, True)),
                                  Field("filename", 24, pointer_to(int_type(8, True))),
                                  Field("flags", 32, int_type(32, True))],
})


def check(text, **env):
    prog = parse(text)
    return analyse(prog, Env(**env), source=text)


def first_stmt_expr_type(text, **env):
    res = check(text, **env)
    stmt = res.program.probes[0].body[0]
    return (stmt.expr if isinstance(stmt, (A.ExprStmt, A.Assign)) else stmt).type


def errors(text, **env):
    with pytest.raises(Diagnostic) as exc:
        check(text, **env)
    return exc.value.format(text)


def first_error(text, **env):
    with pytest.raises(Diagnostic) as exc:
        check(text, **env)
    return exc.value.message


# -- types --------------------------------------------------------------------

@pytest.mark.parametrize("expr,typ", [
    ("1", "int64"),
    ("pid", "unsigned int64"),
    ("comm", "string[16]"),
    ('"abc"', "string[4]"),
    ("(1, \"a\")", "(int64,string[2])"),
    ("(uint8)1", "unsigned int8"),
    ("(int16)1 + (int16)2", "int64"),
    ("pid + 1", "unsigned int64"),
    ("1 == 2", "int64"),
    ("kstack", "kstack"),
    ("ustack(perf, 3)", "ustack"),
    ("ksym(1)", "ksym"),
    ("username", "username"),
    ("ntop(1)", "inet"),
    ('strftime("%H", nsecs)', "timestamp"),
    ("curtask", "struct task_struct *"),
    ('pton("1.2.3.4")', "unsigned int8[4]"),
    ("str(1)", "string[64]"),
    ("str(1, 5)", "string[6]"),
    ("-1", "int64"),
    ("!pid", "unsigned int64"),
    ("$1 + $#", "int64"),
    ("1 ? 2 : 3", "int64"),
    ("(1, (2, 3)).1.0", "int64"),
    ("sizeof(uint32)", "unsigned int64"),
])
def test_expression_types(expr, typ):
    assert str(first_stmt_expr_type(f"BEGIN {{ @r = {expr}; }}")) == typ


def test_struct_fields_via_resolver():
    t = first_stmt_expr_type("BEGIN { @r = curtask->parent->comm; }", resolver=RESOLVER)
    assert t == string_type(16)
    assert str(first_stmt_expr_type("BEGIN { @r = ((struct task_struct *)0)->pid; }",
                                    resolver=RESOLVER)) == "int32"


def test_unknown_field():
    assert first_error("BEGIN { @r = curtask->nope; }", resolver=RESOLVER) == \
        "Struct/union of type 'struct task_struct' does not contain a field named 'nope'"


def test_tracepoint_args_via_formats():
    res = check("tracepoint:syscalls:sys_enter_openat { @f[args->flags] = count(); "
                "@s = str(args->filename); }", tracepoints=FORMATS)
    assert res.maps["@f"].keys == (UINT64,)
    assert res.maps["@f"].kind == "count"
    assert str(res.maps["@s"].value) == "string[64]"


def test_sizeof_values():
    res = check("BEGIN { @a = sizeof(uint16); @b = sizeof(struct task_struct); @c = sizeof(comm); }",
                resolver=RESOLVER)
    a, b, c = (s.expr for s in res.program.probes[0].body)
    assert [x.size for x in (a, b, c)] == [2, 32, 16]


# -- the map table ---------------------------------------------------------------

def test_map_table():
    res = check('BEGIN { @c[pid, "x"] = count(); @h = hist(5); @l = lhist(1, 0, 10, 1); '
                '@s = "str"; @t = (1, "a"); @i++; @v[1] = 5; @sum[comm] = sum(3); }')
    m = res.maps
    assert m["@c"].keys == (UINT64, string_type(2)) and m["@c"].kind == "count"
    assert m["@h"].kind == "hist" and m["@l"].kind == "lhist"
    assert m["@s"].value == string_type(4) and m["@s"].kind == "value"
    assert m["@t"].value == tuple_type([INT64, string_type(2)])
    assert m["@i"].value == INT64
    assert m["@v"].keys == (UINT64,)
    assert m["@sum"].keys == (string_type(16),) and m["@sum"].kind == "sum"


def test_map_read_before_assignment_in_later_probe():
    res = check("interval:s:1 { print(@x); } BEGIN { @x = 1; }")
    assert res.maps["@x"].value == INT64


def test_variables_are_per_probe():
    assert first_error("BEGIN { $x = 1; } END { print($x); }") == \
        "Undefined or undeclared variable: $x"


def test_string_map_grows_to_longest():
    res = check('BEGIN { @s = "a"; @s = "abcdef"; }')
    assert res.maps["@s"].value == string_type(7)


@pytest.mark.parametrize("call,text", [
    # bpftrace 0.17 counts only its own specifiers: flags such as "+", "#", " "
    # and conversions such as %f, %i are plain text, so they take no argument.
    ('printf("%+d %f %i\\n", 1)', "printf: Too many arguments for format string (1 supplied, 0 expected)"),
    ('printf("%%d %-08lx %llu %c %p\\n", 1, 2, 3, 4)',
     "printf: Not enough arguments for format string (4 supplied, 5 expected)"),
    ('printf("%s\\n", buf("a", 1))', "printf: %s specifier expects a value of type string (buffer supplied)"),
    ('printf("%s\\n", @c)', "printf: %s specifier expects a value of type string (count supplied)"),
    ('printf("%d\\n", (1, 2))', "printf: %d specifier expects a value of type integer (tuple supplied)"),
    ('cat("%d", "a")', "cat: %d specifier expects a value of type integer (string supplied)"),
])
def test_printf_format_errors(call, text):
    assert first_error(f"BEGIN {{ @c = count(); {call}; }}") == text


def test_printf_format_accepts_matching_kinds():
    check('BEGIN { printf("%-5s|%5.2s|%rx|%hhd|%p|%c\\n", comm, kstack, buf("a", 1), 1, curtask, 65); }')


def test_printf_bad_argument_reported_once():
    # The undefined variable is the error; the format check does not add a second one.
    text = errors('BEGIN { printf("%d\\n", $nope); }')
    assert "Undefined or undeclared variable: $nope" in text
    assert "specifier" not in text


def test_signed_division_warns():
    res = check("BEGIN { @x = 5 / -2; }")
    assert [w.text for w in res.warnings] == [
        "signed operands for '/' can lead to undefined behavior (cast to unsigned to silence warning)"]


def test_unsafe_allowed_with_flag():
    check('BEGIN { system("ls"); }', unsafe=True)


def test_cpid_with_child():
    check("BEGIN { @c = cpid; }", has_child=True)


def test_unroll_with_params():
    assert first_error("BEGIN { unroll($1) { } }", params=("200",)) == "unroll maximum value is 100"
    check("BEGIN { unroll($#) { } }", params=("a", "b"))


def test_loop_jumps():
    check("BEGIN { $i = 0; while ($i < 3) { $i++; if ($i == 2) { continue } break; } return; }")


def test_probe_kind_builtins_allowed():
    check("kretprobe:f { @r = retval; } kprobe:f { @a = arg0 + sarg1; @f[func] = count(); } "
          "uprobe:/bin/sh:main { @u[func] = count(); }")


# -- error texts (observed from bpftrace 0.17) -------------------------------------

ERRORS = [
    ('BEGIN { @x = 1; @x = "a"; }',
     ("stdin:1:17-19: ERROR: Type mismatch for @x: trying to assign value of type 'string[2]' when map already contains a value of type 'int64\n"
     'BEGIN { @x = 1; @x = "a"; }\n                ~~\n')),
    ('BEGIN { printf("%d\\n", "a"); }',
     ('stdin:1:9-28: ERROR: printf: %d specifier expects a value of type integer (string supplied)\n'
     'BEGIN { printf("%d\\n", "a"); }\n        ~~~~~~~~~~~~~~~~~~~\n')),
    ('BEGIN { $x=1;$x="a"; }',
     ("stdin:1:9-17: ERROR: Type mismatch for $x: trying to assign value of type 'string[2]' when variable already contains a value of type 'int64'\n"
     'BEGIN { $x=1;$x="a"; }\n        ~~~~~~~~\n')),
    ("BEGIN { print(retval); }",
     ("stdin:1:9-21: ERROR: The retval builtin can only be used with 'kretprobe' and 'uretprobe' and 'kfunc' probes\n"
     "BEGIN { print(retval); }\n        ~~~~~~~~~~~~\n")),
    ("BEGIN { @x[1,2] = 1; @x[1] = 2; }",
     ("stdin:1:22-27: ERROR: Argument mismatch for @x: trying to access with arguments: [unsigned int64] when map expects arguments: [unsigned int64, unsigned int64]\n"
     "BEGIN { @x[1,2] = 1; @x[1] = 2; }\n                     ~~~~~\n")),
    ("BEGIN { @x = lhist(1, 10, 0, 1); }",
     ("stdin:1:14-32: ERROR: lhist() min must be less than max (provided min 10 and max 0)\n"
     "BEGIN { @x = lhist(1, 10, 0, 1); }\n             ~~~~~~~~~~~~~~~~~~\n"
     "stdin:1:14-32: ERROR: lhist() step is too large for the given range (provided step 1 for range -10)\n"
     "BEGIN { @x = lhist(1, 10, 0, 1); }\n             ~~~~~~~~~~~~~~~~~~\n")),
    ('BEGIN { signal("SIGTERM"); }',
     ('stdin:1:9-26: ERROR: signal() is an unsafe function being used in safe mode\n'
     'BEGIN { signal("SIGTERM"); }\n        ~~~~~~~~~~~~~~~~~\n'
     'stdin:1:9-26: ERROR: signal can not be used with "BEGIN" probes\n'
     'BEGIN { signal("SIGTERM"); }\n        ~~~~~~~~~~~~~~~~~\n')),
    ("BEGIN { @x = (1,2).5; }",
     ("stdin:1:14-21: ERROR: Invalid tuple index: 5. Found 2 elements in tuple.\n"
     "BEGIN { @x = (1,2).5; }\n             ~~~~~~~\n"
     "stdin:1:9-11: ERROR: Undefined map: @x\nBEGIN { @x = (1,2).5; }\n        ~~\n"
     "stdin:1:14-21: ERROR: Invalid expression for assignment: none\n"
     "BEGIN { @x = (1,2).5; }\n             ~~~~~~~\n")),
    ('BEGIN { if ("a") {} }',
     'stdin:1:1-1: ERROR: Invalid condition in if(): string\nBEGIN { if ("a") {} }\n\n'),
]


@pytest.mark.parametrize("text,expected", ERRORS)
def test_error_texts(text, expected):
    assert errors(text) == expected


@pytest.mark.parametrize("text,message", [
    ("BEGIN { @x = count(1); }", "count() requires no arguments (1 provided)"),
    ("BEGIN { @x = hist(); }", "hist() requires one argument (0 provided)"),
    ("BEGIN { strncmp(\"a\", \"b\"); }", "strncmp() requires 3 arguments (2 provided)"),
    ("BEGIN { printf(); }", "printf() requires at least one argument (0 provided)"),
    ("BEGIN { str(1,2,3); }", "str() takes up to 2 arguments (3 provided)"),
    ("BEGIN { printf(1); }", "printf() expects a string literal (integer provided)"),
    ('BEGIN { printf("%d %d\\n", 1); }', "printf: Not enough arguments for format string (1 supplied, 2 expected)"),
    ('BEGIN { printf("%d\\n", 1, 2); }', "printf: Too many arguments for format string (2 supplied, 1 expected)"),
    ('BEGIN { printf("%s\\n", 1); }', "printf: %s specifier expects a value of type string (integer supplied)"),
    ("BEGIN { system(\"ls\"); }", "system() is an unsafe function being used in safe mode"),
    ("BEGIN { print(cpid); }", "cpid cannot be used without child command"),
    ("BEGIN { print($y); }", "Undefined or undeclared variable: $y"),
    ("BEGIN { print(foo); }", "Unknown identifier: 'foo'"),
    ("tracepoint:a:b { print(arg0); }", "The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes"),
    ("BEGIN { print(sarg0); }", "The sarg0 builtin can only be used with 'kprobes' and 'uprobes' probes"),
    ("BEGIN { print(args); }", "The args builtin can only be used with tracepoint/kfunc/uprobeprobes (special used here)"),
    ("BEGIN { @x = func; }", "The func builtin can not be used with 'BEGIN' probes"),
    ("BEGIN { print(1, 2); }", "Non-map print() only takes 1 argument, 2 found"),
    ("BEGIN { clear(1); }", "clear() expects a map to be provided"),
    ("BEGIN { delete(@y); }", "Undefined map: @y"),
    ('BEGIN { @x = sum("a"); }', "sum() only supports integer arguments (string provided)"),
    ('BEGIN { @x = lhist(1, "a", 10, 1); }', "lhist() expects a integer literal (string provided)"),
    ("BEGIN { @x = lhist(1, 0, 10, 0); }", "lhist() step must be >= 1 (0 provided)"),
    ("BEGIN { @x = lhist(1, 0, 10, 20); }", "lhist() step is too large for the given range (provided step 20 for range 10)"),
    ("BEGIN { count(); }", "count() should be directly assigned to a map"),
    ("BEGIN { $x = hist(1); }", "hist() should be directly assigned to a map"),
    ('BEGIN { @x = 1 + "a"; }', "Type mismatch for '+': comparing 'int64' with 'string[2]'"),
    ('BEGIN { @x = !"a"; }', "The ! operator can not be used on expressions of type 'string[2]'"),
    ("BEGIN { @x = 1; @x.a }", "Can not access field 'a' on expression of type 'int64'"),
    ("BEGIN { @x = 1.5; }", "Can not access index 5 on expression of type 'int64'"),
    ("BEGIN { @x = (int9)1; }", "Unknown struct/union: 'int9'"),
    ("BEGIN { @x = (struct nope *)1; }", "Unknown struct/union: 'struct nope'"),
    ("BEGIN { @x = 1; @y = @x[1]; }", "Argument mismatch for @x: trying to access with arguments: [unsigned int64] when map expects arguments: []"),
    ("BEGIN { @y = @z; }", "Undefined map: @z"),
    ("BEGIN { unroll(101) {} }", "unroll maximum value is 100"),
    ("BEGIN { unroll(0) {} }", "unroll minimum value is 1"),
    ("BEGIN { break; }", "break used outside of a loop"),
    ("BEGIN { time(1); }", "time() expects a string literal (integer provided)"),
    ('BEGIN { strncmp(1, "b", 1); }', "strncmp() only supports string arguments (integer provided)"),
    ('BEGIN { strncmp("a", "b", -1); }', "Builtin strncmp requires a non-negative size"),
    ("BEGIN { @x = count(); @x = 1; }", "Type mismatch for @x: trying to assign value of type 'int64' when map already contains a value of type 'count"),
])
def test_error_messages(text, message):
    kw = {"resolver": RESOLVER} if "struct" in text else {}
    assert first_error(text, **kw) == message


# -- property ------------------------------------------------------------------------

def _fake_binaries(target):
    """/bin/bash resolves (to itself, an ELF on any Linux), anything else does not."""
    if target != "/bin/bash":
        raise LookupError(target)
    return ["/bin/bash"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_analyse_only_raises_diagnostic(prog):
    from ebpfpy.bpftrace.printer import to_source
    text = to_source(prog)
    parsed = parse(text)
    try:
        res = analyse(parsed, Env(resolver=RESOLVER, tracepoints=FORMATS, binaries=_fake_binaries,
                                  traceable=lambda: {"vfs_read"}), source=text)
    except Diagnostic as d:
        assert d.format(text)
        return
    for probe in res.program.probes:
        for node in probe.body:
            for sub in A.walk(node):
                if isinstance(sub, A.Expr) and not isinstance(sub, (A.Variable, A.Map)):
                    assert sub.type is not None, sub


@pytest.mark.btf
def test_btf_resolver_on_vmlinux():
    from ebpfpy.bpftrace.types import BTFResolver
    r = BTFResolver()
    fields = {f.name: f for f in r.struct_fields("struct task_struct")}
    assert fields["comm"].type == string_type(16)
    assert fields["pid"].type == int_type(32, True)
    assert str(fields["parent"].type) == "struct task_struct *"
    assert r.struct_fields("struct no_such_struct_here") is None
    assert r.type_size("struct task_struct") > 1000
    res = check("BEGIN { @c = curtask->parent->comm; @p = curtask->pid; }", resolver=r)
    assert res.maps["@c"].value == string_type(16)
    assert res.maps["@p"].value == INT64


def test_enum_values_from_resolver():
    r = TableResolver({}, enums={"TCP_SYN_SENT": 2})
    res = check("BEGIN { @s = pid == TCP_SYN_SENT; }", resolver=r)
    assert res.warnings == []  # an enumerator is a literal for the sign checks
    from ebpfpy.bpftrace.semantic import enum_value
    ident = res.program.probes[0].body[0].expr.right
    assert enum_value(ident, Env(resolver=r)) == 2


def test_positional_params():
    assert first_error("BEGIN { @x = $1; }", params=("abc",)) == \
        '$1 used numerically but given "abc". Try using str($1).'
    res = check("BEGIN { @s = str($1); @n = $2 + 1; @z = $3; }", params=("abc", "0x10"))
    assert res.maps["@s"].value == string_type(64)
    assert res.maps["@n"].value == INT64


def test_script_defined_failure_keeps_variable_declared():
    # one error, not a second "Undefined or undeclared variable" for $v
    text = "BEGIN { $v = nosuch; $w = $v + 1; }"
    with pytest.raises(Diagnostic) as exc:
        check(text)
    assert [m.text for m in exc.value.messages] == ["Unknown identifier: 'nosuch'"]


def test_script_defined_structs():
    text = ("struct pair { int a; char tag; u64 b; char name[8]; struct task_struct *t; };\n"
            "BEGIN { $p = (struct pair *)0; @a = $p->b; @n = $p->name; @s = sizeof(struct pair);"
            " @c = $p->t->comm; }")
    res = check(text, resolver=RESOLVER)
    fields = {f.name: f for f in res.env.resolver.struct_fields("struct pair")}
    assert [(n, f.offset) for n, f in fields.items()] == [("a", 0), ("tag", 4), ("b", 8), ("name", 16), ("t", 24)]
    assert res.maps["@n"].value == string_type(8)
    assert res.maps["@c"].value == string_type(16)
    sizeof = res.program.probes[0].body[3].expr
    assert sizeof.size == 32


def test_script_struct_overrides_btf_layout():
    res = check("struct task_struct { int only; }\nBEGIN { @x = ((struct task_struct *)0)->only; }",
                resolver=RESOLVER)
    assert res.maps["@x"].value == INT64


# -- uprobe/usdt targets --------------------------------------------------------

@pytest.fixture
def target_files(tmp_path):
    """An executable ELF (by its magic), an executable script, and a non-executable ELF."""
    files = {}
    for name, data, mode in (("elf", b"\x7fELF\x02\x01\x01", 0o755), ("script", b"#!/bin/sh\n", 0o755),
                             ("plain", b"\x7fELF\x02\x01\x01", 0o644)):
        path = tmp_path / name
        path.write_bytes(data)
        path.chmod(mode)
        files[name] = str(path)
    return files


def _binaries(files):
    def resolve(target):
        if target not in files:
            raise LookupError(target)
        return [files[target]]
    return resolve


@pytest.mark.parametrize("target,word", [("script", "uprobe"), ("missing", "uprobe")])
def test_uprobe_target_must_be_elf(target_files, target, word):
    text = f"uprobe:{target}:f {{ }}"
    assert first_error(text, binaries=_binaries(target_files)) == \
        f"{word} target file '{target}' does not exist or is not executable"


def test_uprobe_target_elf_need_not_be_executable(target_files):
    # as 0.17: `uprobe:libssl:SSL_read` attaches to libssl.so.3, mode 644 (sslsnoop.bt)
    check("uprobe:plain:f { }", binaries=_binaries(target_files))  # no Diagnostic


def test_uprobe_target_checks_each_attach_point(target_files):
    text = errors("uretprobe:elf:f, usdt:missing:a:b { }", binaries=_binaries(target_files))
    assert "uprobe target file 'elf'" not in text
    assert "usdt target file 'missing' does not exist or is not executable" in text


def test_uprobe_target_accepted(target_files):
    check("uprobe:elf:f { @ = count(); }", binaries=_binaries(target_files))


def test_uprobe_target_not_checked_without_resolver():
    check("uprobe:/no/such/file:f { @ = count(); }")


# -- kprobe targets: bpftrace's "not traceable" warning ---------------------------

def _warnings(text, **env):
    return [w.text for w in check(text, **env).warnings]


NOT_TRACEABLE = ('{} is not traceable (either non-existing, inlined, or marked as "notrace"); '
                 "attaching to it will likely fail")


def test_kprobe_on_untraceable_function_warns():
    assert _warnings("k:tcp_sendmsg, kr:vfs_read { }", traceable=lambda: {"vfs_read"}) == \
        [NOT_TRACEABLE.format("tcp_sendmsg")]


def test_kprobe_unreadable_function_list_counts_as_empty():
    def unreadable():
        raise PermissionError("available_filter_functions")
    assert _warnings("kprobe:do_nanosleep { }", traceable=unreadable) == [NOT_TRACEABLE.format("do_nanosleep")]


def test_kprobe_wildcards_and_addresses_not_checked():
    assert _warnings("k:tcp_* , k:vfs_read+4, k:0xffff { }", traceable=lambda: set()) == []
