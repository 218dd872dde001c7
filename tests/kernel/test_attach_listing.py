"""`bpftrace -l` listings: our lines against the real tracefs/ELF data and bpftrace 0.17."""
import os
import subprocess
import sys

import pytest
from test_attach_common import compile_c

from ebpfpy.attach import list_probes
from ebpfpy.attach.tracefs import available_events

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("listing"))
    return compile_c("uprobe_target.c", out, "-O2"), compile_c("usdt_target.c", out, "-O2")


def bpftrace_list(pattern):
    proc = subprocess.run(["bpftrace", "-l", pattern], capture_output=True, text=True, timeout=60)
    return [line for line in proc.stdout.splitlines() if line]


def test_tracepoint_wildcards_match_available_events():
    lines = list(list_probes("tracepoint:sched:sched_w*"))
    expected = sorted(f"tracepoint:{c}:{n}" for c, n in available_events()
                      if c == "sched" and n.startswith("sched_w"))
    assert lines == expected and lines
    assert list(list_probes("t:syscalls:sys_enter_getpid")) == ["tracepoint:syscalls:sys_enter_getpid"]
    assert list(list_probes("tracepoint:syscalls:sys_enter_nosuch")) == []


def test_pattern_without_kind_matches_whole_lines():
    lines = list(list_probes("*sched_switch*"))
    assert "tracepoint:sched:sched_switch" in lines
    assert all("sched_switch" in line for line in lines)
    assert "software:cpu-clock:" in list(list_probes("software:cpu*"))


def test_uprobe_and_usdt_listing(binaries):
    uprobe_bin, usdt_bin = binaries
    syms = list(list_probes(f"uprobe:{uprobe_bin}:*"))
    assert f"uprobe:{uprobe_bin}:work" in syms and f"uprobe:{uprobe_bin}:negate" in syms
    assert syms == sorted(syms)
    assert list(list_probes(f"uprobe:{uprobe_bin}:w*")) == [f"uprobe:{uprobe_bin}:work"]
    assert list(list_probes(f"usdt:{usdt_bin}:*")) == [
        f"usdt:{usdt_bin}:ebpfpy_test:{n}" for n in ("hit", "idx", "konst")
    ]
    assert list(list_probes(f"U:{usdt_bin}:ebpfpy_test:k*")) == [f"usdt:{usdt_bin}:ebpfpy_test:konst"]


SYSTEM_PYTHON = "/usr/bin/python3.11"  # Debian's python3.11 carries USDT notes


