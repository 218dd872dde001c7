"""``pybpftrace --emulate``: scripts run in ebpfpy.vm, without root and without the kernel.

Each test runs ``python -m ebpfpy.bpftrace --emulate`` as a child process, as a user would,
and checks stdout (bpftrace 0.17's text, byte for byte), stderr and the exit status. The
kernel's own output for the same scripts is compared in
tests/kernel/test_bpftrace_emulate_vs_kernel.py; here the expected text is written out.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ebpfpy.bpftrace import cli
from ebpfpy.bpftrace.diagnostics import Span
from ebpfpy.vm import VM, VMError

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def emulate(script: str, *args: str, env: dict | None = None, python: str = sys.executable,
            prefix: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, python, "-m", "ebpfpy.bpftrace", "--emulate", *args, "-e", script],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
                          env=dict(os.environ, **(env or {})))


def ok(script: str, *args: str, **kwargs) -> str:
    """stdout of a run that must succeed, with nothing on stderr (no warning, no traceback)."""
    res = emulate(script, *args, **kwargs)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    return res.stdout


# (script, stdout) in 0.17 mode: BEGIN, END, maps printed at exit, every aggregation
CASES = [
    ('BEGIN { printf("hello\\n"); exit(); }', "Attaching 1 probe...\nhello\n\n\n"),
    ('BEGIN { printf("%d %s %x|%5d|%-3s|\\n", -7, "str", 255, 42, "a"); exit(); }',
     "Attaching 1 probe...\n-7 str ff|   42|a  |\n\n\n"),
    ("BEGIN { @c = count(); @c = count(); @s = sum(5); @s = sum(-2); @a = avg(4); @a = avg(6); "
     "@mn = min(3); @mn = min(9); @mx = max(3); @mx = max(9); @st = stats(10); exit(); }",
     "Attaching 1 probe...\n\n\n@a: 5\n\n@c: 2\n@mn: 3\n@mx: 9\n@s: 3\n@st: count 1, average 10, total 10\n\n"),
    ('BEGIN { @[1, "a"] = 3; @[2, "b"] = 1; @[0, "c"] = 2; exit(); }',
     "Attaching 1 probe...\n\n\n@[2, b]: 1\n@[0, c]: 2\n@[1, a]: 3\n"),
    ("BEGIN { @ = hist(0); @ = hist(1); @ = hist(5); @ = hist(5); exit(); }",
     "Attaching 1 probe...\n\n\n@: \n"
     "[0]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
     "[1]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
     "[2, 4)                 0 |                                                    |\n"
     "[4, 8)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"),
    ("BEGIN { @ = lhist(3, 0, 10, 5); @ = lhist(12, 0, 10, 5); exit(); }",
     "Attaching 1 probe...\n\n\n@: \n"
     "[0, 5)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
     "[5, 10)                0 |                                                    |\n"
     "[10, ...)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n\n"),
    ('BEGIN { @t = (1, "two", -3); $i = 0; while ($i < 5) { $i++; @w = sum($i); } exit(); }',
     "Attaching 1 probe...\n\n\n@t: (1, two, -3)\n@w: 15\n"),
    # exit() in BEGIN still runs END, which can print, clear and delete
    ('BEGIN { @a[1] = 1; @a[2] = 2; @b = 7; exit(); } END { print(@a); clear(@a); delete(@b); printf("end\\n"); }',
     "Attaching 2 probes...\n@a[1]: 1\n@a[2]: 2\nend\n\n\n\n\n"),
    ('BEGIN { @x = 5; print(@x); zero(@x); print(@x); exit(); }', "Attaching 1 probe...\n@x: 5\n@x: 0\n\n\n@x: 0\n"),
    ('BEGIN { printf("%s|%s|%d\\n", strerror(2), ntop(pton("10.1.2.3")), strncmp("abc", "abd", 2)); exit(); }',
     "Attaching 1 probe...\nNo such file or directory|10.1.2.3|0\n\n\n"),
    ('BEGIN { $s = "abc"; @[$s] = 1; printf("%s %d\\n", $s, sizeof(uint32)); exit(); }',
     "Attaching 1 probe...\nabc 4\n\n\n@[abc]: 1\n"),
    ('BEGIN { printf("%d\\n", $1 * $2); exit(); }', "Attaching 1 probe...\n42\n\n\n"),
]


@pytest.mark.parametrize(("script", "expected"), CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_scripts(script, expected):
    args = ("6", "7") if "$1" in script else ()
    # positional parameters follow the program
    res = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "--emulate", "-e", script, *args],
                         capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == expected


def test_interval_ticks_then_exit():
    out = ok('interval:ms:10 { @n++; printf("tick %d\\n", @n); if (@n == 3) { exit(); } } END { print(@n); clear(@n); }')
    assert out == "Attaching 2 probes...\ntick 1\ntick 2\ntick 3\n@n: 3\n\n\n\n"


def test_interval_in_seconds_and_hz():
    """interval:s:1 and interval:hz:N are the kernel's timers on real time: two ticks of the
    one-second timer take two seconds, and the 100 Hz one ticks many times meanwhile."""
    out = ok("interval:s:1 { @s++; if (@s == 2) { exit(); } } interval:hz:100 { @h++; } END { "
             'printf("%d %d\\n", @s, @h >= 20); clear(@s); clear(@h); }')
    assert out == "Attaching 3 probes...\n2 1\n\n\n\n\n"  # the cleared maps print as empty lines


def test_begin_runs_before_the_first_tick_and_exit_stops_the_ticks():
    out = ok('BEGIN { printf("begin\\n"); } interval:ms:5 { printf("tick\\n"); exit(); } '
             'interval:ms:5 { printf("late\\n"); } END { printf("end\\n"); }')
    assert out.startswith("Attaching 4 probes...\nbegin\n")
    assert out.endswith("tick\nend\n\n\n")
    assert "late" not in out.split("tick\n", 1)[1]


def test_profile_ticks_on_every_online_cpu():
    from ebpfpy.sys.perf import online_cpus

    out = ok("profile:hz:99 { @cpus[cpu] = 1; } interval:ms:100 { exit(); }")
    lines = out.split("\n\n\n", 1)[1].split("\n")
    assert sorted(lines[:-1]) == sorted(f"@cpus[{cpu}]: 1" for cpu in online_cpus())


def test_the_system_is_this_process():
    """pid, tid, uid, gid, comm and cgroup are the emulator's own process, as BEGIN sees its
    process in the kernel (it runs there on pybpftrace's thread)."""
    script = 'BEGIN { printf("%d %d %d %d %s %d %d\\n", pid, tid == pid, uid, gid, comm, cgroup > 0, cpu); exit(); }'
    proc = subprocess.Popen([sys.executable, "-m", "ebpfpy.bpftrace", "--emulate", "-e", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert err == ""
    comm = os.path.basename(sys.executable)[:15]
    assert out == f"Attaching 1 probe...\n{proc.pid} 1 {os.getuid()} {os.getgid()} {comm} 1 0\n\n\n"


def test_nsecs_and_elapsed_read_the_clock():
    out = ok('BEGIN { $t = nsecs; printf("%d %d\\n", $t > 0, elapsed < 10000000000); exit(); }')
    assert out == "Attaching 1 probe...\n1 1\n\n\n"


def test_json_output():
    out = ok('BEGIN { printf("hi\\n"); @a[1] = 2; exit(); }', "-f", "json")
    assert out == ('{"type": "attached_probes", "data": {"probes": 1}}\n{"type": "printf", "data": "hi\\n"}\n\n\n'
                   '{"type": "map", "data": {"@a": {"1": 2}}}\n')


def test_todays_language_too():
    res = emulate('BEGIN { printf("hi\\n"); @x = 1; exit(); }', "--compat=0.26")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi\n\n\n@x: 1\n"
    assert "Traceback" not in res.stderr


def test_a_command_ends_the_run():
    """Without exit(), the run ends as in the kernel: when the -c command has exited."""
    out = ok("BEGIN { @a = 1; } END { printf(\"end\\n\"); }", "-c", shutil.which("true") or "/bin/true")
    assert out == "Attaching 2 probes...\nend\n\n\n@a: 1\n"


def test_sigusr1_prints_the_maps_and_sigint_runs_end():
    """SIGUSR1 prints the maps and the run goes on; Ctrl-C ends it in order, as on the kernel:
    END, then the maps."""
    proc = subprocess.Popen([sys.executable, "-m", "ebpfpy.bpftrace", "--emulate", "-e",
                             'BEGIN { printf("up\\n"); @x = 3; } END { printf("bye\\n"); }'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    watchdog = threading.Timer(TIMEOUT, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        assert proc.stdout.readline() == "Attaching 2 probes...\n"
        assert proc.stdout.readline() == "up\n"  # BEGIN ran, after the signal handlers went in
        proc.send_signal(signal.SIGUSR1)
        assert proc.stdout.readline() == "@x: 3\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        watchdog.cancel()
    assert (proc.returncode, err) == (0, "")
    assert out == "bye\n\n\n@x: 3\n"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("script", "expected"), [
    ('BEGIN { exit(); } tracepoint:syscalls:sys_enter_getpid { printf("x\\n"); }',
     "stdin:1:18-55: ERROR: --emulate runs begin, end, interval and profile probes; "
     "tracepoint:syscalls:sys_enter_getpid needs the kernel\n"
     'BEGIN { exit(); } tracepoint:syscalls:sys_enter_getpid { printf("x\\n"); }\n'
     "                 ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"),
    # every probe that needs the kernel is named, each on its own line (here the second)
    ("BEGIN { }\n  k:do_nanosleep, uprobe:/bin/sh:main { }",
     "stdin:2:3-17: ERROR: --emulate runs begin, end, interval and profile probes; k:do_nanosleep needs the kernel\n"
     "  k:do_nanosleep, uprobe:/bin/sh:main { }\n  ~~~~~~~~~~~~~~\n"
     # bpftrace's quirk: a span starts where the whitespace before it ended (the comma's end here)
     "stdin:2:18-38: ERROR: --emulate runs begin, end, interval and profile probes; uprobe:/bin/sh:main "
     "needs the kernel\n  k:do_nanosleep, uprobe:/bin/sh:main { }\n                 ~~~~~~~~~~~~~~~~~~~~\n"),
    ("software:cpu-clock:1000 { }",
     "stdin:1:1-24: ERROR: --emulate runs begin, end, interval and profile probes; software:cpu-clock:1000 "
     "needs the kernel\nsoftware:cpu-clock:1000 { }\n~~~~~~~~~~~~~~~~~~~~~~~\n"),
    # a helper the VM does not emulate: named, at the line that calls it, before anything runs
    ('BEGIN { printf("a\\n"); } END { printf("%d\\n", curtask); }',
     "stdin:1:32-55: ERROR: --emulate: helper bpf_get_current_task is not emulated (called for END); "
     "this needs the kernel\n"
     'BEGIN { printf("a\\n"); } END { printf("%d\\n", curtask); }\n'
     "                               ~~~~~~~~~~~~~~~~~~~~~~~\n"),
])
def test_what_needs_the_kernel_is_an_error(script, expected):
    res = emulate(script)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == expected


def test_script_errors_are_still_the_compilers():
    res = emulate("BEGIN { @x = count(); @x = 1; }")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("stdin:1:") and "ERROR:" in res.stderr


def test_usage_names_the_flag():
    assert "--emulate" in cli.USAGE and cli.LONG["emulate"] == (False, "emulate")
    assert cli.parse_args(["--emulate", "-e", "BEGIN {}"]).emulate


def test_a_fault_in_an_emulated_program_points_at_its_source():
    from ebpfpy.bpftrace.emulate import _fault

    class Plan:
        label, probe = "BEGIN", "BEGIN"

    diag = _fault(VMError("read of 8 bytes at 0x10: no memory there", index=1), [None, (1, 9, 20)], Plan())
    text = diag.format('BEGIN { $p = *(int64 *)16; }', "stdin")
    assert text == ("stdin:1:9-20: ERROR: --emulate: read of 8 bytes at 0x10: no memory there "
                    "(instruction 1 of BEGIN)\nBEGIN { $p = *(int64 *)16; }\n        ~~~~~~~~~~~\n")
    assert diag.span == Span(1, 9, 20)


# -- the VM's side --------------------------------------------------------------------------


def test_vm_cgroup_id_helper():
    vm = VM(cgroup_id=4242)
    assert vm.run(vm.load("call get_current_cgroup_id\nexit")) == 4242


def test_failed_reads_give_the_kernels_errno():
    """-kk shows the errno: probe_read_kernel of a user-space address is -ERANGE on x86-64,
    other failed reads -EFAULT, as the kernel's helpers say."""
    res = emulate('BEGIN { $x = *(int64 *)0; printf("%d|%s|\\n", $x, str(0)); exit(); }', "-kk")
    line = 'BEGIN { $x = *(int64 *)0; printf("%d|%s|\\n", $x, str(0)); exit(); }\n'
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == ("Attaching 1 probe...\n"  # -k's warnings are in the output stream, in order
                          "stdin:1:14-15: WARNING: Failed to probe_read: Numerical result out of range (-34)\n"
                          f"{line}             ~\n"
                          "stdin:1:50-56: WARNING: Failed to probe_read_str: Bad address (-14)\n"
                          f"{line}{' ' * 49}~~~~~~\n0||\n\n\n")
    vm = VM()
    for helper, errno in (("probe_read_kernel", -34), ("probe_read_user", -14), ("probe_read", -14),
                          ("probe_read_kernel_str", -34), ("probe_read_user_str", -14)):
        prog = vm.load(f"r1 = r10\nr1 += -8\nr2 = 8\nr3 = 16\ncall {helper}\nexit")
        assert vm.run(prog) - (1 << 64) == errno, helper
    prog = vm.load("r1 = r10\nr1 += -8\nr2 = 8\nr3 = -4096\ncall probe_read_kernel\nexit")
    assert vm.run(prog) - (1 << 64) == -14  # a kernel address with nothing there


def test_vm_maps_read_like_kernel_maps():
    """The runtime reads maps through Map's bulk API and ``props``; the VM's maps give both."""
    vm = VM(ncpus=2)
    m = vm.create_map("percpu_hash", 8, 8, 16)
    m[(5).to_bytes(8, "little")] = [(1).to_bytes(8, "little"), (2).to_bytes(8, "little")]
    keys, values = m.raw_columns()
    assert keys == [(5).to_bytes(8, "little")] and values == [(1).to_bytes(8, "little") + (2).to_bytes(8, "little")]
    assert m.raw_blobs() == (keys[0], values[0], 1)
    assert m.props.percpu and not m.props.is_array and m.user_value_size == 16


# -- without root ------------------------------------------------------------------------------


def _unprivileged_python() -> tuple:
    """(command prefix, python) that run as user nobody, or skip: as root, through setpriv and a
    python the nobody user can execute; as any other user, this test's own python."""
    if os.geteuid() != 0:
        return (), sys.executable
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is not installed")
    prefix = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env", "PYTHONDONTWRITEBYTECODE=1")
    for python in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run([*prefix, python, "-c", "import ebpfpy.bpftrace.emulate"], capture_output=True,
                               text=True, cwd=ROOT, timeout=TIMEOUT)
        if probe.returncode == 0:
            return prefix, python
    pytest.skip(f"no python the nobody user can run ebpfpy with (the repository at {ROOT} must be readable)")


def test_runs_without_root():
    prefix, python = _unprivileged_python()
    check = subprocess.run([*prefix, python, "-c", "import os; print(os.geteuid())"], capture_output=True, text=True)
    assert check.stdout.strip() != "0"
    script = ('BEGIN { printf("hello %d\\n", uid != 0); @b = count(); } interval:ms:10 { @t++; if (@t == 2) { exit(); } } '
              "END { print(@t); clear(@t); }")
    res = emulate(script, python=python, prefix=prefix, env={"PYBPFTRACE_COMPAT": "0.17"})
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == "Attaching 3 probes...\nhello 1\n@t: 2\n\n\n@b: 1\n\n"


def test_the_readme_example():
    """The README's "Learn BPF without root" line, as a user runs it (today's language)."""
    import re
    import shlex

    line = next(text for text in (ROOT / "README.md").read_text().splitlines()
                if text.startswith("pybpftrace --emulate "))
    argv = shlex.split(line.split("#")[0])
    env = {k: v for k, v in os.environ.items() if k != "PYBPFTRACE_COMPAT"}
    res = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", *argv[1:]], capture_output=True, text=True,
                         timeout=TIMEOUT, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello\n\n\n"
    assert re.fullmatch(r"Attached 1 probe\n", res.stderr)


def test_the_python_api_emulates_too():
    from ebpfpy.bpftrace.api import Script

    script = Script('BEGIN { printf("hi %d\\n", 5); @x[1] = 2; } interval:ms:5 { @n++; if (@n == 2) { exit(); } }',
                    emulate=True)
    with script.run() as run:
        events = [(ev.kind, ev.text) for ev in run.events()]
    assert events == [("printf", "hi 5\n")]
    assert dict(run.maps) == {"@n": 2, "@x": {1: 2}}
