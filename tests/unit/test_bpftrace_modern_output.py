"""bpftrace 0.26's output texts (0.26 mode) next to 0.17's (0.17 mode, unchanged): the writers,
the command line's flags, and where each kind of output goes. Expected texts are the ones observed
from bpftrace 0.26.1 (/work/shared/bpftrace-0.26-notes.md, sections 1.4 and 1.5, examples E1, E7,
E13, E16). No root: the writers get StringIO streams, the CLI runs in-process or with --dry-run."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from ebpfpy.bpftrace import cli
from ebpfpy.bpftrace.output import jsonfmt, text
from ebpfpy.bpftrace.output.values import Avg, Hist, MapData, Stats
from ebpfpy.bpftrace.output.writer import make_writer

BAR26, BAR52 = "@" * 26, "@" * 52

# E16's maps: @c["a"] once, @c["b"] twice, hist(1, 5, 5), stats(10, 21)
E16_MAPS = [
    MapData("@c", "count", [(("b",), 2), (("a",), 1)]),
    MapData("@h", "hist", [((), Hist.of(1, 5, 5))], keyed=False),
    MapData("@st", "stats", [((), Stats(2, 31))], keyed=False),
]
# E16's text output after its record line (records are not printed by pybpftrace yet)
E16_TEXT = (
    "hi 42\n"
    "\n\n"
    "@c[a]: 1\n"
    "@c[b]: 2\n"
    "@h:\n"
    f"[1]                    1 |{BAR26:<52}|\n"
    f"[2, 4)                 0 |{'':<52}|\n"
    f"[4, 8)                 2 |{BAR52}|\n"
    "\n"
    "@st: { .count = 2, .average = 15, .total = 31 }\n"
)
E16_JSON = (
    '{"type": "printf", "data": "hi 42\\n"}\n'
    '{"type": "map", "data": {"@c": {"a": 1, "b": 2}}}\n'
    '{"type": "hist", "data": {"@h": [{"min": 1, "max": 1, "count": 1},{"min": 2, "max": 3, "count": 0},'
    '{"min": 4, "max": 7, "count": 2}]}}\n'
    '{"type": "stats", "data": {"@st": {"count": 2, "average": 15, "total": 31}}}\n'
)


def _run_e16(fmt: str, modern: bool) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    writer = make_writer(fmt, out, modern=modern)
    writer.diagnostics = err
    writer.attached(1)
    writer.printf("hi 42\n")
    writer.exit_separator()
    for data in E16_MAPS:
        writer.map(data)
    return out.getvalue(), err.getvalue()


def test_e16_text_in_026_mode():
    out, err = _run_e16("text", modern=True)
    assert (out, err) == (E16_TEXT, "Attached 1 probe\n")


def test_e16_json_in_026_mode():
    out, err = _run_e16("json", modern=True)
    assert out == '{"type": "attached_probes", "count": 1, "data": {"probes": 1}}\n' + E16_JSON
    assert err == ""
    for line in out.splitlines():
        json.loads(line)


def test_017_mode_keeps_017s_texts():
    out, err = _run_e16("text", modern=False)
    assert err == ""
    assert out.startswith("Attaching 1 probe...\nhi 42\n\n\n@c[a]: 1\n@c[b]: 2\n@h: \n")
    assert out.endswith("\n@st: count 2, average 15, total 31\n\n")
    out, _ = _run_e16("json", modern=False)
    assert out.startswith('{"type": "attached_probes", "data": {"probes": 1}}\n{"type": "printf", '
                          '"data": "hi 42\\n"}\n\n\n')
    assert '{"min": 1, "max": 1, "count": 1}, {"min": 2' in out


@pytest.mark.parametrize("count, line", [(1, "Attached 1 probe\n"), (0, "Attached 0 probes\n"),
                                         (360, "Attached 360 probes\n")])
def test_attached_line(count, line):
    assert text.format_attached(count, modern=True) == line
    assert text.format_attached(count) == line.replace("Attached", "Attaching").replace("\n", "...\n")
    record = json.loads(jsonfmt.attached_json(count, modern=True))
    assert record == {"type": "attached_probes", "count": count, "data": {"probes": count}}


def test_avg_and_stats_have_no_blank_line_after_them():
    avg = MapData("@a", "avg", [((), Avg(2, 31))], keyed=False)
    assert text.format_map(avg, modern=True) == "@a: 15\n"
    keyed = MapData("@s", "stats", [((1,), Stats(1, 5)), ((2,), Stats(2, 31))])
    assert text.format_map(keyed, modern=True) == ("@s[1]: { .count = 1, .average = 5, .total = 5 }\n"
                                                   "@s[2]: { .count = 2, .average = 15, .total = 31 }\n")
    assert text.format_map(avg) == "@a: 15\n\n"


def test_keyed_histogram_header_has_no_trailing_space():
    data = MapData("@h", "hist", [(("x",), Hist.of(1))])
    assert text.format_map(data, modern=True).startswith("@h[x]:\n[1]")
    assert text.format_map(data).startswith("@h[x]: \n[1]")


def test_empty_map_prints_nothing_in_026_mode():
    # E11: a map emptied by delete() is left out at exit
    for data in (MapData("@b", "int", []), MapData("@s", "stats", [])):
        assert text.format_map(data, modern=True) == ""
    assert text.format_map(MapData("@b", "int", [])) == "\n"


@pytest.mark.parametrize("fmt, modern, expected", [
    ("text", True, "\n\n"), ("json", True, ""), ("text", False, "\n\n"), ("json", False, "\n\n")])
def test_exit_lines(fmt, modern, expected):
    out = io.StringIO()
    make_writer(fmt, out, modern=modern).exit_separator()
    assert out.getvalue() == expected


def test_exit_lines_go_into_the_output_file_in_026_mode():
    # the driver points separator_stream at stdout only in 0.17 mode; 0.26 writes to the -o file
    file = io.StringIO()
    writer = make_writer("text", file, modern=True)
    writer.exit_separator()
    assert file.getvalue() == "\n\n"


# -- the command line ---------------------------------------------------------------------------

LONG_FORMS = [
    (["--pid", "1"], "pid", 1),
    (["--cmd", "echo a b"], "command", "echo a b"),
    (["--output=/tmp/x"], "output", "/tmp/x"),
    (["--list"], "listing", True),
    (["--quiet"], "quiet", True),
    (["--warnings"], "helper_errors", 1),
    (["--verbose"], "verbose", True),
]


@pytest.mark.parametrize("flags, attr, value", LONG_FORMS)
def test_long_options_in_026_mode_only(flags, attr, value):
    opts, compat, error = cli.read_flags(["--compat=0.26", *flags, "-e", "begin {}"])
    assert (compat, error, getattr(opts, attr)) == ("0.26", None, value)
    with pytest.raises(cli.UsageError, match=f"unrecognized option '{flags[0].split('=')[0]}"):
        cli.read_flags(["--compat=0.17", *flags, "-e", "BEGIN {}"])


def test_long_option_before_compat_flag_and_from_the_environment(monkeypatch):
    opts, compat, _ = cli.read_flags(["--quiet", "--compat", "0.26", "-e", "x"])
    assert opts.quiet and compat == "0.26"
    monkeypatch.setenv("PYBPFTRACE_COMPAT", "0.26")
    assert cli.read_flags(["--list"])[0].listing
    monkeypatch.setenv("PYBPFTRACE_COMPAT", "0.17")
    with pytest.raises(cli.UsageError):
        cli.read_flags(["--list"])


def _main(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv, message", [
    (["-dd", "-e", "x"], "ERROR: USAGE: invalid option for -d: d\n"),
    (["-d", "-e", "x"], "ERROR: USAGE: invalid option for -d: -e\n"),
    (["-d", "ast,bogus", "-e", "x"], "ERROR: USAGE: invalid option for -d: bogus\n"),
    (["-kk", "-e", "x"], "ERROR: USAGE: -kk has been deprecated. Use a single -k for runtime warnings "
                         "for errors in map lookups and probe reads.\n"),
    (["-k", "--warnings", "-e", "x"], "ERROR: USAGE: -kk has been deprecated. Use a single -k for runtime "
                                      "warnings for errors in map lookups and probe reads.\n"),
])
def test_removed_dd_and_kk(capsys, argv, message):
    assert _main(capsys, "--compat=0.26", *argv) == (1, "", message)


@pytest.mark.parametrize("stages, level", [("ast", 1), ("types,codegen", 1), ("verifier", 2), ("all", 2)])
def test_debug_stages(stages, level):
    assert cli.read_flags(["--compat=0.26", "-d", stages, "-e", "x"])[0].debug == level


def test_017_mode_keeps_dd_and_kk():
    opts, _, _ = cli.read_flags(["--compat=0.17", "-dd", "-kk", "-e", "x"])
    assert (opts.debug, opts.helper_errors) == (2, 2)


def test_version(capsys):
    assert _main(capsys, "--compat=0.26", "--version") == (0, "pybpftrace v0.26.1\n", "")
    assert _main(capsys, "--compat=0.17", "-V") == (0, "pybpftrace v0.17.0\n", "")


def test_help_on_stdout_in_026_mode(capsys):
    rc, out, err = _main(capsys, "--compat=0.26", "--help")
    assert (rc, err) == (0, "") and out.startswith("USAGE:\n")
    rc, out, err = _main(capsys, "--compat=0.17", "-h")
    assert (rc, out) == (0, "") and err.startswith("USAGE:\n")


def test_info_on_stdout_in_026_mode(capsys, monkeypatch):
    from ebpfpy.bpftrace import listing

    monkeypatch.setattr(listing, "info_text", lambda: "System\n  OS: test\n")
    assert _main(capsys, "--compat=0.26", "--info") == (0, "System\n  OS: test\n", "")
    assert _main(capsys, "--compat=0.17", "--info") == (0, "", "System\n  OS: test\n")


# -- compile-time warnings: stdout in 0.26 when the compile succeeds, stderr in 0.17 ----------------

WARNED = 'BEGIN { $x = (uint64)1; if ($x < -1) { printf("a\\n"); } }'
WARNING = ("stdin:1:32-33: WARNING: comparison of integers of different signs: 'unsigned int64' and 'int64' "
           "can lead to undefined behavior\n")


@pytest.mark.parametrize("compat", ["0.17", "0.26"])
def test_compile_warnings_stream(compat):
    res = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", f"--compat={compat}", "--dry-run", "-e", WARNED],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    warned, quiet = (res.stdout, res.stderr) if compat == "0.26" else (res.stderr, res.stdout)
    assert warned.startswith(WARNING) and quiet == ""


@pytest.mark.parametrize("argv, option", [(["--compat=0.17", "-kk", "--bogus"], "--bogus"),
                                          (["-kk", "--pid", "1", "--compat", "0.17"], "--pid")])
def test_017_mode_says_017s_error_first(capsys, argv, option):
    # 0.26's tables would stop at -kk; in 0.17 mode the unknown long option is the error
    rc, out, err = _main(capsys, *argv)
    assert rc == 1 and out == ""
    assert err.startswith(f"pybpftrace: unrecognized option '{option}'\nUSAGE:")


def test_helper_error_warning_goes_to_stderr_in_026_mode():
    from ebpfpy.bpftrace.diagnostics import Span
    from ebpfpy.bpftrace.helper_errors import HelperSite

    site = HelperSite("map_update_elem", Span(1, 9, 17), source="BEGIN { @a[1] = 1; }")
    for modern in (True, False):
        out, err = io.StringIO(), io.StringIO()
        writer = make_writer("text", out, modern=modern)
        writer.diagnostics = err
        writer.helper_error(site, -7)
        said, quiet = (err, out) if modern else (out, err)
        assert said.getvalue().startswith("stdin:1:9-17: WARNING: Failed to map_update_elem: Argument list too long")
        assert quiet.getvalue() == ""
