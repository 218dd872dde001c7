"""bpftrace 0.26's output texts end to end (0.26 mode), compared with the outputs observed from
bpftrace 0.26.1 (/work/shared/bpftrace-0.26-notes.md: E1, E7, E16, section 1.4's "where each kind
of output goes" and "exit: two empty lines"), with 0.17 mode's answer next to them where it differs.
Each test runs ``python -m ebpfpy.bpftrace`` as a child and waits for it to exit (the scripts end
themselves with exit() or -c)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]


def run(*args: str, compat: str = "0.26", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PYBPFTRACE, f"--compat={compat}", *args], capture_output=True, text=True,
                          timeout=timeout)


E1 = 'begin { printf("hi\\n"); exit(); } end { printf("bye\\n"); }'


def test_attached_on_stderr_e1():
    res = run("-e", E1)
    assert (res.returncode, res.stdout, res.stderr) == (0, "hi\nbye\n\n\n", "Attached 2 probes\n")
    old = run("-e", E1.replace("begin", "BEGIN").replace("end", "END"), compat="0.17")
    assert (old.returncode, old.stdout, old.stderr) == (0, "Attaching 2 probes...\nhi\nbye\n\n\n", "")


def test_quiet_hides_attached_and_long_form():
    for flag in ("-q", "--quiet"):
        res = run(flag, "-e", E1)
        assert (res.returncode, res.stdout, res.stderr) == (0, "hi\nbye\n\n\n", "")


def test_one_probe_is_singular_and_exit_lines_come_without_maps():
    res = run("-e", "begin { exit(); }")
    assert (res.returncode, res.stdout, res.stderr) == (0, "\n\n", "Attached 1 probe\n")


# E16 without its print((name="bob", age=42)): pybpftrace does not print records yet
E16 = ('begin { printf("hi %d\\n", 42); @c["a"] = count(); @c["b"] = count(); @c["b"] = count(); '
       '@h = hist(1); @h = hist(5); @h = hist(5); @st = stats(10); @st = stats(21); exit(); }')
E16_TEXT = """hi 42


@c[a]: 1
@c[b]: 2
@h:
[1]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[2, 4)                 0 |                                                    |
[4, 8)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

@st: { .count = 2, .average = 15, .total = 31 }
"""
E16_JSON = """{"type": "attached_probes", "count": 1, "data": {"probes": 1}}
{"type": "printf", "data": "hi 42\\n"}
{"type": "map", "data": {"@c": {"a": 1, "b": 2}}}
{"type": "hist", "data": {"@h": [{"min": 1, "max": 1, "count": 1},{"min": 2, "max": 3, "count": 0},{"min": 4, "max": 7, "count": 2}]}}
{"type": "stats", "data": {"@st": {"count": 2, "average": 15, "total": 31}}}
"""


def test_text_maps_e16():
    res = run("-e", E16)
    assert (res.returncode, res.stdout, res.stderr) == (0, E16_TEXT, "Attached 1 probe\n")


def test_json_e16_has_no_exit_lines_and_attached_on_stdout():
    res = run("-f", "json", "-e", E16)
    assert (res.returncode, res.stdout, res.stderr) == (0, E16_JSON, "")
    for line in res.stdout.splitlines():
        json.loads(line)


def test_017_mode_keeps_its_map_texts():
    res = run("-e", E16.replace("begin", "BEGIN"), compat="0.17")
    assert res.returncode == 0, res.stderr
    assert "@h: \n" in res.stdout and res.stdout.endswith("@st: count 2, average 15, total 31\n\n")
    js = run("-f", "json", "-e", E16.replace("begin", "BEGIN"), compat="0.17")
    assert js.stdout.startswith('{"type": "attached_probes", "data": {"probes": 1}}\n') and "\n\n\n" in js.stdout


def test_output_file_gets_the_exit_lines_and_stdout_the_warnings(tmp_path):
    out = tmp_path / "out.txt"
    script = 'begin { $x = (uint64)1; if ($x < -1) { } printf("x\\n"); @a = 1; exit(); }'
    res = run("-o", str(out), "-e", script)
    assert res.returncode == 0, res.stderr
    assert out.read_text() == "x\n\n\n@a: 1\n"
    assert res.stdout.startswith("stdin:1:32-33: WARNING: comparison of integers of different signs")
    assert res.stderr == "Attached 1 probe\n"
    old = run("-o", str(out), "-e", script.replace("begin", "BEGIN"), compat="0.17")
    assert old.returncode == 0, old.stderr
    assert out.read_text() == "Attaching 1 probe...\nx\n@a: 1\n" and old.stdout == "\n\n"
    assert "WARNING: comparison of integers" in old.stderr


def test_warnings_and_error_of_a_failed_compile_go_to_stderr():
    # the warning comes from semantic analysis, the error (nine 64-byte strings) from code generation
    strings = "".join(f'${v} = "{v}"; ' for v in "abcdefghi")
    res = run("-e", f'begin {{ $x = (uint64)1; if ($x < -1) {{ }} {strings}'
                    f'printf("{"%s" * 9}\\n", {", ".join("$" + v for v in "abcdefghi")}); }}')
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("stdin:1:32-33: WARNING: comparison of integers of different signs")
    assert "Looks like the BPF stack limit of 512 bytes is exceeded" in res.stderr


@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="the script's uprobe target /bin/bash is not here")
def test_missing_probes_warn_on_stdout_e7(tmp_path):
    script = tmp_path / "d07warn.bt"
    script.write_text('config = { missing_probes = "warn" }\nbegin { printf("started\\n"); exit(); }\n'
                      "uprobe:/bin/bash:no_such_fn_xyz { exit(); }\n")
    res = run(str(script))
    point = "uprobe:/bin/bash:no_such_fn_xyz { exit(); }\n" + "~" * 31 + "\n"
    assert res.returncode == 0, res.stderr
    assert res.stdout == (f"{script}:3:1-32: WARNING: No matches for uprobe /bin/bash:no_such_fn_xyz. Skipping.\n"
                          f"{point}{script}:3:1-32: WARNING: Probe has no valid attach points. It is being removed "
                          f"which may cause issues with program behavior.\n{point}started\n\n\n")
    assert res.stderr == "Attached 1 probe\n"


def test_long_options_run_cmd_with_arguments():
    res = run("--quiet", "--cmd", "echo a b", "-e",
              'tracepoint:syscalls:sys_enter_exit_group /pid == cpid/ { printf("done\\n"); }')
    assert (res.returncode, res.stdout, res.stderr) == (0, "a b\ndone\n\n\n", "")
    old = run("--cmd", "echo a b", "-e", "BEGIN { exit(); }", compat="0.17")
    assert old.returncode == 1 and old.stderr.startswith("pybpftrace: unrecognized option '--cmd'\n")


def test_dd_and_kk_are_errors():
    assert run("-dd", "-e", "begin { }").stderr == "ERROR: USAGE: invalid option for -d: d\n"
    kk = run("-kk", "-e", "begin { }")
    assert kk.returncode == 1
    assert kk.stderr == ("ERROR: USAGE: -kk has been deprecated. Use a single -k for runtime warnings for errors "
                         "in map lookups and probe reads.\n")
