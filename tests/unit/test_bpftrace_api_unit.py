"""ebpfpy.bpftrace's Python API without running anything: compile errors, options, and the
Python shape of map values (kernel runs are in tests/kernel/test_bpftrace_api.py)."""
import os
import subprocess
import sys
import warnings

import pytest

from ebpfpy.bpftrace import (
    BpftraceError,
    BpftraceWarning,
    Bucket,
    CompileError,
    Histogram,
    MapValues,
    Script,
    Stats,
)
from ebpfpy.bpftrace.api import histogram_svg, map_value, python_value
from ebpfpy.bpftrace.diagnostics import Diagnostic
from ebpfpy.bpftrace.output import text
from ebpfpy.bpftrace.output.values import Avg, Hist, IntColumns, LHist, MapData, Stack
from ebpfpy.bpftrace.output.values import Stats as RawStats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, **(env or {})))


class Printer:
    """The part of IPython's pretty printer that _repr_pretty_ uses."""

    def __init__(self):
        self.out = []

    def text(self, chunk):
        self.out.append(chunk)


# -- errors ---------------------------------------------------------------------------------------

BAD_SCRIPTS = [
    "BEGIN { @x = 1 + }",
    'BEGIN { printf("%d\\n", "str"); }',
    "BEGIN { @x = count(); @x = 1; }",
    "kprobe:f { $x = 1; }\nBEGIN { print($y); }",
]


@pytest.mark.parametrize("source", BAD_SCRIPTS)
def test_compile_error_is_the_cli_text_with_message_and_span(source):
    with pytest.raises(CompileError) as caught:
        Script(source)
    err = caught.value
    assert isinstance(err, Diagnostic) and isinstance(err, BpftraceError)
    assert err.text == cli("-e", source).stderr
    assert str(err) == err.text.rstrip("\n")
    assert err.message and err.message in str(err)
    line, col_start, col_end = err.span[:3]
    assert str(err).startswith(f"stdin:{line}:{col_start}-{col_end}: ERROR: {err.message}")
    assert isinstance(err.diagnostic, Diagnostic)


def test_syntax_error_text():
    with pytest.raises(CompileError) as caught:
        Script("BEGIN { @x = 1 + }")
    assert str(caught.value) == ("stdin:1:18-19: ERROR: syntax error, unexpected }\n"
                                 "BEGIN { @x = 1 + }\n"
                                 "                 ~")
    assert caught.value.span[:3] == (1, 18, 19)


def test_filename_is_used_in_messages():
    with pytest.raises(CompileError) as caught:
        Script("BEGIN { @x = 1 + }", filename="probe.bt")
    assert str(caught.value).startswith("probe.bt:1:18-19: ERROR:")


def test_refusals_before_running_have_the_cli_text():
    with pytest.raises(BpftraceError) as caught:
        Script("BEGIN { exit(); }", strlen=201)
    assert caught.value.text == cli("-e", "BEGIN { exit(); }", env={"BPFTRACE_STRLEN": "201"}).stderr
    with pytest.raises(BpftraceError) as caught:
        Script("BEGIN { exit(); } END { }", max_probes=1)
    assert caught.value.text == cli("-e", "BEGIN { exit(); } END { }", env={"BPFTRACE_MAX_PROBES": "1"}).stderr
    with pytest.raises(BpftraceError, match="No such process"):
        Script("BEGIN { exit(); }", pid=4194000)


def test_params_and_command_reach_the_compiler():
    with pytest.raises(CompileError, match="cpid cannot be used without child command"):
        Script("BEGIN { printf(\"%d\\n\", cpid); }")
    script = Script("BEGIN { printf(\"%d\\n\", cpid); }", command="/bin/true")  # compiled with a stand-in pid
    assert script.probe_count == 1
    assert Script("BEGIN { @ = $1 + 1; exit(); }", params=[41]).options.params == ("41",)


def test_warnings_are_python_warnings_and_kept():
    source = "tracepoint:syscalls:sys_enter_getpid /pid == $1/ { @ = count(); }"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        script = Script(source, params=["1"])
    assert [w.category for w in caught] == [BpftraceWarning]
    assert script.warnings and "WARNING: comparison of integers of different signs" in script.warnings[0]
    assert caught[0].filename == __file__  # pointed at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Script(source, params=["1"], warnings=False).warnings == script.warnings


def test_run_before_start_says_so():
    run = Script("BEGIN { @x = 1; exit(); }").run()
    with pytest.raises(RuntimeError, match="not started"):
        run.maps["@x"]
    with pytest.raises(RuntimeError, match="not started"):
        next(run.events())
    assert not run.exited
    assert list(run.maps) == ["@x"] and "x" in run.maps and "@y" not in run.maps
    with pytest.raises(KeyError):
        run.maps["@y"]


def test_the_command_line_does_not_import_the_api():
    code = "import sys, ebpfpy.bpftrace.cli, ebpfpy.bpftrace.driver; print('ebpfpy.bpftrace.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- values ---------------------------------------------------------------------------------------

