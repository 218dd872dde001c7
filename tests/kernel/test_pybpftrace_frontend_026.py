"""bpftrace 0.26's front-end features run end to end (0.26 mode), against the outputs observed
from bpftrace 0.26 in /work/shared/bpftrace-0.26-notes.md: ``import`` (row of 1.2),
``--probe-filter`` (E24), ``test:``/``bench:`` probes with ``--test``/``--bench`` (E23), a run
of begin/end probes alone ending by itself (E1, E24); and 0.17 mode unchanged. Each runs
``python -m ebpfpy.bpftrace`` as a child."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]


def run(*args: str, compat: str = "0.26", cwd=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PYBPFTRACE, f"--compat={compat}", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_import_runs_the_imported_begin(tmp_path):
    (tmp_path / "helper.bt").write_text('macro twice(x) { x * 2 }\nbegin { printf("helper begin\\n"); }\n')
    script = tmp_path / "main.bt"
    script.write_text('import "helper.bt";\nbegin { printf("main %d\\n", twice(21)); }\n')
    res = run(str(script))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "main 42\nhelper begin\n\n\n"  # then it ends by itself: begin probes only
    assert res.stderr == "Attached 2 probes\n"
    missing = run("-e", 'import "nope.bt"; begin { exit(); }', cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == ('stdin:1:1-18: ERROR: Unable to find suitable path for import\n'
                              'import "nope.bt"; begin { exit(); }\n~~~~~~~~~~~~~~~~~\nHINT: checked: nope.bt\n')


E24 = ('begin { printf("begin runs\\n"); } interval:ms:100 { printf("fast\\n"); exit(); } '
       'interval:s:1 { printf("slow\\n"); exit(); }')


def test_probe_filter_e24():
    res = run("--probe-filter", "interval:s:.*", "-e", E24)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "begin runs\nslow\n\n\n"
    assert res.stderr == "Attached 2 probes\n"
    nothing = run("--probe-filter", "nomatch", "-e", E24)
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout == "begin runs\n\n\n"


def test_begin_and_end_alone_end_by_themselves():
    res = run("-e", 'begin { printf("hi\\n"); } end { printf("bye\\n"); }')
    assert (res.returncode, res.stdout, res.stderr) == (0, "hi\nbye\n\n\n", "Attached 2 probes\n")


def test_test_probes_e23(tmp_path):
    script = tmp_path / "t.bt"
    script.write_text('test:passes { print("hidden"); }\ntest:other { printf("also hidden\\n"); }\n'
                      'begin { printf("not run\\n"); }\n')
    res = run("--test", str(script))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["[==========] Running 2 tests.", "[ RUN      ] passes"]
    assert lines[2].startswith("[       OK ] passes (") and lines[2].endswith(" μs)")
    assert lines[3] == "[ RUN      ] other"
    assert lines[5:] == ["[==========] 2 tests ran.", "[  PASSED  ] 2 tests."]
    normal = run(str(script))  # ignored in a normal run
    assert (normal.returncode, normal.stdout) == (0, "not run\n\n\n")


def test_bench_probes_e23(tmp_path):
    script = tmp_path / "b.bt"
    script.write_text("bench:loop10 { $a = 0; for ($i : 0..10) { $a++; } }\nbench:count { @c = count(); }\n")
    res = run("--bench", str(script))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["Benchmark                                Time(ns)       Iterations", "-" * 66]
    assert [line.split()[0] for line in lines[2:]] == ["loop10", "count"]
    assert all(line[41:].split()[0].isdigit() and line[56:].isdigit() for line in lines[2:])
    alone = run(str(script))
    assert alone.returncode == 255
    assert alone.stderr == "ERROR: No probes attached; use --bench to run benchmark probes.\n"


def test_017_mode_keeps_its_errors():
    res = run("-e", "test:passes { } BEGIN { exit(); }", compat="0.17")
    assert res.returncode == 1 and "ERROR: Invalid probe type: test" in res.stderr
    res = run("--probe-filter", "x", "-e", "BEGIN { exit(); }", compat="0.17")
    assert res.returncode == 1 and "unrecognized option '--probe-filter'" in res.stderr
