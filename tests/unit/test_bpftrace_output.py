"""Text and JSON formatting of bpftrace values, checked against output observed from bpftrace 0.17."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebpfpy.bpftrace.output import jsonfmt, text
from ebpfpy.bpftrace.output.printf import PrintfFormat, check_arguments, find_specifiers
from ebpfpy.bpftrace.output.values import Avg, Hist, LHist, MapData, Stack, Stats


def test_hist_text_matches_bpftrace():
    data = MapData("@h", "hist", [((), Hist.of(-1, 0, 1, 5, 5))], keyed=False)
    bar26 = "@" * 26
    assert text.format_map(data) == (
        "@h: \n"
        f"(..., 0)               1 |{bar26:<52}|\n"
        f"[0]                    1 |{bar26:<52}|\n"
        f"[1]                    1 |{bar26:<52}|\n"
        f"[2, 4)                 0 |{'':<52}|\n"
        f"[4, 8)                 2 |{'@' * 52}|\n"
        "\n"
    )


def test_hist_labels_use_binary_suffixes():
    assert text.hist_label(Hist.bucket(1500)) == "[1K, 2K)"
    assert text.hist_label(Hist.bucket(3 << 20)) == "[2M, 4M)"
    assert text.hist_label(Hist.bucket(600)) == "[512, 1K)"
    assert text.size_label(1000) == "1000"
    assert text.size_label(5 << 10) == "5K"


def test_lhist_text_with_both_overflow_rows():
    data = MapData("@l", "lhist", [((), LHist.of(0, 10, 5, -5, 3, 30))], keyed=False)
    lines = text.format_map(data).splitlines()
    assert [line[:24] for line in lines[1:5]] == [
        "(..., 0)               1",
        "[0, 5)                 1",
        "[5, 10)                0",
        "[10, ...)              1",
    ]


def test_keyed_counts_sort_by_value_and_avg_adds_blank_line():
    counts = MapData("@c", "count", [(("b",), 2), (("a",), 1), (("c",), 3)])
    assert text.format_map(counts) == "@c[a]: 1\n@c[b]: 2\n@c[c]: 3\n"
    avg = MapData("@a", "avg", [((), Avg(2, 31))], keyed=False)
    assert text.format_map(avg) == "@a: 15\n\n"
    stats = MapData("@st", "stats", [((), Stats(2, 31))], keyed=False)
    assert text.format_map(stats) == "@st: count 2, average 15, total 31\n\n"


def test_empty_map_is_one_blank_line_in_text_and_nothing_in_json():
    empty = MapData("@e", "int", [])
    assert text.format_map(empty) == "\n"
    assert jsonfmt.map_json(empty) == ""


def test_print_top_and_div():
    data = MapData("@x", "int", [((1,), 5), ((2,), 7), ((3,), 1)])
    assert text.format_map(data, top=2) == "@x[1]: 5\n@x[2]: 7\n"
    assert text.format_map(data, 0, 2) == "@x[3]: 0\n@x[1]: 2\n@x[2]: 3\n"


def test_values_and_stacks():
    assert text.format_value((1, "two", -3)) == "(1, two, -3)"
    stack = Stack("\n    a+1\n    b+2\n")
    data = MapData("@", "count", [((stack,), 4)])
    assert text.format_map(data) == "@[\n    a+1\n    b+2\n]: 4\n"


def test_json_shapes():
    c = MapData("@c", "count", [(("b",), 2), (("a",), 1)])
    assert jsonfmt.map_json(c) == '{"type": "map", "data": {"@c": {"a": 1, "b": 2}}}\n'
    m = MapData("@m", "int", [((1, "x"), 10), ((2, "y"), 3)])
    assert jsonfmt.map_json(m) == '{"type": "map", "data": {"@m": {"2,y": 3, "1,x": 10}}}\n'
    t = MapData("@t", "int", [((), (1, "two", -3))], keyed=False)
    assert jsonfmt.map_json(t) == '{"type": "map", "data": {"@t": [1,"two",-3]}}\n'
    a = MapData("@a", "avg", [((), Avg(2, 31))], keyed=False)
    assert jsonfmt.map_json(a) == '{"type": "stats", "data": {"@a": 15}}\n'
    s = MapData("@st", "stats", [((), Stats(2, 31))], keyed=False)
    assert jsonfmt.map_json(s) == '{"type": "stats", "data": {"@st": {"count": 2, "average": 15, "total": 31}}}\n'
    h = MapData("@h", "hist", [((), Hist.of(-1, 0, 1, 5, 5))], keyed=False)
    assert jsonfmt.map_json(h) == (
        '{"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1}, '
        '{"min": 1, "max": 1, "count": 1}, {"min": 2, "max": 3, "count": 0}, {"min": 4, "max": 7, "count": 2}]}}\n'
    )
    lh = MapData("@l", "lhist", [((), LHist.of(0, 10, 5, -5, 3, 30))], keyed=False)
    assert jsonfmt.map_json(lh) == (
        '{"type": "hist", "data": {"@l": [{"max": -1, "count": 1}, {"min": 0, "max": 4, "count": 1}, '
        '{"min": 5, "max": 9, "count": 0}, {"min": 10, "count": 1}]}}\n'
    )
    for line in (jsonfmt.map_json(h), jsonfmt.attached_json(3), jsonfmt.lost_json(7)):
        json.loads(line)


PRINTF_CASES = [
    ("[%d|%u|%x|%X|%o|%c|%p|%-6s|%6s|%5d|%-5d|%ld|%lu|%llx|%hhd|%s|%%]\n",
     [-1, 4294967295, 255, 255, 8, 65, 4096, "ab", "cd", 42, 42, -2, 3, 255, 300, "str"],
     "[-1|4294967295|ff|FF|10|A|0x1000|ab    |    cd|   42|42   |-2|3|ff|44|str|%%]\n"),
    ("[%d|%u|%ld|%x|%lx|%c|%5.2s|%-8x|%p|%hu|%llu|%hhx|%zd|%08.3d|%-08d|%X|%o|%hd|%5d|%-5s]\n",
     [4294967297, -1, 4294967297, 4294967297, 4294967297, 322, "abcdef", 255, 0, -1, -1, -1, -1, 7, 7, 255, 8,
      70000, 3, "ab"],
     "[1|4294967295|4294967297|1|100000001|B|   ab|ff      |(nil)|65535|18446744073709551615|ff|-1|     007|"
     "7       |FF|10|4464|    3|ab   ]\n"),
    ("100%% %d|\n", [5], "100% 5|\n"),
]


@pytest.mark.parametrize("fmt,args,expected", PRINTF_CASES)
def test_printf_matches_bpftrace(fmt, args, expected):
    assert PrintfFormat(fmt).format(args) == expected


def test_printf_specifier_recognition_quirks():
    # %i, %f and flags other than '-' are not specifiers in bpftrace 0.17.
    assert [s.token for s in find_specifiers("%i %f %+d %0-8d %d %rx %r")] == ["d", "rx", "r"]
    assert check_arguments("%d %s", ["integer"]) == (
        "printf: Not enough arguments for format string (1 supplied, 2 expected)")
    assert check_arguments("%d", ["string"]) == (
        "printf: %d specifier expects a value of type integer (string supplied)")
    assert check_arguments("%s", ["string"]) == ""


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1))
def test_printf_integer_widths_agree_with_c_truncation(value):
    out = PrintfFormat("%d|%ld|%hhu|%lx").format([value, value, value, value])
    low32 = value & 0xFFFFFFFF
    signed32 = low32 - (1 << 32) if low32 >> 31 else low32
    low64 = value & ((1 << 64) - 1)
    signed64 = low64 - (1 << 64) if low64 >> 63 else low64
    assert out == f"{signed32}|{signed64}|{value & 0xFF}|{low64:x}"