def test_hist_rows_are_the_printed_rows_with_open_first_bucket():
    hist = Hist.of(-7, 0, 1, 5, 5, 3000)
    value = python_value(hist)
    assert isinstance(value, Histogram) and value.kind == "hist"
    rows = text.format_histogram(hist).splitlines()
    assert len(value) == len(rows) == len(value.labels)
    assert [row.split()[0] for row in rows][:3] == ["(...,", "[0]", "[1]"]
    assert value[:4] == [(None, 0, 1), (0, 1, 1), (1, 2, 1), (2, 4, 0)]
    assert value[4] == Bucket(4, 8, 2) and value[-1] == Bucket(2048, 4096, 1)
    assert value.labels[-1] == "[2K, 4K)" and value.labels[0] == "(..., 0)"
    assert sum(b.count for b in value) == 6
    assert value.text == text.format_histogram(hist)


def test_hist_last_bucket_is_labelled_as_bpftrace_does():
    value = python_value(Hist.of(1 << 40))
    assert value == [Bucket(1 << 31, 1 << 32, 1)] and value.labels == ["[2G, 4G)"]


def test_lhist_open_ends():
    hist = LHist.of(0, 10, 5, -5, 3, 30, 30)
    value = python_value(hist)
    assert value.kind == "lhist"
    assert value == [(None, 0, 1), (0, 5, 1), (5, 10, 0), (10, None, 2)]
    assert value.labels == ["(..., 0)", "[0, 5)", "[5, 10)", "[10, ...)"]
    for bucket, low in zip(value[1:3], (0, 5)):
        assert bucket.low == low and bucket.high == low + 5


def test_empty_hist_is_an_empty_list():
    assert python_value(Hist((0,) * 66)) == []
    assert "empty" in histogram_svg(Hist((0,) * 66))


def test_hist_divisor_divides_the_counts_as_printed():
    hist = Hist.of(*[5] * 10, 1)
    value = python_value(hist, div=2)
    assert value == [(1, 2, 0), (2, 4, 0), (4, 8, 5)]  # 1 and 10 halved; the rows are still those of 1 and 10
    assert value.text == text.format_histogram(hist, 2)


def test_scalars_stats_avg_stacks_and_tuples():
    assert python_value(RawStats(2, 31)) == Stats(2, 15, 31)
    assert python_value(RawStats(2, 31)).average == 15
    assert python_value(Avg(2, -31)) == -15  # truncated toward zero, as bpftrace prints
    assert python_value(Stack("\n    a+1\n")) == "\n    a+1\n"
    assert python_value((1, "a", Stack("x"))) == (1, "a", "x")
    assert python_value(7, div=2) == 3 and python_value(-7, div=2) == -3
    assert python_value(Avg(2, 31), div=5) == 3


def test_map_values_keys_order_and_text():
    data = MapData("@c", "count", [(("b", 2), 2), (("a", 1), 1), (("c", 3), 3)])
    value = map_value(data)
    assert isinstance(value, MapValues) and value.name == "@c" and value.kind == "count"
    assert list(value.items()) == [(("a", 1), 1), (("b", 2), 2), (("c", 3), 3)]  # print order
    assert value.text == text.format_map(data)
    single = map_value(MapData("@s", "sum", [(("x",), 5), (("y",), 1)]))
    assert single == {"x": 5, "y": 1} and list(single) == ["y", "x"]
    top = map_value(MapData("@s", "sum", [(("x",), 5), (("y",), 1)]), top=1, div=5)
    assert top == {"x": 1}


def test_int_column_maps_read_as_dicts():
    data = IntColumns("@n", "count", [3, 1, 2], [30, 10, 20])
    assert map_value(data) == {1: 10, 2: 20, 3: 30}
    assert map_value(data).text == text.format_map(data)


def test_maps_without_keys_are_their_value():
    assert map_value(MapData("@x", "count", [((), 3)], keyed=False)) == 3
    assert map_value(MapData("@x", "int", [], keyed=False)) is None
    assert map_value(MapData("@x", "avg", [((), Avg(3, 10))], keyed=False)) == 3
    assert map_value(MapData("@x", "stats", [((), RawStats(3, 10))], keyed=False)) == Stats(3, 3, 10)
    hist = map_value(MapData("@h", "hist", [((), Hist.of(1, 2))], keyed=False))
    assert isinstance(hist, Histogram) and hist == [(1, 2, 1), (2, 4, 1)]


def test_jupyter_renderings():
    data = MapData("@h", "hist", [(("a",), Hist.of(1, 2, 2)), (("b",), Hist.of(0))])
    value = map_value(data)
    assert value["a"] == [(1, 2, 1), (2, 4, 2)]
    printer = Printer()
    value._repr_pretty_(printer, False)
    assert "".join(printer.out) == text.format_map(data).rstrip("\n")
    page = value._repr_html_()
    assert page.count("<svg") == 2 and "@h[a]:" in page and "@h[b]:" in page
    chart = value["a"]._repr_html_()
    assert chart.startswith("<svg") and chart.count("<rect") == 2 and "[2, 4)" in chart
    printer = Printer()
    value["a"]._repr_pretty_(printer, False)
    assert "".join(printer.out) == text.format_histogram(Hist.of(1, 2, 2)).rstrip("\n")
    counts = map_value(MapData("@c", "count", [(("<b>",), 1)]))
    assert counts._repr_html_() == "<pre>@c[&lt;b&gt;]: 1\n</pre>"


def test_package_exports_the_api():
    import ebpfpy.bpftrace as package
    from ebpfpy.bpftrace import api

    assert package.__all__ == api.__all__
    assert all(getattr(package, name) is getattr(api, name) for name in api.__all__)
    with pytest.raises(AttributeError):
        package.NoSuchName  # noqa: B018
