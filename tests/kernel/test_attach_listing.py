"""`bpftrace -l` listings: our lines against the real tracefs/ELF data and bpftrace 0.17."""
import os
import subprocess

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


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="needs Debian's python3.11")
def test_usdt_listing_by_pid():
    child = subprocess.Popen([SYSTEM_PYTHON, "-c", "import sys, time; print(1, flush=True); time.sleep(10)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        lines = list(list_probes("usdt:*", pid=child.pid))
        assert f"usdt:{SYSTEM_PYTHON}:python:function__entry" in lines
        assert list(list_probes("usdt:*:python:gc__st*", pid=child.pid)) == [
            f"usdt:{SYSTEM_PYTHON}:python:gc__start"]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


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
