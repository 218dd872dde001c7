"""The bpftrace lexer: token kinds, values, bpftrace-style spans, lexical errors."""
import pytest

from ebpfpy.bpftrace.diagnostics import Span
from ebpfpy.bpftrace.lexer import tokenize


def kinds(text):
    toks, errors = tokenize(text)
    assert not errors, errors
    return [t.kind for t in toks]


def body(text):
    """Tokens inside 'BEGIN { ... }' (without the frame)."""
    toks, errors = tokenize("BEGIN { " + text + " }")
    assert not errors, errors
    return toks[2:-2]


def test_probe_frame():
    assert kinds("BEGIN { }") == ["ATTACH", "{", "}", "EOF"]


@pytest.mark.parametrize("spec", [
    "uprobe:/bin/bash:readline",
    "t:syscalls:sys_enter_*",
    "kprobe:tcp_*",
    "usdt:/usr/lib/libc.so.6:libc:setjmp",
    "interval:s:1",
    "BEGIN",
    'uprobe:"/tmp/with space":main',
    "kprobe:vfs_read+16",
    "watchpoint:0x10000:8:rw",
])
def test_attach_point_is_one_token(spec):
    toks, errors = tokenize(spec + " { }")
    assert not errors
    assert toks[0].kind == "ATTACH" and toks[0].text == spec
    assert [t.kind for t in toks[1:]] == ["{", "}", "EOF"]


def test_several_attach_points_and_predicate():
    toks, _ = tokenize("kprobe:a,kprobe:b /pid == 1/ { }")
    assert [t.kind for t in toks] == ["ATTACH", ",", "ATTACH", "/", "BUILTIN", "==", "INT",
                                      "ENDPRED", "{", "}", "EOF"]


def test_division_inside_predicate_is_not_its_end():
    toks, _ = tokenize("BEGIN /4 / 2/ { }")
    assert [t.kind for t in toks][:6] == ["ATTACH", "/", "INT", "/", "INT", "ENDPRED"]


def test_path_slash_in_attach_point_but_predicate_after_space():
    toks, _ = tokenize("uprobe:/bin/sh:main /1/ { }")
    assert toks[0].text == "uprobe:/bin/sh:main"
    assert toks[1].kind == "/"


@pytest.mark.parametrize("text,kind,value", [
    ("$x", "VAR", "$x"),
    ("@m", "MAP", "@m"),
    ("@", "MAP", "@"),
    ("$1", "PARAM", 1),
    ("$12", "PARAM", 12),
    ("$#", "PARAMCOUNT", None),
    ("pid", "BUILTIN", "pid"),
    ("arg12", "BUILTIN", "arg12"),
    ("sarg0", "BUILTIN", "sarg0"),
    ("kstack", "CALL_BUILTIN", "kstack"),
    ("perf", "STACK_MODE", "perf"),
    ("printf", "CALL", "printf"),
    ("lhist", "CALL", "lhist"),
    ("pidx", "IDENT", "pidx"),
    ("offsetof", "CALL", "offsetof"),  # today's offsetof(); 0.17 mode still calls it unknown
    ("while", "while", "while"),
    ("unroll", "unroll", "unroll"),
])
def test_word_kinds(text, kind, value):
    (tok,) = body(text)
    assert tok.kind == kind
    assert tok.value == value


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("42", 42), ("0x1F", 31), ("0XfF", 255), ("010", 8), ("1e3", 1000),
    ("1_000", 1000), ("1__0", 10), ("5u", 5), ("7ULL", 7), ("3l", 3), ("9e18", 9 * 10 ** 18),
    ("18446744073709551615", 2 ** 64 - 1),
])
def test_integers(text, value):
    (tok,) = body(text)
    assert tok.kind == "INT" and tok.value == value


def test_hex_without_digits_is_zero_then_identifier():
    assert [t.kind for t in body("0x")] == ["INT", "IDENT"]


@pytest.mark.parametrize("text,message", [
    ("99999999999999999999", "stoull"),
    ("08", "Found trailing non-numeric characters"),
    ("10e2", "Coefficient part of scientific literal must be in range (0,9), got: 10"),
    ("1e20", "Exponent will overflow integer range: 20"),
    ("1e19", "Exponent will overflow integer range: 19"),  # fits in 64 bits, refused by 0.17
])
def test_integer_errors(text, message):
    _, errors = tokenize("BEGIN { @x = " + text + "; }")
    assert [e.text for e in errors] == [message]


@pytest.mark.parametrize("src,value", [
    (r'"a\"b"', 'a"b'),
    (r'"\t\n\\"', "\t\n\\"),
    (r'"\x41\x4g"', "A\x04g"),
    (r'"\101\0"', "A\0"),
    ('"plain"', "plain"),
])
def test_string_escapes(src, value):
    (tok,) = body(src)
    assert tok.kind == "STRING" and tok.value == value


@pytest.mark.parametrize("src,message", [
    (r'"\q"', r"invalid escape character '\q'"),
    (r'"a\777"', r"octal escape sequence out of range '\777'"),
    ('"abc', "unterminated string"),
])
def test_string_errors(src, message):
    _, errors = tokenize("BEGIN { @x = " + src + "; }")
    assert errors[0].text == message


