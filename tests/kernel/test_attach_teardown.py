"""Nothing outlives its owner: closing detaches, and so does SIGKILL of the attaching process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_attach_common import (
    compile_c,
    counting_prog,
    dynamic_events,
    link_ids,
    new_counts,
    object_exists,
    own_fds,
)

from ebpfpy.attach import (
    attach,
    attach_raw_tracepoint,
    attach_uprobe,
    attach_usdt,
)

pytestmark = [pytest.mark.kernel, pytest.mark.uprobes]

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, os, sys, time
sys.path[:0] = [{here!r}, os.path.dirname({here!r})]  # test_attach_common, and the helpers it imports
from test_attach_common import counting_prog, link_ids, new_counts
from ebpfpy.attach import attach_raw_tracepoint, attach_tracepoint, attach_uprobe, attach_usdt

counts = new_counts()
kp = counting_prog("kprobe", counts)
tp = counting_prog("tracepoint", counts)
rt = counting_prog("raw_tracepoint", counts)
atts = [
    attach_uprobe(kp, {uprobe!r}, "work"),
    attach_uprobe(kp, {uprobe!r}, "work", retprobe=True),
    attach_usdt(kp, {usdt!r}, "ebpfpy_test", "hit"),
    attach_tracepoint(tp, "syscalls", "sys_enter_getpid"),
    attach_raw_tracepoint(rt, "sys_enter"),
]
links = [i for a in atts for i in link_ids(a)]
print(json.dumps({{"links": links, "progs": [p.info().id for p in (kp, tp, rt)]}}), flush=True)
time.sleep(60)
"""


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("teardown"))
    return compile_c("uprobe_target.c", out, "-O2"), compile_c("usdt_target.c", out, "-O2")


def _run(binary, n=3):
    return int(subprocess.run([binary, str(n)], capture_output=True, text=True, check=True).stdout)


def _bpftool_ids(what):
    """(ids, prog_ids) from `bpftool -j <what> list`, or None when bpftool is missing."""
    if not shutil.which("bpftool"):
        return None
    out = subprocess.run(["bpftool", "-j", what, "list"], capture_output=True, text=True, check=True).stdout
    entries = json.loads(out or "[]")
    return {e["id"] for e in entries}, {e.get("prog_id") for e in entries}


def _wait_gone(kind, ids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(object_exists(kind, i) for i in ids):
            return True
        time.sleep(0.05)
    return False


def test_close_everything_restores_fds_and_objects(binaries):
    uprobe_bin, usdt_bin = binaries
    before = own_fds()
    with new_counts() as counts, counting_prog("kprobe", counts) as kp, \
            counting_prog("tracepoint", counts) as tp, counting_prog("raw_tracepoint", counts) as rt:
        atts = [
            attach_uprobe(kp, uprobe_bin, "work"),
            attach_uprobe(kp, uprobe_bin, "work", retprobe=True),
            attach_usdt(kp, usdt_bin, "ebpfpy_test", "hit"),
            *attach(tp, "tracepoint:syscalls:sys_enter_getp*"),
            attach_raw_tracepoint(rt, "sys_enter"),
        ]
        ids = [i for a in atts for i in link_ids(a)]
        assert ids and all(object_exists("link", i) for i in ids)
        assert _run(usdt_bin) == 3  # semaphore raised while attached
        for a in atts:
            a.close()
            a.close()  # idempotent
        assert not any(object_exists("link", i) for i in ids)
        assert _run(usdt_bin) == 0
    assert own_fds() == before
    assert all(not text.strip() for text in dynamic_events().values())


def test_sigkill_of_the_attaching_process_leaves_nothing(binaries):
    uprobe_bin, usdt_bin = binaries
    script = CHILD.format(here=HERE, uprobe=uprobe_bin, usdt=usdt_bin)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        line = child.stdout.readline()
        if not line:
            pytest.fail(f"child failed: {child.stderr.read()}")
        ids = json.loads(line)
        assert ids["links"] and all(object_exists("link", i) for i in ids["links"])
        assert all(object_exists("prog", i) for i in ids["progs"])
        assert _run(usdt_bin) == 3  # the child's USDT attach raised the semaphore
        seen = _bpftool_ids("link")
        if seen is not None:
            assert set(ids["links"]) <= seen[0]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert _wait_gone("link", ids["links"]), "links survived SIGKILL"
    assert _wait_gone("prog", ids["progs"]), "programs survived SIGKILL"
    listed = {what: _bpftool_ids(what) for what in ("link", "prog")}
    if listed["link"] is not None:  # the same, as bpftool sees it (other jobs' objects may be listed too)
        link_ids_now, link_prog_ids = listed["link"]
        assert not set(ids["links"]) & link_ids_now
        assert not set(ids["progs"]) & link_prog_ids
        assert not set(ids["progs"]) & listed["prog"][0]
    assert _run(usdt_bin) == 0  # semaphore dropped with the dead process's perf events
    assert all(not text.strip() for text in dynamic_events().values())