@pytest.fixture
def python_child():
    """A running Debian python3.11 (it has USDT probes), started and ready; killed afterwards."""
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs Debian's python3.11")
    child = subprocess.Popen([SYSTEM_PYTHON, "-c", "import time; print(1, flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        yield child
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_usdt_listing_by_pid(python_child):
    lines = list(list_probes("usdt:*", pid=python_child.pid))
    assert f"usdt:{SYSTEM_PYTHON}:python:function__entry" in lines
    assert list(list_probes("usdt:*:python:gc__st*", pid=python_child.pid)) == [
        f"usdt:{SYSTEM_PYTHON}:python:gc__start"]


@pytest.mark.bpftrace
@pytest.mark.parametrize("pattern", ["tracepoint:sched:sched_w*", "tracepoint:syscalls:sys_enter_open*",
                                     "UPROBE", "USDT", "USDT_K"])
def test_same_lines_as_bpftrace(pattern, binaries):
    uprobe_bin, usdt_bin = binaries
    pattern = {"UPROBE": f"uprobe:{uprobe_bin}:*", "USDT": f"usdt:{usdt_bin}:*",
               "USDT_K": f"usdt:{usdt_bin}:ebpfpy_test:k*"}.get(pattern, pattern)
    assert list(list_probes(pattern)) == bpftrace_list(pattern)


@pytest.mark.bpftrace
@pytest.mark.parametrize("pattern", ["tracepoint:syscalls:sys_enter_openat", "tracepoint:sched:sched_process_e*",
                                     "tracepoint:net:netif_rx*"])
def test_verbose_fields_same_as_bpftrace(pattern):
    proc = subprocess.run(["bpftrace", "-lv", pattern], capture_output=True, text=True, timeout=60)
    expected = [line for line in proc.stdout.splitlines() if line]
    assert list(list_probes(pattern, verbose=True)) == expected


def _cli(tool, flag, pattern, *more):
    argv = ["bpftrace"] if tool == "bpftrace" else [sys.executable, "-m", "ebpfpy.bpftrace"]
    proc = subprocess.run([*argv, *more, flag, *([] if pattern is None else [pattern])],
                          capture_output=True, text=True, timeout=120)
    err = "".join(line for line in proc.stderr.splitlines(True) if "RLIMIT_MEMLOCK" not in line)
    return proc.stdout, err, 128 - proc.returncode if proc.returncode < 0 else proc.returncode  # SIGABRT: 134


# Every listing form of bpftrace 0.17, compared whole (stdout, stderr, exit status) through the CLI.
# UPROBE/NODBG/USDT stand for the test binaries (NODBG: debug info stripped). `uprobe:/path` alone
# differs on purpose (we list the binary, 0.17 rejects it), so it is tested in test_seed_examples.py.
CLI_LISTINGS = [
    ("-l", None), ("-l", "*"), ("-l", "*sched_switch*"), ("-l", "sched_sw*"), ("-l", "sched_switch"),
    ("-l", "software:*"), ("-l", "software:cpu*"), ("-l", "s:cpu-clock:100"), ("-l", "software:nosuch"),
    ("-l", "h:*"), ("-l", "hardware:nosuch"), ("-l", "BEGIN,END"), ("-l", "interval:s:1"), ("-l", "profile:*"),
    ("-l", "profile:hz:*"), ("-l", "iter:*"), ("-l", "iter:task"), ("-l", "watchpoint:0x1:8:w"),
    ("-l", "aw:0x1:8:w"), ("-l", "tracepoint:sched_sw*"), ("-l", "t:sched_switch"), ("-l", "t:fib*:*"),
    ("-l", "tracepoint:nosuch:*"), ("-l", "kprobe:*"), ("-l", "kfunc:vfs_read"), ("-l", "rawtracepoint:*"),
    ("-l", "foo:bar"), ("-l", ""), ("-l", "BEGIN { 1 }"), ("-l", "struct task_s*"), ("-l", "union *"),
    ("-l", "UPROBE:w*"), ("-l", "uprobe:/nonexistent:*"), ("-l", "uprobe:*"), ("-l", "UPROBE:"),
    ("-l", "UPROBE:0x1000"), ("-l", "u*:UPROBE_PATH:w*"), ("-l", "*:UPROBE_PATH:w*"), ("-l", "USDT:k*"),
    ("-l", "USDT:*:k*"), ("-l", "usdt:*"), ("-l", "UPROBE:w*,USDT:*"),
    ("-l", "u*:UPROBE_PATH"), ("-l", "h*:a:b:c"), ("-l", "x*:foo"), ("-l", "h*:nosuch"),
    ("-l", "u*:/nonexistent:x,software:nosuch"), ("-l", "u*:UPROBE_PATH:w*,t:sched:sched_switch"),
    ("-l", "software:nosuch,hardware:nosuch"), ("-l", "software:cpu,software"), ("-l", "*:vfs_read"),
    ("-l", "*:task"),
    ("-lv", "tracepoint:syscalls:sys_enter_open*"), ("-lv", "struct task_struct"), ("-lv", "software:*"),
    ("-lv", "NODBG:*"), ("-lv", "USDT:*"), ("-lv", "kfunc:vfs_read"), ("-lv", "BEGIN"),
]


@pytest.mark.bpftrace
@pytest.mark.parametrize("flag,pattern", CLI_LISTINGS, ids=[f"{f} {p}" for f, p in CLI_LISTINGS])
def test_cli_listing_same_as_bpftrace(flag, pattern, binaries, tmp_path_factory):
    uprobe_bin, usdt_bin = binaries
    nodbg = str(tmp_path_factory.mktemp("nodbg") / "uprobe_nodbg")
    subprocess.run(["cp", uprobe_bin, nodbg], check=True)
    subprocess.run(["strip", "--strip-debug", nodbg], check=True)
    if pattern is not None:
        pattern = (pattern.replace("UPROBE_PATH", uprobe_bin).replace("UPROBE", f"uprobe:{uprobe_bin}")
                   .replace("NODBG", f"uprobe:{nodbg}").replace("USDT", f"usdt:{usdt_bin}"))
    theirs = _cli("bpftrace", flag, pattern)
    if pattern in CRASHES_017:  # never copy a crash: bpftrace's form instead, exit 1
        assert "FATAL" in theirs[1] or "Log: cannot resolve location" in theirs[1], theirs
        assert _cli("pybpftrace", flag, pattern) == ("", CRASHES_017[pattern], 1)
        return
    assert _cli("pybpftrace", flag, pattern) == theirs


# Queries bpftrace 0.17 answers with an internal assertion (FATAL, exit 134) or an internal log line:
# ours says what is wrong in bpftrace's error form.
CRASHES_017 = {
    "sched_switch": "stdin:1:1-13: ERROR: Invalid probe type: sched_switch\nsched_switch\n~~~~~~~~~~~~\n",
    "rawtracepoint:*": "stdin:1:1-16: ERROR: Invalid probe type: rawtracepoint\nrawtracepoint:*\n~~~~~~~~~~~~~~~\n",
    "foo:bar": "stdin:1:1-8: ERROR: Invalid probe type: foo\nfoo:bar\n~~~~~~~\n",
    "": "ERROR: No attach points for probe\n",
}


@pytest.mark.bpftrace
def test_cli_usdt_listing_by_pid_same_as_bpftrace(python_child):
    pid = str(python_child.pid)
    for pattern in ("usdt:*", "usdt:gc*", "usdt:*:python:gc__st*", "*:*:gc__start",
                    f"usdt:{SYSTEM_PYTHON}:gc__st*"):
        ours = _cli("pybpftrace", "-l", pattern, "-p", pid)
        assert ours == _cli("bpftrace", "-l", pattern, "-p", pid), pattern
        assert ours[0]
