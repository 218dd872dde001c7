"""The output writers against the real bpftrace 0.17: the same values, the same bytes.

Each case is a BEGIN-only script whose map contents are known in advance, and the
MapData the runtime would decode for it. bpftrace prints the maps at exit; the
writers must print the same text (and JSON) from the model.
"""
import subprocess

import pytest

from ebpfpy.bpftrace.output import jsonfmt, text
from ebpfpy.bpftrace.output.printf import PrintfFormat
from ebpfpy.bpftrace.output.values import Avg, Hist, LHist, MapData, Stats

pytestmark = pytest.mark.bpftrace




def run_bpftrace(script, *flags):
    proc = subprocess.run(["bpftrace", *flags, "-e", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


CASES = [
    (
        '@c["b"] = count(); @c["b"] = count(); @c["a"] = count(); @c["c"] = count(); @c["c"] = count(); '
        '@c["c"] = count();',
        [MapData("@c", "count", [(("a",), 1), (("b",), 2), (("c",), 3)])],
    ),
    (
        '@m[1, "x"] = 10; @m[2, "y"] = 3; @s["a", 1] = sum(3); @s["b", 2] = sum(1);',
        [MapData("@m", "int", [((1, "x"), 10), ((2, "y"), 3)]),
         MapData("@s", "sum", [(("a", 1), 3), (("b", 2), 1)])],
    ),
    (
        "@a = avg(10); @a = avg(21); @st = stats(10); @st = stats(21); @av[1] = avg(3); @av[2] = avg(1);",
        [MapData("@a", "avg", [((), Avg(2, 31))], keyed=False),
         MapData("@av", "avg", [((1,), Avg(1, 3)), ((2,), Avg(1, 1))]),
         MapData("@st", "stats", [((), Stats(2, 31))], keyed=False)],
    ),
    (
        '@s = "hello"; @t = (1, "two", -3); @mn = min(-3); @mx = max(4); @z2 = sum(-5);',
        [MapData("@mn", "min", [((), -3)], keyed=False), MapData("@mx", "max", [((), 4)], keyed=False),
         MapData("@s", "int", [((), "hello")], keyed=False),
         MapData("@t", "int", [((), (1, "two", -3))], keyed=False),
         MapData("@z2", "sum", [((), -5)], keyed=False)],
    ),
    (
        '@h = hist(-1); @h = hist(0); @h = hist(1); @h = hist(5); @h = hist(5); @k["x"] = hist(1500); '
        "@g = hist(3145728); @g = hist(2000); @g = hist(0); @g = hist(7);",
        [MapData("@g", "hist", [((), Hist.of(3145728, 2000, 0, 7))], keyed=False),
         MapData("@h", "hist", [((), Hist.of(-1, 0, 1, 5, 5))], keyed=False),
         MapData("@k", "hist", [(("x",), Hist.of(1500))])],
    ),
    (
        "@l = lhist(-5, 0, 10, 5); @l = lhist(3, 0, 10, 5); @l = lhist(30, 0, 10, 5); "
        "@k = lhist(5000, 0, 10240, 1024); @k = lhist(20000, 0, 10240, 1024); @k = lhist(1, 0, 10240, 1024); "
        "@k = lhist(1, 0, 10240, 1024);",
        [MapData("@k", "lhist", [((), LHist.of(0, 10240, 1024, 5000, 20000, 1, 1))], keyed=False),
         MapData("@l", "lhist", [((), LHist.of(0, 10, 5, -5, 3, 30))], keyed=False)],
    ),
    ("@e[1] = 1; delete(@e[1]);", [MapData("@e", "int", [])]),
]


@pytest.mark.parametrize("body,maps", CASES)
def test_exit_maps_text(body, maps):
    expected = run_bpftrace("BEGIN { " + body + " exit(); }")
    ours = "Attaching 1 probe...\n\n\n" + "".join(text.format_map(m) for m in maps)
    assert ours == expected


@pytest.mark.parametrize("body,maps", CASES)
def test_exit_maps_json(body, maps):
    expected = run_bpftrace("BEGIN { " + body + " exit(); }", "-f", "json")
    ours = jsonfmt.attached_json(1) + "\n\n" + "".join(jsonfmt.map_json(m) for m in maps)
    assert ours == expected


PRINTF = [
    ('"[%d|%u|%x|%X|%o|%c|%p|%-6s|%6s|%5d|%-5d|%ld|%lu|%llx|%hhd|%s|%%]\\n"',
     [-1, 4294967295, 255, 255, 8, 65, 4096, "ab", "cd", 42, 42, -2, 3, 255, 300, "str"]),
    ('"%d%%|%s%%x|%08.3d|%.3x|%-4c|%hhx\\n"', [5, "s", 9, 6, 10, 66, -1]),
    ('"no args %% here\\n"', []),
]


@pytest.mark.parametrize("fmt,args", PRINTF)
def test_printf(fmt, args):
    rendered = ", ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    call = f"printf({fmt}{', ' if args else ''}{rendered});"
    expected = run_bpftrace("BEGIN { " + call + " exit(); }")
    python_fmt = fmt[1:-1].encode().decode("unicode_escape")
    assert "Attaching 1 probe...\n" + PrintfFormat(python_fmt).format(args) + "\n\n" == expected