def test_operators_longest_match():
    assert [t.kind for t in body("a <<= b >>= c -> d ++ -- && || != == <= >=")] == [
        "IDENT", "<<=", "IDENT", ">>=", "IDENT", "->", "IDENT", "++", "--", "&&", "||",
        "!=", "==", "<=", ">="]


def test_comments_are_skipped():
    assert kinds("BEGIN // c\n { /* x\n y */ }") == ["ATTACH", "{", "}", "EOF"]


def test_unterminated_comment():
    _, errors = tokenize("BEGIN /* x")
    assert errors[0].text == "end of file during comment"
    assert errors[0].span == Span(1, 7, 11)


def test_header_preprocessor_and_struct():
    toks, _ = tokenize("#include <linux/sched.h>\nstruct Foo { int x; struct { int y; } z; }\nBEGIN { }")
    assert [t.kind for t in toks] == ["CPREPROC", "STRUCT_DEF", "ATTACH", "{", "}", "EOF"]
    assert toks[1].text == "struct Foo { int x; struct { int y; } z; }"


def test_struct_cast_in_body():
    (_lp, st, _star, _rp, _var) = body("(struct task_struct *)$p")
    assert st.kind == "STRUCT_TYPE" and st.value == "struct task_struct"


def test_invalid_character():
    _, errors = tokenize("BEGIN { @x = 1 ` }")
    assert errors[0].text == "invalid character '`'"
    assert errors[0].span == Span(1, 16, 17)


def test_span_starts_after_last_whitespace():
    # bpftrace quirk: "print(pid" is one location run; pid's span starts at "print"
    toks, _ = tokenize("BEGIN { print(pid); }")
    pid = toks[4]
    assert pid.text == "pid"
    assert pid.span == Span(1, 9, 18)
    assert pid.start == 15


def test_lines_and_columns():
    toks, _ = tokenize("BEGIN {\n  @x = 1;\n}")
    at = toks[2]
    assert at.span == Span(2, 3, 5)
    assert toks[-2].span == Span(3, 1, 2)


def test_attach_point_span_starts_after_comma():
    toks, _ = tokenize("BEGIN,  END { }")
    assert toks[2].span == Span(1, 7, 12)


def test_shebang_is_ignored():
    assert kinds("#!/usr/bin/bpftrace\nBEGIN { }") == ["ATTACH", "{", "}", "EOF"]


def test_struct_type_shifts_later_columns_like_bpftrace():
    # bpftrace 0.17 counts one extra column per struct type name in a body
    toks, _ = tokenize("BEGIN { @x = (struct task_struct *)1; @y = 2; }")
    st = next(t for t in toks if t.kind == "STRUCT_TYPE")
    assert st.span == Span(1, 14, 34)  # starts at "(": no whitespace between
    y = next(t for t in toks if t.text == "@y")
    assert y.span == Span(1, 40, 42)


@pytest.mark.parametrize("source,raw", [
    ("uprobe:./prog:func", "uprobe:./prog:func"),
    ("uprobe:../a/b:func", "uprobe:../a/b:func"),
    ("uprobe:a/b:func", "uprobe:a/b:func"),
    ("k : f", "k:f"),
    ("k /* c */ :f", "k:f"),
    ("kprobe:f+0x10", "kprobe:f+16"),
    ("kprobe:f 10", "kprobe:f10"),
    ('uprobe:/x:"f"', 'uprobe:/x:"f"'),
    ("uprobe:a+b:f", "uprobe:a+b:f"),
    ("k:f*g", "k:f*g"),
    ("BEGIN[x]", "BEGIN[x]"),
    ("k:$1", "k:$1"),
])
def test_attach_point_value_is_what_bpftrace_builds(source, raw):
    """0.17 concatenates the tokens of an attach point (integers in decimal, no whitespace)."""
    toks, errors = tokenize(source + " { }")
    assert not errors
    assert toks[0].kind == "ATTACH" and toks[0].value == raw
    assert [t.kind for t in toks[1:]] == ["{", "}", "EOF"]


def test_path_token_in_bodies():
    """':' then path characters is one 'path' token, as in 0.17 ("1 ? 2 :3" is a syntax error)."""
    assert [t.kind for t in body("1 ? 2 :3")] == ["INT", "?", "INT", "PATH"]
    assert [t.kind for t in body("1 ? 2 : 3")] == ["INT", "?", "INT", ":", "INT"]


def test_script_is_lexed_as_bytes():
    toks, errors = tokenize("BEGIN { @x = \"é\"; @y = 1 é; }")
    assert toks[4].value == "é"  # the string keeps its text
    assert [e.text for e in errors] == ["invalid character '\udcc3'", "invalid character '\udca9'"]
    assert errors[0].span.col_start == errors[1].span.col_start  # one span start, byte columns
    toks, errors = tokenize("BEGIN { exit(); }\0 }}}")
    assert not errors and toks[-2].kind == "}"


def test_dollar_hash_in_attach_point_ends_the_parse():
    toks, errors = tokenize("kprobe:f$# { 1 } BEGIN { @x = 1 2 }")
    assert [e.text for e in errors] == ["Not a positional parameter"]
    assert toks[-1].kind == "EOF" and toks[-1].value == "abort"
